//! The persist worker: reads `chat-in` as a consumer group and applies every room event
//! (messages, edits, deletes, reactions) to the store, exactly once, in log order: the same
//! projection (`Store::apply_logged`) the local log of `banter serve` applies.
//!
//! - Batches by size and by time: it takes what Kafka has, up to `batch_size`, waiting at
//!   most `batch_wait` for more once it has one. One batch is read while the one before is
//!   stored.
//! - Idempotent writes (`Store::apply_logged`): a redelivered event (after a crash, a
//!   rebalance, or another worker's retry) changes nothing the second time.
//! - Offsets are committed only after the database transaction committed, so a crash at any
//!   point redelivers at worst, and never skips.
//! - A record that can never be stored (not a banter event, a version this build does not
//!   know, an unknown author) goes to the dead-letter topic with the reason, instead of
//!   blocking its partition forever.
//! - While the database is down it retries with backoff, without committing; it carries on by
//!   itself when the database is back.
//! - On shutdown it finishes the batch in hand, commits, and leaves the group.
//!
//! Any number of workers share the partitions through the group.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use banter_bus::{KafkaSettings, Record};
use banter_core::{Cursor, LoggedEvent};
use banter_store::{DynStore, StoreError};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

/// Settings of the persist worker.
#[derive(Debug, Clone)]
pub struct PersistSettings {
    pub kafka: KafkaSettings,
    /// The consumer group (the seed's `KAFKA_CONSUMER_GROUP`, `persist-svc`).
    pub group: String,
    /// Where records that cannot be stored go (the seed's `KAFKA_DLQ_TOPIC`, `chat-dlq`).
    pub dlq_topic: String,
    /// Most events applied in one transaction.
    pub batch_size: usize,
    /// How long a started batch waits for more events.
    pub batch_wait: Duration,
}

impl PersistSettings {
    pub fn new(kafka: KafkaSettings) -> Self {
        Self {
            kafka,
            group: "persist-svc".into(),
            dlq_topic: "chat-dlq".into(),
            batch_size: 5000,
            batch_wait: Duration::from_millis(20),
        }
    }
}

/// A record read from Kafka, decoded or not.
struct Read {
    topic: String,
    partition: i32,
    offset: i64,
    payload: Vec<u8>,
    decoded: Result<LoggedEvent, String>,
}

fn read(record: &BorrowedMessage<'_>) -> Read {
    let payload = record.payload().unwrap_or_default().to_vec();
    let decoded = match Cursor::of_record(record.partition(), record.offset()) {
        Some(cursor) => Record::decode(&payload)
            .map(|event| event.at_cursor(cursor))
            .map_err(|e| e.to_string()),
        None => Err("impossible partition or offset".into()),
    };
    Read {
        topic: record.topic().to_owned(),
        partition: record.partition(),
        offset: record.offset(),
        payload,
        decoded,
    }
}

