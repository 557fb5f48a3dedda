//! The WebSocket protocol's frames: what clients send, parsed into types at the edge, and
//! what they receive, built here and nowhere else. docs/protocol.md describes each one.

use crate::{
    rfc3339_millis, Change, ClientId, Cursor, Emoji, LoggedEvent, Message, MessageBody, RoomChange,
    RoomEntry, RoomEvent, RoomKind, RoomName, Topic,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A frame from a client, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// `{"type":"send","room","body","client_id"?,"reply_to"?,"attachments"?}`, or the seed's
    /// bare `{"room","body"}`.
    Send {
        room: RoomName,
        /// Empty only when the message carries attachments.
        body: MessageBody,
        client_id: Option<ClientId>,
        /// A reply to this message (of the same room).
        reply_to: Option<Uuid>,
        /// Upload ids (at most [`crate::Attachment::MAX_PER_MESSAGE`], no repeats), to be
        /// checked as the sender's own by the gateway.
        attachments: Vec<Uuid>,
    },
    /// `{"type":"edit","id","body","client_id"?}`.
    Edit {
        id: Uuid,
        body: MessageBody,
        client_id: Option<ClientId>,
    },
    /// `{"type":"delete","id","client_id"?}`.
    Delete {
        id: Uuid,
        client_id: Option<ClientId>,
    },
    /// `{"type":"react","id","emoji","client_id"?}`, and `unreact` (`add: false`).
    React {
        id: Uuid,
        emoji: Emoji,
        add: bool,
        client_id: Option<ClientId>,
    },
    /// `{"type":"read","room","cursor","client_id"?}`: the user has read `room` up to there.
    Read {
        room: RoomName,
        cursor: Cursor,
        client_id: Option<ClientId>,
    },
    /// `{"type":"join","room","since"?}`.
    Join {
        room: RoomName,
        since: Option<Cursor>,
    },
    /// `{"type":"leave","room"}`.
    Leave { room: RoomName },
    /// `{"type":"typing","room"}`.
    Typing { room: RoomName },
    /// `{"type":"auth","token"}`: a fresh access token extends the connection.
    Auth { token: String },
}

/// Why a frame was refused: sent back as an `error` frame; the connection lives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: &'static str,
    pub message: String,
    /// Echoed so the client knows which of its sends failed.
    pub client_id: Option<String>,
    /// With `rate_limited`: when the client may try again.
    pub retry_after_ms: Option<u64>,
}

impl FrameError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            client_id: None,
            retry_after_ms: None,
        }
    }

    fn validation(e: crate::ValidationError) -> Self {
        Self::new("validation_failed", e.to_string())
    }
}

/// Every field any frame may carry; which ones are needed depends on `type`.
#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "type")]
    kind: Option<String>,
    room: Option<String>,
    body: Option<String>,
    client_id: Option<String>,
    since: Option<String>,
    token: Option<String>,
    id: Option<String>,
    emoji: Option<String>,
    reply_to: Option<String>,
    cursor: Option<String>,
    attachments: Option<Vec<String>>,
}

fn required(field: &'static str, value: Option<String>, kind: &str) -> Result<String, FrameError> {
    value.ok_or_else(|| {
        FrameError::new(
            "validation_failed",
            format!("{field}: a {kind} frame needs a {field}"),
        )
    })
}

fn room(value: Option<String>, kind: &str) -> Result<RoomName, FrameError> {
    RoomName::parse(&required("room", value, kind)?).map_err(FrameError::validation)
}

fn message_id(field: &'static str, value: &str) -> Result<Uuid, FrameError> {
    Uuid::parse_str(value).map_err(|_| {
        FrameError::new(
            "validation_failed",
            format!("{field}: is not a message id (a UUID)"),
        )
    })
}

fn target(value: Option<String>, kind: &str) -> Result<Uuid, FrameError> {
    message_id("id", &required("id", value, kind)?)
}

