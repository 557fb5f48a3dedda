//! The web app's files and headers, its settings, and calling the auth API from another origin.

use std::time::Duration;

use banter::{launch_auth, AuthOptions};
use banter_gateway::web::WebConfig;
use banter_gateway::GatewayConfig;
use banter_testkit::{Db, Options, TestApp, TestDb};
use reqwest::StatusCode;
use secrecy::SecretString;

#[tokio::test]
async fn the_app_is_served_with_a_policy_that_runs_no_inline_script() {
    let app = TestApp::spawn(Db::Sqlite).await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/chat", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
        ("/config.json", "application/json"),
    ] {
        let r = app.client.get(app.url(path)).send().await.expect("GET");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    let page = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script>"), "no inline script in the page");
    let config: serde_json::Value = app
        .client
        .get(app.url("/config.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        config,
        serde_json::json!({"auth_url": ""}),
        "same origin by default"
    );
}

#[tokio::test]
async fn a_split_deployment_tells_the_app_where_auth_is_and_lets_it_connect_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("app.js"), "// from disk\n").unwrap();
    let app = TestApp::spawn_with(
        Db::Sqlite,
        Options {
            gateway: GatewayConfig {
                web: WebConfig {
                    dir: Some(dir.path().to_owned()),
                    auth_origin: Some("https://auth.example.com".into()),
                },
                ..GatewayConfig::default()
            },
            ..Options::default()
        },
    )
    .await;
    let config: serde_json::Value = app
        .client
        .get(app.url("/config.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["auth_url"], "https://auth.example.com");
    let r = app.client.get(app.url("/app.js")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("connect-src 'self' ws: wss: https://auth.example.com;"),
        "{csp}"
    );
    // BANTER_WEB_DIR: the file on disk, read at each request.
    assert_eq!(r.text().await.unwrap(), "// from disk\n");
    std::fs::write(dir.path().join("app.js"), "// changed\n").unwrap();
    let again = app.client.get(app.url("/app.js")).send().await.unwrap();
    assert_eq!(again.text().await.unwrap(), "// changed\n");
    // A file missing from the directory is a 404, not a crash.
    let css = app.client.get(app.url("/style.css")).send().await.unwrap();
    assert_eq!(css.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn auth_answers_pages_of_the_allowed_origins_only() {
    let db = TestDb::new(Db::Sqlite).await;
    let store = db.store().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let options = AuthOptions {
        jwt_secret: SecretString::from(banter_testkit::TEST_JWT_SECRET),
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(3600),
        hash_concurrency: 1,
        limits: banter_auth::AuthLimitSettings::default(),
        registration: banter_auth::RegistrationPolicy::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(launch_auth(
        store,
        options,
        vec!["https://chat.example.com".into()],
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, format!("{base}/api/v1/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://chat.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://chat.example.com"
    );
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // A real call from the allowed origin carries the header too.
    let r = client
        .post(format!("{base}/api/v1/register"))
        .header("origin", "https://chat.example.com")
        .json(&serde_json::json!({"username": "alice", "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://chat.example.com"
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
