//! Presence across gateways: each gateway tells the others, over the bus, who is online on its
//! own sockets, and keeps what they tell it in the [`Hub`].
//!
//! - A change (a user's first connection in a room here, or their last one closing) is told
//!   at once, as `Presence::Changed`.
//! - Every `heartbeat`, the gateway sends a `Snapshot` of everyone online here. It replaces
//!   what the others knew of this gateway, so a change that was lost is repaired, and it is
//!   the heartbeat: what a gateway has not confirmed for `ttl` is forgotten, so one that died
//!   leaves no ghosts for longer than `ttl` (plus one heartbeat of the hearing gateway).
//! - A starting gateway says `Hello`, and the others answer with a snapshot, so it knows who
//!   is online elsewhere at once rather than after a heartbeat. A gateway shutting down says
//!   `Gone`, and its users go offline at once.
//!
//! On Kafka these travel on the events topic keyed by gateway, so one gateway's news stay in
//! order. Under `banter serve` there is one gateway: it hears only itself and ignores that.

use std::sync::Arc;
use std::time::Duration;

use banter_bus::{DynBus, Event, NodeId, Presence};
use tokio::sync::{mpsc, Notify};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::hub::{Hub, LocalChange};

/// Local changes waiting to be told; when full (the bus is stuck), changes are dropped and the
/// next snapshot tells the truth.
pub const CHANGES_QUEUE: usize = 4096;

/// How often a gateway tells its snapshot, and how long what others told is trusted.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat: Duration,
    pub ttl: Duration,
}

/// Tells the other gateways about this one until `shutdown`, then says goodbye.
pub async fn announce(
    node: NodeId,
    hub: Arc<Hub>,
    bus: DynBus,
    mut changes: mpsc::Receiver<LocalChange>,
    hello: Arc<Notify>,
    timing: Timing,
    shutdown: CancellationToken,
) {
    let tell = |p: Presence| {
        let bus = bus.clone();
        async move {
            if let Err(e) = bus.announce(Event::Presence(p)).await {
                metrics::counter!("banter_presence_announce_failures_total").increment(1);
                tracing::debug!(error = %e, "presence not told to the other gateways");
            }
        }
    };
    let snapshot = || Presence::Snapshot {
        node,
        online: hub.local_presence(),
        connected: hub.local_users(),
        connections: hub.connections(),
    };
    tell(Presence::Hello { node }).await;
    let mut beat = tokio::time::interval(timing.heartbeat);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            change = changes.recv() => match change {
                Some(LocalChange { room: Some(room), user, online }) => {
                    tell(Presence::Changed { node, room, user, online }).await;
                }
                Some(LocalChange { room: None, user, online }) => {
                    tell(Presence::Connected { node, user, online }).await;
                }
                None => break,
            },
            _ = beat.tick() => {
                tell(snapshot()).await;
                hub.expire_remote(timing.ttl);
            }
            () = hello.notified() => tell(snapshot()).await,
        }
    }
    tell(Presence::Gone { node }).await;
}

/// What the dispatcher does with presence heard from the bus.
pub fn heard(node: NodeId, hub: &Hub, hello: &Notify, presence: &Presence) {
    if presence.node() == node {
        return;
    }
    match presence {
        Presence::Changed {
            node,
            room,
            user,
            online,
        } => hub.remote_changed(*node, room, user, *online),
        Presence::Connected { node, user, online } => hub.remote_connected(*node, user, *online),
        Presence::Snapshot {
            node,
            online,
            connected,
            connections,
        } => {
            hub.remote_snapshot(*node, online);
            hub.remote_connected_snapshot(*node, connected);
            hub.remote_connections(*node, *connections);
        }
        Presence::Hello { .. } => hello.notify_one(),
        Presence::Gone { node } => hub.remote_gone(*node),
    }
}
