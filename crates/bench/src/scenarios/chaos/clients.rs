//! The clients of a chaos run, each as careful as the contract asks and no more: senders
//! that keep writing at a steady pace and re-send whatever was not answered or was refused
//! (`unavailable`, `rate_limited`) with the same client id; readers that resume every room
//! with `since` wherever they reconnect; a prober that logs in now and then. They never
//! judge; they record, and [`super::tally`] judges.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::{self, Message};

use super::tally::{client_id, ReaderLog, SenderLog, Written};
use crate::client::{self, Ws};

/// The cursor before every message of every room (protocol.md, "Cursors").
const ZERO_CURSOR: &str = "000000000000000000000000";
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Between two failed connection attempts.
const RECONNECT_PAUSE: Duration = Duration::from_millis(250);
/// After `unavailable`, before sending again.
const UNAVAILABLE_PAUSE: Duration = Duration::from_millis(500);

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
    /// Messages per second, per sender.
    pub rate: f64,
    /// Messages a sender has sent and not yet had answered, at most.
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

/// One sender's state across its connections.
struct Sender {
    shared: Arc<Shared>,
    who: usize,
    log: SenderLog,
    /// Written and not sent on the current connection: new ones, refused ones, and those
    /// left unanswered by a connection that went away. Sent in sequence order.
    queue: BTreeSet<u64>,
    /// Sent and unanswered, with when each was sent.
    in_flight: Vec<(u64, Instant)>,
    /// Time between two sends while catching up after a `rate_limited`: each refusal says
    /// how much too early its send was (`retry_after_ms`), and the gap grows by that, so
    /// a backlog meets the limit a few times rather than once per send. Zero (only the run's
    /// pace) once nothing is waiting.
    gap: Duration,
    next_send: Instant,
    /// When the gap last grew: refusals of sends from before then are already counted in it.
    gap_grown: Instant,
    pause_until: Instant,
    next_due: Instant,
    every: Duration,
    /// Once writing stopped: when to stop waiting for the last acks.
    give_up: Option<Instant>,
}

