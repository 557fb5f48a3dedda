//! Outgoing webhooks: a room's new messages (those starting with a trigger word, if the
//! webhook has one) POSTed as JSON to a URL, signed, retried, and what the receiver answers
//! posted back to the room as the webhook's own bot.
//!
//! - Made by a member (in a private room, by whoever may add members), like an incoming
//!   webhook; its bot is limited to the room and added to it through the room's log. Its
//!   secret is shown once; deliveries carry `X-Banter-Timestamp` (Unix seconds) and
//!   `X-Banter-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
//! - Delivered after the fact, from the log, never on the send's path: on `serve` from the
//!   in-process log ([`run_local`]); on Kafka by the gateways as a consumer group of their
//!   own (`hooks-svc`, [`job`]), so each message is delivered by one of them and a crash
//!   leaves it to the next (at least once: `X-Banter-Delivery` names the message).
//! - Retried with backoff after a network error, a timeout, 408, 429 or 5xx, up to
//!   `attempts`; given up after that, and at once after another 4xx. Whether the webhook
//!   still stands is read before every try (a revocation on another gateway is not heard
//!   here). Messages of bots are never sent (no loops between bots).
//! - The URL must be `http(s)`, with no user or password, and not reach a loopback, private,
//!   link-local or unique-local address unless the operator allows it
//!   (`BANTER_HOOKS_ALLOW_PRIVATE`): checked when it is made, and on every delivery by the
//!   client's own resolver ([`http_client`]), so the addresses checked are the ones connected
//!   to (a name that changes its answer between a check and a connection gains nothing), and
//!   redirects are not followed.
//! - A reply: a 2xx answer whose JSON has a `text` (Slack's and Mattermost's outgoing
//!   webhooks answer so) is sent to the room by the webhook's bot through the chat service,
//!   with a client id of the delivery's, so a delivery made twice replies once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use banter_auth::{AuthUser, BotScope};
use banter_bus::Event;
use banter_core::{
    ClientId, LoggedEvent, Message, MessageBody, RoomChange, RoomEvent, RoomName, ValidationError,
};
use banter_http::{ApiJson, Envelope};
use banter_store::{NewOutgoing, Outgoing};
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::api::Error;
use crate::bots::member_audit;
use crate::chat::{Actor, BotActor};
use crate::GatewayState;

/// How outgoing webhooks are delivered.
#[derive(Debug, Clone)]
pub struct HookSettings {
    /// Let URLs reach loopback and private addresses (`BANTER_HOOKS_ALLOW_PRIVATE`): for a
    /// receiver on the same machine or network. Off by default: a member could otherwise make
    /// the server call into its own network.
    pub allow_private: bool,
    /// Tries of one delivery before it is given up.
    pub attempts: u32,
    /// The wait before the second try; it doubles for each one after (at most a minute).
    pub first_retry: Duration,
    /// How long one try may take.
    pub timeout: Duration,
    /// Deliveries at once in one process; on `serve`, past it a delivery is given up rather
    /// than hold the log's fan-out up.
    pub max_in_flight: usize,
    /// On Kafka, the gateways' consumer group that delivers (`BANTER_HOOKS_GROUP`).
    pub group: String,
}

impl Default for HookSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            attempts: 5,
            first_retry: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            max_in_flight: 256,
            group: "hooks-svc".into(),
        }
    }
}

/// A trigger word: 1 to 32 characters, no spaces.
const MAX_TRIGGER: usize = 32;
/// How long a room's webhooks are taken as known before the store is asked again.
const KNOWN_FOR: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOutgoingInput {
    url: String,
    trigger: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OutgoingView {
    id: Uuid,
    room: RoomName,
    /// Its bot's name.
    name: banter_core::Username,
    url: String,
    trigger: Option<String>,
    created_by: banter_core::Username,
    created_at: String,
}

impl From<Outgoing> for OutgoingView {
    fn from(o: Outgoing) -> Self {
        Self {
            id: o.id,
            room: o.room,
            name: o.bot.username,
            url: o.url,
            trigger: o.trigger,
            created_by: o.created_by_name,
            created_at: o
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }
}

/// Whether an address is one a webhook may not reach unless the operator allows it.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                // CGNAT, 100.64.0.0/10.
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                // Unique local fc00::/7 and link-local fe80::/10.
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// The HTTP client of deliveries. Unless private addresses are allowed, its resolver refuses
/// a name any of whose addresses is private; an address in the URL itself was checked when
/// the webhook was made, and a stored URL does not change. Redirects are not followed: the
/// place they point to was never checked.
pub fn http_client(allow_private: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    let builder = if allow_private {
        builder
    } else {
        builder.dns_resolver(Arc::new(PublicOnly))
    };
    builder.build().expect("an HTTP client with rustls")
}

/// A resolver that gives a name's addresses only if none of them is private.
struct PublicOnly;

/// Why [`PublicOnly`] refused a name: found in a send's error to give up at once.
#[derive(Debug)]
struct PrivateAddress(String);

impl std::fmt::Display for PrivateAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} resolves to a private address", self.0)
    }
}

