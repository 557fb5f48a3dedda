//! Rooms, memberships, read positions, unread messages and mentions: the projection of room
//! changes, the same on both engines.

use banter_core::{
    Appended, Change, ClientId, Cursor, LoggedEvent, NewMessage, NewRoomChange, Role, RoomChange,
    RoomEvent, RoomKind, Topic, User, UserRef, Username, UNREAD_CAP,
};
use banter_store::{now, DynStore};
use uuid::Uuid;

use super::{change, new_message, room, user};

pub fn me(u: &User) -> UserRef {
    UserRef {
        id: u.id,
        name: u.username.clone(),
    }
}

pub fn room_change(by: &User, in_room: &str, what: RoomChange) -> RoomEvent {
    RoomEvent::Room(NewRoomChange {
        id: Uuid::now_v7(),
        room: room(in_room),
        user_id: by.id,
        user: by.username.clone(),
        at: now(),
        client_id: None,
        change: what,
    })
}

fn created(by: &User, in_room: &str, kind: RoomKind) -> RoomEvent {
    room_change(
        by,
        in_room,
        RoomChange::Created {
            kind,
            topic: Topic::parse("about things").expect("topic"),
            members: vec![me(by)],
        },
    )
}

async fn append(store: &DynStore, events: Vec<RoomEvent>) -> Vec<Appended> {
    store.append_events(&events).await.expect("append")
}

fn is_new(a: &Appended) -> bool {
    matches!(a, Appended::New(_))
}

fn cursor_of(a: &Appended) -> Cursor {
    match a {
        Appended::New(l) | Appended::Duplicate(l) => l.cursor,
        other => panic!("not logged: {other:?}"),
    }
}

fn mentioning(author: &User, in_room: &str, body: &str, names: &[&str]) -> RoomEvent {
    RoomEvent::Message(NewMessage {
        mentions: names
            .iter()
            .map(|n| Username::parse(n).expect("name"))
            .collect(),
        ..new_message(author, in_room, body, None)
    })
}

async fn present(store: &DynStore, r: &str) -> Vec<String> {
    store
        .room_members(&room(r))
        .await
        .expect("members")
        .into_iter()
        .filter(|(_, m, _)| m.present)
        .map(|(_, m, _)| m.user.as_str().to_owned())
        .collect()
}

pub async fn a_private_room_has_the_members_its_owner_adds(store: DynStore) {
    let (ann, ben, cal) = (
        user(&store, "ann").await,
        user(&store, "ben").await,
        user(&store, "cal").await,
    );
    let done = append(&store, vec![created(&ann, "plans", RoomKind::Private)]).await;
    assert!(is_new(&done[0]));
    let (info, _) = store
        .room(&room("plans"))
        .await
        .expect("room")
        .expect("exists");
    assert_eq!(info.kind, RoomKind::Private);
    assert_eq!(info.owner.as_ref().map(|o| o.id), Some(ann.id));
    assert_eq!(info.topic.as_str(), "about things");
    // Joining a private room, or creating it again, changes nothing and takes no place.
    let refused = append(
        &store,
        vec![
            room_change(&cal, "plans", RoomChange::Joined),
            created(&cal, "plans", RoomKind::Private),
        ],
    )
    .await;
    assert!(
        refused
            .iter()
            .all(|a| matches!(a, Appended::Unchanged { .. })),
        "{refused:?}"
    );
    assert_eq!(present(&store, "plans").await, ["ann"]);

    let added = append(
        &store,
        vec![room_change(
            &ann,
            "plans",
            RoomChange::Added { member: me(&ben) },
        )],
    )
    .await;
    assert!(is_new(&added[0]));
    assert_eq!(present(&store, "plans").await, ["ann", "ben"]);
    let listed = store.memberships(ben.id).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].room.as_str(), "plans");
    assert_eq!(
        (listed[0].kind, listed[0].role),
        (RoomKind::Private, Role::Member)
    );
    assert_eq!(listed[0].owner.as_ref().map(Username::as_str), Some("ann"));
    assert!(store.memberships(cal.id).await.expect("list").is_empty());

    append(
        &store,
        vec![room_change(
            &ann,
            "plans",
            RoomChange::Removed { member: me(&ben) },
        )],
    )
    .await;
    assert_eq!(present(&store, "plans").await, ["ann"]);
    assert!(store.memberships(ben.id).await.expect("list").is_empty());
    // A former member keeps a row, not present; the public list never shows private rooms.
    assert_eq!(
        store
            .room_members(&room("plans"))
            .await
            .expect("rows")
            .len(),
        2
    );
    assert!(store
        .public_rooms(cal.id, 10)
        .await
        .expect("public")
        .is_empty());
}

