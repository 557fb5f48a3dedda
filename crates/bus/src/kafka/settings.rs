//! Where the Kafka bus lives and how it behaves: brokers, topic names, partitions, the send
//! timeout, and the client settings every banter Kafka client starts from (TLS included).

use std::time::Duration;

use rdkafka::config::ClientConfig;

/// Where the Kafka bus lives and how it behaves.
#[derive(Clone)]
pub struct KafkaSettings {
    /// `host:port,host:port`.
    pub brokers: String,
    /// The rooms' log (the seed's `chat-in`).
    pub topic: String,
    /// Typing and presence: not part of any room's log.
    pub events_topic: String,
    /// Partitions of the topics when banter creates them.
    pub partitions: i32,
    /// Replication factor of the topics when banter creates them.
    pub replication: i32,
    /// How long a send may wait for Kafka before the sender is told `unavailable`.
    pub send_timeout: Duration,
    /// Whether the bus's subscribers hear the rooms' log (gateways do); without it they hear
    /// typing and presence only (the notifier, which reads the log as a group of its own).
    pub hear_log: bool,
    /// How clients reach the brokers: librdkafka's `security.protocol` and `ssl.*` settings
    /// (TLS), given to every client banter makes.
    pub security: Vec<(String, String)>,
}

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `ssl.*` values may be secrets (a key's password): only their names are shown.
        let security: Vec<&str> = self.security.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("events_topic", &self.events_topic)
            .field("partitions", &self.partitions)
            .field("replication", &self.replication)
            .field("send_timeout", &self.send_timeout)
            .field("hear_log", &self.hear_log)
            .field("security", &security)
            .finish()
    }
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
            hear_log: true,
            security: Vec::new(),
        }
    }

    /// The settings every banter Kafka client starts from.
    pub fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        // Small produce and fetch requests are the chat's normal case: with Nagle on, each
        // waited for the previous one's TCP ack (tens of ms at low load, docs/benchmarks).
        config.set("socket.nagle.disable", "true");
        for (key, value) in &self.security {
            config.set(key, value);
        }
        config
    }
}
