//! Administration: the first account is the admin, invites admit as many as they say until
//! they expire, deactivation revokes sessions and is what a starting gateway reads, accounts
//! are found by any part of their name, and every admin action is in the audit log with it.

use banter_core::Username;
use banter_store::{
    now, Account, DynStore, NewAccount, NewAudit, NewInvite, NewRefreshToken, Registered, Rotation,
};
use chrono::Duration;
use uuid::Uuid;

fn name(s: &str) -> Username {
    Username::parse(s).expect("valid name")
}

async fn register(store: &DynStore, username: &str, invite: Option<&[u8]>) -> Registered {
    let username = name(username);
    store
        .register(&NewAccount {
            username: &username,
            password_hash: "h",
            created_at: now(),
            invite,
            only_first: false,
        })
        .await
        .expect("register")
}

pub(crate) async fn account(store: &DynStore, username: &str) -> Account {
    match register(store, username, None).await {
        Registered::Created(account) => account,
        other => panic!("nothing could refuse it: {other:?}"),
    }
}

pub(crate) fn audit(actor: &Account, action: &'static str, target: &str) -> NewAudit {
    NewAudit {
        at: now(),
        actor_id: Some(actor.user.id),
        actor: actor.user.username.as_str().to_owned(),
        action,
        target: target.to_owned(),
        detail: serde_json::json!({ "why": "a test" }),
        address: Some("192.0.2.7".into()),
    }
}

pub async fn the_first_account_is_an_admin_and_only_the_first(store: DynStore) {
    // Registrations racing on an empty database: one admin, whoever wins.
    let names: Vec<String> = (0..8).map(|i| format!("racer{i}")).collect();
    let racing = names.iter().map(|n| {
        let store = store.clone();
        async move { account(&store, n).await }
    });
    let accounts = futures::future::join_all(racing).await;
    let admins: Vec<_> = accounts.iter().filter(|a| a.admin).collect();
    assert_eq!(admins.len(), 1, "{accounts:?}");
    let later = account(&store, "later").await;
    assert!(!later.admin);
    // Closed: only an empty database takes an account.
    let closed = name("closed");
    let refused = store
        .register(&NewAccount {
            username: &closed,
            password_hash: "h",
            created_at: now(),
            invite: None,
            only_first: true,
        })
        .await
        .expect("register");
    assert_eq!(refused, Registered::Closed);
    assert!(store.account("closed").await.expect("lookup").is_none());
    assert!(store.is_admin(admins[0].user.id).await.expect("is_admin"));
    assert!(!store.is_admin(later.user.id).await.expect("is_admin"));
}

pub async fn an_invite_admits_its_uses_until_it_expires_or_is_revoked(store: DynStore) {
    let admin = account(&store, "root").await;
    let invite = |uses, expires_in: Duration, code: &str| NewInvite {
        id: Uuid::new_v4(),
        code_hash: code.as_bytes().to_vec(),
        created_by: admin.user.id,
        created_at: now(),
        expires_at: now() + expires_in,
        uses,
    };
    let two = invite(2, Duration::hours(1), "two-uses");
    let made = store
        .create_invite(&two, &audit(&admin, "invite.create", "two"))
        .await
        .expect("create");
    assert_eq!((made.uses, made.used, made.revoked_at), (2, 0, None));
    assert_eq!(made.created_by.as_str(), "root");

    assert!(matches!(
        register(&store, "ann", Some(b"two-uses")).await,
        Registered::Created(_)
    ));
    // A taken name spends no use.
    let taken = name("ANN");
    let again = store
        .register(&NewAccount {
            username: &taken,
            password_hash: "h",
            created_at: now(),
            invite: Some(b"two-uses"),
            only_first: false,
        })
        .await;
    assert!(matches!(again, Err(banter_store::StoreError::Conflict(_))));
    assert!(matches!(
        register(&store, "bea", Some(b"two-uses")).await,
        Registered::Created(_)
    ));
    assert_eq!(
        register(&store, "cyd", Some(b"two-uses")).await,
        Registered::InviteRefused
    );
    assert!(store.account("cyd").await.expect("lookup").is_none());
    assert_eq!(
        register(&store, "cyd", Some(b"no-such-code")).await,
        Registered::InviteRefused
    );

    let expired = invite(5, Duration::seconds(-1), "expired");
    store
        .create_invite(&expired, &audit(&admin, "invite.create", "expired"))
        .await
        .expect("create");
    assert_eq!(
        register(&store, "cyd", Some(b"expired")).await,
        Registered::InviteRefused
    );

    let revoked = invite(5, Duration::hours(1), "revoked");
    store
        .create_invite(&revoked, &audit(&admin, "invite.create", "revoked"))
        .await
        .expect("create");
    let gone = store
        .revoke_invite(revoked.id, &audit(&admin, "invite.revoke", "revoked"))
        .await
        .expect("revoke")
        .expect("found");
    assert!(gone.revoked_at.is_some());
    assert_eq!(
        register(&store, "cyd", Some(b"revoked")).await,
        Registered::InviteRefused
    );
    assert!(store
        .revoke_invite(Uuid::new_v4(), &audit(&admin, "invite.revoke", "none"))
        .await
        .expect("revoke")
        .is_none());

    let listed = store.invites(10).await.expect("list");
    assert_eq!(listed.len(), 3);
    let two_now = listed.iter().find(|i| i.id == two.id).expect("listed");
    assert_eq!((two_now.used, two_now.uses), (2, 2));
}

