//! The clients of a chaos run, each as careful as the contract asks and no more, built on
//! banter-client: senders that keep writing at a steady pace — messages, and edits,
//! reactions and deletes of their own messages — and re-send whatever was not answered or was
//! refused (`unavailable`, `rate_limited`) with the same client id (its `Outbox`); readers
//! that resume every room with `since` wherever they reconnect (its `Resume`); a prober that
//! logs in now and then. They never judge; they record, and [`super::tally`] judges.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use banter_client::{change_frame, Answer, Outbox, Resume};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::{self, Message};

use super::tally::{client_id, ReaderLog, SenderLog, Written};
use crate::client::{self, Ws};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Between two failed connection attempts.
const RECONNECT_PAUSE: Duration = Duration::from_millis(250);
/// One event in this many a sender writes is a change of one of its messages.
const CHANGE_EVERY: u64 = 4;

/// What every client of a run shares.
#[derive(Debug)]
pub struct Shared {
    pub run: String,
    pub gateways: Vec<String>,
    pub auth: String,
    pub rooms: Vec<String>,
    /// The phase of the run now (an index into its phases).
    pub phase: AtomicUsize,
    /// Senders write no more messages; they finish once all they wrote is acked.
    pub stop_writing: tokio_util::sync::CancellationToken,
    /// Readers and the prober stop.
    pub stop_reading: tokio_util::sync::CancellationToken,
    /// Events per second, per sender.
    pub rate: f64,
    /// Events a sender has sent and not yet had answered, at most.
    pub window: usize,
    /// How long senders keep trying to get everything acked once writing stopped.
    pub patience: Duration,
    pub sources: Vec<IpAddr>,
    pub acked: AtomicU64,
    pub received: AtomicU64,
    /// Readers that have joined every room once.
    pub readers_joined: AtomicUsize,
}

impl Shared {
    fn phase(&self) -> usize {
        self.phase.load(Ordering::Relaxed)
    }

    fn url(&self, gateway: usize, token: &str) -> String {
        let ws = self.gateways[gateway % self.gateways.len()].replacen("http", "ws", 1);
        format!("{ws}/ws?token={token}")
    }

    async fn connect(&self, gateway: usize, token: &str, who: usize) -> Result<Ws, String> {
        let from = self.sources[who % self.sources.len()];
        match timeout(
            CONNECT_TIMEOUT,
            client::connect(&self.url(gateway, token), from),
        )
        .await
        {
            Ok(Ok(ws)) => Ok(ws),
            Ok(Err(e)) => Err(connect_error(&e)),
            Err(_) => Err("connect: timed out".into()),
        }
    }
}

/// A refused or failed connection, as an error code for the table.
fn connect_error(e: &anyhow::Error) -> String {
    for cause in e.chain() {
        if let Some(tungstenite::Error::Http(response)) = cause.downcast_ref::<tungstenite::Error>()
        {
            return format!("connect: HTTP {}", response.status().as_u16());
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return "connect: refused".into();
            }
        }
    }
    "connect: failed".into()
}

/// The changes a sender makes of one of its messages, in turn: an edit, a reaction added and
/// removed, and then another edit or, every third time, a delete of its oldest message still
/// there (old, so a reader's resume rarely has to skip its events).
#[derive(Debug, Default)]
struct Changes {
    /// Its acked messages not deleted, oldest first: (id, room).
    messages: Vec<(String, usize)>,
    /// The message this round of changes is about, and how far the round is.
    target: Option<(String, usize)>,
    step: u64,
    rounds: u64,
}

impl Changes {
    /// The next change's frame (kind, message id, extra fields) and its room, or `None`
    /// while the sender has no acked message to change.
    fn next(&mut self) -> Option<(&'static str, String, Value, usize)> {
        if self.target.is_none() {
            self.target = Some(self.messages.last()?.clone());
        }
        let (id, room) = self.target.clone()?;
        let step = self.step;
        self.step = (self.step + 1) % 4;
        if self.step == 0 {
            self.target = None;
            self.rounds += 1;
        }
        Some(match step {
            0 => ("edit", id, json!({"body": "edited"}), room),
            1 => ("react", id, json!({"emoji": "👍"}), room),
            2 => ("unreact", id, json!({"emoji": "👍"}), room),
            _ if self.rounds.is_multiple_of(3) => {
                let (oldest, room) = self.messages.remove(0);
                if oldest == id {
                    // The round's own message goes: nothing more is done to it.
                    self.target = None;
                }
                ("delete", oldest, Value::Null, room)
            }
            _ => ("edit", id, json!({"body": "edited again"}), room),
        })
    }
}

