//! The bus: where the gateway hands over messages and where it hears about them again.
//!
//! A [`Bus`] is two things at once. It is the message **log**: [`Bus::publish`] returns only
//! once a message is durable, with the cursor that places it in its room's total order. And it
//! is the **fan-out**: every subscriber receives every message and event, messages in log
//! order, so every reader of a room sees the same sequence.
//!
//! - [`MemoryBus`] (`banter serve`): the log is the SQLite (or PostgreSQL) store, written by one
//!   task that commits sends in batches (group commit), then hands them to subscribers in
//!   commit order.
//! - [`KafkaBus`] (scale-out): the log is the `chat-in` topic keyed by room; every process
//!   consumes every partition for its fan-out.

mod kafka;
mod memory;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use banter_core::{Message, NewMessage, RoomName, Username};
use banter_store::Appended;
use tokio::sync::mpsc;

pub use kafka::{ensure_topic_names, ensure_topics, KafkaBus, KafkaProbe, KafkaSettings, Record};
pub use memory::MemoryBus;

/// What travels from the bus to the gateways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message now durable in the log. Shared: one allocation however many readers.
    Message(Arc<Message>),
    /// A message was deleted; readers drop it.
    Deleted { room: RoomName, id: uuid::Uuid },
    /// Someone is typing (not stored).
    Typing { room: RoomName, user: Username },
    /// Who is online on which gateway (not stored).
    Presence(Presence),
}

/// Identifies one gateway process for presence: random at each start.
pub type NodeId = uuid::Uuid;

/// Presence between gateways. Each gateway knows who is online on its own sockets and tells
/// the others; what it hears from a gateway that falls silent expires (see the gateway's
/// `presence` module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// A user's first connection in a room on `node` (online), or its last one closed.
    Changed {
        node: NodeId,
        room: RoomName,
        user: Username,
        online: bool,
    },
    /// Everyone online on `node`, replacing all that was known of it. Sent periodically (it is
    /// also the heartbeat) and when another gateway says hello.
    Snapshot {
        node: NodeId,
        online: Vec<(RoomName, Vec<Username>)>,
    },
    /// `node` has just started and asks the others for their snapshots.
    Hello { node: NodeId },
    /// `node` is shutting down: its users are offline now.
    Gone { node: NodeId },
}

impl Presence {
    pub fn node(&self) -> NodeId {
        match self {
            Self::Changed { node, .. }
            | Self::Snapshot { node, .. }
            | Self::Hello { node }
            | Self::Gone { node } => *node,
        }
    }
}

/// Why the bus refused something.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The log cannot take writes right now (database or broker down, or shutting down). The
    /// message was not stored; the sender may retry with the same `client_id`.
    #[error("the message log is unavailable")]
    Unavailable,
}

/// Resolves once a submitted message is durable (or could not be stored).
pub type Receipt = futures::future::BoxFuture<'static, Result<Appended, BusError>>;

/// The message log and fan-out. Shared as `Arc<dyn Bus>`.
#[async_trait]
pub trait Bus: Send + Sync + std::fmt::Debug + 'static {
    /// Hands a message to the log. When this returns, its place is taken: a message submitted
    /// later by the same caller to the same room comes after it in the log, so one client's
    /// messages keep their order however many are in flight. The receipt resolves once it
    /// is durable. A re-sent `client_id` resolves to the first message, as
    /// [`Appended::Duplicate`], and is not fanned out again.
    async fn submit(&self, message: NewMessage) -> Result<Receipt, BusError>;

    /// Appends a message to the log; resolves once it is durable.
    async fn publish(&self, message: NewMessage) -> Result<Appended, BusError> {
        self.submit(message).await?.await
    }

    /// Fans out an event that is not part of the log (deletions, typing).
    async fn announce(&self, event: Event) -> Result<(), BusError>;

    /// Every message and event from now on. A subscriber that does not keep up slows the bus
    /// down (its channel is bounded); it never misses anything.
    fn subscribe(&self) -> mpsc::Receiver<Event>;

    /// Waits, at most `timeout`, until whatever was handed over has left the process (at
    /// shutdown: presence goodbyes, deletions, sends whose answer never reached their client).
    /// Acked messages are durable already; this is for the rest.
    async fn flush(&self, timeout: Duration) {
        let _ = timeout;
    }
}

/// A shared handle to the configured bus.
pub type DynBus = Arc<dyn Bus>;

/// Hands events to every subscriber, waiting for room in their queues rather than dropping.
/// Subscribers whose receiver is gone are forgotten.
pub(crate) async fn deliver(subscribers: &Mutex<Vec<mpsc::Sender<Event>>>, events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    let targets: Vec<_> = subscribers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut gone = false;
    for target in &targets {
        for event in &events {
            if target.send(event.clone()).await.is_err() {
                gone = true;
                break;
            }
        }
    }
    if gone {
        subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|s| !s.is_closed());
    }
}
