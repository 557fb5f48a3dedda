//! Talking in rooms: fan-out exactly once, acks, total order, presence, typing, history.

use std::collections::HashMap;

use banter_testkit::{Db, Options, TestApp};
use serde_json::{json, Value};

use banter_testkit::token_of as token;

async fn two_users_chatting(db: Db) {
    let app = TestApp::spawn(db).await;
    let alice = token(&app.signup("alice").await);
    let bob = token(&app.signup("bob").await);
    let mut a = app.ws(&alice, None).await;
    let mut b = app.ws(&bob, None).await;
    // Alice hears Bob come online in general.
    let presence = a.recv_type("presence").await;
    assert_eq!(
        presence,
        json!({"type":"presence","room":"general","user":"bob","state":"online"})
    );

    // The seed's bare frame, as its README sends it.
    a.send_text(r#"{"room": "general", "body": "Hello, World!"}"#)
        .await;
    // The message and the ack, in either order.
    let (mut ack, mut echo) = (None, None);
    while ack.is_none() || echo.is_none() {
        let frame = a.recv().await;
        match frame["type"].as_str() {
            Some("ack") => assert!(ack.replace(frame).is_none(), "one ack"),
            Some("message") => assert!(echo.replace(frame).is_none(), "one message"),
            _ => {}
        }
    }
    let (ack, m) = (ack.expect("ack"), echo.expect("message"));
    let m = &m;
    assert_eq!(m["body"], "Hello, World!");
    assert_eq!(m["author"], "alice");
    assert_eq!(m["room"], "general");
    assert_eq!(ack["id"], m["id"]);
    assert_eq!(ack["cursor"], m["cursor"]);
    assert!(m["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));

    let at_bob = b.recv_type("message").await;
    assert_eq!(&at_bob, m, "everyone sees the same message");
    // Nothing else: the next message each sees is the next one sent.
    b.say("general", "reply", "b1").await;
    let next = a.recv_type("message").await;
    assert_eq!(next["body"], "reply", "no second copy at the sender");
    let at_bob = b.recv_type("message").await;
    assert_eq!(
        at_bob["body"], "reply",
        "no second copy of the first message"
    );

    // History has both, oldest first.
    let (status, page) = app
        .get("/api/v1/rooms/general/messages", Some(&alice))
        .await;
    assert_eq!(status, 200, "{page}");
    let bodies: Vec<&str> = page["data"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    assert_eq!(bodies, ["Hello, World!", "reply"]);
    assert_eq!(page["data"]["has_more"], false);
}

#[tokio::test]
async fn two_users_chatting_on_sqlite() {
    two_users_chatting(Db::Sqlite).await;
}

#[tokio::test]
async fn two_users_chatting_on_postgres() {
    two_users_chatting(Db::Postgres).await;
}

#[tokio::test]
async fn fifty_clients_in_five_rooms_see_their_rooms_in_one_order() {
    // Fifty accounts registered from one address in a second: more than the registration
    // limit allows (rate_limits.rs tests that); this test is about order.
    let app = TestApp::spawn_with(Db::Sqlite, Options::unlimited()).await;
    let rooms: Vec<String> = (0..5).map(|r| format!("room{r}")).collect();
    let mut clients = Vec::new();
    for i in 0..50 {
        let login = app.signup(&format!("user{i:02}")).await;
        let room = &rooms[i % 5];
        let mut ws = app.ws(&token(&login), Some(room)).await;
        // Half of them are in a second room too.
        let second = (i % 2 == 0).then(|| rooms[(i + 1) % 5].clone());
        if let Some(second) = &second {
            ws.join(second, None).await;
        }
        clients.push((ws, room.clone(), second));
    }
    // Every client sends two messages to its first room, all at once.
    for (i, (ws, room, _)) in clients.iter_mut().enumerate() {
        for k in 0..2 {
            ws.send(&json!({"type":"send","room":room,"body":format!("m{i}-{k}"),"client_id":format!("c{i}-{k}")}))
                .await;
        }
    }
    // Per room: 10 senders x 2 messages; each client reads until it has all of both rooms.
    let mut orders: HashMap<String, Vec<Vec<String>>> = HashMap::new();
    for (ws, first, second) in &mut clients {
        let mine: Vec<String> = std::iter::once(first.clone())
            .chain(second.clone())
            .collect();
        let mut got: HashMap<String, Vec<String>> = HashMap::new();
        while mine.iter().any(|r| got.get(r).map_or(0, Vec::len) < 20) {
            let frame = ws.recv().await;
            if frame["type"] == "message" {
                let room = frame["room"].as_str().expect("room").to_owned();
                assert!(
                    mine.contains(&room),
                    "a message of {room}, which it is not in"
                );
                got.entry(room)
                    .or_default()
                    .push(frame["id"].as_str().expect("id").to_owned());
            }
        }
        for (room, ids) in got {
            orders.entry(room).or_default().push(ids);
        }
    }
    for (room, seen) in &orders {
        assert!(
            seen.iter().all(|s| s == &seen[0]),
            "{room}: readers disagree on the order"
        );
        let mut unique = seen[0].clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 20, "{room}: 20 distinct messages");
    }
    // Nobody got a message of a room they are not in: a marker sent last to every room
    // arrives as the very next message on each connection.
    let marker_sender = token(&app.signup("marker").await);
    let mut m = app.ws(&marker_sender, None).await;
    for room in &rooms {
        m.say(room, &format!("end of {room}"), &format!("end-{room}"))
            .await;
    }
    for (ws, first, second) in &mut clients {
        let mut want: Vec<String> = std::iter::once(first.clone())
            .chain(second.clone())
            .map(|r| format!("end of {r}"))
            .collect();
        let mut got: Vec<String> = Vec::new();
        for _ in 0..want.len() {
            let next = ws.recv_type("message").await;
            got.push(next["body"].as_str().expect("body").to_owned());
        }
        want.sort();
        got.sort();
        assert_eq!(got, want, "nothing but the markers came next");
    }
}

#[tokio::test]
async fn presence_typing_and_members() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let alice = token(&app.signup("alice").await);
    let bob = token(&app.signup("bob").await);
    let mut a = app.ws(&alice, Some("lobby")).await;
    let mut b1 = WsPair::connect(&app, &bob, "lobby").await;
    assert_eq!(b1.members, json!(["alice", "bob"]));
    assert_eq!(a.recv_type("presence").await["state"], "online");

    // A second tab of Bob's changes nothing for Alice: no second "online".
    let b2 = app.ws(&bob, Some("lobby")).await;
    b2.close().await;
    let (status, p) = app.get("/api/v1/rooms/lobby/presence", Some(&alice)).await;
    assert_eq!(status, 200);
    assert_eq!(p["data"]["users"], json!(["alice", "bob"]));

    // Typing reaches the others, not the typist.
    b1.ws.send(&json!({"type":"typing","room":"lobby"})).await;
    let typing = a.recv_type("typing").await;
    assert_eq!(typing, json!({"type":"typing","room":"lobby","user":"bob"}));

    // Bob's last tab closes: Alice sees him go offline, once, and nothing else in between.
    b1.ws.close().await;
    let next = a.recv().await;
    assert_eq!(
        next,
        json!({"type":"presence","room":"lobby","user":"bob","state":"offline"})
    );

    // The rooms list shows online counts.
    let (status, rooms) = app.get("/api/v1/rooms", Some(&alice)).await;
    assert_eq!(status, 200, "{rooms}");
    let lobby = rooms["data"]["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["room"] == "lobby")
        .expect("lobby listed")
        .clone();
    assert_eq!(lobby["online"], 1);
}

struct WsPair {
    ws: banter_testkit::WsClient,
    members: Value,
}

impl WsPair {
    async fn connect(app: &TestApp, token: &str, room: &str) -> Self {
        let mut ws = banter_testkit::WsClient::connect(&app.ws_url(token, Some(room)))
            .await
            .expect("connect");
        let frames = ws.recv_until("joined").await;
        let members = frames
            .iter()
            .find(|f| f["type"] == "members")
            .expect("members on join")["users"]
            .clone();
        Self { ws, members }
    }
}

#[tokio::test]
async fn history_pages_backwards_with_cursors() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let alice = token(&app.signup("alice").await);
    let mut a = app.ws(&alice, Some("pages")).await;
    for i in 0..7 {
        a.say("pages", &format!("m{i}"), &format!("c{i}")).await;
    }
    let page = |before: Option<String>| {
        let app = &app;
        let alice = alice.clone();
        async move {
            let path = match before {
                Some(b) => format!("/api/v1/rooms/pages/messages?limit=3&before={b}"),
                None => "/api/v1/rooms/pages/messages?limit=3".to_owned(),
            };
            let (status, body) = app.get(&path, Some(&alice)).await;
            assert_eq!(status, 200, "{body}");
            body["data"].clone()
        }
    };
    let newest = page(None).await;
    let bodies = |p: &Value| -> Vec<String> {
        p["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["body"].as_str().expect("b").to_owned())
            .collect()
    };
    assert_eq!(bodies(&newest), ["m4", "m5", "m6"]);
    assert_eq!(newest["has_more"], true);
    let older = page(newest["messages"][0]["cursor"].as_str().map(str::to_owned)).await;
    assert_eq!(bodies(&older), ["m1", "m2", "m3"]);
    assert_eq!(older["has_more"], true);
    let oldest = page(older["messages"][0]["cursor"].as_str().map(str::to_owned)).await;
    assert_eq!(bodies(&oldest), ["m0"]);
    assert_eq!(oldest["has_more"], false);

    for bad in ["limit=0", "limit=101", "limit=x", "before=nope"] {
        let (status, body) = app
            .get(&format!("/api/v1/rooms/pages/messages?{bad}"), Some(&alice))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "validation_failed");
    }
    let (status, _) = app.get("/api/v1/rooms/pages/messages", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn resending_a_client_id_never_makes_a_second_message() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let alice = token(&app.signup("alice").await);
    let mut a = app.ws(&alice, Some("dedup")).await;
    let first = a.say("dedup", "once", "same-id").await;
    a.recv_type("message").await;
    // Later, on another connection: acked with the first id, not fanned out again.
    let mut again = app.ws(&alice, Some("dedup")).await;
    let second = again.say("dedup", "once", "same-id").await;
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["cursor"], first["cursor"]);
    again.say("dedup", "next", "other-id").await;
    let next = again.recv_type("message").await;
    assert_eq!(
        next["body"], "next",
        "the duplicate was not broadcast: {next}"
    );
    let (_, page) = app.get("/api/v1/rooms/dedup/messages", Some(&alice)).await;
    assert_eq!(
        page["data"]["messages"].as_array().expect("messages").len(),
        2
    );
}

#[tokio::test]
async fn authors_and_admins_delete_and_the_room_hears_it() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let alice = token(&app.signup("alice").await);
    let bob = token(&app.signup("bob").await);
    let mut a = app.ws(&alice, Some("del")).await;
    let mut b = app.ws(&bob, Some("del")).await;
    let ack = a.say("del", "oops", "d1").await;
    let id = ack["id"].as_str().expect("id").to_owned();
    b.recv_type("message").await;

    let delete = |who: String, id: String| {
        let app = &app;
        async move {
            let resp = app
                .client
                .delete(app.url(&format!("/api/v1/messages/{id}")))
                .bearer_auth(who)
                .send()
                .await
                .expect("delete");
            TestApp::read(resp).await
        }
    };
    let (status, body) = delete(bob.clone(), id.clone()).await;
    assert_eq!(status, 403, "not bob's message: {body}");
    assert_eq!(body["error"], "forbidden");
    let (status, body) = delete(alice.clone(), "not-a-uuid".into()).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = delete(alice.clone(), uuid_nil()).await;
    assert_eq!(status, 404, "{body}");

    let (status, body) = delete(alice.clone(), id.clone()).await;
    assert_eq!(status, 200, "{body}");
    let cursor = body["data"]["cursor"]
        .as_str()
        .expect("the delete's cursor");
    assert!(cursor > ack["cursor"].as_str().expect("cursor"), "{body}");
    assert_eq!(
        b.recv_type("deleted").await,
        json!({"type":"deleted","room":"del","id":id,"cursor":cursor})
    );
    let (_, page) = app.get("/api/v1/rooms/del/messages", Some(&bob)).await;
    assert_eq!(page["data"]["messages"], json!([]), "it left history");
    // Nor does a resume bring it back (from what the gateway heard lately).
    let mut c = app.ws(&bob, Some("elsewhere")).await;
    let frames = c.join("del", Some("000000000000000000000000")).await;
    assert!(
        frames.iter().all(|f| f["type"] != "message"),
        "a resume replayed a deleted message: {frames:?}"
    );
    let (status, _) = delete(alice.clone(), id.clone()).await;
    assert_eq!(status, 404, "already gone");

    // An admin may delete anyone's message.
    let ack = a.say("del", "rude", "d2").await;
    let id = ack["id"].as_str().expect("id").to_owned();
    let store = app.db.store().await;
    assert!(store.set_admin("bob", true).await.expect("grant"));
    let (status, body) = delete(bob.clone(), id).await;
    assert_eq!(status, 200, "{body}");
}

fn uuid_nil() -> String {
    "00000000-0000-0000-0000-000000000000".into()
}
