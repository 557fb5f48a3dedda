//! End to end on the local cluster of `scripts/cluster up`: PostgreSQL, Kafka, `auth`, two
//! `gateway`s, two `persist` workers and two `notify` workers as separate processes, driven by real WebSocket
//! clients, checked against the rows in PostgreSQL. It is the seed's topology, and these are
//! the guarantees of the contract across processes, under load and under faults: a gateway
//! or a persist worker killed with SIGKILL or stopped with SIGTERM, PostgreSQL stopped for
//! 20 s, Kafka stopped.
//!
//! The cluster is found through `BANTER_TEST_CLUSTER` (a directory), or `.cluster` at the
//! repository root; without one the tests fail, saying how to start it. They stop parts of
//! the shared cluster, so they take turns, and each begins by starting whatever an earlier
//! one left stopped.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use banter_client::{Answer, Client, Event, Gateways, Outbox, Resume};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sqlx::{PgPool, Row};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// One test at a time: they stop and kill parts of the one cluster.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PROCESSES: [&str; 7] = [
    "auth",
    "gateway-1",
    "gateway-2",
    "persist-1",
    "persist-2",
    "notify-1",
    "notify-2",
];

#[path = "cluster/admin.rs"]
mod admin;
#[path = "cluster/push.rs"]
mod push;
/// How long anything may take before a test gives up (faults included).
const PATIENCE: Duration = Duration::from_secs(180);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[derive(Debug, Clone)]
struct Cluster {
    dir: PathBuf,
    auth: String,
    gateways: Vec<String>,
    database_url: String,
    /// The gateways' attachment storage, and its keys.
    files: String,
    files_env: HashMap<String, String>,
    /// The notifiers' health and metrics endpoints, as `notify-1`, `notify-2`.
    notifiers: Vec<String>,
    /// Where a test's stand-in push service must listen, and the key pushes are signed with.
    push_service: String,
    vapid_public_key: String,
}

impl Cluster {
    fn open() -> Self {
        let dir = std::env::var_os("BANTER_TEST_CLUSTER")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join(".cluster"));
        let env = std::fs::read_to_string(dir.join("env")).unwrap_or_else(|e| {
            panic!(
                "no cluster in {} ({e}). Start one with `scripts/cluster up` \
                 (scripts/test does), or point BANTER_TEST_CLUSTER at one",
                dir.display()
            )
        });
        let vars: HashMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
        let var = |k: &str| {
            vars.get(k)
                .unwrap_or_else(|| panic!("{k} missing from the cluster's env"))
                .to_string()
        };
        Self {
            dir,
            auth: var("AUTH_URL"),
            gateways: var("GATEWAY_URLS").split(',').map(str::to_owned).collect(),
            database_url: var("DATABASE_URL"),
            files: var("BANTER_FILES").trim_matches('\'').to_owned(),
            files_env: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
                .into_iter()
                .map(|k| (k.to_owned(), var(k)))
                .collect(),
            notifiers: var("NOTIFY_URLS").split(',').map(str::to_owned).collect(),
            push_service: var("PUSH_SERVICE_ADDR"),
            vapid_public_key: var("BANTER_VAPID_PUBLIC_KEY"),
        }
    }

    /// Runs `scripts/cluster ARGS DIR`, failing the test if it fails.
    async fn script(&self, args: &[&str]) {
        let mut cmd = tokio::process::Command::new(repo_root().join("scripts/cluster"));
        cmd.args(args).arg(&self.dir);
        let out = cmd.output().await.expect("scripts/cluster runs");
        assert!(
            out.status.success(),
            "scripts/cluster {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts whatever is stopped, so each test begins with the whole cluster.
    async fn heal(&self) {
        self.script(&["start", "postgres"]).await;
        self.script(&["start", "kafka"]).await;
        for name in PROCESSES {
            self.script(&["start", name]).await;
        }
    }

    async fn db(&self) -> PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.database_url)
            .await
            .expect("the cluster's PostgreSQL")
    }

    /// Registers a user with a fresh name and returns (name, access token).
    async fn user(&self, prefix: &str) -> (String, String) {
        let name = format!(
            "{prefix}{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let creds = json!({"username": name, "password": "password123"});
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{}/api/v1/register", self.auth))
            .json(&creds)
            .send()
            .await
            .expect("register");
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        let r: Value = http
            .post(format!("{}/api/v1/login", self.auth))
            .json(&creds)
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("json");
        let token = r["data"]["token"].as_str().expect("token").to_owned();
        (name, token)
    }
}

/// Each test's start: its turn at the cluster, the cluster whole again, a database pool.
async fn begin() -> (tokio::sync::MutexGuard<'static, ()>, Cluster, PgPool) {
    let turn = TURN.lock().await;
    let cluster = Cluster::open();
    cluster.heal().await;
    let db = cluster.db().await;
    (turn, cluster, db)
}

