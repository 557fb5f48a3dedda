//! One behaviour, two engines: every case here runs on SQLite and on PostgreSQL, each on a
//! database of its own that is dropped afterwards.

use std::future::Future;

use banter_core::{UserId, Username};
use banter_store::{now, DynStore, NewRefreshToken, Rotation, StoreError};
use banter_testkit::{Db, TestDb};
use chrono::Duration;
use uuid::Uuid;

async fn run<F, Fut>(kind: Db, case: F)
where
    F: FnOnce(DynStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = TestDb::new(kind).await;
    let store = db.store().await;
    case(store.clone()).await;
    store.close().await;
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $case() { super::run(banter_testkit::Db::Sqlite, super::$case).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $case() { super::run(banter_testkit::Db::Postgres, super::$case).await })*
        }
    };
}

conformance!(
    migrations_can_run_again,
    ping_answers,
    users_are_created_and_found,
    usernames_are_unique_without_regard_to_case,
    unknown_users_are_absent,
    refresh_tokens_rotate_once,
    replaying_a_used_refresh_token_revokes_its_family,
    expired_and_unknown_refresh_tokens_are_invalid,
    concurrent_rotations_of_one_token_let_exactly_one_through,
    logout_revokes_the_family_of_its_owner_only,
);

fn name(s: &str) -> Username {
    Username::parse(s).expect("valid username")
}

fn token(user: UserId, family: Uuid, secret: &str, ttl: Duration) -> NewRefreshToken {
    let created_at = now();
    NewRefreshToken {
        id: Uuid::new_v4(),
        token_hash: secret.as_bytes().to_vec(),
        user_id: user,
        family_id: family,
        created_at,
        expires_at: created_at + ttl,
    }
}

async fn migrations_can_run_again(store: DynStore) {
    store
        .migrate()
        .await
        .expect("second migration run is a no-op");
}

async fn ping_answers(store: DynStore) {
    store.ping().await.expect("ping");
    assert!(store.pool_stats().size >= 1);
}

async fn users_are_created_and_found(store: DynStore) {
    let at = now();
    let alice = store
        .create_user(&name("Alice"), "$argon2id$hash", at)
        .await
        .expect("create");
    assert_eq!(alice.username.as_str(), "Alice");
    assert_eq!(alice.created_at, at, "timestamps round-trip exactly");
    let bob = store
        .create_user(&name("bob"), "$argon2id$other", at)
        .await
        .expect("create");
    assert_ne!(alice.id, bob.id);

    let found = store
        .credentials("alice")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.user, alice, "lookup ignores case");
    assert_eq!(found.password_hash, "$argon2id$hash");
    assert_eq!(store.user(alice.id).await.expect("lookup"), Some(alice));
}

async fn usernames_are_unique_without_regard_to_case(store: DynStore) {
    store
        .create_user(&name("carol"), "h", now())
        .await
        .expect("create");
    for dup in ["carol", "CAROL", "Carol"] {
        let err = store
            .create_user(&name(dup), "h", now())
            .await
            .expect_err("duplicate");
        assert!(matches!(err, StoreError::Conflict(_)), "{dup}: {err:?}");
    }
}

async fn unknown_users_are_absent(store: DynStore) {
    assert!(store.credentials("nobody").await.expect("lookup").is_none());
    assert!(store.user(UserId(424242)).await.expect("lookup").is_none());
    // Input that looks like SQL is only ever a value.
    assert!(store
        .credentials("x' OR '1'='1")
        .await
        .expect("lookup")
        .is_none());
}

async fn refresh_tokens_rotate_once(store: DynStore) {
    let user = store
        .create_user(&name("dave"), "h", now())
        .await
        .expect("create");
    let family = Uuid::new_v4();
    store
        .insert_refresh_token(&token(user.id, family, "first", Duration::days(1)))
        .await
        .expect("insert");
    // The successor's user and family come from the presented token.
    let next = token(UserId(0), Uuid::nil(), "second", Duration::days(1));
    let outcome = store
        .rotate_refresh_token(b"first", &next, now())
        .await
        .expect("rotate");
    assert_eq!(outcome, Rotation::Rotated { user_id: user.id });
    let third = token(UserId(0), Uuid::nil(), "third", Duration::days(1));
    let outcome = store
        .rotate_refresh_token(b"second", &third, now())
        .await
        .expect("rotate successor");
    assert_eq!(outcome, Rotation::Rotated { user_id: user.id });
}

