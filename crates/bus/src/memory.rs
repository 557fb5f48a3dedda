//! The in-process bus of `banter serve`: a [`LocalLog`] (the store) is the log, one task
//! writes it.
//!
//! Events queue on a channel to a single writer task. It takes everything waiting (up to
//! [`MAX_BATCH`]) and appends it in one transaction, so under load one fsync covers many
//! events (group commit). Only after the commit does it hand the new events to subscribers,
//! in the order they were committed, and answer each sender: so "acked" means durable, and
//! every reader sees one order per room (the order of the log).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use banter_core::{Appended, ClientId, LoggedEvent, RoomEvent, UserId};
use tokio::sync::{mpsc, oneshot};

use crate::{deliver, Bus, BusError, Event, LocalLog, Receipt};

/// Most events committed in one transaction.
const MAX_BATCH: usize = 256;
/// Sends waiting for the writer before `publish` itself waits (backpressure, not loss).
const QUEUE: usize = 4096;
/// Events buffered per subscriber before the writer waits for it.
const SUBSCRIBER_QUEUE: usize = 8192;

type Reply = oneshot::Sender<Result<Appended, BusError>>;

enum Request {
    Publish(RoomEvent, Reply),
    Announce(Event),
}

/// See the module docs. Cloning shares the writer.
#[derive(Debug, Clone)]
pub struct MemoryBus {
    requests: mpsc::Sender<Request>,
    /// For re-send lookups, which need no place in the log.
    log: Arc<dyn LocalLog>,
    /// Subscribers' channels. A std mutex: it is held only to push or clone the list, never
    /// across an await.
    subscribers: Arc<Mutex<Vec<mpsc::Sender<Event>>>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Publish(e, _) => f.debug_tuple("Publish").field(&e.id()).finish(),
            Self::Announce(e) => f.debug_tuple("Announce").field(e).finish(),
        }
    }
}

impl MemoryBus {
    /// Starts the writer task on the current runtime. It ends when every handle is dropped.
    pub fn start(log: Arc<dyn LocalLog>) -> Self {
        let (requests, rx) = mpsc::channel(QUEUE);
        let subscribers = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(writer(log.clone(), rx, subscribers.clone()));
        Self {
            requests,
            log,
            subscribers,
        }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn submit(&self, event: RoomEvent) -> Result<Receipt, BusError> {
        let (tx, rx) = oneshot::channel();
        // The writer takes requests in the order they were queued: that is the log's order.
        self.requests
            .send(Request::Publish(event, tx))
            .await
            .map_err(|_| BusError::Unavailable)?;
        Ok(Box::pin(async move {
            rx.await.map_err(|_| BusError::Unavailable)?
        }))
    }

    async fn first_copy(
        &self,
        actor: UserId,
        client_id: &ClientId,
    ) -> Result<Option<LoggedEvent>, BusError> {
        self.log.find(actor, client_id).await.map_err(|e| {
            tracing::warn!(error = %e, "re-send lookup failed");
            BusError::Unavailable
        })
    }

    async fn announce(&self, event: Event) -> Result<(), BusError> {
        self.requests
            .send(Request::Announce(event))
            .await
            .map_err(|_| BusError::Unavailable)
    }

    fn subscribe(&self) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(tx);
        rx
    }
}

async fn writer(
    log: Arc<dyn LocalLog>,
    mut requests: mpsc::Receiver<Request>,
    subscribers: Arc<Mutex<Vec<mpsc::Sender<Event>>>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = requests.recv().await {
        // Everything already waiting joins this batch, in arrival order. Announcements are
        // delivered in place, so typing never overtakes the message it announced.
        let mut next = Some(first);
        let mut events = Vec::new();
        while let Some(request) = next.take() {
            match request {
                Request::Publish(m, reply) => {
                    batch.push(m);
                    replies.push(reply);
                }
                Request::Announce(e) => {
                    // Flush what is batched so far first, to keep the order.
                    if !batch.is_empty() {
                        commit(&*log, &mut batch, &mut replies, &mut events).await;
                    }
                    events.push(e);
                }
            }
            if batch.len() < MAX_BATCH {
                next = requests.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            commit(&*log, &mut batch, &mut replies, &mut events).await;
        }
        deliver(&subscribers, events).await;
    }
    tracing::debug!("bus writer stopped");
}

/// Appends `batch`, queues what is new in it for the subscribers and answers the senders. On
/// failure nobody is acked and nothing is fanned out: every sender gets `Unavailable`.
async fn commit(
    log: &dyn LocalLog,
    batch: &mut Vec<RoomEvent>,
    replies: &mut Vec<Reply>,
    events: &mut Vec<Event>,
) {
    let result = log.append(batch).await;
    metrics::histogram!("banter_bus_batch_size").record(batch.len() as f64);
    batch.clear();
    match result {
        Ok(appended) => {
            for (outcome, reply) in appended.into_iter().zip(replies.drain(..)) {
                if let Appended::New(logged) = &outcome {
                    events.push(Event::Room(Arc::new(logged.clone())));
                }
                // A sender that went away still had its event stored; nothing to do.
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "appending events failed");
            metrics::counter!("banter_bus_append_failures_total").increment(1);
            for reply in replies.drain(..) {
                let _ = reply.send(Err(BusError::Unavailable));
            }
        }
    }
}
