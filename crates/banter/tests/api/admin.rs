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
async fn registration_the_operator_closed_stays_closed() {
    let mut options = Options::default();
    options.gateway.admin.registration = RegistrationPolicy {
        locked: Some(Registration::Closed),
    };
    let app = TestApp::spawn_with(Db::Sqlite, options).await;
    let (status, answer) = app.register("root", "password123").await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::FORBIDDEN, "registration_closed")
    );
    let (_, public) = app.get("/api/v1/register", None).await;
    assert_eq!(public["data"]["registration"], "closed");

    // The operator's admin (made with `banter admin grant`) sees it locked.
    let store = app.db.store().await;
    let hash = banter_auth::password::Hasher::new(1)
        .expect("hasher")
        .hash(banter_core::Password::parse("password123").expect("password"))
        .await
        .expect("hash");
    store
        .create_user(
            &banter_core::Username::parse("ops").expect("name"),
            &hash,
            banter_store::now(),
        )
        .await
        .expect("user");
    store.close().await;
    let ops = token(&app.login("ops", "password123").await.1["data"]);
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
}
