//! Rate limits: how many of something a key (an address, a username, a user) may do per
//! period, and for how long a refused caller should wait.
//!
//! A [`Rate`] is written as people say it, `20/min`, `30/s`, `100/h` (or `off`), and allows
//! that many at once, then that many per period (GCRA, via `governor`). Each [`Limiter`]
//! counts in this process only: with several processes behind a load balancer, a key may do
//! up to the rate on each process it reaches (docs/operations.md says so, and why).

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::ApiError;

/// So many per period, all of them at once if the caller likes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?}: write a rate as N/s, N/min or N/h (e.g. 20/min), or off");
        let (count, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let count = NonZeroU32::new(count).ok_or_else(bad)?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        Ok(Self { count, per })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Parses a rate for a command-line flag: `off` (or `0`) turns the limit off.
pub fn parse_rate(s: &str) -> Result<Option<Rate>, String> {
    match s.trim() {
        "off" | "0" | "none" => Ok(None),
        other => other.parse().map(Some),
    }
}

/// Refused: the caller may try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds, rounded up (`Retry-After` has no fractions; 0 would invite a hammering).
    pub fn secs(self) -> u64 {
        self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0)
    }

    /// Milliseconds, rounded up (a client that waits exactly this long is let through,
    /// rather than refused again a fraction of a millisecond early), at least 1.
    pub fn millis(self) -> u64 {
        u64::try_from(self.0.as_micros().div_ceil(1000))
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// The HTTP answer: 429 `rate_limited` with `Retry-After`.
    pub fn into_api_error(self, what: &str) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many {what}; try again in {} s", self.secs()),
        );
        e.retry_after = Some(self.secs());
        e
    }
}

/// One limit over many keys. Keys not seen for a while are forgotten now and then, so a
/// flood of distinct keys costs memory only for as long as they are being limited.
pub struct Limiter<K: Hash + Eq + Clone> {
    /// What is limited, for metrics (`banter_rate_limited_total{limit}`).
    name: &'static str,
    inner: Option<DefaultKeyedRateLimiter<K>>,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for Limiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("name", &self.name)
            .field("on", &self.inner.is_some())
            .finish()
    }
}

/// Checks between two sweeps of forgotten keys.
const SWEEP_EVERY: u64 = 4096;

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// `None` lets everything through.
    pub fn new(name: &'static str, rate: Option<Rate>) -> Self {
        let inner = rate.map(|rate| {
            let period = rate.per / rate.count.get();
            let quota = Quota::with_period(period)
                .unwrap_or_else(|| Quota::per_second(rate.count))
                .allow_burst(rate.count);
            RateLimiter::keyed(quota)
        });
        Self {
            name,
            inner,
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one for `key`; refused when its allowance is spent.
    pub fn check(&self, key: &K) -> Result<(), RetryAfter> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            inner.retain_recent();
            inner.shrink_to_fit();
        }
        inner.check_key(key).map_err(|not_until| {
            metrics::counter!("banter_rate_limited_total", "limit" => self.name).increment(1);
            RetryAfter(not_until.wait_time_from(self.clock.now()))
        })
    }
}

/// The peer's socket address, when the server recorded it (`ConnectInfo`); never refuses.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// The address a request came from: the peer's, or with `trust_forwarded` (behind a proxy
/// that appends the client's address, as ingress-nginx does) the last `X-Forwarded-For` hop.
/// The last one, because a client can put anything in the first ones.
pub fn client_ip(peer: Option<SocketAddr>, headers: &HeaderMap, trust_forwarded: bool) -> IpAddr {
    let forwarded = trust_forwarded
        .then(|| {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|hop| hop.trim().parse::<IpAddr>().ok())
        })
        .flatten();
    forwarded
        .or(peer.map(|p| p.ip()))
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_people_write_them() {
        let r: Rate = "20/min".parse().unwrap();
        assert_eq!((r.count.get(), r.per), (20, Duration::from_secs(60)));
        assert_eq!("30/s".parse::<Rate>().unwrap().to_string(), "30/s");
        assert_eq!(" 100 / h ".parse::<Rate>().unwrap().to_string(), "100/h");
        assert_eq!(parse_rate("off").unwrap(), None);
        for bad in ["", "20", "0/min", "-1/s", "20/day", "x/s"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn a_key_gets_its_burst_then_waits_and_other_keys_are_not_touched() {
        let limiter = Limiter::new("test", Some("3/min".parse().unwrap()));
        for _ in 0..3 {
            assert!(limiter.check(&"a").is_ok());
        }
        let wait = limiter.check(&"a").unwrap_err();
        // One more is allowed every 20 s.
        assert!(wait.0 > Duration::from_secs(15) && wait.0 <= Duration::from_secs(20));
        assert_eq!(wait.secs(), 20);
        assert!(limiter.check(&"b").is_ok());
        let off: Limiter<&str> = Limiter::new("off", None);
        for _ in 0..1000 {
            assert!(off.check(&"a").is_ok());
        }
    }

    #[test]
    fn forwarded_addresses_count_only_when_trusted() {
        let peer: SocketAddr = "10.0.0.9:4000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4, 203.0.113.7".parse().unwrap());
        assert_eq!(
            client_ip(Some(peer), &headers, false),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(Some(peer), &headers, true),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        headers.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(
            client_ip(Some(peer), &headers, true),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(RetryAfter(Duration::from_millis(1)).secs(), 1);
        assert_eq!(RetryAfter(Duration::from_secs(2)).secs(), 2);
        let e = RetryAfter(Duration::from_millis(1500)).into_api_error("logins");
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!((e.code, e.retry_after), ("rate_limited", Some(2)));
        assert_eq!(RetryAfter(Duration::from_micros(33_334)).millis(), 34);
        assert_eq!(RetryAfter(Duration::from_millis(33)).millis(), 33);
        assert_eq!(RetryAfter(Duration::ZERO).millis(), 1);
    }
}
