//! One behaviour, two engines: every case here runs on SQLite and on PostgreSQL, each on a
//! database of its own that is dropped afterwards.

use std::future::Future;

use banter_core::{
    Appended, Change, ClientId, Cursor, Emoji, LoggedEvent, Message, NewChange, NewMessage,
    RoomEvent, RoomName, User, UserId, Username,
};
use banter_store::{now, DynStore, NewRefreshToken, Rotation, StoreError};
use banter_testkit::{Db, TestDb};

#[path = "conformance/admin.rs"]
mod admin;
#[path = "conformance/bots.rs"]
mod bots;
#[path = "conformance/push.rs"]
mod push;
#[path = "conformance/rooms.rs"]
mod rooms;
#[path = "conformance/search.rs"]
mod search;
#[path = "conformance/uploads.rs"]
mod uploads;
use admin::*;
use bots::*;
use chrono::Duration;
use push::*;
use rooms::*;
use search::*;
use uploads::*;
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
    the_first_account_is_an_admin_and_only_the_first,
    an_invite_admits_its_uses_until_it_expires_or_is_revoked,
    deactivation_ends_sessions_and_is_what_a_gateway_reads_at_start,
    accounts_are_found_by_any_part_of_their_name_in_pages,
    every_admin_action_is_in_the_audit_log_newest_first,
    a_deleted_rooms_messages_are_swept_in_batches_and_it_leaves_every_list,
    a_purge_counts_and_pages_a_persons_messages_in_a_time_range,
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
    admin_rights_are_granted_and_revoked,
    logged_messages_are_stored_once_whatever_is_redelivered,
    writers_at_once_wait_for_each_other,
    every_event_applied_twice_changes_nothing,
    an_older_reaction_event_applied_again_changes_nothing,
    edits_keep_every_earlier_body,
    reactions_are_sets_counted_from_their_rows,
    a_delete_erases_the_body_its_edits_and_its_reactions,
    replies_join_their_thread_and_are_counted,
    resume_reads_every_event_in_log_order,
    a_client_id_names_one_event_of_any_kind,
    a_private_room_has_the_members_its_owner_adds,
    public_rooms_are_joined_once_left_and_discovered,
    a_dm_has_its_two_users_from_its_creation,
    read_positions_only_move_forward,
    unread_and_mentions_are_exact_with_deletes_and_own_messages,
    room_changes_are_replayed_in_order_except_read_positions,
    room_changes_from_an_external_log_apply_once,
    every_membership_is_listed_however_many,
    a_member_mutes_and_unmutes_a_room_on_both_logs,
    push_subscriptions_are_kept_per_browser_newest_first,
    only_a_users_newest_push_subscriptions_are_kept,
    an_upload_is_recorded_and_counted_for_its_uploader,
    the_message_that_carries_an_upload_takes_it_and_shows_it,
    an_external_log_attaches_uploads_once,
    search_finds_words_prefixes_and_phrases_without_case_or_accents,
    any_text_is_a_query,
    search_looks_only_in_rooms_the_user_may_read,
    edits_and_deletes_are_what_is_found_on_serve,
    edits_and_deletes_are_what_is_found_from_an_external_log,
    search_pages_newest_first_with_no_overlap_and_no_gap,
    a_deleted_message_leaves_its_files_to_be_removed,
    a_bot_is_found_by_its_token_until_revoked,
    a_webhook_is_found_by_its_secret_until_revoked,
    a_bots_message_keeps_its_mark_on_both_logs,
    an_outgoing_webhook_is_listed_for_its_room_until_revoked,
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
        reply_to: None,
        thread_root: None,
        mentions: Vec::new(),
        attachments: Vec::new(),
        bot: None,
    }
}

async fn append(store: &DynStore, batch: Vec<NewMessage>) -> Vec<Appended> {
    let events: Vec<RoomEvent> = batch.into_iter().map(RoomEvent::Message).collect();
    store.append_events(&events).await.expect("append")
}

/// The message an append stored (or found stored).
fn msg(appended: &Appended) -> Message {
    match appended {
        Appended::New(logged) | Appended::Duplicate(logged) => {
            logged.message().expect("a message event")
        }
        other => panic!("not a message: {other:?}"),
    }
}

