//! Topics and readiness: banter creates its topics with the configured partition count (never
//! the broker's defaults), and asks for the log topic's metadata to say whether Kafka is up.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, Producer as _};

use super::KafkaSettings;

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
