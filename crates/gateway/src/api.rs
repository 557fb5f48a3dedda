//! The gateway's HTTP API: rooms, history, presence, and messages (edit, delete, thread,
//! earlier bodies). All need a Bearer token; the rights are the chat service's
//! ([`crate::chat`]), so a direct-message room answers only its two members here as on the
//! socket, and an edit or a delete takes the same path through the log as its frame.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use banter_auth::AuthUser;
use banter_core::{Cursor, MessageBody, RoomName, StoredMessage};
use banter_http::{ApiError, ApiJson, Envelope};
use banter_store::StoreError;
use serde::{Deserialize, Serialize};

use crate::chat::{Actor, Chat, ChatError, Reader, Request};
use crate::GatewayState;

/// The gateway API's one error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400 `validation_failed`, naming the field.
    #[error(transparent)]
    Validation(#[from] banter_core::ValidationError),
    /// 403 `forbidden`.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// 404 `not_found`.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// 503 `unavailable`: the store or the bus cannot serve right now.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// 500 `internal`, logged.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<ChatError> for Error {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::Forbidden(why) => Self::Forbidden(why),
            ChatError::NotFound => Self::NotFound("no such message"),
            ChatError::Unavailable(cause) => Self::Unavailable(cause),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::Unavailable(e.to_string()),
            StoreError::Conflict(_) | StoreError::Other(_) => Self::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Self::Validation(e) => ApiError::from(e).into_response(),
            Self::Forbidden(why) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", why).into_response()
            }
            Self::NotFound(what) => ApiError::not_found(what).into_response(),
            Self::Unavailable(cause) => {
                tracing::warn!(%cause, "dependency unavailable");
                ApiError::unavailable().into_response()
            }
            Self::Internal(cause) => banter_http::ops::internal_error(&cause),
        }
    }
}

fn reader(state: &GatewayState, user: &AuthUser, raw: &str) -> Result<Reader, Error> {
    let room = RoomName::parse(raw)?;
    Ok(state.chat.reader(&user.username, room)?)
}

fn actor(user: &AuthUser) -> Actor {
    Actor {
        id: user.id,
        name: user.username.clone(),
    }
}

fn message_id(raw: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::parse_str(raw)
        .map_err(|_| banter_core::ValidationError::new("id", "is not a message id (a UUID)").into())
}

/// `limit` (1 to 100, default 50) and `before` of a page.
fn page_query(query: &HashMap<String, String>) -> Result<(u32, Option<Cursor>), Error> {
    let limit = match query.get("limit") {
        None => 50,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| {
                banter_core::ValidationError::new("limit", "must be a number from 1 to 100")
            })?,
    };
    let before = query
        .get("before")
        .map(|c| Cursor::parse("before", c))
        .transpose()?;
    Ok((limit, before))
}