impl std::error::Error for PrivateAddress {}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.iter().any(|a| is_private(a.ip())) {
                return Err(
                    Box::new(PrivateAddress(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The [`PrivateAddress`] somewhere in an error's chain of sources, if it is there.
fn private_address<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a PrivateAddress> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<PrivateAddress>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// A webhook's URL, checked.
fn check_url(raw: &str, allow_private: bool) -> Result<url::Url, ValidationError> {
    let bad = |why: &str| ValidationError::new("url", why.to_owned());
    let url = url::Url::parse(raw.trim()).map_err(|_| bad("is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be http:// or https://"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("may not carry a user or password"));
    }
    let private = match url.host() {
        None => return Err(bad("needs a host")),
        Some(url::Host::Ipv4(ip)) => is_private(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_private(IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name.to_ascii_lowercase().ends_with(".localhost")
        }
    };
    if private && !allow_private {
        return Err(bad(
            "may not reach a loopback or private address (the operator can allow it: BANTER_HOOKS_ALLOW_PRIVATE)",
        ));
    }
    Ok(url)
}

fn check_trigger(raw: &str) -> Result<String, ValidationError> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > MAX_TRIGGER || t.chars().any(char::is_whitespace) {
        return Err(ValidationError::new(
            "trigger",
            format!("must be one word of 1 to {MAX_TRIGGER} characters"),
        ));
    }
    Ok(t.to_owned())
}

/// `POST /api/v1/rooms/{room}/outgoing-webhooks` `{"url","trigger"?,"name"?}` (a member; in a
/// private room, whoever may add members): the webhook, and its secret, shown this once.
pub async fn create(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(room): Path<String>,
    ApiJson(input): ApiJson<NewOutgoingInput>,
) -> Result<Response, Error> {
    let (maker, room) = crate::bots::hook_maker(&state, &user, &room).await?;
    let url = check_url(&input.url, state.config.hooks.allow_private)?;
    let trigger = input.trigger.as_deref().map(check_trigger).transpose()?;
    let name = match &input.name {
        Some(name) => crate::bots::bot_name(name)?,
        None => crate::bots::default_name(&room, "out")?,
    };
    let secret = banter_auth::bot::BotSecret::generate("bws_").token;
    let id = Uuid::now_v7();
    let audit = member_audit(&user, "webhook.create", &id.to_string(), &room);
    let made = state
        .store
        .create_outgoing(
            &NewOutgoing {
                id,
                room: room.clone(),
                bot: &name,
                url: url.to_string(),
                trigger,
                secret: secret.clone(),
                created_by: user.id,
                created_at: audit.at,
            },
            &audit,
        )
        .await;
    let made = match made {
        Ok(made) => made,
        Err(e) => return Ok(crate::bots::store_conflict(e, "that name is taken")),
    };
    let undo = member_audit(&user, "webhook.revoke", &id.to_string(), &room);
    crate::bots::add_hook_bot(&state, &maker, &room, &made.bot.username, async {
        state.store.revoke_outgoing(id, &undo).await.map(|_| ())
    })
    .await?;
    state.hooks.forget(&room);
    let mut view = serde_json::to_value(OutgoingView::from(made)).expect("json");
    view["secret"] = serde_json::Value::String(secret);
    Ok(Envelope::created("Webhook created; its secret is shown this once", view).into_response())
}

/// `GET /api/v1/rooms/{room}/outgoing-webhooks` (its members, and admins).
pub async fn list(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(room): Path<String>,
) -> Result<Envelope<serde_json::Value>, Error> {
    let room = RoomName::parse(&room)?;
    crate::bots::may_see_hooks(&state, &user, &room).await?;
    let hooks: Vec<OutgoingView> = state
        .store
        .outgoing_of(&room)
        .await?
        .into_iter()
        .map(OutgoingView::from)
        .collect();
    Ok(Envelope::ok(
        "Outgoing webhooks",
        serde_json::json!({ "webhooks": hooks }),
    ))
}

/// `DELETE /api/v1/rooms/{room}/outgoing-webhooks/{id}` (its maker, and admins).
pub async fn revoke(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path((room, id)): Path<(String, String)>,
) -> Result<Envelope<serde_json::Value>, Error> {
    const NO_HOOK: Error = Error::NotFound("no such webhook");
    let room = RoomName::parse(&room)?;
    let id = Uuid::parse_str(&id).map_err(|_| NO_HOOK)?;
    let hook = state.store.outgoing(id).await?.ok_or(NO_HOOK)?;
    if hook.room != room || hook.revoked_at.is_some() {
        return Err(NO_HOOK);
    }
    crate::bots::may_revoke_hook(&state, &user, hook.created_by).await?;
    let audit = member_audit(&user, "webhook.revoke", &id.to_string(), &room);
    state
        .store
        .revoke_outgoing(id, &audit)
        .await?
        .ok_or(NO_HOOK)?;
    state.hooks.forget(&room);
    Ok(Envelope::ok(
        "Webhook revoked",
        serde_json::json!({ "id": id, "revoked": true }),
    ))
}

/// A room's webhooks, and when they were read.
type Seen = (Instant, Arc<Vec<Outgoing>>);

/// The rooms' webhooks as lately read from the store (see [`KNOWN_FOR`]). A webhook made on
/// another gateway is heard of through the log: its bot is added to the room before anything
/// is delivered, and that event makes the room's webhooks be read again ([`candidate`]).
#[derive(Debug, Default)]
pub struct Known {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    rooms: HashMap<RoomName, Seen>,
    /// How many times a room was forgotten: a read that began before one is not kept, since
    /// it may be older than what made the room be forgotten.
    forgotten: u64,
}

impl Known {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A webhook of the room was made or revoked, or a member added: read it again next time.
    pub fn forget(&self, room: &RoomName) {
        let mut inner = self.lock();
        inner.rooms.remove(room);
        inner.forgotten += 1;
    }

    /// Known lately to have none: the common case, decided without a task or a query.
    fn none_in(&self, room: &RoomName) -> bool {
        self.lock()
            .rooms
            .get(room)
            .is_some_and(|(at, hooks)| hooks.is_empty() && at.elapsed() < KNOWN_FOR)
    }

    async fn of(&self, state: &GatewayState, room: &RoomName) -> Vec<Outgoing> {
        let began = {
            let inner = self.lock();
            if let Some((at, hooks)) = inner.rooms.get(room) {
                if at.elapsed() < KNOWN_FOR {
                    return hooks.as_ref().clone();
                }
            }
            inner.forgotten
        };
        let hooks = match state.store.outgoing_of(room).await {
            Ok(hooks) => hooks,
            Err(e) => {
                tracing::warn!(error = %e, %room, "reading a room's outgoing webhooks");
                return Vec::new();
            }
        };
        let mut inner = self.lock();
        if inner.forgotten == began {
            if inner.rooms.len() > 10_000 {
                inner.rooms.retain(|_, (at, _)| at.elapsed() < KNOWN_FOR);
            }
            inner
                .rooms
                .insert(room.clone(), (Instant::now(), Arc::new(hooks.clone())));
        }
        hooks
    }
}

/// The message of an event that webhooks may be told about: a person's (never a bot's), in
/// a room that may have webhooks. Decided before anything is copied: on `serve` this runs
/// for every event, as the log hands it out, in the log's order. A member added may be a new
/// webhook's bot, maybe made on another gateway: the room's webhooks are read again.
fn candidate(known: &Known, logged: &LoggedEvent) -> Option<Message> {
    match &logged.event {
        RoomEvent::Message(m)
            if m.bot.is_none() && m.room.direct_members().is_none() && !known.none_in(&m.room) =>
        {
            logged.message()
        }
        RoomEvent::Room(change) if matches!(change.change, RoomChange::Added { .. }) => {
            known.forget(&change.room);
            None
        }
        _ => None,
    }
}

/// Whether `hook` wants `body`: every message, or those whose first word is its trigger.
fn wants(hook: &Outgoing, body: &str) -> bool {
    match &hook.trigger {
        None => true,
        Some(trigger) => body
            .strip_prefix(trigger.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace)),
    }
}

/// The work for one logged event: `None` when it is no message webhooks are told about.
/// Resolves true once every delivery is done or given up, false when `stop` cut it short.
pub fn job(
    state: &GatewayState,
    logged: &LoggedEvent,
    stop: CancellationToken,
) -> Option<BoxFuture<'static, bool>> {
    let message = candidate(&state.hooks, logged)?;
    let state = state.clone();
    Some(Box::pin(async move {
        let hooks = state.hooks.of(&state, &message.room).await;
        let mut finished = true;
        // A room's new messages: one said before the webhook was made is not for it, however
        // late it is read here (a consumer catching up).
        let fresh = |h: &Outgoing| message.created_at >= h.created_at;
        for hook in hooks
            .into_iter()
            .filter(|h| fresh(h) && wants(h, &message.body))
        {
            finished &= deliver(&state, &hook, &message, &stop).await;
        }
        finished
    }))
}

/// The signature of a delivery: `v1=` and the hex HMAC-SHA256 of `<timestamp>.<body>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The body a receiver gets: banter's message, and the fields Slack's and Mattermost's
/// outgoing webhooks send, so bots written for them read it as it is.
fn payload(hook: &Outgoing, message: &Message) -> serde_json::Value {
    serde_json::json!({
        "webhook_id": hook.id,
        "room": message.room,
        "message": message,
        "trigger": hook.trigger,
        "text": message.body,
        "user_name": message.author,
        "channel_name": message.room,
        "post_id": message.id,
        "trigger_word": hook.trigger.clone().unwrap_or_default(),
        "timestamp": message.created_at.timestamp_millis(),
    })
}

/// What one try came to.
enum Try {
    Done(Option<String>),
    Again(String),
    GiveUp(String),
    /// Revoked since the room's webhooks were read (maybe on another gateway).
    Revoked,
}

async fn deliver(
    state: &GatewayState,
    hook: &Outgoing,
    message: &Message,
    stop: &CancellationToken,
) -> bool {
    let settings = &state.config.hooks;
    let body = serde_json::to_vec(&payload(hook, message)).expect("json");
    let mut wait = settings.first_retry;
    for attempt in 1..=settings.attempts.max(1) {
        let outcome = tokio::select! {
            () = stop.cancelled() => return false,
            outcome = try_once(state, hook, message, &body) => outcome,
        };
        match outcome {
            Try::Done(reply) => {
                metrics::counter!("banter_webhook_deliveries_total", "outcome" => "delivered")
                    .increment(1);
                if let Some(text) = reply {
                    reply_as_bot(state, hook, message, &text).await;
                }
                return true;
            }
            Try::Revoked => {
                metrics::counter!("banter_webhook_deliveries_total", "outcome" => "revoked")
                    .increment(1);
                tracing::debug!(webhook = %hook.id, "an outgoing webhook was revoked; not sent");
                return true;
            }
            Try::GiveUp(why) => {
                metrics::counter!("banter_webhook_deliveries_total", "outcome" => "refused")
                    .increment(1);
                tracing::warn!(webhook = %hook.id, room = %hook.room, %why, "an outgoing webhook refused a delivery; given up");
                return true;
            }
            Try::Again(why) if attempt < settings.attempts => {
                tracing::debug!(webhook = %hook.id, attempt, %why, "retrying an outgoing webhook");
                tokio::select! {
                    () = stop.cancelled() => return false,
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(60));
            }
            Try::Again(why) => {
                metrics::counter!("banter_webhook_deliveries_total", "outcome" => "given_up")
                    .increment(1);
                tracing::warn!(webhook = %hook.id, room = %hook.room, %why, attempts = settings.attempts, "an outgoing webhook failed every try; given up");
                return true;
            }
        }
    }
    true
}

async fn try_once(state: &GatewayState, hook: &Outgoing, message: &Message, body: &[u8]) -> Try {
    let settings = &state.config.hooks;
    let Ok(url) = url::Url::parse(&hook.url) else {
        return Try::GiveUp("its URL does not parse".into());
    };
    // The room's webhooks are known for a while (KNOWN_FOR), and a revocation on another
    // gateway is not heard here: whether it still stands is read before every try, so a
    // revoked webhook is sent nothing once its revocation is stored.
    match state.store.outgoing(hook.id).await {
        Ok(Some(now)) if now.revoked_at.is_none() => {}
        Ok(_) => return Try::Revoked,
        Err(e) => return Try::Again(format!("reading the webhook: {e}")),
    }
    let timestamp = chrono::Utc::now().timestamp();
    let request = state
        .webhook_http
        .post(url)
        .timeout(settings.timeout)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("banter-webhooks/", env!("CARGO_PKG_VERSION")),
        )
        .header("x-banter-webhook-id", hook.id.to_string())
        .header("x-banter-delivery", message.id.to_string())
        .header("x-banter-timestamp", timestamp.to_string())
        .header(
            "x-banter-signature",
            signature(&hook.secret, timestamp, body),
        )
        .body(body.to_vec());
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            // What the name resolves to now, not when the webhook was made: no use trying again.
            if let Some(private) = private_address(&e) {
                return Try::GiveUp(private.to_string());
            }
            return Try::Again(format!("sending: {e}"));
        }
    };
    let status = response.status();
    if status.is_success() {
        // A reply is at most a message's length; a larger answer is no reply.
        let text = response.bytes().await.ok().and_then(|b| {
            (b.len() <= 64 * 1024)
                .then(|| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .flatten()
        });
        let reply = text
            .as_ref()
            .and_then(|v| v["text"].as_str())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        return Try::Done(reply);
    }
    if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
        Try::Again(format!("answered {status}"))
    } else {
        Try::GiveUp(format!("answered {status}"))
    }
}

