//! The gateway's limits: new connections per address, open connections per user, sends
//! (bots' their own), typing, uploads and searches per user. A refused upgrade is an HTTP 429 with `Retry-After`; a refused send is an
//! `error` frame `rate_limited` with the send's `client_id` and `retry_after_ms`, and nothing
//! is stored, so the client sends it again (same `client_id`) after the wait.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use banter_core::UserId;
use banter_http::limit::{Limiter, Rate};

/// The limits as configured (`None`: unlimited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayLimitSettings {
    /// Messages a user may send, over all their connections on this process.
    pub sends: Option<Rate>,
    /// Messages a bot may send, over HTTP, its sockets and (a webhook's bot) its URL.
    pub bot_sends: Option<Rate>,
    /// Typing notices a user may send (on top of the one per room per 2 s that is relayed).
    pub typing: Option<Rate>,
    /// Files a user may upload.
    pub uploads: Option<Rate>,
    /// Searches a user may make (each can cost the database hundreds of milliseconds).
    pub searches: Option<Rate>,
    /// WebSocket upgrades per client address.
    pub connects_per_ip: Option<Rate>,
    /// WebSocket connections a user may hold open at once on this process.
    pub connections_per_user: Option<u32>,
    /// Take the client's address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded: bool,
}

impl Default for GatewayLimitSettings {
    fn default() -> Self {
        let rate = |s: &str| s.parse().ok();
        Self {
            // A person types far slower; a bot posting a burst of lines still fits.
            sends: rate("30/s"),
            // Slack's webhooks take one a second, with short bursts; a CI posting a build's
            // steps fits.
            bot_sends: rate("60/min"),
            typing: rate("10/s"),
            // Someone dropping a folder of photos into a room.
            uploads: rate("60/min"),
            // Search as one types asks at most four times a second (the web app waits a
            // quarter second after the last key).
            searches: rate("5/s"),
            // An office behind one address reconnecting at once after a deploy.
            connects_per_ip: rate("300/min"),
            // Tabs, phones and bots of one account.
            connections_per_user: Some(50),
            trust_forwarded: false,
        }
    }
}

impl GatewayLimitSettings {
    /// No limits (tools and tests that hammer on purpose).
    pub fn off() -> Self {
        Self {
            sends: None,
            bot_sends: None,
            typing: None,
            uploads: None,
            searches: None,
            connects_per_ip: None,
            connections_per_user: None,
            trust_forwarded: false,
        }
    }
}

/// The limiters of one gateway process.
#[derive(Debug)]
pub struct GatewayLimits {
    pub sends: Limiter<UserId>,
    pub bot_sends: Limiter<UserId>,
    pub typing: Limiter<UserId>,
    pub uploads: Limiter<UserId>,
    pub searches: Limiter<UserId>,
    pub connects_per_ip: Limiter<IpAddr>,
    pub trust_forwarded: bool,
    connections_per_user: Option<u32>,
    open: Arc<Mutex<HashMap<UserId, u32>>>,
}

impl GatewayLimits {
    pub fn new(settings: &GatewayLimitSettings) -> Self {
        Self {
            sends: Limiter::new("sends", settings.sends),
            bot_sends: Limiter::new("bot_sends", settings.bot_sends),
            typing: Limiter::new("typing", settings.typing),
            uploads: Limiter::new("uploads", settings.uploads),
            searches: Limiter::new("searches", settings.searches),
            connects_per_ip: Limiter::new("connects_per_ip", settings.connects_per_ip),
            trust_forwarded: settings.trust_forwarded,
            connections_per_user: settings.connections_per_user,
            open: Arc::default(),
        }
    }

    /// The limit on sends of a person's account, or of a bot's.
    pub fn sends_of(&self, bot: bool) -> &Limiter<UserId> {
        if bot {
            &self.bot_sends
        } else {
            &self.sends
        }
    }

    /// Counts a connection of `user` for as long as the returned slot lives; `None` when the
    /// user already holds as many as allowed.
    pub fn open_connection(&self, user: UserId) -> Option<ConnectionSlot> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(user).or_insert(0);
        if self.connections_per_user.is_some_and(|max| *n >= max) {
            metrics::counter!("banter_rate_limited_total", "limit" => "connections_per_user")
                .increment(1);
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            user,
            open: self.open.clone(),
        })
    }
}

/// One open connection of a user, given back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    user: UserId,
    open: Arc<Mutex<HashMap<UserId, u32>>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_per_user_are_counted_and_given_back() {
        let limits = GatewayLimits::new(&GatewayLimitSettings {
            connections_per_user: Some(2),
            ..GatewayLimitSettings::off()
        });
        let a = limits.open_connection(UserId(1)).expect("first");
        let _b = limits.open_connection(UserId(1)).expect("second");
        assert!(
            limits.open_connection(UserId(1)).is_none(),
            "a third is refused"
        );
        assert!(
            limits.open_connection(UserId(2)).is_some(),
            "others are not touched"
        );
        drop(a);
        assert!(
            limits.open_connection(UserId(1)).is_some(),
            "a closed one frees a slot"
        );
    }
}
