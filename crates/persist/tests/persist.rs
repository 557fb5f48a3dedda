//! The persist worker on the real Kafka and PostgreSQL: every message stored once, however
//! often it is delivered; records that are not messages go to the dead-letter topic.

use std::time::Duration;

use banter_bus::{Bus, KafkaBus, KafkaSettings};
use banter_core::{Appended, LoggedEvent, Message, NewMessage, RoomEvent, RoomName, Username};
use banter_persist::PersistSettings;
use banter_store::DynStore;
use banter_testkit::TestDb;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

fn settings() -> PersistSettings {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let mut kafka = KafkaSettings::new(banter_testkit::kafka_brokers());
    kafka.topic = format!("chat-in-{tag}");
    kafka.events_topic = format!("chat-events-{tag}");
    kafka.partitions = 3;
    let mut s = PersistSettings::new(kafka);
    s.group = format!("persist-{tag}");
    s.dlq_topic = format!("chat-dlq-{tag}");
    s
}

/// The messages of `room` the store holds, in log order.
async fn stored(store: &DynStore, room: &RoomName) -> Vec<Message> {
    store
        .events_after(room, None, 10_000)
        .await
        .expect("read")
        .iter()
        .filter_map(LoggedEvent::message)
        .collect()
}

fn message(user: &banter_core::User, room: &RoomName, body: &str) -> RoomEvent {
    RoomEvent::Message(NewMessage {
        id: uuid::Uuid::now_v7(),
        room: room.clone(),
        author_id: user.id,
        author: user.username.clone(),
        body: body.into(),
        created_at: banter_store::now(),
        client_id: None,
        reply_to: None,
        thread_root: None,
        mentions: Vec::new(),
        attachments: Vec::new(),
        bot: None,
    })
}

async fn publish(bus: &KafkaBus, event: RoomEvent) -> LoggedEvent {
    match bus.publish(event).await.expect("published") {
        Appended::New(logged) => logged,
        other => panic!("not new: {other:?}"),
    }
}

/// Waits (bounded) until the store holds `n` messages across `rooms`.
async fn wait_for_rows(store: &DynStore, rooms: &[RoomName], n: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut count = 0;
        for room in rooms {
            count += stored(store, room).await.len();
        }
        if count >= n || tokio::time::Instant::now() > deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_message_is_stored_once_even_when_delivered_twice() {
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let user = store
        .create_user(
            &Username::parse("alice").expect("name"),
            "h",
            banter_store::now(),
        )
        .await
        .expect("user");
    let settings = settings();
    let bus = KafkaBus::start(
        settings.kafka.clone(),
        banter_testkit::StorePorts::first_copies(&store),
    )
    .await
    .expect("bus");
    let rooms: Vec<RoomName> = (0..4)
        .map(|r| RoomName::parse(&format!("r{r}")).expect("room"))
        .collect();
    let mut sent = Vec::new();
    for i in 0..200 {
        let m = publish(&bus, message(&user, &rooms[i % 4], &format!("m{i}"))).await;
        sent.push(m.message().expect("a message"));
    }

    let stop = CancellationToken::new();
    let worker = tokio::spawn(banter_persist::run(
        settings.clone(),
        store.clone(),
        stop.clone(),
    ));
    assert_eq!(wait_for_rows(&store, &rooms, 200).await, 200);
    stop.cancel();
    worker.await.expect("join").expect("worker");

    // A second group reads everything again: nothing new is stored.
    let mut again = settings.clone();
    again.group = format!("{}-again", settings.group);
    let stop = CancellationToken::new();
    let worker = tokio::spawn(banter_persist::run(again, store.clone(), stop.clone()));
    // A marker published after the replay started is stored once the replay is through.
    let marker = publish(&bus, message(&user, &rooms[0], "marker"))
        .await
        .message()
        .expect("a message");
    assert_eq!(wait_for_rows(&store, &rooms, 201).await, 201);
    stop.cancel();
    worker.await.expect("join").expect("worker");

    for room in &rooms {
        let stored = stored(&store, room).await;
        let expected: Vec<_> = sent
            .iter()
            .chain(std::iter::once(&marker))
            .filter(|m| &m.room == room)
            .cloned()
            .collect();
        assert_eq!(
            stored, expected,
            "{room}: exactly the sent messages, in log order"
        );
    }
    store.close().await;
}

#[tokio::test]
async fn records_that_are_not_messages_go_to_the_dead_letter_topic() {
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let settings = settings();
    banter_bus::ensure_topics(&settings.kafka)
        .await
        .expect("topics");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &settings.kafka.brokers)
        .create()
        .expect("producer");
    // Not JSON, not an event, and a version this build does not know.
    let future = r#"{"v":9,"id":"0190b6c4-5f6e-7a8b-9c0d-1e2f3a4b5c6d","room":"general","author":"a","author_id":1,"created_at":"2026-11-01T10:00:00Z"}"#;
    for payload in ["not json", r#"{"id":"x"}"#, future] {
        producer
            .send(
                FutureRecord::to(&settings.kafka.topic)
                    .key("general")
                    .payload(payload),
                Duration::from_secs(10),
            )
            .await
            .expect("produce");
    }
    // A well-formed message whose author does not exist cannot be stored either.
    let ghost = banter_core::User {
        id: banter_core::UserId(424_242),
        username: Username::parse("ghost").expect("name"),
        created_at: banter_store::now(),
    };
    let orphan = banter_bus::Record::of(&message(
        &ghost,
        &RoomName::parse("general").expect("room"),
        "boo",
    ));
    let orphan = serde_json::to_vec(&orphan).expect("json");
    producer
        .send(
            FutureRecord::to(&settings.kafka.topic)
                .key("general")
                .payload(&orphan),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");

    let stop = CancellationToken::new();
    let worker = tokio::spawn(banter_persist::run(
        settings.clone(),
        store.clone(),
        stop.clone(),
    ));
    let dlq: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &settings.kafka.brokers)
        .set("group.id", format!("{}-dlq-reader", settings.group))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    // The worker creates the dead-letter topic; subscribing before it exists is fine.
    dlq.subscribe(&[&settings.dlq_topic]).expect("subscribe");
    let mut reasons = Vec::new();
    while reasons.len() < 4 {
        let m = tokio::time::timeout(Duration::from_secs(60), dlq.recv())
            .await
            .expect("a dead letter within 60 s");
        let Ok(m) = m else { continue };
        let reason = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "reason"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .expect("a reason header");
        reasons.push(reason);
    }
    assert!(reasons[0].contains("not a banter record"), "{reasons:?}");
    assert!(reasons[1].contains("not a banter record"), "{reasons:?}");
    assert!(reasons[2].contains("version 9"), "{reasons:?}");
    assert!(!reasons[3].is_empty());
    stop.cancel();
    worker.await.expect("join").expect("worker");
    let general = RoomName::parse("general").expect("room");
    assert!(stored(&store, &general).await.is_empty());
    store.close().await;
}