pub async fn deactivation_ends_sessions_and_is_what_a_gateway_reads_at_start(store: DynStore) {
    let admin = account(&store, "root").await;
    let dee = account(&store, "dee").await;
    let token = |secret: &str| NewRefreshToken {
        id: Uuid::new_v4(),
        token_hash: secret.as_bytes().to_vec(),
        user_id: dee.user.id,
        family_id: Uuid::new_v4(),
        created_at: now(),
        expires_at: now() + Duration::days(1),
    };
    store
        .insert_refresh_token(&token("live"))
        .await
        .expect("insert");
    let before = now() - Duration::minutes(15);
    assert!(store.standings(before).await.expect("standings").is_empty());

    let off = store
        .set_deactivated("DEE", true, &audit(&admin, "user.deactivate", "dee"))
        .await
        .expect("deactivate")
        .expect("found");
    assert!(off.deactivated_at.is_some());
    assert!(off.revoked_before.is_some());
    let creds = store
        .credentials("dee")
        .await
        .expect("lookup")
        .expect("found");
    assert!(creds.deactivated);
    assert_eq!(
        store
            .rotate_refresh_token(b"live", &token("next"), now())
            .await
            .expect("rotate"),
        Rotation::Invalid,
        "deactivation revokes every refresh token"
    );
    let standings = store.standings(before).await.expect("standings");
    assert_eq!(standings.len(), 1);
    assert_eq!(standings[0], off.standing());
    assert!(standings[0].deactivated);

    let on = store
        .set_deactivated("dee", false, &audit(&admin, "user.reactivate", "dee"))
        .await
        .expect("reactivate")
        .expect("found");
    assert!(on.deactivated_at.is_none());
    assert_eq!(
        on.revoked_before, off.revoked_before,
        "old tokens stay refused"
    );
    assert!(
        !store
            .credentials("dee")
            .await
            .expect("lookup")
            .expect("found")
            .deactivated
    );
    let standings = store.standings(before).await.expect("standings");
    assert_eq!(standings.len(), 1);
    assert!(!standings[0].deactivated);
    // Once every token from then has expired, a starting gateway need not know.
    let later = now() + Duration::seconds(1);
    assert!(store.standings(later).await.expect("standings").is_empty());

    assert!(store
        .set_deactivated("nobody", true, &audit(&admin, "user.deactivate", "nobody"))
        .await
        .expect("unknown")
        .is_none());
}

