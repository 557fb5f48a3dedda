//! The scenarios, and the room engine most of them share: rooms of members that read and
//! check everything, one paced sender per room, a measured window after a warm-up, and a
//! drain at the end so that late deliveries are counted rather than called lost.

pub mod chaos;
pub mod fanout;
pub mod idle;
pub mod login;
pub mod persist;
pub mod reconnect;
pub mod search;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use crate::cli::{Common, FanoutArgs, Protocol};
use crate::client::{self, Incoming};
use crate::report::{self, Summary};
use crate::track::{self, Clock, Seen, Totals};

/// Everything the tasks of one run share.
#[derive(Debug)]
pub struct Ctx {
    pub common: Common,
    pub protocol: Protocol,
    pub clock: Clock,
    pub totals: Totals,
    /// Sends of each room's sender, and how many of them were acked.
    pub sent: Vec<AtomicU64>,
    pub acked: Vec<AtomicU64>,
    /// The measured window, in the clock's microseconds (set once the warm-up is over).
    pub window_start: AtomicU64,
    pub window_end: AtomicU64,
    pub run_id: String,
    pub resume_latency: std::sync::Mutex<Histogram<u64>>,
}

impl Ctx {
    pub fn room(&self, r: usize) -> String {
        format!("{}-{r}", self.run_id)
    }

    fn in_window(&self, sent_us: u64) -> bool {
        sent_us >= self.window_start.load(Ordering::Relaxed)
            && sent_us < self.window_end.load(Ordering::Relaxed)
    }
}

/// What one member saw.
#[derive(Debug)]
pub struct MemberResult {
    pub room: usize,
    pub seen: Seen,
}

/// Options of the room engine beyond the fanout's own.
#[derive(Debug, Default, Clone, Copy)]
pub struct Extras {
    /// Members reconnect at this rate (in total), resuming with `since`.
    pub reconnect_rate: Option<f64>,
}

