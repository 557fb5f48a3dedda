//! Search: what a query finds (words, prefixes, phrases, without case or accents), that any
//! text is a query, that only rooms the user may read are searched, that edits and deletes
//! are what is found, and that pages meet with no overlap and no gap. The same on both
//! engines, on `serve`'s log and on an external one.

use banter_core::search::SearchQuery;
use banter_core::{
    Attachment, Change, Cursor, RoomChange, RoomEvent, RoomKind, StoredMessage, Topic, User,
    Username,
};
use banter_store::{DynStore, Search, SearchScope};
use uuid::Uuid;

use super::{change, me, new_message, room, room_change, user};

fn created(by: &User, in_room: &str, kind: RoomKind, members: &[&User]) -> RoomEvent {
    room_change(
        by,
        in_room,
        RoomChange::Created {
            kind,
            topic: Topic::default(),
            members: members.iter().map(|u| me(u)).collect(),
        },
    )
}

async fn append(store: &DynStore, events: Vec<RoomEvent>) -> Vec<StoredMessage> {
    let done = store.append_events(&events).await.expect("append");
    let mut out = Vec::new();
    for a in done {
        if let banter_core::Appended::New(l) = a {
            if let Some(m) = l.message() {
                out.push(
                    store
                        .stored_message(m.id)
                        .await
                        .expect("get")
                        .expect("stored"),
                );
            }
        }
    }
    out
}

fn said(by: &User, in_room: &str, body: &str) -> RoomEvent {
    RoomEvent::Message(new_message(by, in_room, body, None))
}

/// The first page of what `who` finds for `q` in their rooms, as bodies.
async fn found(store: &DynStore, who: &User, q: &str) -> Vec<String> {
    find(store, member_scope(who), q)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect()
}

fn member_scope(who: &User) -> SearchScope {
    SearchScope::Member {
        user: who.id,
        also: Vec::new(),
        except: Vec::new(),
    }
}

async fn find(store: &DynStore, scope: SearchScope, q: &str) -> Vec<StoredMessage> {
    page(store, scope, q, None, 50).await
}

async fn page(
    store: &DynStore,
    scope: SearchScope,
    q: &str,
    before: Option<Cursor>,
    limit: u32,
) -> Vec<StoredMessage> {
    store
        .search(&Search {
            query: SearchQuery::parse(q).expect("a valid query"),
            scope,
            from: None,
            before,
            limit,
        })
        .await
        .unwrap_or_else(|e| panic!("searching for {q:?}: {e}"))
}

pub async fn search_finds_words_prefixes_and_phrases_without_case_or_accents(store: DynStore) {
    let ada = user(&store, "ada").await;
    let mut events = vec![created(&ada, "general", RoomKind::Public, &[&ada])];
    for body in [
        "Deploying the new build on Friday",
        "the build is new",
        "Le café est fermé",
        "RÉSUMÉ review at noon",
        "O'Brien sent the e-mail",
        "你好世界 hello",
        "rm -rf --no-preserve-root",
        "the Ottoman empire",
    ] {
        events.push(said(&ada, "general", body));
    }
    append(&store, events).await;
    let finds = |q: &'static str, want: &'static [&'static str]| {
        let store = store.clone();
        let ada = ada.clone();
        async move {
            let mut got = found(&store, &ada, q).await;
            got.sort();
            let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(got, want, "searching for {q:?}");
        }
    };
    finds("deploy", &["Deploying the new build on Friday"]).await;
    finds("DEPLOYING", &["Deploying the new build on Friday"]).await;
    finds("fri", &["Deploying the new build on Friday"]).await;
    finds(
        "new build",
        &["Deploying the new build on Friday", "the build is new"],
    )
    .await;
    finds("\"new build\"", &["Deploying the new build on Friday"]).await;
    finds("\"build new\"", &[]).await;
    // A phrase's words are exact: "buil" is no word of either.
    finds("\"new buil\"", &[]).await;
    finds("cafe", &["Le café est fermé"]).await;
    finds("CAFÉ ferme", &["Le café est fermé"]).await;
    finds("resume", &["RÉSUMÉ review at noon"]).await;
    finds("résumé", &["RÉSUMÉ review at noon"]).await;
    finds("e-mail", &["O'Brien sent the e-mail"]).await;
    finds("你好世界", &["你好世界 hello"]).await;
    finds("hello 你好", &["你好世界 hello"]).await;
    finds("preserve", &["rm -rf --no-preserve-root"]).await;
    // A word of several (split at its punctuation) is a phrase whose last word is a prefix.
    finds("ottoman-emp", &["the Ottoman empire"]).await;
    finds("ott-emp", &[]).await;
    // Every word must be there.
    finds("deploy noon", &[]).await;
    finds("nothing-like-this", &[]).await;
}

