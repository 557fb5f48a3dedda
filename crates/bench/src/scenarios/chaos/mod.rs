//! The chaos run (`scripts/chaos`): steady traffic on the local cluster of `scripts/cluster`
//! while its parts fail in turn (each gateway, each persist worker and auth killed with
//! SIGKILL; a gateway and a worker stopped with SIGTERM; PostgreSQL and Kafka stopped for a
//! while), then what the clients sent, were acked and received, held against what
//! PostgreSQL keeps: a table per fault, and a failure if anything acked was lost, doubled or
//! reordered.
//!
//! The clients ([`clients`]) run from the start to the end; the faults happen one after the
//! other, each followed by a spell of steady traffic, and everything is counted in the phase
//! (fault) it happened in ([`tally`]).

pub mod clients;
pub mod tally;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::stream::{self, StreamExt};
use sqlx::Row;
use tokio::time::Instant;

use crate::cli::{ChaosArgs, Common};
use crate::client;
use clients::Shared;
use tally::StoredRow;

/// Something done to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL a banter process, start it again after `--down`.
    Kill(String),
    /// SIGTERM a banter process, start it again after `--down`.
    Term(String),
    /// Stop PostgreSQL or Kafka, start it again after `--outage`.
    Stop(String),
}

impl std::str::FromStr for Fault {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        const PROCESSES: [&str; 5] = ["auth", "gateway-1", "gateway-2", "persist-1", "persist-2"];
        let (verb, name) = s
            .trim()
            .split_once(':')
            .with_context(|| format!("{s:?}: a fault is VERB:NAME"))?;
        let process = || {
            anyhow::ensure!(
                PROCESSES.contains(&name),
                "{name:?}: not one of {PROCESSES:?}"
            );
            Ok(name.to_owned())
        };
        match verb {
            "kill" => Ok(Self::Kill(process()?)),
            "term" => Ok(Self::Term(process()?)),
            "stop" if matches!(name, "postgres" | "kafka") => Ok(Self::Stop(name.to_owned())),
            "stop" => anyhow::bail!("{name:?}: only postgres and kafka are stopped"),
            _ => anyhow::bail!("{verb:?}: a fault is kill:, term: or stop:"),
        }
    }
}

impl Fault {
    fn label(&self, args: &ChaosArgs) -> String {
        match self {
            Self::Kill(name) => format!("kill -9 {name}"),
            Self::Term(name) => format!("SIGTERM {name}"),
            Self::Stop(name) => {
                let what = if name == "postgres" {
                    "PostgreSQL"
                } else {
                    "Kafka"
                };
                format!("{what} stopped {} s", args.outage.as_secs())
            }
        }
    }
}

/// The cluster's endpoints, from DIR/env.
struct Endpoints {
    auth: String,
    gateways: Vec<String>,
    database_url: String,
}

fn endpoints(dir: &Path) -> anyhow::Result<Endpoints> {
    let env = std::fs::read_to_string(dir.join("env")).with_context(|| {
        format!(
            "no cluster in {} (start one with `scripts/cluster up`)",
            dir.display()
        )
    })?;
    let vars: HashMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let var = |k: &str| {
        vars.get(k)
            .map(|v| (*v).to_owned())
            .with_context(|| format!("{k} missing from the cluster's env"))
    };
    Ok(Endpoints {
        auth: var("AUTH_URL")?,
        gateways: var("GATEWAY_URLS")?.split(',').map(str::to_owned).collect(),
        database_url: var("DATABASE_URL")?,
    })
}