/// The messages among the events of `room` after `after`.
async fn messages_after(
    store: &DynStore,
    room_name: &RoomName,
    after: Option<Cursor>,
    limit: u32,
) -> Vec<Message> {
    store
        .events_after(room_name, after, limit)
        .await
        .expect("events after")
        .iter()
        .filter_map(LoggedEvent::message)
        .collect()
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
    let cursors: Vec<Cursor> = first.iter().chain(&second).map(|a| msg(a).cursor).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    assert!(first
        .iter()
        .chain(&second)
        .all(|a| matches!(a, Appended::New(_))));

    let in_a = messages_after(&store, &room("a"), None, 100).await;
    let bodies: Vec<&str> = in_a.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["one", "three", "four"]);
    assert_eq!(in_a[1], msg(&first[2]), "what is read is what was stored");
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
    assert!(matches!(again[0], Appended::Duplicate(_)));
    assert_eq!(msg(&again[0]), msg(&first[0]));
    assert!(matches!(again[1], Appended::New(_)));
    assert!(matches!(again[2], Appended::Duplicate(_)));
    assert_eq!(msg(&again[2]), msg(&again[1]));
    assert!(matches!(again[3], Appended::New(_)));
    let stored = messages_after(&store, &room("r"), None, 100).await;
    let bodies: Vec<&str> = stored.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["hello", "new", "mine"]);
    // Copies take no place in the log: the places stay consecutive, in this batch and after.
    let place = |a: &Appended| match a {
        Appended::New(l) => l.cursor,
        other => panic!("{other:?}"),
    };
    let next = append(&store, vec![new_message(&max, "r", "after", None)]).await;
    let seqs: Vec<u64> = [&first[0], &again[1], &again[3], &next[0]]
        .into_iter()
        .map(|a| place(a).offset)
        .collect();
    assert_eq!(seqs, (seqs[0]..seqs[0] + 4).collect::<Vec<_>>());
}

async fn history_pages_both_ways_around_a_cursor(store: DynStore) {
    let ned = store
        .create_user(&name("ned"), "h", now())
        .await
        .expect("create");
    let batch = (0..10)
        .map(|i| new_message(&ned, "p", &format!("m{i}"), None))
        .collect();
    let all: Vec<_> = append(&store, batch).await.iter().map(msg).collect();
    let r = room("p");
    let bodies =
        |ms: &[banter_core::StoredMessage]| ms.iter().map(|m| m.body.clone()).collect::<Vec<_>>();
    let message_bodies = |ms: &[Message]| ms.iter().map(|m| m.body.clone()).collect::<Vec<_>>();

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
    let after = messages_after(&store, &r, Some(all[6].cursor), 2).await;
    assert_eq!(message_bodies(&after), ["m7", "m8"]);
    let after = messages_after(&store, &r, Some(all[9].cursor), 5).await;
    assert!(after.is_empty());
    // A cursor far in the future, or of another partition, is just a position.
    let far = Cursor::new(0, u64::MAX / 2);
    assert!(messages_after(&store, &r, Some(far), 5).await.is_empty());
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
    let gone = msg(&stored[1]);
    let delete = |id: Uuid| change(&oli, &gone.room, id, None, Change::Delete);
    let done = store
        .append_events(&[delete(gone.id), delete(gone.id), delete(Uuid::new_v4())])
        .await
        .expect("delete");
    assert!(matches!(done[0], Appended::New(_)), "{done:?}");
    assert_eq!(done[1], Appended::Missing, "already deleted");
    assert_eq!(done[2], Appended::Missing, "unknown");
    assert_eq!(store.message(gone.id).await.expect("get"), None);
    let left = messages_after(&store, &room("d"), None, 10).await;
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

async fn admin_rights_are_granted_and_revoked(store: DynStore) {
    // The first account is an admin (see admin.rs); Quinn comes second.
    store
        .create_user(&name("first"), "h", now())
        .await
        .expect("create");
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
    let logged = |room_name: &str, body: &str, client_id: Option<&str>, cursor: Cursor| {
        RoomEvent::Message(new_message(&rae, room_name, body, client_id)).at_cursor(cursor)
    };
    let batch = vec![
        logged("k", "one", Some("k1"), Cursor::new(2, 10)),
        logged("k", "two", None, Cursor::new(2, 11)),
        logged("other", "three", None, Cursor::new(5, 3)),
    ];
    assert_eq!(store.apply_logged(&batch).await.expect("insert"), 3);
    // Redelivered: nothing new.
    assert_eq!(store.apply_logged(&batch).await.expect("again"), 0);
    // The same client id re-sent as another message, later in the log: nothing new.
    let resent = logged("k", "one (resent)", Some("k1"), Cursor::new(2, 12));
    assert_eq!(store.apply_logged(&[resent]).await.expect("resent"), 0);
    let in_k = messages_after(&store, &room("k"), None, 10).await;
    let bodies: Vec<&str> = in_k.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["one", "two"]);
    assert_eq!(Some(in_k[0].clone()), batch[0].message());
    // A different message at a place already taken is refused, not silently skipped.
    let clash = logged("k", "imposter", None, Cursor::new(2, 10));
    assert!(store.apply_logged(&[clash]).await.is_err());
    let after = messages_after(&store, &room("k"), Some(Cursor::new(2, 10)), 10).await;
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
    assert_eq!(store.apply_logged(&twice).await.expect("copies"), 2);
    let in_m = messages_after(&store, &room("m"), None, 10).await;
    let bodies: Vec<&str> = in_m.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["first", "next"]);
    assert_eq!(Some(in_m[0].clone()), first.message());
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
                    .append_events(&[RoomEvent::Message(new_message(
                        &ada,
                        "busy",
                        "hi",
                        Some(&cid),
                    ))])
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
    let stored = messages_after(&store, &room("busy"), None, 1000).await;
    assert_eq!(stored.len(), 100);
}

