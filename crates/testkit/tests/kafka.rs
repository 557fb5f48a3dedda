//! Proves the Kafka that `scripts/services` provisions is a working broker: a topic is
//! created (the broker never auto-creates), a message produced with acks=all is consumed back
//! by a consumer group.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

#[tokio::test]
async fn produces_and_consumes_through_the_test_broker() {
    let brokers = banter_testkit::kafka_brokers();
    let topic = format!("smoke-{}", uuid::Uuid::new_v4().simple());

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("admin client");
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 2, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create topics");
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let (partition, offset) = producer
        .send(
            FutureRecord::to(&topic)
                .key("general")
                .payload(r#"{"body":"hello"}"#),
            Duration::from_secs(30),
        )
        .await
        .expect("delivered");
    assert!(offset >= 0);

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set(
            "group.id",
            format!("smoke-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .expect("a message within a minute")
        .expect("consume");
    assert_eq!(message.partition(), partition);
    assert_eq!(message.offset(), offset);
    assert_eq!(message.key(), Some(&b"general"[..]));
    assert_eq!(message.payload(), Some(&br#"{"body":"hello"}"#[..]));

    let deleted = admin
        .delete_topics(&[&topic], &AdminOptions::new())
        .await
        .expect("delete topic");
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
}
