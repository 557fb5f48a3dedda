//! Bots and integrations over HTTP: an admin makes a bot and its token is shown once; the bot
//! posts over HTTP (the same `client_id` twice is one message) and a member on a WebSocket
//! receives it marked as a bot's; a revoked bot is refused everywhere and its socket closed;
//! a bot limited to some rooms is refused the others; incoming webhooks post as their bot
//! with Slack's body, and a wrong or revoked secret is 404 and posts nothing.

use banter_testkit::{token_of as token, Db, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn code(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("")
}

/// Makes a bot as `admin`; returns its token.
async fn make_bot(app: &TestApp, admin: &str, name: &str, rooms: Option<&[&str]>) -> String {
    let mut body = json!({ "name": name });
    if let Some(rooms) = rooms {
        body["rooms"] = json!(rooms);
    }
    let (status, made) = app.post("/api/v1/bots", &body, Some(admin)).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["data"]["name"], name);
    let token = made["data"]["token"].as_str().expect("a token").to_owned();
    assert!(token.starts_with("bnt_"), "{token}");
    token
}

async fn post(app: &TestApp, token: &str, room: &str, body: Value) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/rooms/{room}/messages"),
        &body,
        Some(token),
    )
    .await
}

async fn a_bot_posts_over_http_and_a_member_receives_it(db: Db) {
    let app = TestApp::spawn(db).await;
    let root = token(&app.signup("root").await);
    let ann = token(&app.signup("ann").await);
    let ci = make_bot(&app, &root, "cibot", None).await;
    let mut ws = app.ws(&ann, Some("general")).await;

    let (status, sent) = post(
        &app,
        &ci,
        "general",
        json!({ "body": "build passed", "client_id": "build-1" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let message = &sent["data"];
    assert_eq!(message["author"], "cibot");
    assert_eq!(message["body"], "build passed");
    assert_eq!(message["bot"], true);
    assert_eq!(message["client_id"], "build-1");
    assert!(message["cursor"].as_str().is_some_and(|c| c.len() == 24));

    let got = ws.recv_messages("general", 1).await;
    assert_eq!(got[0]["id"], message["id"]);
    assert_eq!(got[0]["author"], "cibot");
    assert_eq!(got[0]["bot"], true);

    // The same client id again is the first message, not a second one.
    let (status, again) = post(
        &app,
        &ci,
        "general",
        json!({ "body": "build passed", "client_id": "build-1" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["data"]["id"], message["id"]);
    assert_eq!(again["data"]["cursor"], message["cursor"]);
    // A reply over HTTP by a person's token joins the thread; it is what ann sees next, so
    // no second copy of the bot's came between.
    let (status, reply) = post(
        &app,
        &ann,
        "general",
        json!({ "body": "thanks", "reply_to": message["id"] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["data"]["thread_root"], message["id"]);
    assert!(reply["data"].get("bot").is_none(), "{reply}");
    let next = ws.recv_messages("general", 1).await;
    assert_eq!(next[0]["body"], "thanks");
    assert_eq!(
        app.history_bodies("general", &ann).await,
        ["build passed", "thanks"]
    );
    let (_, page) = app.get("/api/v1/rooms/general/messages", Some(&ann)).await;
    assert_eq!(page["data"]["messages"][0]["bot"], true, "{page}");

    // Marked as a bot among the members, in /me and in the admin's list.
    let (_, members) = app.get("/api/v1/rooms/general/members", Some(&ann)).await;
    let members = members["data"]["members"].as_array().expect("members");
    let of = |name: &str| members.iter().find(|m| m["username"] == name).cloned();
    assert_eq!(of("cibot").expect("ci is a member")["bot"], true);
    assert!(of("ann").expect("ann").get("bot").is_none());
    let (_, me) = app.get("/api/v1/me", Some(&ci)).await;
    assert_eq!(me["data"]["username"], "cibot");
    assert_eq!(me["data"]["bot"], true);
    let (_, bots) = app.get("/api/v1/bots", Some(&root)).await;
    assert_eq!(bots["data"]["bots"][0]["name"], "cibot", "{bots}");
    assert_eq!(bots["data"]["bots"][0]["created_by"], "root");
    assert_eq!(bots["data"]["bots"][0]["revoked"], false);

    // A bot's token also opens a socket, so a bot can listen and answer.
    let mut bot_ws = app.ws(&ci, Some("general")).await;
    bot_ws.say("general", "from the socket", "s1").await;
    let got = ws.recv_messages("general", 1).await;
    assert_eq!(got[0]["bot"], true);
    assert_eq!(got[0]["body"], "from the socket");

    // A bot cannot log in with a password: it has none.
    let (status, _) = app.login("cibot", "password123").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_bot_posts_over_http_and_a_member_receives_it_sqlite() {
    a_bot_posts_over_http_and_a_member_receives_it(Db::Sqlite).await;
}

#[tokio::test]
async fn a_bot_posts_over_http_and_a_member_receives_it_postgres() {
    a_bot_posts_over_http_and_a_member_receives_it(Db::Postgres).await;
}

#[tokio::test]
async fn only_admins_make_bots_and_names_are_checked() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let root = token(&app.signup("root").await);
    let ann = token(&app.signup("ann").await);
    let (status, body) = app
        .post("/api/v1/bots", &json!({ "name": "cibot" }), Some(&ann))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = app.get("/api/v1/bots", Some(&ann)).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = app
        .post("/api/v1/bots", &json!({ "name": "no spaces" }), Some(&root))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["data"]["field"], "name", "{body}");
    let (status, body) = app
        .post("/api/v1/bots", &json!({ "name": "Ann" }), Some(&root))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"));
    let (status, body) = app
        .post(
            "/api/v1/bots",
            &json!({ "name": "cibot", "rooms": ["bad room!"] }),
            Some(&root),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["data"]["field"], "rooms", "{body}");
    let (status, body) = post(&app, &ann, "general", json!({ "body": "" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = post(&app, "bnt_not-a-token", "general", json!({ "body": "x" })).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (_, audit) = app.get("/api/v1/admin/audit", Some(&root)).await;
    assert!(
        audit["data"]["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .all(|e| e["action"] != "bot.create"),
        "nothing was made: {audit}"
    );
}

async fn a_revoked_bot_is_refused_everywhere(db: Db) {
    let app = TestApp::spawn(db).await;
    let root = token(&app.signup("root").await);
    let ci = make_bot(&app, &root, "cibot", None).await;
    let mut bot_ws = app.ws(&ci, Some("general")).await;
    let (status, _) = post(&app, &ci, "general", json!({ "body": "before" })).await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, body) = app
        .call(Method::DELETE, "/api/v1/bots/cibot", None, Some(&root))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(bot_ws.closed().await, Some(4003), "its socket is closed");
    let (status, body) = post(&app, &ci, "general", json!({ "body": "after" })).await;
    assert!(
        status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN,
        "{status} {body}"
    );
    let refused = banter_testkit::WsClient::connect(&app.ws_url(&ci, None)).await;
    assert!(refused.is_err(), "a revoked bot opens no socket");
    assert_eq!(app.history_bodies("general", &root).await, ["before"]);
    let (_, bots) = app.get("/api/v1/bots", Some(&root)).await;
    assert_eq!(bots["data"]["bots"][0]["revoked"], true, "{bots}");
    let (status, _) = app
        .call(Method::DELETE, "/api/v1/bots/nobody", None, Some(&root))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A person is no bot to revoke.
    let (status, _) = app
        .call(Method::DELETE, "/api/v1/bots/root", None, Some(&root))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_revoked_bot_is_refused_everywhere_sqlite() {
    a_revoked_bot_is_refused_everywhere(Db::Sqlite).await;
}

#[tokio::test]
async fn a_revoked_bot_is_refused_everywhere_postgres() {
    a_revoked_bot_is_refused_everywhere(Db::Postgres).await;
}

#[tokio::test]
async fn a_bot_limited_to_a_room_is_refused_the_others() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let root = token(&app.signup("root").await);
    let ann = token(&app.signup("ann").await);
    let mut ws = app.ws(&ann, Some("general")).await;
    let ci = make_bot(&app, &root, "cibot", Some(&["builds"])).await;
    let (status, body) = post(&app, &ci, "builds", json!({ "body": "green" })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = post(&app, &ci, "general", json!({ "body": "leak" })).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = app.get("/api/v1/rooms/general/messages", Some(&ci)).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, _) = app.get("/api/v1/search?q=hello", Some(&ci)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no search across rooms");
    let (status, _) = app
        .get("/api/v1/search?q=green&room=builds", Some(&ci))
        .await;
    assert_eq!(status, StatusCode::OK, "its own room is searched");
    let refused = banter_testkit::WsClient::connect(&app.ws_url(&ci, Some("general"))).await;
    assert!(refused.is_err(), "no socket into another room");

    // Added to another room by someone, it still may not use it, nor list it.
    let (status, body) = app
        .post(
            "/api/v1/rooms/general/members",
            &json!({ "username": "cibot" }),
            Some(&ann),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post(&app, &ci, "general", json!({ "body": "leak" })).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (_, rooms) = app.get("/api/v1/rooms", Some(&ci)).await;
    let names: Vec<&str> = rooms["data"]["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .filter_map(|r| r["room"].as_str())
        .collect();
    assert_eq!(names, ["builds"]);
    // Ann saw the member frame and nothing from the bot in general.
    ws.say("general", "marker", "m1").await;
    let got = ws.recv_messages("general", 1).await;
    assert_eq!(got[0]["body"], "marker");
    assert_eq!(app.history_bodies("general", &ann).await, ["marker"]);
}

/// Makes a webhook for `room` as `token`'s user; returns its `data`.
async fn make_hook(app: &TestApp, token: &str, room: &str, body: Value) -> Value {
    let (status, made) = app
        .post(
            &format!("/api/v1/rooms/{room}/webhooks"),
            &body,
            Some(token),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    made["data"].clone()
}

/// The path of a webhook's URL (the URL names this server as the request reached it).
fn path_of(hook: &Value) -> String {
    let url = hook["url"].as_str().expect("a url");
    let at = url.find("/api/v1/hooks/").expect("a hook path");
    url[at..].to_owned()
}

async fn an_incoming_webhook_posts_as_its_bot(db: Db) {
    let app = TestApp::spawn(db).await;
    let root = token(&app.signup("root").await);
    let ann = token(&app.signup("ann").await);
    let bob = token(&app.signup("bob").await);
    let mut ws = app.ws(&ann, Some("deploys")).await;
    let hook = make_hook(&app, &ann, "deploys", json!({ "name": "deployer" })).await;
    assert_eq!(hook["name"], "deployer");
    assert!(hook["url"]
        .as_str()
        .is_some_and(|u| u.starts_with(&app.url("/api/v1/hooks/bwh_"))));
    let added = ws.recv_type("member").await;
    assert_eq!(
        (added["op"].as_str(), added["user"].as_str()),
        (Some("added"), Some("deployer"))
    );

    // Slack's body: text, and username shown as a label.
    let url = path_of(&hook);
    let (status, posted) = app
        .post(
            &url,
            &json!({ "text": "v1.2 is live", "username": "Jenkins" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{posted}");
    let got = ws.recv_messages("deploys", 1).await;
    assert_eq!(got[0]["body"], "v1.2 is live");
    assert_eq!(got[0]["author"], "deployer");
    assert_eq!(got[0]["bot"], true);
    assert_eq!(got[0]["label"], "Jenkins");
    // Slack's form body too.
    let resp = reqwest::Client::new()
        .post(app.url(&url))
        .form(&[("payload", r#"{"text":"from a form"}"#)])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::OK);
    let got = ws.recv_messages("deploys", 1).await;
    assert_eq!(got[0]["body"], "from a form");
    assert!(got[0].get("label").is_none(), "{}", got[0]);

    // A wrong secret is 404 and posts nothing; neither does a body without text.
    let wrong = format!("/api/v1/hooks/bwh_{}", "x".repeat(43));
    let (status, body) = app.post(&wrong, &json!({ "text": "no" }), None).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = app
        .post("/api/v1/hooks/anything", &json!({ "text": "no" }), None)
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = app.post(&url, &json!({ "icon_emoji": ":x:" }), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["data"]["field"], "text");

    // Listed to the room's members and admins, never with its secret.
    let (status, list) = app.get("/api/v1/rooms/deploys/webhooks", Some(&ann)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let hooks = list["data"]["webhooks"].as_array().expect("webhooks");
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["created_by"], "ann");
    assert!(hooks[0].get("url").is_none());
    let (status, _) = app.get("/api/v1/rooms/deploys/webhooks", Some(&root)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/api/v1/rooms/deploys/webhooks", Some(&bob)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Only its maker (or an admin) revokes it; then its URL is 404.
    let id = hook["id"].as_str().expect("id");
    let path = format!("/api/v1/rooms/deploys/webhooks/{id}");
    let (status, _) = app.call(Method::DELETE, &path, None, Some(&bob)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app.call(Method::DELETE, &path, None, Some(&ann)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app.post(&url, &json!({ "text": "too late" }), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app.get("/api/v1/rooms/deploys/webhooks", Some(&ann)).await;
    assert_eq!(list["data"]["webhooks"], json!([]));

    ws.say("deploys", "marker", "m1").await;
    let got = ws.recv_messages("deploys", 1).await;
    assert_eq!(got[0]["body"], "marker", "nothing came between");
    assert_eq!(
        app.history_bodies("deploys", &ann).await,
        ["v1.2 is live", "from a form", "marker"]
    );
}

#[tokio::test]
async fn an_incoming_webhook_posts_as_its_bot_sqlite() {
    an_incoming_webhook_posts_as_its_bot(Db::Sqlite).await;
}

#[tokio::test]
async fn an_incoming_webhook_posts_as_its_bot_postgres() {
    an_incoming_webhook_posts_as_its_bot(Db::Postgres).await;
}

#[tokio::test]
async fn webhooks_are_for_members_and_private_rooms_owners() {
    let app = TestApp::spawn(Db::Sqlite).await;
    app.signup("root").await;
    let ann = token(&app.signup("ann").await);
    let bob = token(&app.signup("bob").await);
    let (status, body) = app
        .post(
            "/api/v1/rooms",
            &json!({ "name": "secret", "kind": "private" }),
            Some(&ann),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .post("/api/v1/rooms/secret/webhooks", &json!({}), Some(&bob))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = app
        .post(
            "/api/v1/rooms/secret/members",
            &json!({ "username": "bob" }),
            Some(&ann),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A member who may not add members cannot add a webhook's bot either; nothing is left.
    let (status, body) = app
        .post("/api/v1/rooms/secret/webhooks", &json!({}), Some(&bob))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (_, list) = app.get("/api/v1/rooms/secret/webhooks", Some(&ann)).await;
    assert_eq!(list["data"]["webhooks"], json!([]), "{list}");
    let hook = make_hook(&app, &ann, "secret", json!({})).await;
    assert!(hook["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("secret-hook-")));
    let (status, _) = app
        .post(
            &path_of(&hook),
            &json!({ "text": "only for members" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.history_bodies("secret", &bob).await,
        ["only for members"]
    );
    let (status, body) = app
        .post("/api/v1/rooms/dm:ann:bob/webhooks", &json!({}), Some(&ann))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}
