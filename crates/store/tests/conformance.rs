//! One behaviour, two engines: every case here runs on SQLite and on PostgreSQL, each on a
//! database of its own that is dropped afterwards.

use std::future::Future;

use banter_core::{ClientId, Cursor, NewMessage, RoomName, User, UserId, Username};
use banter_store::{now, Appended, DynStore, LoggedMessage, NewRefreshToken, Rotation, StoreError};
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
    appended_messages_get_increasing_cursors_in_order,
    a_client_id_is_stored_once_per_author,
    history_pages_both_ways_around_a_cursor,
    deleted_messages_leave_history,
    rooms_are_listed_by_latest_activity,
    admin_rights_are_granted_and_revoked,
    logged_messages_are_stored_once_whatever_is_redelivered,
    writers_at_once_wait_for_each_other,
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

fn room(s: &str) -> RoomName {
    RoomName::parse(s).expect("valid room")
}

fn new_message(author: &User, room_name: &str, body: &str, client_id: Option<&str>) -> NewMessage {
    NewMessage {
        id: Uuid::now_v7(),
        room: room(room_name),
        author_id: author.id,
        author: author.username.clone(),
        body: body.to_owned(),
        created_at: now(),
        client_id: client_id.map(|c| ClientId::parse(c).expect("valid client id")),
    }
}

async fn append(store: &DynStore, batch: Vec<NewMessage>) -> Vec<Appended> {
    store.append_messages(&batch).await.expect("append")
}

async fn appended_messages_get_increasing_cursors_in_order(store: DynStore) {
    let kim = store
        .create_user(&name("kim"), "h", now())
        .await
        .expect("create");
    let first = append(
        &store,
        vec![
            new_message(&kim, "a", "one", None),
            new_message(&kim, "b", "two", None),
            new_message(&kim, "a", "three", Some("c3")),
        ],
    )
    .await;
    let second = append(&store, vec![new_message(&kim, "a", "four", None)]).await;
    let cursors: Vec<Cursor> = first
        .iter()
        .chain(&second)
        .map(|a| a.message().cursor)
        .collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    assert!(first
        .iter()
        .chain(&second)
        .all(|a| matches!(a, Appended::New(_))));

    let in_a = store
        .messages_after(&room("a"), None, 100)
        .await
        .expect("read");
    let bodies: Vec<&str> = in_a.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["one", "three", "four"]);
    assert_eq!(
        in_a[1],
        *first[2].message(),
        "what is read is what was stored"
    );
    assert_eq!(in_a[1].client_id.as_ref().map(ClientId::as_str), Some("c3"));
    assert_eq!(
        store.latest_cursor(&room("a")).await.expect("latest"),
        Some(in_a[2].cursor)
    );
    assert_eq!(
        store.latest_cursor(&room("empty")).await.expect("latest"),
        None
    );
    assert_eq!(
        store.message(in_a[0].id).await.expect("get"),
        Some(in_a[0].clone())
    );
}

async fn a_client_id_is_stored_once_per_author(store: DynStore) {
    let lee = store
        .create_user(&name("lee"), "h", now())
        .await
        .expect("create");
    let max = store
        .create_user(&name("max"), "h", now())
        .await
        .expect("create");
    let first = append(&store, vec![new_message(&lee, "r", "hello", Some("x1"))]).await;
    // Again, later, and twice in one batch: always the first message back.
    let again = append(
        &store,
        vec![
            new_message(&lee, "r", "hello (resent)", Some("x1")),
            new_message(&lee, "r", "new", Some("x2")),
            new_message(&lee, "r", "new (resent)", Some("x2")),
            // Another author may use the same client id.
            new_message(&max, "r", "mine", Some("x1")),
        ],
    )
    .await;
    assert_eq!(again[0], Appended::Duplicate(first[0].message().clone()));
    assert!(matches!(again[1], Appended::New(_)));
    assert_eq!(again[2], Appended::Duplicate(again[1].message().clone()));
    assert!(matches!(again[3], Appended::New(_)));
    let stored = store
        .messages_after(&room("r"), None, 100)
        .await
        .expect("read");
    let bodies: Vec<&str> = stored.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["hello", "new", "mine"]);
}

