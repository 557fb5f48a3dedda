//! Bots and webhooks: a bot is an account marked as one, found by its token's digest until
//! it is revoked (then its account is deactivated, which a starting gateway reads); a
//! webhook's bot is limited to its room and has no token; a bot's messages keep their mark
//! and label on both logs.

use banter_core::{Appended, BotLabel, BotPost, Cursor, LoggedEvent, RoomEvent, RoomName};
use banter_store::{now, DynStore, NewBot, NewOutgoing, NewWebhook, StoreError};
use uuid::Uuid;

use super::{account, audit, name, new_message};

fn room(s: &str) -> RoomName {
    RoomName::parse(s).expect("valid room")
}

pub async fn a_bot_is_found_by_its_token_until_revoked(store: DynStore) {
    let root = account(&store, "root").await;
    let ci = name("cibot");
    let made = store
        .create_bot(
            &NewBot {
                name: &ci,
                token_hash: Some(b"digest-1".to_vec()),
                created_by: root.user.id,
                created_at: now(),
                rooms: Some(vec![room("builds"), room("deploys")]),
            },
            &audit(&root, "bot.create", "cibot"),
        )
        .await
        .expect("create");
    assert_eq!(made.user.username.as_str(), "cibot");
    assert_eq!(made.created_by.as_str(), "root");
    assert!(made.has_token && !made.revoked);
    let taken = store
        .create_bot(
            &NewBot {
                name: &name("CIBOT"),
                token_hash: Some(b"digest-2".to_vec()),
                created_by: root.user.id,
                created_at: now(),
                rooms: None,
            },
            &audit(&root, "bot.create", "CIBOT"),
        )
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");

    let login = store
        .bot_login(b"digest-1")
        .await
        .expect("login")
        .expect("found");
    assert_eq!(login.user.id, made.user.id);
    assert_eq!(login.rooms, Some(vec![room("builds"), room("deploys")]));
    assert!(store.bot_login(b"digest-2").await.expect("login").is_none());
    let account = store
        .account("cibot")
        .await
        .expect("account")
        .expect("an account");
    assert!(account.bot && !account.admin);
    assert!(!store.account("root").await.expect("a").expect("root").bot);
    assert_eq!(store.bot_ids().await.expect("ids"), vec![made.user.id]);
    let cred = store
        .credentials("cibot")
        .await
        .expect("credentials")
        .expect("found");
    assert!(
        !cred.password_hash.starts_with('$'),
        "no password logs in as a bot"
    );

    assert!(
        store
            .revoke_bot("root", &audit(&root, "bot.revoke", "root"))
            .await
            .expect("revoke")
            .is_none(),
        "a person is no bot"
    );
    let revoked = store
        .revoke_bot("cibot", &audit(&root, "bot.revoke", "cibot"))
        .await
        .expect("revoke")
        .expect("a bot");
    assert!(revoked.standing().deactivated);
    assert!(store.bot_login(b"digest-1").await.expect("login").is_none());
    let listed = store.bots().await.expect("bots");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked && !listed[0].has_token);
    let standings = store
        .standings(now() - chrono::Duration::hours(1))
        .await
        .expect("standings");
    assert!(standings
        .iter()
        .any(|s| s.user == made.user.id && s.deactivated));
    let actions: Vec<String> = store
        .audit_log(None, 10)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        ["bot.revoke", "bot.create"],
        "the refused ones left nothing"
    );
}

pub async fn a_webhook_is_found_by_its_secret_until_revoked(store: DynStore) {
    let ann = account(&store, "ann").await;
    let hook_bot = name("deployer");
    let id = Uuid::now_v7();
    let made = store
        .create_webhook(
            &NewWebhook {
                id,
                room: room("deploys"),
                bot: &hook_bot,
                secret_hash: b"secret-1".to_vec(),
                created_by: ann.user.id,
                created_at: now(),
            },
            &audit(&ann, "webhook.create", &id.to_string()),
        )
        .await
        .expect("create");
    assert_eq!(made.bot.username.as_str(), "deployer");
    assert_eq!(made.created_by_name.as_str(), "ann");
    assert!(made.revoked_at.is_none());
    assert!(
        store.bots().await.expect("bots").is_empty(),
        "listed with its webhook"
    );
    assert_eq!(store.bot_ids().await.expect("ids"), vec![made.bot.id]);
    let found = store
        .webhook_by_secret(b"secret-1")
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found, made);
    assert!(store
        .webhook_by_secret(b"secret-2")
        .await
        .expect("find")
        .is_none());
    assert_eq!(
        store.webhooks(Some(&room("deploys"))).await.expect("list"),
        vec![made.clone()]
    );
    assert!(store
        .webhooks(Some(&room("general")))
        .await
        .expect("list")
        .is_empty());
    assert!(
        store
            .account("deployer")
            .await
            .expect("a")
            .expect("bot")
            .bot
    );

    let revoked = store
        .revoke_webhook(id, &audit(&ann, "webhook.revoke", &id.to_string()))
        .await
        .expect("revoke")
        .expect("found");
    assert!(revoked.revoked_at.is_some());
    assert!(store
        .webhook_by_secret(b"secret-1")
        .await
        .expect("find")
        .is_none());
    assert!(store.webhooks(None).await.expect("list").is_empty());
    assert!(
        store.webhook(id).await.expect("get").is_some(),
        "kept, revoked"
    );
    assert!(store
        .account("deployer")
        .await
        .expect("a")
        .expect("bot")
        .deactivated_at
        .is_some());
    assert!(store
        .revoke_webhook(Uuid::now_v7(), &audit(&ann, "webhook.revoke", "x"))
        .await
        .expect("revoke")
        .is_none());
}

