//! The notifier: reads the rooms' log after the fact and decides who is told.
//!
//! - Who: the other user of a direct message, and the members a message mentions (the
//!   gateway checked they are members when it was sent, so they may read it). Never its
//!   author. A room its member muted is pushed to them only when it mentions them.
//! - When: `away_wait` after the notifier heard the message, if the user then has no open
//!   connection on any gateway ([`Connections`]). The wait spares a person reloading the page
//!   a push for what their screen shows a moment later.
//! - How: one push to each of the user's subscriptions ([`Sender`]), retried within the TTL;
//!   a subscription its push service calls gone is forgotten.
//!
//! It never writes a room: it only reads the log, so it cannot slow a send down. Under
//! `banter serve` it hears the in-process log ([`run_local`]); on Kafka it is its own consumer
//! group (`banter notify`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use banter_bus::Event;
use banter_core::{LoggedEvent, Message, RoomEvent, Username};
use banter_store::{DynStore, PushSubscription, StoreError};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::payload::{topic, Payload, Reason};
use crate::sender::{Outcome, Push, Sender};

/// Messages being notified about at once; past that, the local notifier lets one go rather
/// than hold the log's fan-out up (a notification is not worth slowing chat for).
pub const MAX_IN_FLIGHT: usize = 1024;

/// Who is online, as presence across gateways knows it.
pub trait Connections: Send + Sync + fmt::Debug + 'static {
    /// Whether `user` (compared without case) has an open connection on any gateway.
    fn is_connected(&self, user: &str) -> bool;
}

/// What the notifier decides with.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// Whether a push carries the start of the body (`BANTER_PUSH_PREVIEW`).
    pub preview: bool,
    /// How long after a message a user must still be away to be pushed (`BANTER_PUSH_WAIT`).
    pub away_wait: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            preview: true,
            away_wait: Duration::from_secs(2),
        }
    }
}

/// Whom a message tells, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub message: Message,
    pub recipients: Vec<(Username, Reason)>,
}

impl Notice {
    /// The notice of a logged event: `None` for all but a message that is a DM or mentions
    /// someone other than its author.
    pub fn of(event: &LoggedEvent) -> Option<Self> {
        // Most messages tell no one: decided before anything is copied.
        let RoomEvent::Message(new) = &event.event else {
            return None;
        };
        if new.mentions.is_empty() && new.room.direct_members().is_none() {
            return None;
        }
        let message = event.message()?;
        let author = message.author.as_str();
        let mut recipients: Vec<(Username, Reason)> = Vec::new();
        if let Some((a, b)) = message.room.direct_members() {
            let other = if a.eq_ignore_ascii_case(author) { b } else { a };
            if !other.eq_ignore_ascii_case(author) {
                recipients.push((Username::from_stored(other.to_owned()), Reason::Dm));
            }
        }
        for name in &message.mentions {
            if name.as_str().eq_ignore_ascii_case(author) {
                continue;
            }
            // Mentioned in a DM: a mention (it reaches them in a muted room too).
            match recipients
                .iter_mut()
                .find(|(r, _)| r.as_str().eq_ignore_ascii_case(name.as_str()))
            {
                Some((_, reason)) => *reason = Reason::Mention,
                None => recipients.push((name.clone(), Reason::Mention)),
            }
        }
        (!recipients.is_empty()).then_some(Self {
            message,
            recipients,
        })
    }
}

/// See the module docs. Cloning shares everything.
#[derive(Debug, Clone)]
pub struct Notifier {
    store: DynStore,
    sender: Sender,
    connections: Arc<dyn Connections>,
    settings: Arc<NotifySettings>,
}

impl Notifier {
    pub fn new(
        store: DynStore,
        sender: Sender,
        connections: Arc<dyn Connections>,
        settings: NotifySettings,
    ) -> Self {
        Self {
            store,
            sender,
            connections,
            settings: Arc::new(settings),
        }
    }

