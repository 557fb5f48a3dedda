//! The Kafka bus: the log is the `chat-in` topic, keyed by room, so each room lives in one
//! partition and Kafka's order within a partition is the room's total order. An event's
//! cursor is its partition and offset.
//!
//! - `submit` produces with an idempotent producer and `acks=all`, and resolves only when
//!   every in-sync replica has the record: that is the sender's ack. If Kafka does not take
//!   it within `send_timeout`, the sender gets `Unavailable`, never an ack.
//! - Fan-out ([`consume`]): every process consumes every partition of `chat-in` and
//!   `chat-events`, so an event reaches its room's members on every gateway. Typing and
//!   presence travel on `chat-events`; every change of a room is on `chat-in`.
//! - Records ([`wire`]): one versioned format shared with persist.
//! - Topics ([`admin`]) are created by banter with the configured partition count.
//! - Re-sends ([`dedup`]): a re-sent `client_id` is answered with the first copy when it was
//!   heard lately or is persisted; a second copy that reached the log anyway is not fanned
//!   out, and persist keeps only the first: readers see it once.

mod admin;
mod consume;
mod dedup;
mod settings;
mod wire;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use banter_core::{Appended, ClientId, Cursor, LoggedEvent, RoomEvent, UserId};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use tokio::sync::mpsc;

pub use admin::{ensure_topic_names, ensure_topics, KafkaProbe};
pub use settings::KafkaSettings;
pub use wire::{Record, WireError};

use crate::{Bus, BusError, Event, FirstCopies, Receipt};
use dedup::{Lookups, ReadBack, Seen};
use wire::EventRecord;

/// How long an ack with a client id waits for this process to read its own record back.
const READ_BACK_WAIT: Duration = Duration::from_secs(2);

/// See the module docs. Cloning shares the producer and the subscribers.
#[derive(Clone)]
pub struct KafkaBus {
    producer: FutureProducer,
    settings: Arc<KafkaSettings>,
    /// Subscribers' channels; a std mutex held only to push or clone the list.
    subscribers: Arc<Mutex<Vec<mpsc::Sender<Event>>>>,
    /// Events with a client id heard lately, for re-sends not yet persisted.
    seen: Arc<Mutex<Seen>>,
    /// Re-sends older than `seen` keeps, from the store.
    lookups: Arc<Lookups>,
    /// How far this process has read the log, for acks that must know what came before.
    read_back: Arc<ReadBack>,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl KafkaBus {
    /// Creates the topics if needed, starts the producer and the fan-out consumer.
    /// `first_copies` answers re-sends older than what this process heard.
    pub async fn start(
        settings: KafkaSettings,
        first_copies: Arc<dyn FirstCopies>,
    ) -> Result<Self, String> {
        ensure_topics(&settings).await?;
        let producer: FutureProducer = settings
            .client()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            // Presence snapshots repeat room and user names: they shrink a lot.
            .set("compression.type", "lz4")
            .set(
                "message.timeout.ms",
                settings.send_timeout.as_millis().to_string(),
            )
            .create()
            .map_err(|e| format!("Kafka producer: {e}"))?;
        let subscribers = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let read_back = Arc::new(ReadBack::default());
        // Metadata and offset lookups block: keep them off the async workers.
        let consumer = {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || consume::fan_out_consumer(&settings))
                .await
                .map_err(|e| format!("Kafka consumer setup: {e}"))??
        };
        tokio::spawn(consume::consume(
            consumer,
            settings.clone(),
            subscribers.clone(),
            seen.clone(),
            read_back.clone(),
        ));
        Ok(Self {
            producer,
            settings: Arc::new(settings),
            subscribers,
            seen,
            lookups: Arc::new(Lookups::new(first_copies)),
            read_back,
        })
    }