async fn history_pages_both_ways_around_a_cursor(store: DynStore) {
    let ned = store
        .create_user(&name("ned"), "h", now())
        .await
        .expect("create");
    let batch = (0..10)
        .map(|i| new_message(&ned, "p", &format!("m{i}"), None))
        .collect();
    let all: Vec<_> = append(&store, batch)
        .await
        .iter()
        .map(|a| a.message().clone())
        .collect();
    let r = room("p");
    let bodies =
        |ms: &[banter_core::Message]| ms.iter().map(|m| m.body.clone()).collect::<Vec<_>>();

    assert_eq!(
        bodies(&store.messages_before(&r, None, 3).await.expect("newest")),
        ["m7", "m8", "m9"]
    );
    let before = store
        .messages_before(&r, Some(all[7].cursor), 3)
        .await
        .expect("before");
    assert_eq!(bodies(&before), ["m4", "m5", "m6"]);
    let before = store
        .messages_before(&r, Some(all[1].cursor), 3)
        .await
        .expect("start");
    assert_eq!(bodies(&before), ["m0"]);
    let after = store
        .messages_after(&r, Some(all[6].cursor), 2)
        .await
        .expect("after");
    assert_eq!(bodies(&after), ["m7", "m8"]);
    let after = store
        .messages_after(&r, Some(all[9].cursor), 5)
        .await
        .expect("end");
    assert!(after.is_empty());
    // A cursor far in the future, or of another partition, is just a position.
    let far = Cursor::new(0, u64::MAX / 2);
    assert!(store
        .messages_after(&r, Some(far), 5)
        .await
        .expect("far")
        .is_empty());
    assert_eq!(
        store
            .messages_before(&r, Some(far), 1)
            .await
            .expect("far")
            .len(),
        1
    );
}

async fn deleted_messages_leave_history(store: DynStore) {
    let oli = store
        .create_user(&name("oli"), "h", now())
        .await
        .expect("create");
    let stored = append(
        &store,
        vec![
            new_message(&oli, "d", "keep", None),
            new_message(&oli, "d", "secret", Some("s1")),
        ],
    )
    .await;
    let gone = stored[1].message().clone();
    assert!(store.delete_message(gone.id, now()).await.expect("delete"));
    assert!(
        !store.delete_message(gone.id, now()).await.expect("again"),
        "already deleted"
    );
    assert!(!store
        .delete_message(Uuid::new_v4(), now())
        .await
        .expect("unknown"));
    assert_eq!(store.message(gone.id).await.expect("get"), None);
    let left = store
        .messages_after(&room("d"), None, 10)
        .await
        .expect("read");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].body, "keep");
    assert_eq!(
        store
            .messages_before(&room("d"), None, 10)
            .await
            .expect("read")
            .len(),
        1
    );
    // Its client id stays taken: a late re-send is still not a new message.
    let resent = append(&store, vec![new_message(&oli, "d", "secret", Some("s1"))]).await;
    assert!(matches!(resent[0], Appended::Duplicate(_)));
}

async fn rooms_are_listed_by_latest_activity(store: DynStore) {
    let pat = store
        .create_user(&name("pat"), "h", now())
        .await
        .expect("create");
    append(&store, vec![new_message(&pat, "old", "x", None)]).await;
    let mut late = new_message(&pat, "dm:pat:zoe", "y", None);
    late.created_at = now() + Duration::seconds(5);
    append(&store, vec![late]).await;
    let rooms = store.rooms(10).await.expect("rooms");
    let names: Vec<&str> = rooms.iter().map(|r| r.room.as_str()).collect();
    assert_eq!(names, ["dm:pat:zoe", "old"]);
    assert!(rooms[0].last_message_at > rooms[1].last_message_at);
}

