//! The `banter` binary itself, run as a user would: its help, its refusals, and `serve`,
//! `auth` and `migrate` started for real.

use std::process::Command;

use banter_testkit::TestDb;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// The settings a developer's shell might hold, removed so each test states its own.
const ENV: [&str; 12] = [
    "JWT_SECRET",
    "DATABASE_URL",
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DB_PASSWORD",
    "BANTER_LISTEN",
    "BANTER_DATA_DIR",
    "AUTH_PORT",
    "BANTER_LOG_FORMAT",
    "RUST_LOG",
];

/// `banter serve` on a free loopback port, keeping its data in `data`.
fn serve_in(data: &std::path::Path) -> Running {
    serve_in_with(data, &[])
}

/// `serve_in` with more arguments.
fn serve_in_with(data: &std::path::Path, args: &[&str]) -> Running {
    let mut cmd = banter();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(args);
    Running::start(cmd)
}

fn banter() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_banter"));
    for var in ENV {
        cmd.env_remove(var);
    }
    cmd
}

#[path = "support/http.rs"]
mod http;
#[path = "support/running.rs"]
mod running;
use http::{get, post};
use running::Running;

#[test]
fn help_describes_every_command_and_setting() {
    let out = banter().arg("--help").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "auth", "migrate"] {
        assert!(text.contains(cmd), "{cmd} missing from:\n{text}");
    }
    let out = banter().args(["serve", "--help"]).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    for setting in [
        "BANTER_LISTEN",
        "BANTER_DATA_DIR",
        "DATABASE_URL",
        "DB_HOST",
        "DB_PASSWORD",
        "JWT_SECRET",
        "BANTER_ACCESS_TOKEN_TTL",
    ] {
        assert!(text.contains(setting), "{setting} missing from:\n{text}");
    }
    let out = banter().args(["auth", "--help"]).output().expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("AUTH_PORT"));
}

#[test]
fn auth_refuses_to_start_without_a_secret_or_a_database() {
    let out = banter()
        .args(["auth", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", "postgres://u:p@127.0.0.1:1/x")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("JWT_SECRET"));

    let out = banter()
        .args(["auth", "--listen", "127.0.0.1:0"])
        .env("JWT_SECRET", "short")
        .env("DATABASE_URL", "postgres://u:p@127.0.0.1:1/x")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32 bytes"));

    let out = banter()
        .args(["auth", "--listen", "127.0.0.1:0"])
        .env("JWT_SECRET", "x".repeat(40))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));
}

