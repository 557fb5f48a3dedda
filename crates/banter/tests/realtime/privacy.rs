//! Who may connect, and who may see a direct-message room.

use banter_testkit::{Db, TestApp, WsClient};
use serde_json::json;

use banter_testkit::token_of as token;

#[tokio::test]
async fn bad_tokens_are_refused_before_the_upgrade() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let refused = WsClient::connect(&format!("ws://{}/ws", app.addr))
        .await
        .expect_err("no token");
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body["error"], "unauthorized");
    let refused = WsClient::connect(&app.ws_url("garbage", None))
        .await
        .expect_err("garbage");
    assert_eq!(refused.status, 401);

    let login = app.signup("alice").await;
    let expired = banter_testkit::tokens::forge(&login, 900, -60);
    let refused = WsClient::connect(&app.ws_url(&expired, None))
        .await
        .expect_err("expired");
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body["error"], "token_expired");

    let refused = WsClient::connect(&app.ws_url(&token(&login), Some("bad%20room")))
        .await
        .expect_err("bad room");
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body["error"], "validation_failed");
}

#[tokio::test]
async fn direct_messages_are_for_their_two_users_only() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let alice = token(&app.signup("alice").await);
    let bob = token(&app.signup("Bob").await);
    let eve = token(&app.signup("eve").await);
    let dm = "dm:alice:bob";

    let mut a = app.ws(&alice, Some(dm)).await;
    // Bob writes the room in his own spelling; it is the same room.
    let mut b = app.ws(&bob, Some("dm:Bob:alice")).await;
    b.say(dm, "just us", "p1").await;
    let m = a.recv_type("message").await;
    assert_eq!(m["room"], dm);
    assert_eq!(m["body"], "just us");

    // Eve can neither connect to it, join it, send to it, nor read it.
    let refused = WsClient::connect(&app.ws_url(&eve, Some(dm)))
        .await
        .expect_err("eve connects to the dm");
    assert_eq!(refused.status, 403);
    let mut e = app.ws(&eve, None).await;
    e.send(&json!({"type":"join","room":dm})).await;
    assert_eq!(e.recv_type("error").await["code"], "forbidden");
    e.send(&json!({"type":"send","room":dm,"body":"let me in","client_id":"e1"}))
        .await;
    let err = e.recv_type("error").await;
    assert_eq!(err["code"], "forbidden");
    assert_eq!(err["client_id"], "e1");
    for path in [
        "/api/v1/rooms/dm:alice:bob/messages",
        "/api/v1/rooms/dm:alice:bob/presence",
    ] {
        let (status, body) = app.get(path, Some(&eve)).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (_, rooms) = app.get("/api/v1/rooms", Some(&eve)).await;
    assert!(!rooms.to_string().contains("dm:"), "{rooms}");
    let (_, rooms) = app.get("/api/v1/rooms", Some(&alice)).await;
    assert!(rooms.to_string().contains(dm), "{rooms}");
    // Eve's attempt left no trace in the room.
    let (_, page) = app
        .get("/api/v1/rooms/dm:alice:bob/messages", Some(&bob))
        .await;
    assert_eq!(
        page["data"]["messages"].as_array().expect("messages").len(),
        1
    );
    // Nor can she delete it: to her it does not exist.
    let id = m["id"].as_str().expect("id");
    let resp = app
        .client
        .delete(app.url(&format!("/api/v1/messages/{id}")))
        .bearer_auth(&eve)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 404);
}