async fn admin_rights_are_granted_and_revoked(store: DynStore) {
    let quinn = store
        .create_user(&name("Quinn"), "h", now())
        .await
        .expect("create");
    assert!(!store.is_admin(quinn.id).await.expect("is_admin"));
    assert!(store.set_admin("quinn", true).await.expect("grant"));
    assert!(store.is_admin(quinn.id).await.expect("is_admin"));
    assert!(store.set_admin("QUINN", false).await.expect("revoke"));
    assert!(!store.is_admin(quinn.id).await.expect("is_admin"));
    assert!(!store.set_admin("nobody", true).await.expect("unknown"));
    assert!(!store.is_admin(UserId(999_999)).await.expect("unknown id"));
}

async fn logged_messages_are_stored_once_whatever_is_redelivered(store: DynStore) {
    let rae = store
        .create_user(&name("rae"), "h", now())
        .await
        .expect("create");
    let logged =
        |room_name: &str, body: &str, client_id: Option<&str>, cursor: Cursor| LoggedMessage {
            message: new_message(&rae, room_name, body, client_id).at(cursor),
            author_id: rae.id,
        };
    let batch = vec![
        logged("k", "one", Some("k1"), Cursor::new(2, 10)),
        logged("k", "two", None, Cursor::new(2, 11)),
        logged("other", "three", None, Cursor::new(5, 3)),
    ];
    assert_eq!(store.insert_logged(&batch).await.expect("insert"), 3);
    // Redelivered: nothing new.
    assert_eq!(store.insert_logged(&batch).await.expect("again"), 0);
    // The same client id re-sent as another message, later in the log: nothing new.
    let resent = logged("k", "one (resent)", Some("k1"), Cursor::new(2, 12));
    assert_eq!(store.insert_logged(&[resent]).await.expect("resent"), 0);
    let in_k = store
        .messages_after(&room("k"), None, 10)
        .await
        .expect("read");
    let bodies: Vec<&str> = in_k.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["one", "two"]);
    assert_eq!(in_k[0], batch[0].message);
    // A different message at a place already taken is refused, not silently skipped.
    let clash = logged("k", "imposter", None, Cursor::new(2, 10));
    assert!(store.insert_logged(&[clash]).await.is_err());
    let after = store
        .messages_after(&room("k"), Some(Cursor::new(2, 10)), 10)
        .await
        .expect("read");
    assert_eq!(after.len(), 1);
    // Copies inside one batch: a record delivered twice, and a re-send of the same client
    // id later in the log. The first copy is stored, once.
    let first = logged("m", "first", Some("m1"), Cursor::new(3, 1));
    let twice = vec![
        first.clone(),
        first.clone(),
        logged("m", "first (resent)", Some("m1"), Cursor::new(3, 2)),
        logged("m", "next", Some("m2"), Cursor::new(3, 3)),
    ];
    assert_eq!(store.insert_logged(&twice).await.expect("copies"), 2);
    let in_m = store
        .messages_after(&room("m"), None, 10)
        .await
        .expect("read");
    let bodies: Vec<&str> = in_m.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["first", "next"]);
    assert_eq!(in_m[0], first.message);
}

/// Appends (which read before they write) beside other writers (logins storing refresh
/// tokens): none may fail with "database is locked"; they queue.
async fn writers_at_once_wait_for_each_other(store: DynStore) {
    let ada = store
        .create_user(&name("ada"), "h", now())
        .await
        .expect("create");
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (s, a) = (store.clone(), ada.clone());
        tasks.push(tokio::spawn(async move {
            let (store, ada) = (s, a);
            for i in 0..25 {
                let cid = format!("w{w}-{i}");
                store
                    .append_messages(&[new_message(&ada, "busy", "hi", Some(&cid))])
                    .await
                    .expect("an append beside other writers");
            }
        }));
        let (s, a) = (store.clone(), ada.clone());
        tasks.push(tokio::spawn(async move {
            let (store, ada) = (s, a);
            for i in 0..25 {
                let t = token(
                    ada.id,
                    Uuid::new_v4(),
                    &format!("s{w}-{i}"),
                    Duration::days(1),
                );
                store
                    .insert_refresh_token(&t)
                    .await
                    .expect("a token beside other writers");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let stored = store
        .messages_after(&room("busy"), None, 1000)
        .await
        .expect("read");
    assert_eq!(stored.len(), 100);
}