async fn user(store: &DynStore, username: &str) -> User {
    store
        .create_user(&name(username), "h", now())
        .await
        .expect("create")
}

fn change(
    who: &User,
    in_room: &RoomName,
    message: Uuid,
    client_id: Option<&str>,
    what: Change,
) -> RoomEvent {
    RoomEvent::Change(NewChange {
        id: Uuid::now_v7(),
        room: in_room.clone(),
        message,
        user_id: who.id,
        user: who.username.clone(),
        at: now(),
        client_id: client_id.map(|c| ClientId::parse(c).expect("client id")),
        change: what,
    })
}

fn emoji(e: &str) -> Emoji {
    Emoji::parse(e).expect("emoji")
}

fn edit(body: &str) -> Change {
    Change::Edit { body: body.into() }
}

/// Everything a reader can get of a room: its history and its replay.
async fn state_of(
    store: &DynStore,
    r: &RoomName,
) -> (Vec<banter_core::StoredMessage>, Vec<LoggedEvent>) {
    (
        store.messages_before(r, None, 100).await.expect("history"),
        store.events_after(r, None, 100).await.expect("replay"),
    )
}

async fn every_event_applied_twice_changes_nothing(store: DynStore) {
    let (sam, tom) = (user(&store, "sam").await, user(&store, "tom").await);
    let r = room("twice");
    let (one, two) = (
        new_message(&sam, "twice", "one", Some("s1")),
        new_message(&sam, "twice", "two", None),
    );
    let mut reply = new_message(&tom, "twice", "re", None);
    reply.reply_to = Some(one.id);
    reply.thread_root = Some(one.id);
    let events = [
        RoomEvent::Message(one.clone()),
        RoomEvent::Message(two.clone()),
        change(&sam, &r, one.id, Some("s2"), edit("one, edited")),
        change(
            &tom,
            &r,
            one.id,
            None,
            Change::React {
                emoji: emoji("👍")
            },
        ),
        change(
            &sam,
            &r,
            one.id,
            None,
            Change::React {
                emoji: emoji("👍")
            },
        ),
        change(
            &tom,
            &r,
            one.id,
            None,
            Change::Unreact {
                emoji: emoji("👍")
            },
        ),
        RoomEvent::Message(reply),
        change(
            &tom,
            &r,
            two.id,
            None,
            Change::React {
                emoji: emoji("🎉")
            },
        ),
        change(&sam, &r, two.id, None, Change::Delete),
    ];
    let logged: Vec<LoggedEvent> = events
        .iter()
        .enumerate()
        .map(|(i, e)| e.clone().at_cursor(Cursor::new(4, 100 + i as u64)))
        .collect();
    assert_eq!(store.apply_logged(&logged).await.expect("apply"), 9);
    let once = state_of(&store, &r).await;
    // All again, then each alone, then the second half: nothing changes any more.
    assert_eq!(store.apply_logged(&logged).await.expect("again"), 0);
    for event in &logged {
        assert_eq!(
            store
                .apply_logged(std::slice::from_ref(event))
                .await
                .expect("one"),
            0,
            "{event:?}"
        );
    }
    assert_eq!(store.apply_logged(&logged[4..]).await.expect("tail"), 0);
    assert_eq!(state_of(&store, &r).await, once);

    let (history, replay) = once;
    let bodies: Vec<&str> = history.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["one, edited", "re"], "two was deleted");
    assert!(history[0].edited_at.is_some());
    assert_eq!(history[0].reactions.len(), 1);
    assert_eq!(history[0].reactions[0].count, 1);
    assert_eq!(history[0].reactions[0].users, [name("sam")]);
    assert_eq!(history[0].reply_count, 1);
    assert_eq!(history[1].reply_to, Some(one.id));
    // The replay: one, edit, three reaction changes, the reply, the delete (two and its
    // reaction are gone with it).
    let kinds: Vec<&str> = replay.iter().map(|e| e.event.kind()).collect();
    assert_eq!(
        kinds,
        ["message", "edit", "react", "react", "unreact", "message", "delete"]
    );
}