/// A send's upload ids: UUIDs, none twice, at most [`crate::Attachment::MAX_PER_MESSAGE`].
fn upload_ids(value: Option<Vec<String>>) -> Result<Vec<Uuid>, FrameError> {
    let ids = value.unwrap_or_default();
    if ids.len() > crate::Attachment::MAX_PER_MESSAGE {
        return Err(FrameError::new(
            "validation_failed",
            format!(
                "attachments: at most {} per message",
                crate::Attachment::MAX_PER_MESSAGE
            ),
        ));
    }
    let mut out: Vec<Uuid> = Vec::with_capacity(ids.len());
    for id in &ids {
        let id = Uuid::parse_str(id).map_err(|_| {
            FrameError::new(
                "validation_failed",
                "attachments: each must be an upload id (a UUID)",
            )
        })?;
        if out.contains(&id) {
            return Err(FrameError::new(
                "validation_failed",
                "attachments: an upload is attached once",
            ));
        }
        out.push(id);
    }
    Ok(out)
}

/// A send's body: may be empty (or absent) when the message carries attachments.
fn send_body(value: Option<String>, with_attachments: bool) -> Result<MessageBody, FrameError> {
    if with_attachments && value.as_deref().is_none_or(|b| b.trim().is_empty()) {
        return Ok(MessageBody::empty());
    }
    body(value, "send")
}

fn body(value: Option<String>, kind: &str) -> Result<MessageBody, FrameError> {
    let body = required("body", value, kind)?;
    MessageBody::parse(&body).map_err(|e| {
        if body.chars().count() > MessageBody::MAX_LEN {
            FrameError::new("too_large", e.to_string())
        } else {
            FrameError::validation(e)
        }
    })
}

/// The frame types a client may send, for error messages.
const KINDS: &str = "send, edit, delete, react, unreact, read, join, leave, typing or auth";

/// Parses one text frame.
pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let raw: RawFrame = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            FrameError::new("validation_failed", "the frame is not valid JSON")
        } else if path == "." {
            FrameError::new("validation_failed", "a frame must be a JSON object")
        } else {
            FrameError::new("validation_failed", format!("{path}: {inner}"))
        }
    })?;
    let kind = raw.kind.as_deref().unwrap_or(if raw.body.is_some() {
        // The seed's clients send bare {"room","body"}.
        "send"
    } else {
        ""
    });
    // Every frame that changes a room may carry a client_id: its error echoes a usable one,
    // so the client can match the error to what it sent.
    let echo = raw.client_id.clone().filter(|c| ClientId::parse(c).is_ok());
    let client_id = || {
        raw.client_id
            .as_deref()
            .map(ClientId::parse)
            .transpose()
            .map_err(FrameError::validation)
    };
    let with_echo = |e: FrameError| FrameError {
        client_id: echo.clone(),
        ..e
    };
    match kind {
        "send" => (|| {
            let attachments = upload_ids(raw.attachments.clone())?;
            Ok(ClientFrame::Send {
                room: room(raw.room.clone(), "send")?,
                body: send_body(raw.body.clone(), !attachments.is_empty())?,
                client_id: client_id()?,
                reply_to: raw
                    .reply_to
                    .as_deref()
                    .map(|r| message_id("reply_to", r))
                    .transpose()?,
                attachments,
            })
        })()
        .map_err(with_echo),
        "edit" => (|| {
            Ok(ClientFrame::Edit {
                id: target(raw.id.clone(), "edit")?,
                body: body(raw.body.clone(), "edit")?,
                client_id: client_id()?,
            })
        })()
        .map_err(with_echo),
        "delete" => (|| {
            Ok(ClientFrame::Delete {
                id: target(raw.id.clone(), "delete")?,
                client_id: client_id()?,
            })
        })()
        .map_err(with_echo),
        "react" | "unreact" => (|| {
            let emoji = required("emoji", raw.emoji.clone(), kind)?;
            Ok(ClientFrame::React {
                id: target(raw.id.clone(), kind)?,
                emoji: Emoji::parse(&emoji).map_err(FrameError::validation)?,
                add: kind == "react",
                client_id: client_id()?,
            })
        })()
        .map_err(with_echo),
        "read" => (|| {
            Ok(ClientFrame::Read {
                room: room(raw.room.clone(), "read")?,
                cursor: Cursor::parse("cursor", &required("cursor", raw.cursor.clone(), "read")?)
                    .map_err(FrameError::validation)?,
                client_id: client_id()?,
            })
        })()
        .map_err(with_echo),
        "join" => Ok(ClientFrame::Join {
            room: room(raw.room, "join")?,
            since: raw
                .since
                .as_deref()
                .map(|s| Cursor::parse("since", s))
                .transpose()
                .map_err(FrameError::validation)?,
        }),
        "leave" => Ok(ClientFrame::Leave {
            room: room(raw.room, "leave")?,
        }),
        "typing" => Ok(ClientFrame::Typing {
            room: room(raw.room, "typing")?,
        }),
        "auth" => Ok(ClientFrame::Auth {
            token: required("token", raw.token, "auth")?,
        }),
        "" => Err(FrameError::new(
            "validation_failed",
            format!("type: a frame needs a type ({KINDS})"),
        )),
        other => Err(FrameError::new(
            "validation_failed",
            format!("type: unknown frame type {other:?} ({KINDS})"),
        )),
    }
}

