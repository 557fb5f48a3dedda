//! Liveness, readiness and metrics.

use banter_testkit::{Db, TestApp};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn health_answers_like_the_seed() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let (status, body) = app.get("/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "status": "healthy" }));
}

#[tokio::test]
async fn ready_reports_the_database_on_both_backends() {
    for db in [Db::Sqlite, Db::Postgres] {
        let app = TestApp::spawn(db).await;
        let (status, body) = app.get("/ready", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["dependencies"]["database"]["state"], "up", "{body}");
    }
}

#[tokio::test]
async fn ready_turns_503_when_the_database_goes_away() {
    let app = TestApp::spawn(Db::Postgres).await;
    let (status, _) = app.get("/ready", None).await;
    assert_eq!(status, StatusCode::OK);
    // Drop the database under the running server.
    let url = app.db.url.clone();
    let admin = banter_testkit::postgres_admin_url();
    let name = url.rsplit('/').next().expect("db name").to_owned();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("admin");
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .expect("drop");
    let (status, body) = app.get("/ready", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["dependencies"]["database"]["state"], "down", "{body}");
    // Liveness does not depend on it.
    assert_eq!(app.get("/health", None).await.0, StatusCode::OK);
    // A request that needs the database gets 503 `unavailable`, not a 500.
    let (status, body) = app.login("someone", "password123").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "unavailable");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = TestApp::spawn(Db::Sqlite).await;
    app.get("/health", None).await;
    app.login("ghost", "password123").await;
    let resp = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/plain"));
    let text = resp.text().await.expect("text");
    for needle in [
        "http_requests_total{",
        "route=\"/api/v1/login\"",
        "status=\"401\"",
        "http_request_duration_seconds_bucket{",
        "banter_logins_total{outcome=\"rejected\"}",
        "banter_db_pool_connections",
        "banter_build_info{",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
}
