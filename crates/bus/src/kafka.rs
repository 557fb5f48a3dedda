//! The Kafka bus: the log is the `chat-in` topic, keyed by room, so each room lives in one
//! partition and Kafka's order within a partition is the room's total order. A message's
//! cursor is its partition and offset.
//!
//! - `publish` produces with an idempotent producer and `acks=all`, and resolves only when
//!   every in-sync replica has the record: that is the sender's ack. If Kafka does not take
//!   it within `send_timeout`, the sender gets `Unavailable`, never an ack.
//! - Fan-out: every process consumes every partition of `chat-in` and `chat-events` from the
//!   end (manually assigned, no consumer group), so a message reaches its room's members on
//!   every gateway. Deletions and typing travel on `chat-events`.
//! - Topics are created by banter with the configured partition count, never by the broker.
//! - A re-sent `client_id` (a client retrying after a lost ack, maybe on another gateway) is
//!   answered with the first message when it is persisted or was heard lately ([`Seen`]);
//!   and a second copy that reached the log anyway (the retry raced the first copy's
//!   fan-out) is not fanned out, and persist keeps only the first: readers see it once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use banter_core::{ClientId, Cursor, Message, NewMessage, RoomName, UserId, Username};
use banter_store::{Appended, DynStore, LoggedMessage};
use chrono::{DateTime, Utc};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message as _;
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{
    BaseProducer, DeliveryFuture, FutureProducer, FutureRecord, Producer as _,
};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::{Bus, BusError, Event, NodeId, Presence, Receipt};

/// Where the Kafka bus lives and how it behaves.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `host:port,host:port`.
    pub brokers: String,
    /// The message log (the seed's `chat-in`).
    pub topic: String,
    /// Deletions and typing.
    pub events_topic: String,
    /// Partitions of the topics when banter creates them.
    pub partitions: i32,
    /// Replication factor of the topics when banter creates them.
    pub replication: i32,
    /// How long a send may wait for Kafka before the sender is told `unavailable`.
    pub send_timeout: Duration,
}

impl KafkaSettings {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: "chat-in".into(),
            events_topic: "chat-events".into(),
            partitions: 6,
            replication: 1,
            send_timeout: Duration::from_secs(10),
        }
    }

    fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        // Small produce and fetch requests are the chat's normal case: with Nagle on, each
        // waited for the previous one's TCP ack (tens of ms at low load, docs/benchmarks).
        config.set("socket.nagle.disable", "true");
        config
    }
}

/// A message as it sits on `chat-in`: the seed's fields (`id`, `room`, `author`, `body`,
/// `created_at`), so `kcat -C -t chat-in` shows what seed users expect, plus what banter needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: uuid::Uuid,
    pub room: String,
    pub author: String,
    pub author_id: i64,
    pub body: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl Record {
    fn of(m: &NewMessage) -> Self {
        Self {
            id: m.id,
            room: m.room.as_str().to_owned(),
            author: m.author.as_str().to_owned(),
            author_id: m.author_id.0,
            body: m.body.clone(),
            created_at: m.created_at,
            client_id: m.client_id.as_ref().map(|c| c.as_str().to_owned()),
        }
    }

    /// Validates a record read from the log into the message at `cursor`.
    pub fn into_logged(self, cursor: Cursor) -> Result<LoggedMessage, String> {
        let room = RoomName::parse(&self.room).map_err(|e| e.to_string())?;
        let author = Username::parse(&self.author).map_err(|e| e.to_string())?;
        let client_id = self
            .client_id
            .as_deref()
            .map(ClientId::parse)
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(LoggedMessage {
            message: Message {
                id: self.id,
                room,
                author,
                body: self.body,
                created_at: self.created_at,
                cursor,
                client_id,
            },
            author_id: UserId(self.author_id),
        })
    }
}

/// A record on `chat-events`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum EventRecord {
    Deleted {
        room: String,
        id: uuid::Uuid,
    },
    Typing {
        room: String,
        user: String,
    },
    Presence {
        node: NodeId,
        room: String,
        user: String,
        online: bool,
    },
    PresenceSnapshot {
        node: NodeId,
        online: Vec<(String, Vec<String>)>,
    },
    PresenceHello {
        node: NodeId,
    },
    PresenceGone {
        node: NodeId,
    },
}