async fn an_older_reaction_event_applied_again_changes_nothing(store: DynStore) {
    let uma = user(&store, "uma").await;
    let r = room("late");
    let m = new_message(&uma, "late", "hi", None);
    let react = change(
        &uma,
        &r,
        m.id,
        None,
        Change::React {
            emoji: emoji("👀")
        },
    );
    let unreact = change(
        &uma,
        &r,
        m.id,
        None,
        Change::Unreact {
            emoji: emoji("👀")
        },
    );
    // A react that changed nothing (already there) is not recorded; applied again after the
    // reaction was removed, it must still change nothing.
    let noop = change(
        &uma,
        &r,
        m.id,
        None,
        Change::React {
            emoji: emoji("👀")
        },
    );
    let logged = [
        RoomEvent::Message(m.clone()).at_cursor(Cursor::new(1, 1)),
        react.at_cursor(Cursor::new(1, 2)),
        noop.at_cursor(Cursor::new(1, 3)),
        unreact.at_cursor(Cursor::new(1, 4)),
    ];
    assert_eq!(store.apply_logged(&logged).await.expect("apply"), 3);
    // The no-op is kept as the log has it, and left out of a resume.
    let replay = store.events_after(&r, None, 10).await.expect("replay");
    let cursors: Vec<u64> = replay.iter().map(|e| e.cursor.offset).collect();
    assert_eq!(cursors, [1, 2, 4]);
    assert_eq!(
        store.latest_cursor(&r).await.expect("latest"),
        Some(Cursor::new(1, 4))
    );
    for again in [&logged[1], &logged[2]] {
        assert_eq!(
            store
                .apply_logged(std::slice::from_ref(again))
                .await
                .expect("again"),
            0
        );
        assert!(!store
            .has_reaction(m.id, uma.id, &emoji("👀"))
            .await
            .expect("has"));
    }
}

async fn edits_keep_every_earlier_body(store: DynStore) {
    let (vic, wes) = (user(&store, "vic").await, user(&store, "wes").await);
    let r = room("e");
    let m = msg(&append(&store, vec![new_message(&vic, "e", "first", None)]).await[0]);
    let done = store
        .append_events(&[
            change(&vic, &r, m.id, None, edit("second")),
            change(&vic, &r, m.id, None, edit("third")),
            // Only the author edits: the projection refuses anyone else's.
            change(&wes, &r, m.id, None, edit("hijacked")),
            // In another room the message "is not there".
            change(&vic, &room("elsewhere"), m.id, None, edit("moved")),
        ])
        .await
        .expect("edit");
    assert!(matches!(done[0], Appended::New(_)));
    assert!(matches!(done[1], Appended::New(_)));
    assert_eq!(done[2], Appended::Missing);
    assert_eq!(done[3], Appended::Missing);
    let now_stored = store
        .stored_message(m.id)
        .await
        .expect("get")
        .expect("there");
    assert_eq!(now_stored.body, "third");
    let Appended::New(second_edit) = &done[1] else {
        unreachable!()
    };
    assert_eq!(now_stored.edited_at, Some(second_edit.event.at()));
    let earlier = store.earlier_bodies(m.id).await.expect("edits");
    let bodies: Vec<&str> = earlier.iter().map(|e| e.body.as_str()).collect();
    assert_eq!(bodies, ["first", "second"]);
    assert_eq!(earlier[0].created_at, m.created_at);
    assert_eq!(earlier[1].created_at, earlier[0].replaced_at);
    assert!(store
        .earlier_bodies(Uuid::new_v4())
        .await
        .expect("none")
        .is_empty());
}