/// One sender's state across its connections.
struct Sender {
    shared: Arc<Shared>,
    who: usize,
    log: SenderLog,
    /// What is written and not yet acked: banter-client's send window and re-sends.
    outbox: Outbox,
    changes: Changes,
    /// Which of its events are messages (the others are changes).
    is_message: Vec<bool>,
    next_due: Instant,
    every: Duration,
    /// Once writing stopped: when to stop waiting for the last acks.
    give_up: Option<Instant>,
}

impl Sender {
    /// Writes the events due by now, at the run's pace, unless writing has stopped.
    fn write_due(&mut self) {
        if self.shared.stop_writing.is_cancelled() {
            return;
        }
        let now = Instant::now();
        while self.next_due <= now {
            let seq = self.log.messages.len() as u64;
            let cid = client_id(&self.shared.run, self.who, seq);
            let change = (seq % CHANGE_EVERY == CHANGE_EVERY - 1)
                .then(|| self.changes.next())
                .flatten();
            let is_message = change.is_none();
            let (frame, room) = match change {
                Some((kind, id, extra, room)) => (change_frame(kind, &id, &cid, extra), room),
                None => {
                    let room = (seq as usize + self.who) % self.shared.rooms.len();
                    let body = format!("s{} {seq}", self.who);
                    (
                        banter_client::send_frame(&self.shared.rooms[room], &body, &cid),
                        room,
                    )
                }
            };
            self.is_message.push(is_message);
            self.log.messages.push(Written {
                phase: self.shared.phase(),
                room,
                acked: None,
            });
            self.outbox.push(seq, cid, frame);
            self.next_due += self.every;
        }
    }

    /// Writing has stopped and everything written is acked, or the run's patience is spent.
    fn done(&mut self) -> bool {
        if !self.shared.stop_writing.is_cancelled() {
            return false;
        }
        let patience = self.shared.patience;
        let give_up = *self
            .give_up
            .get_or_insert_with(|| Instant::now() + patience);
        self.outbox.is_empty() || Instant::now() >= give_up
    }

    fn handle(&mut self, frame: &Value) {
        let phase = self.shared.phase();
        if frame["type"] == "error" {
            let code = frame["code"].as_str().unwrap_or("?").to_owned();
            self.log.errors.push((phase, code));
        }
        let Some(Answer::Acked { seq, ack }) = self.outbox.answer(frame, Instant::now()) else {
            // Refused for now (sent again by the outbox) or for good (left unacked, which
            // the tally reports); or not an answer.
            return;
        };
        let cursor = ack["cursor"].as_str().unwrap_or_default().to_owned();
        let m = &mut self.log.messages[seq as usize];
        if m.acked.is_none() {
            m.acked = Some(cursor);
            self.log.ack_order.push(seq);
            self.shared.acked.fetch_add(1, Ordering::Relaxed);
            if self.is_message[seq as usize] {
                let id = ack["id"].as_str().unwrap_or_default().to_owned();
                self.changes.messages.push((id, m.room));
            }
        }
    }

    /// Sends over one connection until it breaks (true) or everything is acked (false).
    async fn converse(&mut self, ws: Ws) -> bool {
        let (mut sink, mut stream) = ws.split();
        loop {
            self.write_due();
            while let Some((seq, frame)) = self.outbox.next_to_send(Instant::now()) {
                if sink.send(Message::text(frame)).await.is_err() {
                    self.outbox.unsent(seq);
                    return true;
                }
            }
            if self.done() {
                let _ = sink.close().await;
                return false;
            }
            let mut wake = Instant::now() + Duration::from_millis(100);
            if !self.shared.stop_writing.is_cancelled() {
                wake = wake.min(self.next_due);
            }
            if let Some(blocked) = self.outbox.blocked_until(Instant::now()) {
                wake = wake.min(blocked);
            }
            let frame = tokio::select! {
                frame = stream.next() => frame,
                () = sleep_until(wake) => continue,
            };
            match frame {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<Value>(&text) {
                    Ok(frame) => self.handle(&frame),
                    Err(_) => self
                        .log
                        .errors
                        .push((self.shared.phase(), "not JSON".into())),
                },
                Some(Ok(Message::Close(_)) | Err(_)) | None => return true,
                Some(Ok(_)) => {}
            }
        }
    }
}

