//! A database made by the Go seed's README (tables typed in by hand with psql) is migrated in
//! place: its users and messages are kept and readable, and banter carries on after them.

use banter_core::{NewMessage, RoomName, Username};
use banter_testkit::TestDb;
use sqlx::Connection;

/// Step 5 of the seed's README, verbatim.
const SEED_SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS users (
        id SERIAL PRIMARY KEY,
        username TEXT UNIQUE NOT NULL,
        password TEXT NOT NULL,
        created_at TIMESTAMPTZ DEFAULT now()
    )",
    r#"CREATE EXTENSION IF NOT EXISTS "uuid-ossp""#,
    "CREATE TABLE IF NOT EXISTS messages (
        id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
        room TEXT NOT NULL,
        author_id INT NOT NULL REFERENCES users(id),
        body TEXT NOT NULL,
        created_at TIMESTAMPTZ DEFAULT now()
    )",
];

#[tokio::test]
async fn a_seed_database_is_migrated_in_place() {
    let db = TestDb::postgres().await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    for statement in SEED_SCHEMA {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .expect("seed schema");
    }
    sqlx::query("INSERT INTO users (username, password) VALUES ('alice', '$2a$10$seedhash')")
        .execute(&mut conn)
        .await
        .expect("seed user");
    for (body, age) in [("first", 3), ("second", 2), ("third", 1)] {
        sqlx::query(
            "INSERT INTO messages (room, author_id, body, created_at) \
             VALUES ('general', 1, $1, now() - make_interval(mins => $2))",
        )
        .bind(body)
        .bind(age)
        .execute(&mut conn)
        .await
        .expect("seed message");
    }
    conn.close().await.expect("close");

    let store = db.store().await;
    let general = RoomName::parse("general").expect("room");
    let history: Vec<_> = store
        .events_after(&general, None, 10)
        .await
        .expect("history")
        .iter()
        .filter_map(banter_core::LoggedEvent::message)
        .collect();
    let bodies: Vec<&str> = history.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(
        bodies,
        ["first", "second", "third"],
        "kept, in the order written"
    );
    assert!(history.iter().all(|m| m.author.as_str() == "alice"));

    // New users and messages carry on after the seed's.
    let bob = store
        .create_user(
            &Username::parse("bob").expect("name"),
            "$argon2id$x",
            banter_store::now(),
        )
        .await
        .expect("new user");
    assert!(bob.id.0 > 1);
    let appended = store
        .append_events(&[banter_core::RoomEvent::Message(NewMessage {
            id: uuid::Uuid::now_v7(),
            room: general.clone(),
            author_id: bob.id,
            author: bob.username.clone(),
            body: "fourth".into(),
            created_at: banter_store::now(),
            client_id: None,
            reply_to: None,
            thread_root: None,
            mentions: Vec::new(),
            attachments: Vec::new(),
            bot: None,
        })])
        .await
        .expect("append");
    let banter_core::Appended::New(fourth) = &appended[0] else {
        panic!("not appended: {appended:?}");
    };
    assert!(fourth.cursor > history[2].cursor);
    // The seed's password hash is kept, though banter cannot verify it.
    let alice = store
        .credentials("alice")
        .await
        .expect("lookup")
        .expect("alice");
    assert_eq!(alice.password_hash, "$2a$10$seedhash");
    store.close().await;
}
