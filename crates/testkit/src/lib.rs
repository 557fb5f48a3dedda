//! Fixtures for banter's tests, which always run the real thing: a real server on port 0,
//! a real SQLite file, a real PostgreSQL database created for one test and dropped after it.
//!
//! PostgreSQL, Kafka and S3 come from `scripts/services up` (or `scripts/test`, which runs
//! it): their addresses are read from `BANTER_TEST_DATABASE_URL`, `BANTER_TEST_KAFKA_BROKERS`
//! and `BANTER_TEST_S3_*`,
//! or from the `.services/env` file that script writes. A test that needs them and finds
//! neither fails loudly; it never passes by skipping.

mod app;
mod db;
mod files;
pub mod push;
pub mod tokens;
mod ws;

pub use app::{Options, TestApp, TEST_JWT_SECRET};
pub use db::{kafka_brokers, kafka_tls_brokers, postgres_admin_url, tls_ca, TestDb};
pub use files::{Storage, TestFiles};
pub use push::{Device, PushService};
pub use tokens::token_of;
pub use ws::{Refused, WsClient, FRAME_TIMEOUT};

/// The bus's re-send lookup wired to a store, as the binary wires it.
pub use banter::wiring::StorePorts;

/// A re-send lookup for tests where nothing is persisted: re-sends are known only from what
/// the bus heard.
#[derive(Debug)]
pub struct NothingStored;

#[async_trait::async_trait]
impl banter_bus::FirstCopies for NothingStored {
    async fn find(
        &self,
        _: banter_core::UserId,
        _: &banter_core::ClientId,
    ) -> Result<Option<banter_core::LoggedEvent>, String> {
        Ok(None)
    }
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}
