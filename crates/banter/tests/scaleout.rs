//! The scale-out services as separate processes on the real Kafka and PostgreSQL: `auth`,
//! two `gateway`s and a `persist` worker, as the seed deploys them.

use std::process::{Command, Stdio};
use std::time::Duration;

use banter_testkit::{TestDb, WsClient};
use serde_json::{json, Value};

const SECRET: &str = "scale-out-test-secret-scale-out-test-secret";

struct Cluster {
    _db: TestDb,
    env: Vec<(String, String)>,
}

impl Cluster {
    async fn new() -> Self {
        let db = TestDb::postgres().await;
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let env = vec![
            ("DATABASE_URL".into(), db.url.clone()),
            ("JWT_SECRET".into(), SECRET.into()),
            ("KAFKA_BROKERS".into(), banter_testkit::kafka_brokers()),
            ("BANTER_KAFKA_TOPIC".into(), format!("chat-in-{tag}")),
            (
                "BANTER_KAFKA_EVENTS_TOPIC".into(),
                format!("chat-events-{tag}"),
            ),
            ("BANTER_KAFKA_PARTITIONS".into(), "3".into()),
            ("KAFKA_CONSUMER_GROUP".into(), format!("persist-{tag}")),
            ("KAFKA_DLQ_TOPIC".into(), format!("chat-dlq-{tag}")),
        ];
        let cluster = Self { _db: db, env };
        let out = cluster.command("migrate").output().expect("migrate");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn command(&self, role: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_banter"));
        cmd.arg(role);
        for var in [
            "BANTER_LISTEN",
            "AUTH_PORT",
            "GATEWAY_PORT",
            "RUST_LOG",
            "DB_HOST",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if role != "migrate" {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.stdin(Stdio::null());
        cmd
    }
}

#[path = "support/running.rs"]
mod running;
use running::Running;

async fn login(auth: &str, name: &str) -> String {
    let client = reqwest::Client::new();
    let creds = json!({"username": name, "password": "password123"});
    let r = client
        .post(format!("{auth}/api/v1/register"))
        .json(&creds)
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), 201);
    let r: Value = client
        .post(format!("{auth}/api/v1/login"))
        .json(&creds)
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    r["data"]["token"].as_str().expect("token").to_owned()
}

async fn ws(gateway: &str, token: &str, room: &str) -> WsClient {
    let url = format!(
        "{}/ws?token={token}&room={room}",
        gateway.replace("http", "ws")
    );
    let mut client = WsClient::connect(&url).await.expect("connect");
    client.recv_until("joined").await;
    client
}

#[tokio::test]
async fn a_message_sent_on_one_gateway_reaches_the_other_once_and_is_persisted() {
    let cluster = Cluster::new().await;
    let auth = Running::start(cluster.command("auth"));
    let gateway_a = Running::start(cluster.command("gateway"));
    let gateway_b = Running::start(cluster.command("gateway"));
    let _persist = Running::start(cluster.command("persist"));

    let alice = login(&auth.base, "alice").await;
    let bob = login(&auth.base, "bob").await;
    let mut a = ws(&gateway_a.base, &alice, "x").await;
    let mut b = ws(&gateway_b.base, &bob, "x").await;

    let ack = a.say("x", "across gateways", "c1").await;
    let at_b = b.recv_type("message").await;
    assert_eq!(at_b["id"], ack["id"]);
    assert_eq!(at_b["cursor"], ack["cursor"]);
    assert_eq!(at_b["body"], "across gateways");
    // Once: the next message Bob sees is the next one sent.
    a.say("x", "second", "c2").await;
    assert_eq!(b.recv_type("message").await["body"], "second");

    // Persisted: history on either gateway has both, once, in order.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let page: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/rooms/x/messages", gateway_b.base))
            .bearer_auth(&bob)
            .send()
            .await
            .expect("history")
            .json()
            .await
            .expect("json");
        let bodies: Vec<&str> = page["data"]["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["body"].as_str().expect("body"))
            .collect();
        if bodies == ["across gateways", "second"] {
            break;
        }
        assert!(bodies.len() <= 2, "duplicates in history: {bodies:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "not persisted: {bodies:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn resuming_on_another_gateway_gets_what_was_missed_even_before_it_is_persisted() {
    // No persist worker: the messages exist only in Kafka (and in the gateways' memory).
    let cluster = Cluster::new().await;
    let auth = Running::start(cluster.command("auth"));
    let gateway_a = Running::start(cluster.command("gateway"));
    let gateway_b = Running::start(cluster.command("gateway"));
    let alice = login(&auth.base, "alice").await;
    let bob = login(&auth.base, "bob").await;

    let mut a = ws(&gateway_a.base, &alice, "y").await;
    let mut b = ws(&gateway_b.base, &bob, "y").await;
    a.say("y", "seen", "s0").await;
    let last_seen = b.recv_type("message").await["cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    b.close().await;
    for i in 1..=3 {
        a.say("y", &format!("missed {i}"), &format!("s{i}")).await;
    }
    // Bob comes back on the other gateway, with his last cursor.
    let mut b = ws(&gateway_a.base, &bob, "elsewhere").await;
    let frames = b.join("y", Some(&last_seen)).await;
    let bodies: Vec<&str> = frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| f["body"].as_str().expect("body"))
        .collect();
    assert_eq!(bodies, ["missed 1", "missed 2", "missed 3"]);
    // And live from there, once.
    a.say("y", "live", "s4").await;
    assert_eq!(b.recv_type("message").await["body"], "live");
}