async fn reactions_are_sets_counted_from_their_rows(store: DynStore) {
    let people: Vec<User> = {
        let mut v = Vec::new();
        for i in 0..23 {
            v.push(user(&store, &format!("fan{i:02}")).await);
        }
        v
    };
    let r = room("x");
    let m = msg(&append(&store, vec![new_message(&people[0], "x", "vote", None)]).await[0]);
    let like = |who: &User| {
        change(
            who,
            &r,
            m.id,
            None,
            Change::React {
                emoji: emoji("👍")
            },
        )
    };
    let first = store
        .append_events(&[like(&people[0])])
        .await
        .expect("react");
    assert!(matches!(first[0], Appended::New(_)));
    // Twice is one reaction: the second takes no place in the log.
    let again = store
        .append_events(&[like(&people[0])])
        .await
        .expect("again");
    assert_eq!(
        again[0],
        Appended::Unchanged {
            message: m.id,
            cursor: m.cursor
        }
    );
    // Removing one that is not there changes nothing either.
    let absent = change(
        &people[1],
        &r,
        m.id,
        None,
        Change::Unreact {
            emoji: emoji("👍")
        },
    );
    assert!(matches!(
        store.append_events(&[absent]).await.expect("unreact")[0],
        Appended::Unchanged { .. }
    ));
    let likes: Vec<RoomEvent> = people[1..].iter().map(like).collect();
    store.append_events(&likes).await.expect("many");
    let party = change(
        &people[3],
        &r,
        m.id,
        None,
        Change::React {
            emoji: emoji("🎉")
        },
    );
    store.append_events(&[party]).await.expect("party");
    let history = store.messages_before(&r, None, 10).await.expect("history");
    let reactions = &history[0].reactions;
    assert_eq!(reactions.len(), 2);
    assert_eq!(reactions[0].emoji, emoji("👍"));
    assert_eq!(reactions[0].count, 23);
    assert_eq!(reactions[0].users.len(), 20, "at most 20 names");
    assert_eq!(
        reactions[0].users[0], people[0].username,
        "in the order they reacted"
    );
    assert_eq!((reactions[1].emoji.as_str(), reactions[1].count), ("🎉", 1));
    let off = change(
        &people[0],
        &r,
        m.id,
        None,
        Change::Unreact {
            emoji: emoji("👍")
        },
    );
    store.append_events(&[off]).await.expect("off");
    assert!(!store
        .has_reaction(m.id, people[0].id, &emoji("👍"))
        .await
        .expect("has"));
    let history = store.messages_before(&r, None, 10).await.expect("history");
    assert_eq!(history[0].reactions[0].count, 22);
}

async fn a_delete_erases_the_body_its_edits_and_its_reactions(store: DynStore) {
    let yan = user(&store, "yan").await;
    let r = room("gone");
    let m = msg(&append(&store, vec![new_message(&yan, "gone", "secret", None)]).await[0]);
    store
        .append_events(&[
            change(&yan, &r, m.id, None, edit("secret 2")),
            change(
                &yan,
                &r,
                m.id,
                None,
                Change::React {
                    emoji: emoji("🙈")
                },
            ),
        ])
        .await
        .expect("changes");
    let deleted = store
        .append_events(&[change(&yan, &r, m.id, None, Change::Delete)])
        .await
        .expect("delete");
    let Appended::New(delete) = &deleted[0] else {
        panic!("{deleted:?}")
    };
    assert_eq!(store.message(m.id).await.expect("get"), None);
    assert!(store
        .messages_before(&r, None, 10)
        .await
        .expect("h")
        .is_empty());
    assert!(!store
        .has_reaction(m.id, yan.id, &emoji("🙈"))
        .await
        .expect("has"));
    assert!(store.earlier_bodies(m.id).await.expect("edits").is_empty());
    // A resume from before it all gets the delete alone: nothing of what was said.
    let replay = store.events_after(&r, None, 10).await.expect("replay");
    assert_eq!(replay, std::slice::from_ref(delete));
    // Anything after the delete finds nothing to change.
    let late = store
        .append_events(&[
            change(&yan, &r, m.id, None, edit("back")),
            change(
                &yan,
                &r,
                m.id,
                None,
                Change::React {
                    emoji: emoji("🙈")
                },
            ),
        ])
        .await
        .expect("late");
    assert_eq!(late, [Appended::Missing, Appended::Missing]);
    assert_eq!(
        store.latest_cursor(&r).await.expect("latest"),
        Some(delete.cursor)
    );
}