/// Posts a receiver's reply as the webhook's bot, through the chat service like any send.
async fn reply_as_bot(state: &GatewayState, hook: &Outgoing, message: &Message, text: &str) {
    let Ok(body) = MessageBody::parse(text) else {
        tracing::warn!(webhook = %hook.id, "an outgoing webhook's reply is no message (empty or too long)");
        return;
    };
    let bot = Actor {
        id: hook.bot.id,
        name: hook.bot.username.clone(),
        bot: Some(Arc::new(BotActor {
            scope: BotScope {
                rooms: Some(Arc::from(vec![hook.room.clone()])),
            },
            label: None,
        })),
    };
    // One reply per delivery, however many times it is delivered.
    let client_id = ClientId::parse(&format!(
        "hook-{}-{}",
        &hook.id.simple().to_string()[..12],
        message.id.simple()
    ))
    .ok();
    let sent = async {
        let mut reader = state.chat.reader(&bot, hook.room.clone()).await?;
        state
            .chat
            .send(&bot, &mut reader, body, client_id, None, &[])
            .await?
            .await
    };
    if let Err(e) = sent.await {
        tracing::warn!(webhook = %hook.id, error = %e, "posting an outgoing webhook's reply");
    }
}

/// The figures of the gateways' delivering group.
pub const GROUP_METRICS: banter_push::GroupMetrics = banter_push::GroupMetrics {
    partitions: "banter_hooks_partitions",
    commit_rounds: "banter_hooks_commit_rounds_total",
    name: "outgoing webhooks",
};

