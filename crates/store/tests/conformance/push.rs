//! Push subscriptions: one per browser endpoint, owned by whoever subscribed last from it, a
//! few per user at most, found by the user's name without regard to case.

use banter_store::{now, DynStore, PushSubscription};
use chrono::Duration;

use super::user;

fn subscription(user: &banter_core::User, endpoint: &str, ago_secs: i64) -> PushSubscription {
    PushSubscription {
        user: user.id,
        endpoint: endpoint.into(),
        p256dh: format!("key-of-{endpoint}"),
        auth: "secret".into(),
        created_at: now() - Duration::seconds(ago_secs),
    }
}

fn endpoints(subs: &[PushSubscription]) -> Vec<&str> {
    subs.iter().map(|s| s.endpoint.as_str()).collect()
}

pub async fn push_subscriptions_are_kept_per_browser_newest_first(store: DynStore) {
    let ada = user(&store, "ada").await;
    let bob = user(&store, "bob").await;
    assert!(store
        .push_subscriptions("ada")
        .await
        .expect("none")
        .is_empty());
    let laptop = subscription(&ada, "https://push.example/laptop", 60);
    let phone = subscription(&ada, "https://push.example/phone", 30);
    store
        .save_push_subscription(&laptop, 5)
        .await
        .expect("save");
    store.save_push_subscription(&phone, 5).await.expect("save");
    let found = store.push_subscriptions("ADA").await.expect("found");
    assert_eq!(
        endpoints(&found),
        ["https://push.example/phone", "https://push.example/laptop"]
    );
    assert_eq!(found[1], laptop, "read back as written");
    // The same browser again (new keys): one row, the new keys.
    let renewed = PushSubscription {
        p256dh: "renewed".into(),
        ..subscription(&ada, "https://push.example/laptop", 0)
    };
    store
        .save_push_subscription(&renewed, 5)
        .await
        .expect("save");
    let found = store.push_subscriptions("ada").await.expect("found");
    assert_eq!(
        endpoints(&found),
        ["https://push.example/laptop", "https://push.example/phone"]
    );
    assert_eq!(found[0].p256dh, "renewed");
    // Bob logs in on Ada's laptop and subscribes: the browser is his now.
    store
        .save_push_subscription(&subscription(&bob, "https://push.example/laptop", 0), 5)
        .await
        .expect("save");
    assert_eq!(
        endpoints(&store.push_subscriptions("ada").await.expect("ada")),
        ["https://push.example/phone"]
    );
    assert_eq!(
        endpoints(&store.push_subscriptions("bob").await.expect("bob")),
        ["https://push.example/laptop"]
    );
    // Only the owner deletes it; a push service's "gone" forgets it for anyone.
    assert!(!store
        .delete_push_subscription(ada.id, "https://push.example/laptop")
        .await
        .expect("delete"));
    assert!(store
        .delete_push_subscription(bob.id, "https://push.example/laptop")
        .await
        .expect("delete"));
    assert!(store
        .push_subscriptions("bob")
        .await
        .expect("bob")
        .is_empty());
    assert!(store
        .forget_push_endpoint("https://push.example/phone")
        .await
        .expect("forget"));
    assert!(!store
        .forget_push_endpoint("https://push.example/phone")
        .await
        .expect("again"));
    assert!(store
        .push_subscriptions("ada")
        .await
        .expect("ada")
        .is_empty());
}

pub async fn only_a_users_newest_push_subscriptions_are_kept(store: DynStore) {
    let ada = user(&store, "ada").await;
    let bob = user(&store, "bob").await;
    store
        .save_push_subscription(&subscription(&bob, "https://push.example/bob", 100), 3)
        .await
        .expect("save");
    for i in 0..5 {
        let sub = subscription(&ada, &format!("https://push.example/{i}"), 50 - i);
        store.save_push_subscription(&sub, 3).await.expect("save");
    }
    assert_eq!(
        endpoints(&store.push_subscriptions("ada").await.expect("ada")),
        [
            "https://push.example/4",
            "https://push.example/3",
            "https://push.example/2"
        ]
    );
    assert_eq!(
        endpoints(&store.push_subscriptions("bob").await.expect("bob")),
        ["https://push.example/bob"],
        "another user's are not touched"
    );
}