pub async fn public_rooms_are_joined_once_left_and_discovered(store: DynStore) {
    let (dee, eli, fay) = (
        user(&store, "dee").await,
        user(&store, "eli").await,
        user(&store, "fay").await,
    );
    // Two creations of one public room (two gateways at once): the second is a join.
    let done = append(
        &store,
        vec![
            created(&dee, "lobby", RoomKind::Public),
            created(&eli, "lobby", RoomKind::Public),
            room_change(&eli, "lobby", RoomChange::Joined),
        ],
    )
    .await;
    assert!(is_new(&done[0]) && is_new(&done[1]), "{done:?}");
    assert!(
        matches!(done[2], Appended::Unchanged { .. }),
        "already in: {done:?}"
    );
    let (info, _) = store
        .room(&room("lobby"))
        .await
        .expect("room")
        .expect("exists");
    assert_eq!(
        info.owner.map(|o| o.id),
        Some(dee.id),
        "the first creation wins"
    );
    assert_eq!(present(&store, "lobby").await, ["dee", "eli"]);

    let public = store.public_rooms(fay.id, 10).await.expect("public");
    assert_eq!(public.len(), 1);
    assert_eq!((public[0].members, public[0].joined), (2, false));
    assert!(store.public_rooms(eli.id, 10).await.expect("public")[0].joined);

    append(&store, vec![room_change(&eli, "lobby", RoomChange::Left)]).await;
    assert_eq!(present(&store, "lobby").await, ["dee"]);
    assert!(store.memberships(eli.id).await.expect("list").is_empty());
    append(&store, vec![room_change(&eli, "lobby", RoomChange::Joined)]).await;
    assert_eq!(present(&store, "lobby").await, ["dee", "eli"]);
}

pub async fn a_dm_has_its_two_users_from_its_creation(store: DynStore) {
    let (gus, hal) = (user(&store, "gus").await, user(&store, "hal").await);
    let done = append(
        &store,
        vec![room_change(
            &gus,
            "dm:gus:hal",
            RoomChange::Created {
                kind: RoomKind::Dm,
                topic: Topic::default(),
                members: vec![me(&gus), me(&hal)],
            },
        )],
    )
    .await;
    assert!(is_new(&done[0]));
    assert_eq!(present(&store, "dm:gus:hal").await, ["gus", "hal"]);
    let listed = store.memberships(hal.id).await.expect("list");
    assert_eq!(
        (listed[0].kind, listed[0].owner.clone()),
        (RoomKind::Dm, None)
    );
    // Nobody leaves a DM.
    let left = append(
        &store,
        vec![room_change(&hal, "dm:gus:hal", RoomChange::Left)],
    )
    .await;
    assert!(matches!(left[0], Appended::Unchanged { .. }));
}

/// Muting is a member's own setting, through the log: applied once, kept through leaving
/// and joining again, the same from an external log.
pub async fn a_member_mutes_and_unmutes_a_room_on_both_logs(store: DynStore) {
    let (ida, jon) = (user(&store, "ida").await, user(&store, "jon").await);
    append(&store, vec![created(&ida, "news", RoomKind::Public)]).await;
    append(&store, vec![room_change(&jon, "news", RoomChange::Joined)]).await;
    let muted = |on: bool| room_change(&jon, "news", RoomChange::Muted { muted: on });
    let is_muted = |who: banter_core::UserId| {
        let store = store.clone();
        async move {
            store
                .membership(who, &room("news"))
                .await
                .expect("entry")
                .expect("a member")
                .muted
        }
    };
    assert!(!is_muted(jon.id).await);
    let done = append(&store, vec![muted(true), muted(true)]).await;
    assert!(is_new(&done[0]));
    assert!(matches!(done[1], Appended::Unchanged { .. }), "{done:?}");
    assert!(is_muted(jon.id).await);
    assert!(!is_muted(ida.id).await, "hers is her own");
    let listed = store.memberships(jon.id).await.expect("list");
    assert!(listed.iter().any(|e| e.room.as_str() == "news" && e.muted));
    append(&store, vec![room_change(&jon, "news", RoomChange::Left)]).await;
    append(&store, vec![room_change(&jon, "news", RoomChange::Joined)]).await;
    assert!(
        is_muted(jon.id).await,
        "still muted after leaving and joining"
    );
    // From an external log: the same projection, applied once.
    let kafka = LoggedEvent {
        cursor: Cursor::new(7, 1),
        event: muted(false),
    };
    assert_eq!(
        store
            .apply_logged(std::slice::from_ref(&kafka))
            .await
            .expect("apply"),
        1
    );
    assert_eq!(store.apply_logged(&[kafka]).await.expect("again"), 0);
    assert!(!is_muted(jon.id).await);
}