    async fn produce(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> Result<(i32, i64), BusError> {
        delivered(self.enqueue(topic, key, payload).await?.await)
    }

    /// Puts a record on the producer's queue, waiting (at most `send_timeout`) while the
    /// queue is full. Records enqueued one after the other keep their order.
    async fn enqueue(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> Result<DeliveryFuture, BusError> {
        let deadline = tokio::time::Instant::now() + self.settings.send_timeout;
        let mut record = FutureRecord::to(topic).key(key).payload(payload);
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if tokio::time::Instant::now() < deadline =>
                {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(produce_failed(&e)),
            }
        }
    }
}

#[async_trait]
impl Bus for KafkaBus {
    /// Heard lately, or stored (when the store answers in time).
    async fn first_copy(
        &self,
        actor: UserId,
        client_id: &ClientId,
    ) -> Result<Option<LoggedEvent>, BusError> {
        let heard = lock(&self.seen).get(actor, client_id);
        Ok(match heard {
            Some(first) => Some(LoggedEvent::clone(&first)),
            None => self.lookups.persisted(actor, client_id).await,
        })
    }

    async fn submit(&self, event: RoomEvent) -> Result<Receipt, BusError> {
        if let Some(client_id) = event.client_id() {
            if let Some(first) = self.first_copy(event.actor_id(), client_id).await? {
                return Ok(Box::pin(async move { Ok(Appended::Duplicate(first)) }));
            }
        }
        let payload = serde_json::to_vec(&Record::of(&event)).map_err(|_| BusError::Unavailable)?;
        // Enqueued in librdkafka now, in call order; the idempotent producer keeps that order
        // within the partition through retries.
        let delivery = self
            .enqueue(&self.settings.topic, event.room().as_str(), &payload)
            .await?;
        let (read_back, seen) = (self.read_back.clone(), self.seen.clone());
        Ok(Box::pin(async move {
            let (partition, offset) = delivered(delivery.await)?;
            let cursor = Cursor::of_record(partition, offset).ok_or(BusError::Unavailable)?;
            if let Some(client_id) = event.client_id() {
                // A re-send can race an earlier copy into the log (its first gateway died
                // before acking). Once this process has read the log up to this record, what
                // it heard first is the copy readers see and persist keeps: answer with that.
                if !read_back.wait(partition, offset, READ_BACK_WAIT).await {
                    // The fan-out lags (Kafka just came back, say): whether an earlier copy
                    // is in the log is unknown, and an ack naming this one could name the
                    // copy persist drops. The record is safe in the log; `unavailable` makes
                    // the client send again, and that answer (from what this process has
                    // heard by then, or the store) names the copy that is kept. The cluster
                    // suite's Kafka-stop test caught the wrong ack.
                    metrics::counter!("banter_bus_read_back_timeouts_total").increment(1);
                    return Err(BusError::Unavailable);
                }
                let first = lock(&seen).get(event.actor_id(), client_id);
                if let Some(first) = first.filter(|f| f.event.id() != event.id()) {
                    return Ok(Appended::Duplicate(LoggedEvent::clone(&first)));
                }
            }
            Ok(Appended::New(event.at_cursor(cursor)))
        }))
    }

    async fn announce(&self, event: Event) -> Result<(), BusError> {
        // Room events are submitted to the log, not announced.
        let Some((record, key)) = EventRecord::of(&event) else {
            return Ok(());
        };
        let payload = serde_json::to_vec(&record).map_err(|_| BusError::Unavailable)?;
        self.produce(&self.settings.events_topic, &key, &payload)
            .await
            .map(|_| ())
    }

    fn subscribe(&self) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::channel(8192);
        lock(&self.subscribers).push(tx);
        rx
    }

    async fn flush(&self, timeout: Duration) {
        let producer = self.producer.clone();
        // rdkafka's flush blocks the calling thread until the queue is empty or time is up.
        let flushed = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "flushing the Kafka producer"),
            Err(e) => tracing::warn!(error = %e, "flushing the Kafka producer"),
        }
    }
}

/// The outcome of a delivery: the record's partition and offset once every in-sync replica
/// has it.
fn delivered(
    outcome: Result<OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
) -> Result<(i32, i64), BusError> {
    match outcome {
        Ok(Ok(place)) => Ok(place),
        Ok(Err((e, _))) => Err(produce_failed(&e)),
        // The producer is gone (shutting down).
        Err(_) => Err(BusError::Unavailable),
    }
}

fn produce_failed(e: &KafkaError) -> BusError {
    tracing::warn!(error = %e, "Kafka did not take a record");
    metrics::counter!("banter_kafka_produce_failures_total").increment(1);
    BusError::Unavailable
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