async fn replies_join_their_thread_and_are_counted(store: DynStore) {
    let zed = user(&store, "zed").await;
    let r = room("t");
    let root = msg(&append(&store, vec![new_message(&zed, "t", "root", None)]).await[0]);
    let reply = |body: &str, to: Uuid| {
        let mut m = new_message(&zed, "t", body, None);
        m.reply_to = Some(to);
        m.thread_root = Some(root.id);
        m
    };
    let first = msg(&append(&store, vec![reply("r1", root.id)]).await[0]);
    let second = msg(&append(&store, vec![reply("r2", first.id)]).await[0]);
    append(&store, vec![reply("r3", root.id)]).await;
    let page = store.replies(root.id, None, 2).await.expect("replies");
    let bodies: Vec<&str> = page.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["r2", "r3"], "the newest page, oldest first");
    assert_eq!(page[0].reply_to, Some(first.id));
    assert_eq!(page[0].thread_root, Some(root.id));
    let older = store
        .replies(root.id, Some(second.cursor), 10)
        .await
        .expect("older");
    assert_eq!(older.len(), 1);
    let stored_root = store
        .stored_message(root.id)
        .await
        .expect("get")
        .expect("root");
    assert_eq!(stored_root.reply_count, 3);
    // A deleted reply is not counted.
    store
        .append_events(&[change(&zed, &r, second.id, None, Change::Delete)])
        .await
        .expect("delete");
    let history = store.messages_before(&r, None, 10).await.expect("history");
    assert_eq!(history[0].reply_count, 2);
    assert_eq!(history.len(), 3, "replies are in the room's history too");
}

async fn resume_reads_every_event_in_log_order(store: DynStore) {
    let ann = user(&store, "ann").await;
    let r = room("order");
    let mut cursors = Vec::new();
    let mut ids = Vec::new();
    for i in 0..6 {
        let m = msg(&append(
            &store,
            vec![new_message(&ann, "order", &format!("m{i}"), None)],
        )
        .await[0]);
        ids.push(m.id);
        cursors.push(m.cursor);
        let done = store
            .append_events(&[change(&ann, &r, m.id, None, edit(&format!("m{i}!")))])
            .await
            .expect("edit");
        let Appended::New(e) = &done[0] else {
            panic!("{done:?}")
        };
        cursors.push(e.cursor);
    }
    // Pages of 4 from the start, and from a cursor in the middle: every event once, in order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.events_after(&r, after, 4).await.expect("page");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|e| e.cursor);
        seen.extend(page.iter().map(|e| e.cursor));
    }
    assert_eq!(seen, cursors);
    let tail = store
        .events_after(&r, Some(cursors[5]), 100)
        .await
        .expect("tail");
    assert_eq!(tail.len(), 6);
    // A message's body in a replay is its latest; its edits follow it.
    assert_eq!(tail[0].message().expect("message").body, "m3!");
    assert_eq!(
        store.latest_cursor(&r).await.expect("latest"),
        cursors.last().copied()
    );
}

async fn a_client_id_names_one_event_of_any_kind(store: DynStore) {
    let bea = user(&store, "bea").await;
    let r = room("cid");
    let m = msg(&append(&store, vec![new_message(&bea, "cid", "hi", Some("c1"))]).await[0]);
    let done = store
        .append_events(&[
            change(&bea, &r, m.id, Some("c2"), edit("hi!")),
            // A re-sent edit with the same client id: the first comes back, nothing changes.
            change(&bea, &r, m.id, Some("c2"), edit("hi!!")),
        ])
        .await
        .expect("edits");
    let Appended::New(first) = &done[0] else {
        panic!("{done:?}")
    };
    assert_eq!(done[1], Appended::Duplicate(first.clone()));
    assert_eq!(
        store.message(m.id).await.expect("get").expect("m").body,
        "hi!"
    );
    let c2 = ClientId::parse("c2").expect("cid");
    assert_eq!(
        store.first_copy(bea.id, &c2).await.expect("find"),
        Some(first.clone())
    );
    let c1 = ClientId::parse("c1").expect("cid");
    assert_eq!(
        store
            .first_copy(bea.id, &c1)
            .await
            .expect("find")
            .and_then(|e| e.message())
            .map(|m| m.id),
        Some(m.id)
    );
    // On the external log a copy of the edit under another id is skipped too.
    let copy = change(&bea, &r, m.id, Some("c2"), edit("hi!!!")).at_cursor(Cursor::new(0, 999));
    assert_eq!(store.apply_logged(&[copy]).await.expect("copy"), 0);
    assert_eq!(
        store.message(m.id).await.expect("get").expect("m").body,
        "hi!"
    );
}
