//! The notifier on Kafka (`banter notify`): a consumer group of its own on `chat-in`, so any
//! number of processes share the partitions, each message is considered by one of them, and
//! what it decided survives a crash. [`run_jobs`] is that loop for any work done after the
//! fact per record (the gateways' outgoing webhooks use it too, as a group of their own), and
//! [`run_local_jobs`] its counterpart on `banter serve`'s in-process log.
//!
//! - Each record is handed to its job as it is read ([`Notifier::notify`] for the notifier;
//!   in the background, at most `max_in_flight` at once), so a push service that is slow or
//!   retrying never holds up the others.
//! - A partition's offset is committed up to the first record whose pushes are not yet sent
//!   or given up: nothing is skipped by a crash. Commits are made every `commit_every`, when
//!   a rebalance takes a partition away, and at a clean stop, which gives up no push: those
//!   cut short by the stop are left uncommitted for the next owner of the partition.
//! - The retry contract, then: at least once. After a crash (`kill -9`), the next owner reads
//!   again from the last commit, so the pushes of the records after it that were already
//!   sent (up to `commit_every` of them, and those in flight) are sent again. They carry the
//!   same `Topic` and the service worker shows one notification per room, so a device shows
//!   such a repeat once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use banter_bus::{KafkaSettings, Record};
use banter_core::{Cursor, LoggedEvent};
use futures::future::BoxFuture;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::notifier::{Notice, Notifier};

/// Settings of the notifier's consumer group.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub kafka: KafkaSettings,
    /// The consumer group (`BANTER_NOTIFY_GROUP`, default `notify-svc`).
    pub group: String,
    /// Records being notified about at once; reading waits beyond it.
    pub max_in_flight: usize,
    /// How often finished offsets are committed.
    pub commit_every: Duration,
}

impl GroupSettings {
    pub fn new(kafka: KafkaSettings) -> Self {
        Self {
            kafka,
            group: "notify-svc".into(),
            max_in_flight: 1024,
            commit_every: Duration::from_secs(1),
        }
    }
}

/// Per partition, the offsets read and not yet behind the commit point, whether each is
/// done, and the commit point itself.
#[derive(Debug, Default)]
struct Pending {
    offsets: HashMap<i32, BTreeMap<i64, bool>>,
    /// Per partition, the next offset to read after everything done in order: what is
    /// committed. Sent again at every round, so a commit lost in a rebalance is repaired.
    watermark: HashMap<i32, i64>,
}

impl Pending {
    fn read(&mut self, partition: i32, offset: i64, done: bool) {
        self.offsets
            .entry(partition)
            .or_default()
            .insert(offset, done);
    }

    fn done(&mut self, partition: i32, offset: i64) {
        if let Some(done) = self
            .offsets
            .get_mut(&partition)
            .and_then(|o| o.get_mut(&offset))
        {
            *done = true;
        }
    }

    fn in_flight(&self) -> usize {
        self.offsets
            .values()
            .map(|o| o.values().filter(|d| !**d).count())
            .sum()
    }

    /// Moves each partition's commit point past the done run at its start, and returns
    /// every commit point.
    fn commits(&mut self) -> Vec<(i32, i64)> {
        for (partition, offsets) in &mut self.offsets {
            while let Some((&offset, &done)) = offsets.first_key_value() {
                if !done {
                    break;
                }
                offsets.pop_first();
                let mark = self.watermark.entry(*partition).or_insert(offset + 1);
                *mark = (*mark).max(offset + 1);
            }
        }
        let mut out: Vec<(i32, i64)> = self.watermark.iter().map(|(p, o)| (*p, *o)).collect();
        out.sort_unstable();
        out
    }

    /// Forgets partitions this process no longer owns, returning their commit points.
    fn forget(&mut self, partitions: &[i32]) -> Vec<(i32, i64)> {
        let all = self.commits();
        for p in partitions {
            self.offsets.remove(p);
            self.watermark.remove(p);
        }
        all.into_iter()
            .filter(|(p, _)| partitions.contains(p))
            .collect()
    }
}

