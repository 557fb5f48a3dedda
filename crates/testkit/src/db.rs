//! Throwaway databases: a SQLite file in a temp dir, or a PostgreSQL database with a random
//! name, dropped when the [`TestDb`] is dropped (also when the test panics).

use std::path::PathBuf;

use banter_store::DynStore;
use sqlx::Connection;

use crate::Db;

fn services_env(key: &str) -> Option<String> {
    if let Ok(v) = std::env::var(key) {
        if !v.is_empty() {
            return Some(v);
        }
    }
    // The workspace root is two levels above this crate.
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.services/env");
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.trim().trim_start_matches("export ").split_once('=')?;
        (k == key).then(|| v.trim_matches(['"', '\'']).to_owned())
    })
}

pub(crate) fn required(key: &str, what: &str) -> String {
    services_env(key).unwrap_or_else(|| {
        panic!(
            "this test needs {what}, and neither ${key} nor .services/env names one. \
             Run `scripts/test` (which provisions everything), or `scripts/services up` \
             once and then cargo test."
        )
    })
}

/// A PostgreSQL URL with the right to create databases.
pub fn postgres_admin_url() -> String {
    required("BANTER_TEST_DATABASE_URL", "PostgreSQL")
}

/// `host:port` of the test Kafka broker.
pub fn kafka_brokers() -> String {
    required("BANTER_TEST_KAFKA_BROKERS", "Apache Kafka")
}

/// The CA of the test services' TLS certificate (`scripts/services` makes it).
pub fn tls_ca() -> String {
    required("BANTER_TEST_TLS_CA", "the test services' TLS CA")
}

/// `host:port` of the test Kafka broker's TLS-only listener.
pub fn kafka_tls_brokers() -> String {
    required(
        "BANTER_TEST_KAFKA_TLS_BROKERS",
        "Apache Kafka's TLS listener",
    )
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    kind: Db,
    /// Keeps the SQLite file's directory alive; removed on drop.
    _dir: Option<tempfile::TempDir>,
    /// For PostgreSQL: the admin URL and the database's name, to drop it.
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(kind: Db) -> Self {
        match kind {
            Db::Sqlite => Self::sqlite(),
            Db::Postgres => Self::postgres().await,
        }
    }

    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!("sqlite://{}", dir.path().join("banter.db").display());
        Self {
            url,
            kind: Db::Sqlite,
            _dir: Some(dir),
            pg: None,
        }
    }

    pub async fn postgres() -> Self {
        let admin = postgres_admin_url();
        let name = format!("banter_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {admin}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        let mut url = reqwest::Url::parse(&admin).expect("admin URL");
        url.set_path(&name);
        Self {
            url: url.to_string(),
            kind: Db::Postgres,
            _dir: None,
            pg: Some((admin, name)),
        }
    }

    pub fn kind(&self) -> Db {
        self.kind
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> DynStore {
        let store = banter_store::connect(&self.url, 5).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        // Drop may run inside a runtime (or while a test unwinds), so the async cleanup gets
        // a thread and a runtime of its own. FORCE ends connections the test left open.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test database: {e}"),
            Err(_) => eprintln!("warning: test database cleanup panicked"),
        }
    }
}
