//! Bad input of every kind gets a clear envelope, never a framework's plain-text default.

use banter_testkit::{Db, TestApp};
use reqwest::StatusCode;
use serde_json::Value;

async fn raw(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    ct: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = app.client.request(method, app.url(path)).body(body);
    if let Some(ct) = ct {
        req = req.header("content-type", ct);
    }
    TestApp::read(req.send().await.expect("send")).await
}

fn assert_validation(status: StatusCode, body: &Value, field: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["status_code"], 400, "{body}");
    assert_eq!(body["error"], "validation_failed", "{body}");
    assert_eq!(body["data"]["field"], field, "{body}");
}

#[tokio::test]
async fn malformed_bodies_name_the_field_at_fault() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let post = reqwest::Method::POST;
    let json = Some("application/json");
    let cases: [(&[u8], Option<&str>, &str); 8] = [
        (b"{not json", json, "body"),
        (b"", json, "body"),
        (b"[1,2,3]", json, "body"),
        (br#"{"username":"alice"}"#, json, "password"),
        (
            br#"{"username":42,"password":"password123"}"#,
            json,
            "username",
        ),
        (br#"{"username":"alice","password":null}"#, json, "password"),
        (
            br#"{"username":"alice","password":"password123"}"#,
            Some("text/plain"),
            "content-type",
        ),
        (
            br#"{"username":"alice","password":"password123"}"#,
            None,
            "content-type",
        ),
    ];
    for (body, ct, field) in cases {
        let (status, answer) = raw(&app, post.clone(), "/api/v1/register", ct, body.to_vec()).await;
        assert_validation(status, &answer, field);
    }
    // Form-encoded, as a browser form or a careless curl would send.
    let (status, answer) = raw(
        &app,
        post,
        "/api/v1/login",
        Some("application/x-www-form-urlencoded"),
        b"username=a&password=b".to_vec(),
    )
    .await;
    assert_validation(status, &answer, "content-type");
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_an_envelope() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let huge = format!(
        r#"{{"username":"{}","password":"password123"}}"#,
        "a".repeat(200_000)
    );
    let (status, body) = raw(
        &app,
        reqwest::Method::POST,
        "/api/v1/register",
        Some("application/json"),
        huge.into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "too_large");
    assert_eq!(body["success"], false);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_envelopes() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let (status, body) = app.get("/api/v1/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    assert_eq!(body["status_code"], 404);
    let (status, body) = app.get("/api/v1/login", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(body["error"], "method_not_allowed");
    let (status, body) = raw(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/register",
        None,
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(body["success"], false);
}

#[tokio::test]
async fn sql_looking_input_is_only_ever_data() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let (status, body) = app.login("x' OR '1'='1", "password123").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_credentials");
    let (status, body) = app
        .register("robert.tables--", "'); DROP TABLE users;--")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = app
        .login("robert.tables--", "'); DROP TABLE users;--")
        .await;
    assert_eq!(status, StatusCode::OK);
}