pub async fn accounts_are_found_by_any_part_of_their_name_in_pages(store: DynStore) {
    // A closed server's first account is made all the same: its admin.
    let first = name("Alma");
    let made = store
        .register(&NewAccount {
            username: &first,
            password_hash: "h",
            created_at: now(),
            invite: None,
            only_first: true,
        })
        .await
        .expect("register");
    assert!(
        matches!(made, Registered::Created(ref a) if a.admin),
        "{made:?}"
    );
    for n in ["malik", "Omar", "zed", "al_x", "al.y"] {
        account(&store, n).await;
    }
    let names = |found: Vec<Account>| -> Vec<String> {
        found
            .into_iter()
            .map(|a| a.user.username.as_str().to_owned())
            .collect()
    };
    assert_eq!(
        names(store.accounts("MA", None, 10).await.expect("q")),
        ["Alma", "malik", "Omar"]
    );
    assert_eq!(
        names(store.accounts("", None, 3).await.expect("all")),
        ["al.y", "al_x", "Alma"]
    );
    assert_eq!(
        names(store.accounts("", Some("alma"), 2).await.expect("next")),
        ["malik", "Omar"]
    );
    // `%` and `_` are plain text, not patterns.
    assert!(store.accounts("%", None, 10).await.expect("q").is_empty());
    assert_eq!(
        names(store.accounts("l_", None, 10).await.expect("q")),
        ["al_x"]
    );
    let alma = store.account("ALMA").await.expect("lookup").expect("found");
    assert_eq!(
        store.account_by_id(alma.user.id).await.expect("by id"),
        Some(alma)
    );
}

pub async fn every_admin_action_is_in_the_audit_log_newest_first(store: DynStore) {
    let admin = account(&store, "root").await;
    account(&store, "eve").await;
    store
        .set_admin_audited("eve", true, &audit(&admin, "user.admin", "eve"))
        .await
        .expect("grant")
        .expect("found");
    assert!(store
        .set_admin_audited("nobody", true, &audit(&admin, "user.admin", "nobody"))
        .await
        .expect("unknown")
        .is_none());
    store
        .put_setting(
            "registration",
            "invite",
            &audit(&admin, "settings.registration", "registration"),
        )
        .await
        .expect("put");
    assert_eq!(
        store.setting("registration").await.expect("get").as_deref(),
        Some("invite")
    );
    store
        .put_setting(
            "registration",
            "closed",
            &audit(&admin, "settings.registration", "registration"),
        )
        .await
        .expect("put");
    assert_eq!(
        store.setting("registration").await.expect("get").as_deref(),
        Some("closed")
    );
    assert!(store.setting("nothing").await.expect("get").is_none());
    store
        .record_audit(&audit(&admin, "room.archive", "plans"))
        .await
        .expect("record");

    let entries = store.audit_log(None, 10).await.expect("log");
    let actions: Vec<_> = entries.iter().map(|e| e.action.as_str()).collect();
    // The refused grant (no such user) left no entry.
    assert_eq!(
        actions,
        [
            "room.archive",
            "settings.registration",
            "settings.registration",
            "user.admin"
        ]
    );
    assert_eq!(entries[3].target, "eve");
    assert_eq!(entries[3].actor, "root");
    assert_eq!(entries[3].address.as_deref(), Some("192.0.2.7"));
    assert_eq!(entries[3].detail, serde_json::json!({ "why": "a test" }));
    let page = store
        .audit_log(Some(entries[1].id), 10)
        .await
        .expect("page");
    assert_eq!(page, entries[2..].to_vec());
}