pub async fn any_text_is_a_query(store: DynStore) {
    let ada = user(&store, "ada").await;
    append(
        &store,
        vec![
            created(&ada, "general", RoomKind::Public, &[&ada]),
            said(
                &ada,
                "general",
                "100% of the_tests pass (mostly): see C:\\logs",
            ),
        ],
    )
    .await;
    for q in [
        "\"",
        "\"\"",
        "\"unclosed phrase",
        "-",
        "--",
        "-tests",
        "a-b",
        "OR",
        "AND",
        "NOT",
        "NEAR",
        "tests OR pass",
        "NOT tests",
        "pass AND",
        "*",
        "tes*",
        "**",
        ":",
        "body:tests",
        "files:x",
        "\\",
        "C:\\logs",
        "\\\"",
        "(",
        ")",
        "(mostly)",
        "((",
        "%",
        "_",
        "%_",
        "the_tests",
        "100%",
        "'",
        "''",
        "'; DROP TABLE messages; --",
        "^",
        "+",
        "!",
        "&",
        "|",
        "<->",
        "a & b | !c",
        "{}",
        "[x]",
        "NEAR(tests pass)",
        "tests NEAR/2 pass",
        "😀",
        "中文搜索",
        "日本語のテキスト",
        "한국어",
        "   ",
        "\t",
    ] {
        page(&store, member_scope(&ada), q, None, 20).await;
    }
    // Punctuation is not in the way of the words around it.
    let bodies = found(&store, &ada, "(mostly)").await;
    assert_eq!(bodies.len(), 1, "(mostly)");
    let bodies = found(&store, &ada, "100%").await;
    assert_eq!(bodies.len(), 1, "100%");
    let bodies = found(&store, &ada, "\"tests pass\"").await;
    assert_eq!(bodies.len(), 1, "a phrase across an underscore's neighbour");
    let bodies = found(&store, &ada, "tests OR nothing").await;
    assert!(bodies.is_empty(), "OR is a word: {bodies:?}");
}

pub async fn search_looks_only_in_rooms_the_user_may_read(store: DynStore) {
    let ada = user(&store, "ada").await;
    let bob = user(&store, "bob").await;
    let cal = user(&store, "cal").await;
    let dm = banter_core::RoomName::direct(&ada.username, &bob.username).expect("dm");
    append(
        &store,
        vec![
            created(&ada, dm.as_str(), RoomKind::Dm, &[&ada, &bob]),
            said(&ada, dm.as_str(), "the launch code is in the dm"),
            created(&ada, "ops", RoomKind::Private, &[&ada]),
            room_change(&ada, "ops", RoomChange::Added { member: me(&cal) }),
            said(&ada, "ops", "launch plan for ops only"),
            created(&ada, "inner", RoomKind::Private, &[&ada]),
            room_change(&ada, "inner", RoomChange::Added { member: me(&bob) }),
            said(&ada, "inner", "launch window for the inner circle"),
            created(&cal, "lobby", RoomKind::Public, &[&cal]),
            said(&cal, "lobby", "launch party in the lobby"),
        ],
    )
    .await;
    let mut ada_finds = found(&store, &ada, "launch").await;
    ada_finds.sort();
    assert_eq!(
        ada_finds,
        [
            "launch plan for ops only",
            "launch window for the inner circle",
            "the launch code is in the dm",
        ]
    );
    let mut bob_finds = found(&store, &bob, "launch").await;
    bob_finds.sort();
    assert_eq!(
        bob_finds,
        [
            "launch window for the inner circle",
            "the launch code is in the dm"
        ]
    );
    assert_eq!(
        found(&store, &cal, "launch").await,
        ["launch party in the lobby", "launch plan for ops only"]
    );

    // Cal leaves the private room, Bob is removed from his: neither finds it any more.
    append(
        &store,
        vec![
            room_change(&cal, "ops", RoomChange::Left),
            room_change(&ada, "inner", RoomChange::Removed { member: me(&bob) }),
        ],
    )
    .await;
    assert_eq!(
        found(&store, &cal, "launch").await,
        ["launch party in the lobby"]
    );
    assert_eq!(
        found(&store, &bob, "launch").await,
        ["the launch code is in the dm"]
    );
    // Ada, in neither the lobby nor anything of Cal's, finds nothing of it by her rooms; the
    // lobby is public, so named as the one room it is searched (the gateway checked).
    assert!(!found(&store, &ada, "party")
        .await
        .iter()
        .any(|b| b.contains("lobby")));
    let in_lobby = find(&store, SearchScope::Room(room("lobby")), "party").await;
    assert_eq!(in_lobby.len(), 1);
    // What the gateway heard and the store may not have yet: a room joined lately is
    // searched, a room left lately is not.
    let fresher = SearchScope::Member {
        user: ada.id,
        also: vec![room("lobby")],
        except: vec![room("ops")],
    };
    let mut bodies: Vec<String> = find(&store, fresher, "launch")
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        [
            "launch party in the lobby",
            "launch window for the inner circle",
            "the launch code is in the dm",
        ]
    );
}