/// `scripts/cluster VERB NAME DIR`.
async fn cluster(args: &ChaosArgs, verb: &str, name: &str) -> anyhow::Result<()> {
    let out = tokio::process::Command::new(&args.cluster_script)
        .args([verb, name])
        .arg(&args.cluster)
        .output()
        .await
        .with_context(|| format!("running {}", args.cluster_script.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "scripts/cluster {verb} {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Does `fault` and mends it.
async fn inflict(args: &ChaosArgs, fault: &Fault) -> anyhow::Result<()> {
    let (verb, name, down) = match fault {
        Fault::Kill(name) => ("kill", name, args.down),
        Fault::Term(name) => ("stop", name, args.down),
        Fault::Stop(name) => ("stop", name, args.outage),
    };
    cluster(args, verb, name).await?;
    // The length of a fault is the scenario, not a wait for readiness (`start` waits for that).
    tokio::time::sleep(down).await;
    cluster(args, "start", name).await
}

/// The rows of the run's rooms, per room in log order: its messages and the changes of
/// them, each known by its cursor. A reaction that changed nothing (two copies of one
/// person's click, say) is a row too, which a resume skips like the events of a message
/// deleted since.
async fn stored(db: &sqlx::PgPool, rooms: &[String]) -> anyhow::Result<Vec<Vec<StoredRow>>> {
    let rows = sqlx::query(
        "SELECT room, part, seq, client_id, gone FROM ( \
           SELECT room, part, seq, client_id, deleted_at IS NOT NULL AS gone \
           FROM messages WHERE room = ANY($1) \
           UNION ALL \
           SELECT e.room, e.part, e.seq, e.client_id, \
                  (NOT e.changed OR (e.kind <> 'delete' AND m.deleted_at IS NOT NULL)) AS gone \
           FROM room_events e JOIN messages m ON m.id = e.message_id \
           WHERE e.room = ANY($1)) events \
         ORDER BY room, part, seq",
    )
    .bind(rooms)
    .fetch_all(db)
    .await
    .context("reading the run's events")?;
    let index: HashMap<&str, usize> = rooms
        .iter()
        .enumerate()
        .map(|(i, r)| (r.as_str(), i))
        .collect();
    let mut by_room = vec![Vec::new(); rooms.len()];
    for row in rows {
        let room: String = row.get("room");
        let (part, seq): (i64, i64) = (row.get("part"), row.get("seq"));
        if let Some(&i) = index.get(room.as_str()) {
            by_room[i].push(StoredRow {
                // As the protocol spells a cursor (docs/protocol.md).
                id: format!("{part:08x}{seq:016x}"),
                client_id: row.get("client_id"),
                gone: row.get("gone"),
            });
        }
    }
    Ok(by_room)
}

/// Waits until PostgreSQL holds every acked event of the run (or patience runs out).
async fn wait_persisted(
    db: &sqlx::PgPool,
    rooms: &[String],
    acked: u64,
    patience: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + patience;
    loop {
        let n: Result<i64, _> = sqlx::query_scalar(
            "SELECT (SELECT count(DISTINCT client_id) FROM messages WHERE room = ANY($1)) \
                  + (SELECT count(DISTINCT client_id) FROM room_events WHERE room = ANY($1))",
        )
        .bind(rooms)
        .fetch_one(db)
        .await;
        if n.as_ref().is_ok_and(|&n| n >= acked as i64) || Instant::now() >= deadline {
            return Ok(());
        }
        // Polling the database: there is nothing to wait on instead.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How long, once readers have what they must, the rest (events a resume may skip) may take.
const GONE_GRACE: Duration = Duration::from_secs(3);

/// Waits until the readers have got `total` events between them (or patience runs out).
async fn wait_delivered(received: &AtomicU64, total: u64, patience: Duration) {
    let deadline = Instant::now() + patience;
    while received.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(common: &Common, args: &ChaosArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.senders > 0 && args.readers > 0 && args.rooms > 0 && args.rate > 0.0,
        "--senders, --readers, --rooms and --rate must be positive"
    );
    let faults: Vec<Fault> = args
        .faults
        .iter()
        .filter(|f| !f.trim().is_empty())
        .map(|f| f.parse())
        .collect::<anyhow::Result<_>>()?;
    let ends = endpoints(&args.cluster)?;
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&ends.database_url)
        .await
        .context("the cluster's PostgreSQL")?;
    let run = format!("chaos-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut phases = vec!["steady".to_owned()];
    phases.extend(faults.iter().map(|f| f.label(args)));

    // Accounts: registering and logging in go a few at a time (hashing is slow on purpose).
    let http = reqwest::Client::new();
    let names: Vec<String> = (0..args.senders)
        .map(|i| format!("{run}-s{i}"))
        .chain((0..args.readers).map(|i| format!("{run}-r{i}")))
        .collect();
    let tokens: Vec<String> = stream::iter(&names)
        .map(|name| client::token(&http, &ends.auth, name))
        .buffered(2)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let probers: Vec<String> = (0..4).map(|i| format!("{run}-p{i}")).collect();
    for name in &probers {
        client::token(&http, &ends.auth, name).await?;
    }

    let shared = Arc::new(Shared {
        run: run.clone(),
        gateways: ends.gateways.clone(),
        auth: ends.auth.clone(),
        rooms: (0..args.rooms).map(|r| format!("{run}-{r}")).collect(),
        phase: AtomicUsize::new(0),
        stop_writing: tokio_util::sync::CancellationToken::new(),
        stop_reading: tokio_util::sync::CancellationToken::new(),
        rate: args.rate,
        window: args.window.max(1),
        patience: args.patience,
        sources: (0..args.senders + args.readers + 1)
            .map(|n| client::source(common, n))
            .collect(),
        acked: AtomicU64::new(0),
        received: AtomicU64::new(0),
        readers_joined: AtomicUsize::new(0),
    });

    // Readers first, so that they have every message from the first on.
    let readers: Vec<_> = (0..args.readers)
        .map(|i| {
            let token = tokens[args.senders + i].clone();
            tokio::spawn(clients::reader(shared.clone(), i, token))
        })
        .collect();
    let joined_by = Instant::now() + Duration::from_secs(30);
    while shared.readers_joined.load(Ordering::Relaxed) < args.readers {
        anyhow::ensure!(
            Instant::now() < joined_by,
            "the readers could not join in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let senders: Vec<_> = (0..args.senders)
        .map(|i| tokio::spawn(clients::sender(shared.clone(), i, tokens[i].clone())))
        .collect();
    let prober = tokio::spawn(clients::prober(
        shared.clone(),
        probers,
        Duration::from_secs(3),
    ));
    let started = Instant::now();
    let progress = {
        let (shared, phases) = (shared.clone(), phases.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                eprintln!(
                    "[chaos {:>4}s] {:<24} acked {:>7}  delivered {:>8}",
                    started.elapsed().as_secs(),
                    phases[shared.phase.load(Ordering::Relaxed).min(phases.len() - 1)],
                    shared.acked.load(Ordering::Relaxed),
                    shared.received.load(Ordering::Relaxed),
                );
            }
        })
    };

    eprintln!(
        "[chaos] run {run}: {} senders × {}/s over {} rooms, {} readers; faults: {}",
        args.senders,
        args.rate,
        args.rooms,
        args.readers,
        phases[1..].join(", ")
    );
    tokio::time::sleep(args.warmup).await;
    let mut outcome = Ok(());
    for (i, fault) in faults.iter().enumerate() {
        shared.phase.store(i + 1, Ordering::Relaxed);
        eprintln!("[chaos] {}", phases[i + 1]);
        if let Err(e) = inflict(args, fault).await {
            outcome = Err(e);
            break;
        }
        tokio::time::sleep(args.settle).await;
    }
    shared.stop_writing.cancel();
    eprintln!("[chaos] writing stopped; waiting for acks, rows and deliveries");
    let mut sender_logs = Vec::new();
    for s in senders {
        sender_logs.push(s.await.context("a sender failed")?);
    }
    let acked: u64 = sender_logs
        .iter()
        .flat_map(|s| &s.messages)
        .filter(|m| m.acked.is_some())
        .count() as u64;
    wait_persisted(&db, &shared.rooms, acked, args.patience).await?;
    let rows = stored(&db, &shared.rooms).await?;
    // Every reader gets every event, except that one which resumed may have skipped the
    // events of a message deleted meanwhile (a resume replays only the delete): wait for the
    // least they must have got, then a little for the rest.
    let reading = args.readers as u64;
    let must = rows.iter().flatten().filter(|r| !r.gone).count() as u64 * reading;
    let all = rows.iter().flatten().count() as u64 * reading;
    wait_delivered(&shared.received, must, args.patience).await;
    wait_delivered(&shared.received, all, GONE_GRACE).await;
    shared.stop_reading.cancel();
    let mut reader_logs = Vec::new();
    for r in readers {
        reader_logs.push(r.await.context("a reader failed")?);
    }
    let logins = prober.await.context("the prober failed")?;
    progress.abort();
    // The fault script failing is reported after what the clients saw until then.
    let tally = tally::tally(&tally::Input {
        run: &run,
        phases: &phases,
        senders: &sender_logs,
        readers: &reader_logs,
        logins: &logins,
        stored: &rows,
    });
    let table = tally.markdown();
    println!("{table}");
    for finding in &tally.findings {
        println!("{finding}");
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, &table).with_context(|| format!("writing {}", path.display()))?;
    }
    outcome?;
    anyhow::ensure!(
        tally.clean(),
        "the run lost, doubled, reordered or left unanswered acked events (above)"
    );
    Ok(())
}
