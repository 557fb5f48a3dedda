//! The Kafka bus on the real broker that `scripts/services` provisions: what one process
//! publishes, every process hears, in the log's order, with the ack's cursor.

use std::time::Duration;

use banter_bus::{Bus, Event, KafkaBus, KafkaSettings};
use banter_core::{ClientId, NewMessage, RoomName, UserId, Username};
use banter_store::Appended;
use banter_testkit::TestDb;
use tokio::sync::mpsc;

fn settings() -> KafkaSettings {
    // Topics of its own, so tests never see each other's records.
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let mut s = KafkaSettings::new(banter_testkit::kafka_brokers());
    s.topic = format!("chat-in-{tag}");
    s.events_topic = format!("chat-events-{tag}");
    s.partitions = 3;
    s
}

fn message(room: &str, body: &str, client_id: Option<&str>) -> NewMessage {
    NewMessage {
        id: uuid::Uuid::now_v7(),
        room: RoomName::parse(room).expect("room"),
        author_id: UserId(1),
        author: Username::parse("alice").expect("name"),
        body: body.into(),
        created_at: banter_store::now(),
        client_id: client_id.map(|c| ClientId::parse(c).expect("client id")),
    }
}

async fn next(rx: &mut mpsc::Receiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("an event within 30 s")
        .expect("the bus is open")
}

#[tokio::test]
async fn what_one_process_publishes_every_process_hears_in_order() {
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let settings = settings();
    let a = KafkaBus::start(settings.clone(), store.clone())
        .await
        .expect("bus a");
    let b = KafkaBus::start(settings, store.clone())
        .await
        .expect("bus b");
    let mut at_a = a.subscribe();
    let mut at_b = b.subscribe();

    let mut acked = Vec::new();
    for i in 0..30 {
        let room = if i % 2 == 0 { "even" } else { "odd" };
        match a
            .publish(message(room, &format!("m{i}"), None))
            .await
            .expect("published")
        {
            Appended::New(m) => acked.push(m),
            Appended::Duplicate(m) => panic!("not a duplicate: {m:?}"),
        }
    }
    for rx in [&mut at_a, &mut at_b] {
        let mut heard = Vec::new();
        while heard.len() < acked.len() {
            if let Event::Message(m) = next(rx).await {
                heard.push((*m).clone());
            }
        }
        for room in ["even", "odd"] {
            let sent: Vec<_> = acked.iter().filter(|m| m.room.as_str() == room).collect();
            let got: Vec<_> = heard.iter().filter(|m| m.room.as_str() == room).collect();
            assert_eq!(got, sent, "{room}: same messages, same cursors, same order");
            assert!(got.windows(2).all(|w| w[0].cursor < w[1].cursor));
        }
    }

    // Events that are not messages travel too.
    let room = RoomName::parse("even").expect("room");
    a.announce(Event::Typing {
        room: room.clone(),
        user: Username::parse("alice").expect("name"),
    })
    .await
    .expect("announce");
    loop {
        if let Event::Typing { room: r, user } = next(&mut at_b).await {
            assert_eq!((r.as_str(), user.as_str()), ("even", "alice"));
            break;
        }
    }
    store.close().await;
}

#[tokio::test]
async fn a_resent_client_id_is_answered_with_the_first_copy_and_never_heard_twice() {
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let settings = settings();
    let a = KafkaBus::start(settings.clone(), store.clone())
        .await
        .expect("bus a");
    let b = KafkaBus::start(settings.clone(), store.clone())
        .await
        .expect("bus b");
    let mut at_b = b.subscribe();
    let Appended::New(first) = a
        .publish(message("r", "once", Some("c1")))
        .await
        .expect("published")
    else {
        panic!("a new message");
    };
    let Event::Message(heard) = next(&mut at_b).await else {
        panic!("a message");
    };
    assert_eq!(heard.id, first.id);

    // The client retries on another process, before anything is persisted.
    match b
        .publish(message("r", "once", Some("c1")))
        .await
        .expect("answered")
    {
        Appended::Duplicate(m) => assert_eq!((m.id, m.cursor), (first.id, first.cursor)),
        Appended::New(m) => panic!("a second copy: {m:?}"),
    }

    // A process that started after the first copy cannot know it: its copy reaches the log,
    // but those who heard the first do not fan the second out.
    let late = KafkaBus::start(settings, store.clone())
        .await
        .expect("bus c");
    let Appended::New(second) = late
        .publish(message("r", "once", Some("c1")))
        .await
        .expect("published")
    else {
        panic!("the late process has no way to know");
    };
    a.publish(message("r", "after", None))
        .await
        .expect("published");
    let Event::Message(next_heard) = next(&mut at_b).await else {
        panic!("a message");
    };
    assert_ne!(next_heard.id, second.id, "the second copy was fanned out");
    assert_eq!(next_heard.body, "after");
    store.close().await;
}
