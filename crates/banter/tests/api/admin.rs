//! Administration over HTTP: the first account is the admin; every admin route refuses anyone
//! else; deactivation closes the person's sockets (4003) and refuses their still-valid token,
//! their refresh token and their logins until reactivation; invites admit once, N times, and
//! not when expired or used up; registration closed (by an admin or by the operator); and the
//! audit log lists each action with who, on whom and from where.

use banter_auth::{Registration, RegistrationPolicy};
use banter_testkit::{token_of as token, Db, Options, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    app.call(method, path, body.as_ref(), token).await
}

fn code(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("")
}

/// Every admin route, with a body where it takes one. `{user}` and `{invite}` are filled in.
fn routes(user: &str, invite: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/api/v1/admin/users?q=".into(), None),
        (
            Method::POST,
            format!("/api/v1/admin/users/{user}/deactivate"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/users/{user}/reactivate"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/admin/users/{user}/admin"),
            Some(json!({ "admin": false })),
        ),
        (Method::GET, "/api/v1/admin/invites".into(), None),
        (
            Method::POST,
            "/api/v1/admin/invites".into(),
            Some(json!({ "uses": 1 })),
        ),
        (
            Method::DELETE,
            format!("/api/v1/admin/invites/{invite}"),
            None,
        ),
        (Method::GET, "/api/v1/admin/settings".into(), None),
        (
            Method::PUT,
            "/api/v1/admin/settings".into(),
            Some(json!({ "registration": "open" })),
        ),
        (Method::GET, "/api/v1/admin/audit".into(), None),
    ]
}

async fn every_admin_route_is_for_admins_only(db: Db) {
    let app = TestApp::spawn(db).await;
    let root = app.signup("root").await;
    let bob = app.signup("bob").await;
    app.signup("carl").await;
    let (root, bob) = (token(&root), token(&bob));
    let (status, me) = app.get("/api/v1/me", Some(&root)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["data"]["admin"], true, "the first account is an admin");
    let (_, me) = app.get("/api/v1/me", Some(&bob)).await;
    assert_eq!(me["data"]["admin"], false);

    let (status, made) = call(
        &app,
        Method::POST,
        "/api/v1/admin/invites",
        Some(json!({})),
        Some(&root),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let invite = made["data"]["id"].as_str().expect("id").to_owned();
    for (method, path, body) in routes("carl", &invite) {
        let (status, answer) = call(&app, method.clone(), &path, body.clone(), Some(&bob)).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{method} {path} as bob: {answer}"
        );
        assert_eq!(code(&answer), "forbidden", "{method} {path}");
        let (status, _) = call(&app, method.clone(), &path, body.clone(), None).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token"
        );
        let (status, answer) = call(&app, method.clone(), &path, body, Some(&root)).await;
        assert!(
            status.is_success(),
            "{method} {path} as root: {status} {answer}"
        );
    }
    // Bob's refusals changed nothing: carl is still an ordinary, active account.
    let (_, page) = app.get("/api/v1/admin/users?q=carl", Some(&root)).await;
    let users = page["data"]["users"].as_array().expect("users");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["username"], "carl");
    assert_eq!(users[0]["admin"], false);
    assert_eq!(users[0]["deactivated_at"], Value::Null);
    assert!(app.login("carl", "password123").await.0.is_success());

    // Rights given are rights held: bob, made admin, may now; nobody takes their own away.
    let (status, _) = call(
        &app,
        Method::PUT,
        "/api/v1/admin/users/bob/admin",
        Some(json!({ "admin": true })),
        Some(&root),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/api/v1/admin/users", Some(&bob)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = call(
        &app,
        Method::PUT,
        "/api/v1/admin/users/root/admin",
        Some(json!({ "admin": false })),
        Some(&root),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, answer) = call(
        &app,
        Method::POST,
        "/api/v1/admin/users/ROOT/deactivate",
        None,
        Some(&root),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, answer) = call(
        &app,
        Method::POST,
        "/api/v1/admin/users/nobody/deactivate",
        None,
        Some(&root),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
}

#[tokio::test]
async fn every_admin_route_is_for_admins_only_sqlite() {
    every_admin_route_is_for_admins_only(Db::Sqlite).await;
}

#[tokio::test]
async fn every_admin_route_is_for_admins_only_postgres() {
    every_admin_route_is_for_admins_only(Db::Postgres).await;
}