/// Rooms of their own for each test, so tests never see each other's messages.
fn rooms(n: usize) -> Vec<String> {
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    (0..n).map(|i| format!("e2e-{tag}-{i}")).collect()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(gateway: &str, token: &str) -> Option<Socket> {
    let url = banter_client::ws_url(gateway, token);
    let (socket, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .ok()?
    .ok()?;
    Some(socket)
}

fn text(frame: &Value) -> WsMessage {
    WsMessage::text(frame.to_string())
}

/// A message a sender will send.
#[derive(Debug, Clone)]
struct Planned {
    room: String,
    client_id: String,
    body: String,
}

/// `n` messages per room from `sender`, rooms interleaved; the body says who sent which.
fn plan(sender: &str, rooms: &[String], n: usize) -> Vec<Planned> {
    (0..n)
        .flat_map(|seq| {
            rooms.iter().map(move |room| Planned {
                room: room.clone(),
                client_id: format!("{sender}-{room}-{seq}"),
                body: format!("{sender} {seq}"),
            })
        })
        .collect()
}

#[derive(Debug, Default)]
struct Sent {
    /// client_id → the acked message's id.
    acked: HashMap<String, String>,
    /// Error frames by code.
    errors: HashMap<String, usize>,
    reconnects: usize,
    /// The codes of the close frames the server sent.
    closes: Vec<u16>,
}

/// A client that sends `plan` as a careful client does (banter-client's `Outbox`): at most
/// `window` unacked, pacing `every` between new sends; an `unavailable` answer is retried
/// with the same client id after a pause, and when its gateway goes away it moves to the next
/// one and re-sends whatever was not acked, with the same client ids. `acks` counts acks as
/// they come. It also holds the server to answering in the order of the sends.
async fn send_reliably(
    gateways: Vec<String>,
    first: usize,
    token: String,
    plan: Vec<Planned>,
    window: usize,
    every: Option<Duration>,
    acks: Arc<AtomicUsize>,
) -> Sent {
    let mut sent = Sent::default();
    let mut gateways = Gateways::new(gateways, first);
    let mut outbox = Outbox::new(window, Instant::now());
    let mut next = 0; // the next planned message not yet handed to the outbox
    let mut pace = every.map(tokio::time::interval);
    let deadline = Instant::now() + PATIENCE;
    let mut connected_before = false;
    while sent.acked.len() < plan.len() {
        assert!(Instant::now() < deadline, "sender gave up: {sent:?}");
        let Some(socket) = connect(gateways.current(), &token).await else {
            gateways.move_on();
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if connected_before {
            sent.reconnects += 1;
        }
        connected_before = true;
        let (mut sink, mut stream) = socket.split();
        // What this connection sent, in order: answers must come in this order.
        let mut sent_here: VecDeque<u64> = VecDeque::new();
        'connection: loop {
            // New messages join the outbox at the pace asked (all at once without one).
            while next < plan.len() && outbox.waiting() + outbox.in_flight() < window {
                if let Some(pace) = pace.as_mut() {
                    if tokio::time::timeout(Duration::ZERO, pace.tick())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                let p = &plan[next];
                outbox.push(
                    next as u64,
                    &p.client_id,
                    banter_client::send_frame(&p.room, &p.body, &p.client_id),
                );
                next += 1;
            }
            while let Some((seq, frame)) = outbox.next_to_send(Instant::now()) {
                if sink.send(WsMessage::text(frame)).await.is_err() {
                    outbox.unsent(seq);
                    break 'connection;
                }
                sent_here.push_back(seq);
            }
            if sent.acked.len() == plan.len() {
                break;
            }
            let frame = match tokio::time::timeout(Duration::from_millis(20), stream.next()).await {
                Err(_) => continue, // time to pace or to end a pause
                Ok(Some(Ok(WsMessage::Text(t)))) => {
                    serde_json::from_str::<Value>(&t).expect("json")
                }
                Ok(Some(Ok(WsMessage::Close(Some(close))))) => {
                    sent.closes.push(close.code.into());
                    continue;
                }
                Ok(Some(Ok(_))) => continue,
                Ok(None | Some(Err(_))) => break 'connection,
            };
            let answered = match outbox.answer(&frame, Instant::now()) {
                None if frame["type"] == "error" => panic!("an error frame: {frame}"),
                None => continue,
                Some(answer) => answer,
            };
            let seq = match &answered {
                Answer::Acked { seq, .. }
                | Answer::Retry { seq, .. }
                | Answer::Refused { seq, .. } => *seq,
            };
            assert_eq!(
                sent_here.pop_front(),
                Some(seq),
                "answers come in send order: {frame}"
            );
            match answered {
                Answer::Acked { seq, ack } => {
                    let id = ack["id"].as_str().expect("id").to_owned();
                    if sent
                        .acked
                        .insert(plan[seq as usize].client_id.clone(), id)
                        .is_none()
                    {
                        acks.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Answer::Retry { code, .. } => {
                    assert_eq!(code, "unavailable", "a send refused: {frame}");
                    *sent.errors.entry(code).or_default() += 1;
                }
                Answer::Refused { .. } => panic!("a send refused: {frame}"),
            }
        }
        // The connection is gone: what was not answered is sent again, first, in order.
        outbox.disconnected();
        if sent.acked.len() < plan.len() {
            gateways.move_on();
        }
    }
    sent
}

/// Starts [`send_reliably`] in a task, first on gateway `first`.
fn spawn_sender(
    cluster: &Cluster,
    first: usize,
    token: String,
    plan: &[Planned],
    window: usize,
    every: Option<Duration>,
    acks: &Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<Sent> {
    tokio::spawn(send_reliably(
        cluster.gateways.clone(),
        first,
        token,
        plan.to_vec(),
        window,
        every,
        acks.clone(),
    ))
}

/// What a reader got, per room: message ids in the order received.
#[derive(Debug, Default)]
struct Read {
    rooms: HashMap<String, Vec<String>>,
    reconnects: usize,
    /// The codes of the close frames the server sent.
    closes: Vec<u16>,
}

/// A client that reads `rooms` until told to stop, moving to the next gateway when its own goes
/// away and resuming each room from the last cursor it got (banter-client's `Resume`), as
/// the web app does.
async fn read_reliably(
    gateways: Vec<String>,
    first: usize,
    token: String,
    rooms: Vec<String>,
    joined: tokio::sync::oneshot::Sender<()>,
    stop: tokio_util::sync::CancellationToken,
    count: Arc<AtomicUsize>,
) -> Read {
    let mut read = Read::default();
    let mut resume = Resume::new(rooms.iter().cloned());
    let mut gateways = Gateways::new(gateways, first);
    let mut joined = Some(joined);
    let deadline = Instant::now() + PATIENCE;
    'reconnect: while !stop.is_cancelled() {
        assert!(Instant::now() < deadline, "reader gave up");
        let Some(socket) = connect(gateways.current(), &token).await else {
            gateways.move_on();
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if joined.is_none() {
            read.reconnects += 1;
        }
        let (mut sink, mut stream) = socket.split();
        let mut pending_joins = rooms.len();
        for room in &rooms {
            if sink.send(WsMessage::text(resume.join(room))).await.is_err() {
                gateways.move_on();
                continue 'reconnect;
            }
        }
        loop {
            let frame = tokio::select! {
                () = stop.cancelled() => break 'reconnect,
                f = stream.next() => f,
            };
            let frame: Value = match frame {
                Some(Ok(WsMessage::Text(t))) => serde_json::from_str(&t).expect("json"),
                Some(Ok(WsMessage::Close(Some(close)))) => {
                    read.closes.push(close.code.into());
                    continue;
                }
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => break,
            };
            let ours = resume.heard(&frame);
            match frame["type"].as_str() {
                Some("message") if ours => {
                    let room = frame["room"].as_str().expect("room").to_owned();
                    read.rooms
                        .entry(room)
                        .or_default()
                        .push(frame["id"].as_str().expect("id").into());
                    count.fetch_add(1, Ordering::Relaxed);
                }
                // The connection's initial room is not one of ours.
                Some("joined") if rooms.iter().any(|r| frame["room"] == r.as_str()) => {
                    pending_joins -= 1;
                    if pending_joins == 0 {
                        if let Some(tx) = joined.take() {
                            let _ = tx.send(());
                        }
                    }
                }
                Some("error") => panic!("reader got an error: {frame}"),
                _ => {}
            }
        }
        gateways.move_on();
    }
    read
}

/// A row of a room in PostgreSQL.
#[derive(Debug, Clone)]
struct Row_ {
    id: String,
    client_id: Option<String>,
    body: String,
}

/// The rows of `rooms` in log order, per room.
async fn stored(db: &PgPool, rooms: &[String]) -> HashMap<String, Vec<Row_>> {
    let rows = sqlx::query(
        "SELECT room, id::text AS id, client_id, body FROM messages \
         WHERE room = ANY($1) ORDER BY room, part, seq",
    )
    .bind(rooms)
    .fetch_all(db)
    .await
    .expect("query messages");
    let mut by_room: HashMap<String, Vec<Row_>> = HashMap::new();
    for row in rows {
        by_room.entry(row.get("room")).or_default().push(Row_ {
            id: row.get("id"),
            client_id: row.get("client_id"),
            body: row.get("body"),
        });
    }
    by_room
}

/// Waits until PostgreSQL holds `n` rows for `rooms`, then returns them. More than `n` fails.
async fn wait_stored(db: &PgPool, rooms: &[String], n: usize) -> HashMap<String, Vec<Row_>> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE room = ANY($1)")
            .bind(rooms)
            .fetch_one(db)
            .await
            .unwrap_or(-1);
        assert!(
            count <= n as i64,
            "{count} rows for {n} messages: duplicates"
        );
        if count == n as i64 {
            return stored(db, rooms).await;
        }
        assert!(
            Instant::now() < deadline,
            "only {count} of {n} messages persisted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every planned message is stored exactly once, under the id it was acked with, and each
/// sender's messages sit in its room in the order it sent them.
fn assert_exactly_once_in_order(
    stored: &HashMap<String, Vec<Row_>>,
    plans: &[&[Planned]],
    sent: &[&Sent],
) {
    assert_exactly_once(stored, plans, sent);
    assert_senders_order(stored);
}

/// Every planned message is stored exactly once, under the id it was acked with.
fn assert_exactly_once(stored: &HashMap<String, Vec<Row_>>, plans: &[&[Planned]], sent: &[&Sent]) {
    let mut by_client_id: HashMap<&str, &Row_> = HashMap::new();
    for rows in stored.values() {
        for row in rows {
            let cid = row
                .client_id
                .as_deref()
                .expect("every test message has a client id");
            assert!(
                by_client_id.insert(cid, row).is_none(),
                "{cid} stored twice"
            );
        }
    }
    let planned: usize = plans.iter().map(|p| p.len()).sum();
    assert_eq!(
        by_client_id.len(),
        planned,
        "stored rows vs planned messages"
    );
    for (plan, sent) in plans.iter().zip(sent) {
        for p in plan.iter() {
            let row = by_client_id
                .get(p.client_id.as_str())
                .unwrap_or_else(|| panic!("{} was acked but is not stored", p.client_id));
            assert_eq!(row.body, p.body);
            assert_eq!(
                Some(&row.id),
                sent.acked.get(&p.client_id),
                "{} is stored under another id than its ack said",
                p.client_id
            );
        }
    }
}

/// Per room, each sender's sequence numbers only grow.
fn assert_senders_order(stored: &HashMap<String, Vec<Row_>>) {
    for (room, rows) in stored {
        let mut last: HashMap<&str, u64> = HashMap::new();
        for row in rows {
            let (sender, seq) = row.body.split_once(' ').expect("sender seq");
            let seq: u64 = seq.parse().expect("seq");
            if let Some(prev) = last.insert(sender, seq) {
                assert!(
                    prev < seq,
                    "{room}: {sender} {seq} stored after {sender} {prev}"
                );
            }
        }
    }
}

/// Waits until the reader has every stored message of its rooms, then checks it got exactly
/// them: same ids, same order, nothing missing, nothing twice.
async fn assert_read_everything(reader: Reader, stored: &HashMap<String, Vec<Row_>>) -> Read {
    let expected: usize = stored.values().map(Vec::len).sum();
    let deadline = Instant::now() + PATIENCE;
    while reader.count.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    reader.stop.cancel();
    let read = reader.handle.await.expect("reader");
    for (room, rows) in stored {
        let want: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let got: Vec<&str> = read
            .rooms
            .get(room)
            .map(|ids| ids.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if got != want {
            let missing = want.iter().filter(|id| !got.contains(id)).count();
            let mut seen = std::collections::HashSet::new();
            let twice = got.iter().filter(|id| !seen.insert(**id)).count();
            panic!(
                "{room}: the reader got {} messages, {} stored; {missing} missing, {twice} twice \
                 (or out of order)",
                got.len(),
                want.len()
            );
        }
    }
    read
}

/// A reader running in its own task.
struct Reader {
    handle: tokio::task::JoinHandle<Read>,
    stop: tokio_util::sync::CancellationToken,
    /// Messages received so far.
    count: Arc<AtomicUsize>,
}

/// Starts a reader and waits until it has joined its rooms.
async fn start_reader(cluster: &Cluster, first: usize, token: &str, rooms: &[String]) -> Reader {
    let stop = tokio_util::sync::CancellationToken::new();
    let count = Arc::new(AtomicUsize::new(0));
    let (joined_tx, joined) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(read_reliably(
        cluster.gateways.clone(),
        first,
        token.to_owned(),
        rooms.to_vec(),
        joined_tx,
        stop.clone(),
        count.clone(),
    ));
    tokio::time::timeout(Duration::from_secs(30), joined)
        .await
        .expect("the reader joined its rooms in time")
        .expect("the reader is running");
    Reader {
        handle,
        stop,
        count,
    }
}

async fn wait_acked(acks: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    while acks.load(Ordering::Relaxed) < n {
        assert!(Instant::now() < deadline, "{n} acks never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_over_twenty_rooms_through_two_gateways_are_stored_once_in_order() {
    let (_turn, cluster, db) = begin().await;
    let rooms = rooms(20);
    let (_, alice) = cluster.user("alice").await;
    let (_, bob) = cluster.user("bob").await;
    let (_, reader) = cluster.user("reader").await;
    let reader = start_reader(&cluster, 1, &reader, &rooms).await;

    let plan_a = plan("alice", &rooms, 250);
    let plan_b = plan("bob", &rooms, 250);
    let acks = Arc::new(AtomicUsize::new(0));
    let a = spawn_sender(&cluster, 0, alice, &plan_a, 64, None, &acks);
    let b = spawn_sender(&cluster, 1, bob, &plan_b, 64, None, &acks);
    let (a, b) = (a.await.expect("alice"), b.await.expect("bob"));
    assert_eq!(acks.load(Ordering::Relaxed), 10_000);
    assert!(
        a.errors.is_empty() && b.errors.is_empty(),
        "{:?} {:?}",
        a.errors,
        b.errors
    );
    assert_eq!((a.reconnects, b.reconnects), (0, 0));

    let stored = wait_stored(&db, &rooms, 10_000).await;
    assert_exactly_once_in_order(&stored, &[&plan_a, &plan_b], &[&a, &b]);
    let read = assert_read_everything(reader, &stored).await;
    assert_eq!(read.reconnects, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_persist_worker_mid_stream_still_stores_each_message_once() {
    let (_turn, cluster, db) = begin().await;
    let rooms = rooms(12);
    let (_, alice) = cluster.user("alice").await;
    let plan_a = plan("alice", &rooms, 250);
    let acks = Arc::new(AtomicUsize::new(0));
    let sender = spawn_sender(&cluster, 0, alice, &plan_a, 32, None, &acks);
    // Mid-stream, and once the workers have stored some of it.
    wait_acked(&acks, 1_000).await;
    let deadline = Instant::now() + PATIENCE;
    while stored(&db, &rooms)
        .await
        .values()
        .map(Vec::len)
        .sum::<usize>()
        == 0
    {
        assert!(Instant::now() < deadline, "nothing persisted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.script(&["kill", "persist-1"]).await;
    let sent = sender.await.expect("sender");
    assert!(sent.errors.is_empty(), "{:?}", sent.errors);

    // The other worker takes the dead one's partitions (after its session times out) and
    // goes on from the last committed offsets: redelivered records are stored once.
    let stored = wait_stored(&db, &rooms, plan_a.len()).await;
    assert_exactly_once_in_order(&stored, &[&plan_a], &[&sent]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_gateway_moves_its_clients_to_the_other_with_no_gap_and_no_duplicate() {
    let (_turn, cluster, db) = begin().await;
    let rooms = rooms(4);
    let (_, alice) = cluster.user("alice").await;
    let (_, bob) = cluster.user("bob").await;
    let mut readers = Vec::new();
    for i in 0..3 {
        let (_, token) = cluster.user(&format!("reader{i}")).await;
        // All on gateway-1, which is about to die.
        readers.push(start_reader(&cluster, 0, &token, &rooms).await);
    }
    let plan_a = plan("alice", &rooms, 300);
    let plan_b = plan("bob", &rooms, 300);
    let acks = Arc::new(AtomicUsize::new(0));
    let pace = Some(Duration::from_millis(2));
    // Alice on the gateway that dies, Bob on the one that stays.
    let a = spawn_sender(&cluster, 0, alice, &plan_a, 16, pace, &acks);
    let b = spawn_sender(&cluster, 1, bob, &plan_b, 16, pace, &acks);
    wait_acked(&acks, 600).await;
    cluster.script(&["kill", "gateway-1"]).await;
    let (a, b) = (a.await.expect("alice"), b.await.expect("bob"));
    assert!(a.reconnects >= 1, "alice never noticed her gateway died");
    assert_eq!(b.reconnects, 0);

    let stored = wait_stored(&db, &rooms, plan_a.len() + plan_b.len()).await;
    assert_exactly_once_in_order(&stored, &[&plan_a, &plan_b], &[&a, &b]);
    for reader in readers {
        let read = assert_read_everything(reader, &stored).await;
        assert!(
            read.reconnects >= 1,
            "a reader never noticed its gateway died"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_for_twenty_seconds_mid_stream_loses_nothing() {
    let _turn = TURN.lock().await;
    let cluster = Cluster::open();
    cluster.heal().await;
    let rooms = rooms(5);
    let (_, alice) = cluster.user("alice").await;
    let (_, reader) = cluster.user("reader").await;
    let reader = start_reader(&cluster, 1, &reader, &rooms).await;
    // About 30 s of sending, one message every 10 ms.
    let plan_a = plan("alice", &rooms, 600);
    let acks = Arc::new(AtomicUsize::new(0));
    let sender = spawn_sender(
        &cluster,
        0,
        alice,
        &plan_a,
        16,
        Some(Duration::from_millis(10)),
        &acks,
    );
    wait_acked(&acks, 300).await;
    cluster.script(&["stop", "postgres"]).await;
    let during = acks.load(Ordering::Relaxed);
    // The fault lasts 20 s: this sleep is the scenario, not a wait for readiness.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let after = acks.load(Ordering::Relaxed);
    cluster.script(&["start", "postgres"]).await;
    // Kafka is the log: sends went on being acked while the database was down.
    assert!(
        after > during + 100,
        "sends stalled without the database: {during} → {after}"
    );
    let sent = sender.await.expect("sender");
    assert!(sent.errors.is_empty(), "{:?}", sent.errors);

    let db = cluster.db().await;
    let stored = wait_stored(&db, &rooms, plan_a.len()).await;
    assert_exactly_once_in_order(&stored, &[&plan_a], &[&sent]);
    assert_read_everything(reader, &stored).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_stopped_sends_are_answered_unavailable_and_nothing_acked_is_lost() {
    let (_turn, cluster, db) = begin().await;
    let rooms = rooms(5);
    let (_, alice) = cluster.user("alice").await;
    let plan_a = plan("alice", &rooms, 100);
    let window = 8;
    let acks = Arc::new(AtomicUsize::new(0));
    let sender = spawn_sender(
        &cluster,
        0,
        alice,
        &plan_a,
        window,
        Some(Duration::from_millis(20)),
        &acks,
    );
    wait_acked(&acks, 100).await;
    cluster.script(&["stop", "kafka"]).await;
    let stopped_at = acks.load(Ordering::Relaxed);
    // The gateway says it is not ready.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ready = http
            .get(format!("{}/ready", cluster.gateways[0]))
            .send()
            .await
            .expect("ready");
        if ready.status() == 503 {
            let body: Value = ready.json().await.expect("json");
            assert_eq!(body["dependencies"]["kafka"]["state"], "down", "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway stayed ready without Kafka"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Kafka stays down for 20 s (the scenario, not a wait for readiness): longer than the
    // send timeout, so sends are refused, and the sender retries them.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let acked_while_down = acks.load(Ordering::Relaxed) - stopped_at;
    cluster.script(&["start", "kafka"]).await;
    let sent = sender.await.expect("sender");
    assert!(
        sent.errors.get("unavailable").copied().unwrap_or(0) > 0,
        "no send was refused while Kafka was down"
    );
    // Only what Kafka had taken before it stopped may be acked late.
    assert!(
        acked_while_down <= window,
        "{acked_while_down} sends acked while Kafka was down"
    );

    // Once Kafka was back, everything was sent again and acked; each acked message is stored
    // exactly once. (Not necessarily in send order: a refused message takes its place when it
    // is sent again, possibly after later ones that were not refused.)
    let stored = wait_stored(&db, &rooms, plan_a.len()).await;
    assert_exactly_once(&stored, &[&plan_a], &[&sent]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_of_a_gateway_and_a_persist_worker_mid_stream_says_reconnect_and_loses_nothing() {
    let (_turn, cluster, db) = begin().await;
    let rooms = rooms(4);
    let (_, alice) = cluster.user("alice").await;
    let (_, bob) = cluster.user("bob").await;
    let (_, reader) = cluster.user("reader").await;
    // The reader and Alice on gateway-1, which is about to be stopped; Bob on the other.
    let reader = start_reader(&cluster, 0, &reader, &rooms).await;
    let plan_a = plan("alice", &rooms, 300);
    let plan_b = plan("bob", &rooms, 300);
    let acks = Arc::new(AtomicUsize::new(0));
    let pace = Some(Duration::from_millis(2));
    let a = spawn_sender(&cluster, 0, alice, &plan_a, 16, pace, &acks);
    let b = spawn_sender(&cluster, 1, bob, &plan_b, 16, pace, &acks);
    wait_acked(&acks, 600).await;
    // SIGTERM, as Kubernetes stops a pod: the gateway closes its sockets with 1012 and flushes
    // its producer; the worker stores the batch in hand, commits and leaves the group.
    cluster.script(&["stop", "gateway-1"]).await;
    cluster.script(&["stop", "persist-1"]).await;
    let (a, b) = (a.await.expect("alice"), b.await.expect("bob"));
    assert!(
        a.closes.contains(&1012),
        "alice was not told to reconnect: {:?}",
        a.closes
    );
    assert!(a.errors.is_empty() && b.errors.is_empty(), "{a:?} {b:?}");
    assert_eq!(b.reconnects, 0);

    let stored = wait_stored(&db, &rooms, plan_a.len() + plan_b.len()).await;
    assert_exactly_once_in_order(&stored, &[&plan_a, &plan_b], &[&a, &b]);
    let read = assert_read_everything(reader, &stored).await;
    assert!(
        read.closes.contains(&1012),
        "the reader was not told to reconnect: {:?}",
        read.closes
    );
}

/// One socket of a test that acts step by step (not a load): sends frames, reads answers.
struct Person {
    socket: Socket,
}

impl Person {
    async fn on(gateway: &str, token: &str) -> Self {
        let socket = connect(gateway, token).await.expect("a connection");
        Self { socket }
    }

    async fn recv(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .expect("a frame within 30 s")
                .expect("the connection is open")
                .expect("a frame");
            if let WsMessage::Text(t) = frame {
                return serde_json::from_str(t.as_str()).expect("JSON");
            }
        }
    }

    /// Sends a frame with a `client_id` and returns its ack (panics on an error frame).
    async fn act(&mut self, frame: Value) -> Value {
        self.socket.send(text(&frame)).await.expect("send");
        loop {
            let answer = self.recv().await;
            let answers = answer["type"] == "ack" || answer["type"] == "error";
            if answers && answer["client_id"] == frame["client_id"] {
                assert_eq!(answer["type"], "ack", "{frame} was answered {answer}");
                return answer;
            }
        }
    }

    /// Joins `room` (resuming after `since`) and returns the frames up to `joined`.
    async fn join(&mut self, room: &str, since: Option<&str>) -> Vec<Value> {
        let mut frame = json!({"type": "join", "room": room});
        if let Some(since) = since {
            frame["since"] = since.into();
        }
        self.socket.send(text(&frame)).await.expect("join");
        let mut frames = Vec::new();
        loop {
            let f = self.recv().await;
            let done = f["type"] == "joined" && f["room"] == room;
            if f["room"] == room {
                frames.push(f);
            }
            if done {
                return frames;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_reactions_and_deletes_resume_across_gateways_before_and_after_persist() {
    let (_turn, cluster, db) = begin().await;
    let room = rooms(1).remove(0);
    let (_, alice) = cluster.user("alice").await;
    let (_, bob) = cluster.user("bob").await;
    let (_, carol) = cluster.user("carol").await;
    // Nothing is stored while this runs: every event lives in the log alone.
    cluster.script(&["stop", "persist-1"]).await;
    cluster.script(&["stop", "persist-2"]).await;

    let mut a = Person::on(&cluster.gateways[0], &alice).await;
    let mut b = Person::on(&cluster.gateways[1], &bob).await;
    let mut c = Person::on(&cluster.gateways[1], &carol).await;
    for p in [&mut a, &mut b, &mut c] {
        p.join(&room, None).await;
    }
    let send =
        |body: &str, cid: &str| json!({"type":"send","room":room,"body":body,"client_id":cid});
    let m1 = a.act(send("one", "a1")).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let m2 = a.act(send("two", "a2")).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let last_seen = loop {
        let f = c.recv().await;
        if f["type"] == "message" && f["id"] == m2.as_str() {
            break f["cursor"].as_str().expect("cursor").to_owned();
        }
    };
    drop(c);

    // Bob is on the other gateway than the author: the messages he acts on are known there
    // only from the log (persist has stored nothing).
    let acks = [
        a.act(json!({"type":"edit","id":m1,"body":"one, edited","client_id":"a3"}))
            .await,
        b.act(json!({"type":"react","id":m1,"emoji":"👍","client_id":"b1"}))
            .await,
        b.act(json!({"type":"react","id":m1,"emoji":"🎉","client_id":"b2"}))
            .await,
        b.act(json!({"type":"unreact","id":m1,"emoji":"🎉","client_id":"b3"}))
            .await,
        a.act(json!({"type":"delete","id":m2,"client_id":"a4"}))
            .await,
    ];
    let acked: Vec<&str> = acks
        .iter()
        .map(|a| a["cursor"].as_str().expect("cursor"))
        .collect();
    // A re-sent edit on the other gateway is the first one, not a second edit.
    let again = b
        .act(json!({"type":"react","id":m1,"emoji":"👍","client_id":"b1"}))
        .await;
    assert_eq!(again["cursor"].as_str(), Some(acked[1]));

    // Carol resumes on each gateway: exactly the events she missed, in the log's order.
    for gateway in &cluster.gateways {
        let mut c = Person::on(gateway, &carol).await;
        let frames = c.join(&room, Some(&last_seen)).await;
        let events: Vec<&Value> = frames
            .iter()
            .filter(|f| !matches!(f["type"].as_str(), Some("members" | "joined" | "presence")))
            .collect();
        let kinds: Vec<&str> = events
            .iter()
            .map(|f| f["type"].as_str().expect("type"))
            .collect();
        assert_eq!(
            kinds,
            ["edited", "reaction", "reaction", "reaction", "deleted"],
            "{gateway}: {frames:?}"
        );
        let cursors: Vec<&str> = events
            .iter()
            .map(|f| f["cursor"].as_str().expect("cursor"))
            .collect();
        assert_eq!(cursors, acked, "{gateway}");
    }

    // Persist catches up: every event applied once, the rows in their final state.
    cluster.script(&["start", "persist-1"]).await;
    cluster.script(&["start", "persist-2"]).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let events: i64 = sqlx::query("SELECT COUNT(*) AS n FROM room_events WHERE room = $1")
            .bind(&room)
            .fetch_one(&db)
            .await
            .expect("count")
            .get("n");
        if events >= 5 {
            assert_eq!(events, 5, "each event stored once");
            break;
        }
        assert!(Instant::now() < deadline, "persist did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = sqlx::query(
        "SELECT body, deleted_at IS NOT NULL AS gone FROM messages WHERE room = $1 ORDER BY seq",
    )
    .bind(&room)
    .fetch_all(&db)
    .await
    .expect("messages");
    let rows: Vec<(String, bool)> = rows
        .iter()
        .map(|r| (r.get("body"), r.get("gone")))
        .collect();
    assert_eq!(
        rows,
        [("one, edited".to_owned(), false), (String::new(), true)]
    );
    let reactions: Vec<(String, bool)> = sqlx::query(
        "SELECT emoji, present FROM reactions WHERE message_id = $1::uuid ORDER BY emoji",
    )
    .bind(&m1)
    .fetch_all(&db)
    .await
    .expect("reactions")
    .iter()
    .map(|r| (r.get("emoji"), r.get("present")))
    .collect();
    assert_eq!(
        reactions,
        [("🎉".to_owned(), false), ("👍".to_owned(), true)]
    );
    // And a resume now served by the store says the same.
    let mut c = Person::on(&cluster.gateways[0], &carol).await;
    let frames = c.join(&room, Some(&last_seen)).await;
    let cursors: Vec<&str> = frames
        .iter()
        .filter(|f| !matches!(f["type"].as_str(), Some("members" | "joined" | "presence")))
        .map(|f| f["cursor"].as_str().expect("cursor"))
        .collect();
    assert_eq!(cursors, acked);
}

/// A JSON request to a gateway's API as `token`'s user; the status and the body.
async fn api(
    gateway: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    token: &str,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{gateway}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.expect("the gateway answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The owner (by token) makes the private room `room` through `gateway` and adds `member`.
async fn private_room(gateway: &str, owner: &str, room: &str, member: &str) {
    let (status, made) = api(
        gateway,
        reqwest::Method::POST,
        "/api/v1/rooms",
        Some(json!({"name": room, "kind": "private"})),
        owner,
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let (status, body) = api(
        gateway,
        reqwest::Method::POST,
        &format!("/api/v1/rooms/{room}/members"),
        Some(json!({"username": member})),
        owner,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

impl Person {
    /// The next frame of `kind` about `room` (a `room` frame names it in its entry).
    async fn heard(&mut self, kind: &str, room: &str) -> Value {
        loop {
            let f = self.recv().await;
            let about = f["room"] == room || f["room"]["room"] == room;
            if f["type"] == kind && about {
                return f;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_removals_and_read_positions_reach_every_gateway_at_once() {
    let (_turn, cluster, _db) = begin().await;
    let (gw_a, gw_b) = (&cluster.gateways[0], &cluster.gateways[1]);
    let room = rooms(1).remove(0);
    let (_, alice) = cluster.user("alice").await;
    let (bob_name, bob) = cluster.user("bob").await;
    let (_, carol) = cluster.user("carol").await;
    let mut a = Person::on(gw_a, &alice).await;
    // Bob has a device on each gateway.
    let mut phone = Person::on(gw_b, &bob).await;
    let mut laptop = Person::on(gw_a, &bob).await;
    let mut c = Person::on(gw_b, &carol).await;

    // The owner adds bob on gateway A, straight after creating the room there.
    private_room(gw_a, &alice, &room, &bob_name).await;
    for device in [&mut phone, &mut laptop] {
        let news = device.heard("room", &room).await;
        assert_eq!(
            (&news["op"], &news["room"]["kind"]),
            (&json!("added"), &json!("private"))
        );
    }
    // Carol, on gateway B, is refused there: B learned the room from the log.
    c.socket
        .send(text(&json!({"type":"join","room":room})))
        .await
        .expect("send");
    let refused = loop {
        let f = c.recv().await;
        if f["type"] == "error" {
            break f;
        }
    };
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let (status, _) = api(
        gw_b,
        reqwest::Method::GET,
        &format!("/api/v1/rooms/{room}/messages"),
        None,
        &carol,
    )
    .await;
    assert_eq!(status, 403);

    // Bob hears the room on gateway B; his read position there reaches his laptop on A.
    phone.join(&room, None).await;
    let said = a
        .act(json!({"type":"send","room":room,"body":"hello bob","client_id":"a1"}))
        .await;
    let heard = phone.heard("message", &room).await;
    assert_eq!(heard["id"], said["id"]);
    let at = heard["cursor"].as_str().expect("cursor").to_owned();
    phone
        .act(json!({"type":"read","room":room,"cursor":at,"client_id":"r1"}))
        .await;
    let read = laptop.heard("read", &room).await;
    assert_eq!(read["cursor"], at.as_str());
    // The list on either gateway agrees once persist has it (it may lag the log a moment).
    for gw in [gw_a, gw_b] {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (_, list) = api(gw, reqwest::Method::GET, "/api/v1/rooms", None, &bob).await;
            let entry = list["data"]["rooms"]
                .as_array()
                .expect("rooms")
                .iter()
                .find(|r| r["room"] == room.as_str())
                .cloned()
                .expect("bob's list has the room");
            if entry["unread"] == 0 && entry["read_cursor"] == at.as_str() {
                break;
            }
            assert!(Instant::now() < deadline, "the list never agreed: {entry}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Alice removes bob on A: his connection on B stops hearing the room at once.
    let (status, _) = api(
        gw_a,
        reqwest::Method::DELETE,
        &format!("/api/v1/rooms/{room}/members/{bob_name}"),
        None,
        &alice,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(phone.heard("room", &room).await["op"], "removed");
    a.act(json!({"type":"send","room":room,"body":"not for bob","client_id":"a2"}))
        .await;
    // A marker in a room bob is still in, sent after: what came before it has arrived.
    let marker = a
        .act(json!({"type":"send","room":"general","body":"marker","client_id":"a3"}))
        .await;
    loop {
        let f = phone.recv().await;
        assert_ne!(f["body"], "not for bob", "a removed member heard the room");
        if f["id"] == marker["id"] && f["type"] == "message" {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_uploaded_through_one_gateway_is_fetched_through_the_other_and_goes_with_its_message(
) {
    let (_turn, cluster, _db) = begin().await;
    let (gw_a, gw_b) = (&cluster.gateways[0], &cluster.gateways[1]);
    let room = rooms(1).remove(0);
    let (_, alice) = cluster.user("alice").await;
    let (bob_name, bob) = cluster.user("bob").await;
    let (_, eve) = cluster.user("eve").await;
    // A private room of Alice's and Bob's: Eve may not read it, so may not fetch its files.
    private_room(gw_a, &alice, &room, &bob_name).await;
    let bytes: Vec<u8> = b"%PDF-1.7\n"
        .iter()
        .copied()
        .chain((0..20_000u32).map(|i| (i % 251) as u8))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("{gw_a}/api/v1/uploads?name=minutes.pdf"))
        .bearer_auth(&alice)
        .body(bytes.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 201);
    let file: Value = r.json().await.expect("json");
    let id = file["data"]["id"].as_str().expect("id").to_owned();
    let url = format!("/api/v1/files/{id}");
    let fetch = |gateway: &str, token: &str| {
        let req = reqwest::Client::new()
            .get(format!("{gateway}{url}"))
            .bearer_auth(token);
        async move { req.send().await.expect("the gateway answers") }
    };

    let mut a = Person::on(gw_a, &alice).await;
    a.join(&room, None).await;
    let mut b = Person::on(gw_b, &bob).await;
    b.join(&room, None).await;
    let ack = a
        .act(json!({"type":"send","room":room,"body":"the minutes","attachments":[id],"client_id":"f1"}))
        .await;
    let m = b.heard("message", &room).await;
    assert_eq!(m["attachments"][0]["id"], id.as_str());
    // At once on the other gateway, whether or not persist has stored the message yet.
    let got = fetch(gw_b, &bob).await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("bytes").as_ref(), &bytes[..]);
    assert_eq!(fetch(gw_b, &eve).await.status(), 404);
    assert_eq!(fetch(gw_a, &eve).await.status(), 404);

    // Alice deletes it through gateway B: the file is gone from both, then from the bucket.
    let (status, body) = api(
        gw_b,
        reqwest::Method::DELETE,
        &format!("/api/v1/messages/{}", ack["id"].as_str().expect("id")),
        None,
        &alice,
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let files = banter_files::Files::open(&cluster.files, &|k| cluster.files_env.get(k).cloned())
        .expect("the cluster's storage");
    let key = banter_files::Key::upload(uuid::Uuid::parse_str(&id).expect("uuid"));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let a_gone = fetch(gw_a, &bob).await.status() == 404;
        let b_gone = fetch(gw_b, &bob).await.status() == 404;
        let bytes_gone = files.size(&key).await.expect("storage").is_none();
        if a_gone && b_gone && bytes_gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the deleted message's file stayed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Searches through `gateway` as `token` until `done` says what it found is right (persist
/// stores what the log has a moment later), and returns it.
async fn search_until(
    gateway: &str,
    token: &str,
    q: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let r = reqwest::Client::new()
            .get(format!("{gateway}/api/v1/search"))
            .query(&[("q", q)])
            .bearer_auth(token)
            .send()
            .await
            .expect("the gateway answers");
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.expect("json");
        let found = body["data"]["results"].as_array().expect("results").clone();
        if done(&found) {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: found {found:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_through_one_gateway_is_found_through_the_other_once_persisted() {
    let (_turn, cluster, _db) = begin().await;
    let (gw_a, gw_b) = (&cluster.gateways[0], &cluster.gateways[1]);
    let room = rooms(1).remove(0);
    let (_, alice) = cluster.user("alice").await;
    let (bob_name, bob) = cluster.user("bob").await;
    let (_, eve) = cluster.user("eve").await;
    private_room(gw_a, &alice, &room, &bob_name).await;
    // A word of its own, so that other tests' messages are not found.
    let word = format!("zeppelin{}", uuid::Uuid::new_v4().simple());
    let mut a = Person::on(gw_a, &alice).await;
    a.join(&room, None).await;
    let ack = a
        .act(json!({"type":"send","room":room,"body":format!("the {word} lands at noon"),"client_id":"s1"}))
        .await;
    let id = ack["id"].as_str().expect("id").to_owned();
    let found = search_until(gw_b, &bob, &word, "the message, through gateway B", |f| {
        f.len() == 1
    })
    .await;
    assert_eq!(found[0]["id"], id.as_str());
    assert_eq!(found[0]["room"], room.as_str());
    assert_eq!(
        found[0]["highlight"],
        format!("the <mark>{word}</mark> lands at noon")
    );
    // Eve, in no room of theirs, finds nothing on either gateway.
    for gw in [gw_a, gw_b] {
        search_until(gw, &eve, &word, "nothing for eve", <[Value]>::is_empty).await;
    }

    // Edited through gateway B: the new words are found, the old ones no longer.
    let (status, body) = api(
        gw_b,
        reqwest::Method::PATCH,
        &format!("/api/v1/messages/{id}"),
        Some(json!({"body": format!("the {word} was delayed")})),
        &alice,
    )
    .await;
    assert!((200..300).contains(&status), "{status} {body}");
    search_until(gw_a, &bob, &format!("{word} delayed"), "the edit", |f| {
        f.len() == 1
    })
    .await;
    search_until(
        gw_a,
        &bob,
        &format!("{word} noon"),
        "the old words gone",
        <[Value]>::is_empty,
    )
    .await;
    // Deleted: gone from both.
    let (status, _) = api(
        gw_a,
        reqwest::Method::DELETE,
        &format!("/api/v1/messages/{id}"),
        None,
        &alice,
    )
    .await;
    assert!((200..300).contains(&status), "{status}");
    for gw in [gw_a, gw_b] {
        search_until(gw, &bob, &word, "the delete", <[Value]>::is_empty).await;
    }
}

/// The next message a banter-client session hands out, skipping other events.
async fn next_message(session: &mut banter_client::Session) -> Box<banter_client::Message> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(60), session.next())
            .await
            .expect("an event within a minute")
            .expect("the session is open");
        if let Event::Message(m) = event {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_resumes_on_the_other_gateway_when_its_gateway_dies() {
    let (_turn, cluster, _db) = begin().await;
    let room = rooms(1).remove(0);
    let (_, ann) = cluster.user("ann").await;
    let (_, bob) = cluster.user("bob").await;
    // Ann on gateway-1 (then gateway-2), Bob on gateway-2; auth on its own, as deployed.
    let mut ann = Client::with_token(cluster.gateways.clone(), ann)
        .auth_url(&cluster.auth)
        .connect(&[room.as_str()])
        .await
        .expect("ann connects");
    let mut bob = Client::with_token(vec![cluster.gateways[1].clone()], bob)
        .auth_url(&cluster.auth)
        .connect(&[room.as_str()])
        .await
        .expect("bob connects");
    bob.send(&room, "before").await.expect("acked");
    assert_eq!(next_message(&mut ann).await.body, "before");

    cluster.script(&["kill", "gateway-1"]).await;
    loop {
        match tokio::time::timeout(Duration::from_secs(60), ann.next()).await {
            Ok(Some(Event::Disconnected)) => break,
            Ok(Some(_)) => continue,
            other => panic!("ann should notice her gateway died: {other:?}"),
        }
    }
    for n in 1..=3 {
        bob.send(&room, &format!("missed {n}"))
            .await
            .expect("acked");
    }
    let sending = std::future::IntoFuture::into_future(ann.send(&room, "ann is back"));
    let (acked, got) = tokio::join!(sending, async {
        let mut got = Vec::new();
        while got.len() < 4 {
            got.push(next_message(&mut ann).await);
        }
        got
    });
    let acked = acked.expect("acked through gateway-2");
    let bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["missed 1", "missed 2", "missed 3", "ann is back"]);
    assert_eq!(got[3].cursor, acked.cursor);
    // Bob hears it once too, and the next message is the marker: nothing twice.
    let mut heard = Vec::new();
    while heard.len() < 5 {
        heard.push(next_message(&mut bob).await.body);
    }
    assert_eq!(
        heard,
        ["before", "missed 1", "missed 2", "missed 3", "ann is back"]
    );
    bob.send(&room, "marker").await.expect("acked");
    assert_eq!(next_message(&mut ann).await.body, "marker");
}

/// What a receiver of outgoing webhooks got: each delivery's `X-Banter-Delivery` and text.
type Deliveries = Arc<std::sync::Mutex<Vec<(String, String)>>>;

async fn receive_hook(
    axum::extract::State(got): axum::extract::State<Deliveries>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::Json<Value> {
    let delivery = headers["x-banter-delivery"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let v: Value = serde_json::from_slice(&body).expect("json");
    let text = v["text"].as_str().expect("text").to_owned();
    got.lock().expect("lock").push((delivery, text.clone()));
    axum::Json(json!({ "text": format!("heard: {text}") }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outgoing_webhook_is_delivered_once_by_the_gateways_group_and_answered() {
    let (_turn, cluster, _db) = begin().await;
    let room = rooms(1).remove(0);
    let (_, ann) = cluster.user("ann").await;
    let (_, bob) = cluster.user("bob").await;
    let got: Deliveries = Arc::default();
    let receiver = axum::Router::new()
        .route("/hook", axum::routing::post(receive_hook))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let (gw_a, gw_b) = (&cluster.gateways[0], &cluster.gateways[1]);
    let (status, made) = api(
        gw_a,
        reqwest::Method::POST,
        "/api/v1/rooms",
        Some(json!({ "name": room })),
        &ann,
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let (status, made) = api(
        gw_a,
        reqwest::Method::POST,
        &format!("/api/v1/rooms/{room}/outgoing-webhooks"),
        Some(json!({ "url": url, "name": format!("hook{}", &room[4..12]) })),
        &ann,
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let hook_bot = made["data"]["name"].as_str().expect("name").to_owned();
    // Bob, on the other gateway, says five things over HTTP.
    for n in 1..=5 {
        let (status, sent) = api(
            gw_b,
            reqwest::Method::POST,
            &format!("/api/v1/rooms/{room}/messages"),
            Some(json!({ "body": format!("line {n}") })),
            &bob,
        )
        .await;
        assert_eq!(status, 201, "{sent}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.lock().expect("lock").len() < 5 {
        assert!(Instant::now() < deadline, "five deliveries within a minute");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The replies come back through the chat service, as the webhook's bot, once each.
    let deadline = Instant::now() + Duration::from_secs(60);
    let replies = loop {
        let (_, page) = api(
            gw_b,
            reqwest::Method::GET,
            &format!("/api/v1/rooms/{room}/messages?limit=100"),
            None,
            &bob,
        )
        .await;
        let replies: Vec<String> = page["data"]["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter(|m| m["author"] == hook_bot.as_str())
            .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
            .collect();
        if replies.len() >= 5 {
            break replies;
        }
        assert!(
            Instant::now() < deadline,
            "five replies within a minute: {replies:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut replies = replies;
    replies.sort();
    assert_eq!(
        replies,
        (1..=5)
            .map(|n| format!("heard: line {n}"))
            .collect::<Vec<_>>()
    );
    // A marker after the replies: it is the next delivery, so no reply was delivered and no
    // message twice.
    let (status, _) = api(
        gw_b,
        reqwest::Method::POST,
        &format!("/api/v1/rooms/{room}/messages"),
        Some(json!({ "body": "marker" })),
        &bob,
    )
    .await;
    assert_eq!(status, 201);
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.lock().expect("lock").len() < 6 {
        assert!(
            Instant::now() < deadline,
            "the marker delivered within a minute"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = got.lock().expect("lock").clone();
    let ids: std::collections::HashSet<&String> = got.iter().map(|(id, _)| id).collect();
    assert_eq!(
        ids.len(),
        6,
        "each message delivered by one gateway, once: {got:?}"
    );
    assert_eq!(got.len(), 6, "the bot's replies are not delivered: {got:?}");
    assert_eq!(got[5].1, "marker");
}

/// What a receiver of several outgoing webhooks got: each delivery's webhook id and text.
type ByHook = Arc<tokio::sync::watch::Sender<Vec<(String, String)>>>;

async fn receive_by_hook(
    axum::extract::State(got): axum::extract::State<ByHook>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let hook = headers["x-banter-webhook-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let v: Value = serde_json::from_slice(&body).expect("json");
    let text = v["text"].as_str().expect("text").to_owned();
    got.send_modify(|got| got.push((hook, text)));
    axum::http::StatusCode::NO_CONTENT
}

async fn say_over_http(gateway: &str, room: &str, token: &str, text: &str) {
    let path = format!("/api/v1/rooms/{room}/messages");
    let (status, sent) = api(
        gateway,
        reqwest::Method::POST,
        &path,
        Some(json!({ "body": text })),
        token,
    )
    .await;
    assert_eq!(status, 201, "{sent}");
}

async fn make_outgoing(gateway: &str, room: &str, token: &str, url: &str, name: &str) -> String {
    let path = format!("/api/v1/rooms/{room}/outgoing-webhooks");
    let body = json!({ "url": url, "name": name });
    let (status, made) = api(gateway, reqwest::Method::POST, &path, Some(body), token).await;
    assert_eq!(status, 201, "{made}");
    made["data"]["id"].as_str().expect("id").to_owned()
}

/// Waits for every (webhook id, text) of `want` to have been delivered.
async fn until_delivered(
    got: &mut tokio::sync::watch::Receiver<Vec<(String, String)>>,
    want: &[(String, &str)],
) {
    let all = |got: &Vec<(String, String)>| {
        want.iter()
            .all(|(h, t)| got.iter().any(|(gh, gt)| gh == h && gt == t))
    };
    tokio::time::timeout(Duration::from_secs(60), got.wait_for(all))
        .await
        .unwrap_or_else(|_| panic!("{want:?} delivered within a minute"))
        .expect("the receiver is up");
}

/// The gateways know a room's webhooks for a while; one made on the other gateway is heard of
/// through the log (its bot's joining), so the very next message reaches it whichever
/// gateway delivers: webhooks are made on each gateway in turn, each followed at once by a
/// message. A message said before a webhook was made never goes to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_made_on_either_gateway_hears_the_next_message_and_no_earlier_one() {
    let (_turn, cluster, _db) = begin().await;
    let room = rooms(1).remove(0);
    let tag = &room[4..12];
    let (_, ann) = cluster.user("ann").await;
    let (_, bob) = cluster.user("bob").await;
    let (tx, mut got) = tokio::sync::watch::channel(Vec::new());
    let receiver = axum::Router::new()
        .route("/hook", axum::routing::post(receive_by_hook))
        .with_state(Arc::new(tx));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let (gw_a, gw_b) = (&cluster.gateways[0], &cluster.gateways[1]);
    let (status, made) = api(
        gw_a,
        reqwest::Method::POST,
        "/api/v1/rooms",
        Some(json!({ "name": room })),
        &ann,
    )
    .await;
    assert_eq!(status, 201, "{made}");
    say_over_http(gw_b, &room, &bob, "said before any webhook").await;

    // The first webhook, and a delivery: the delivering gateway now knows the room's webhooks.
    let one = make_outgoing(gw_a, &room, &ann, &url, &format!("h{tag}a")).await;
    say_over_http(gw_b, &room, &bob, "line 1").await;
    until_delivered(&mut got, &[(one.clone(), "line 1")]).await;
    // One more on each gateway, each heard by the next message.
    let two = make_outgoing(gw_a, &room, &ann, &url, &format!("h{tag}b")).await;
    say_over_http(gw_b, &room, &bob, "line 2").await;
    until_delivered(&mut got, &[(two.clone(), "line 2")]).await;
    let three = make_outgoing(gw_b, &room, &ann, &url, &format!("h{tag}c")).await;
    say_over_http(gw_b, &room, &bob, "line 3").await;
    let want = vec![
        (one.clone(), "line 1"),
        (one.clone(), "line 2"),
        (two.clone(), "line 2"),
        (one.clone(), "line 3"),
        (two.clone(), "line 3"),
        (three.clone(), "line 3"),
    ];
    until_delivered(&mut got, &want).await;
    let mut got = got.borrow().clone();
    got.sort();
    let mut want: Vec<(String, String)> =
        want.into_iter().map(|(h, t)| (h, t.to_owned())).collect();
    want.sort();
    assert_eq!(
        got, want,
        "each message to the webhooks made before it, once"
    );
}