/// A frame for clients. Serialized once and shared when it goes to many.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Message(&'a Message),
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a ClientId>,
        id: uuid::Uuid,
        room: &'a RoomName,
        cursor: Cursor,
        #[serde(serialize_with = "rfc3339_millis")]
        created_at: DateTime<Utc>,
    },
    Joined {
        room: &'a RoomName,
        cursor: Option<Cursor>,
    },
    Left {
        room: &'a RoomName,
    },
    Members {
        room: &'a RoomName,
        users: Vec<String>,
    },
    Presence {
        room: &'a RoomName,
        user: &'a str,
        state: &'static str,
    },
    Typing {
        room: &'a RoomName,
        user: &'a str,
    },
    Edited {
        room: &'a RoomName,
        id: Uuid,
        body: &'a str,
        #[serde(serialize_with = "rfc3339_millis")]
        edited_at: DateTime<Utc>,
        cursor: Cursor,
    },
    Deleted {
        room: &'a RoomName,
        id: Uuid,
        cursor: Cursor,
    },
    Reaction {
        room: &'a RoomName,
        id: Uuid,
        emoji: &'a Emoji,
        user: &'a str,
        op: &'static str,
        cursor: Cursor,
    },
    /// A member joined, left, was added or removed (`op`), by `by`.
    Member {
        room: &'a RoomName,
        op: &'static str,
        user: &'a str,
        by: &'a str,
        cursor: Cursor,
        #[serde(serialize_with = "rfc3339_millis")]
        at: DateTime<Utc>,
    },
    Topic {
        room: &'a RoomName,
        topic: &'a Topic,
        by: &'a str,
        cursor: Cursor,
        #[serde(serialize_with = "rfc3339_millis")]
        at: DateTime<Utc>,
    },
    /// An admin archived the room (read-only) or brought it back.
    Archived {
        room: &'a RoomName,
        archived: bool,
        by: &'a str,
        cursor: Cursor,
        #[serde(serialize_with = "rfc3339_millis")]
        at: DateTime<Utc>,
    },
    /// An admin deleted the room: its readers leave it.
    RoomDeleted {
        room: &'a RoomName,
        by: &'a str,
        cursor: Cursor,
        #[serde(serialize_with = "rfc3339_millis")]
        at: DateTime<Utc>,
    },
    Created {
        room: &'a RoomName,
        kind: RoomKind,
        topic: &'a Topic,
        by: &'a str,
        cursor: Cursor,
        #[serde(serialize_with = "rfc3339_millis")]
        at: DateTime<Utc>,
    },
    /// The user stream: the user was added to a room, removed from one, or it changed.
    Room {
        op: &'static str,
        room: &'a RoomEntry,
    },
    /// The user stream: the user's read position in `room` moved.
    Read {
        room: &'a RoomName,
        cursor: Cursor,
    },
    /// The user stream: the user muted `room` or unmuted it (on another device).
    Muted {
        room: &'a RoomName,
        muted: bool,
    },
    /// The user stream: a message mentions the user.
    Mention {
        room: &'a RoomName,
        id: Uuid,
        author: &'a str,
        cursor: Cursor,
    },
    Authenticated {
        expires_in: i64,
    },
    Error {
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerFrame<'_> {
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: no maps with non-string keys, no I/O.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The frame readers of the room get for a logged event: `message`, `edited`, `deleted`,
/// `reaction`, `member`, `topic`, `created`, `archived` or `room_deleted`, each with the
/// event's cursor. (A read
/// position is the user's own: its `read` frame goes to the user's connections only.)
pub fn event_json(logged: &LoggedEvent) -> String {
    let cursor = logged.cursor;
    match &logged.event {
        RoomEvent::Message(m) => ServerFrame::Message(&m.at(cursor)).to_json(),
        RoomEvent::Room(r) => {
            let (room, by, at) = (&r.room, r.user.as_str(), r.at);
            let member = |op, user: &'_ str| {
                ServerFrame::Member {
                    room,
                    op,
                    user,
                    by,
                    cursor,
                    at,
                }
                .to_json()
            };
            match &r.change {
                RoomChange::Created { kind, topic, .. } => ServerFrame::Created {
                    room,
                    kind: *kind,
                    topic,
                    by,
                    cursor,
                    at,
                }
                .to_json(),
                RoomChange::Joined => member("joined", by),
                RoomChange::Left => member("left", by),
                RoomChange::Added { member: m } => member("added", m.name.as_str()),
                RoomChange::Removed { member: m } => member("removed", m.name.as_str()),
                RoomChange::Topic { topic } => ServerFrame::Topic {
                    room,
                    topic,
                    by,
                    cursor,
                    at,
                }
                .to_json(),
                RoomChange::Read { cursor: read } => ServerFrame::Read {
                    room,
                    cursor: *read,
                }
                .to_json(),
                RoomChange::Muted { muted } => ServerFrame::Muted {
                    room,
                    muted: *muted,
                }
                .to_json(),
                RoomChange::Archived { archived } => ServerFrame::Archived {
                    room,
                    archived: *archived,
                    by,
                    cursor,
                    at,
                }
                .to_json(),
                RoomChange::Deleted => ServerFrame::RoomDeleted {
                    room,
                    by,
                    cursor,
                    at,
                }
                .to_json(),
            }
        }
        RoomEvent::Change(c) => {
            let (room, id) = (&c.room, c.message);
            match &c.change {
                Change::Edit { body } => ServerFrame::Edited {
                    room,
                    id,
                    body,
                    edited_at: c.at,
                    cursor,
                },
                Change::Delete => ServerFrame::Deleted { room, id, cursor },
                Change::React { emoji } | Change::Unreact { emoji } => ServerFrame::Reaction {
                    room,
                    id,
                    emoji,
                    user: c.user.as_str(),
                    op: if matches!(c.change, Change::React { .. }) {
                        "add"
                    } else {
                        "remove"
                    },
                    cursor,
                },
            }
            .to_json()
        }
    }
}