impl EventRecord {
    /// The record of an event, and its key: the room, or for presence the gateway, so that
    /// one gateway's presence news stay in order.
    fn of(event: &Event) -> Option<(Self, String)> {
        let name = |n: &Username| n.as_str().to_owned();
        Some(match event {
            Event::Message(_) => return None,
            Event::Deleted { room, id } => (
                Self::Deleted {
                    room: room.as_str().to_owned(),
                    id: *id,
                },
                room.as_str().to_owned(),
            ),
            Event::Typing { room, user } => (
                Self::Typing {
                    room: room.as_str().to_owned(),
                    user: name(user),
                },
                room.as_str().to_owned(),
            ),
            Event::Presence(p) => {
                let record = match p {
                    Presence::Changed {
                        node,
                        room,
                        user,
                        online,
                    } => Self::Presence {
                        node: *node,
                        room: room.as_str().to_owned(),
                        user: name(user),
                        online: *online,
                    },
                    Presence::Snapshot { node, online } => Self::PresenceSnapshot {
                        node: *node,
                        online: online
                            .iter()
                            .map(|(room, users)| {
                                (room.as_str().to_owned(), users.iter().map(name).collect())
                            })
                            .collect(),
                    },
                    Presence::Hello { node } => Self::PresenceHello { node: *node },
                    Presence::Gone { node } => Self::PresenceGone { node: *node },
                };
                (record, p.node().to_string())
            }
        })
    }

