//! A push service on loopback that stands in for a browser's (FCM, Mozilla's, Apple's):
//! it takes pushes over HTTP, checks each one's VAPID signature with the server's public
//! key (audience, expiry, subject), decrypts its body with the subscription's private key as
//! the browser would, and keeps what it got, per device, in order.
//!
//! Like a real one, it holds one push per `Topic` for a device ([`PushService::showing`]),
//! and it can be told to answer a device with given statuses first (410, 429...).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::Notify;
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256PublicKey};
use web_push_native::jwt_simple::claims::NoCustomClaims;
use web_push_native::jwt_simple::common::VerificationOptions;
use web_push_native::p256::elliptic_curve::rand_core::OsRng;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;
use web_push_native::p256::SecretKey;
use web_push_native::Auth;

/// One push as the stand-in received it, decrypted.
#[derive(Debug, Clone)]
pub struct Received {
    /// The JSON the body decrypted to.
    pub payload: Value,
    pub ttl: Option<u64>,
    pub urgency: Option<String>,
    pub topic: Option<String>,
}

/// A browser's subscription: its endpoint on the stand-in and the keys only it holds.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    pub endpoint: String,
    secret: SecretKey,
    auth: [u8; 16],
}

impl Device {
    /// The `PushSubscription` JSON a browser would post.
    pub fn subscription(&self) -> Value {
        json!({
            "endpoint": self.endpoint,
            "expirationTime": null,
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(self.secret.public_key().to_encoded_point(false).as_bytes()),
                "auth": URL_SAFE_NO_PAD.encode(self.auth),
            }
        })
    }
}

#[derive(Debug, Default)]
struct Inner {
    devices: HashMap<String, Device>,
    received: HashMap<String, Vec<Received>>,
    /// Statuses to answer a device with before taking its pushes.
    answers: HashMap<String, VecDeque<u16>>,
    /// Every request, however it was answered (with retries, more than `received`).
    requests: HashMap<String, usize>,
    /// Pushes refused for a bad signature or body, and why: a test expects none.
    faults: Vec<String>,
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    arrived: Notify,
    /// The server's VAPID public key, base64url, and this service's origin (the audience).
    key: String,
    origin: String,
}