async fn a_deactivated_person_is_shut_out_everywhere_until_reactivated(db: Db) {
    let app = TestApp::spawn(db).await;
    let root = token(&app.signup("root").await);
    let dee_login = app.signup("dee").await;
    // Issued a minute ago, still valid for ten: a token from before the deactivation.
    let dee = banter_testkit::tokens::forge(&dee_login, 60, 600);
    let mut socket = app.ws(&dee, None).await;
    let mut second = app.ws(&dee, None).await;

    let (status, answer) = call(
        &app,
        Method::POST,
        "/api/v1/admin/users/dee/deactivate",
        None,
        Some(&root),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["data"]["deactivated_at"].is_string());
    assert_eq!(socket.closed().await, Some(4003));
    assert_eq!(second.closed().await, Some(4003));

    // The access token has not expired, and is refused anyway: over HTTP and WebSocket.
    let (status, answer) = app.get("/api/v1/rooms", Some(&dee)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(code(&answer), "account_disabled");
    let (status, answer) = app.get("/api/v1/me", Some(&dee)).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::FORBIDDEN, "account_disabled")
    );
    let refused = banter_testkit::WsClient::connect(&app.ws_url(&dee, None))
        .await
        .expect_err("a WebSocket of a deactivated account");
    assert_eq!(refused.status, 403, "{}", refused.body);
    // Its refresh token was revoked, and logging in again is refused.
    let (status, answer) = app
        .post(
            "/api/v1/refresh",
            &json!({ "refresh_token": dee_login["refresh_token"] }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let (status, answer) = app.login("dee", "password123").await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::FORBIDDEN, "account_disabled")
    );
    // A wrong password says only that.
    let (status, answer) = app.login("dee", "wrong-password").await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );

    let (status, _) = call(
        &app,
        Method::POST,
        "/api/v1/admin/users/dee/reactivate",
        None,
        Some(&root),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, again) = app.login("dee", "password123").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let fresh = token(&again["data"]);
    assert_eq!(
        app.get("/api/v1/rooms", Some(&fresh)).await.0,
        StatusCode::OK
    );
    app.ws(&fresh, None).await.close().await;
    // The token from before stays refused (it was issued before the deactivation).
    let (status, answer) = app.get("/api/v1/rooms", Some(&dee)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");

    let (_, log) = app.get("/api/v1/admin/audit", Some(&root)).await;
    let entries = log["data"]["entries"].as_array().expect("entries");
    let actions: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str(),
                e["target"].as_str(),
                e["actor"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            (Some("user.reactivate"), Some("dee"), Some("root")),
            (Some("user.deactivate"), Some("dee"), Some("root")),
        ]
    );
    assert_eq!(entries[0]["address"], "127.0.0.1");
    assert!(entries[0]["at"].is_string());
}

#[tokio::test]
async fn a_deactivated_person_is_shut_out_everywhere_until_reactivated_sqlite() {
    a_deactivated_person_is_shut_out_everywhere_until_reactivated(Db::Sqlite).await;
}

#[tokio::test]
async fn a_deactivated_person_is_shut_out_everywhere_until_reactivated_postgres() {
    a_deactivated_person_is_shut_out_everywhere_until_reactivated(Db::Postgres).await;
}

async fn register_with(app: &TestApp, username: &str, invite: Option<&str>) -> (StatusCode, Value) {
    let mut body = json!({ "username": username, "password": "password123" });
    if let Some(code) = invite {
        body["invite"] = json!(code);
    }
    app.post("/api/v1/register", &body, None).await
}

async fn set_registration(app: &TestApp, admin: &str, mode: &str) {
    let (status, answer) = call(
        app,
        Method::PUT,
        "/api/v1/admin/settings",
        Some(json!({ "registration": mode })),
        Some(admin),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["data"]["registration"], mode);
    let (_, public) = app.get("/api/v1/register", None).await;
    assert_eq!(public["data"]["registration"], mode);
}

