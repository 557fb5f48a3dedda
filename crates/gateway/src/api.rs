//! The gateway's HTTP API: rooms (the user's, public ones, creating one, its topic, members
//! and read position), history, presence, and messages (edit, delete, thread, earlier
//! bodies). All need a Bearer token; the rights are the chat service's ([`crate::chat`]), so
//! a private room answers only its members here as on the socket, and every change (an
//! edit, a delete, a member added, a read position...) takes the same path through the log
//! as its frame.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use banter_auth::AuthUser;
use banter_core::{Cursor, MessageBody, RoomEntry, RoomKind, RoomName, StoredMessage, Topic};
use banter_http::{ApiError, ApiJson, Envelope};
use banter_store::StoreError;
use serde::{Deserialize, Serialize};

use crate::chat::{Actor, ChatError, Reader, Request};
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
    /// 409 `room_exists`.
    #[error("a room of that name exists")]
    RoomExists,
    /// 403 `room_archived`: the room is read-only.
    #[error("the room is archived")]
    Archived,
    /// 409 `conflict`: the request contradicts what is stored (the message says what).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// 429 `rate_limited`, with `Retry-After`.
    #[error("rate limited")]
    RateLimited(banter_http::limit::RetryAfter),
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
            ChatError::NotFound(what) => Self::NotFound(what),
            ChatError::Exists => Self::RoomExists,
            ChatError::Archived => Self::Archived,
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
            Self::RoomExists => ApiError::new(
                StatusCode::CONFLICT,
                "room_exists",
                "a room of that name exists",
            )
            .into_response(),
            Self::Archived => ApiError::new(
                StatusCode::FORBIDDEN,
                "room_archived",
                "this room is archived: it is read-only",
            )
            .into_response(),
            Self::Conflict(why) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", why).into_response()
            }
            Self::RateLimited(wait) => wait.into_api_error("messages").into_response(),
            Self::Unavailable(cause) => {
                tracing::warn!(%cause, "dependency unavailable");
                ApiError::unavailable().into_response()
            }
            Self::Internal(cause) => banter_http::ops::internal_error(&cause),
        }
    }
}

pub(crate) async fn reader(
    state: &GatewayState,
    user: &AuthUser,
    raw: &str,
) -> Result<Reader, Error> {
    let room = RoomName::parse(raw)?;
    Ok(state.chat.reader(&actor(user), room).await?)
}

pub(crate) fn actor(user: &AuthUser) -> Actor {
    Actor::of(user.id, user.username.clone(), user.bot.clone())
}

fn message_id(raw: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::parse_str(raw)
        .map_err(|_| banter_core::ValidationError::new("id", "is not a message id (a UUID)").into())
}

/// `limit` of a page: 1 to 100, default 50.
pub(crate) fn page_limit(query: &HashMap<String, String>) -> Result<u32, Error> {
    match query.get("limit") {
        None => Ok(50),
        Some(raw) => Ok(raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| {
                banter_core::ValidationError::new("limit", "must be a number from 1 to 100")
            })?),
    }
}

/// `limit` and `before` of a page.
fn page_query(query: &HashMap<String, String>) -> Result<(u32, Option<Cursor>), Error> {
    let before = query
        .get("before")
        .map(|c| Cursor::parse("before", c))
        .transpose()?;
    Ok((page_limit(query)?, before))
}

/// An entry with its online count filled in from presence.
fn with_online(state: &GatewayState, mut entry: RoomEntry) -> RoomEntry {
    entry.online = state.hub.online(&entry.room).len();
    entry
}

/// `GET /api/v1/rooms`: every room the user is a member of, newest activity first, each with
/// its kind, topic, online count, unread messages and mentions, and read position.
pub async fn rooms(
    State(state): State<GatewayState>,
    user: AuthUser,
) -> Result<Envelope<serde_json::Value>, Error> {
    let online: HashMap<RoomName, usize> = state.hub.online_counts().into_iter().collect();
    let mut rooms = state.chat.rooms(&actor(&user)).await?;
    for entry in &mut rooms {
        entry.online = online.get(&entry.room).copied().unwrap_or(0);
    }
    Ok(Envelope::ok("Rooms", serde_json::json!({ "rooms": rooms })))
}