fn lock(pending: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Hears the group's rebalances: partitions taken away are committed as far as they are
/// done, then forgotten (their new owner carries on from there).
struct GroupContext {
    pending: Arc<Mutex<Pending>>,
    topic: String,
    metrics: GroupMetrics,
}

/// The names a group's figures are published under.
#[derive(Debug, Clone, Copy)]
pub struct GroupMetrics {
    /// A gauge: partitions this process holds.
    pub partitions: &'static str,
    /// A counter: commit rounds made (tests and dashboards wait on it).
    pub commit_rounds: &'static str,
    /// What the logs call the worker.
    pub name: &'static str,
}

const NOTIFIER: GroupMetrics = GroupMetrics {
    partitions: "banter_notify_partitions",
    commit_rounds: "banter_notify_commit_rounds_total",
    name: "notifier",
};

/// A record's work, done in the background: true once done or given up, false when the
/// stop cut it short (then it is not committed, and the partition's next owner does it).
pub type Job = BoxFuture<'static, bool>;

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
            let last = lock(&self.pending).forget(&partitions);
            if !last.is_empty() {
                if let Err(e) = consumer.commit(&offsets_list(&self.topic, &last), CommitMode::Sync)
                {
                    tracing::debug!(error = %e, "commit at a rebalance");
                }
            }
            metrics::gauge!(self.metrics.partitions).set(0.0);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!(self.metrics.partitions).set(list.count() as f64);
        }
    }
}

