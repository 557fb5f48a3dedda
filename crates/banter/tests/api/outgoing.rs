//! Outgoing webhooks against a receiver on loopback (allowed by the setting, as an operator
//! would for a receiver on the same machine): deliveries are signed and timestamped, only
//! messages with the trigger word go, a 500 is retried, a receiver that keeps failing is given
//! up after the bound, a webhook revoked between tries is sent nothing more, a reply is posted
//! back as the webhook's bot, and a private address is refused when the setting is off (the
//! default).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use banter_testkit::{token_of as token, Db, Options, TestApp};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::watch;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON delivery")
    }
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    /// What to answer, in order; then 200 with no body.
    script: Arc<Mutex<VecDeque<(u16, String)>>>,
    count: Arc<Mutex<Option<watch::Sender<usize>>>>,
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> (AxumStatus, String) {
    let n = {
        let mut got = r.got.lock().expect("lock");
        got.push(Received { headers, body });
        got.len()
    };
    if let Some(tx) = r.count.lock().expect("lock").as_ref() {
        tx.send_replace(n);
    }
    let (status, body) = r
        .script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or((200, String::new()));
    (AxumStatus::from_u16(status).expect("status"), body)
}

/// A receiver on 127.0.0.1:0; returns it, its URL, and a watch of how many requests it got.
async fn receiver(script: &[(u16, &str)]) -> (Receiver, String, watch::Receiver<usize>) {
    let r = Receiver::default();
    r.script
        .lock()
        .expect("lock")
        .extend(script.iter().map(|(s, b)| (*s, (*b).to_owned())));
    let (tx, rx) = watch::channel(0);
    *r.count.lock().expect("lock") = Some(tx);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, url, rx)
}

async fn until_count(rx: &mut watch::Receiver<usize>, n: usize) {
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|c| *c >= n))
        .await
        .unwrap_or_else(|_| panic!("{n} deliveries within 20 s"))
        .expect("the receiver is up");
}

fn loopback_allowed() -> Options {
    let mut options = Options::default();
    options.gateway.hooks.allow_private = true;
    options.gateway.hooks.attempts = 3;
    options.gateway.hooks.first_retry = Duration::from_millis(50);
    options
}

fn verify(secret: &str, r: &Received) {
    let timestamp: i64 = r.headers["x-banter-timestamp"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a number");
    assert!(
        (chrono::Utc::now().timestamp() - timestamp).abs() < 60,
        "a fresh timestamp"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&r.body);
    let want = format!("v1={}", hex_of(&mac.finalize().into_bytes()));
    assert_eq!(
        r.headers["x-banter-signature"].to_str().expect("ascii"),
        want
    );
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn revoke(app: &TestApp, token: &str, room: &str, id: &str) -> StatusCode {
    let path = format!("/api/v1/rooms/{room}/outgoing-webhooks/{id}");
    app.call(Method::DELETE, &path, None, Some(token)).await.0
}

/// Waits for `banter_webhook_deliveries_total{outcome}` to pass `before`.
async fn until_more(app: &TestApp, outcome: &str, before: u64) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while deliveries(app, outcome).await <= before {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("a delivery {outcome} within 20 s"));
}

async fn make(app: &TestApp, token: &str, room: &str, body: Value) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/rooms/{room}/outgoing-webhooks"),
        &body,
        Some(token),
    )
    .await
}