pub async fn a_deleted_rooms_messages_are_swept_in_batches_and_it_leaves_every_list(
    store: DynStore,
) {
    use banter_core::{Change, RoomChange, RoomEvent, RoomKind, Topic};

    use super::rooms::{me, room_change};
    use super::{change, new_message, room};

    let root = account(&store, "root").await.user;
    let ann = account(&store, "ann").await.user;
    let created = |name: &str, kind| {
        room_change(
            &ann,
            name,
            RoomChange::Created {
                kind,
                topic: Topic::default(),
                members: vec![me(&ann)],
            },
        )
    };
    let mut events = vec![
        created("doomed", RoomKind::Public),
        created("kept", RoomKind::Private),
    ];
    for i in 0..7 {
        events.push(RoomEvent::Message(new_message(
            &ann,
            "doomed",
            &format!("d{i}"),
            None,
        )));
    }
    events.push(RoomEvent::Message(new_message(&ann, "kept", "k0", None)));
    let appended = store.append_events(&events).await.expect("append");
    let first = match &appended[2] {
        banter_core::Appended::New(l) => l.event.message_id(),
        other => panic!("{other:?}"),
    };
    store
        .append_events(&[change(
            &ann,
            &room("doomed"),
            first,
            None,
            Change::React {
                emoji: banter_core::Emoji::parse("👍").expect("emoji"),
            },
        )])
        .await
        .expect("react");

    let listed = store.admin_rooms("", None, 10).await.expect("rooms");
    let names: Vec<_> = listed.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["doomed", "kept"]);
    assert_eq!((listed[0].members, listed[0].messages), (1, 7));
    assert_eq!(listed[1].kind, RoomKind::Private);

    // Archived: still listed everywhere, marked so.
    store
        .append_events(&[room_change(
            &root,
            "doomed",
            RoomChange::Archived { archived: true },
        )])
        .await
        .expect("archive");
    let entry = store
        .membership(ann.id, &room("doomed"))
        .await
        .expect("entry")
        .expect("member");
    assert!(entry.archived);
    assert!(store.admin_rooms("doo", None, 10).await.expect("rooms")[0]
        .archived_at
        .is_some());

    // Deleted: gone from the member's list at once; messages swept 3 at a time.
    store
        .append_events(&[room_change(&root, "doomed", RoomChange::Deleted)])
        .await
        .expect("delete");
    assert!(store
        .membership(ann.id, &room("doomed"))
        .await
        .expect("entry")
        .is_none());
    assert!(store
        .memberships(ann.id)
        .await
        .expect("list")
        .iter()
        .all(|e| e.room.as_str() != "doomed"));
    let (info, _) = store
        .room(&room("doomed"))
        .await
        .expect("room")
        .expect("kept row");
    assert!(info.deleted_at.is_some());
    let mut swept = Vec::new();
    while let Some((r, n)) = store.sweep_deleted_room(3).await.expect("sweep") {
        assert_eq!(r.as_str(), "doomed");
        swept.push(n);
    }
    assert_eq!(swept, [3, 3, 1]);
    let after = store.admin_rooms("", None, 10).await.expect("rooms");
    assert_eq!(
        (after[0].messages, after[0].deleted_at.is_some()),
        (0, true)
    );
    assert_eq!(after[1].messages, 1, "another room keeps its messages");
    assert!(store.message(first).await.expect("lookup").is_none());
    assert!(store.sweep_deleted_room(3).await.expect("sweep").is_none());
}

pub async fn a_purge_counts_and_pages_a_persons_messages_in_a_time_range(store: DynStore) {
    use banter_core::RoomEvent;
    use banter_store::PurgeRange;

    use super::new_message;

    let bob = account(&store, "bob").await.user;
    let cy = account(&store, "cyd").await.user;
    let start = now();
    let mut events = Vec::new();
    for i in 0..5 {
        let mut m = new_message(
            &bob,
            if i % 2 == 0 { "one" } else { "two" },
            &format!("b{i}"),
            None,
        );
        m.created_at = start + Duration::seconds(i);
        events.push(RoomEvent::Message(m));
    }
    events.push(RoomEvent::Message(new_message(&cy, "one", "c", None)));
    store.append_events(&events).await.expect("append");

    let all = PurgeRange {
        author: bob.id,
        from: None,
        to: None,
    };
    assert_eq!(store.purge_count(&all).await.expect("count"), 5);
    let middle = PurgeRange {
        author: bob.id,
        from: Some(start + Duration::seconds(1)),
        to: Some(start + Duration::seconds(4)),
    };
    assert_eq!(store.purge_count(&middle).await.expect("count"), 3);
    let page = store.purge_batch(&all, None, 2).await.expect("page");
    let bodies = |items: &[banter_store::PurgeItem]| -> Vec<String> {
        items.iter().map(|i| i.room.as_str().to_owned()).collect()
    };
    assert_eq!(bodies(&page), ["one", "two"]);
    let next = store.purge_batch(&all, page.last(), 2).await.expect("page");
    assert_eq!(bodies(&next), ["one", "two"]);
    let last = store.purge_batch(&all, next.last(), 2).await.expect("page");
    assert_eq!(bodies(&last), ["one"]);
    assert!(store
        .purge_batch(&all, last.last(), 2)
        .await
        .expect("page")
        .is_empty());
    assert_eq!(store.newest_stored(0).await.expect("newest"), Some(6));
    assert_eq!(store.newest_stored(7).await.expect("newest"), None);
}