impl Sender {
    /// Writes the messages due by now, at the run's pace, unless writing has stopped.
    fn write_due(&mut self) {
        if self.shared.stop_writing.is_cancelled() {
            return;
        }
        let now = Instant::now();
        while self.next_due <= now {
            let seq = self.log.messages.len();
            self.log.messages.push(Written {
                phase: self.shared.phase(),
                room: (seq + self.who) % self.shared.rooms.len(),
                acked: None,
            });
            self.queue.insert(seq as u64);
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
        (self.queue.is_empty() && self.in_flight.is_empty()) || Instant::now() >= give_up
    }

    fn frame(&self, seq: u64) -> String {
        let m = &self.log.messages[seq as usize];
        client::send_frame(
            crate::cli::Protocol::Banter,
            &self.shared.rooms[m.room],
            &format!("s{} {seq}", self.who),
            &client_id(&self.shared.run, self.who, seq),
        )
    }

    fn seq_of(&self, frame: &Value) -> Option<u64> {
        let cid = frame["client_id"].as_str()?;
        let (who, seq) = super::tally::parse_client_id(&self.shared.run, cid)?;
        (who == self.who).then_some(seq)
    }

    /// Takes `seq` out of the in-flight list; when it was sent, if it was there.
    fn answered(&mut self, seq: u64) -> Option<Instant> {
        let i = self.in_flight.iter().position(|&(s, _)| s == seq)?;
        Some(self.in_flight.remove(i).1)
    }

    fn handle(&mut self, frame: &Value) {
        let phase = self.shared.phase();
        match frame["type"].as_str() {
            Some("ack") => {
                let Some(seq) = self.seq_of(frame) else {
                    self.log.errors.push((phase, "ack of nothing sent".into()));
                    return;
                };
                self.answered(seq);
                let id = frame["id"].as_str().unwrap_or_default().to_owned();
                let m = &mut self.log.messages[seq as usize];
                match &m.acked {
                    None => {
                        m.acked = Some(id);
                        self.log.ack_order.push(seq);
                        self.shared.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(first) if *first != id => {
                        self.log.errors.push((phase, "acked twice, two ids".into()));
                    }
                    Some(_) => {}
                }
            }
            Some("error") => {
                let code = frame["code"].as_str().unwrap_or("?").to_owned();
                let seq = self.seq_of(frame);
                self.log.errors.push((phase, code.clone()));
                let Some((seq, sent_at)) = seq.and_then(|s| Some((s, self.answered(s)?))) else {
                    return;
                };
                let pause = match code.as_str() {
                    "unavailable" => UNAVAILABLE_PAUSE,
                    "rate_limited" => {
                        let wait =
                            Duration::from_millis(frame["retry_after_ms"].as_u64().unwrap_or(1000));
                        if sent_at >= self.gap_grown {
                            self.gap = (self.gap + wait).min(Duration::from_secs(1));
                            self.gap_grown = Instant::now();
                        }
                        wait
                    }
                    // Refused for good: left unacked, which the tally reports.
                    _ => return,
                };
                self.queue.insert(seq);
                self.pause_until = self.pause_until.max(Instant::now() + pause);
            }
            _ => {}
        }
    }

    /// Sends over one connection until it breaks (true) or everything is acked (false).
    async fn converse(&mut self, ws: Ws) -> bool {
        let (mut sink, mut stream) = ws.split();
        loop {
            self.write_due();
            if self.queue.is_empty() && self.in_flight.is_empty() {
                self.gap = Duration::ZERO;
            }
            while self.in_flight.len() < self.shared.window
                && Instant::now() >= self.pause_until.max(self.next_send)
            {
                let Some(seq) = self.queue.pop_first() else {
                    break;
                };
                if sink.send(Message::text(self.frame(seq))).await.is_err() {
                    self.queue.insert(seq);
                    return true;
                }
                self.in_flight.push((seq, Instant::now()));
                self.next_send = Instant::now() + self.gap;
            }
            if self.done() {
                let _ = sink.close().await;
                return false;
            }
            let mut wake = Instant::now() + Duration::from_millis(100);
            if !self.shared.stop_writing.is_cancelled() {
                wake = wake.min(self.next_due);
            }
            let blocked = self.pause_until.max(self.next_send);
            if blocked > Instant::now() && !self.queue.is_empty() {
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

/// Writes `rate` messages a second round the rooms until writing stops, then keeps at it
/// until all it wrote is acked (or the run's patience is spent).
pub async fn sender(shared: Arc<Shared>, who: usize, token: String) -> SenderLog {
    let every = Duration::from_secs_f64(1.0 / shared.rate);
    let mut s = Sender {
        who,
        log: SenderLog::default(),
        queue: BTreeSet::new(),
        in_flight: Vec::new(),
        gap: Duration::ZERO,
        next_send: Instant::now(),
        gap_grown: Instant::now(),
        pause_until: Instant::now(),
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
        let unanswered: Vec<u64> = s.in_flight.drain(..).map(|(seq, _)| seq).collect();
        s.queue.extend(unanswered);
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
    // None until the room's first `joined`: the first join takes what comes from then on.
    let mut cursors: Vec<Option<String>> = vec![None; shared.rooms.len()];
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
        for (room, cursor) in shared.rooms.iter().zip(&cursors) {
            if sink
                .send(Message::text(client::join_frame(room, cursor.as_deref())))
                .await
                .is_err()
            {
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
            match (frame["type"].as_str(), room) {
                (Some("message"), Some(room)) => {
                    if let (Some(id), Some(cursor)) =
                        (frame["id"].as_str(), frame["cursor"].as_str())
                    {
                        log.rooms[room].push(id.to_owned());
                        cursors[room] = Some(cursor.to_owned());
                        shared.received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                (Some("joined"), Some(room)) => {
                    let cursor = frame["cursor"].as_str();
                    if let Some(cursor) = cursor {
                        cursors[room] = Some(cursor.to_owned());
                    } else if cursors[room].is_none() {
                        cursors[room] = Some(ZERO_CURSOR.to_owned());
                    }
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