    /// Tells the recipients of `notice` who are away, `away_wait` after `heard`. Returns once
    /// every push is sent or given up (true), or when `shutdown` came first (false: the
    /// notice is not done, and a notifier that reads it again may send it).
    pub async fn notify(
        &self,
        notice: Notice,
        heard: Instant,
        shutdown: &CancellationToken,
    ) -> bool {
        let ttl = self.sender.settings().ttl;
        let age = (chrono::Utc::now() - notice.message.created_at)
            .to_std()
            .unwrap_or_default();
        let Some(left) = ttl.checked_sub(age) else {
            metrics::counter!("banter_push_too_late_total").increment(1);
            return true;
        };
        let deadline = Instant::now() + left;
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep_until(heard + self.settings.away_wait) => {}
        }
        let topic = topic(notice.message.room.as_str());
        let mut sends = Vec::new();
        for (user, reason) in &notice.recipients {
            if self.connections.is_connected(user.as_str()) {
                metrics::counter!("banter_push_skipped_online_total").increment(1);
                continue;
            }
            let Some(subs) = self.subscriptions(user, deadline, shutdown).await else {
                if shutdown.is_cancelled() {
                    return false;
                }
                continue;
            };
            if subs.is_empty() {
                continue;
            }
            // A muted room is pushed only when it mentions them (Slack's and Zulip's rule).
            if *reason != Reason::Mention && self.muted(&subs[0], &notice.message.room).await {
                metrics::counter!("banter_push_skipped_muted_total").increment(1);
                continue;
            }
            let payload = Payload::of(
                &notice.message,
                user.as_str(),
                *reason,
                self.settings.preview,
            );
            let payload = match serde_json::to_vec(&payload) {
                Ok(p) => Arc::new(p),
                Err(e) => {
                    tracing::error!(error = %e, "push payload");
                    continue;
                }
            };
            for sub in subs {
                let payload = payload.clone();
                let topic = topic.as_str();
                sends.push(async move {
                    let push = Push {
                        payload: &payload,
                        topic,
                        urgency: "high",
                        deadline,
                    };
                    let outcome = self.sender.send(&sub, &push, shutdown).await;
                    self.record(&sub, outcome).await;
                    outcome != Outcome::Stopped
                });
            }
        }
        futures::future::join_all(sends)
            .await
            .into_iter()
            .all(|done| done)
    }

    /// The user's subscriptions, retrying while the database is unavailable; `None` when it
    /// stays so past the deadline (or at shutdown).
    async fn subscriptions(
        &self,
        user: &Username,
        deadline: Instant,
        shutdown: &CancellationToken,
    ) -> Option<Vec<PushSubscription>> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.store.push_subscriptions(user.as_str()).await {
                Ok(subs) => return Some(subs),
                Err(StoreError::Unavailable(e)) => {
                    tracing::warn!(error = %e, "push subscriptions unavailable; retrying");
                }
                Err(e) => {
                    tracing::error!(error = %e, "push subscriptions");
                    return None;
                }
            }
            if Instant::now() + backoff >= deadline {
                return None;
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Whether the subscription's user muted `room` (as far as the store knows: on Kafka,
    /// as far as persist has come). When the store cannot say, not muted: a push too many
    /// beats one lost.
    async fn muted(&self, sub: &PushSubscription, room: &banter_core::RoomName) -> bool {
        match self.store.membership(sub.user, room).await {
            Ok(entry) => entry.is_some_and(|e| e.muted),
            Err(e) => {
                tracing::warn!(error = %e, "whether a room is muted");
                false
            }
        }
    }

    async fn record(&self, sub: &PushSubscription, outcome: Outcome) {
        let label = match outcome {
            Outcome::Sent => "sent",
            Outcome::Gone => "gone",
            Outcome::Refused(_) => "refused",
            Outcome::GaveUp => "gave_up",
            Outcome::Stopped => "stopped",
        };
        metrics::counter!("banter_push_total", "outcome" => label).increment(1);
        if outcome == Outcome::Gone {
            if let Err(e) = self.store.forget_push_endpoint(&sub.endpoint).await {
                tracing::warn!(error = %e, "a gone push subscription was not forgotten");
            }
        }
    }
}

/// The notifier of `banter serve`: hears every event of the in-process log as it is logged
/// and notifies in the background, until `shutdown`. Pushes still being retried then are
/// given up.
pub async fn run_local(
    notifier: Notifier,
    events: mpsc::Receiver<Event>,
    shutdown: CancellationToken,
) {
    let job = move |logged: &LoggedEvent, stop: CancellationToken| -> Option<crate::group::Job> {
        let notice = Notice::of(logged)?;
        let notifier = notifier.clone();
        let heard = Instant::now();
        Some(Box::pin(async move {
            notifier.notify(notice, heard, &stop).await
        }))
    };
    let dropped = || {
        metrics::counter!("banter_push_dropped_total").increment(1);
        tracing::warn!("too many notifications in flight; one was not sent");
    };
    crate::group::run_local_jobs(events, MAX_IN_FLIGHT, job, dropped, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use banter_core::{Cursor, NewMessage, RoomName, UserId};

    fn logged(room: &str, author: &str, mentions: &[&str]) -> LoggedEvent {
        RoomEvent::Message(NewMessage {
            id: uuid::Uuid::now_v7(),
            room: RoomName::parse(room).expect("room"),
            author_id: UserId(1),
            author: Username::parse(author).expect("name"),
            body: "hi".into(),
            created_at: chrono::Utc::now(),
            client_id: None,
            reply_to: None,
            thread_root: None,
            mentions: mentions
                .iter()
                .map(|m| Username::parse(m).expect("name"))
                .collect(),
            attachments: Vec::new(),
            bot: None,
        })
        .at_cursor(Cursor::new(0, 1))
    }

    fn told(event: &LoggedEvent) -> Vec<(String, Reason)> {
        Notice::of(event).map_or_else(Vec::new, |n| {
            n.recipients
                .into_iter()
                .map(|(u, r)| (u.as_str().to_owned(), r))
                .collect()
        })
    }

    #[test]
    fn a_dm_tells_the_other_user_and_a_mention_the_mentioned_never_the_author() {
        assert_eq!(
            told(&logged("dm:ann:bob", "ann", &[])),
            [("bob".into(), Reason::Dm)]
        );
        assert_eq!(
            told(&logged("dm:ann:bob", "Bob", &[])),
            [("ann".into(), Reason::Dm)]
        );
        assert_eq!(
            told(&logged("dm:ann:bob", "ann", &["BOB"])),
            [("bob".into(), Reason::Mention)],
            "mentioned in a DM: a mention, once"
        );
        assert_eq!(
            told(&logged("general", "ann", &["ann", "carol", "dave"])),
            [
                ("carol".into(), Reason::Mention),
                ("dave".into(), Reason::Mention)
            ]
        );
        assert!(told(&logged("general", "ann", &[])).is_empty());
    }
}
