//! A database of the turn before rooms (migrations 0001 and 0002, rooms as strings on
//! messages) is migrated in place on both engines: every room with messages becomes a room,
//! a DM has its two users as members, whoever wrote in a room is a member of it, and what
//! was written before counts as read. What was written before is searchable too (the search
//! migration indexes the messages it finds).

use std::path::Path;
use std::str::FromStr;

use banter_core::{RoomKind, RoomName, UserId};
use banter_testkit::{Db, TestDb};
use sqlx::migrate::Migrator;
use uuid::Uuid;

/// The migrations of the turn before, alone in a directory.
fn turn_one(engine: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(engine);
    for name in ["0001_init.sql", "0002_room_events.sql"] {
        std::fs::copy(source.join(name), dir.path().join(name)).expect("copy migration");
    }
    dir
}

const USERS: &str = "INSERT INTO users (id, username, password, created_at) VALUES \
    (1, 'Alice', 'x', '2026-01-01T00:00:00Z'), (2, 'bob', 'x', '2026-01-01T00:00:00Z'), \
    (3, 'carol', 'x', '2026-01-01T00:00:00Z')";
const MESSAGE: &str = "INSERT INTO messages \
    (id, part, seq, room, author_id, author, body, created_at) \
    VALUES ($1, 0, $2, $3, $4, $5, 'old words', $6)";
/// (room, author id, author) in the order written.
const WRITTEN: [(&str, i64, &str); 4] = [
    ("general", 2, "bob"),
    ("general", 1, "Alice"),
    ("dm:alice:carol", 1, "Alice"),
    ("general", 2, "bob"),
];

macro_rules! fill {
    ($pool:expr) => {{
        sqlx::query(USERS).execute(&$pool).await.expect("users");
        for (seq, (room, author_id, author)) in WRITTEN.iter().enumerate() {
            let at = chrono::DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z")
                .expect("time")
                .with_timezone(&chrono::Utc)
                + chrono::Duration::minutes(seq as i64);
            sqlx::query(MESSAGE)
                .bind(Uuid::now_v7())
                .bind(seq as i64 + 1)
                .bind(*room)
                .bind(*author_id)
                .bind(*author)
                .bind(at)
                .execute(&$pool)
                .await
                .expect("message");
        }
        $pool.close().await;
    }};
}

async fn check(db: &TestDb) {
    let store = db.store().await;
    let general = RoomName::parse("general").expect("room");
    let (info, _) = store
        .room(&general)
        .await
        .expect("room")
        .expect("a room now");
    assert_eq!(info.kind, RoomKind::Public);
    assert_eq!(
        info.owner.map(|o| o.id),
        Some(UserId(2)),
        "its first writer owns it"
    );
    let members = |room: &'static str| {
        let store = store.clone();
        async move {
            let mut names: Vec<String> = store
                .room_members(&RoomName::parse(room).expect("room"))
                .await
                .expect("members")
                .into_iter()
                .filter(|(_, m, _)| m.present)
                .map(|(_, m, _)| m.user.as_str().to_owned())
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(members("general").await, ["Alice", "bob"]);
    assert_eq!(
        members("dm:alice:carol").await,
        ["Alice", "carol"],
        "carol never wrote there, and is a member"
    );
    let dm = store
        .room(&RoomName::parse("dm:alice:carol").expect("room"))
        .await
        .expect("room")
        .expect("a room now");
    assert_eq!((dm.0.kind, dm.0.owner), (RoomKind::Dm, None));
    let carol = store.memberships(UserId(3)).await.expect("list");
    assert_eq!(carol.len(), 1);
    assert_eq!(carol[0].unread, 0, "what was written before counts as read");
    assert!(carol[0].read_cursor.is_some());
    let alice = store.memberships(UserId(1)).await.expect("list");
    assert_eq!(alice.len(), 2);
    assert_eq!(alice[0].room, general, "newest activity first");
    let found = store
        .search(&banter_store::Search {
            query: banter_core::search::SearchQuery::parse("OLD words").expect("query"),
            scope: banter_store::SearchScope::Member {
                user: UserId(1),
                also: Vec::new(),
                except: Vec::new(),
            },
            from: None,
            before: None,
            limit: 10,
        })
        .await
        .expect("search");
    assert_eq!(
        found.len(),
        4,
        "every message of Alice's rooms, from before"
    );
    store.close().await;
}

#[tokio::test]
async fn sqlite_rooms_come_from_the_messages_of_the_turn_before() {
    let db = TestDb::new(Db::Sqlite).await;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
        .expect("url")
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .expect("connect");
    let dir = turn_one("sqlite");
    Migrator::new(dir.path())
        .await
        .expect("migrations")
        .run(&pool)
        .await
        .expect("turn one");
    fill!(pool);
    check(&db).await;
}

#[tokio::test]
async fn postgres_rooms_come_from_the_messages_of_the_turn_before() {
    let db = TestDb::new(Db::Postgres).await;
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
    let dir = turn_one("postgres");
    Migrator::new(dir.path())
        .await
        .expect("migrations")
        .run(&pool)
        .await
        .expect("turn one");
    fill!(pool);
    check(&db).await;
}
