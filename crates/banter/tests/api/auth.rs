//! Register, login, refresh, logout and me, on SQLite and on PostgreSQL.

use banter_testkit::tokens::{claims_for, sign};
use banter_testkit::{Db, Options, TestApp, TEST_JWT_SECRET};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn assert_envelope(body: &Value, status: StatusCode, success: bool) {
    assert_eq!(body["success"], success, "{body}");
    assert_eq!(body["status_code"], status.as_u16(), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_envelope(body, want_status, false);
    assert_eq!(body["error"], code, "{body}");
}

async fn full_session(db: Db) {
    let app = TestApp::spawn(db).await;

    // The seed README's curl flow.
    let (status, body) = app.register("testuser", "testpass123").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_envelope(&body, StatusCode::CREATED, true);
    assert_eq!(body["data"]["username"], "testuser");
    assert!(body["data"]["id"].as_i64().is_some());

    let (status, body) = app.login("testuser", "testpass123").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_envelope(&body, StatusCode::OK, true);
    let data = &body["data"];
    assert_eq!(data["token_type"], "Bearer");
    assert_eq!(data["expires_in"], 900);
    let token = data["token"].as_str().expect("token").to_owned();
    let refresh = data["refresh_token"].as_str().expect("refresh").to_owned();

    let (status, body) = app.get("/api/v1/me", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["username"], "testuser");
    assert!(body["data"]["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    // Refresh rotates: a new pair, and the old refresh token stops working.
    let (status, body) = app
        .post(
            "/api/v1/refresh",
            &json!({ "refresh_token": refresh }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token2 = body["data"]["token"].as_str().expect("token").to_owned();
    let refresh2 = body["data"]["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    assert_ne!(refresh2, refresh);
    let (status, _) = app.get("/api/v1/me", Some(&token2)).await;
    assert_eq!(status, StatusCode::OK);

    // Replaying the used token is refused and revokes the whole family: refresh2 dies too.
    let (status, body) = app
        .post(
            "/api/v1/refresh",
            &json!({ "refresh_token": refresh }),
            None,
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    );
    let (status, body) = app
        .post(
            "/api/v1/refresh",
            &json!({ "refresh_token": refresh2 }),
            None,
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    );

    // A new login, then logout: that refresh token is revoked.
    let data = app.login("testuser", "testpass123").await.1["data"].clone();
    let (token3, refresh3) = (
        data["token"].as_str().expect("token"),
        data["refresh_token"].as_str().expect("refresh"),
    );
    let (status, body) = app
        .post(
            "/api/v1/logout",
            &json!({ "refresh_token": refresh3 }),
            Some(token3),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["revoked"], true);
    let (status, body) = app
        .post(
            "/api/v1/refresh",
            &json!({ "refresh_token": refresh3 }),
            None,
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    );

    app.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn full_session_on_sqlite() {
    full_session(Db::Sqlite).await;
}

#[tokio::test]
async fn full_session_on_postgres() {
    full_session(Db::Postgres).await;
}

#[tokio::test]
async fn registration_refuses_taken_and_invalid_names() {
    let app = TestApp::spawn(Db::Sqlite).await;
    assert_eq!(
        app.register("alice", "password123").await.0,
        StatusCode::CREATED
    );
    for taken in ["alice", "ALICE"] {
        let (status, body) = app.register(taken, "password123").await;
        assert_error(status, &body, StatusCode::CONFLICT, "username_taken");
    }
    for (user, pass, field) in [
        ("al", "password123", "username"),
        ("has space", "password123", "username"),
        (&"x".repeat(33) as &str, "password123", "username"),
        ("<script>", "password123", "username"),
        ("bob", "short", "password"),
        ("bob", &"p".repeat(129) as &str, "password"),
    ] {
        let (status, body) = app.register(user, pass).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "validation_failed");
        assert_eq!(body["data"]["field"], field, "{user}/{pass}: {body}");
    }
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_answer() {
    // That both cost one argon2 verification is checked where it can be counted alone, in
    // banter_auth::password's unit tests: here other tests hash in the same process.
    let app = TestApp::spawn(Db::Sqlite).await;
    app.signup("mallory").await;
    let (s1, wrong_password) = app.login("mallory", "not-the-password").await;
    let (s2, unknown_user) = app.login("nobody-here", "not-the-password").await;
    assert_error(
        s1,
        &wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    assert_eq!((s1, &wrong_password), (s2, &unknown_user));
}

#[tokio::test]
async fn me_requires_a_valid_unexpired_token() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let data = app.signup("trent").await;
    let (status, body) = app.get("/api/v1/me", None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = app.get("/api/v1/me", Some("garbage")).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    // A token signed with the right key but expired.
    let claims = claims_for(&data, 300, -120);
    let expired = sign(&claims, jsonwebtoken::Algorithm::HS256, TEST_JWT_SECRET);
    let (status, body) = app.get("/api/v1/me", Some(&expired)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "token_expired");

    // The right key under another algorithm, and a wrong key.
    let claims = claims_for(&data, 300, 600);
    for bad in [
        sign(&claims, jsonwebtoken::Algorithm::HS384, TEST_JWT_SECRET),
        sign(
            &claims,
            jsonwebtoken::Algorithm::HS256,
            "another-secret-another-secret-0000",
        ),
    ] {
        let (status, body) = app.get("/api/v1/me", Some(&bad)).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // The genuine token still works.
    let (status, _) = app.get("/api/v1/me", data["token"].as_str()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn tokens_carry_the_required_claims_and_the_configured_lifetime() {
    let app = TestApp::spawn_with(
        Db::Sqlite,
        Options {
            access_ttl: std::time::Duration::from_secs(0),
            ..Options::default()
        },
    )
    .await;
    let data = app.signup("peggy").await;
    assert_eq!(data["expires_in"], 0);
    // exp = iat + the configured lifetime (0 here); expiry itself is tested over WebSocket.
    let payload = data["token"]
        .as_str()
        .expect("token")
        .split('.')
        .nth(1)
        .expect("payload");
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(claims["exp"], claims["iat"]);
    for claim in ["sub", "name", "iat", "nbf", "exp", "jti"] {
        assert!(!claims[claim].is_null(), "missing {claim}: {claims}");
    }
}