#[tokio::test]
async fn serve_keeps_users_and_its_secret_across_restarts_and_logs_no_secrets() {
    let data = tempfile::tempdir().expect("tempdir");
    let start = || serve_in(data.path());
    let mut first = start();
    let password = "s3cret-pa55word";
    let (status, body) = post(
        &first.base,
        "/api/v1/register",
        json!({"username": "testuser", "password": password}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        &first.base,
        "/api/v1/login",
        json!({"username": "testuser", "password": password}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["data"]["token"].as_str().expect("token").to_owned();
    let refresh = body["data"]["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    assert!(data.path().join("banter.db").exists());
    let secret = std::fs::read_to_string(data.path().join("jwt-secret")).expect("secret kept");

    // SIGTERM is a clean exit.
    assert!(first.terminate().success());
    let logs = first.logs();
    for leak in [password, &token, &refresh, secret.trim()] {
        assert!(!logs.contains(leak), "a secret reached the log:\n{logs}");
    }

    // Same data dir: the user and the signing secret are still there.
    let second = start();
    let (status, body) = get(&second.base, "/api/v1/me", Some(&token)).await;
    assert_eq!(status, 200, "the old token is still valid: {body}");
    assert_eq!(body["data"]["username"], "testuser");
    let (status, body) = post(
        &second.base,
        "/api/v1/refresh",
        json!({"refresh_token": refresh}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn migrate_then_auth_on_postgres() {
    let db = TestDb::postgres().await;
    for _ in 0..2 {
        let out = banter()
            .arg("migrate")
            .env("DATABASE_URL", &db.url)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The seed's DB_* settings, instead of DATABASE_URL.
    let url = reqwest::Url::parse(&db.url).expect("url");
    let mut cmd = banter();
    cmd.args(["auth", "--listen", "127.0.0.1:0"])
        .env("JWT_SECRET", "a-long-enough-secret-for-the-auth-service")
        .env("DB_HOST", url.host_str().expect("host"))
        .env("DB_PORT", url.port().expect("port").to_string())
        .env("DB_NAME", url.path().trim_start_matches('/'))
        .env("DB_USER", url.username())
        .env("DB_PASSWORD", url.password().expect("password"));
    let auth = Running::start(cmd);
    let (status, body) = get(&auth.base, "/ready", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &auth.base,
        "/api/v1/register",
        json!({"username": "pguser", "password": "password123"}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        &auth.base,
        "/api/v1/login",
        json!({"username": "pguser", "password": "password123"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["token_type"], "Bearer");
}

/// How the first server is stopped mid-stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// `kill -9`: nothing is flushed; only what was committed before the ack counts.
    Kill,
    /// SIGTERM, as Kubernetes sends: clients are told to reconnect (1012), the process
    /// finishes its batch and exits cleanly.
    Term,
}

#[tokio::test]
async fn acked_messages_survive_kill_9() {
    acked_messages_survive(Stop::Kill).await;
}

#[tokio::test]
async fn sigterm_says_reconnect_and_loses_nothing_acked() {
    acked_messages_survive(Stop::Term).await;
}

async fn acked_messages_survive(stop: Stop) {
    let data = tempfile::tempdir().expect("tempdir");
    // 300 pipelined sends from one user are a burst the default send limit refuses; this
    // test is about durability, the limit has its own tests.
    let start = || serve_in_with(data.path(), &["--limit-sends", "off"]);
    let mut first = start();
    let base = first.base.clone();
    post(
        &base,
        "/api/v1/register",
        json!({"username": "kim", "password": "password123"}),
        None,
    )
    .await;
    let (_, login) = post(
        &base,
        "/api/v1/login",
        json!({"username": "kim", "password": "password123"}),
        None,
    )
    .await;
    let token = login["data"]["token"].as_str().expect("token").to_owned();
    let ws_url = format!(
        "{}/ws?token={token}&room=durable",
        base.replace("http", "ws")
    );
    let mut ws = banter_testkit::WsClient::connect(&ws_url)
        .await
        .expect("connect");
    ws.recv_until("joined").await;

    // Pipeline sends, and kill the server while some are still in flight.
    for i in 0..300 {
        ws.send(&json!({"type":"send","room":"durable","body":format!("m{i}"),"client_id":format!("k{i}")}))
            .await;
    }
    let mut acked = Vec::new();
    while acked.len() < 150 {
        let frame = ws.recv().await;
        if frame["type"] == "ack" {
            acked.push(frame["id"].as_str().expect("id").to_owned());
        }
    }
    match stop {
        Stop::Kill => {
            first.child.kill().expect("kill -9");
            first.child.wait().expect("reaped");
        }
        Stop::Term => {
            Command::new("kill")
                .args(["-TERM", &first.child.id().to_string()])
                .status()
                .expect("kill -TERM");
            // Acks may still come; then the server says "reconnect elsewhere".
            let close = tokio::time::timeout(std::time::Duration::from_secs(30), async {
                loop {
                    match ws.next_raw().await {
                        Some(Message::Text(t)) => {
                            let frame: Value = serde_json::from_str(&t).expect("JSON");
                            if frame["type"] == "ack" {
                                acked.push(frame["id"].as_str().expect("id").to_owned());
                            }
                        }
                        Some(Message::Close(close)) => break close.map(|c| u16::from(c.code)),
                        Some(_) => {}
                        None => break None,
                    }
                }
            })
            .await
            .expect("the server closed the socket within 30 s of SIGTERM");
            assert_eq!(close, Some(1012), "close code at shutdown");
            assert!(first.child.wait().expect("exit").success(), "a clean exit");
        }
    }

    let second = start();
    let mut stored = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(c) => format!("/api/v1/rooms/durable/messages?limit=100&before={c}"),
            None => "/api/v1/rooms/durable/messages?limit=100".to_owned(),
        };
        let (status, page) = get(&second.base, &path, Some(&token)).await;
        assert_eq!(status, 200, "{page}");
        let messages = page["data"]["messages"]
            .as_array()
            .expect("messages")
            .clone();
        before = messages
            .first()
            .map(|m| m["cursor"].as_str().expect("cursor").to_owned());
        stored.splice(
            0..0,
            messages
                .iter()
                .map(|m| m["id"].as_str().expect("id").to_owned()),
        );
        if page["data"]["has_more"] != true {
            break;
        }
    }
    for id in &acked {
        assert_eq!(
            stored.iter().filter(|s| *s == id).count(),
            1,
            "acked {id} is stored once"
        );
    }
    let mut unique = stored.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), stored.len(), "no duplicates in history");
}

#[tokio::test]
async fn admin_grants_and_revokes_on_serves_data_dir() {
    let data = tempfile::tempdir().expect("tempdir");
    let running = serve_in(data.path());
    let (status, _) = post(
        &running.base,
        "/api/v1/register",
        json!({"username": "Root", "password": "password123"}),
        None,
    )
    .await;
    assert_eq!(status, 201);
    let admin = |args: &[&str]| {
        banter()
            .arg("admin")
            .args(args)
            .arg("--data-dir")
            .arg(data.path())
            .output()
            .expect("run")
    };
    let out = admin(&["grant", "root"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("now an admin"));
    let out = admin(&["revoke", "root"]);
    assert!(out.status.success());
    let out = admin(&["grant", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user named"));

    // Root was the first account (an admin); the operator's changes are in its audit log.
    assert!(admin(&["grant", "root"]).status.success());
    let (status, login) = post(
        &running.base,
        "/api/v1/login",
        json!({"username": "root", "password": "password123"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let token = login["data"]["token"].as_str().expect("token");
    let (status, log) = get(&running.base, "/api/v1/admin/audit", Some(token)).await;
    assert_eq!(status, 200, "{log}");
    let entries: Vec<(String, String, bool)> = log["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or("").to_owned(),
                e["target"].as_str().unwrap_or("").to_owned(),
                e["detail"]["admin"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let by_cli = |admin| {
        (
            "banter admin (command line)".to_owned(),
            "root".to_owned(),
            admin,
        )
    };
    assert_eq!(entries, [by_cli(true), by_cli(false), by_cli(true)]);
}

/// `banter` with `args` against `base` with `token`: (success, stdout, stderr).
fn client_command(base: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = banter()
        .args(args)
        .env("BANTER_URL", base)
        .env("BANTER_TOKEN", token)
        .output()
        .expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bots_are_made_listed_and_revoked_and_send_posts_from_a_script() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut server = serve_in(data.path());
    let base = server.base.clone();
    post(
        &base,
        "/api/v1/register",
        json!({"username": "root", "password": "password123"}),
        None,
    )
    .await;
    let (_, login) = post(
        &base,
        "/api/v1/login",
        json!({"username": "root", "password": "password123"}),
        None,
    )
    .await;
    let admin = login["data"]["token"].as_str().expect("token").to_owned();

    let (ok, token, err) = client_command(
        &base,
        &admin,
        &["bots", "create", "ci-bot", "--room", "builds"],
    );
    assert!(ok, "{err}");
    let token = token.trim().to_owned();
    assert!(token.starts_with("bnt_"), "{token}");
    assert!(err.contains("shown this once"), "{err}");

    let (ok, out, err) = client_command(
        &base,
        &token,
        &[
            "send",
            "--room",
            "builds",
            "--client-id",
            "build-7",
            "build 7 passed",
        ],
    );
    assert!(ok, "{err}");
    let (id, cursor) = out.trim().split_once(' ').expect("id and cursor");
    assert_eq!(cursor.len(), 24, "{out}");
    // The same command again (a CI retry) posts nothing new.
    let (ok, again, _) = client_command(
        &base,
        &token,
        &[
            "send",
            "--room",
            "builds",
            "--client-id",
            "build-7",
            "build 7 passed",
        ],
    );
    assert!(ok);
    assert_eq!(again.trim().split_once(' ').map(|p| p.0), Some(id));
    let (_, history) = get(&base, "/api/v1/rooms/builds/messages", Some(&admin)).await;
    let messages = history["data"]["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{history}");
    assert_eq!(
        (messages[0]["author"].as_str(), messages[0]["bot"].as_bool()),
        (Some("ci-bot"), Some(true))
    );

    let (ok, listed, _) = client_command(&base, &admin, &["bots", "list"]);
    assert!(ok);
    assert!(
        listed.starts_with("ci-bot\trooms=builds\tby=root\t"),
        "{listed}"
    );
    // A refusal is a failure with the server's reason, not a crash.
    let (ok, _, err) = client_command(&base, &token, &["send", "--room", "general", "elsewhere"]);
    assert!(!ok);
    assert!(err.contains("forbidden"), "{err}");
    let (ok, _, err) = client_command(&base, &admin, &["bots", "revoke", "ci-bot"]);
    assert!(ok, "{err}");
    let (ok, _, err) = client_command(&base, &token, &["send", "--room", "builds", "after"]);
    assert!(!ok);
    assert!(err.contains("unauthorized"), "{err}");
    let (ok, listed, _) = client_command(&base, &admin, &["bots", "list"]);
    assert!(ok && listed.trim_end().ends_with("revoked"), "{listed}");
    server.terminate();
}
