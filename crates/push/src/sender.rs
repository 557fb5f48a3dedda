//! One push to one subscription, over HTTP to its push service (RFC 8030): encrypted to the
//! browser's keys, signed with the VAPID key, retried while the service asks to wait.
//!
//! - 2xx: sent.
//! - 404 and 410: the subscription is gone (the browser unsubscribed or was reset); the
//!   caller forgets it.
//! - 429 and 5xx, or no answer: tried again after `Retry-After` or a doubling backoff, as long
//!   as the next try still falls within the push's TTL. Past it the push is given up: a
//!   notification that late is worse than none.
//! - Any other answer (400, 401, 403 for a subscription made with another key, 413): refused,
//!   given up at once, logged.

use std::time::Duration;

use banter_store::PushSubscription;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use web_push_native::p256::PublicKey;
use web_push_native::Auth;

use crate::subscription::InsecureOrigins;
use crate::vapid::{self, VapidKey};

/// How one push ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// 404 or 410: the subscription no longer exists.
    Gone,
    /// Refused with this status; trying again would not help.
    Refused(u16),
    /// Still failing when its TTL ran out.
    GaveUp,
    /// Shutdown came first: neither sent nor given up (the next notifier may send it).
    Stopped,
}

/// How a push service is talked to.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// Who runs this server, for push services to reach (`sub` of the VAPID token).
    pub subject: String,
    /// How long a push service keeps a push for a device that is offline; also how long a
    /// failing push is retried.
    pub ttl: Duration,
    /// The first wait before a retry when the service does not say (`Retry-After`).
    pub first_backoff: Duration,
    /// The longest wait between tries.
    pub max_backoff: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// Push services allowed over plain HTTP (everything else must be `https://`).
    pub insecure: InsecureOrigins,
}

impl Default for SenderSettings {
    fn default() -> Self {
        Self {
            subject: "mailto:admin@localhost".into(),
            ttl: Duration::from_secs(60 * 60),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5 * 60),
            request_timeout: Duration::from_secs(10),
            insecure: InsecureOrigins::default(),
        }
    }
}

/// What a push carries besides its payload.
#[derive(Debug, Clone)]
pub struct Push<'a> {
    pub payload: &'a [u8],
    /// See [`crate::payload::topic`].
    pub topic: &'a str,
    /// RFC 8030 §5.3: `high` wakes a phone at once.
    pub urgency: &'static str,
    /// When the push stops being worth sending: its TTL counts from the message.
    pub deadline: Instant,
}

/// Sends pushes. Cloning shares the HTTP client and its connections.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    key: VapidKey,
    settings: SenderSettings,
}

/// A stored subscription whose keys no longer parse (cannot happen for one the API checked).
#[derive(Debug, thiserror::Error)]
#[error("unusable subscription: {0}")]
pub struct Unusable(String);

fn keys_of(sub: &PushSubscription) -> Result<(url::Url, PublicKey, Auth), Unusable> {
    let endpoint = url::Url::parse(&sub.endpoint).map_err(|e| Unusable(e.to_string()))?;
    let p256dh = URL_SAFE_NO_PAD
        .decode(&sub.p256dh)
        .map_err(|e| Unusable(e.to_string()))?;
    let public = PublicKey::from_sec1_bytes(&p256dh).map_err(|e| Unusable(e.to_string()))?;
    let auth = URL_SAFE_NO_PAD
        .decode(&sub.auth)
        .map_err(|e| Unusable(e.to_string()))?;
    if auth.len() != 16 {
        return Err(Unusable("auth is not 16 bytes".into()));
    }
    Ok((endpoint, public, Auth::clone_from_slice(&auth)))
}

