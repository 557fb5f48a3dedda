//! Web Push on `serve`, against a push service stand-in on loopback that checks each push's
//! VAPID signature and decrypts it with the browser's keys: the key and subscriptions API,
//! who is pushed (a DM to someone away, a mention; not someone connected, not an ordinary
//! message), what the push says, 404/410 forgetting a subscription, 429 and 5xx retried, and a
//! burst collapsing by topic.

use std::time::Duration;

use banter::PushOptions;
use banter_push::{InsecureOrigins, NotifySettings, SenderSettings, VapidKey};
use banter_testkit::{token_of as token, Db, Device, Options, PushService, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const PUSH_WAIT: Duration = Duration::from_secs(20);

struct Setup {
    app: TestApp,
    push: PushService,
    key: String,
}

async fn spawn(db: Db, preview: bool) -> Setup {
    let key = VapidKey::generate();
    let push = PushService::start(key.public_base64()).await;
    let public = key.public_base64().to_owned();
    let options = Options {
        push: Some(PushOptions {
            key,
            sender: SenderSettings {
                subject: "mailto:ops@example.com".into(),
                first_backoff: Duration::from_millis(50),
                ..SenderSettings::default()
            },
            notify: NotifySettings {
                preview,
                away_wait: Duration::ZERO,
            },
            insecure: InsecureOrigins::parse(&push.origin).expect("origin"),
            notify_group: "notify-svc".into(),
        }),
        ..Options::default()
    };
    Setup {
        app: TestApp::spawn_with(db, options).await,
        push,
        key: public,
    }
}

async fn subscribe(app: &TestApp, tok: &str, device: &Device) {
    let (status, body) = app
        .post(
            "/api/v1/push/subscriptions",
            &device.subscription(),
            Some(tok),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Adds `who` to a public room `by` is in (so they can be mentioned without connecting).
async fn add(app: &TestApp, by: &str, room: &str, who: &str) {
    let (status, body) = app
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            &json!({"username": who}),
            Some(by),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
}

/// A user with a subscribed device who never connects: away.
async fn away(s: &Setup, name: &str) -> (String, Device) {
    let tok = token(&s.app.signup(name).await);
    let device = s.push.device();
    subscribe(&s.app, &tok, &device).await;
    (tok, device)
}

#[tokio::test]
async fn the_key_and_subscriptions_are_served_and_checked() {
    let s = spawn(Db::Sqlite, true).await;
    let ann = token(&s.app.signup("ann").await);
    let (status, _) = s.app.get("/api/v1/push/key", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = s.app.get("/api/v1/push/key", Some(&ann)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["public_key"], s.key.as_str());

    let device = s.push.device();
    subscribe(&s.app, &ann, &device).await;
    subscribe(&s.app, &ann, &device).await; // again: still one

    let good = device.subscription();
    let with = |path: &str, value: Value| {
        let mut sub = good.clone();
        match path {
            "endpoint" => sub["endpoint"] = value,
            "p256dh" => sub["keys"]["p256dh"] = value,
            "auth" => sub["keys"]["auth"] = value,
            _ => unreachable!(),
        }
        sub
    };
    let cases = [
        (
            with("endpoint", json!("http://push.example.com/x")),
            "endpoint",
        ),
        (with("endpoint", json!("https://127.0.0.1/x")), "endpoint"),
        (with("endpoint", json!("")), "endpoint"),
        (with("p256dh", json!("AAAA")), "keys.p256dh"),
        (with("auth", json!("AAAAAAAA")), "keys.auth"),
    ];
    for (bad, field) in cases {
        let (status, body) = s
            .app
            .post("/api/v1/push/subscriptions", &bad, Some(&ann))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"], "validation_failed", "{body}");
        assert!(
            body["message"].as_str().unwrap_or("").contains(field),
            "{field}: {body}"
        );
    }
    for bad in [
        json!({"endpoint": device.endpoint}),
        json!([]),
        json!({"keys": {}}),
    ] {
        let (status, body) = s
            .app
            .post("/api/v1/push/subscriptions", &bad, Some(&ann))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }

    // Unsubscribing: 200 whether it was there (removed) or not.
    for removed in [true, false] {
        let (status, body) = s
            .app
            .call(
                Method::DELETE,
                "/api/v1/push/subscriptions",
                Some(&json!({"endpoint": device.endpoint})),
                Some(&ann),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["removed"], removed);
    }

    // A server with push off says so.
    let off = TestApp::spawn(Db::Sqlite).await;
    let bob = token(&off.signup("bob").await);
    let (status, body) = off.get("/api/v1/push/key", Some(&bob)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = off
        .post(
            "/api/v1/push/subscriptions",
            &device.subscription(),
            Some(&bob),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_dm_to_someone_away_arrives_decrypted_and_none_to_someone_connected(db: Db) {
    let s = spawn(db, true).await;
    let ann = token(&s.app.signup("ann").await);
    let (bob, bob_device) = away(&s, "bob").await;
    let (_carol, carol_device) = away(&s, "carol").await;
    let (_dave, dave_device) = away(&s, "dave").await;
    // Bob has the app open (his connection joined no room: connected is enough).
    let _bob_ws = s.app.ws(&bob, None).await;
    let mut ws = s.app.ws(&ann, Some("general")).await;
    add(&s.app, &ann, "general", "carol").await;

    let to_bob = ws.say("dm:ann:bob", "are you there?", "c1").await;
    let to_dave = ws.say("dm:ann:dave", "lunch at noon?", "c2").await;
    let got = s.push.wait_for(&dave_device, 1, PUSH_WAIT).await;
    let push = &got[0];
    assert_eq!(push.payload["user"], "dave");
    assert_eq!(push.payload["room"], "dm:ann:dave");
    assert_eq!(push.payload["author"], "ann");
    assert_eq!(push.payload["id"], to_dave["id"]);
    assert_eq!(push.payload["cursor"], to_dave["cursor"]);
    assert_eq!(push.payload["reason"], "dm");
    assert_eq!(push.payload["body"], "lunch at noon?");
    assert_eq!(push.payload["url"], "/chat?room=dm:ann:dave");
    assert_eq!(push.urgency.as_deref(), Some("high"));
    assert!(
        push.ttl.is_some_and(|t| t > 0 && t <= 3600),
        "{:?}",
        push.ttl
    );
    assert!(push.topic.as_ref().is_some_and(|t| t.len() <= 32));

    // The marker: a later push, for someone else, has arrived, and bob's decision came
    // before it; he was connected, so his device got nothing.
    ws.say("general", "@carol the build is green", "c3").await;
    s.push.wait_for(&carol_device, 1, PUSH_WAIT).await;
    assert_eq!(
        s.push.requests(&bob_device),
        0,
        "pushed to bob while he was connected"
    );
    assert_ne!(to_bob["id"], Value::Null);
    assert!(s.push.faults().is_empty(), "{:?}", s.push.faults());
}

#[tokio::test]
async fn a_dm_to_someone_away_arrives_decrypted_and_none_to_someone_connected_sqlite() {
    a_dm_to_someone_away_arrives_decrypted_and_none_to_someone_connected(Db::Sqlite).await;
}

#[tokio::test]
async fn a_dm_to_someone_away_arrives_decrypted_and_none_to_someone_connected_postgres() {
    a_dm_to_someone_away_arrives_decrypted_and_none_to_someone_connected(Db::Postgres).await;
}

#[tokio::test]
async fn a_mention_is_pushed_and_an_ordinary_message_is_not() {
    let s = spawn(Db::Sqlite, true).await;
    let ann = token(&s.app.signup("ann").await);
    let (_carol, carol_device) = away(&s, "carol").await;
    let mut ws = s.app.ws(&ann, Some("general")).await;
    add(&s.app, &ann, "general", "carol").await;
    ws.say("general", "morning all", "c1").await;
    ws.say("general", "@ann notes to self", "c2").await;
    let mention = ws.say("general", "@carol can you review?", "c3").await;
    let got = s.push.wait_for(&carol_device, 1, PUSH_WAIT).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].payload["id"], mention["id"]);
    assert_eq!(got[0].payload["reason"], "mention");
    assert_eq!(got[0].payload["room"], "general");
    // Ann mentioned herself: never pushed to the author. The marker: one more mention.
    let ann_device = s.push.device();
    subscribe(&s.app, &ann, &ann_device).await;
    ws.say("general", "@ann again", "c4").await;
    let last = ws.say("general", "@carol ping", "c5").await;
    let got = s.push.wait_for(&carol_device, 2, PUSH_WAIT).await;
    assert_eq!(got[1].payload["id"], last["id"]);
    assert_eq!(s.push.requests(&ann_device), 0);
}

#[tokio::test]
async fn a_muted_room_is_pushed_only_for_mentions() {
    let s = spawn(Db::Sqlite, true).await;
    let ann = token(&s.app.signup("ann").await);
    let (bob, bob_device) = away(&s, "bob").await;
    let mut ws = s.app.ws(&ann, Some("general")).await;
    add(&s.app, &ann, "general", "bob").await;
    ws.say("dm:ann:bob", "hello", "c0").await;
    s.push.wait_for(&bob_device, 1, PUSH_WAIT).await;
    // Bob mutes the DM from his phone; his laptop hears it.
    let mut laptop = s.app.ws(&bob, None).await;
    let mute = |room: &str, muted: bool| {
        let (app, bob, room) = (&s.app, bob.clone(), room.to_owned());
        async move {
            app.call(
                Method::PUT,
                &format!("/api/v1/rooms/{room}/muted"),
                Some(&json!({ "muted": muted })),
                Some(&bob),
            )
            .await
        }
    };
    let (status, body) = mute("dm:ann:bob", true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["muted"], true);
    assert_eq!(
        laptop.recv_type("muted").await,
        json!({"type": "muted", "room": "dm:ann:bob", "muted": true})
    );
    laptop.close().await;
    let (status, rooms) = s.app.get("/api/v1/rooms", Some(&bob)).await;
    assert_eq!(status, StatusCode::OK);
    let dm = rooms["data"]["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["room"] == "dm:ann:bob")
        .cloned()
        .expect("the DM is listed");
    assert_eq!(dm["muted"], true, "{dm}");
    // Muted: a DM is not pushed, a mention is. The mention is the marker.
    let (status, body) = mute("general", true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    ws.say("dm:ann:bob", "are you there?", "c1").await;
    ws.say("general", "ordinary", "c2").await;
    let mention = ws.say("dm:ann:bob", "@bob this one matters", "c3").await;
    let in_general = ws.say("general", "@bob and this", "c4").await;
    let got = s.push.wait_for(&bob_device, 3, PUSH_WAIT).await;
    let ids: Vec<&Value> = got.iter().map(|p| &p.payload["id"]).collect();
    assert!(
        ids.contains(&&mention["id"]) && ids.contains(&&in_general["id"]),
        "{ids:?}"
    );
    // Unmuted again: DMs are pushed.
    let (status, _) = mute("dm:ann:bob", false).await;
    assert_eq!(status, StatusCode::OK);
    let again = ws.say("dm:ann:bob", "back", "c5").await;
    let got = s.push.wait_for(&bob_device, 4, PUSH_WAIT).await;
    assert_eq!(got[3].payload["id"], again["id"]);
    assert_eq!(got.len(), 4, "{got:?}");
    // Only members mute.
    let carol = token(&s.app.signup("carol").await);
    let (status, body) = s
        .app
        .call(
            Method::PUT,
            "/api/v1/rooms/dm:ann:bob/muted",
            Some(&json!({"muted": true})),
            Some(&carol),
        )
        .await;
    assert!(
        status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
        "{status} {body}"
    );
    let (status, _) = s
        .app
        .call(
            Method::PUT,
            "/api/v1/rooms/general/muted",
            Some(&json!({"muted": "yes"})),
            Some(&bob),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn without_previews_a_push_names_the_room_and_author_only() {
    let s = spawn(Db::Sqlite, false).await;
    let ann = token(&s.app.signup("ann").await);
    let (_bob, bob_device) = away(&s, "bob").await;
    let mut ws = s.app.ws(&ann, None).await;
    ws.say("dm:ann:bob", "the secret plan", "c1").await;
    let got = s.push.wait_for(&bob_device, 1, PUSH_WAIT).await;
    assert_eq!(got[0].payload["room"], "dm:ann:bob");
    assert_eq!(got[0].payload["author"], "ann");
    assert!(got[0].payload.get("body").is_none(), "{}", got[0].payload);
}

#[tokio::test]
async fn a_gone_subscription_is_forgotten_and_a_busy_service_is_retried() {
    let s = spawn(Db::Sqlite, true).await;
    let ann = token(&s.app.signup("ann").await);
    let (bob, old_phone) = away(&s, "bob").await;
    let laptop = s.push.device();
    subscribe(&s.app, &bob, &laptop).await;
    let reset_browser = s.push.device();
    subscribe(&s.app, &bob, &reset_browser).await;
    s.push.answer_first(&old_phone, &[410]);
    s.push.answer_first(&reset_browser, &[404]);
    s.push.answer_first(&laptop, &[429, 503]);
    let mut ws = s.app.ws(&ann, None).await;
    let first = ws.say("dm:ann:bob", "one", "c1").await;
    let got = s.push.wait_for(&laptop, 1, PUSH_WAIT).await;
    assert_eq!(got[0].payload["id"], first["id"]);
    assert_eq!(s.push.requests(&laptop), 3, "429, 503, then taken");
    let second = ws.say("dm:ann:bob", "two", "c2").await;
    let got = s.push.wait_for(&laptop, 2, PUSH_WAIT).await;
    assert_eq!(got[1].payload["id"], second["id"]);
    assert_eq!(s.push.requests(&old_phone), 1, "410 once, then never again");
    assert_eq!(
        s.push.requests(&reset_browser),
        1,
        "404 once, then never again"
    );
    assert!(s.push.faults().is_empty(), "{:?}", s.push.faults());
}

#[tokio::test]
async fn a_burst_of_dms_collapses_into_one_by_topic() {
    let s = spawn(Db::Sqlite, true).await;
    let ann = token(&s.app.signup("ann").await);
    let (_bob, bob_device) = away(&s, "bob").await;
    let mut ws = s.app.ws(&ann, Some("general")).await;
    add(&s.app, &ann, "general", "bob").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let ack = ws
            .say("dm:ann:bob", &format!("message {i}"), &format!("c{i}"))
            .await;
        ids.push(ack["id"].clone());
    }
    let got = s.push.wait_for(&bob_device, 20, PUSH_WAIT).await;
    assert_eq!(got.len(), 20);
    let topics: std::collections::HashSet<_> = got.iter().map(|p| p.topic.clone()).collect();
    assert_eq!(topics.len(), 1, "one topic for the room: {topics:?}");
    let mut pushed: Vec<_> = got.iter().map(|p| p.payload["id"].clone()).collect();
    pushed.sort_by_key(|v| v.to_string());
    let mut sent = ids.clone();
    sent.sort_by_key(|v| v.to_string());
    assert_eq!(pushed, sent, "each message pushed once");
    let showing = s.push.showing(&bob_device);
    assert_eq!(showing.len(), 1, "an offline device holds one: {showing:?}");
    // Another room has its own topic.
    ws.say("general", "@bob see the burst above", "m").await;
    s.push.wait_for(&bob_device, 21, PUSH_WAIT).await;
    assert_eq!(s.push.showing(&bob_device).len(), 2);
}
