//! The security suite: forged tokens, foreign web pages, slow and oversized requests, and
//! secrets in logs, each against a real server. What other suites already prove is listed in
//! docs/security.md with where (direct-message privacy, delete rights, SQL-looking input,
//! oversized frames and bodies, idle sockets, the web app's headers, rate limits).

use std::time::Duration;

use banter_gateway::origins::WsOrigins;
use banter_testkit::tokens::{claims_for, forge, sign};
use banter_testkit::{token_of, Db, Options, TestApp, WsClient, TEST_JWT_SECRET};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[path = "support/http.rs"]
mod http;
#[path = "support/running.rs"]
mod running;
use http::post;
use running::Running;

/// Every way to forge or misuse an access token, each refused with 401 before a WebSocket
/// opens and by the API.
#[tokio::test]
async fn forged_and_stale_tokens_are_refused_before_the_upgrade_and_by_the_api() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let login = app.signup("alice").await;
    let other = app.signup("mallory").await;
    let good = token_of(&login);
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = claims_for(&login, 0, 900);
    let [_, payload, signature]: [&str; 3] = good
        .split('.')
        .collect::<Vec<_>>()
        .try_into()
        .expect("three parts");
    let mut tampered_claims = claims_for(&login, 0, 900);
    tampered_claims["sub"] = other["user"]["id"].to_string().into();
    tampered_claims["name"] = "mallory".into();
    let mut missing_jti = claims.clone();
    missing_jti.as_object_mut().expect("claims").remove("jti");
    let forged = [
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg":"none","typ":"JWT"})),
                b64(&claims)
            ),
        ),
        (
            "HS512 with the right secret",
            sign(&claims, jsonwebtoken::Algorithm::HS512, TEST_JWT_SECRET),
        ),
        (
            "tampered payload, original signature",
            format!(
                "{}.{}.{signature}",
                good.split('.').next().unwrap(),
                b64(&tampered_claims)
            ),
        ),
        (
            "payload and signature of two tokens",
            format!(
                "{}.{payload}.{}",
                good.split('.').next().unwrap(),
                "A".repeat(43)
            ),
        ),
        ("expired", forge(&login, 1000, -60)),
        ("not yet valid", {
            let mut c = claims.clone();
            c["nbf"] = (c["iat"].as_i64().unwrap() + 600).into();
            sign(&c, jsonwebtoken::Algorithm::HS256, TEST_JWT_SECRET)
        }),
        (
            "another key",
            sign(
                &claims,
                jsonwebtoken::Algorithm::HS256,
                "another-secret-of-at-least-32-bytes-long!",
            ),
        ),
        (
            "a required claim missing",
            sign(
                &missing_jti,
                jsonwebtoken::Algorithm::HS256,
                TEST_JWT_SECRET,
            ),
        ),
        ("not a JWT", "Bearer.not.a-token".into()),
    ];
    for (what, token) in &forged {
        let refused = WsClient::connect(&app.ws_url(token, None))
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: the WebSocket opened"));
        assert_eq!(refused.status, 401, "{what}: {}", refused.body);
        assert!(
            matches!(
                refused.body["error"].as_str(),
                Some("unauthorized" | "token_expired")
            ),
            "{what}: {}",
            refused.body
        );
        let (status, body) = app.get("/api/v1/me", Some(token)).await;
        assert_eq!(status.as_u16(), 401, "{what}: {body}");
    }
    // The genuine one works, so the refusals above were about the forgeries.
    let (status, body) = app.get("/api/v1/me", Some(&good)).await;
    assert_eq!(status.as_u16(), 200, "{body}");
    assert!(WsClient::connect(&app.ws_url(&good, None)).await.is_ok());
}

/// A refresh token works once: after logout, or once rotated, it is refused, and a replayed
/// one takes its whole family down (whoever stole it loses the session too).
#[tokio::test]
async fn used_and_revoked_refresh_tokens_are_refused() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let login = app.signup("ada").await;
    let first = login["refresh_token"].as_str().expect("refresh").to_owned();
    let refresh = |t: &str| {
        let t = t.to_owned();
        let app = &app;
        async move {
            app.post("/api/v1/refresh", &json!({ "refresh_token": t }), None)
                .await
        }
    };
    let (status, body) = refresh(&first).await;
    assert_eq!(status.as_u16(), 200, "{body}");
    let second = body["data"]["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    // The first again: a replay. Refused, and the family with it.
    let (status, body) = refresh(&first).await;
    assert_eq!(status.as_u16(), 401, "{body}");
    assert_eq!(body["error"], "invalid_refresh_token");
    let (status, body) = refresh(&second).await;
    assert_eq!(status.as_u16(), 401, "the family is revoked: {body}");

    // Logout revokes.
    let login = app.login("ada", "password123").await.1;
    let token = login["data"]["token"].as_str().expect("token").to_owned();
    let third = login["data"]["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let (status, body) = app
        .post(
            "/api/v1/logout",
            &json!({ "refresh_token": third }),
            Some(&token),
        )
        .await;
    assert_eq!(status.as_u16(), 200, "{body}");
    let (status, body) = refresh(&third).await;
    assert_eq!(status.as_u16(), 401, "{body}");
}

/// A WebSocket upgrade with the given `Origin` header; the HTTP status it got.
async fn upgrade_status(app: &TestApp, token: &str, origin: Option<&str>) -> u16 {
    let mut request = app
        .ws_url(token, None)
        .into_client_request()
        .expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("upgrade failed otherwise: {e}"),
    }
}