impl Shared {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// See the module docs. Dropping it stops the server.
#[derive(Debug)]
pub struct PushService {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:port`: give it to `BANTER_PUSH_INSECURE_ORIGINS`.
    pub origin: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for PushService {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl PushService {
    /// Starts one on a free loopback port, for pushes signed with `vapid_public_key`.
    pub async fn start(vapid_public_key: &str) -> Self {
        Self::start_on("127.0.0.1:0", vapid_public_key).await
    }

    /// Starts one on `addr` (the port a cluster's gateways were told to accept).
    pub async fn start_on(addr: &str, vapid_public_key: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind the push service on {addr}: {e}"));
        let addr = listener.local_addr().expect("addr");
        let origin = format!("http://{addr}");
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            arrived: Notify::new(),
            key: vapid_public_key.to_owned(),
            origin: origin.clone(),
        });
        let app = Router::new()
            .route("/push/{id}", post(receive))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            origin,
            shared,
            server,
        }
    }

    /// A new browser subscription on this service.
    pub fn device(&self) -> Device {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut auth = [0u8; 16];
        rand_fill(&mut auth);
        let device = Device {
            endpoint: format!("{}/push/{id}", self.origin),
            id: id.clone(),
            secret: SecretKey::random(&mut OsRng),
            auth,
        };
        self.shared.inner().devices.insert(id, device.clone());
        device
    }

    /// Answers the device's next requests with these statuses before taking its pushes.
    pub fn answer_first(&self, device: &Device, statuses: &[u16]) {
        self.shared
            .inner()
            .answers
            .entry(device.id.clone())
            .or_default()
            .extend(statuses);
    }

    /// Waits until the device has received `count` pushes in all (at most `timeout`), and
    /// returns them all.
    pub async fn wait_for(
        &self,
        device: &Device,
        count: usize,
        timeout: Duration,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            let got = self.received(device);
            if got.len() >= count {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "{} pushes to the device within {timeout:?}, not {count}: {got:?}",
                    got.len()
                );
            }
        }
    }

    /// What the device has received, in order.
    pub fn received(&self, device: &Device) -> Vec<Received> {
        self.shared
            .inner()
            .received
            .get(&device.id)
            .cloned()
            .unwrap_or_default()
    }

    /// Requests made for the device, however answered.
    pub fn requests(&self, device: &Device) -> usize {
        self.shared
            .inner()
            .requests
            .get(&device.id)
            .copied()
            .unwrap_or(0)
    }

    /// What a device that was offline would show on waking: the newest push per topic.
    pub fn showing(&self, device: &Device) -> Vec<Received> {
        let mut by_topic: Vec<Received> = Vec::new();
        for push in self.received(device) {
            match by_topic
                .iter_mut()
                .find(|p| p.topic.is_some() && p.topic == push.topic)
            {
                Some(held) => *held = push,
                None => by_topic.push(push),
            }
        }
        by_topic
    }

    /// Pushes refused for a bad signature, encoding or body.
    pub fn faults(&self) -> Vec<String> {
        self.shared.inner().faults.clone()
    }
}

fn rand_fill(bytes: &mut [u8]) {
    use web_push_native::p256::elliptic_curve::rand_core::RngCore;
    OsRng.fill_bytes(bytes);
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let device = {
        let mut inner = shared.inner();
        *inner.requests.entry(id.clone()).or_default() += 1;
        if let Some(status) = inner.answers.get_mut(&id).and_then(VecDeque::pop_front) {
            drop(inner);
            shared.arrived.notify_waiters();
            return StatusCode::from_u16(status).expect("status");
        }
        inner.devices.get(&id).cloned()
    };
    let Some(device) = device else {
        return StatusCode::GONE;
    };
    let outcome = check(&shared, &device, &headers, &body);
    let mut inner = shared.inner();
    let status = match outcome {
        Ok(received) => {
            inner.received.entry(id).or_default().push(received);
            StatusCode::CREATED
        }
        Err((status, why)) => {
            inner.faults.push(why);
            status
        }
    };
    drop(inner);
    shared.arrived.notify_waiters();
    status
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What a push service and then a browser check of a push.
fn check(
    shared: &Shared,
    device: &Device,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Received, (StatusCode, String)> {
    let unauthorized = |why: String| (StatusCode::UNAUTHORIZED, why);
    let authorization =
        header(headers, "authorization").ok_or_else(|| unauthorized("no Authorization".into()))?;
    let (token, key) = authorization
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
        .ok_or_else(|| unauthorized(format!("not a VAPID header: {authorization}")))?;
    if key != shared.key {
        return Err((StatusCode::FORBIDDEN, "signed with another key".into()));
    }
    let public = ES256PublicKey::from_bytes(
        &URL_SAFE_NO_PAD
            .decode(key)
            .map_err(|e| unauthorized(e.to_string()))?,
    )
    .map_err(|e| unauthorized(e.to_string()))?;
    let options = VerificationOptions {
        allowed_audiences: Some([shared.origin.clone()].into()),
        ..VerificationOptions::default()
    };
    let claims = public
        .verify_token::<NoCustomClaims>(token, Some(options))
        .map_err(|e| unauthorized(format!("VAPID token: {e}")))?;
    let now = web_push_native::jwt_simple::prelude::Clock::now_since_epoch();
    let exp = claims
        .expires_at
        .ok_or_else(|| unauthorized("no exp".into()))?;
    if exp > now + web_push_native::jwt_simple::prelude::Duration::from_hours(24) {
        return Err(unauthorized("exp more than 24 h ahead".into()));
    }
    if !claims
        .subject
        .as_deref()
        .is_some_and(|s| s.starts_with("mailto:") || s.starts_with("https:"))
    {
        return Err(unauthorized(
            "sub is not a mailto: or https: contact".into(),
        ));
    }
    if header(headers, "content-encoding") != Some("aes128gcm") {
        return Err((
            StatusCode::BAD_REQUEST,
            "Content-Encoding is not aes128gcm".into(),
        ));
    }
    let ttl = header(headers, "ttl").and_then(|t| t.parse().ok());
    if ttl.is_none() {
        return Err((StatusCode::BAD_REQUEST, "no TTL".into()));
    }
    let plain = web_push_native::decrypt(
        body.to_vec(),
        &device.secret,
        &Auth::clone_from_slice(&device.auth),
    )
    .map_err(|e| (StatusCode::BAD_REQUEST, format!("does not decrypt: {e}")))?;
    let payload: Value = serde_json::from_slice(&plain)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("not JSON: {e}")))?;
    Ok(Received {
        payload,
        ttl,
        urgency: header(headers, "urgency").map(str::to_owned),
        topic: header(headers, "topic").map(str::to_owned),
    })
}
