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
            // Short, so that a dead gateway's ghosts go within a test's patience.
            ("BANTER_PRESENCE_HEARTBEAT".into(), "300ms".into()),
            ("BANTER_PRESENCE_TTL".into(), "1500ms".into()),
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

    // Ready means the database and Kafka answer.
    let ready: Value = reqwest::get(format!("{}/ready", gateway_a.base))
        .await
        .expect("ready")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["dependencies"]["kafka"]["state"], "up", "{ready}");

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

/// Waits for a presence frame saying `user` is in `state`, skipping anything else (news of
/// what was already known may come first: a gateway learns of others in its own time).
async fn presence_of(client: &mut WsClient, user: &str, state: &str) {
    loop {
        let frame = client.recv_type("presence").await;
        if frame["user"] == user && frame["state"] == state {
            return;
        }
    }
}

async fn online_at(gateway: &str, token: &str, room: &str) -> Vec<String> {
    let page: Value = reqwest::Client::new()
        .get(format!("{gateway}/api/v1/rooms/{room}/presence"))
        .bearer_auth(token)
        .send()
        .await
        .expect("presence")
        .json()
        .await
        .expect("json");
    serde_json::from_value(page["data"]["users"].clone()).expect("users")
}

#[tokio::test]
async fn presence_crosses_gateways_and_a_dead_gateway_leaves_no_ghosts() {
    let cluster = Cluster::new().await;
    let auth = Running::start(cluster.command("auth"));
    let mut gateway_a = Running::start(cluster.command("gateway"));
    let gateway_b = Running::start(cluster.command("gateway"));
    let alice = login(&auth.base, "alice").await;
    let bob = login(&auth.base, "bob").await;
    let carol = login(&auth.base, "carol").await;

    let mut a = ws(&gateway_a.base, &alice, "p").await;
    let mut b = ws(&gateway_b.base, &bob, "p").await;
    // Alice, on A, hears Bob come online on B.
    presence_of(&mut a, "bob", "online").await;
    // B lists Alice (told by A's change or, at the latest, its next heartbeat).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while online_at(&gateway_b.base, &bob, "p").await != ["alice", "bob"] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never listed alice"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A gateway started later learns who is online at once (hello → snapshots).
    let gateway_c = Running::start(cluster.command("gateway"));
    let mut c = ws(&gateway_c.base, &carol, "elsewhere").await;
    let members = c.join("p", None).await;
    let mut listed: Vec<String> = serde_json::from_value(
        members
            .iter()
            .find(|f| f["type"] == "members")
            .expect("members")["users"]
            .clone(),
    )
    .expect("users");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while listed != ["alice", "bob", "carol"] {
        assert!(tokio::time::Instant::now() < deadline, "C lists {listed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        listed = online_at(&gateway_c.base, &carol, "p").await;
    }

    // A dies without a word: Alice goes offline for Bob within the presence TTL.
    gateway_a.kill();
    let started = std::time::Instant::now();
    presence_of(&mut b, "alice", "offline").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "alice's ghost lasted {:?}",
        started.elapsed()
    );
    assert_eq!(
        online_at(&gateway_b.base, &bob, "p").await,
        ["bob", "carol"]
    );
    drop(a);
}