pub async fn read_positions_only_move_forward(store: DynStore) {
    let (ida, jon) = (user(&store, "ida").await, user(&store, "jon").await);
    append(&store, vec![created(&ida, "news", RoomKind::Public)]).await;
    append(&store, vec![room_change(&jon, "news", RoomChange::Joined)]).await;
    let sent: Vec<Appended> = store
        .append_events(
            &(0..3)
                .map(|i| RoomEvent::Message(new_message(&ida, "news", &format!("m{i}"), None)))
                .collect::<Vec<_>>(),
        )
        .await
        .expect("send");
    let at = |i: usize| cursor_of(&sent[i]);
    let read = |c| room_change(&jon, "news", RoomChange::Read { cursor: c });
    let moved = append(&store, vec![read(at(1)), read(at(0)), read(at(1))]).await;
    assert!(is_new(&moved[0]));
    assert!(
        moved[1..]
            .iter()
            .all(|a| matches!(a, Appended::Unchanged { .. })),
        "{moved:?}"
    );
    let entry = store
        .membership(jon.id, &room("news"))
        .await
        .expect("entry")
        .expect("a member");
    assert_eq!(entry.read_cursor, Some(at(1)));
    assert_eq!(entry.unread, 1);
    // A non-member's read position is nothing.
    let kit = user(&store, "kit").await;
    let stray = append(
        &store,
        vec![room_change(
            &kit,
            "news",
            RoomChange::Read { cursor: at(2) },
        )],
    )
    .await;
    assert!(matches!(stray[0], Appended::Unchanged { .. }));
    assert!(store
        .membership(kit.id, &room("news"))
        .await
        .expect("entry")
        .is_none());
}

pub async fn unread_and_mentions_are_exact_with_deletes_and_own_messages(store: DynStore) {
    let (lea, max) = (user(&store, "lea").await, user(&store, "max").await);
    append(&store, vec![created(&lea, "team", RoomKind::Private)]).await;
    append(
        &store,
        vec![room_change(
            &lea,
            "team",
            RoomChange::Added { member: me(&max) },
        )],
    )
    .await;
    let sent = append(
        &store,
        vec![
            RoomEvent::Message(new_message(&lea, "team", "one", None)),
            mentioning(&lea, "team", "@max look", &["max"]),
            mentioning(&lea, "team", "@MAX again", &["max"]),
            RoomEvent::Message(new_message(&max, "team", "mine", None)),
        ],
    )
    .await;
    let entry = |s: DynStore| async move {
        s.membership(max.id, &room("team"))
            .await
            .expect("entry")
            .expect("member")
    };
    let got = entry(store.clone()).await;
    assert_eq!(
        (got.unread, got.mentions),
        (3, 2),
        "own messages are not unread"
    );
    assert!(got.last_message_at.is_some());
    // The author's own view: max's message is unread for lea; she is mentioned nowhere.
    let hers = store
        .membership(lea.id, &room("team"))
        .await
        .expect("e")
        .expect("m");
    assert_eq!((hers.unread, hers.mentions), (1, 0));
    // History shows who a message mentions.
    let history = store
        .messages_before(&room("team"), None, 10)
        .await
        .expect("history");
    assert_eq!(history[1].mentions, [Username::parse("max").expect("name")]);

    let mention = match &sent[1] {
        Appended::New(l) => l.event.id(),
        other => panic!("{other:?}"),
    };
    append(
        &store,
        vec![change(&lea, &room("team"), mention, None, Change::Delete)],
    )
    .await;
    let got = entry(store.clone()).await;
    assert_eq!(
        (got.unread, got.mentions),
        (2, 1),
        "a deleted message is not unread"
    );
    append(
        &store,
        vec![room_change(
            &max,
            "team",
            RoomChange::Read {
                cursor: cursor_of(&sent[2]),
            },
        )],
    )
    .await;
    let got = entry(store.clone()).await;
    assert_eq!((got.unread, got.mentions), (0, 0));

    // Counts stop at the cap.
    let many: Vec<RoomEvent> = (0..UNREAD_CAP + 20)
        .map(|i| mentioning(&lea, "team", &format!("@max {i}"), &["max"]))
        .collect();
    store.append_events(&many).await.expect("many");
    let got = entry(store.clone()).await;
    assert_eq!((got.unread, got.mentions), (UNREAD_CAP, UNREAD_CAP));
}