    fn into_event(self) -> Result<Event, String> {
        let room = |r: &str| RoomName::parse(r).map_err(|e| e.to_string());
        let user = |u: &str| Username::parse(u).map_err(|e| e.to_string());
        Ok(match self {
            Self::Deleted { room: r, id } => Event::Deleted {
                room: room(&r)?,
                id,
            },
            Self::Typing { room: r, user: u } => Event::Typing {
                room: room(&r)?,
                user: user(&u)?,
            },
            Self::Presence {
                node,
                room: r,
                user: u,
                online,
            } => Event::Presence(Presence::Changed {
                node,
                room: room(&r)?,
                user: user(&u)?,
                online,
            }),
            Self::PresenceSnapshot { node, online } => Event::Presence(Presence::Snapshot {
                node,
                online: online
                    .iter()
                    .map(|(r, users)| {
                        Ok((
                            room(r)?,
                            users.iter().map(|u| user(u)).collect::<Result<_, _>>()?,
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            }),
            Self::PresenceHello { node } => Event::Presence(Presence::Hello { node }),
            Self::PresenceGone { node } => Event::Presence(Presence::Gone { node }),
        })
    }
}

/// Asks Kafka for the log topic's metadata: the readiness check of processes that need Kafka.
/// One client, made once, serves every check.
#[derive(Clone)]
pub struct KafkaProbe {
    client: Arc<BaseProducer>,
    topic: String,
}

impl std::fmt::Debug for KafkaProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProbe")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaProbe {
    pub fn new(settings: &KafkaSettings) -> Result<Self, String> {
        let client: BaseProducer = settings
            .client()
            .create()
            .map_err(|e| format!("Kafka client: {e}"))?;
        Ok(Self {
            client: Arc::new(client),
            topic: settings.topic.clone(),
        })
    }

    /// `Ok` when a broker answered a metadata request for the log topic within `timeout`.
    pub async fn check(&self, timeout: Duration) -> Result<(), String> {
        let probe = self.clone();
        tokio::task::spawn_blocking(move || {
            let metadata = probe
                .client
                .client()
                .fetch_metadata(Some(&probe.topic), timeout)
                .map_err(|e| e.to_string())?;
            match metadata.topics().first() {
                Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
                _ => Err(format!("topic {} is not available", probe.topic)),
            }
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// Creates the bus's topics if they do not exist yet.
pub async fn ensure_topics(settings: &KafkaSettings) -> Result<(), String> {
    ensure_topic_names(settings, &[&settings.topic, &settings.events_topic]).await
}

/// Creates the named topics, with the bus's partition count and replication, if they do not
/// exist yet.
pub async fn ensure_topic_names(settings: &KafkaSettings, names: &[&str]) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = settings
        .client()
        .create()
        .map_err(|e| format!("Kafka admin client: {e}"))?;
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                settings.partitions,
                TopicReplication::Fixed(settings.replication),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .map_err(|e| format!("creating Kafka topics: {e}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(format!("creating Kafka topic {topic}: {code}")),
        }
    }
    Ok(())
}

/// See the module docs. Cloning shares the producer and the subscribers.
#[derive(Clone)]
pub struct KafkaBus {
    producer: FutureProducer,
    settings: Arc<KafkaSettings>,
    /// Answers re-sent client ids from what is already persisted.
    store: DynStore,
    /// Subscribers' channels; a std mutex held only to push or clone the list.
    subscribers: Arc<Mutex<Vec<mpsc::Sender<Event>>>>,
    /// Messages with a client id heard lately, for re-sends not yet persisted.
    seen: Arc<Mutex<Seen>>,
    /// Set when a re-send lookup failed: until then, none is tried.
    lookups_off_until: Arc<Mutex<Option<Instant>>>,
    /// How far this process has read the log, for acks that must know what came before.
    read_back: Arc<ReadBack>,
}

/// How long an ack with a client id waits for this process to read its own record back.
const READ_BACK_WAIT: Duration = Duration::from_secs(2);

/// Per partition of the log, the last offset this process's fan-out has read, so an ack can
/// wait until everything before its record is known (see [`KafkaBus::submit`]).
#[derive(Debug, Default)]
struct ReadBack {
    upto: Mutex<HashMap<i32, i64>>,
    notify: tokio::sync::Notify,
}

impl ReadBack {
    fn advance(&self, partition: i32, offset: i64) {
        lock(&self.upto).insert(partition, offset);
        self.notify.notify_waiters();
    }

    /// Resolves `true` once `offset` of `partition` has been read, `false` after `max`.
    async fn wait(&self, partition: i32, offset: i64, max: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            // Registered before the check, so an advance in between is not missed.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&self.upto)
                .get(&partition)
                .is_some_and(|u| *u >= offset)
            {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

/// How long, and how many, messages with a client id are remembered by [`Seen`].
const SEEN_KEEP: Duration = Duration::from_secs(300);
const SEEN_CAP: usize = 200_000;
/// How long a send waits for the database to say whether it is a re-send.
const DEDUP_LOOKUP_TIMEOUT: Duration = Duration::from_millis(250);
/// How long such lookups are skipped after one failed.
const DEDUP_LOOKUP_PAUSE: Duration = Duration::from_secs(2);

/// The messages with a client id this process heard on the log lately, by (author, client
/// id): the first copy of each. Bounded in time and count.
#[derive(Debug, Default)]
struct Seen {
    first: HashMap<(i64, String), Arc<Message>>,
    order: VecDeque<(Instant, (i64, String))>,
}

impl Seen {
    fn get(&self, author: UserId, client_id: &ClientId) -> Option<Arc<Message>> {
        self.first
            .get(&(author.0, client_id.as_str().to_owned()))
            .cloned()
    }

    /// Remembers `message` unless an earlier copy is known; returns whether it is the first.
    fn first_copy(&mut self, author: UserId, message: &Arc<Message>) -> bool {
        let Some(client_id) = &message.client_id else {
            return true;
        };
        let now = Instant::now();
        while self.order.len() >= SEEN_CAP
            || self
                .order
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > SEEN_KEEP)
        {
            if let Some((_, key)) = self.order.pop_front() {
                self.first.remove(&key);
            }
        }
        let key = (author.0, client_id.as_str().to_owned());
        match self.first.get(&key) {
            Some(first) => first.id == message.id,
            None => {
                self.first.insert(key.clone(), message.clone());
                self.order.push_back((now, key));
                true
            }
        }
    }
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
    pub async fn start(settings: KafkaSettings, store: DynStore) -> Result<Self, String> {
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
            tokio::task::spawn_blocking(move || fan_out_consumer(&settings))
                .await
                .map_err(|e| format!("Kafka consumer setup: {e}"))??
        };
        tokio::spawn(consume(
            consumer,
            settings.clone(),
            subscribers.clone(),
            seen.clone(),
            read_back.clone(),
        ));
        Ok(Self {
            producer,
            settings: Arc::new(settings),
            store,
            subscribers,
            seen,
            lookups_off_until: Arc::new(Mutex::new(None)),
            read_back,
        })
    }

    /// The persisted first copy of a re-send older than what [`Seen`] keeps. Kafka is the
    /// log, so sends go on while the database is down or slow: then only [`Seen`] answers.
    /// After a failed lookup, the next ones are skipped for a while (a circuit breaker),
    /// so that sends do not each wait out the timeout while the database is down.
    async fn persisted(&self, author: UserId, client_id: &ClientId) -> Option<Message> {
        if lock(&self.lookups_off_until).is_some_and(|until| Instant::now() < until) {
            metrics::counter!("banter_kafka_dedup_lookups_skipped_total").increment(1);
            return None;
        }
        let lookup = self.store.message_by_client_id(author, client_id);
        let failure = match tokio::time::timeout(DEDUP_LOOKUP_TIMEOUT, lookup).await {
            Ok(Ok(first)) => return first,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        tracing::warn!(
            error = %failure,
            "re-send checks against the database paused for {DEDUP_LOOKUP_PAUSE:?}"
        );
        *lock(&self.lookups_off_until) = Some(Instant::now() + DEDUP_LOOKUP_PAUSE);
        metrics::counter!("banter_kafka_dedup_lookups_skipped_total").increment(1);
        None
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
    async fn submit(&self, message: NewMessage) -> Result<Receipt, BusError> {
        if let Some(client_id) = &message.client_id {
            let heard = lock(&self.seen).get(message.author_id, client_id);
            let first = match heard {
                Some(first) => Some(Message::clone(&first)),
                None => self.persisted(message.author_id, client_id).await,
            };
            if let Some(first) = first {
                return Ok(Box::pin(async move { Ok(Appended::Duplicate(first)) }));
            }
        }
        let payload =
            serde_json::to_vec(&Record::of(&message)).map_err(|_| BusError::Unavailable)?;
        // Enqueued in librdkafka now, in call order; the idempotent producer keeps that order
        // within the partition through retries.
        let delivery = self
            .enqueue(&self.settings.topic, message.room.as_str(), &payload)
            .await?;
        let (read_back, seen) = (self.read_back.clone(), self.seen.clone());
        Ok(Box::pin(async move {
            let (partition, offset) = delivered(delivery.await)?;
            let cursor = Cursor::of_record(partition, offset).ok_or(BusError::Unavailable)?;
            if let Some(client_id) = &message.client_id {
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
                let first = lock(&seen).get(message.author_id, client_id);
                if let Some(first) = first.filter(|f| f.id != message.id) {
                    return Ok(Appended::Duplicate(Message::clone(&first)));
                }
            }
            Ok(Appended::New(message.at(cursor)))
        }))
    }

    async fn announce(&self, event: Event) -> Result<(), BusError> {
        // Messages are published, not announced.
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
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(tx);
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

/// A consumer assigned every partition of both topics, from their current end. A topic that
/// was just created may not have its partitions' leaders yet: this waits (30 s at most).
fn fan_out_consumer(settings: &KafkaSettings) -> Result<StreamConsumer, String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match try_fan_out_consumer(settings) {
            Ok(consumer) => return Ok(consumer),
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "Kafka topics not ready yet");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    }
}

fn try_fan_out_consumer(settings: &KafkaSettings) -> Result<StreamConsumer, String> {
    let consumer: StreamConsumer = settings
        .client()
        // librdkafka wants a group id even for manual assignment; nothing is committed.
        .set(
            "group.id",
            format!("banter-fanout-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(|e| format!("Kafka consumer: {e}"))?;
    let mut assignment = TopicPartitionList::new();
    for topic in [&settings.topic, &settings.events_topic] {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|e| format!("Kafka metadata of {topic}: {e}"))?;
        let partitions = metadata
            .topics()
            .first()
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        if partitions == 0 {
            return Err(format!("Kafka topic {topic} has no partitions yet"));
        }
        for p in 0..partitions {
            let p = i32::try_from(p).map_err(|e| e.to_string())?;
            // The end is resolved now, not when fetching starts: whatever is produced after
            // `start` returns is then certain to be heard.
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map_err(|e| format!("Kafka offsets of {topic}/{p}: {e}"))?;
            assignment
                .add_partition_offset(topic, p, Offset::Offset(high))
                .map_err(|e| e.to_string())?;
        }
    }
    consumer
        .assign(&assignment)
        .map_err(|e| format!("Kafka assign: {e}"))?;
    Ok(consumer)
}

async fn consume(
    consumer: StreamConsumer,
    settings: KafkaSettings,
    subscribers: Arc<Mutex<Vec<mpsc::Sender<Event>>>>,
    seen: Arc<Mutex<Seen>>,
    read_back: Arc<ReadBack>,
) {
    loop {
        let record = match consumer.recv().await {
            Ok(record) => record,
            Err(e) => {
                // librdkafka retries by itself; this only reports (e.g. a broker went away).
                tracing::warn!(error = %e, "Kafka fan-out consumer");
                continue;
            }
        };
        let payload = record.payload().unwrap_or_default();
        let on_log = record.topic() == settings.topic;
        let event = if on_log {
            let Some(cursor) = Cursor::of_record(record.partition(), record.offset()) else {
                continue;
            };
            serde_json::from_slice::<Record>(payload)
                .map_err(|e| e.to_string())
                .and_then(|r| r.into_logged(cursor))
                .map(|logged| {
                    let message = Arc::new(logged.message);
                    lock(&seen)
                        .first_copy(logged.author_id, &message)
                        .then_some(Event::Message(message))
                })
        } else {
            serde_json::from_slice::<EventRecord>(payload)
                .map_err(|e| e.to_string())
                .and_then(EventRecord::into_event)
                .map(Some)
        };
        if on_log {
            // After `seen` has the record: an ack waiting on it then finds the first copy.
            read_back.advance(record.partition(), record.offset());
        }
        let event = match event {
            Ok(Some(event)) => Ok(event),
            Ok(None) => {
                metrics::counter!("banter_kafka_duplicates_skipped_total").increment(1);
                continue;
            }
            Err(e) => Err(e),
        };
        match event {
            Ok(event) => crate::deliver(&subscribers, vec![event]).await,
            Err(reason) => {
                metrics::counter!("banter_kafka_bad_records_total").increment(1);
                tracing::warn!(topic = record.topic(), partition = record.partition(), offset = record.offset(), %reason, "skipping a record that is not a banter message");
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
