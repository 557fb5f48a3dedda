//! The audit log is append-only in the database itself: whoever reaches it with SQL (a bug, a
//! hurried operator) cannot edit or remove an entry on either engine.

use banter_store::{now, NewAudit};
use banter_testkit::{Db, TestDb};
use sqlx::Connection;

async fn one_entry(db: &TestDb) {
    let store = db.store().await;
    store
        .record_audit(&NewAudit {
            at: now(),
            actor_id: None,
            actor: "root".into(),
            action: "user.deactivate",
            target: "dee".into(),
            detail: serde_json::json!({}),
            address: None,
        })
        .await
        .expect("record");
    store.close().await;
}

const TAMPERING: [&str; 2] = [
    "UPDATE audit_log SET actor = 'someone else'",
    "DELETE FROM audit_log",
];

#[tokio::test]
async fn sqlite_refuses_changes_to_the_audit_log() {
    let db = TestDb::new(Db::Sqlite).await;
    one_entry(&db).await;
    let mut conn = sqlx::SqliteConnection::connect(&db.url)
        .await
        .expect("connect");
    for sql in TAMPERING {
        let e = sqlx::query(sql).execute(&mut conn).await.expect_err(sql);
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_log WHERE actor = 'root'")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(count, 1);
}

#[tokio::test]
async fn postgres_refuses_changes_to_the_audit_log() {
    let db = TestDb::new(Db::Postgres).await;
    one_entry(&db).await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    for sql in TAMPERING.into_iter().chain(["TRUNCATE audit_log"]) {
        let e = sqlx::query(sql).execute(&mut conn).await.expect_err(sql);
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_log WHERE actor = 'root'")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(count, 1);
    conn.close().await.expect("close");
}
