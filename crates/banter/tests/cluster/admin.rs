//! Administration across processes: an admin deactivates someone through one gateway; their
//! sockets on both gateways close with 4003 within a second, and their access token, still
//! valid, is refused by both gateways and by auth from then on; reactivated, they log in.

use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{api, begin, connect, Cluster, Socket};

/// Makes `name` an admin the way an operator does: `banter admin grant`.
async fn grant(cluster: &Cluster, name: &str) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_banter"))
        .args(["admin", "grant", name])
        .env("DATABASE_URL", &cluster.database_url)
        .output()
        .await
        .expect("banter admin runs");
    assert!(
        out.status.success(),
        "banter admin grant: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The close code the server sends on `socket`, waiting at most `within`.
async fn closed_within(socket: &mut Socket, within: Duration) -> Option<u16> {
    let deadline = Instant::now() + within;
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("the connection closes in time");
        match next {
            Some(Ok(WsMessage::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivation_closes_sockets_on_every_gateway_within_a_second_and_refuses_the_token() {
    let (_turn, cluster, _db) = begin().await;
    let (a, b) = (&cluster.gateways[0], &cluster.gateways[1]);
    let (root, root_token) = cluster.user("root").await;
    grant(&cluster, &root).await;
    let (dee, dee_token) = cluster.user("dee").await;
    let mut on_a = connect(a, &dee_token).await.expect("a socket on gateway A");
    let mut on_b = connect(b, &dee_token).await.expect("a socket on gateway B");
    for gateway in [a, b] {
        let (status, _) = api(
            gateway,
            reqwest::Method::GET,
            "/api/v1/rooms",
            None,
            &dee_token,
        )
        .await;
        assert_eq!(status, 200);
    }

    let (status, body) = api(
        a,
        reqwest::Method::POST,
        &format!("/api/v1/admin/users/{dee}/deactivate"),
        None,
        &root_token,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let second = Duration::from_secs(1);
    assert_eq!(closed_within(&mut on_a, second).await, Some(4003));
    assert_eq!(closed_within(&mut on_b, second).await, Some(4003));

    // The token has not expired; every process refuses it.
    for gateway in [a, b] {
        let (status, body) = api(
            gateway,
            reqwest::Method::GET,
            "/api/v1/rooms",
            None,
            &dee_token,
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("account_disabled")),
            "{gateway}"
        );
        assert!(
            connect(gateway, &dee_token).await.is_none(),
            "no new socket on {gateway}"
        );
    }
    let (status, body) = api(
        &cluster.auth,
        reqwest::Method::GET,
        "/api/v1/me",
        None,
        &dee_token,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("account_disabled"))
    );
    let login = serde_json::json!({ "username": dee, "password": "password123" });
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/v1/login", cluster.auth))
        .json(&login)
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 403);

    // Reactivated through the other gateway: they log in again and connect anywhere.
    let (status, _) = api(
        b,
        reqwest::Method::POST,
        &format!("/api/v1/admin/users/{dee}/reactivate"),
        None,
        &root_token,
    )
    .await;
    assert_eq!(status, 200);
    let r: serde_json::Value = http
        .post(format!("{}/api/v1/login", cluster.auth))
        .json(&login)
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let fresh = r["data"]["token"].as_str().expect("a token").to_owned();
    for gateway in [a, b] {
        assert!(
            connect(gateway, &fresh).await.is_some(),
            "a socket on {gateway}"
        );
    }
}