async fn invites_admit_once_n_times_and_never_expired(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, public) = app.get("/api/v1/register", None).await;
    assert_eq!(public["data"]["registration"], "open");
    let root = token(&app.signup("root").await);
    set_registration(&app, &root, "invite").await;

    let (status, answer) = register_with(&app, "ann", None).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::FORBIDDEN, "registration_closed")
    );

    let invite = |uses: u32| {
        let app = &app;
        let root = root.clone();
        async move {
            let (status, made) = call(
                app,
                Method::POST,
                "/api/v1/admin/invites",
                Some(json!({ "uses": uses, "expires_in": 3600 })),
                Some(&root),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{made}");
            let code = made["data"]["code"].as_str().expect("code").to_owned();
            assert_eq!(made["data"]["url"], format!("/join/{code}"));
            code
        }
    };
    let once = invite(1).await;
    assert_eq!(
        register_with(&app, "ann", Some(&once)).await.0,
        StatusCode::CREATED
    );
    let (status, answer) = register_with(&app, "ben", Some(&once)).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::FORBIDDEN, "registration_closed")
    );

    let thrice = invite(3).await;
    // A name already taken spends no use.
    assert_eq!(
        register_with(&app, "ANN", Some(&thrice)).await.0,
        StatusCode::CONFLICT
    );
    for name in ["ben", "cat", "dan"] {
        let (status, answer) = register_with(&app, name, Some(&thrice)).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {answer}");
    }
    let (status, _) = register_with(&app, "eve", Some(&thrice)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        register_with(&app, "eve", Some("made-up")).await.0,
        StatusCode::FORBIDDEN
    );
    // Those who joined sign in like anyone.
    assert_eq!(app.login("dan", "password123").await.0, StatusCode::OK);

    // An invite past its expiry (the API makes none that short: it is put in the store).
    let store = app.db.store().await;
    let root_id = store
        .account("root")
        .await
        .expect("root")
        .expect("found")
        .user
        .id;
    let stale = banter_auth::InviteCode::generate();
    let now = banter_store::now();
    store
        .create_invite(
            &banter_store::NewInvite {
                id: uuid::Uuid::new_v4(),
                code_hash: stale.digest.clone(),
                created_by: root_id,
                created_at: now - chrono::Duration::hours(2),
                expires_at: now - chrono::Duration::hours(1),
                uses: 10,
            },
            &banter_store::NewAudit {
                at: now,
                actor_id: Some(root_id),
                actor: "root".into(),
                action: "invite.create",
                target: "stale".into(),
                detail: json!({}),
                address: None,
            },
        )
        .await
        .expect("an expired invite");
    store.close().await;
    let (status, answer) = register_with(&app, "eve", Some(&stale.code)).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::FORBIDDEN, "registration_closed")
    );

    // The list shows uses, never codes; a revoked invite admits nobody.
    let (_, list) = app.get("/api/v1/admin/invites", Some(&root)).await;
    let invites = list["data"]["invites"].as_array().expect("invites");
    assert_eq!(invites.len(), 3);
    assert!(invites.iter().all(|i| i.get("code").is_none()));
    let fresh = invite(5).await;
    let (_, list) = app.get("/api/v1/admin/invites", Some(&root)).await;
    let id = list["data"]["invites"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, revoked) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/admin/invites/{id}"),
        None,
        Some(&root),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revoked["data"]["revoked"], true);
    assert_eq!(
        register_with(&app, "eve", Some(&fresh)).await.0,
        StatusCode::FORBIDDEN
    );

    for (uses, ttl) in [(0, 3600), (1001, 3600), (1, 59), (1, 2_592_001)] {
        let (status, answer) = call(
            &app,
            Method::POST,
            "/api/v1/admin/invites",
            Some(json!({ "uses": uses, "expires_in": ttl })),
            Some(&root),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uses} {ttl}: {answer}");
    }

    // Closed: nobody, invite or not.
    set_registration(&app, &root, "closed").await;
    let spare = invite(5).await;
    let (status, answer) = register_with(&app, "fay", Some(&spare)).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::FORBIDDEN, "registration_closed")
    );
    set_registration(&app, &root, "open").await;
    assert_eq!(
        register_with(&app, "fay", None).await.0,
        StatusCode::CREATED
    );

    let (_, log) = app.get("/api/v1/admin/audit?limit=100", Some(&root)).await;
    let actions: Vec<&str> = log["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "settings.registration",
            "invite.create",
            "settings.registration",
            "invite.revoke",
            "invite.create",
            "invite.create",
            "invite.create",
            "invite.create",
            "settings.registration",
        ]
    );
    let (status, _) = call(
        &app,
        Method::PUT,
        "/api/v1/admin/settings",
        Some(json!({ "registration": "sometimes" })),
        Some(&root),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn invites_admit_once_n_times_and_never_expired_sqlite() {
    invites_admit_once_n_times_and_never_expired(Db::Sqlite).await;
}

#[tokio::test]
async fn invites_admit_once_n_times_and_never_expired_postgres() {
    invites_admit_once_n_times_and_never_expired(Db::Postgres).await;
}

#[tokio::test]
async fn registration_the_operator_closed_stays_closed_after_its_first_admin() {
    let mut options = Options::default();
    options.gateway.admin.registration = RegistrationPolicy {
        locked: Some(Registration::Closed),
    };
    let app = TestApp::spawn_with(Db::Sqlite, options).await;
    // An empty server takes its first account, the admin who opens it (the sign-in page
    // offers it); then nobody.
    let (_, public) = app.get("/api/v1/register", None).await;
    assert_eq!(public["data"]["registration"], "open");
    let ops = token(&app.signup("ops").await);
    let (_, public) = app.get("/api/v1/register", None).await;
    assert_eq!(public["data"]["registration"], "closed");
    let (status, answer) = app.register("second", "password123").await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::FORBIDDEN, "registration_closed")
    );
    let (status, settings) = app.get("/api/v1/admin/settings", Some(&ops)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the first account is an admin: {settings}"
    );
    assert_eq!(settings["data"]["registration"], "closed");
    assert_eq!(settings["data"]["registration_locked"], true);
    let (status, answer) = call(
        &app,
        Method::PUT,
        "/api/v1/admin/settings",
        Some(json!({ "registration": "open" })),
        Some(&ops),
    )
    .await;
    assert_eq!((status, code(&answer)), (StatusCode::CONFLICT, "conflict"));
    // Closed means closed: an invite does not open it.
    let (_, made) = call(
        &app,
        Method::POST,
        "/api/v1/admin/invites",
        Some(json!({})),
        Some(&ops),
    )
    .await;
    let invite = made["data"]["code"].as_str().expect("code");
    let (status, _) = register_with(&app, "third", Some(invite)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_invite_only_server_takes_its_first_admin_without_an_invite() {
    let mut options = Options::default();
    options.gateway.admin.registration = RegistrationPolicy {
        locked: Some(Registration::Invite),
    };
    let app = TestApp::spawn_with(Db::Sqlite, options).await;
    let first = token(&app.signup("first").await);
    let (status, answer) = app.register("second", "password123").await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::FORBIDDEN, "registration_closed")
    );
    let (_, made) = call(
        &app,
        Method::POST,
        "/api/v1/admin/invites",
        Some(json!({})),
        Some(&first),
    )
    .await;
    let invite = made["data"]["code"].as_str().expect("code");
    assert_eq!(
        register_with(&app, "second", Some(invite)).await.0,
        StatusCode::CREATED
    );
}

