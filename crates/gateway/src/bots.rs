//! Bots and integrations over HTTP: bot accounts (made, listed and revoked by admins),
//! sending a message with any Bearer token (`POST /api/v1/rooms/{room}/messages`), and
//! incoming webhooks (a member makes one for a room; whoever holds its URL posts to the room
//! as its bot, with Slack's body).
//!
//! A message sent here takes the socket's path exactly: the chat service's rights, the room's
//! log, the answer once durable, `client_id` idempotency. A bot is an account like anyone's,
//! so it is a member of rooms through the log like anyone; only its records (its token's
//! digest, its rooms, a webhook's secret) are the server's own, written directly like invites.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use banter_auth::bot::{BotSecret, HOOK_PREFIX, PREFIX};
use banter_auth::{AuthUser, BotScope};
use banter_bus::Event;
use banter_core::{BotLabel, ClientId, Message, MessageBody, RoomName, Username, ValidationError};
use banter_http::{ApiError, ApiJson, Envelope};
use banter_store::{Bot, NewAudit, NewBot, NewWebhook, StoreError, Webhook};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::admin::AdminUser;
use crate::api::{actor, Error};
use crate::chat::{Actor, BotActor};
use crate::GatewayState;

/// A bot may be limited to at most this many rooms.
pub const MAX_BOT_ROOMS: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBotInput {
    name: String,
    /// The rooms it may use; absent: any room a member may.
    rooms: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct BotView {
    name: Username,
    created_by: Username,
    created_at: String,
    /// The rooms it is limited to (`null`: none).
    rooms: Option<Vec<RoomName>>,
    revoked: bool,
}

impl From<Bot> for BotView {
    fn from(b: Bot) -> Self {
        Self {
            name: b.user.username,
            created_by: b.created_by,
            created_at: time(b.created_at),
            rooms: b.rooms,
            revoked: b.revoked,
        }
    }
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// 409 `conflict`.
fn conflict(why: &'static str) -> Response {
    ApiError::new(StatusCode::CONFLICT, "conflict", why).into_response()
}

pub(crate) fn store_conflict(e: StoreError, why: &'static str) -> Response {
    match e {
        StoreError::Conflict(_) => conflict(why),
        other => Error::from(other).into_response(),
    }
}

/// `POST /api/v1/bots` `{"name","rooms"?}` (admins): a bot account and its token, shown
/// this once.
pub async fn create(
    State(state): State<GatewayState>,
    admin: AdminUser,
    ApiJson(input): ApiJson<NewBotInput>,
) -> Result<Response, Error> {
    let name = bot_name(&input.name)?;
    let rooms = match input.rooms {
        None => None,
        Some(rooms) if rooms.len() > MAX_BOT_ROOMS => {
            return Err(ValidationError::new(
                "rooms",
                format!("a bot may be limited to at most {MAX_BOT_ROOMS} rooms"),
            )
            .into())
        }
        Some(rooms) => Some(
            rooms
                .iter()
                .map(|r| RoomName::parse(r).map_err(|e| ValidationError::new("rooms", e.message)))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let secret = BotSecret::generate(PREFIX);
    let audit = admin.audit(
        "bot.create",
        name.as_str(),
        serde_json::json!({ "rooms": rooms.as_ref().map(|r| r.iter().map(RoomName::as_str).collect::<Vec<_>>()) }),
    );
    let made = state
        .store
        .create_bot(
            &NewBot {
                name: &name,
                token_hash: Some(secret.digest),
                created_by: admin.user.id,
                created_at: audit.at,
                rooms,
            },
            &audit,
        )
        .await;
    let made = match made {
        Ok(made) => made,
        Err(e) => return Ok(store_conflict(e, "that name is taken")),
    };
    tracing::info!(bot = %made.user.username, by = %admin.user.username, "bot created");
    Ok(Envelope::created(
        "Bot created; its token is shown this once",
        serde_json::json!({
            "name": made.user.username,
            "token": secret.token,
            "rooms": made.rooms,
        }),
    )
    .into_response())
}

/// `GET /api/v1/bots` (admins): every bot with a token, revoked ones too.
pub async fn list(
    State(state): State<GatewayState>,
    _admin: AdminUser,
) -> Result<Envelope<serde_json::Value>, Error> {
    let bots: Vec<BotView> = state
        .store
        .bots()
        .await?
        .into_iter()
        .map(BotView::from)
        .collect();
    Ok(Envelope::ok("Bots", serde_json::json!({ "bots": bots })))
}

/// `DELETE /api/v1/bots/{name}` (admins): its token stops working everywhere at once (it is
/// announced like a deactivation, so its sockets close with 4003).
pub async fn revoke(
    State(state): State<GatewayState>,
    admin: AdminUser,
    Path(name): Path<String>,
) -> Result<Envelope<serde_json::Value>, Error> {
    let audit = admin.audit("bot.revoke", &name, serde_json::json!({}));
    let account = state
        .store
        .revoke_bot(&name, &audit)
        .await?
        .ok_or(Error::NotFound("no such bot"))?;
    announce_standing(&state, &account).await?;
    tracing::info!(bot = %account.user.username, by = %admin.user.username, "bot revoked");
    Ok(Envelope::ok(
        "Bot revoked",
        serde_json::json!({ "name": account.user.username, "revoked": true }),
    ))
}

async fn announce_standing(
    state: &GatewayState,
    account: &banter_store::Account,
) -> Result<(), Error> {
    // Stored first: a gateway that starts now reads it; those running hear this.
    state
        .bus
        .announce(Event::Account(account.standing()))
        .await
        .map_err(|e| Error::Unavailable(format!("announcing a revocation: {e}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostInput {
    body: String,
    client_id: Option<String>,
    reply_to: Option<Uuid>,
    #[serde(default)]
    attachments: Vec<Uuid>,
}

/// `POST /api/v1/rooms/{room}/messages` `{"body","client_id"?,"reply_to"?,"attachments"?}`,
/// for a user's token or a bot's: 201 with the message and its cursor once it is durable
/// (the same `client_id` again: the first message); 503 `unavailable` when the log did not
/// take it.
pub async fn post_message(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(room): Path<String>,
    ApiJson(input): ApiJson<PostInput>,
) -> Result<Response, Error> {
    let room = RoomName::parse(&room)?;
    let body = MessageBody::parse(&input.body)?;
    let client_id = input
        .client_id
        .as_deref()
        .map(ClientId::parse)
        .transpose()?;
    if input.attachments.len() > banter_core::Attachment::MAX_PER_MESSAGE {
        return Err(ValidationError::new(
            "attachments",
            format!(
                "at most {} files per message",
                banter_core::Attachment::MAX_PER_MESSAGE
            ),
        )
        .into());
    }
    post(
        &state,
        &actor(&user),
        room,
        body,
        client_id,
        input.reply_to,
        &input.attachments,
    )
    .await
    .map(|m| Envelope::created("Message sent", m).into_response())
}

/// Sends as `actor`, within its rate, and answers once durable.
async fn post(
    state: &GatewayState,
    actor: &Actor,
    room: RoomName,
    body: MessageBody,
    client_id: Option<ClientId>,
    reply_to: Option<Uuid>,
    attachments: &[Uuid],
) -> Result<Message, Error> {
    let mut reader = state.chat.reader(actor, room).await?;
    state
        .limits
        .sends_of(actor.bot.is_some())
        .check(&actor.id)
        .map_err(Error::RateLimited)?;
    let pending = state
        .chat
        .send(actor, &mut reader, body, client_id, reply_to, attachments)
        .await?;
    let acked = pending.await?;
    match acked.message {
        Some(message) => Ok(message.at(acked.cursor)),
        // The client id was first used for something else (a reaction, a read position).
        None => Err(Error::Conflict(
            "that client_id was used for another change",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookInput {
    /// The name its bot posts under (default: `<room>-hook-<4 hex>`).
    name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct WebhookView {
    id: Uuid,
    room: RoomName,
    /// Its bot's name.
    name: Username,
    created_by: Username,
    created_at: String,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id,
            room: w.room,
            name: w.bot.username,
            created_by: w.created_by_name,
            created_at: time(w.created_at),
        }
    }
}

/// Where the webhook's URL points: this server as the client reached it.
fn base_url(state: &GatewayState, headers: &HeaderMap) -> String {
    let trusted = |name: &str| {
        state
            .limits
            .trust_forwarded
            .then(|| headers.get(name).and_then(|v| v.to_str().ok()))
            .flatten()
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let host = trusted("x-forwarded-host")
        .or_else(|| {
            headers
                .get(axum::http::header::HOST)
                .and_then(|v| v.to_str().ok())
        })
        .unwrap_or("localhost");
    let scheme = trusted("x-forwarded-proto").unwrap_or(state.config.scheme);
    format!("{scheme}://{host}")
}

/// `POST /api/v1/rooms/{room}/webhooks` `{"name"?}` (a member; in a private room, whoever may
/// add members): a webhook whose bot is added to the room, and its URL, shown this once.
pub async fn create_webhook(
    State(state): State<GatewayState>,
    user: AuthUser,
    headers: HeaderMap,
    Path(room): Path<String>,
    ApiJson(input): ApiJson<NewWebhookInput>,
) -> Result<Response, Error> {
    let (maker, room) = hook_maker(&state, &user, &room).await?;
    let name = match &input.name {
        Some(name) => bot_name(name)?,
        None => default_name(&room, "hook")?,
    };
    let secret = BotSecret::generate(HOOK_PREFIX);
    let id = Uuid::now_v7();
    let audit = member_audit(&user, "webhook.create", &id.to_string(), &room);
    let made = state
        .store
        .create_webhook(
            &NewWebhook {
                id,
                room: room.clone(),
                bot: &name,
                secret_hash: secret.digest,
                created_by: user.id,
                created_at: audit.at,
            },
            &audit,
        )
        .await;
    let made = match made {
        Ok(made) => made,
        Err(e) => return Ok(store_conflict(e, "that name is taken")),
    };
    let undo = member_audit(&user, "webhook.revoke", &id.to_string(), &room);
    add_hook_bot(&state, &maker, &room, &made.bot.username, async {
        state.store.revoke_webhook(id, &undo).await.map(|_| ())
    })
    .await?;
    let url = format!(
        "{}/api/v1/hooks/{}",
        base_url(&state, &headers),
        secret.token
    );
    let mut view = serde_json::to_value(WebhookView::from(made)).expect("json");
    view["url"] = serde_json::Value::String(url);
    Ok(Envelope::created("Webhook created; its URL is shown this once", view).into_response())
}

/// The maker of a webhook (incoming or outgoing) of the room `raw`: a member of it, not a
/// bot, in a room that is no DM. (In a private room, adding the webhook's bot is the owner's
/// right, checked when it is added: [`add_hook_bot`].)
pub(crate) async fn hook_maker(
    state: &GatewayState,
    user: &AuthUser,
    raw: &str,
) -> Result<(Actor, RoomName), Error> {
    if user.bot.is_some() {
        return Err(Error::Forbidden("bots do not make webhooks"));
    }
    let room = RoomName::parse(raw)?;
    let maker = actor(user);
    let reader = state.chat.reader(&maker, room.clone()).await?;
    if !reader.is_member() {
        return Err(Error::Forbidden(
            "only the room's members make its webhooks",
        ));
    }
    if room.direct_members().is_some() {
        return Err(Error::Forbidden("direct-message rooms have no webhooks"));
    }
    Ok((maker, room))
}

/// Adds a new webhook's bot to the room through the room's log, like anyone added; when the
/// maker may not add members there, `undo` revokes the webhook again and the refusal is the
/// answer.
pub(crate) async fn add_hook_bot(
    state: &GatewayState,
    maker: &Actor,
    room: &RoomName,
    bot: &Username,
    undo: impl std::future::Future<Output = Result<(), StoreError>>,
) -> Result<(), Error> {
    let Err(refused) = state
        .chat
        .add_member(maker, room.clone(), bot.as_str())
        .await
    else {
        return Ok(());
    };
    if let Err(e) = undo.await {
        tracing::warn!(error = %e, %room, "revoking a webhook whose bot was not added");
    }
    Err(refused.into())
}

/// Whether `user` sees the room's webhooks: its members do, and admins.
pub(crate) async fn may_see_hooks(
    state: &GatewayState,
    user: &AuthUser,
    room: &RoomName,
) -> Result<(), Error> {
    let member = state
        .chat
        .reader(&actor(user), room.clone())
        .await
        .is_ok_and(|r| r.is_member());
    if !member && !state.store.is_admin(user.id).await? {
        return Err(Error::Forbidden("only the room's members see its webhooks"));
    }
    Ok(())
}

/// Whether `user` revokes a webhook `maker` made: its maker does, and admins.
pub(crate) async fn may_revoke_hook(
    state: &GatewayState,
    user: &AuthUser,
    maker: banter_core::UserId,
) -> Result<(), Error> {
    if maker != user.id && !state.store.is_admin(user.id).await? {
        return Err(Error::Forbidden(
            "only its maker or an admin revokes a webhook",
        ));
    }
    Ok(())
}

/// A bot's name, read like a username (the same rules), named `name` as the input calls it.
pub(crate) fn bot_name(input: &str) -> Result<Username, ValidationError> {
    Username::parse(input).map_err(|e| ValidationError::new("name", e.message))
}

/// A webhook's bot's name when its maker gave none: `<room>-<kind>-<4 hex>`.
pub(crate) fn default_name(room: &RoomName, kind: &str) -> Result<Username, Error> {
    let tail: String = Uuid::new_v4().simple().to_string()[..4].to_owned();
    let stem: String = room
        .as_str()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(Username::MAX_LEN - 10)
        .collect();
    let stem = if stem.is_empty() { "room".into() } else { stem };
    Ok(Username::parse(&format!("{stem}-{kind}-{tail}"))?)
}

pub(crate) fn member_audit(
    user: &AuthUser,
    action: &'static str,
    target: &str,
    room: &RoomName,
) -> NewAudit {
    NewAudit {
        at: banter_store::now(),
        actor_id: Some(user.id),
        actor: user.username.as_str().to_owned(),
        action,
        target: target.to_owned(),
        detail: serde_json::json!({ "room": room.as_str() }),
        address: None,
    }
}

/// `GET /api/v1/rooms/{room}/webhooks` (its members, and admins): its live webhooks.
pub async fn list_webhooks(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(room): Path<String>,
) -> Result<Envelope<serde_json::Value>, Error> {
    let room = RoomName::parse(&room)?;
    may_see_hooks(&state, &user, &room).await?;
    let hooks: Vec<WebhookView> = state
        .store
        .webhooks(Some(&room))
        .await?
        .into_iter()
        .map(WebhookView::from)
        .collect();
    Ok(Envelope::ok(
        "Webhooks",
        serde_json::json!({ "webhooks": hooks }),
    ))
}

/// `DELETE /api/v1/rooms/{room}/webhooks/{id}` (its maker, and admins): its URL stops working.
pub async fn revoke_webhook(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path((room, id)): Path<(String, String)>,
) -> Result<Envelope<serde_json::Value>, Error> {
    const NO_HOOK: Error = Error::NotFound("no such webhook");
    let room = RoomName::parse(&room)?;
    let id = Uuid::parse_str(&id).map_err(|_| NO_HOOK)?;
    let hook = state.store.webhook(id).await?.ok_or(NO_HOOK)?;
    if hook.room != room || hook.revoked_at.is_some() {
        return Err(NO_HOOK);
    }
    may_revoke_hook(&state, &user, hook.created_by).await?;
    let audit = member_audit(&user, "webhook.revoke", &id.to_string(), &room);
    let hook = state
        .store
        .revoke_webhook(id, &audit)
        .await?
        .ok_or(NO_HOOK)?;
    Ok(Envelope::ok(
        "Webhook revoked",
        serde_json::json!({ "id": hook.id, "revoked": true }),
    ))
}

/// Slack's incoming webhook body: `text`, and `username` shown as the message's label.
/// Slack's other fields (`icon_emoji`, `blocks`, ...) are accepted and ignored.
#[derive(Debug, Deserialize)]
struct HookInput {
    text: Option<String>,
    username: Option<String>,
}

/// `POST /api/v1/hooks/{secret}` `{"text","username"?}`: posts to the webhook's room as its
/// bot. An unknown or revoked secret is 404 and posts nothing. JSON, or Slack's form body
/// (`payload=<json>`).
pub async fn incoming(
    State(state): State<GatewayState>,
    Path(secret): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    const NO_HOOK: Error = Error::NotFound("no such webhook");
    if !secret.starts_with(HOOK_PREFIX) {
        return Err(NO_HOOK);
    }
    let hook = state
        .store
        .webhook_by_secret(&banter_auth::token::digest(&secret))
        .await?
        .ok_or(NO_HOOK)?;
    let input = hook_input(&headers, &body)?;
    let text = input
        .text
        .ok_or_else(|| ValidationError::new("text", "is required"))?;
    let body = MessageBody::parse(&text).map_err(|e| ValidationError::new("text", e.message))?;
    let label = input.username.as_deref().map(BotLabel::parse).transpose()?;
    let bot = Actor {
        id: hook.bot.id,
        name: hook.bot.username.clone(),
        bot: Some(std::sync::Arc::new(BotActor {
            scope: BotScope {
                rooms: Some(std::sync::Arc::from(vec![hook.room.clone()])),
            },
            label,
        })),
    };
    let message = post(&state, &bot, hook.room, body, None, None, &[]).await?;
    Ok(Envelope::ok("Posted", message).into_response())
}

fn hook_input(headers: &HeaderMap, body: &[u8]) -> Result<HookInput, Error> {
    let form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let json: std::borrow::Cow<'_, [u8]> = if form {
        let fields: HashMap<String, String> = serde_urlencoded::from_bytes(body)
            .map_err(|_| ValidationError::new("payload", "is not a form body"))?;
        let payload = fields
            .get("payload")
            .ok_or_else(|| ValidationError::new("payload", "is required in a form body"))?;
        payload.clone().into_bytes().into()
    } else {
        body.into()
    };
    serde_json::from_slice(&json)
        .map_err(|e| ValidationError::new("body", format!("is not a webhook's JSON: {e}")).into())
}
