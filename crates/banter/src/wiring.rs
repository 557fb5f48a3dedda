//! The ports the bus declares, wired to the store: the local log of `banter serve` and the
//! re-send lookup of the Kafka bus. The bus knows nothing of storage; this is where the two
//! meet.

use std::sync::Arc;

use async_trait::async_trait;
use banter_bus::{FirstCopies, LocalLog};
use banter_core::{Appended, ClientId, LoggedEvent, RoomEvent, UserId};
use banter_store::DynStore;

/// The store as the bus's ports. Cloning shares the store.
#[derive(Debug, Clone)]
pub struct StorePorts(pub DynStore);

impl StorePorts {
    pub fn local_log(store: &DynStore) -> Arc<dyn LocalLog> {
        Arc::new(Self(store.clone()))
    }

    pub fn first_copies(store: &DynStore) -> Arc<dyn FirstCopies> {
        Arc::new(Self(store.clone()))
    }
}

#[async_trait]
impl LocalLog for StorePorts {
    async fn append(&self, batch: &[RoomEvent]) -> Result<Vec<Appended>, String> {
        self.0.append_events(batch).await.map_err(|e| e.to_string())
    }
}

#[async_trait]
impl FirstCopies for StorePorts {
    async fn find(
        &self,
        actor: UserId,
        client_id: &ClientId,
    ) -> Result<Option<LoggedEvent>, String> {
        self.0
            .first_copy(actor, client_id)
            .await
            .map_err(|e| e.to_string())
    }
}
