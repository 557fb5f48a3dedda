//! SQLite's search index is external content kept by triggers: after messages, edits and
//! deletes (and a message removed outright) FTS5's own integrity check finds it agreeing
//! with the messages table, and a rebuild (what an operator runs after a VACUUM) finds the
//! same.

use std::str::FromStr;

use banter_core::{Change, ClientId, NewChange, NewMessage, RoomEvent, RoomName, Username};
use banter_store::{now, SqliteStore, Store};
use uuid::Uuid;

fn message(author: &banter_core::User, body: &str, files: &[&str]) -> NewMessage {
    NewMessage {
        id: Uuid::now_v7(),
        room: RoomName::parse("general").expect("room"),
        author_id: author.id,
        author: author.username.clone(),
        body: body.into(),
        created_at: now(),
        client_id: Some(ClientId::parse(&Uuid::new_v4().to_string()).expect("client id")),
        reply_to: None,
        thread_root: None,
        mentions: Vec::new(),
        bot: None,
        attachments: files
            .iter()
            .map(|name| banter_core::Attachment {
                id: Uuid::new_v4(),
                name: (*name).into(),
                size: 1,
                content_type: "text/plain".into(),
                width: None,
                height: None,
                thumbnail: false,
            })
            .collect(),
    }
}

fn change(author: &banter_core::User, id: Uuid, what: Change) -> RoomEvent {
    RoomEvent::Change(NewChange {
        id: Uuid::now_v7(),
        room: RoomName::parse("general").expect("room"),
        message: id,
        user_id: author.id,
        user: author.username.clone(),
        at: now(),
        client_id: None,
        change: what,
    })
}

async fn integrity(pool: &sqlx::SqlitePool) {
    sqlx::query("INSERT INTO message_search (message_search, rank) VALUES ('integrity-check', 1)")
        .execute(pool)
        .await
        .expect("FTS5 finds its index and the messages agreeing");
}

#[tokio::test]
async fn the_index_agrees_with_the_messages_after_edits_and_deletes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("banter.db").display());
    let store = SqliteStore::connect(&url, 2).await.expect("open");
    store.migrate().await.expect("migrate");
    let ada = store
        .create_user(&Username::parse("ada").expect("name"), "h", now())
        .await
        .expect("user");
    let mut events = Vec::new();
    let mut ids = Vec::new();
    for i in 0..30 {
        let files: &[&str] = if i % 3 == 0 {
            &["notes.txt", "plan (final).pdf"]
        } else {
            &[]
        };
        let m = message(&ada, &format!("message {i} about café"), files);
        ids.push(m.id);
        events.push(RoomEvent::Message(m));
    }
    store.append_events(&events).await.expect("append");
    let mut changes = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        match i % 5 {
            0 => changes.push(change(
                &ada,
                *id,
                Change::Edit {
                    body: format!("edited {i}"),
                },
            )),
            1 => changes.push(change(&ada, *id, Change::Delete)),
            2 => {
                changes.push(change(
                    &ada,
                    *id,
                    Change::Edit {
                        body: "once".into(),
                    },
                ));
                changes.push(change(&ada, *id, Change::Delete));
            }
            _ => {}
        }
    }
    store.append_events(&changes).await.expect("changes");
    store.close().await;

    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::from_str(&url).expect("url"),
    )
    .await
    .expect("connect");
    integrity(&pool).await;
    // A message removed outright (no path of banter's does; an operator's cleanup might).
    sqlx::query("DELETE FROM messages WHERE id = $1")
        .bind(ids[3])
        .execute(&pool)
        .await
        .expect("delete");
    integrity(&pool).await;
    let indexed = |pool: sqlx::SqlitePool| async move {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM message_search WHERE message_search MATCH 'cafe OR edited OR once'")
                .fetch_one(&pool)
                .await
                .expect("count");
        n
    };
    // 30 written; 12 deleted (i % 5 of 1 and 2), one removed: 17 left, each found once.
    assert_eq!(indexed(pool.clone()).await, 17);
    sqlx::query("INSERT INTO message_search (message_search) VALUES ('rebuild')")
        .execute(&pool)
        .await
        .expect("rebuild");
    integrity(&pool).await;
    assert_eq!(indexed(pool.clone()).await, 17);
    // And the check does catch an index that drifted: an entry no message has.
    sqlx::query("INSERT INTO message_search (rowid, body, files) VALUES (999999, 'stray', '')")
        .execute(&pool)
        .await
        .expect("a stray entry");
    let drifted = sqlx::query(
        "INSERT INTO message_search (message_search, rank) VALUES ('integrity-check', 1)",
    )
    .execute(&pool)
    .await;
    assert!(drifted.is_err(), "the integrity check saw nothing wrong");
    pool.close().await;
}
