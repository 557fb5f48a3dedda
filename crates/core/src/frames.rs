//! The WebSocket protocol's frames: what clients send, parsed into types at the edge, and
//! what they receive, built here and nowhere else. docs/protocol.md describes each one.

use crate::{rfc3339_millis, ClientId, Cursor, Message, MessageBody, RoomName};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A frame from a client, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// `{"type":"send","room","body","client_id"?}`, or the seed's bare `{"room","body"}`.
    Send {
        room: RoomName,
        body: MessageBody,
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
    match kind {
        "send" => {
            let client_id = raw.client_id.clone();
            let parsed = (|| {
                let room = room(raw.room, "send")?;
                let body = required("body", raw.body, "send")?;
                let body = MessageBody::parse(&body).map_err(|e| {
                    if body.chars().count() > MessageBody::MAX_LEN {
                        FrameError::new("too_large", e.to_string())
                    } else {
                        FrameError::validation(e)
                    }
                })?;
                let client_id = raw
                    .client_id
                    .as_deref()
                    .map(ClientId::parse)
                    .transpose()
                    .map_err(FrameError::validation)?;
                Ok(ClientFrame::Send {
                    room,
                    body,
                    client_id,
                })
            })();
            parsed.map_err(|mut e: FrameError| {
                // Echo a usable client_id so the sender can match the error to its send.
                e.client_id = client_id.filter(|c| ClientId::parse(c).is_ok());
                e
            })
        }
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
            "type: a frame needs a type (send, join, leave, typing or auth)",
        )),
        other => Err(FrameError::new(
            "validation_failed",
            format!("type: unknown frame type {other:?} (send, join, leave, typing or auth)"),
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
    Deleted {
        room: &'a RoomName,
        id: uuid::Uuid,
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