#[derive(Debug, Serialize)]
struct PublicView {
    room: RoomName,
    topic: Topic,
    members: u32,
    #[serde(serialize_with = "banter_core::optional_rfc3339_millis")]
    last_message_at: Option<chrono::DateTime<chrono::Utc>>,
    joined: bool,
}

/// `GET /api/v1/rooms/public?limit=<1..500, default 100>`: public rooms to discover, newest
/// activity first.
pub async fn public_rooms(
    State(state): State<GatewayState>,
    user: AuthUser,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Envelope<serde_json::Value>, Error> {
    let limit = match query.get("limit") {
        None => 100,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=500).contains(l))
            .ok_or_else(|| {
                banter_core::ValidationError::new("limit", "must be a number from 1 to 500")
            })?,
    };
    let rooms: Vec<PublicView> = state
        .store
        .public_rooms(user.id, limit)
        .await?
        .into_iter()
        .map(|r| PublicView {
            room: r.room,
            topic: r.topic,
            members: r.members,
            last_message_at: r.last_message_at,
            joined: r.joined,
        })
        .collect();
    Ok(Envelope::ok(
        "Public rooms",
        serde_json::json!({ "rooms": rooms }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct NewRoom {
    name: String,
    kind: Option<String>,
    topic: Option<String>,
}

/// The room's entry for the user, once a change of theirs is durable.
async fn entry_of(
    state: &GatewayState,
    user: &AuthUser,
    room: &RoomName,
) -> Result<RoomEntry, Error> {
    let entry = state.chat.entry(&actor(user), room).await?;
    let entry = entry.unwrap_or_else(|| {
        // Only when it was removed again at once: answer with what it was.
        RoomEntry {
            room: room.clone(),
            kind: RoomKind::Public,
            topic: Topic::default(),
            owner: None,
            role: banter_core::Role::Member,
            online: 0,
            last_message_at: None,
            unread: 0,
            mentions: 0,
            read_cursor: None,
            muted: false,
            archived: false,
        }
    });
    Ok(with_online(state, entry))
}

/// `POST /api/v1/rooms` `{"name","kind":"public"|"private","topic"?}`: 201 with its entry;
/// the creator owns it. 409 `room_exists`.
pub async fn create_room(
    State(state): State<GatewayState>,
    user: AuthUser,
    ApiJson(input): ApiJson<NewRoom>,
) -> Result<Envelope<RoomEntry>, Error> {
    let room = RoomName::parse(&input.name)
        .map_err(|e| banter_core::ValidationError { field: "name", ..e })?;
    if room.direct_members().is_some() {
        return Err(banter_core::ValidationError::new(
            "name",
            "dm: rooms make themselves with their first message",
        )
        .into());
    }
    let kind = RoomKind::parse(input.kind.as_deref().unwrap_or("public"))?;
    let topic = Topic::parse(input.topic.as_deref().unwrap_or_default())?;
    state
        .chat
        .create_room(&actor(&user), room.clone(), kind, topic)
        .await?;
    tracing::info!(%room, kind = kind.as_str(), by = %user.id, "room created");
    let entry = entry_of(&state, &user, &room).await?;
    Ok(Envelope::created("Room created", entry))
}

#[derive(Debug, Deserialize)]
pub struct RoomUpdate {
    topic: String,
}

/// `PATCH /api/v1/rooms/{room}` `{"topic"}`: by its owner.
pub async fn update_room(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(room): Path<String>,
    ApiJson(input): ApiJson<RoomUpdate>,
) -> Result<Envelope<RoomEntry>, Error> {
    let room = RoomName::parse(&room)?;
    let topic = Topic::parse(&input.topic)?;
    state
        .chat
        .set_topic(&actor(&user), room.clone(), topic)
        .await?;
    Ok(Envelope::ok(
        "Room updated",
        entry_of(&state, &user, &room).await?,
    ))
}

#[derive(Debug, Serialize)]
struct MemberView {
    username: banter_core::Username,
    role: banter_core::Role,
    online: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    bot: bool,
}

/// `GET /api/v1/rooms/{room}/members`: its members, with their role and whether online.
pub async fn members(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(room): Path<String>,
) -> Result<Envelope<serde_json::Value>, Error> {
    let reader = reader(&state, &user, &room).await?;
    let online = state.hub.online(reader.room());
    let bots = state.store.bot_ids().await?;
    let members: Vec<MemberView> = state
        .directory
        .members(reader.room())
        .await?
        .into_iter()
        .map(|(id, m)| MemberView {
            bot: bots.contains(&id),
            online: online
                .iter()
                .any(|o| o.eq_ignore_ascii_case(m.user.as_str())),
            username: m.user,
            role: m.role,
        })
        .collect();
    Ok(Envelope::ok(
        "Members",
        serde_json::json!({ "room": reader.room(), "members": members }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct NewMember {
    username: String,
}

/// `POST /api/v1/rooms/{room}/members` `{"username"}`: adds a member (to a private room, by
/// its owner). They hear `room` `added` on every connection.
pub async fn add_member(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(room): Path<String>,
    ApiJson(input): ApiJson<NewMember>,
) -> Result<Envelope<serde_json::Value>, Error> {
    let room = RoomName::parse(&room)?;
    let name = banter_core::Username::parse(&input.username)?;
    state
        .chat
        .add_member(&actor(&user), room.clone(), name.as_str())
        .await?;
    Ok(Envelope::ok(
        "Member added",
        serde_json::json!({ "room": room, "username": name }),
    ))
}

/// `DELETE /api/v1/rooms/{room}/members/{username}`: removes a member (the owner), or leaves
/// the room (oneself). Their connections stop hearing the room at once.
pub async fn remove_member(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path((room, username)): Path<(String, String)>,
) -> Result<Envelope<serde_json::Value>, Error> {
    let room = RoomName::parse(&room)?;
    let name = banter_core::Username::parse(&username)?;
    state
        .chat
        .remove_member(&actor(&user), room.clone(), name.as_str())
        .await?;
    Ok(Envelope::ok(
        "Member removed",
        serde_json::json!({ "room": room, "username": name }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct MuteInput {
    muted: bool,
}

/// `PUT /api/v1/rooms/{room}/muted` `{"muted": true|false}`: the member's own setting, through
/// the log like a read position; the user's other connections hear `{"type":"muted"}`.
/// Answers the room's entry.
pub async fn mute(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(room): Path<String>,
    ApiJson(input): ApiJson<MuteInput>,
) -> Result<Envelope<RoomEntry>, Error> {
    let reader = reader(&state, &user, &room).await?;
    let pending = state.chat.mute(&actor(&user), &reader, input.muted).await?;
    pending.await?;
    Ok(Envelope::ok(
        if input.muted {
            "Room muted"
        } else {
            "Room unmuted"
        },
        entry_of(&state, &user, reader.room()).await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct ReadInput {
    cursor: String,
}

/// `PUT /api/v1/rooms/{room}/read` `{"cursor"}`: moves the read position forward, like the
/// `read` frame; the user's other connections hear it.
pub async fn mark_read(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(room): Path<String>,
    ApiJson(input): ApiJson<ReadInput>,
) -> Result<Envelope<serde_json::Value>, Error> {
    let reader = reader(&state, &user, &room).await?;
    let cursor = Cursor::parse("cursor", &input.cursor)?;
    let pending = state
        .chat
        .read(&actor(&user), &reader, cursor, None)
        .await?;
    pending.await?;
    let entry = state.chat.entry(&actor(&user), reader.room()).await?;
    Ok(Envelope::ok(
        "Read position",
        serde_json::json!({
            "room": reader.room(),
            "read_cursor": entry.and_then(|e| e.read_cursor),
        }),
    ))
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

/// Where a page of history is, as the query says: at most one of `before`, `after` and
/// `around`.
enum PageAt {
    /// Just before this cursor; the newest page with `None`.
    Before(Option<Cursor>),
    /// Just after it.
    After(Cursor),
    /// With the message at it in the middle.
    Around(Cursor),
}

impl PageAt {
    fn parse(query: &HashMap<String, String>) -> Result<Self, Error> {
        let given: Vec<&str> = ["before", "after", "around"]
            .into_iter()
            .filter(|k| query.contains_key(*k))
            .collect();
        if given.len() > 1 {
            return Err(banter_core::ValidationError::new(
                if given[0] == "before" {
                    given[1]
                } else {
                    given[0]
                },
                "give one of before, after and around",
            )
            .into());
        }
        let cursor = |field: &'static str| Cursor::parse(field, &query[field]);
        Ok(match given.first() {
            Some(&"after") => Self::After(cursor("after")?),
            Some(&"around") => Self::Around(cursor("around")?),
            Some(_) => Self::Before(Some(cursor("before")?)),
            None => Self::Before(None),
        })
    }
}

/// A page after a cursor, and whether newer messages follow it.
#[derive(Debug, Serialize)]
pub struct AfterPage {
    messages: Vec<StoredMessage>,
    has_newer: bool,
}

/// A page around a cursor: [`Page`], and whether newer messages follow it.
#[derive(Debug, Serialize)]
pub struct AroundPage {
    messages: Vec<StoredMessage>,
    has_more: bool,
    has_newer: bool,
}

/// `GET /api/v1/rooms/{room}/messages?before=<cursor>&limit=<1..100>`: the page just before
/// `before` (the newest without it), oldest first, each message in its current state.
/// With `around=<cursor>` instead: the page with the message at that cursor in the middle (a
/// search result in its context), which also says whether newer ones follow (`has_newer`).
/// With `after=<cursor>`: the page just after it, oldest first, and `has_newer` (how a
/// client reading down from a result fills the gap to the newest).
pub async fn history(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(room): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Error> {
    let reader = reader(&state, &user, &room).await?;
    let limit = page_limit(&query)?;
    let room = reader.room();
    Ok(match PageAt::parse(&query)? {
        PageAt::Before(before) => {
            let messages = state.store.messages_before(room, before, limit + 1).await?;
            Envelope::ok("Messages", Page::of(messages, limit)).into_response()
        }
        PageAt::After(after) => {
            let mut messages = state.store.messages_after(room, after, limit + 1).await?;
            let has_newer = messages.len() > limit as usize;
            messages.truncate(limit as usize);
            Envelope::ok(
                "Messages",
                AfterPage {
                    messages,
                    has_newer,
                },
            )
            .into_response()
        }
        PageAt::Around(at) => {
            // The message at `at` and those before it make the first half, the newer ones
            // the rest; one more of each says whether there is more that way.
            let older = limit / 2 + 1;
            let newer = limit - older;
            let past_at = Cursor::new(at.partition, at.offset.saturating_add(1));
            let (before_it, after_it) = tokio::try_join!(
                state.store.messages_before(room, Some(past_at), older + 1),
                state.store.messages_after(room, at, newer + 1),
            )?;
            let Page {
                mut messages,
                has_more,
            } = Page::of(before_it, older);
            let has_newer = after_it.len() > newer as usize;
            messages.extend(after_it.into_iter().take(newer as usize));
            let page = AroundPage {
                messages,
                has_more,
                has_newer,
            };
            Envelope::ok("Messages", page).into_response()
        }
    })
}

/// `GET /api/v1/rooms/{room}/presence`: who is online in the room.
pub async fn presence(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(room): Path<String>,
) -> Result<Envelope<serde_json::Value>, Error> {
    let reader = reader(&state, &user, &room).await?;
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
    let target = state.chat.target(&actor(&user), id).await?;
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
    state.chat.target(&actor(&user), id).await?;
    let edits = state.store.earlier_bodies(id).await?;
    Ok(Envelope::ok(
        "Edits",
        serde_json::json!({ "id": id, "edits": edits }),
    ))
}