/// Runs the worker until `shutdown` is cancelled. Errors only when Kafka cannot be set up.
pub async fn run(
    settings: PersistSettings,
    store: DynStore,
    shutdown: CancellationToken,
) -> Result<(), String> {
    banter_bus::ensure_topics(&settings.kafka).await?;
    banter_bus::ensure_topic_names(&settings.kafka, &[&settings.dlq_topic]).await?;
    let consumer: Arc<StreamConsumer> = settings
        .kafka
        .client()
        .set("group.id", &settings.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        // A worker that dies without leaving the group holds its partitions until its session
        // times out: 10 s (librdkafka's default is 45 s) bounds that pause.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "2000")
        .create()
        .map(Arc::new)
        .map_err(|e| format!("Kafka consumer: {e}"))?;
    consumer
        .subscribe(&[&settings.kafka.topic])
        .map_err(|e| format!("subscribing to {}: {e}", settings.kafka.topic))?;
    let dlq: FutureProducer = settings
        .kafka
        .client()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .map_err(|e| format!("Kafka producer: {e}"))?;
    tracing::info!(group = %settings.group, topic = %settings.kafka.topic, "persist worker started");

    // A pipeline of two: while one batch is stored and committed, the next is read and
    // decoded, so Kafka and the database work at the same time (docs/benchmarks).
    let mut batch = read_batch(&consumer, &settings, &shutdown).await;
    while let Some(current) = batch {
        let store_and_commit = async {
            let stored = store_batch(&settings, &store, &dlq, &current, &shutdown).await;
            if stored {
                commit(&consumer, &current).await;
            }
            stored
        };
        let (stored, next) = tokio::join!(
            store_and_commit,
            read_batch(&consumer, &settings, &shutdown)
        );
        if !stored {
            // Shutting down with the batch unstored: not committed, so it is redelivered
            // (like the next one, read meanwhile).
            break;
        }
        batch = next;
    }
    consumer.unsubscribe();
    tracing::info!("persist worker stopped");
    Ok(())
}

/// Reads the next batch: waits for a first record (or shutdown: `None`), then takes what
/// else Kafka has, up to `batch_size`, for at most `batch_wait`.
async fn read_batch(
    consumer: &StreamConsumer,
    settings: &PersistSettings,
    shutdown: &CancellationToken,
) -> Option<Vec<Read>> {
    let first = loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return None,
            r = consumer.recv() => r,
        };
        match next {
            Ok(m) => break read(&m),
            Err(e) => tracing::warn!(error = %e, "reading from Kafka"),
        }
    };
    let mut batch = Vec::with_capacity(settings.batch_size.min(1024));
    batch.push(first);
    let deadline = tokio::time::Instant::now() + settings.batch_wait;
    while batch.len() < settings.batch_size {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => batch.push(read(&m)),
            Ok(Err(e)) => tracing::warn!(error = %e, "reading from Kafka"),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Stores a batch; returns false if shutdown came before the database took it.
async fn store_batch(
    settings: &PersistSettings,
    store: &DynStore,
    dlq: &FutureProducer,
    batch: &[Read],
    shutdown: &CancellationToken,
) -> bool {
    let mut good = Vec::with_capacity(batch.len());
    for r in batch {
        match &r.decoded {
            Ok(logged) => good.push(logged.clone()),
            Err(reason) => dead_letter(settings, dlq, r, reason).await,
        }
    }
    match insert_when_available(store, &good, shutdown).await {
        None => false,
        Some(Ok(applied)) => {
            metrics::counter!("banter_persist_messages_total").increment(applied);
            metrics::counter!("banter_persist_redelivered_total")
                .increment((good.len() as u64).saturating_sub(applied));
            true
        }
        Some(Err(e)) => {
            // One bad event fails the whole transaction: apply them one by one, in order, and
            // send the ones that fail on their own to the dead-letter topic.
            tracing::warn!(error = %e, "batch refused; applying its events one by one");
            for r in batch {
                let Ok(logged) = &r.decoded else { continue };
                match insert_when_available(store, std::slice::from_ref(logged), shutdown).await {
                    None => return false,
                    Some(Ok(inserted)) => {
                        metrics::counter!("banter_persist_messages_total").increment(inserted);
                    }
                    Some(Err(e)) => dead_letter(settings, dlq, r, &e.to_string()).await,
                }
            }
            true
        }
    }
}

/// Applies, retrying with backoff while the database is unavailable. `None` when shutdown
/// came first; otherwise the database's answer.
async fn insert_when_available(
    store: &DynStore,
    events: &[LoggedEvent],
    shutdown: &CancellationToken,
) -> Option<Result<u64, StoreError>> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match store.apply_logged(events).await {
            Err(StoreError::Unavailable(e)) => {
                metrics::counter!("banter_persist_retries_total").increment(1);
                tracing::warn!(error = %e, retry_in = ?backoff, "database unavailable; retrying");
            }
            answer => return Some(answer),
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Sends a record to the dead-letter topic with why, and where it came from, as headers.
/// Retries until Kafka takes it: dropping it would lose an event silently.
async fn dead_letter(settings: &PersistSettings, dlq: &FutureProducer, r: &Read, reason: &str) {
    metrics::counter!("banter_persist_dead_letters_total").increment(1);
    tracing::warn!(topic = %r.topic, partition = r.partition, offset = r.offset, %reason, "to the dead-letter topic");
    let partition = r.partition.to_string();
    let offset = r.offset.to_string();
    loop {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "reason",
                value: Some(reason),
            })
            .insert(Header {
                key: "source_topic",
                value: Some(r.topic.as_str()),
            })
            .insert(Header {
                key: "source_partition",
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: "source_offset",
                value: Some(offset.as_str()),
            });
        let record = FutureRecord::to(&settings.dlq_topic)
            .key(&r.topic)
            .payload(&r.payload)
            .headers(headers);
        match dlq.send(record, Duration::from_secs(10)).await {
            Ok(_) => return,
            Err((e, _)) => tracing::warn!(error = %e, "dead-letter topic unavailable; retrying"),
        }
    }
}

/// Commits, per partition, the offset after the last record of the batch. Synchronously (on
/// a blocking thread): the next batch is stored only once these offsets are safe, so a crash
/// redelivers at most the batch in hand and the one read beside it (harmless: inserts are
/// idempotent).
async fn commit(consumer: &Arc<StreamConsumer>, batch: &[Read]) {
    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    for r in batch {
        let e = next.entry((r.topic.as_str(), r.partition)).or_insert(0);
        *e = (*e).max(r.offset + 1);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        if list
            .add_partition_offset(topic, partition, Offset::Offset(offset))
            .is_err()
        {
            return;
        }
    }
    let consumer = consumer.clone();
    let done = tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync)).await;
    // A partition may have moved to another worker meanwhile: then this commit fails for it,
    // the new owner redelivers, and the idempotent insert makes that harmless.
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "committing offsets"),
        Err(e) => tracing::warn!(error = %e, "committing offsets"),
    }
}
