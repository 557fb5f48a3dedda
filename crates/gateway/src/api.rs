//! The gateway's HTTP API: rooms, history, presence, deletion. All need a Bearer token, and a
//! direct-message room answers only its two members.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use banter_auth::AuthUser;
use banter_bus::Event;
use banter_core::{Cursor, Message, RoomName};
use banter_http::{ApiError, Envelope};
use banter_store::StoreError;
use serde::Serialize;

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

fn room_for(user: &AuthUser, raw: &str) -> Result<RoomName, Error> {
    let room = RoomName::parse(raw)?;
    if room.admits(&user.username) {
        Ok(room)
    } else {
        Err(Error::Forbidden(
            "that direct-message room belongs to two other users",
        ))
    }
}

#[derive(Debug, Serialize)]
pub struct RoomView {
    room: RoomName,
    online: usize,
    #[serde(serialize_with = "optional_time")]
    last_message_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn optional_time<S: serde::Serializer>(
    t: &Option<chrono::DateTime<chrono::Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => banter_core::rfc3339_millis(t, s),
        None => s.serialize_none(),
    }
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
        .filter(|r| r.room.admits(&user.username))
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
    messages: Vec<Message>,
    has_more: bool,
}

/// `GET /api/v1/rooms/{room}/messages?before=<cursor>&limit=<1..100>`: the page just before
/// `before` (the newest without it), oldest first.
pub async fn history(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(room): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Envelope<Page>, Error> {
    let room = room_for(&user, &room)?;
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
    let mut messages = state
        .store
        .messages_before(&room, before, limit + 1)
        .await?;
    let has_more = messages.len() > limit as usize;
    if has_more {
        messages.remove(0);
    }
    Ok(Envelope::ok("Messages", Page { messages, has_more }))
}

/// `GET /api/v1/rooms/{room}/presence`: who is online in the room.
pub async fn presence(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(room): Path<String>,
) -> Result<Envelope<serde_json::Value>, Error> {
    let room = room_for(&user, &room)?;
    let users = state.hub.online(&room);
    Ok(Envelope::ok(
        "Presence",
        serde_json::json!({ "room": room, "users": users }),
    ))
}

/// `DELETE /api/v1/messages/{id}`: by its author or an admin. The room hears `deleted`.
pub async fn delete_message(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Envelope<serde_json::Value>, Error> {
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| banter_core::ValidationError::new("id", "is not a message id (a UUID)"))?;
    let message = state
        .store
        .message(id)
        .await?
        .ok_or(Error::NotFound("no such message"))?;
    let own = message
        .author
        .as_str()
        .eq_ignore_ascii_case(user.username.as_str());
    // Asked once, and only when it matters: authors delete their own without it.
    let admin = !own && state.store.is_admin(user.id).await?;
    // A direct message of others is "not found" to outsiders, not "forbidden": its existence
    // is private too.
    if !message.room.admits(&user.username) && !admin {
        return Err(Error::NotFound("no such message"));
    }
    if !own && !admin {
        return Err(Error::Forbidden(
            "only its author or an admin may delete a message",
        ));
    }
    if !state.store.delete_message(id, banter_store::now()).await? {
        return Err(Error::NotFound("no such message"));
    }
    state
        .bus
        .announce(Event::Deleted {
            room: message.room.clone(),
            id,
        })
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    tracing::info!(message_id = %id, by = %user.id, "message deleted");
    Ok(Envelope::ok(
        "Message deleted",
        serde_json::json!({ "id": id, "room": message.room }),
    ))
}