/// Runs rooms × members with a paced sender per room; returns the summary and the context.
pub async fn rooms(
    common: &Common,
    args: &FanoutArgs,
    extras: Extras,
    during: impl std::future::Future<Output = ()>,
) -> anyhow::Result<(Summary, Arc<Ctx>)> {
    let urls = common.urls();
    anyhow::ensure!(!urls.is_empty(), "--url is empty");
    let tokens = client::tokens(common).await?;
    let ctx = Arc::new(Ctx {
        common: common.clone(),
        protocol: common.protocol,
        clock: Clock::start(),
        totals: Totals::default(),
        sent: (0..args.rooms).map(|_| AtomicU64::new(0)).collect(),
        acked: (0..args.rooms).map(|_| AtomicU64::new(0)).collect(),
        window_start: AtomicU64::new(u64::MAX),
        window_end: AtomicU64::new(u64::MAX),
        run_id: format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        resume_latency: std::sync::Mutex::new(track::new_histogram()),
    });
    let (stop_tx, stop) = watch::channel(false);

    // Members first, all joined, so that every one of them is due every message.
    eprintln!(
        "opening {} member connections ({} rooms × {})",
        args.rooms * args.members,
        args.rooms,
        args.members
    );
    let mut reconnectors = Vec::new();
    let opened = futures::stream::iter(0..args.rooms * args.members)
        .map(|n| {
            let (ctx, urls, tokens, stop) =
                (ctx.clone(), urls.clone(), tokens.clone(), stop.clone());
            let lobby = extras.reconnect_rate.is_some();
            async move {
                let room = n % args.rooms;
                let member = Member {
                    ctx: ctx.clone(),
                    url: urls[n % urls.len()].clone(),
                    token: tokens[n % tokens.len()].clone(),
                    room,
                    n,
                    lobby,
                    epoch: std::sync::Mutex::new(None),
                };
                let (ws, _, from) = member.open(None).await?;
                let (tx, rx) = mpsc::channel(1);
                let handle = tokio::spawn(member.run(ws, from, stop, rx));
                anyhow::Ok((handle, tx))
            }
        })
        .buffer_unordered(common.connect_concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut members = Vec::new();
    for result in opened {
        let (handle, tx) = result.context("opening a member connection")?;
        members.push(handle);
        reconnectors.push(tx);
    }
    eprintln!("all {} members joined", members.len());

    // One sender per room.
    let mut senders = Vec::new();
    let period = Duration::from_secs_f64(args.rooms as f64 / args.rate.max(0.001));
    // Each sender's ticks are offset by its share of the period, so the asked rate arrives
    // evenly spread: started together, every room would send in the same instant, and the
    // figures would measure bursts of R x M deliveries rather than the rate.
    let epoch = Instant::now() + Duration::from_millis(200);
    for r in 0..args.rooms {
        let first_tick = epoch + period.mul_f64(r as f64 / args.rooms as f64);
        let sender = Sender {
            ctx: ctx.clone(),
            url: urls[r % urls.len()].clone(),
            token: tokens[r % tokens.len()].clone(),
            room: r,
            n: args.rooms * args.members + r,
            body_bytes: args.body_bytes,
        };
        senders.push(tokio::spawn(sender.run(first_tick, period, stop.clone())));
    }

    let started = Instant::now();
    let progress = tokio::spawn(progress(ctx.clone(), stop.clone()));
    let storm = extras
        .reconnect_rate
        .map(|rate| tokio::spawn(reconnect_storm(reconnectors.clone(), rate, stop.clone())));
    tokio::time::sleep(args.warmup).await;
    let start_us = ctx.clock.micros();
    ctx.window_end
        .store(start_us + micros(args.duration), Ordering::Relaxed);
    ctx.window_start.store(start_us, Ordering::Relaxed);
    let reconnects_before = Totals::get(&ctx.totals.reconnects);
    let cpu_before = common.server_pid.and_then(report::cpu_seconds);
    let delivered_before = Totals::get(&ctx.totals.delivered);
    eprintln!("warm-up over: measuring for {:?}", args.duration);
    let measure = tokio::time::sleep(args.duration);
    tokio::pin!(measure);
    let during = async {
        during.await;
        futures::future::pending::<()>().await
    };
    tokio::select! {
        () = &mut measure => {}
        () = during => {}
    }
    let reconnects_in_window = Totals::get(&ctx.totals.reconnects) - reconnects_before;
    // The server's CPU over the window, per delivery in it.
    let cpu_per_million = cpu_before
        .zip(common.server_pid.and_then(report::cpu_seconds))
        .map(|(before, after)| {
            let delivered = Totals::get(&ctx.totals.delivered).saturating_sub(delivered_before);
            (after - before) / (delivered.max(1) as f64) * 1e6
        });
    // Stop sending; let deliveries drain.
    let _ = stop_tx.send(true);
    for s in senders {
        s.await.context("a sender task")??;
    }
    if let Some(storm) = storm {
        let _ = storm.await;
    }
    let expected: u64 = ctx
        .acked_or_sent()
        .iter()
        .map(|n| n * args.members as u64)
        .sum();
    let deadline = Instant::now() + args.drain;
    while Totals::get(&ctx.totals.delivered) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Closing their channels tells the members to finish.
    drop(reconnectors);
    let _ = progress.await;

    let mut summary = Summary {
        scenario: "fanout".into(),
        protocol: format!("{:?}", common.protocol).to_lowercase(),
        connections: (args.rooms * (args.members + 1)) as u64,
        rooms: Some(args.rooms as u64),
        members: Some(args.members as u64),
        send_rate: Some(args.rate),
        body_bytes: Some(args.body_bytes as u64),
        duration_s: args.duration.as_secs_f64(),
        ..Summary::default()
    };
    let counts = ctx.acked_or_sent();
    for handle in members {
        let result = handle.await.context("a member task")?;
        let due = counts[result.room];
        summary.lost += result.seen.missing_below(due);
        summary.duplicated += result.seen.duplicated;
        summary.out_of_order += result.seen.out_of_order;
    }
    summary.sent = ctx.sent.iter().map(|a| a.load(Ordering::Relaxed)).sum();
    summary.acked = ctx.acked.iter().map(|a| a.load(Ordering::Relaxed)).sum();
    summary.deliveries = Totals::get(&ctx.totals.delivered);
    summary.deliveries_per_sec =
        Totals::get(&ctx.totals.delivered_in_window) as f64 / args.duration.as_secs_f64();
    summary.errors = Totals::get(&ctx.totals.errors);
    summary.drops = Totals::get(&ctx.totals.drops);
    report::latency(&mut summary, &ctx.totals.latency());
    if extras.reconnect_rate.is_some() {
        summary.scenario = "reconnect".into();
        summary.reconnects = Some(Totals::get(&ctx.totals.reconnects));
        summary.reconnects_per_sec =
            Some(reconnects_in_window as f64 / args.duration.as_secs_f64());
        let resume = ctx
            .resume_latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        summary.resume_p99_ms = Some(report::ms(&resume, 0.99));
    }
    summary.server_rss_bytes = common.server_pid.and_then(report::rss_bytes);
    summary.server_cpu_s_per_million = cpu_per_million;
    eprintln!("done in {:?}", started.elapsed());
    Ok((summary, ctx))
}

impl Ctx {
    /// Per room, how many messages every member is due: the acked ones (banter), or the
    /// sent ones (the others do not ack).
    fn acked_or_sent(&self) -> Vec<u64> {
        let counts = if self.protocol.acks() {
            &self.acked
        } else {
            &self.sent
        };
        counts.iter().map(|a| a.load(Ordering::Relaxed)).collect()
    }
}

/// Before every message (`banter_core::Cursor::ZERO`).
use banter_client::ZERO_CURSOR;

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A room member: reads everything, checks it, and (in a storm) reconnects when told.
struct Member {
    ctx: Arc<Ctx>,
    url: String,
    token: String,
    room: usize,
    n: usize,
    /// Connect to a lobby and `join` the room, so that a resume's `join … since` is the only
    /// join of the room on that connection. (On Centrifugo: subscribe so that a
    /// reconnect can recover.)
    lobby: bool,
    /// Centrifugo's epoch of the room's history, from the last subscription: a recovery
    /// names it beside the offset.
    epoch: std::sync::Mutex<Option<String>>,
}

impl Member {
    /// Connects and joins the room; returns the socket, the frames that came before `joined`
    /// (a resume's replay), and where to resume from if nothing arrives before the next
    /// reconnect: `joined`'s cursor, or the zero cursor (before every message) for a room
    /// without messages.
    async fn open(&self, since: Option<&str>) -> anyhow::Result<(client::Ws, Vec<String>, String)> {
        let room = self.ctx.room(self.room);
        // The seed has no `join` frame: its connections are in their room from the URL.
        let first = if self.lobby && self.ctx.protocol == Protocol::Banter {
            format!("{}-lobby", self.ctx.run_id)
        } else {
            room.clone()
        };
        let url = client::ws_url(self.ctx.protocol, &self.url, &self.token, &first);
        let mut ws = client::connect(&url, client::source(&self.ctx.common, self.n)).await?;
        if self.lobby && self.ctx.protocol == Protocol::Centrifugo {
            return self.open_recovering(ws, &room, since).await;
        }
        client::open_session(self.ctx.protocol, &mut ws, &self.token, Some(&room)).await?;
        if self.ctx.protocol == Protocol::Banter {
            if self.lobby {
                ws.send(Message::text(client::join_frame(&room, since)))
                    .await?;
            }
            // Joined means every later message of the room will come.
            let mut before = Vec::new();
            loop {
                let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
                    .await
                    .context("no `joined` within 30 s")?
                    .context("closed before `joined`")??;
                if let Message::Text(t) = frame {
                    match Incoming::parse(&t) {
                        Some(f) if f.is("joined") && f.room.as_deref() == Some(room.as_str()) => {
                            let from = f.cursor.unwrap_or_else(|| ZERO_CURSOR.to_owned());
                            return Ok((ws, before, from));
                        }
                        _ => before.push(t.as_str().to_owned()),
                    }
                }
            }
        }
        Ok((ws, Vec::new(), ZERO_CURSOR.to_owned()))
    }

    /// Centrifugo's subscription with recovery: after `since` (the offset last heard, in the
    /// epoch of the last subscription), what was missed comes in the subscribe reply.
    async fn open_recovering(
        &self,
        mut ws: client::Ws,
        room: &str,
        since: Option<&str>,
    ) -> anyhow::Result<(client::Ws, Vec<String>, String)> {
        let epoch = self
            .epoch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let since = match (since, epoch) {
            (Some(offset), Some(epoch)) => Some(client::Position {
                offset: offset.parse().context("a Centrifugo offset")?,
                epoch,
            }),
            _ => None,
        };
        let (replayed, now) =
            client::open_centrifugo_recovering(&mut ws, &self.token, room, since.as_ref()).await?;
        let from = now.offset.to_string();
        *self
            .epoch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(now.epoch);
        Ok((ws, replayed, from))
    }

    async fn run(
        self,
        mut ws: client::Ws,
        joined_at: String,
        mut stop: watch::Receiver<bool>,
        mut reconnect: mpsc::Receiver<()>,
    ) -> MemberResult {
        let mut seen = Seen::default();
        let mut latency = track::new_histogram();
        // Where a reconnect resumes from: banter-client's, like every other client's.
        let mut resume = banter_client::Resume::new([self.ctx.room(self.room)]);
        resume.note("joined", &self.ctx.room(self.room), Some(&joined_at));
        let mut stopping = false;
        loop {
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(t))) => {
                        if let Some(reply) = client::answer(self.ctx.protocol, &t) {
                            let _ = ws.send(Message::text(reply)).await;
                        }
                        self.on_text(&t, &mut seen, &mut latency, &mut resume);
                    }
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => {
                        if stopping {
                            break;
                        }
                        // Dropped by the server (or the network): count it, come back.
                        self.ctx.totals.add(&self.ctx.totals.drops, 1);
                        match self.reopen(resume.cursor(&self.ctx.room(self.room))).await {
                            Some((new, replayed, _)) => {
                                ws = new;
                                for t in &replayed {
                                    self.on_text(t, &mut seen, &mut latency, &mut resume);
                                }
                            }
                            None => break,
                        }
                    }
                },
                _ = stop.changed(), if !stopping => {
                    // Senders stopped: keep reading until told to finish.
                    stopping = true;
                }
                asked = reconnect.recv() => match asked {
                    Some(()) => {
                        let _ = ws.close(None).await;
                        match self.reopen(resume.cursor(&self.ctx.room(self.room))).await {
                            Some((new, replayed, _)) => {
                                ws = new;
                                for t in &replayed {
                                    self.on_text(t, &mut seen, &mut latency, &mut resume);
                                }
                                self.ctx.totals.add(&self.ctx.totals.reconnects, 1);
                            }
                            None => break,
                        }
                    }
                    // The run is over.
                    None => break,
                },
            }
        }
        self.ctx.totals.merge_latency(&latency);
        MemberResult {
            room: self.room,
            seen,
        }
    }

    fn on_text(
        &self,
        text: &str,
        seen: &mut Seen,
        latency: &mut Histogram<u64>,
        resume: &mut banter_client::Resume,
    ) {
        for f in Incoming::parse_all(self.ctx.protocol, text) {
            if f.is_message() {
                self.delivered(&f, seen, latency);
                // The seed's messages have no type; banter's say `message`.
                if let Some(room) = f.room.as_deref() {
                    resume.note("message", room, f.cursor.as_deref());
                }
            } else if f.is("error") {
                self.ctx.totals.add(&self.ctx.totals.errors, 1);
            }
        }
    }

    fn delivered(&self, f: &Incoming, seen: &mut Seen, latency: &mut Histogram<u64>) {
        let Some((sender, seq, sent_us)) = f.body.as_deref().and_then(track::parse_body) else {
            return;
        };
        if sender != self.room {
            return;
        }
        seen.record(seq);
        self.ctx.totals.add(&self.ctx.totals.delivered, 1);
        if self.ctx.in_window(sent_us) {
            let _ = latency.record(self.ctx.clock.micros().saturating_sub(sent_us).max(1));
            self.ctx.totals.add(&self.ctx.totals.delivered_in_window, 1);
        }
    }

    /// Reconnects and resumes after the last cursor seen; `None` when it cannot.
    async fn reopen(&self, since: Option<&str>) -> Option<(client::Ws, Vec<String>, String)> {
        let began = Instant::now();
        for attempt in 0..50u32 {
            match self.open(since).await {
                Ok(opened) => {
                    let took = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let _ = self
                        .ctx
                        .resume_latency
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .record(took.max(1));
                    return Some(opened);
                }
                Err(e) => {
                    if attempt == 0 {
                        eprintln!("member {}: reconnect failed ({e:#}); retrying", self.n);
                    }
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt + 1))).await;
                }
            }
        }
        None
    }
}