/// Writes `rate` events a second round the rooms until writing stops, then keeps at it
/// until all it wrote is acked (or the run's patience is spent).
pub async fn sender(shared: Arc<Shared>, who: usize, token: String) -> SenderLog {
    let every = Duration::from_secs_f64(1.0 / shared.rate);
    let mut s = Sender {
        who,
        log: SenderLog::default(),
        outbox: Outbox::new(shared.window, Instant::now()),
        changes: Changes::default(),
        is_message: Vec::new(),
        next_due: Instant::now(),
        every,
        give_up: None,
        shared: shared.clone(),
    };
    let mut gateway = who;
    let mut lost_at: Option<(usize, Instant)> = None;
    loop {
        s.write_due();
        if s.done() {
            break;
        }
        let ws = match shared.connect(gateway, &token, who).await {
            Ok(ws) => ws,
            Err(code) => {
                s.log.errors.push((shared.phase(), code));
                gateway += 1;
                sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        if let Some((phase, at)) = lost_at.take() {
            s.log.gaps.push((phase, at.elapsed()));
        }
        if !s.converse(ws).await {
            break;
        }
        lost_at = Some((shared.phase(), Instant::now()));
        s.outbox.disconnected();
        gateway += 1;
    }
    s.log
}

/// Reads every room of the run until told to stop, resuming each from the last cursor it
/// has wherever it reconnects.
pub async fn reader(shared: Arc<Shared>, who: usize, token: String) -> ReaderLog {
    let mut log = ReaderLog {
        rooms: vec![Vec::new(); shared.rooms.len()],
        ..ReaderLog::default()
    };
    let index: HashMap<&str, usize> = shared
        .rooms
        .iter()
        .enumerate()
        .map(|(i, r)| (r.as_str(), i))
        .collect();
    let mut resume = Resume::new(shared.rooms.iter().cloned());
    let mut gateway = who + 1;
    let mut lost_at: Option<(usize, Instant)> = None;
    let mut joined_once = false;
    let stop = shared.stop_reading.clone();
    'reconnect: while !stop.is_cancelled() {
        let ws = tokio::select! {
            () = stop.cancelled() => break,
            ws = shared.connect(gateway, &token, 1000 + who) => ws,
        };
        let ws = match ws {
            Ok(ws) => ws,
            Err(code) => {
                log.errors.push((shared.phase(), code));
                gateway += 1;
                sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        let (mut sink, mut stream) = ws.split();
        for room in &shared.rooms {
            if sink.send(Message::text(resume.join(room))).await.is_err() {
                lost_at.get_or_insert((shared.phase(), Instant::now()));
                gateway += 1;
                continue 'reconnect;
            }
        }
        let mut pending = shared.rooms.len();
        loop {
            let frame = tokio::select! {
                () = stop.cancelled() => break 'reconnect,
                frame = stream.next() => frame,
            };
            let frame: Value = match frame {
                Some(Ok(Message::Text(text))) => match serde_json::from_str(&text) {
                    Ok(v) => v,
                    Err(_) => {
                        log.errors.push((shared.phase(), "not JSON".into()));
                        continue;
                    }
                },
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => continue,
            };
            let room = frame["room"].as_str().and_then(|r| index.get(r)).copied();
            // Every room event (message, edit, reaction, delete) moves the room's cursor.
            let event = resume.heard(&frame);
            match (frame["type"].as_str(), room) {
                (Some(_), Some(room)) if event => {
                    if let Some(cursor) = frame["cursor"].as_str() {
                        log.rooms[room].push(cursor.to_owned());
                        shared.received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                (Some("joined"), Some(_)) => {
                    pending = pending.saturating_sub(1);
                    if pending == 0 {
                        if let Some((phase, at)) = lost_at.take() {
                            log.gaps.push((phase, at.elapsed()));
                        }
                        if !joined_once {
                            joined_once = true;
                            shared.readers_joined.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                (Some("error"), _) => {
                    let code = frame["code"].as_str().unwrap_or("?").to_owned();
                    log.errors.push((shared.phase(), code));
                }
                _ => {}
            }
        }
        lost_at.get_or_insert((shared.phase(), Instant::now()));
        gateway += 1;
    }
    log
}

/// Logs in every `every` (round the given accounts, so no one account meets its own limit)
/// until told to stop; returns (phase, code) of each failed login.
pub async fn prober(
    shared: Arc<Shared>,
    names: Vec<String>,
    every: Duration,
) -> Vec<(usize, String)> {
    let http = reqwest::Client::builder()
        // Longer than the server's own waits (5 s for a database connection), so that what
        // it answers is recorded rather than the client's impatience.
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let mut failed = Vec::new();
    let mut tick = tokio::time::interval(every);
    for name in names.iter().cycle() {
        tokio::select! {
            () = shared.stop_reading.cancelled() => break,
            _ = tick.tick() => {}
        }
        let creds = serde_json::json!({"username": name, "password": client::PASSWORD});
        let outcome = http
            .post(format!("{}/api/v1/login", shared.auth))
            .json(&creds)
            .send()
            .await;
        match outcome {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => failed.push((
                shared.phase(),
                format!("login: HTTP {}", r.status().as_u16()),
            )),
            Err(e) if e.is_connect() => failed.push((shared.phase(), "login: refused".into())),
            Err(e) if e.is_timeout() => failed.push((shared.phase(), "login: timed out".into())),
            Err(_) => failed.push((shared.phase(), "login: failed".into())),
        }
    }
    failed
}
