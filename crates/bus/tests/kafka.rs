//! The Kafka bus on the real broker that `scripts/services` provisions: what one process
//! publishes, every process hears, in the log's order, with the ack's cursor.

use std::sync::Arc;
use std::time::Duration;

use banter_bus::{Bus, Event, KafkaBus, KafkaSettings};
use banter_core::{
    Appended, Change, ClientId, Message, NewChange, NewMessage, RoomEvent, RoomName, UserId,
    Username,
};
use tokio::sync::mpsc;

async fn start(settings: &KafkaSettings) -> KafkaBus {
    KafkaBus::start(settings.clone(), Arc::new(banter_testkit::NothingStored))
        .await
        .expect("bus")
}

/// Publishes a message; panics unless it is new.
async fn publish(bus: &KafkaBus, m: NewMessage) -> Message {
    match bus.publish(RoomEvent::Message(m)).await.expect("published") {
        Appended::New(logged) => logged.message().expect("a message"),
        other => panic!("not a new message: {other:?}"),
    }
}

/// The next message heard, skipping nothing else (only messages are sent here).
async fn next_message(rx: &mut mpsc::Receiver<Event>) -> Message {
    match next(rx).await {
        Event::Room(logged) => logged.message().expect("a message"),
        other => panic!("not a room event: {other:?}"),
    }
}

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
        created_at: chrono::Utc::now(),
        client_id: client_id.map(|c| ClientId::parse(c).expect("client id")),
        reply_to: None,
        thread_root: None,
        mentions: Vec::new(),
        attachments: Vec::new(),
        bot: None,
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
    let settings = settings();
    let a = start(&settings).await;
    let b = start(&settings).await;
    let mut at_a = a.subscribe();
    let mut at_b = b.subscribe();

    let mut acked = Vec::new();
    for i in 0..30 {
        let room = if i % 2 == 0 { "even" } else { "odd" };
        acked.push(publish(&a, message(room, &format!("m{i}"), None)).await);
    }
    for rx in [&mut at_a, &mut at_b] {
        let mut heard = Vec::new();
        while heard.len() < acked.len() {
            heard.push(next_message(rx).await);
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
}

#[tokio::test]
async fn changes_of_a_room_take_their_place_in_its_log() {
    let settings = settings();
    let a = start(&settings).await;
    let b = start(&settings).await;
    let mut at_b = b.subscribe();
    let m = publish(&a, message("log", "first", None)).await;
    let change = |what: Change| {
        RoomEvent::Change(NewChange {
            id: uuid::Uuid::now_v7(),
            room: m.room.clone(),
            message: m.id,
            user_id: UserId(1),
            user: Username::parse("alice").expect("name"),
            at: chrono::Utc::now(),
            client_id: None,
            change: what,
        })
    };
    let emoji = banter_core::Emoji::parse("👍").expect("emoji");
    let events = [
        change(Change::Edit {
            body: "second".into(),
        }),
        change(Change::React {
            emoji: emoji.clone(),
        }),
        change(Change::Unreact { emoji }),
        change(Change::Delete),
    ];
    let mut acked = Vec::new();
    for event in &events {
        match a.publish(event.clone()).await.expect("published") {
            Appended::New(logged) => acked.push(logged),
            other => panic!("not new: {other:?}"),
        }
    }
    assert_eq!(next_message(&mut at_b).await.id, m.id);
    for (event, ack) in events.iter().zip(&acked) {
        let Event::Room(heard) = next(&mut at_b).await else {
            panic!("a room event");
        };
        assert_eq!(
            &heard.event, event,
            "the same change, read back from the log"
        );
        assert_eq!(heard.cursor, ack.cursor, "at the cursor its ack named");
        assert!(heard.cursor > m.cursor);
    }
}

#[tokio::test]
async fn a_resent_client_id_is_answered_with_the_first_copy_and_never_heard_twice() {
    let settings = settings();
    let a = start(&settings).await;
    let b = start(&settings).await;
    let mut at_b = b.subscribe();
    let first = publish(&a, message("r", "once", Some("c1"))).await;
    assert_eq!(next_message(&mut at_b).await.id, first.id);

    // The client retries on another process, before anything is persisted.
    match b
        .publish(RoomEvent::Message(message("r", "once", Some("c1"))))
        .await
        .expect("answered")
    {
        Appended::Duplicate(logged) => {
            assert_eq!((logged.event.id(), logged.cursor), (first.id, first.cursor))
        }
        other => panic!("a second copy: {other:?}"),
    }

    // A process that started after the first copy cannot know it: its copy reaches the log,
    // but those who heard the first do not fan the second out.
    let late = start(&settings).await;
    let second = publish(&late, message("r", "once", Some("c1"))).await;
    publish(&a, message("r", "after", None)).await;
    let next_heard = next_message(&mut at_b).await;
    assert_ne!(next_heard.id, second.id, "the second copy was fanned out");
    assert_eq!(next_heard.body, "after");
}

/// The broker's TLS-only listener, and the CA of its certificate (`scripts/services`).
fn tls_settings(ca: Option<&str>) -> KafkaSettings {
    let mut s = settings();
    s.brokers = banter_testkit::kafka_tls_brokers();
    s.security.push(("security.protocol".into(), "ssl".into()));
    if let Some(ca) = ca {
        s.security.push(("ssl.ca.location".into(), ca.into()));
    }
    s.send_timeout = Duration::from_secs(5);
    s
}

#[tokio::test]
async fn over_tls_the_bus_works_and_a_broker_it_cannot_verify_is_refused() {
    let ca = banter_testkit::tls_ca();
    let settings = tls_settings(Some(&ca));
    let bus = start(&settings).await;
    let mut heard = bus.subscribe();
    let sent = publish(&bus, message("secure", "over TLS", None)).await;
    assert_eq!(next_message(&mut heard).await, sent);

    // The same probe that answers readiness: with the CA it reaches the broker; without it
    // the broker's certificate is not trusted and nothing gets through.
    let probe = |s: &KafkaSettings| banter_bus::KafkaProbe::new(s).expect("probe");
    let wait = Duration::from_secs(5);
    assert!(probe(&settings).check(wait).await.is_ok());
    let refused = probe(&tls_settings(None)).check(wait).await;
    assert!(
        refused.is_err(),
        "a broker whose certificate is not trusted"
    );
}