impl Sender {
    pub fn new(key: VapidKey, settings: SenderSettings) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            // A push service never redirects; following one would send the push elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("banter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the push HTTP client: {e}"))?;
        Ok(Self {
            client,
            key,
            settings,
        })
    }

    pub fn settings(&self) -> &SenderSettings {
        &self.settings
    }

    /// Sends `push` to `sub`, retrying as the module says, until it is sent, refused, gone,
    /// past its deadline, or `shutdown`.
    pub async fn send(
        &self,
        sub: &PushSubscription,
        push: &Push<'_>,
        shutdown: &CancellationToken,
    ) -> Outcome {
        let (endpoint, public, auth) = match keys_of(sub) {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(error = %e, "push subscription dropped");
                return Outcome::Gone;
            }
        };
        if endpoint.scheme() != "https" && !self.settings.insecure.allows(&endpoint) {
            // The API accepts no such endpoint; one kept from before a change of settings
            // is dropped rather than sent a push in the clear.
            tracing::warn!(endpoint = %vapid::origin(&endpoint), "plain-HTTP push endpoint dropped");
            return Outcome::Gone;
        }
        let origin = vapid::origin(&endpoint);
        let mut backoff = self.settings.first_backoff;
        loop {
            let wait = match self.attempt(&endpoint, &origin, &public, &auth, push).await {
                Ok(status) if status.is_success() => return Outcome::Sent,
                Ok(status) if matches!(status.as_u16(), 404 | 410) => return Outcome::Gone,
                // Retry-After is the least wait; the backoff keeps growing under it.
                Err(Retry(after)) => after.map_or(backoff, |a| a.max(backoff)),
                Ok(status) => {
                    tracing::warn!(%status, endpoint = %origin, "push refused");
                    return Outcome::Refused(status.as_u16());
                }
            };
            metrics::counter!("banter_push_retries_total").increment(1);
            if Instant::now() + wait >= push.deadline {
                return Outcome::GaveUp;
            }
            tokio::select! {
                () = shutdown.cancelled() => return Outcome::Stopped,
                () = tokio::time::sleep(wait) => {}
            }
            backoff = (backoff * 2).min(self.settings.max_backoff);
        }
    }

    /// One try: the status a push service answered, or that (and when) to try again.
    async fn attempt(
        &self,
        endpoint: &url::Url,
        origin: &str,
        public: &PublicKey,
        auth: &Auth,
        push: &Push<'_>,
    ) -> Result<StatusCode, Retry> {
        // A fresh salt and key per try (RFC 8291 forbids reusing them).
        let body = web_push_native::encrypt(push.payload.to_vec(), public, auth).map_err(|e| {
            tracing::error!(error = %e, "push encryption failed");
            Retry(None)
        })?;
        let authorization = self
            .key
            .authorization(origin, &self.settings.subject)
            .map_err(|e| {
                tracing::error!(error = %e, "VAPID signing failed");
                Retry(None)
            })?;
        let ttl = push
            .deadline
            .saturating_duration_since(Instant::now())
            .as_secs()
            .max(1);
        let answer = self
            .client
            .post(endpoint.clone())
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_ENCODING, "aes128gcm")
            .header(CONTENT_TYPE, "application/octet-stream")
            .header("TTL", ttl)
            .header("Urgency", push.urgency)
            .header("Topic", push.topic)
            .body(body)
            .send()
            .await;
        match answer {
            Ok(response) => {
                let status = response.status();
                if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                    return Err(Retry(retry_after(response.headers().get(RETRY_AFTER))));
                }
                Ok(status)
            }
            Err(e) => {
                tracing::debug!(error = %e, endpoint = %origin, "push service unreachable");
                Err(Retry(None))
            }
        }
    }
}

/// Try again, after this long when the service said.
struct Retry(Option<Duration>);

/// `Retry-After` in seconds (the HTTP-date form is not used by push services).
fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let secs: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_plain_http_endpoint_off_the_allowed_origins_is_never_sent_to() {
        let sender = Sender::new(VapidKey::generate(), SenderSettings::default()).expect("sender");
        let sub = PushSubscription {
            user: banter_core::UserId(1),
            endpoint: "http://127.0.0.1:9/push/x".into(),
            p256dh: "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4".into(),
            auth: "BTBZMqHH6r4Tts7J_aSIgg".into(),
            created_at: chrono::Utc::now(),
        };
        let push = Push {
            payload: b"{}",
            topic: "t",
            urgency: "high",
            deadline: Instant::now() + Duration::from_secs(60),
        };
        let outcome = sender.send(&sub, &push, &CancellationToken::new()).await;
        assert_eq!(outcome, Outcome::Gone);
    }
}