impl<'a> From<&'a FrameError> for ServerFrame<'a> {
    fn from(e: &'a FrameError) -> Self {
        Self::Error {
            code: e.code,
            message: &e.message,
            client_id: e.client_id.as_deref(),
            retry_after_ms: e.retry_after_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> &'static str {
        parse(text).expect_err(text).code
    }

    #[test]
    fn parses_typed_and_bare_sends() {
        let typed = parse(r#"{"type":"send","room":"general","body":"hi","client_id":"c1"}"#)
            .expect("typed");
        let ClientFrame::Send {
            room,
            body,
            client_id,
            reply_to: None,
            ..
        } = typed
        else {
            panic!("not a send");
        };
        assert_eq!(room.as_str(), "general");
        assert_eq!(body.as_str(), "hi");
        assert_eq!(client_id.expect("client id").as_str(), "c1");
        let bare = parse(r#"{"room": "general", "body": "Hello, World!"}"#).expect("bare");
        assert!(matches!(
            bare,
            ClientFrame::Send {
                client_id: None,
                ..
            }
        ));
    }

    #[test]
    fn a_send_with_attachments_may_say_nothing_and_names_each_upload_once() {
        let id = Uuid::new_v4();
        let frame = parse(&format!(
            r#"{{"type":"send","room":"r","attachments":["{id}"]}}"#
        ))
        .expect("attachments only");
        let ClientFrame::Send {
            body, attachments, ..
        } = frame
        else {
            panic!("not a send");
        };
        assert_eq!(body.as_str(), "");
        assert_eq!(attachments, vec![id]);
        let with_text = parse(&format!(
            r#"{{"type":"send","room":"r","body":"look","attachments":["{id}"]}}"#
        ));
        assert!(matches!(with_text, Ok(ClientFrame::Send { body, .. }) if body.as_str() == "look"));
        // Without attachments a body is still required, and an empty list is no attachment.
        assert_eq!(code(r#"{"type":"send","room":"r"}"#), "validation_failed");
        assert_eq!(
            code(r#"{"type":"send","room":"r","body":" ","attachments":[]}"#),
            "validation_failed"
        );
        for bad in [
            r#"{"type":"send","room":"r","attachments":["nope"]}"#.to_owned(),
            r#"{"type":"send","room":"r","attachments":"x"}"#.to_owned(),
            r#"{"type":"send","room":"r","attachments":[1]}"#.to_owned(),
            format!(r#"{{"type":"send","room":"r","attachments":["{id}","{id}"]}}"#),
            format!(
                r#"{{"type":"send","room":"r","attachments":[{}]}}"#,
                vec![format!(r#""{}""#, Uuid::new_v4()); 11].join(",")
            ),
        ] {
            assert_eq!(code(&bad), "validation_failed", "{bad}");
        }
    }

    #[test]
    fn parses_the_other_frames() {
        let join = parse(r#"{"type":"join","room":"r","since":"000000000000000000000005"}"#)
            .expect("join");
        assert_eq!(
            join,
            ClientFrame::Join {
                room: RoomName::parse("r").expect("room"),
                since: Some(Cursor::new(0, 5)),
            }
        );
        assert!(matches!(
            parse(r#"{"type":"join","room":"r"}"#),
            Ok(ClientFrame::Join { since: None, .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"leave","room":"r"}"#),
            Ok(ClientFrame::Leave { .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"typing","room":"r"}"#),
            Ok(ClientFrame::Typing { .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"auth","token":"t"}"#),
            Ok(ClientFrame::Auth { .. })
        ));
    }

    #[test]
    fn refuses_bad_frames_with_a_code() {
        assert_eq!(code("not json"), "validation_failed");
        assert_eq!(code("[1]"), "validation_failed");
        assert_eq!(code("{}"), "validation_failed");
        assert_eq!(code(r#"{"type":"dance"}"#), "validation_failed");
        assert_eq!(code(r#"{"type":"send","room":"r"}"#), "validation_failed");
        assert_eq!(
            code(r#"{"type":"send","room":"bad room","body":"x"}"#),
            "validation_failed"
        );
        assert_eq!(
            code(r#"{"type":"send","room":"r","body":""}"#),
            "validation_failed"
        );
        assert_eq!(
            code(r#"{"type":"send","room":"r","body":5}"#),
            "validation_failed"
        );
        assert_eq!(
            code(r#"{"type":"join","room":"r","since":"nope"}"#),
            "validation_failed"
        );
        let long = format!(
            r#"{{"type":"send","room":"r","body":"{}"}}"#,
            "x".repeat(4001)
        );
        assert_eq!(code(&long), "too_large");
    }

    #[test]
    fn parses_the_timeline_frames() {
        let id = "0190b6c4-5f6e-7a8b-9c0d-1e2f3a4b5c6d";
        let target = Uuid::parse_str(id).expect("uuid");
        assert_eq!(
            parse(&format!(
                r#"{{"type":"edit","id":"{id}","body":"new","client_id":"e1"}}"#
            )),
            Ok(ClientFrame::Edit {
                id: target,
                body: MessageBody::parse("new").expect("body"),
                client_id: Some(ClientId::parse("e1").expect("cid")),
            })
        );
        assert_eq!(
            parse(&format!(r#"{{"type":"delete","id":"{id}"}}"#)),
            Ok(ClientFrame::Delete {
                id: target,
                client_id: None
            })
        );
        assert!(matches!(
            parse(&format!(r#"{{"type":"unreact","id":"{id}","emoji":"👍"}}"#)),
            Ok(ClientFrame::React { add: false, .. })
        ));
        assert!(matches!(
            parse(&format!(r#"{{"type":"send","room":"r","body":"x","reply_to":"{id}"}}"#)),
            Ok(ClientFrame::Send { reply_to: Some(r), .. }) if r == target
        ));
        for bad in [
            r#"{"type":"edit","body":"x"}"#.to_owned(),
            r#"{"type":"edit","id":"nope","body":"x"}"#.to_owned(),
            format!(r#"{{"type":"edit","id":"{id}","body":""}}"#),
            format!(r#"{{"type":"react","id":"{id}"}}"#),
            format!(r#"{{"type":"react","id":"{id}","emoji":"a b"}}"#),
            r#"{"type":"send","room":"r","body":"x","reply_to":"x"}"#.to_owned(),
        ] {
            assert_eq!(code(&bad), "validation_failed", "{bad}");
        }
        let e = parse(r#"{"type":"delete","id":"nope","client_id":"d7"}"#).expect_err("bad id");
        assert_eq!(e.client_id.as_deref(), Some("d7"));
    }

    #[test]
    fn parses_a_read_position_and_refuses_a_bad_one() {
        assert_eq!(
            parse(
                r#"{"type":"read","room":"r","cursor":"000000000000000000000009","client_id":"r1"}"#
            ),
            Ok(ClientFrame::Read {
                room: RoomName::parse("r").expect("room"),
                cursor: Cursor::new(0, 9),
                client_id: Some(ClientId::parse("r1").expect("cid")),
            })
        );
        let e = parse(r#"{"type":"read","room":"r","client_id":"r2"}"#).expect_err("no cursor");
        assert_eq!(
            (e.code, e.client_id.as_deref()),
            ("validation_failed", Some("r2"))
        );
        assert_eq!(
            code(r#"{"type":"read","room":"r","cursor":"9"}"#),
            "validation_failed"
        );
    }

    #[test]
    fn errors_for_a_send_echo_its_client_id() {
        let e =
            parse(r#"{"type":"send","room":"r","body":"","client_id":"c9"}"#).expect_err("empty");
        assert_eq!(e.client_id.as_deref(), Some("c9"));
    }

    #[test]
    fn server_frames_have_a_type() {
        let room = RoomName::parse("r").expect("room");
        let json = ServerFrame::Joined {
            room: &room,
            cursor: Some(Cursor::new(0, 1)),
        }
        .to_json();
        assert_eq!(
            json,
            r#"{"type":"joined","room":"r","cursor":"000000000000000000000001"}"#
        );
    }
}