pub async fn a_bots_message_keeps_its_mark_on_both_logs(store: DynStore) {
    let ci = account(&store, "cibot").await;
    let labelled = banter_core::NewMessage {
        bot: Some(BotPost::new(Some(
            BotLabel::parse("Jenkins").expect("label"),
        ))),
        ..new_message(&ci.user, "builds", "green", None)
    };
    let plain = banter_core::NewMessage {
        bot: Some(BotPost::new(None)),
        ..new_message(&ci.user, "builds", "red", None)
    };
    let person = new_message(&ci.user, "builds", "by hand", None);
    let appended = store
        .append_events(&[
            RoomEvent::Message(labelled.clone()),
            RoomEvent::Message(plain.clone()),
            RoomEvent::Message(person.clone()),
        ])
        .await
        .expect("append");
    assert!(appended.iter().all(|a| matches!(a, Appended::New(_))));
    // And as an external log delivers them, to another room.
    let external: Vec<LoggedEvent> = [labelled, plain, person]
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let m = banter_core::NewMessage {
                id: Uuid::now_v7(),
                room: room("kafka"),
                ..m
            };
            RoomEvent::Message(m).at_cursor(Cursor::new(3, 10 + i as u64))
        })
        .collect();
    store.apply_logged(&external).await.expect("apply");
    for r in ["builds", "kafka"] {
        let page = store
            .messages_before(&room(r), None, 10)
            .await
            .expect("page");
        let marks: Vec<_> = page
            .iter()
            .map(|m| {
                m.bot
                    .as_ref()
                    .map(|b| b.label.as_ref().map(|l| l.as_str().to_owned()))
            })
            .collect();
        assert_eq!(
            marks,
            [Some(Some("Jenkins".to_owned())), Some(None), None],
            "{r}"
        );
        let events = store
            .events_after(&room(r), None, 10)
            .await
            .expect("events");
        let json = serde_json::to_value(events[0].message().expect("message")).expect("json");
        assert_eq!(
            (json["bot"].clone(), json["label"].clone()),
            (true.into(), "Jenkins".into())
        );
        assert!(events[2].message().expect("m").bot.is_none());
    }
}

pub async fn an_outgoing_webhook_is_listed_for_its_room_until_revoked(store: DynStore) {
    let ann = account(&store, "ann").await;
    let bot = name("deploy-out");
    let id = Uuid::now_v7();
    let made = store
        .create_outgoing(
            &NewOutgoing {
                id,
                room: room("builds"),
                bot: &bot,
                url: "https://hooks.example.com/banter".into(),
                trigger: Some("!deploy".into()),
                secret: "bws_secret".into(),
                created_by: ann.user.id,
                created_at: now(),
            },
            &audit(&ann, "webhook.create", &id.to_string()),
        )
        .await
        .expect("create");
    assert_eq!(made.bot.username.as_str(), "deploy-out");
    assert_eq!(made.secret, "bws_secret", "kept as it is: signing needs it");
    assert_eq!(made.trigger.as_deref(), Some("!deploy"));
    assert_eq!(
        store.outgoing_of(&room("builds")).await.expect("of"),
        vec![made.clone()]
    );
    assert!(store
        .outgoing_of(&room("general"))
        .await
        .expect("of")
        .is_empty());
    assert!(
        store.bots().await.expect("bots").is_empty(),
        "listed with its webhook"
    );
    let taken = store
        .create_outgoing(
            &NewOutgoing {
                id: Uuid::now_v7(),
                room: room("builds"),
                bot: &bot,
                url: "https://hooks.example.com/other".into(),
                trigger: None,
                secret: "bws_other".into(),
                created_by: ann.user.id,
                created_at: now(),
            },
            &audit(&ann, "webhook.create", "x"),
        )
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    let revoked = store
        .revoke_outgoing(id, &audit(&ann, "webhook.revoke", &id.to_string()))
        .await
        .expect("revoke")
        .expect("found");
    assert!(revoked.revoked_at.is_some());
    assert!(store
        .outgoing_of(&room("builds"))
        .await
        .expect("of")
        .is_empty());
    assert!(store.outgoing(id).await.expect("get").is_some());
    assert!(store
        .account("deploy-out")
        .await
        .expect("a")
        .expect("bot")
        .deactivated_at
        .is_some());
}