pub async fn room_changes_are_replayed_in_order_except_read_positions(store: DynStore) {
    let (ned, ola) = (user(&store, "ned").await, user(&store, "ola").await);
    let done = append(
        &store,
        vec![
            created(&ned, "ops", RoomKind::Private),
            room_change(&ned, "ops", RoomChange::Added { member: me(&ola) }),
            RoomEvent::Message(new_message(&ned, "ops", "hi", None)),
            room_change(
                &ola,
                "ops",
                RoomChange::Read {
                    cursor: Cursor::new(0, 1),
                },
            ),
            room_change(&ola, "ops", RoomChange::Muted { muted: true }),
            room_change(
                &ned,
                "ops",
                RoomChange::Topic {
                    topic: Topic::parse("incidents").expect("topic"),
                },
            ),
            room_change(&ned, "ops", RoomChange::Removed { member: me(&ola) }),
        ],
    )
    .await;
    assert!(done.iter().all(is_new), "{done:?}");
    let replay = store
        .events_after(&room("ops"), None, 100)
        .await
        .expect("replay");
    let kinds: Vec<&str> = replay.iter().map(|e| e.event.kind()).collect();
    assert_eq!(kinds, ["created", "added", "message", "topic", "removed"]);
    let original: Vec<&LoggedEvent> = done
        .iter()
        .filter_map(|a| match a {
            Appended::New(l) => Some(l),
            _ => None,
        })
        .filter(|l| {
            !matches!(&l.event, RoomEvent::Room(r)
                if matches!(r.change, RoomChange::Read { .. } | RoomChange::Muted { .. }))
        })
        .collect();
    assert_eq!(
        replay.iter().collect::<Vec<_>>(),
        original,
        "as they were logged"
    );
    let (info, _) = store
        .room(&room("ops"))
        .await
        .expect("room")
        .expect("exists");
    assert_eq!(info.topic.as_str(), "incidents");
    assert_eq!(
        store.latest_cursor(&room("ops")).await.expect("latest"),
        Some(cursor_of(done.last().expect("the removal")))
    );
}

pub async fn room_changes_from_an_external_log_apply_once(store: DynStore) {
    let (pia, quin) = (user(&store, "pia").await, user(&store, "quin").await);
    let at = |n| Cursor::new(4, n);
    let mut readc = room_change(&quin, "far", RoomChange::Read { cursor: at(3) });
    if let RoomEvent::Room(r) = &mut readc {
        r.client_id = Some(ClientId::parse("read-1").expect("cid"));
    }
    let batch: Vec<LoggedEvent> = vec![
        created(&pia, "far", RoomKind::Public).at_cursor(at(1)),
        room_change(&quin, "far", RoomChange::Joined).at_cursor(at(2)),
        RoomEvent::Message(new_message(&pia, "far", "x", None)).at_cursor(at(3)),
        readc.at_cursor(at(4)),
        // Logged on Kafka before anyone could know it changes nothing.
        room_change(&quin, "far", RoomChange::Joined).at_cursor(at(5)),
    ];
    assert_eq!(store.apply_logged(&batch).await.expect("apply"), 4);
    assert_eq!(store.apply_logged(&batch).await.expect("again"), 0);
    assert_eq!(present(&store, "far").await, ["pia", "quin"]);
    let entry = store
        .membership(quin.id, &room("far"))
        .await
        .expect("e")
        .expect("m");
    assert_eq!((entry.read_cursor, entry.unread), (Some(at(3)), 0));
    let replay = store
        .events_after(&room("far"), None, 100)
        .await
        .expect("replay");
    assert_eq!(replay.len(), 3, "created, joined, message: {replay:?}");
    // The read position's client id names it.
    let first = store
        .first_copy(quin.id, &ClientId::parse("read-1").expect("cid"))
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(first.cursor, at(4));
}

pub async fn every_membership_is_listed_however_many(store: DynStore) {
    let (ray, sue) = (user(&store, "ray").await, user(&store, "sue").await);
    let rooms: Vec<RoomEvent> = (0..1_200)
        .flat_map(|i| {
            let name = format!("r{i:04}");
            vec![
                created(&ray, &name, RoomKind::Private),
                room_change(&ray, &name, RoomChange::Added { member: me(&sue) }),
            ]
        })
        .collect();
    for chunk in rooms.chunks(200) {
        store.append_events(chunk).await.expect("append");
    }
    append(
        &store,
        vec![RoomEvent::Message(new_message(
            &ray, "r0007", "newest", None,
        ))],
    )
    .await;
    let listed = store.memberships(sue.id).await.expect("list");
    assert_eq!(listed.len(), 1_200);
    assert_eq!(listed[0].room.as_str(), "r0007", "newest activity first");
    assert_eq!(listed[0].unread, 1);
}
