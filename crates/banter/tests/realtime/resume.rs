//! Reconnect and resume with `since`: exactly the missed messages, in order, then live ones,
//! with nothing lost or doubled, also for messages sent while the replay runs.

use banter_testkit::{Db, Options, TestApp};
use serde_json::{json, Value};

use banter_testkit::token_of as token;

#[tokio::test]
async fn resume_after_a_disconnect_misses_nothing_and_doubles_nothing() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let alice = token(&app.signup("alice").await);
    let bob = token(&app.signup("bob").await);
    let mut a = app.ws(&alice, Some("r")).await;
    let mut b = app.ws(&bob, Some("r")).await;
    b.say("r", "before", "b0").await;
    let last_seen = a.recv_type("message").await["cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    a.close().await;

    for i in 1..=5 {
        b.say("r", &format!("missed {i}"), &format!("b{i}")).await;
    }
    let mut a = app.ws(&alice, Some("elsewhere")).await;
    let frames = a.join("r", Some(&last_seen)).await;
    let replayed: Vec<&Value> = frames.iter().filter(|f| f["type"] == "message").collect();
    let bodies: Vec<&str> = replayed
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    assert_eq!(
        bodies,
        ["missed 1", "missed 2", "missed 3", "missed 4", "missed 5"]
    );
    let joined = frames.last().expect("joined");
    assert_eq!(joined["cursor"], replayed[4]["cursor"]);

    b.say("r", "live", "b6").await;
    assert_eq!(a.recv_type("message").await["body"], "live");
}

#[tokio::test]
async fn messages_sent_during_a_long_replay_arrive_once_and_in_order() {
    // Hundreds of sends in a burst: past the send limit, which is not the point here.
    let app = TestApp::spawn_with(Db::Sqlite, Options::unlimited()).await;
    let alice = token(&app.signup("alice").await);
    let bob = token(&app.signup("bob").await);
    let mut b = app.ws(&bob, Some("busy")).await;
    let since = b.say("busy", "start", "s").await["cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    // More than two replay pages of history.
    const MISSED: usize = 1200;
    for i in 0..MISSED {
        b.send(&json!({"type":"send","room":"busy","body":format!("old {i}"),"client_id":format!("o{i}")}))
            .await;
    }
    b.recv_until_ack("o1199").await;

    // While Alice resumes, Bob keeps talking from another task.
    const LIVE: usize = 300;
    let mut a = app.ws(&alice, Some("elsewhere")).await;
    let talker = tokio::spawn(async move {
        for i in 0..LIVE {
            b.send(&json!({"type":"send","room":"busy","body":format!("new {i}"),"client_id":format!("n{i}")}))
                .await;
        }
        b.recv_until_ack(&format!("n{}", LIVE - 1)).await;
        b
    });
    a.send(&json!({"type":"join","room":"busy","since":since}))
        .await;
    let mut bodies = Vec::new();
    let mut cursors = Vec::new();
    while bodies.last().map(String::as_str) != Some(&*format!("new {}", LIVE - 1)) {
        let frame = a.recv().await;
        if frame["type"] == "message" {
            bodies.push(frame["body"].as_str().expect("body").to_owned());
            cursors.push(frame["cursor"].as_str().expect("cursor").to_owned());
        }
    }
    talker.await.expect("talker");
    let expected: Vec<String> = (0..MISSED)
        .map(|i| format!("old {i}"))
        .chain((0..LIVE).map(|i| format!("new {i}")))
        .collect();
    assert_eq!(
        bodies.len(),
        expected.len(),
        "nothing lost, nothing doubled"
    );
    assert_eq!(bodies, expected);
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "cursors only go up"
    );
}

/// Reads until the ack of `client_id`.
trait AckWait {
    async fn recv_until_ack(&mut self, client_id: &str);
}

impl AckWait for banter_testkit::WsClient {
    async fn recv_until_ack(&mut self, client_id: &str) {
        loop {
            let frame = self.recv().await;
            assert_ne!(frame["type"], "error", "{frame}");
            if frame["type"] == "ack" && frame["client_id"] == client_id {
                return;
            }
        }
    }
}