/// A room's sender: sends at its pace until told to stop, then waits for its acks.
struct Sender {
    ctx: Arc<Ctx>,
    url: String,
    token: String,
    room: usize,
    n: usize,
    body_bytes: usize,
}

impl Sender {
    async fn run(
        self,
        first_tick: Instant,
        period: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let room = self.ctx.room(self.room);
        let url = client::ws_url(self.ctx.protocol, &self.url, &self.token, &room);
        let mut ws = client::connect(&url, client::source(&self.ctx.common, self.n)).await?;
        client::open_session(self.ctx.protocol, &mut ws, &self.token, None).await?;
        let (mut sink, mut stream) = ws.split();
        let mut tick = tokio::time::interval_at(first_tick, period);
        // Behind schedule, catch up: the asked rate is the point.
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut seq = 0u64;
        // Sends answered with an error: never acked, and not due to anyone.
        let mut refused = 0u64;
        let mut stopping = false;
        // Set when sending stops: how long the last acks may take.
        let mut ack_deadline = tokio::time::Instant::now();
        let acks = self.ctx.protocol.acks();
        loop {
            let answered = self.ctx.acked[self.room].load(Ordering::Relaxed) + refused;
            if stopping && (!acks || answered >= seq) {
                break;
            }
            tokio::select! {
                _ = tick.tick(), if !stopping => {
                    let body = track::body(self.room, seq, self.ctx.clock.micros(), self.body_bytes);
                    // Unique per account across runs: a client id seen before is a re-send.
                    let client_id = format!("{room}-{seq}");
                    let frame = client::send_frame(self.ctx.protocol, &room, &body, &client_id, seq);
                    sink.send(Message::text(frame)).await.context("sending")?;
                    seq += 1;
                    self.ctx.sent[self.room].fetch_add(1, Ordering::Relaxed);
                    self.ctx.totals.add(&self.ctx.totals.sent, 1);
                }
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    ack_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                }
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(t))) => {
                        if let Some(reply) = client::answer(self.ctx.protocol, &t) {
                            sink.send(Message::text(reply)).await.context("answering a ping")?;
                        }
                        for f in Incoming::parse_all(self.ctx.protocol, &t) {
                            if f.is("ack") {
                                self.ctx.acked[self.room].fetch_add(1, Ordering::Relaxed);
                                self.ctx.totals.add(&self.ctx.totals.acked, 1);
                            } else if f.is("error") {
                                refused += 1;
                                self.ctx.totals.add(&self.ctx.totals.errors, 1);
                                eprintln!("room {}: error frame {:?}", self.room, f.code);
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => anyhow::bail!("room {}: the sender's connection closed", self.room),
                },
                () = tokio::time::sleep_until(ack_deadline), if stopping => {
                    eprintln!("room {}: acks missing after 30 s", self.room);
                    break;
                }
            }
        }
        let _ = sink.close().await;
        Ok(())
    }
}

/// Prints rates once a second until the run stops.
async fn progress(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut sent, mut delivered) = (0, 0);
    let mut t = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        t += 1;
        let s = Totals::get(&ctx.totals.sent);
        let d = Totals::get(&ctx.totals.delivered);
        eprintln!(
            "{t:>4}s  sent/s {:>8}  delivered/s {:>9}  acked {:>9}  errors {}  drops {}  reconnects {}",
            s - sent,
            d - delivered,
            Totals::get(&ctx.totals.acked),
            Totals::get(&ctx.totals.errors),
            Totals::get(&ctx.totals.drops),
            Totals::get(&ctx.totals.reconnects),
        );
        (sent, delivered) = (s, d);
    }
}

/// Asks members, round robin, to reconnect at `rate` per second until the run stops.
async fn reconnect_storm(
    members: Vec<mpsc::Sender<()>>,
    rate: f64,
    mut stop: watch::Receiver<bool>,
) {
    if members.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut next = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // A member still busy with its last reconnect is skipped this round.
                let _ = members[next % members.len()].try_send(());
                next += 1;
            }
            _ = stop.changed() => return,
        }
    }
}
