//! PostgreSQL over TLS, as `sslmode` in DATABASE_URL asks: verified against the CA that
//! `sslrootcert` names, refused when the server's certificate cannot be verified, plain when
//! TLS is turned off. The test server (`scripts/services`) takes both on its port.

use banter_store::PostgresStore;
use banter_testkit::{Db, TestDb};

/// Whether the store's connection is encrypted, as the server sees it.
async fn encrypted(url: &str) -> Result<bool, String> {
    let store = PostgresStore::connect(url, 1)
        .await
        .map_err(|e| e.to_string())?;
    let (ssl,): (bool,) =
        sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(store.pool())
            .await
            .map_err(|e| e.to_string())?;
    store.pool().close().await;
    Ok(ssl)
}

#[tokio::test]
async fn sslmode_in_the_url_says_how_the_store_connects() {
    let ca = banter_testkit::tls_ca();
    let db = TestDb::new(Db::Postgres).await;
    let with = |params: &str| format!("{}?{params}", db.url);
    assert_eq!(
        encrypted(&with(&format!("sslmode=verify-full&sslrootcert={ca}"))).await,
        Ok(true)
    );
    assert_eq!(encrypted(&with("sslmode=require")).await, Ok(true));
    assert_eq!(encrypted(&with("sslmode=disable")).await, Ok(false));
    // The system's roots do not know the test CA: verification fails, nothing connects.
    let unverified = encrypted(&with("sslmode=verify-full")).await;
    assert!(unverified.is_err(), "{unverified:?}");
}