/// The deliverer on Kafka: the gateways' consumer group of their own (`hooks-svc`) on
/// `chat-in`, until `shutdown`; each message is delivered by one gateway, again by the next
/// owner of its partition after a crash.
pub async fn run_group(
    state: GatewayState,
    kafka: banter_bus::KafkaSettings,
    shutdown: CancellationToken,
) {
    let mut settings = banter_push::GroupSettings::new(kafka);
    settings.group.clone_from(&state.config.hooks.group);
    settings.max_in_flight = state.config.hooks.max_in_flight.max(1);
    let work = move |logged: &LoggedEvent, stop: CancellationToken| job(&state, logged, stop);
    if let Err(e) = banter_push::group::run_jobs(settings, GROUP_METRICS, work, shutdown).await {
        tracing::error!(error = %e, "outgoing webhooks' consumer group stopped");
    }
}

/// The deliverer of `banter serve`: hears every event of the in-process log as it is logged
/// and delivers in the background, until `shutdown` (deliveries still being retried then are
/// given up: `serve`'s log is not read again).
pub async fn run_local(
    state: GatewayState,
    events: mpsc::Receiver<Event>,
    shutdown: CancellationToken,
) {
    let max = state.config.hooks.max_in_flight;
    let work = move |logged: &LoggedEvent, stop: CancellationToken| job(&state, logged, stop);
    let dropped = || {
        metrics::counter!("banter_webhook_deliveries_total", "outcome" => "dropped").increment(1);
        tracing::warn!("too many webhook deliveries in flight; one was not made");
    };
    banter_push::group::run_local_jobs(events, max, work, dropped, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_loopback_urls_are_refused_unless_allowed() {
        for bad in [
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://api.localhost/x",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://172.16.5.4/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
        ] {
            assert_eq!(check_url(bad, false).expect_err(bad).field, "url", "{bad}");
            assert!(check_url(bad, true).is_ok(), "{bad} allowed by the setting");
        }
        for bad in [
            "ftp://example.com/",
            "not a url",
            "http://user:pw@example.com/",
        ] {
            assert!(check_url(bad, true).is_err(), "{bad}");
        }
        assert!(check_url("https://hooks.example.com/banter", false).is_ok());
        assert!(check_url("http://8.8.8.8/", false).is_ok());
    }

    /// A name that resolves to loopback is refused by the deliveries' client, which never
    /// connects: the first connection the receiver sees is the allowed client's, after it.
    #[tokio::test]
    async fn the_client_refuses_names_that_resolve_to_private_addresses() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://localhost:{}/hook",
            listener.local_addr().unwrap().port()
        );
        let receiver = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request ended early");
                seen.extend_from_slice(&buf[..n]);
            }
            conn.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&seen).into_owned()
        });

        let refused = http_client(false)
            .post(&url)
            .header("x-try", "refused")
            .send()
            .await
            .expect_err("localhost is a private address");
        let why = private_address(&refused).expect("refused by the resolver");
        assert_eq!(why.to_string(), "localhost resolves to a private address");

        let allowed = http_client(true)
            .post(&url)
            .header("x-try", "allowed")
            .send()
            .await
            .expect("allowed by the setting");
        assert_eq!(allowed.status(), 204);
        let first = receiver.await.unwrap();
        assert!(first.contains("x-try: allowed"), "{first}");
    }

    #[test]
    fn the_signature_is_an_hmac_of_the_timestamp_and_the_body() {
        // Python's hmac.new(b"key", b'1700000000.{"text":"hi"}', sha256).hexdigest().
        let sig = signature("key", 1_700_000_000, b"{\"text\":\"hi\"}");
        assert_eq!(
            sig,
            "v1=e0fb27bbd98eedf3b560379f4c21ed82331fa6f39b2c39ccf439a53c12cd1485"
        );
        assert_ne!(sig, signature("other", 1_700_000_000, b"{\"text\":\"hi\"}"));
        assert_ne!(sig, signature("key", 1_700_000_001, b"{\"text\":\"hi\"}"));
    }

    /// A room known to have no webhooks skips its messages without a query, until a member
    /// is added (a new webhook's bot, maybe made on another gateway): then it is read again.
    #[test]
    fn a_member_added_makes_the_rooms_webhooks_be_read_again() {
        use banter_core::{Cursor, NewMessage, NewRoomChange, UserId, UserRef, Username};
        let room = RoomName::parse("builds").expect("room");
        let ann = UserRef {
            id: UserId(1),
            name: Username::parse("ann").expect("name"),
        };
        let said = |n: u64| {
            RoomEvent::Message(NewMessage {
                id: Uuid::now_v7(),
                room: room.clone(),
                author_id: ann.id,
                author: ann.name.clone(),
                body: format!("line {n}"),
                created_at: chrono::Utc::now(),
                client_id: None,
                reply_to: None,
                thread_root: None,
                mentions: Vec::new(),
                attachments: Vec::new(),
                bot: None,
            })
            .at_cursor(Cursor::new(0, n))
        };
        let known = Known::default();
        known
            .lock()
            .rooms
            .insert(room.clone(), (Instant::now(), Arc::default()));
        assert!(candidate(&known, &said(1)).is_none(), "known to have none");

        let added = RoomEvent::Room(NewRoomChange {
            id: Uuid::now_v7(),
            room: room.clone(),
            user_id: ann.id,
            user: ann.name.clone(),
            at: chrono::Utc::now(),
            client_id: None,
            change: RoomChange::Added {
                member: UserRef {
                    id: UserId(2),
                    name: Username::parse("ci-out").expect("name"),
                },
            },
        })
        .at_cursor(Cursor::new(0, 2));
        assert!(candidate(&known, &added).is_none(), "no message");
        let next = candidate(&known, &said(3)).expect("read again");
        assert_eq!(next.body, "line 3");
        assert_eq!(known.lock().forgotten, 1);
    }

    #[test]
    fn triggers_are_whole_first_words() {
        assert!(check_trigger("!deploy").is_ok());
        assert!(check_trigger("two words").is_err());
        assert!(check_trigger("").is_err());
    }
}
