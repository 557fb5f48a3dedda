//! The bus: where the gateway hands over room events and where it hears about them again.
//!
//! A [`Bus`] is two things at once. It is the rooms' **log**: [`Bus::publish`] returns only
//! once an event (a message, an edit, a delete, a reaction) is durable, with the cursor that
//! places it in its room's total order. And it is the **fan-out**: every subscriber receives
//! every event, room events in log order, so every reader of a room sees the same sequence.
//!
//! - [`MemoryBus`] (`banter serve`): the log is a [`LocalLog`] (the binary wires the store),
//!   written by one task that commits events in batches (group commit), then hands them to
//!   subscribers in commit order.
//! - [`KafkaBus`] (scale-out): the log is the `chat-in` topic keyed by room; every process
//!   consumes every partition for its fan-out. Re-sends are recognised from what it heard and
//!   from a [`FirstCopies`] lookup (the binary wires the store).
//!
//! The bus knows storage only through those two ports, declared here by the side that needs
//! them: it depends on banter-core alone.

mod kafka;
mod memory;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use banter_core::{
    Appended, ClientId, LoggedEvent, RoomEvent, RoomName, Standing, UserId, Username,
};
use tokio::sync::mpsc;

pub use kafka::{
    ensure_topic_names, ensure_topics, KafkaBus, KafkaProbe, KafkaSettings, Record, WireError,
};
pub use memory::MemoryBus;

/// The local log of `banter serve`: appends a batch of events in order, durably, each at the
/// next cursor, applied to what history reads (see the store's `append_events`); and finds
/// what it logged by client id.
#[async_trait]
pub trait LocalLog: FirstCopies {
    /// One outcome per event, in order; `Err` when nothing of the batch was written.
    async fn append(&self, batch: &[RoomEvent]) -> Result<Vec<Appended>, String>;
}

/// Where a re-send's first copy is found once it is older than what the bus remembers
/// (see the store's `first_copy`).
#[async_trait]
pub trait FirstCopies: Send + Sync + std::fmt::Debug + 'static {
    /// The event `actor` logged with `client_id`, if it is stored.
    async fn find(
        &self,
        actor: UserId,
        client_id: &ClientId,
    ) -> Result<Option<LoggedEvent>, String>;
}

/// What travels from the bus to the gateways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A room event now durable in the log. Shared: one allocation however many readers.
    Room(Arc<LoggedEvent>),
    /// Someone is typing (not stored).
    Typing { room: RoomName, user: Username },
    /// Who is online on which gateway (not stored).
    Presence(Presence),
    /// An admin deactivated or reactivated an account (stored by the admin API before it is
    /// announced): every gateway refuses or accepts its tokens from now on.
    Account(Standing),
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
    /// A user's first connection on `node` (whatever rooms it joined), or its last one
    /// closed: whether they are away, for the notifier.
    Connected {
        node: NodeId,
        user: Username,
        online: bool,
    },
    /// Everyone online on `node`, per room, and everyone connected there: replaces all that
    /// was known of it. Sent periodically (it is also the heartbeat) and when another process
    /// says hello.
    Snapshot {
        node: NodeId,
        online: Vec<(RoomName, Vec<Username>)>,
        connected: Vec<Username>,
        /// Its open connections (for the admin page's figures).
        connections: usize,
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
            | Self::Connected { node, .. }
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
    /// event was not stored; the sender may retry with the same `client_id`.
    #[error("the log is unavailable")]
    Unavailable,
}

/// Resolves once a submitted event is durable (or could not be stored).
pub type Receipt = futures::future::BoxFuture<'static, Result<Appended, BusError>>;

/// The rooms' log and fan-out. Shared as `Arc<dyn Bus>`.
#[async_trait]
pub trait Bus: Send + Sync + std::fmt::Debug + 'static {
    /// Hands a room event to the log. When this returns, its place is taken: an event
    /// submitted later by the same caller to the same room comes after it in the log, so one
    /// client's events keep their order however many are in flight. The receipt resolves
    /// once it is durable. A re-sent `client_id` resolves to the first event, as
    /// [`Appended::Duplicate`], and is not fanned out again.
    async fn submit(&self, event: RoomEvent) -> Result<Receipt, BusError>;

    /// Appends an event to the log; resolves once it is durable.
    async fn publish(&self, event: RoomEvent) -> Result<Appended, BusError> {
        self.submit(event).await?.await
    }

    /// The event `actor` already logged with `client_id`, if this bus knows one: what a
    /// re-send of it is answered with.
    async fn first_copy(
        &self,
        actor: UserId,
        client_id: &ClientId,
    ) -> Result<Option<LoggedEvent>, BusError>;

    /// Fans out an event that is not part of the rooms' log (typing, presence, accounts).
    /// On Kafka it returns once the record is on `chat-events`.
    async fn announce(&self, event: Event) -> Result<(), BusError>;

    /// Every message and event from now on. A subscriber that does not keep up slows the bus
    /// down (its channel is bounded); it never misses anything.
    fn subscribe(&self) -> mpsc::Receiver<Event>;

    /// Waits, at most `timeout`, until whatever was handed over has left the process (at
    /// shutdown: presence goodbyes, events whose answer never reached their client).
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