#[derive(Debug, Serialize)]
pub struct RoomView {
    room: RoomName,
    online: usize,
    #[serde(serialize_with = "banter_core::optional_rfc3339_millis")]
    last_message_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `GET /api/v1/rooms`: rooms the user can see (public ones with messages or people online,
/// and their own direct-message rooms), newest activity first. `general` is always there.
pub async fn rooms(
    State(state): State<GatewayState>,
    user: AuthUser,
) -> Result<Envelope<serde_json::Value>, Error> {
    let online: HashMap<RoomName, usize> = state.hub.online_counts().into_iter().collect();
    let mut seen: BTreeMap<RoomName, RoomView> = BTreeMap::new();
    for summary in state.store.rooms(1000).await? {
        seen.insert(
            summary.room.clone(),
            RoomView {
                online: online.get(&summary.room).copied().unwrap_or(0),
                room: summary.room,
                last_message_at: Some(summary.last_message_at),
            },
        );
    }
    let general = RoomName::parse("general")?;
    for room in online.keys().cloned().chain([general]) {
        seen.entry(room.clone()).or_insert_with(|| RoomView {
            online: online.get(&room).copied().unwrap_or(0),
            room,
            last_message_at: None,
        });
    }
    let mut rooms: Vec<RoomView> = seen
        .into_values()
        .filter(|r| Chat::may_read(&user.username, &r.room))
        .collect();
    rooms.sort_by(|a, b| {
        b.last_message_at
            .cmp(&a.last_message_at)
            .then(a.room.cmp(&b.room))
    });
    Ok(Envelope::ok("Rooms", serde_json::json!({ "rooms": rooms })))
}

#[derive(Debug, Serialize)]
pub struct Page {
    messages: Vec<StoredMessage>,
    has_more: bool,
}

impl Page {
    /// A page read with one more than `limit`: the extra one only says there is more.
    fn of(mut messages: Vec<StoredMessage>, limit: u32) -> Self {
        let has_more = messages.len() > limit as usize;
        if has_more {
            messages.remove(0);
        }
        Self { messages, has_more }
    }
}

/// `GET /api/v1/rooms/{room}/messages?before=<cursor>&limit=<1..100>`: the page just before
/// `before` (the newest without it), oldest first, each message in its current state.
pub async fn history(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(room): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Envelope<Page>, Error> {
    let reader = reader(&state, &user, &room)?;
    let (limit, before) = page_query(&query)?;
    let messages = state
        .store
        .messages_before(reader.room(), before, limit + 1)
        .await?;
    Ok(Envelope::ok("Messages", Page::of(messages, limit)))
}

/// `GET /api/v1/rooms/{room}/presence`: who is online in the room.
pub async fn presence(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(room): Path<String>,
) -> Result<Envelope<serde_json::Value>, Error> {
    let reader = reader(&state, &user, &room)?;
    let users = state.hub.online(reader.room());
    Ok(Envelope::ok(
        "Presence",
        serde_json::json!({ "room": reader.room(), "users": users }),
    ))
}

/// `DELETE /api/v1/messages/{id}`: by its author or an admin, through the log like the
/// `delete` frame; answered once the delete is durable. The room hears `deleted`.
pub async fn delete_message(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Envelope<serde_json::Value>, Error> {
    let id = message_id(&id)?;
    let pending = state
        .chat
        .change(&actor(&user), id, Request::Delete, None)
        .await?;
    let acked = pending.await?;
    tracing::info!(message_id = %id, by = %user.id, "message deleted");
    Ok(Envelope::ok(
        "Message deleted",
        serde_json::json!({ "id": id, "room": acked.room, "cursor": acked.cursor }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct EditInput {
    body: String,
}

/// `PATCH /api/v1/messages/{id}` `{"body"}`: by its author, through the log like the `edit`
/// frame; answered once the edit is durable. The room hears `edited`.
pub async fn edit_message(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<EditInput>,
) -> Result<Envelope<serde_json::Value>, Error> {
    let id = message_id(&id)?;
    let body = MessageBody::parse(&input.body)?;
    let pending = state
        .chat
        .change(&actor(&user), id, Request::Edit(body), None)
        .await?;
    let acked = pending.await?;
    Ok(Envelope::ok(
        "Message edited",
        serde_json::json!({
            "id": id,
            "room": acked.room,
            "cursor": acked.cursor,
            "edited_at": acked.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }),
    ))
}

#[derive(Debug, Serialize)]
pub struct Thread {
    root: StoredMessage,
    messages: Vec<StoredMessage>,
    has_more: bool,
}

/// `GET /api/v1/messages/{id}/replies?before&limit`: the thread of a message: its first
/// message (`root`) and a page of its replies, oldest first, like history. Asked of a reply,
/// it answers that reply's thread.
pub async fn replies(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Envelope<Thread>, Error> {
    let id = message_id(&id)?;
    let target = state.chat.target(&user.username, id).await?;
    let (limit, before) = page_query(&query)?;
    let root_id = target.thread_root.unwrap_or(target.id);
    let root = state
        .store
        .stored_message(root_id)
        .await?
        // The thread's first message was deleted, or persist has not stored it yet.
        .ok_or(Error::NotFound("no such message"))?;
    let page = Page::of(
        state.store.replies(root_id, before, limit + 1).await?,
        limit,
    );
    Ok(Envelope::ok(
        "Replies",
        Thread {
            root,
            messages: page.messages,
            has_more: page.has_more,
        },
    ))
}

/// `GET /api/v1/messages/{id}/edits`: the earlier bodies of a message, oldest first, each
/// with when it was written and when an edit replaced it.
pub async fn edits(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Envelope<serde_json::Value>, Error> {
    let id = message_id(&id)?;
    state.chat.target(&user.username, id).await?;
    let edits = state.store.earlier_bodies(id).await?;
    Ok(Envelope::ok(
        "Edits",
        serde_json::json!({ "id": id, "edits": edits }),
    ))
}
