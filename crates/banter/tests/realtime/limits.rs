//! Bad frames, big frames, expiring tokens and slow readers: each gets a clear answer, and
//! the server neither crashes nor loses anything nor grows without bound.

use std::time::Duration;

use banter_gateway::GatewayConfig;
use banter_testkit::{Db, Options, TestApp};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use banter_testkit::token_of as token;

#[tokio::test]
async fn bad_frames_get_error_frames_and_the_connection_lives_on() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let alice = token(&app.signup("alice").await);
    let mut a = app.ws(&alice, None).await;
    for (frame, code) in [
        ("not json", "validation_failed"),
        ("[]", "validation_failed"),
        ("{}", "validation_failed"),
        (r#"{"type":"dance"}"#, "validation_failed"),
        (r#"{"type":"send","room":"general"}"#, "validation_failed"),
        (
            r#"{"type":"send","room":"no spaces","body":"x"}"#,
            "validation_failed",
        ),
        (
            r#"{"type":"send","room":"general","body":"   "}"#,
            "validation_failed",
        ),
        (
            r#"{"type":"send","room":"general","body":7}"#,
            "validation_failed",
        ),
        (
            r#"{"type":"join","room":"general","since":"123"}"#,
            "validation_failed",
        ),
        (r#"{"type":"typing","room":"not-joined"}"#, "forbidden"),
        (r#"{"type":"auth","token":"nope"}"#, "unauthorized"),
    ] {
        a.send_text(frame).await;
        let err = a.recv_type("error").await;
        assert_eq!(err["code"], code, "{frame} -> {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    a.send_raw(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(a.recv_type("error").await["code"], "validation_failed");
    let body = "x".repeat(4001);
    a.send(&json!({"type":"send","room":"general","body":body,"client_id":"big"}))
        .await;
    let err = a.recv_type("error").await;
    assert_eq!(err["code"], "too_large");
    assert_eq!(err["client_id"], "big");
    // Still alive and well.
    a.say("general", "still here", "ok").await;
}

#[tokio::test]
async fn oversized_frames_are_refused() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let alice = token(&app.signup("alice").await);
    let mut a = app.ws(&alice, None).await;
    a.send_text(&format!(
        r#"{{"type":"send","room":"general","body":"{}"}}"#,
        "x".repeat(70 * 1024)
    ))
    .await;
    assert_eq!(a.recv_type("error").await["code"], "too_large");
    a.say("general", "alive", "a1").await;
    // Far too big to even read: the connection is closed.
    a.send_text(&"x".repeat(2 * 1024 * 1024)).await;
    let code = a.closed().await;
    assert!(matches!(code, None | Some(1009)), "{code:?}");
}

#[tokio::test]
async fn an_expiring_token_closes_the_socket_unless_renewed() {
    let app = TestApp::spawn_with(
        Db::Sqlite,
        Options {
            access_ttl: Duration::from_secs(2),
            ..Options::default()
        },
    )
    .await;
    let login = app.signup("alice").await;
    let short = token(&login);
    let mut renewed = app.ws(&short, None).await;
    let mut lapsing = app.ws(&short, None).await;

    let fresh = banter_testkit::tokens::forge(&login, 0, 600);
    renewed.send(&json!({"type":"auth","token":fresh})).await;
    let ok = renewed.recv_type("authenticated").await;
    assert!(ok["expires_in"].as_i64().is_some_and(|s| s > 500), "{ok}");

    // The other connection's token lapses: error frame, then close 4001.
    assert_eq!(lapsing.recv_type("error").await["code"], "token_expired");
    assert_eq!(lapsing.closed().await, Some(4001));
    // By then the renewed one is past its first token's expiry, and still works.
    renewed.say("general", "still here", "r1").await;
}

#[tokio::test]
async fn a_reader_that_cannot_keep_up_is_closed_and_resumes_without_loss() {
    let app = TestApp::spawn_with(
        Db::Sqlite,
        Options {
            // A writer far faster than the send limit allows: the limit is not the point.
            gateway: GatewayConfig {
                outbound_queue: 16,
                limits: banter_gateway::limits::GatewayLimitSettings::off(),
                ..GatewayConfig::default()
            },
            ..Options::default()
        },
    )
    .await;
    let slow_token = token(&app.signup("slow").await);
    let fast = token(&app.signup("fast").await);
    let mut slow = app.ws(&slow_token, Some("flood")).await;
    let since = {
        let mut f = app.ws(&fast, Some("flood")).await;
        let first = f.say("flood", "first", "f0").await;
        // Enough to fill the slow reader's socket buffers and then its queue. The sender
        // reads as it goes (it is in the room too), in windows of 8 sends (its own queue
        // holds 16).
        let body = "y".repeat(4000);
        for window in 0..375 {
            for i in window * 8 + 1..=window * 8 + 8 {
                f.send(
                    &json!({"type":"send","room":"flood","body":body,"client_id":format!("f{i}")}),
                )
                .await;
            }
            let last = format!("f{}", window * 8 + 8);
            loop {
                let frame = f.recv().await;
                assert_ne!(frame["type"], "error", "{frame}");
                if frame["type"] == "ack" && frame["client_id"] == last.as_str() {
                    break;
                }
            }
        }
        first["cursor"].as_str().expect("cursor").to_owned()
    };
    // The slow reader now reads what it was sent, then finds itself closed with 4008.
    let mut seen: Vec<String> = Vec::new();
    let mut last_cursor = since.clone();
    let code = loop {
        match tokio::time::timeout(banter_testkit::FRAME_TIMEOUT, slow.next_raw()).await {
            Ok(Some(Message::Text(t))) => {
                let frame: Value = serde_json::from_str(t.as_str()).expect("json");
                if frame["type"] == "message" {
                    last_cursor = frame["cursor"].as_str().expect("cursor").to_owned();
                    seen.push(frame["client_id"].as_str().expect("client id").to_owned());
                }
            }
            Ok(Some(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Ok(Some(_)) => {}
            Ok(None) => break None,
            Err(_) => panic!("the slow reader was never closed"),
        }
    };
    assert_eq!(code, Some(4008));
    assert!(seen.len() < 3001, "it was closed before the end");
    // It resumes from its last cursor and gets exactly the rest.
    let mut again = app.ws(&slow_token, Some("elsewhere")).await;
    let frames = again.join("flood", Some(&last_cursor)).await;
    seen.extend(
        frames
            .iter()
            .filter(|f| f["type"] == "message")
            .map(|m| m["client_id"].as_str().expect("client id").to_owned()),
    );
    let expected: Vec<String> = (0..=3000).map(|i| format!("f{i}")).collect();
    assert_eq!(
        seen, expected,
        "every message once, in order, across the close"
    );
}

#[tokio::test]
async fn silent_connections_are_closed_and_answering_ones_kept() {
    let app = TestApp::spawn_with(
        Db::Sqlite,
        Options {
            gateway: GatewayConfig {
                ping_interval: Duration::from_millis(100),
                idle_timeout: Duration::from_millis(500),
                ..GatewayConfig::default()
            },
            ..Options::default()
        },
    )
    .await;
    let alice = token(&app.signup("alice").await);
    let mut silent = app.ws(&alice, None).await;
    // This one keeps reading, so its client answers every ping with a pong. Its pings also
    // measure time: ten of them take longer than the idle timeout.
    let mut lively = app.ws(&alice, None).await;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let (waited, enough) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        let mut waited = Some(waited);
        let mut pings = 0;
        loop {
            tokio::select! {
                _ = &mut stopped => return lively,
                m = lively.next_raw() => match m {
                    Some(Message::Ping(_)) => {
                        pings += 1;
                        if pings == 10 {
                            waited.take().map(|w| w.send(()));
                        }
                    }
                    Some(_) => {}
                    None => panic!("the lively connection was closed"),
                },
            }
        }
    });
    enough.await.expect("ten pings");
    // Meanwhile the silent one read nothing, so it answered no ping: it was closed as idle.
    assert_eq!(silent.closed().await, Some(1001));
    stop.send(()).expect("stop the reader");
    let mut lively = reader.await.expect("reader");
    lively.say("general", "still here", "l1").await;
}