/// [`run_jobs`] for `banter serve`'s in-process log: each event `events` hands out is given
/// to `job` as it comes, its work run in the background, at most `max_in_flight` at once
/// (past that, `dropped` is called and the work not done: the log's fan-out waits for no
/// one), until `shutdown`; what is still running then is stopped (the local log is not read
/// again).
pub async fn run_local_jobs<F>(
    mut events: mpsc::Receiver<banter_bus::Event>,
    max_in_flight: usize,
    job: F,
    dropped: fn(),
    shutdown: CancellationToken,
) where
    F: Fn(&LoggedEvent, CancellationToken) -> Option<Job>,
{
    let tasks = tokio_util::task::TaskTracker::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight.max(1)));
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => break,
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
        };
        let banter_bus::Event::Room(logged) = event else {
            continue;
        };
        let Some(work) = job(&logged, shutdown.clone()) else {
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            dropped();
            continue;
        };
        tasks.spawn(async move {
            let _ = work.await;
            drop(slot);
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// Runs the notifier's group until `shutdown`. Errors only when Kafka cannot be set up.
pub async fn run(
    settings: GroupSettings,
    notifier: Notifier,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let job = move |logged: &LoggedEvent, stop: CancellationToken| -> Option<Job> {
        let notice = Notice::of(logged)?;
        let notifier = notifier.clone();
        let heard = Instant::now();
        Some(Box::pin(async move {
            notifier.notify(notice, heard, &stop).await
        }))
    };
    run_jobs(settings, NOTIFIER, job, shutdown).await
}

/// Runs a group whose `job` is asked about each record as it is read (`None`: nothing to do
/// for it), until `shutdown`. Errors only when Kafka cannot be set up.
pub async fn run_jobs<F>(
    settings: GroupSettings,
    names: GroupMetrics,
    job: F,
    shutdown: CancellationToken,
) -> Result<(), String>
where
    F: Fn(&LoggedEvent, CancellationToken) -> Option<Job>,
{
    banter_bus::ensure_topics(&settings.kafka).await?;
    let topic = settings.kafka.topic.clone();
    let pending = Arc::new(Mutex::new(Pending::default()));
    let context = GroupContext {
        pending: pending.clone(),
        topic: topic.clone(),
        metrics: names,
    };
    let consumer: StreamConsumer<GroupContext> = settings
        .kafka
        .client()
        .set("group.id", &settings.group)
        .set("enable.auto.commit", "false")
        // A new group starts at the end: nobody wants pushes for last month's messages.
        .set("auto.offset.reset", "latest")
        .set("isolation.level", "read_committed")
        // As persist: a process that dies holds its partitions for at most this long.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "2000")
        .create_with_context(context)
        .map_err(|e| format!("Kafka consumer: {e}"))?;
    consumer
        .subscribe(&[&topic])
        .map_err(|e| format!("subscribing to {topic}: {e}"))?;
    tracing::info!(group = %settings.group, %topic, worker = names.name, "consumer group started");

    // The notifications' own stop: a clean stop lets sends in flight end first.
    let stop_sends = CancellationToken::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(i32, i64, bool)>();
    let mut running = 0usize;
    let mut tick = tokio::time::interval(settings.commit_every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let full = lock(&pending).in_flight() >= settings.max_in_flight;
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some((partition, offset, finished)) = done_rx.recv() => {
                running -= 1;
                if finished {
                    lock(&pending).done(partition, offset);
                }
            }
            _ = tick.tick() => {
                let commits = lock(&pending).commits();
                commit(&consumer, &topic, &commits, CommitMode::Async);
                // Tells tests (and dashboards) that what was done before now is committed.
                metrics::counter!(names.commit_rounds).increment(1);
            }
            record = consumer.recv(), if !full => {
                let record = match record {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading from Kafka");
                        continue;
                    }
                };
                let (partition, offset) = (record.partition(), record.offset());
                let work = Cursor::of_record(partition, offset)
                    .and_then(|cursor| {
                        Record::decode(record.payload().unwrap_or_default())
                            .ok()
                            .map(|event| event.at_cursor(cursor))
                    })
                    .and_then(|logged| job(&logged, stop_sends.clone()));
                let Some(work) = work else {
                    // Nothing to do for it (or not a room event at all: persist's dead
                    // letters deal with those).
                    lock(&pending).read(partition, offset, true);
                    continue;
                };
                lock(&pending).read(partition, offset, false);
                let done = done_tx.clone();
                running += 1;
                tokio::spawn(async move {
                    let finished = work.await;
                    let _ = done.send((partition, offset, finished));
                });
            }
        }
    }
    // Sends in flight are stopped, not given up: what they did not finish stays undone, so
    // it is not committed, and the partition's next owner sends it.
    stop_sends.cancel();
    let deadline = Instant::now() + Duration::from_secs(5);
    while running > 0 {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some((partition, offset, finished))) => {
                running -= 1;
                if finished {
                    lock(&pending).done(partition, offset);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    let last = lock(&pending).commits();
    commit(&consumer, &topic, &last, CommitMode::Sync);
    consumer.unsubscribe();
    tracing::info!(worker = names.name, "consumer group stopped");
    Ok(())
}

fn offsets_list(topic: &str, offsets: &[(i32, i64)]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for (partition, next) in offsets {
        let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*next));
    }
    list
}

fn commit<C: Consumer<GroupContext>>(
    consumer: &C,
    topic: &str,
    offsets: &[(i32, i64)],
    mode: CommitMode,
) {
    if offsets.is_empty() {
        return;
    }
    // Refused in the middle of a rebalance: sent again at the next round.
    if let Err(e) = consumer.commit(&offsets_list(topic, offsets), mode) {
        tracing::debug!(error = %e, "commit");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_committed_up_to_the_first_unfinished_one() {
        let mut p = Pending::default();
        p.read(0, 10, true);
        p.read(0, 11, false);
        p.read(0, 12, true);
        p.read(1, 5, false);
        assert_eq!(p.commits(), [(0, 11)]);
        assert_eq!(p.in_flight(), 2);
        p.done(1, 5);
        assert_eq!(p.commits(), [(0, 11), (1, 6)]);
        p.done(0, 11);
        assert_eq!(p.commits(), [(0, 13), (1, 6)], "and again each round");
        // Redelivered: an older offset does not move the commit point back.
        p.read(0, 12, true);
        assert_eq!(p.commits(), [(0, 13), (1, 6)]);
        // Taken away: committed as far as done, then forgotten.
        p.read(1, 6, false);
        assert_eq!(p.forget(&[1]), [(1, 6)]);
        assert_eq!(p.commits(), [(0, 13)]);
        assert_eq!(p.in_flight(), 0);
    }
}
