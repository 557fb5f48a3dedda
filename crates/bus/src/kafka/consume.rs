//! The fan-out consumer: every process reads every partition of `chat-in` and `chat-events`
//! from the end (manually assigned, no consumer group, nothing committed), and hands what it
//! reads to its subscribers in log order. A room event whose client id was heard before (a
//! re-send that raced its first copy into the log) is not handed on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use banter_core::Cursor;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::dedup::{ReadBack, Seen};
use super::wire::{EventRecord, Record};
use super::{lock, KafkaSettings};
use crate::Event;

/// A consumer assigned every partition of both topics, from their current end. A topic that
/// was just created may not have its partitions' leaders yet: this waits (30 s at most).
pub(super) fn fan_out_consumer(settings: &KafkaSettings) -> Result<StreamConsumer, String> {
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
    let topics = if settings.hear_log {
        vec![&settings.topic, &settings.events_topic]
    } else {
        vec![&settings.events_topic]
    };
    for topic in topics {
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

/// Reads both topics for ever, handing each event to the subscribers.
pub(super) async fn consume(
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
            Record::decode(payload)
                .map_err(|e| e.to_string())
                .map(|event| {
                    let logged = Arc::new(event.at_cursor(cursor));
                    lock(&seen)
                        .first_copy(&logged)
                        .then_some(Event::Room(logged))
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
        match event {
            Ok(Some(event)) => crate::deliver(&subscribers, vec![event]).await,
            Ok(None) => {
                metrics::counter!("banter_kafka_duplicates_skipped_total").increment(1);
            }
            Err(reason) => {
                metrics::counter!("banter_kafka_bad_records_total").increment(1);
                tracing::warn!(topic = record.topic(), partition = record.partition(), offset = record.offset(), %reason, "skipping a record that is not a banter event");
            }
        }
    }
}