async fn replaying_a_used_refresh_token_revokes_its_family(store: DynStore) {
    let user = store
        .create_user(&name("erin"), "h", now())
        .await
        .expect("create");
    store
        .insert_refresh_token(&token(user.id, Uuid::new_v4(), "a", Duration::days(1)))
        .await
        .expect("insert");
    let b = token(UserId(0), Uuid::nil(), "b", Duration::days(1));
    assert!(matches!(
        store
            .rotate_refresh_token(b"a", &b, now())
            .await
            .expect("rotate"),
        Rotation::Rotated { .. }
    ));
    // "a" again: a replay. The whole family, "b" included, is revoked.
    let c = token(UserId(0), Uuid::nil(), "c", Duration::days(1));
    assert_eq!(
        store
            .rotate_refresh_token(b"a", &c, now())
            .await
            .expect("replay"),
        Rotation::Reused
    );
    let d = token(UserId(0), Uuid::nil(), "d", Duration::days(1));
    assert_eq!(
        store
            .rotate_refresh_token(b"b", &d, now())
            .await
            .expect("after revoke"),
        Rotation::Invalid
    );
    // "c" was never stored.
    let e = token(UserId(0), Uuid::nil(), "e", Duration::days(1));
    assert_eq!(
        store
            .rotate_refresh_token(b"c", &e, now())
            .await
            .expect("never stored"),
        Rotation::Invalid
    );
}

async fn expired_and_unknown_refresh_tokens_are_invalid(store: DynStore) {
    let user = store
        .create_user(&name("frank"), "h", now())
        .await
        .expect("create");
    store
        .insert_refresh_token(&token(
            user.id,
            Uuid::new_v4(),
            "old",
            Duration::seconds(-1),
        ))
        .await
        .expect("insert");
    let next = token(UserId(0), Uuid::nil(), "n1", Duration::days(1));
    assert_eq!(
        store
            .rotate_refresh_token(b"old", &next, now())
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
    let next = token(UserId(0), Uuid::nil(), "n2", Duration::days(1));
    assert_eq!(
        store
            .rotate_refresh_token(b"never-issued", &next, now())
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
}

async fn concurrent_rotations_of_one_token_let_exactly_one_through(store: DynStore) {
    let user = store
        .create_user(&name("grace"), "h", now())
        .await
        .expect("create");
    store
        .insert_refresh_token(&token(user.id, Uuid::new_v4(), "shared", Duration::days(1)))
        .await
        .expect("insert");
    let attempts = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let next = token(
                UserId(0),
                Uuid::nil(),
                &format!("next-{i}"),
                Duration::days(1),
            );
            store.rotate_refresh_token(b"shared", &next, now()).await
        })
    });
    let outcomes: Vec<Rotation> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("task").expect("rotate"))
        .collect();
    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, Rotation::Rotated { .. }))
        .count();
    assert_eq!(rotated, 1, "{outcomes:?}");
}

async fn logout_revokes_the_family_of_its_owner_only(store: DynStore) {
    let heidi = store
        .create_user(&name("heidi"), "h", now())
        .await
        .expect("create");
    let ivan = store
        .create_user(&name("ivan"), "h", now())
        .await
        .expect("create");
    store
        .insert_refresh_token(&token(heidi.id, Uuid::new_v4(), "h1", Duration::days(1)))
        .await
        .expect("insert");
    let h2 = token(UserId(0), Uuid::nil(), "h2", Duration::days(1));
    store
        .rotate_refresh_token(b"h1", &h2, now())
        .await
        .expect("rotate");

    assert!(!store
        .revoke_refresh_family(b"h2", ivan.id, now())
        .await
        .expect("foreign revoke"));
    assert!(store
        .revoke_refresh_family(b"h2", heidi.id, now())
        .await
        .expect("revoke"));
    let h3 = token(UserId(0), Uuid::nil(), "h3", Duration::days(1));
    assert_eq!(
        store
            .rotate_refresh_token(b"h2", &h3, now())
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
    assert!(!store
        .revoke_refresh_family(b"h2", heidi.id, now())
        .await
        .expect("revoke again"));
}