async fn send(app: &TestApp, token: &str, room: &str, body: &str, client_id: &str) -> Value {
    let mut ws = app.ws(token, Some(room)).await;
    let ack = ws.say(room, body, client_id).await;
    ws.close().await;
    ack
}

async fn an_archived_room_is_read_only_and_a_deleted_room_is_gone(db: Db) {
    let app = TestApp::spawn(db).await;
    let root = token(&app.signup("root").await);
    let ann = token(&app.signup("ann").await);
    for i in 0..3 {
        send(&app, &ann, "plans", &format!("plan {i}"), &format!("p{i}")).await;
    }
    let (_, page) = app.get("/api/v1/admin/rooms?q=plan", Some(&root)).await;
    let rooms = page["data"]["rooms"].as_array().expect("rooms");
    assert_eq!(rooms.len(), 1, "{page}");
    assert_eq!(rooms[0]["name"], "plans");
    assert_eq!(rooms[0]["members"], 1);
    assert_eq!(rooms[0]["messages"], 3);
    assert_eq!(rooms[0]["archived"], false);

    // Archived: ann's open socket hears it; sends are refused, history stays.
    let mut watching = app.ws(&ann, Some("plans")).await;
    let (status, answer) = call(
        &app,
        Method::PUT,
        "/api/v1/admin/rooms/plans/archived",
        Some(json!({ "archived": true })),
        Some(&root),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["data"]["archived"], true);
    let heard = watching.recv_type("archived").await;
    assert_eq!(
        (heard["room"].as_str(), heard["archived"].as_bool()),
        (Some("plans"), Some(true))
    );
    watching
        .send(
            &json!({ "type": "send", "room": "plans", "body": "still here?", "client_id": "late" }),
        )
        .await;
    let refused = watching.recv_type("error").await;
    assert_eq!(refused["code"], "room_archived", "{refused}");
    assert_eq!(
        app.history_bodies("plans", &ann).await,
        ["plan 0", "plan 1", "plan 2"]
    );
    let (_, rooms) = app.get("/api/v1/rooms", Some(&ann)).await;
    let entry = rooms["data"]["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["room"] == "plans")
        .cloned()
        .expect("still listed");
    assert_eq!(entry["archived"], true);
    let (status, _) = call(
        &app,
        Method::PUT,
        "/api/v1/admin/rooms/plans/archived",
        Some(json!({ "archived": false })),
        Some(&root),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    send(&app, &ann, "plans", "back again", "p3").await;
    // A file in it, which its uploader can fetch, until the room is deleted.
    let resp = app
        .client
        .post(app.url("/api/v1/uploads?name=plan.txt"))
        .bearer_auth(&ann)
        .header(reqwest::header::CONTENT_TYPE, "text/plain")
        .body("the plan")
        .send()
        .await
        .expect("upload");
    let (status, uploaded) = TestApp::read(resp).await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    let file = uploaded["data"]["id"].as_str().expect("id").to_owned();
    let ack = watching
        .act(json!({"type": "send", "room": "plans", "body": "see file", "attachments": [file], "client_id": "p4"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let files = format!("/api/v1/files/{file}");
    assert_eq!(app.get(&files, Some(&ann)).await.0, StatusCode::OK);

    // Deleted: it leaves ann's socket and list at once, refuses everything, and its messages
    // go in the background.
    let (status, answer) = call(
        &app,
        Method::DELETE,
        "/api/v1/admin/rooms/plans",
        None,
        Some(&root),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["data"]["deleting"], true);
    let gone = watching.recv_type("room_deleted").await;
    assert_eq!(gone["room"], "plans");
    let removed = watching.recv_type("room").await;
    assert_eq!(
        (removed["op"].as_str(), removed["room"]["room"].as_str()),
        (Some("removed"), Some("plans"))
    );
    let (_, rooms) = app.get("/api/v1/rooms", Some(&ann)).await;
    assert!(rooms["data"]["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .all(|r| r["room"] != "plans"));
    let (status, answer) = app.get("/api/v1/rooms/plans/messages", Some(&ann)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, _) = app
        .post(
            "/api/v1/rooms",
            &json!({ "name": "plans", "kind": "public" }),
            Some(&ann),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "the name stays taken");
    let (_, found) = app.get("/api/v1/search?q=plan", Some(&ann)).await;
    assert_eq!(found["data"]["results"], json!([]), "{found}");
    assert_eq!(
        app.get(&files, Some(&ann)).await.0,
        StatusCode::NOT_FOUND,
        "even its uploader's file goes with the room"
    );
    // The list shows the deletion's progress until every message is gone.
    let mut left = u64::MAX;
    for _ in 0..100 {
        let (_, page) = app.get("/api/v1/admin/rooms?q=plans", Some(&root)).await;
        left = page["data"]["rooms"][0]["messages"]
            .as_u64()
            .expect("count");
        assert_eq!(page["data"]["rooms"][0]["deleting"], true);
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "the sweep removed every message");
    let (status, _) = call(
        &app,
        Method::DELETE,
        "/api/v1/admin/rooms/plans",
        None,
        Some(&root),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "deleted once");

    let (_, log) = app.get("/api/v1/admin/audit", Some(&root)).await;
    let actions: Vec<_> = log["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["target"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("room.delete", "plans"),
            ("room.unarchive", "plans"),
            ("room.archive", "plans")
        ]
    );
    // Non-admins may do none of it.
    for (method, path, body) in [
        (Method::GET, "/api/v1/admin/rooms", None),
        (
            Method::PUT,
            "/api/v1/admin/rooms/general/archived",
            Some(json!({ "archived": true })),
        ),
        (Method::DELETE, "/api/v1/admin/rooms/general", None),
        (
            Method::POST,
            "/api/v1/admin/users/root/purge",
            Some(json!({ "dry_run": true })),
        ),
        (Method::GET, "/api/v1/admin/stats", None),
    ] {
        let (status, answer) = call(&app, method.clone(), path, body, Some(&ann)).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn an_archived_room_is_read_only_and_a_deleted_room_is_gone_sqlite() {
    an_archived_room_is_read_only_and_a_deleted_room_is_gone(Db::Sqlite).await;
}

#[tokio::test]
async fn an_archived_room_is_read_only_and_a_deleted_room_is_gone_postgres() {
    an_archived_room_is_read_only_and_a_deleted_room_is_gone(Db::Postgres).await;
}

async fn a_purge_deletes_what_its_dry_run_counted_through_the_log(db: Db) {
    // The spammer sends faster than a person may.
    let app = TestApp::spawn_with(db, Options::unlimited()).await;
    let root = token(&app.signup("root").await);
    let spam = token(&app.signup("spammer").await);
    let ann = token(&app.signup("ann").await);
    let mut spam_ws = app.ws(&spam, Some("general")).await;
    for i in 0..250 {
        spam_ws
            .say("general", &format!("buy now {i}"), &format!("s{i}"))
            .await;
    }
    spam_ws.close().await;
    send(&app, &ann, "general", "hello all", "a1").await;
    send(&app, &spam, "dm:ann:spammer", "psst", "s-dm").await;

    let (status, dry) = app
        .post(
            "/api/v1/admin/users/spammer/purge",
            &json!({ "dry_run": true }),
            Some(&root),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["data"], json!({ "messages": 251, "dry_run": true }));
    // A range in the future takes nothing.
    let (_, none) = app
        .post(
            "/api/v1/admin/users/spammer/purge",
            &json!({ "dry_run": true, "from": "2999-01-01T00:00:00Z" }),
            Some(&root),
        )
        .await;
    assert_eq!(none["data"]["messages"], 0);
    let (status, answer) = app
        .post(
            "/api/v1/admin/users/spammer/purge",
            &json!({ "from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z" }),
            Some(&root),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    // Ann, in the room, sees each message go: the deletes are in the log.
    let mut ann_ws = app.ws(&ann, Some("general")).await;
    let (status, started) = app
        .post(
            "/api/v1/admin/users/spammer/purge",
            &json!({ "dry_run": false }),
            Some(&root),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["data"]["messages"], 251);
    let mut deleted = 0;
    while deleted < 250 {
        let frame = ann_ws.recv_type("deleted").await;
        assert_eq!(frame["room"], "general");
        deleted += 1;
    }
    let mut left = 1;
    for _ in 0..100 {
        let (_, dry) = app
            .post(
                "/api/v1/admin/users/spammer/purge",
                &json!({ "dry_run": true }),
                Some(&root),
            )
            .await;
        left = dry["data"]["messages"].as_u64().expect("count");
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0);
    assert_eq!(app.history_bodies("general", &ann).await, ["hello all"]);
    assert!(app.history_bodies("dm:ann:spammer", &ann).await.is_empty());
    // Sends go on meanwhile and after: the spammer's account is not touched.
    let ack = send(&app, &spam, "general", "sorry", "s-after").await;
    assert_eq!(ack["type"], "ack", "{ack}");

    let (_, log) = app.get("/api/v1/admin/audit", Some(&root)).await;
    let entry = &log["data"]["entries"][0];
    assert_eq!(entry["action"], "user.purge");
    assert_eq!(entry["target"], "spammer");
    assert_eq!(entry["detail"]["messages"], 251);
}

#[tokio::test]
async fn a_purge_deletes_what_its_dry_run_counted_through_the_log_sqlite() {
    a_purge_deletes_what_its_dry_run_counted_through_the_log(Db::Sqlite).await;
}

#[tokio::test]
async fn a_purge_deletes_what_its_dry_run_counted_through_the_log_postgres() {
    a_purge_deletes_what_its_dry_run_counted_through_the_log(Db::Postgres).await;
}

#[tokio::test]
async fn the_live_figures_count_connections_messages_and_refusals() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let root = token(&app.signup("root").await);
    let ann = token(&app.signup("ann").await);
    let mut a = app.ws(&ann, None).await;
    let _b = app.ws(&ann, None).await;
    for i in 0..5 {
        a.say("general", &format!("hi {i}"), &format!("h{i}")).await;
    }
    let (status, figures) = app.get("/api/v1/admin/stats", Some(&root)).await;
    assert_eq!(status, StatusCode::OK, "{figures}");
    let data = &figures["data"];
    let gateways = data["gateways"].as_array().expect("gateways");
    assert_eq!(gateways.len(), 1, "serve is one gateway: {data}");
    assert_eq!(gateways[0]["here"], true);
    assert_eq!(gateways[0]["connections"], 2);
    assert_eq!(
        data["messages_per_second"], 0.5,
        "5 messages in the last 10 s"
    );
    assert_eq!(data["persist_lag"], 0, "on serve the log is the store");
    assert!(data["rate_limited_per_minute"].is_number());
    assert!(data["at"].is_string());
}
