//! Rooms people own, over real WebSockets and HTTP on `banter serve`: private rooms only
//! their members reach, invitations and removals heard at once on every connection of the
//! user, read positions synced between devices, exact unread and mention counts, new DMs
//! without polling, and every membership listed however many.

use banter_testkit::token_of as token;
use banter_testkit::{Db, TestApp, WsClient};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The next user-stream `room` frame about `room` (a connection hears of its own first room,
/// `general`, too).
async fn room_news(ws: &mut WsClient, room: &str) -> Value {
    loop {
        let f = ws.recv_type("room").await;
        if f["room"]["room"] == room {
            return f;
        }
    }
}

/// The user's rooms list, by room name.
async fn rooms_of(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = app.get("/api/v1/rooms", Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["rooms"].as_array().expect("rooms").clone()
}

fn entry<'a>(rooms: &'a [Value], room: &str) -> Option<&'a Value> {
    rooms.iter().find(|r| r["room"] == room)
}

async fn create(app: &TestApp, token: &str, name: &str, kind: &str) -> Value {
    let (status, body) = app
        .post(
            "/api/v1/rooms",
            &json!({"name": name, "kind": kind, "topic": "things"}),
            Some(token),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["data"].clone()
}

#[tokio::test]
async fn a_private_room_is_reached_by_its_members_only() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let alice = token(&app.signup("alice").await);
    let bob = token(&app.signup("bob").await);
    let carol = token(&app.signup("carol").await);
    let mut a = app.ws(&alice, None).await;
    let mut b = app.ws(&bob, None).await;
    let mut c = app.ws(&carol, None).await;

    let made = create(&app, &alice, "plans", "private").await;
    assert_eq!(
        (&made["kind"], &made["role"], &made["topic"], &made["owner"]),
        (
            &json!("private"),
            &json!("owner"),
            &json!("things"),
            &json!("alice")
        )
    );
    let (status, body) = app
        .post("/api/v1/rooms", &json!({"name": "plans"}), Some(&carol))
        .await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::CONFLICT, &json!("room_exists"))
    );
    // Alice's other connections heard it as an added room.
    assert_eq!(room_news(&mut a, "plans").await["op"], "added");
    a.join("plans", None).await;
    let secret = a.say("plans", "the plan", "a1").await;
    let secret_id = secret["id"].as_str().expect("id");

    // Carol can neither join, read, send, react, list nor add herself.
    c.send(&json!({"type":"join","room":"plans"})).await;
    let refused = c.recv_type("error").await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let answer = c
        .act(json!({"type":"send","room":"plans","body":"let me in","client_id":"c1"}))
        .await;
    assert_eq!(answer["code"], "forbidden", "{answer}");
    let answer = c
        .act(json!({"type":"react","id":secret_id,"emoji":"👀","client_id":"c2"}))
        .await;
    assert_eq!(answer["code"], "not_found", "{answer}");
    let (status, _) = app.get("/api/v1/rooms/plans/messages", Some(&carol)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.get("/api/v1/rooms/plans/members", Some(&carol)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(
            "/api/v1/rooms/plans/members",
            &json!({"username":"carol"}),
            Some(&carol),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(entry(&rooms_of(&app, &carol).await, "plans").is_none());
    let (_, public) = app.get("/api/v1/rooms/public", Some(&carol)).await;
    assert!(
        !public["data"]["rooms"]
            .as_array()
            .expect("rooms")
            .iter()
            .any(|r| r["room"] == "plans"),
        "{public}"
    );
    let (status, _) = app
        .get(&format!("/ws?token={carol}&room=plans"), None)
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "not even as the first room of a socket"
    );

    // Alice invites bob: his connection hears it at once, on whatever room it is in.
    let (status, body) = app
        .post(
            "/api/v1/rooms/plans/members",
            &json!({"username":"Bob"}),
            Some(&alice),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let news = room_news(&mut b, "plans").await;
    assert_eq!(news["op"], "added");
    assert_eq!(
        (
            &news["room"]["room"],
            &news["room"]["kind"],
            &news["room"]["role"]
        ),
        (&json!("plans"), &json!("private"), &json!("member"))
    );
    assert_eq!(
        news["room"]["unread"], 1,
        "alice's message is waiting for him"
    );
    let replay = b.join("plans", Some("000000000000000000000000")).await;
    assert!(replay.iter().any(|f| f["body"] == "the plan"), "{replay:?}");
    assert!(replay
        .iter()
        .any(|f| f["type"] == "member" && f["op"] == "added" && f["user"] == "bob"));
    let (_, members) = app.get("/api/v1/rooms/plans/members", Some(&bob)).await;
    let names: Vec<&str> = members["data"]["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["username"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    // Only the owner removes; then bob's connection stops hearing the room at once.
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/v1/rooms/plans/members/alice",
            None,
            Some(&bob),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .call(
            Method::DELETE,
            "/api/v1/rooms/plans/members/bob",
            None,
            Some(&alice),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let news = room_news(&mut b, "plans").await;
    assert_eq!(news["op"], "removed");
    a.say("plans", "after bob", "a2").await;
    // A marker in a room bob is still in: everything sent before it has been delivered.
    a.say("general", "marker", "a3").await;
    loop {
        let f = b.recv().await;
        assert_ne!(f["body"], "after bob", "a removed member heard the room");
        if f["body"] == "marker" {
            break;
        }
    }
    let answer = b
        .act(json!({"type":"send","room":"plans","body":"still here?","client_id":"b1"}))
        .await;
    assert_eq!(answer["code"], "forbidden");
    assert!(entry(&rooms_of(&app, &bob).await, "plans").is_none());
}

#[tokio::test]
async fn read_positions_follow_the_user_to_every_device_and_counts_are_exact() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let alice = token(&app.signup("alice").await);
    let bob = token(&app.signup("bob").await);
    let mut a = app.ws(&alice, Some("news")).await;
    let mut phone = app.ws(&bob, Some("news")).await;
    let mut laptop = app.ws(&bob, None).await;
    let sent: Vec<Value> = {
        let mut sent = Vec::new();
        for i in 0..3 {
            sent.push(a.say("news", &format!("m{i}"), &format!("a{i}")).await);
        }
        sent
    };
    phone.say("news", "bob's own", "b0").await;
    let listed = rooms_of(&app, &bob).await;
    let news = entry(&listed, "news").expect("a member since his socket joined it");
    assert_eq!((&news["unread"], &news["mentions"]), (&json!(3), &json!(0)));
    assert_eq!(news["kind"], "public");

    // Read on the phone: the laptop hears where, and the list agrees after a reload.
    let at = sent[1]["cursor"].as_str().expect("cursor");
    let ack = phone
        .act(json!({"type":"read","room":"news","cursor":at,"client_id":"r1"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let heard = laptop.recv_type("read").await;
    assert_eq!(heard, json!({"type":"read","room":"news","cursor":at}));
    let news = entry(&rooms_of(&app, &bob).await, "news")
        .expect("listed")
        .clone();
    assert_eq!(
        (&news["unread"], &news["read_cursor"]),
        (&json!(1), &json!(at))
    );
    // Only forward: an older position changes nothing, over HTTP as over the socket.
    let older = sent[0]["cursor"].as_str().expect("cursor");
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/rooms/news/read",
            Some(&json!({"cursor": older})),
            Some(&bob),
        )
        .await;
    assert_eq!(
        (status, &body["data"]["read_cursor"]),
        (StatusCode::OK, &json!(at))
    );
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/rooms/news/read",
            Some(&json!({"cursor": "x"})),
            Some(&bob),
        )
        .await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("validation_failed"))
    );
    // A delete takes a message out of the count.
    let last = sent[2]["id"].as_str().expect("id");
    a.act(json!({"type":"delete","id":last,"client_id":"d1"}))
        .await;
    let news = entry(&rooms_of(&app, &bob).await, "news")
        .expect("listed")
        .clone();
    assert_eq!(news["unread"], 0);
    // Alice is not a member of bob's read position: she never hears it.
    a.say("news", "marker", "a9").await;
    loop {
        let f = a.recv().await;
        assert_ne!(f["type"], "read", "someone else's read position: {f}");
        if f["body"] == "marker" {
            break;
        }
    }
}

#[tokio::test]
async fn mentions_are_parsed_streamed_and_counted() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let alice = token(&app.signup("alice").await);
    let bob = token(&app.signup("bob").await);
    let carol = token(&app.signup("carol").await);
    let mut a = app.ws(&alice, Some("team")).await;
    let mut b = app.ws(&bob, Some("team")).await;
    // Bob's second tab is elsewhere: the mention reaches it all the same.
    let mut b2 = app.ws(&bob, None).await;
    drop(app.ws(&carol, None).await);
    a.say(
        "team",
        "hey @Bob, @carol is not here, and x@bob.com is mail",
        "a1",
    )
    .await;
    let heard = b.recv_type("message").await;
    assert_eq!(heard["mentions"], json!(["bob"]), "members only: {heard}");
    let mention = b2.recv_type("mention").await;
    assert_eq!(
        (&mention["room"], &mention["author"], &mention["id"]),
        (&json!("team"), &json!("alice"), &heard["id"])
    );
    let team = entry(&rooms_of(&app, &bob).await, "team")
        .expect("listed")
        .clone();
    assert_eq!((&team["unread"], &team["mentions"]), (&json!(1), &json!(1)));
    let (_, history) = app.get("/api/v1/rooms/team/messages", Some(&bob)).await;
    assert_eq!(history["data"]["messages"][0]["mentions"], json!(["bob"]));
}

#[tokio::test]
async fn a_new_dm_and_a_new_topic_reach_the_user_without_polling() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let alice = token(&app.signup("alice").await);
    let bob = token(&app.signup("bob").await);
    let mut a = app.ws(&alice, None).await;
    let mut b = app.ws(&bob, None).await;
    a.say("dm:alice:bob", "psst", "a1").await;
    let news = room_news(&mut b, "dm:alice:bob").await;
    assert_eq!(
        (&news["op"], &news["room"]["kind"], &news["room"]["owner"]),
        (&json!("added"), &json!("dm"), &Value::Null)
    );
    let dm = entry(&rooms_of(&app, &bob).await, "dm:alice:bob")
        .expect("listed")
        .clone();
    assert_eq!(dm["unread"], 1);
    // A DM to nobody: not found, and nothing made.
    let answer = a
        .act(json!({"type":"send","room":"dm:alice:zed","body":"hi","client_id":"a2"}))
        .await;
    assert_eq!(answer["code"], "not_found", "{answer}");

    // A topic: the owner only; members hear the room updated and the room's own event.
    create(&app, &alice, "design", "public").await;
    b.join("design", None).await;
    let (status, _) = app
        .call(
            Method::PATCH,
            "/api/v1/rooms/design",
            Some(&json!({"topic":"no"})),
            Some(&bob),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .call(
            Method::PATCH,
            "/api/v1/rooms/design",
            Some(&json!({"topic":"colours and type"})),
            Some(&alice),
        )
        .await;
    assert_eq!(
        (status, &body["data"]["topic"]),
        (StatusCode::OK, &json!("colours and type"))
    );
    let mut saw_topic = false;
    let updated = loop {
        let f = b.recv().await;
        if f["type"] == "topic" {
            assert_eq!(
                (&f["topic"], &f["by"]),
                (&json!("colours and type"), &json!("alice"))
            );
            saw_topic = true;
        }
        if f["type"] == "room" && f["op"] == "updated" {
            break f;
        }
    };
    assert_eq!(updated["room"]["topic"], "colours and type");
    if !saw_topic {
        assert_eq!(b.recv_type("topic").await["topic"], "colours and type");
    }
    // Leaving for good: the list forgets it, the connection stops hearing it.
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/v1/rooms/design/members/bob",
            None,
            Some(&bob),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(room_news(&mut b, "design").await["op"], "removed");
    assert!(entry(&rooms_of(&app, &bob).await, "design").is_none());
}

#[tokio::test]
async fn every_membership_is_listed_however_many() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let dana = token(&app.signup("dana").await);
    let names: Vec<String> = (0..1_200).map(|i| format!("room-{i:04}")).collect();
    let made: Vec<StatusCode> = futures::stream::iter(names.iter())
        .map(|name| {
            let (app, dana) = (&app, &dana);
            async move {
                app.post(
                    "/api/v1/rooms",
                    &json!({"name": name, "kind": "private"}),
                    Some(dana),
                )
                .await
                .0
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(made.iter().all(|s| *s == StatusCode::CREATED));
    let listed = rooms_of(&app, &dana).await;
    assert_eq!(listed.len(), 1_200);
    let mut got: Vec<&str> = listed
        .iter()
        .map(|r| r["room"].as_str().expect("room"))
        .collect();
    got.sort_unstable();
    assert_eq!(got, names.iter().map(String::as_str).collect::<Vec<_>>());
}