fn file(name: &str) -> Attachment {
    Attachment {
        id: Uuid::new_v4(),
        name: name.into(),
        size: 10,
        content_type: "application/pdf".into(),
        width: None,
        height: None,
        thumbnail: false,
    }
}

/// Edits, deletes and attachments' names, applied by `apply`: `serve`'s log or an external one.
async fn edits_and_deletes_are_what_is_found(store: DynStore, external: bool) {
    let ada = user(&store, "ada").await;
    let with_file = RoomEvent::Message(banter_core::NewMessage {
        attachments: vec![file("Quarterly-Report_2026.pdf")],
        ..new_message(&ada, "general", "see attached", None)
    });
    let first = said(&ada, "general", "alpha beta");
    let (first_id, file_id) = (first.id(), with_file.id());
    let mut events = vec![
        created(&ada, "general", RoomKind::Public, &[&ada]),
        first,
        with_file,
    ];
    let general = room("general");
    events.push(change(
        &ada,
        &general,
        first_id,
        None,
        Change::Edit {
            body: "gamma delta".into(),
        },
    ));
    let apply = |events: Vec<RoomEvent>, from: u64| {
        let store = store.clone();
        async move {
            if external {
                let logged: Vec<_> = events
                    .into_iter()
                    .enumerate()
                    .map(|(i, e)| e.at_cursor(Cursor::new(3, from + i as u64)))
                    .collect();
                // Delivered twice, as Kafka may.
                store.apply_logged(&logged).await.expect("apply");
                store.apply_logged(&logged).await.expect("apply again");
            } else {
                store.append_events(&events).await.expect("append");
            }
        }
    };
    apply(events, 1).await;
    assert!(
        found(&store, &ada, "alpha").await.is_empty(),
        "the edit replaced it"
    );
    assert_eq!(found(&store, &ada, "gamma").await, ["gamma delta"]);
    assert_eq!(found(&store, &ada, "quarterly").await, ["see attached"]);
    assert_eq!(found(&store, &ada, "report 2026").await, ["see attached"]);
    apply(
        vec![
            change(&ada, &general, first_id, None, Change::Delete),
            change(&ada, &general, file_id, None, Change::Delete),
            said(&ada, "general", "gamma rays"),
        ],
        10,
    )
    .await;
    assert_eq!(found(&store, &ada, "gamma").await, ["gamma rays"]);
    assert!(found(&store, &ada, "quarterly").await.is_empty());
    assert!(found(&store, &ada, "attached").await.is_empty());
}

pub async fn edits_and_deletes_are_what_is_found_on_serve(store: DynStore) {
    edits_and_deletes_are_what_is_found(store, false).await;
}

pub async fn edits_and_deletes_are_what_is_found_from_an_external_log(store: DynStore) {
    edits_and_deletes_are_what_is_found(store, true).await;
}

pub async fn search_pages_newest_first_with_no_overlap_and_no_gap(store: DynStore) {
    let ada = user(&store, "ada").await;
    let bob = user(&store, "bob").await;
    let mut events = Vec::new();
    for r in ["one", "two", "three"] {
        events.push(created(&ada, r, RoomKind::Public, &[&ada]));
        events.push(room_change(&bob, r, RoomChange::Joined));
    }
    for i in 0..37 {
        let r = ["one", "two", "three"][i % 3];
        let by = if i % 4 == 0 { &bob } else { &ada };
        events.push(said(by, r, &format!("standup note {i}")));
        events.push(said(by, r, &format!("unrelated {i}")));
    }
    let stored = append(&store, events).await;
    let mut want: Vec<&StoredMessage> = stored
        .iter()
        .filter(|m| m.body.starts_with("standup"))
        .collect();
    want.sort_by_key(|m| std::cmp::Reverse((m.created_at, m.id)));
    let want: Vec<Uuid> = want.iter().map(|m| m.id).collect();
    let mut got = Vec::new();
    let mut before = None;
    loop {
        let p = page(&store, member_scope(&ada), "standup", before, 10).await;
        assert!(p.len() <= 10);
        got.extend(p.iter().map(|m| m.id));
        match p.last() {
            Some(last) if p.len() == 10 => before = Some(last.cursor),
            _ => break,
        }
    }
    assert_eq!(got, want, "every result once, newest first");

    // From one author only, without regard to case.
    let by_bob = store
        .search(&Search {
            query: SearchQuery::parse("standup").expect("query"),
            scope: member_scope(&ada),
            from: Some(Username::parse("BOB").expect("name")),
            before: None,
            limit: 50,
        })
        .await
        .expect("search");
    assert_eq!(by_bob.len(), 10);
    assert!(by_bob.iter().all(|m| m.author.as_str() == "bob"));
}
