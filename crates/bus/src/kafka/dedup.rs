//! Re-sends on Kafka: recognising a `client_id` its actor already used, whatever gateway the
//! first copy went through.
//!
//! - [`Seen`]: the first copy of each event with a client id this process heard on the log
//!   lately (5 minutes, 200,000 at most). A second copy heard later is not fanned out.
//! - [`Lookups`]: older re-sends are looked up in the store ([`FirstCopies`]); Kafka is the
//!   log, so sends go on while the database is down or slow, and after a failed lookup the
//!   next ones are skipped for a while (a circuit breaker) instead of each waiting out the
//!   timeout.
//! - [`ReadBack`]: how far this process has read each partition, so an ack can wait until
//!   everything before its record is known (see `KafkaBus::submit`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use banter_core::{ClientId, LoggedEvent, UserId};

use super::lock;
use crate::FirstCopies;

/// How long, and how many, events with a client id are remembered by [`Seen`].
const SEEN_KEEP: Duration = Duration::from_secs(300);
const SEEN_CAP: usize = 200_000;
/// How long a send waits for the database to say whether it is a re-send.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(250);
/// How long such lookups are skipped after one failed.
const LOOKUP_PAUSE: Duration = Duration::from_secs(2);

/// The events with a client id this process heard on the log lately, by (actor, client id):
/// the first copy of each. Bounded in time and count.
#[derive(Debug, Default)]
pub(super) struct Seen {
    first: HashMap<(i64, String), Arc<LoggedEvent>>,
    order: VecDeque<(Instant, (i64, String))>,
}

impl Seen {
    pub(super) fn get(&self, actor: UserId, client_id: &ClientId) -> Option<Arc<LoggedEvent>> {
        self.first
            .get(&(actor.0, client_id.as_str().to_owned()))
            .cloned()
    }

    /// Remembers `logged` unless an earlier copy is known; returns whether it is the first.
    pub(super) fn first_copy(&mut self, logged: &Arc<LoggedEvent>) -> bool {
        let Some(client_id) = logged.event.client_id() else {
            return true;
        };
        let now = Instant::now();
        while self.order.len() >= SEEN_CAP
            || self
                .order
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > SEEN_KEEP)
        {
            if let Some((_, key)) = self.order.pop_front() {
                self.first.remove(&key);
            }
        }
        let key = (logged.event.actor_id().0, client_id.as_str().to_owned());
        match self.first.get(&key) {
            Some(first) => first.event.id() == logged.event.id(),
            None => {
                self.first.insert(key.clone(), logged.clone());
                self.order.push_back((now, key));
                true
            }
        }
    }
}

/// Store lookups of re-sends older than [`Seen`] keeps, behind a circuit breaker.
#[derive(Debug)]
pub(super) struct Lookups {
    store: Arc<dyn FirstCopies>,
    /// Set when a lookup failed: until then, none is tried.
    off_until: Mutex<Option<Instant>>,
}

impl Lookups {
    pub(super) fn new(store: Arc<dyn FirstCopies>) -> Self {
        Self {
            store,
            off_until: Mutex::new(None),
        }
    }

    /// The stored first copy of a re-send, if the store can say in time.
    pub(super) async fn persisted(
        &self,
        actor: UserId,
        client_id: &ClientId,
    ) -> Option<LoggedEvent> {
        if lock(&self.off_until).is_some_and(|until| Instant::now() < until) {
            metrics::counter!("banter_kafka_dedup_lookups_skipped_total").increment(1);
            return None;
        }
        let lookup = self.store.find(actor, client_id);
        let failure = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
            Ok(Ok(first)) => return first,
            Ok(Err(e)) => e,
            Err(_) => "timed out".to_owned(),
        };
        tracing::warn!(
            error = %failure,
            "re-send checks against the database paused for {LOOKUP_PAUSE:?}"
        );
        *lock(&self.off_until) = Some(Instant::now() + LOOKUP_PAUSE);
        metrics::counter!("banter_kafka_dedup_lookups_skipped_total").increment(1);
        None
    }
}

/// Per partition of the log, the last offset this process's fan-out has read.
#[derive(Debug, Default)]
pub(super) struct ReadBack {
    upto: Mutex<HashMap<i32, i64>>,
    notify: tokio::sync::Notify,
}

impl ReadBack {
    pub(super) fn advance(&self, partition: i32, offset: i64) {
        lock(&self.upto).insert(partition, offset);
        self.notify.notify_waiters();
    }

    /// Resolves `true` once `offset` of `partition` has been read, `false` after `max`.
    pub(super) async fn wait(&self, partition: i32, offset: i64, max: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            // Registered before the check, so an advance in between is not missed.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&self.upto)
                .get(&partition)
                .is_some_and(|u| *u >= offset)
            {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}