#[tokio::test]
async fn pages_of_other_origins_cannot_open_websockets_unless_allowed() {
    let mut options = Options::default();
    options.gateway.ws_origins =
        WsOrigins::parse(&["https://chat.example.com".into()]).expect("origins");
    let app = TestApp::spawn_with(Db::Sqlite, options).await;
    let token = token_of(&app.signup("alice").await);
    let own = format!("http://{}", app.addr);
    assert_eq!(
        upgrade_status(&app, &token, None).await,
        101,
        "not a browser"
    );
    assert_eq!(
        upgrade_status(&app, &token, Some(&own)).await,
        101,
        "own page"
    );
    assert_eq!(
        upgrade_status(&app, &token, Some("https://chat.example.com")).await,
        101,
        "a listed page"
    );
    for foreign in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        assert_eq!(
            upgrade_status(&app, &token, Some(foreign)).await,
            403,
            "{foreign}"
        );
    }
}

/// Reads what the server sends until it closes the connection (or `limit` passes).
async fn read_until_closed(tcp: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn slow_and_oversized_request_headers_are_cut_off() {
    let app = TestApp::spawn(Db::Sqlite).await;
    // Slow loris: the start of a request, then nothing. The server hangs up within its
    // header timeout (10 s) instead of holding the connection for ever.
    // A connection that sends nothing at all is the same attack, cheaper.
    let mut slow = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let mut silent = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: banter\r\nX-Slow: ")
        .await
        .expect("write");
    let (slow_answer, silent_answer) = tokio::join!(
        read_until_closed(&mut slow, Duration::from_secs(20)),
        read_until_closed(&mut silent, Duration::from_secs(20)),
    );
    for answer in [slow_answer, silent_answer] {
        let answer = answer.expect("the server closed the connection within 20 s");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    // Headers larger than 64 KiB: 431, not read into memory without end.
    let mut big = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: banter\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    // The server may hang up before it has read it all; what it answered is what counts.
    let _ = big.write_all(request.as_bytes()).await;
    let answer = read_until_closed(&mut big, Duration::from_secs(20))
        .await
        .expect("an answer to oversized headers");
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // Still serving.
    let (status, _) = app.get("/health", None).await;
    assert_eq!(status.as_u16(), 200);
}

/// With the log at debug, a session's every secret (password, access and refresh tokens,
/// the signing key) stays out of it, including a token in a WebSocket URL and one in an
/// `auth` frame.
#[tokio::test]
async fn no_secret_reaches_the_log_even_at_debug() {
    let data = tempfile::tempdir().expect("tempdir");
    let secret = "a-signing-secret-for-this-test-0123456789";
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_banter"));
    for var in [
        "DATABASE_URL",
        "BANTER_LISTEN",
        "BANTER_DATA_DIR",
        "BANTER_LOG_FORMAT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "debug")
        .env("JWT_SECRET", secret)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path());
    let mut server = Running::start(cmd);
    let base = server.base.clone();
    let password = "pa55-w0rd-that-must-not-leak";
    post(
        &base,
        "/api/v1/register",
        json!({"username": "quiet", "password": password}),
        None,
    )
    .await;
    let (_, login) = post(
        &base,
        "/api/v1/login",
        json!({"username": "quiet", "password": password}),
        None,
    )
    .await;
    let token = login["data"]["token"].as_str().expect("token").to_owned();
    let refresh = login["data"]["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    // A failed login with the password too.
    post(
        &base,
        "/api/v1/login",
        json!({"username": "quiet", "password": format!("{password}-wrong")}),
        None,
    )
    .await;
    let (_, renewed) = post(
        &base,
        "/api/v1/refresh",
        json!({ "refresh_token": refresh }),
        None,
    )
    .await;
    let token2 = renewed["data"]["token"].as_str().expect("token").to_owned();
    let refresh2 = renewed["data"]["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let ws_url = format!("{}/ws?token={token}&room=hush", base.replace("http", "ws"));
    let mut ws = WsClient::connect(&ws_url).await.expect("connect");
    ws.recv_until("joined").await;
    ws.send(&json!({"type": "auth", "token": token2})).await;
    ws.recv_type("authenticated").await;
    ws.send(&json!({"type": "send", "room": "hush", "body": "hello", "client_id": "h1"}))
        .await;
    ws.recv_type("ack").await;
    post(
        &base,
        "/api/v1/logout",
        json!({ "refresh_token": refresh2 }),
        Some(&token2),
    )
    .await;
    drop(ws);
    assert!(server.terminate().success());
    let logs = server.logs();
    assert!(
        logs.lines().count() > 10,
        "the debug log says something:\n{logs}"
    );
    for (what, leak) in [
        ("password", password),
        ("access token", token.as_str()),
        ("renewed access token", token2.as_str()),
        ("refresh token", refresh.as_str()),
        ("renewed refresh token", refresh2.as_str()),
        ("signing secret", secret),
    ] {
        assert!(!logs.contains(leak), "the {what} reached the log:\n{logs}");
    }
}