#[tokio::test]
async fn deliveries_are_signed_retried_after_a_500_and_replies_come_back() {
    let app = TestApp::spawn_with(Db::Sqlite, loopback_allowed()).await;
    app.signup("root").await;
    let ann = token(&app.signup("ann").await);
    let mut ws = app.ws(&ann, Some("builds")).await;
    let (receiver, url, mut count) =
        receiver(&[(500, "down"), (200, r#"{"text":"all green"}"#)]).await;
    let (status, made) = make(
        &app,
        &ann,
        "builds",
        json!({ "url": url, "trigger": "!ci", "name": "ci-out" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let secret = made["data"]["secret"]
        .as_str()
        .expect("a secret")
        .to_owned();
    assert!(secret.starts_with("bws_"));
    assert_eq!(made["data"]["trigger"], "!ci");

    ws.say("builds", "no trigger here", "m1").await;
    let asked = ws.say("builds", "!ci status", "m2").await;
    // Tried, refused with a 500, tried again: two deliveries of the same message.
    until_count(&mut count, 2).await;
    let reply = loop {
        let frame = ws.recv_type("message").await;
        if frame["author"] == "ci-out" {
            break frame;
        }
    };
    assert_eq!(reply["body"], "all green");
    assert_eq!(reply["bot"], true);
    // A marker: the next delivery is of it, so the message without the trigger never went.
    ws.say("builds", "!ci marker", "m3").await;
    until_count(&mut count, 3).await;
    let got = receiver.got.lock().expect("lock").clone();
    let texts: Vec<Value> = got.iter().map(|r| r.json()["text"].clone()).collect();
    assert_eq!(texts, ["!ci status", "!ci status", "!ci marker"]);
    for r in &got {
        verify(&secret, r);
        assert_eq!(r.headers["content-type"], "application/json");
    }
    let first = got[0].json();
    assert_eq!(first["message"]["id"], asked["id"]);
    assert_eq!(first["user_name"], "ann");
    assert_eq!(first["channel_name"], "builds");
    assert_eq!(first["trigger_word"], "!ci");
    assert_eq!(
        got[0].headers["x-banter-delivery"],
        got[1].headers["x-banter-delivery"]
    );
    assert_eq!(
        app.history_bodies("builds", &ann).await,
        ["no trigger here", "!ci status", "all green", "!ci marker"],
        "the reply is posted once, as a message of the room"
    );

    // Listed to members without its secret; its maker revokes it.
    let (_, list) = app
        .get("/api/v1/rooms/builds/outgoing-webhooks", Some(&ann))
        .await;
    let hooks = list["data"]["webhooks"].as_array().expect("webhooks");
    assert_eq!(hooks.len(), 1);
    assert!(hooks[0].get("secret").is_none());
    let id = made["data"]["id"].as_str().expect("id");
    assert_eq!(revoke(&app, &ann, "builds", id).await, StatusCode::OK);
    let (_, list) = app
        .get("/api/v1/rooms/builds/outgoing-webhooks", Some(&ann))
        .await;
    assert_eq!(list["data"]["webhooks"], json!([]));
}

/// `banter_webhook_deliveries_total{outcome=...}` as /metrics says.
async fn deliveries(app: &TestApp, outcome: &str) -> u64 {
    let line = format!("banter_webhook_deliveries_total{{outcome=\"{outcome}\"}}");
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with(&line))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_is_given_up_after_the_bound() {
    let app = TestApp::spawn_with(Db::Sqlite, loopback_allowed()).await;
    app.signup("root").await;
    let ann = token(&app.signup("ann").await);
    let mut ws = app.ws(&ann, Some("builds")).await;
    let (receiver, url, mut count) = receiver(&[(500, ""); 10]).await;
    let (status, made) = make(&app, &ann, "builds", json!({ "url": url })).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let before = deliveries(&app, "given_up").await;
    ws.say("builds", "deploy please", "d1").await;
    until_count(&mut count, 3).await;
    until_more(&app, "given_up", before).await;
    assert_eq!(
        receiver.got.lock().expect("lock").len(),
        3,
        "three tries, no more"
    );
    // The room went on meanwhile: nothing of it waited for the receiver.
    assert_eq!(app.history_bodies("builds", &ann).await, ["deploy please"]);
}

#[tokio::test]
async fn private_addresses_are_refused_unless_the_operator_allows_them() {
    let app = TestApp::spawn(Db::Sqlite).await;
    app.signup("root").await;
    let ann = token(&app.signup("ann").await);
    let bob = token(&app.signup("bob").await);
    let _ws = app.ws(&ann, Some("builds")).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest",
        "http://[::1]/",
        "ftp://example.com/",
    ] {
        let (status, body) = make(&app, &ann, "builds", json!({ "url": url })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_eq!(body["data"]["field"], "url", "{url}");
    }
    let (status, body) = make(
        &app,
        &ann,
        "builds",
        json!({ "url": "https://example.com/x", "trigger": "two words" }),
    )
    .await;
    assert_eq!(
        (status, body["data"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("trigger"))
    );
    let (status, _) = make(
        &app,
        &bob,
        "builds",
        json!({ "url": "https://example.com/x" }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only members");
    let (_, list) = app
        .get("/api/v1/rooms/builds/outgoing-webhooks", Some(&ann))
        .await;
    assert_eq!(list["data"]["webhooks"], json!([]), "nothing was made");
}

/// A webhook revoked while a delivery to it waits to be tried again is sent nothing more:
/// whether it still stands is read before every try (on the cluster it may be revoked on a
/// gateway other than the one delivering, which knows the room's webhooks for a while).
#[tokio::test]
async fn a_webhook_revoked_between_tries_is_sent_nothing_more() {
    let app = TestApp::spawn_with(Db::Sqlite, loopback_allowed()).await;
    app.signup("root").await;
    let ann = token(&app.signup("ann").await);
    let mut ws = app.ws(&ann, Some("builds")).await;
    // The receiver answers 500, but only once the test has revoked the webhook: the next try
    // comes after the revocation whatever the machine's speed.
    let (arrived_tx, mut arrived) = watch::channel(0usize);
    let (revoked_tx, revoked) = watch::channel(false);
    let held = move || {
        let (arrived_tx, mut revoked) = (arrived_tx.clone(), revoked.clone());
        async move {
            arrived_tx.send_modify(|n| *n += 1);
            revoked.wait_for(|r| *r).await.expect("the test is running");
            AxumStatus::INTERNAL_SERVER_ERROR
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let receiver = axum::Router::new().route("/hook", axum::routing::post(held));
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let (status, made) = make(&app, &ann, "builds", json!({ "url": url })).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["data"]["id"].as_str().expect("id").to_owned();
    let before = deliveries(&app, "revoked").await;
    ws.say("builds", "deploy please", "d1").await;
    until_count(&mut arrived, 1).await;
    assert_eq!(revoke(&app, &ann, "builds", &id).await, StatusCode::OK);
    revoked_tx.send_replace(true);
    // The next try finds it revoked.
    until_more(&app, "revoked", before).await;
    assert_eq!(*arrived.borrow(), 1, "one try, before the revocation");
}
