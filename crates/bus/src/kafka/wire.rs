//! The records banter writes to Kafka, in one versioned format shared by every gateway and
//! persist worker.
//!
//! `chat-in` holds one [`Record`] per room event, keyed by room. Every record keeps the seed's
//! fields (`id`, `room`, `author`, `body`, `created_at`), so `kcat -C -t chat-in` shows what
//! seed users expect; `v` and `type` say what it is:
//!
//! - no `v` (version 1: the seed's records and banter's before room events): a message;
//! - `"v":2` with `"type"`: `message`, `edit` (`body` is the new text), `delete`, `react` or
//!   `unreact` (`emoji`). For a change, `id` is the event's own id, `message` the message it
//!   changes, and `author` the user who made the change. A message lists its `mentions`;
//!   a bot's message has `"bot":true` and, when an incoming webhook gave one, its `label`.
//! - `"v":2` room changes: `created` (`room_kind`, `topic`, and for a DM the other user in
//!   `member`/`member_id`), `joined`, `left`, `added` and `removed` (`member`/`member_id`),
//!   `topic` (`topic`), `read` (`cursor`), `muted` (`muted`), `archived` (`archived`) and
//!   `deleted`; `author` is who made the change.
//!
//! A record of a version this build does not know, or that does not decode, is an error the
//! reader reports (persist sends it to the dead-letter topic with the reason; the fan-out
//! skips it). `chat-events` holds typing, presence and accounts' standing ([`EventRecord`]),
//! which no room's log keeps.

use banter_core::{
    Attachment, BotLabel, BotPost, Change, ClientId, Cursor, Emoji, MessageBody, NewChange,
    NewMessage, NewRoomChange, RoomChange, RoomEvent, RoomKind, RoomName, Standing, Topic, UserId,
    UserRef, Username,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Event, NodeId, Presence};

/// The version [`Record::of`] writes.
pub const VERSION: u32 = 2;

/// A record of `chat-in`. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Absent in version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u32>,
    /// What the event is; absent in version 1 (a message).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub id: Uuid,
    pub room: String,
    /// Who wrote the message, or made the change.
    pub author: String,
    pub author_id: i64,
    /// A message's text, or an edit's new text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_root: Option<Uuid>,
    /// The message a change changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// The files a message carries, as the contract shows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// The user a room change adds or removes (or a DM's other user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// A read position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Muted or unmuted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted: Option<bool>,
    /// Archived or brought back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
    /// A bot's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<bool>,
    /// The label a bot's message is shown under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// Why a record is not a room event banter can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(String);

fn bad(what: impl std::fmt::Display) -> WireError {
    WireError(what.to_string())
}

impl Record {
    /// The record of an event.
    pub fn of(event: &RoomEvent) -> Self {
        match event {
            RoomEvent::Message(m) => Self {
                v: Some(VERSION),
                kind: Some("message".into()),
                id: m.id,
                room: m.room.as_str().to_owned(),
                author: m.author.as_str().to_owned(),
                author_id: m.author_id.0,
                body: Some(m.body.clone()),
                created_at: m.created_at,
                client_id: m.client_id.as_ref().map(|c| c.as_str().to_owned()),
                reply_to: m.reply_to,
                thread_root: m.thread_root,
                message: None,
                emoji: None,
                mentions: m.mentions.iter().map(|n| n.as_str().to_owned()).collect(),
                attachments: m.attachments.clone(),
                bot: m.bot.as_ref().map(|_| true),
                label: m
                    .bot
                    .as_ref()
                    .and_then(|b| b.label.as_ref())
                    .map(|l| l.as_str().to_owned()),
                ..Self::bare(m.room.as_str(), m.id)
            },
            RoomEvent::Change(c) => {
                let (body, emoji) = match &c.change {
                    Change::Edit { body } => (Some(body.clone()), None),
                    Change::Delete => (None, None),
                    Change::React { emoji } | Change::Unreact { emoji } => {
                        (None, Some(emoji.as_str().to_owned()))
                    }
                };
                Self {
                    v: Some(VERSION),
                    kind: Some(c.change.kind().into()),
                    id: c.id,
                    room: c.room.as_str().to_owned(),
                    author: c.user.as_str().to_owned(),
                    author_id: c.user_id.0,
                    body,
                    created_at: c.at,
                    client_id: c.client_id.as_ref().map(|c| c.as_str().to_owned()),
                    reply_to: None,
                    thread_root: None,
                    message: Some(c.message),
                    emoji,
                    ..Self::bare(c.room.as_str(), c.id)
                }
            }
            RoomEvent::Room(r) => {
                let mut record = Self {
                    kind: Some(r.change.kind().into()),
                    author: r.user.as_str().to_owned(),
                    author_id: r.user_id.0,
                    created_at: r.at,
                    client_id: r.client_id.as_ref().map(|c| c.as_str().to_owned()),
                    ..Self::bare(r.room.as_str(), r.id)
                };
                let mut member = |m: &UserRef| {
                    record.member = Some(m.name.as_str().to_owned());
                    record.member_id = Some(m.id.0);
                };
                match &r.change {
                    RoomChange::Created {
                        kind,
                        topic,
                        members,
                    } => {
                        if let Some(other) = members.iter().find(|m| m.id != r.user_id) {
                            member(other);
                        }
                        record.room_kind = Some(kind.as_str().to_owned());
                        record.topic = Some(topic.as_str().to_owned());
                    }
                    RoomChange::Added { member: m } | RoomChange::Removed { member: m } => {
                        member(m);
                    }
                    RoomChange::Topic { topic } => record.topic = Some(topic.as_str().to_owned()),
                    RoomChange::Read { cursor } => record.cursor = Some(cursor.to_string()),
                    RoomChange::Muted { muted } => record.muted = Some(*muted),
                    RoomChange::Archived { archived } => record.archived = Some(*archived),
                    RoomChange::Joined | RoomChange::Left | RoomChange::Deleted => {}
                }
                record
            }
        }
    }

    /// A version-2 record of `room` with nothing else filled in.
    fn bare(room: &str, id: Uuid) -> Self {
        Self {
            v: Some(VERSION),
            kind: None,
            id,
            room: room.to_owned(),
            author: String::new(),
            author_id: 0,
            body: None,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            client_id: None,
            reply_to: None,
            thread_root: None,
            message: None,
            emoji: None,
            mentions: Vec::new(),
            attachments: Vec::new(),
            member: None,
            member_id: None,
            room_kind: None,
            topic: None,
            archived: None,
            cursor: None,
            muted: None,
            bot: None,
            label: None,
        }
    }

    /// Decodes and validates a record's bytes.
    pub fn decode(payload: &[u8]) -> Result<RoomEvent, WireError> {
        let record: Self = serde_json::from_slice(payload)
            .map_err(|e| bad(format!("not a banter record: {e}")))?;
        record.into_event()
    }

    /// The room change a record carries, if it is one.
    fn room_change(&self) -> Result<Option<RoomChange>, WireError> {
        let member = || -> Result<UserRef, WireError> {
            let (Some(name), Some(id)) = (&self.member, self.member_id) else {
                return Err(bad("needs the member it names"));
            };
            Ok(UserRef {
                id: UserId(id),
                name: Username::parse(name).map_err(bad)?,
            })
        };
        let topic = || Topic::parse(self.topic.as_deref().unwrap_or_default()).map_err(bad);
        Ok(Some(match self.kind.as_deref() {
            Some("created") => {
                let kind = self
                    .room_kind
                    .as_deref()
                    .and_then(RoomKind::from_stored)
                    .ok_or_else(|| bad("a created room needs its room_kind"))?;
                let mut members = vec![UserRef {
                    id: UserId(self.author_id),
                    name: Username::parse(&self.author).map_err(bad)?,
                }];
                if self.member.is_some() {
                    members.push(member()?);
                }
                RoomChange::Created {
                    kind,
                    topic: topic()?,
                    members,
                }
            }
            Some("joined") => RoomChange::Joined,
            Some("left") => RoomChange::Left,
            Some("added") => RoomChange::Added { member: member()? },
            Some("removed") => RoomChange::Removed { member: member()? },
            Some("topic") => RoomChange::Topic { topic: topic()? },
            Some("read") => RoomChange::Read {
                cursor: Cursor::parse("cursor", self.cursor.as_deref().unwrap_or_default())
                    .map_err(bad)?,
            },
            Some("muted") => RoomChange::Muted {
                muted: self
                    .muted
                    .ok_or_else(|| bad("a muted change needs muted"))?,
            },
            Some("archived") => RoomChange::Archived {
                archived: self
                    .archived
                    .ok_or_else(|| bad("an archived change needs archived"))?,
            },
            Some("deleted") => RoomChange::Deleted,
            _ => return Ok(None),
        }))
    }

    /// Validates a record into the event it carries.
    pub fn into_event(self) -> Result<RoomEvent, WireError> {
        match self.v {
            None | Some(1) | Some(2) => {}
            Some(v) => return Err(bad(format!("record version {v} is newer than this build"))),
        }
        let room = RoomName::parse(&self.room).map_err(bad)?;
        let author = Username::parse(&self.author).map_err(bad)?;
        let client_id = self
            .client_id
            .as_deref()
            .map(ClientId::parse)
            .transpose()
            .map_err(bad)?;
        let kind = self.kind.as_deref().unwrap_or("message");
        if kind == "message" {
            let body = self
                .body
                .ok_or_else(|| bad("a message record needs a body"))?;
            return Ok(RoomEvent::Message(NewMessage {
                id: self.id,
                room,
                author_id: UserId(self.author_id),
                author,
                body,
                created_at: self.created_at,
                client_id,
                reply_to: self.reply_to,
                thread_root: self.thread_root,
                mentions: self
                    .mentions
                    .iter()
                    .map(|n| Username::parse(n))
                    .collect::<Result<_, _>>()
                    .map_err(bad)?,
                attachments: self.attachments,
                bot: match (self.bot, self.label) {
                    (Some(true), label) => Some(BotPost::new(
                        label
                            .as_deref()
                            .map(BotLabel::parse)
                            .transpose()
                            .map_err(bad)?,
                    )),
                    _ => None,
                },
            }));
        }
        if let Some(change) = self.room_change()? {
            return Ok(RoomEvent::Room(NewRoomChange {
                id: self.id,
                room,
                user_id: UserId(self.author_id),
                user: author,
                at: self.created_at,
                client_id,
                change,
            }));
        }
        let emoji = || {
            let emoji = self.emoji.as_deref().ok_or_else(|| bad("needs an emoji"))?;
            Emoji::parse(emoji).map_err(bad)
        };
        let change = match kind {
            "edit" => {
                let body = self
                    .body
                    .as_deref()
                    .ok_or_else(|| bad("an edit needs a body"))?;
                MessageBody::parse(body).map_err(bad)?;
                Change::Edit {
                    body: body.to_owned(),
                }
            }
            "delete" => Change::Delete,
            "react" => Change::React { emoji: emoji()? },
            "unreact" => Change::Unreact { emoji: emoji()? },
            other => return Err(bad(format!("unknown event type {other:?}"))),
        };
        Ok(RoomEvent::Change(NewChange {
            id: self.id,
            room,
            message: self
                .message
                .ok_or_else(|| bad("a change needs the message it changes"))?,
            user_id: UserId(self.author_id),
            user: author,
            at: self.created_at,
            client_id,
            change,
        }))
    }
}

/// A record on `chat-events`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum EventRecord {
    Typing {
        room: String,
        user: String,
    },
    Presence {
        node: NodeId,
        room: String,
        user: String,
        online: bool,
    },
    PresenceUser {
        node: NodeId,
        user: String,
        online: bool,
    },
    PresenceSnapshot {
        node: NodeId,
        online: Vec<(String, Vec<String>)>,
        /// Absent from gateways older than user presence: nobody known connected.
        #[serde(default)]
        connected: Vec<String>,
        /// Absent from gateways older than the admin page: none counted.
        #[serde(default)]
        connections: usize,
    },
    PresenceHello {
        node: NodeId,
    },
    PresenceGone {
        node: NodeId,
    },
    Account {
        user_id: i64,
        user: String,
        deactivated: bool,
        #[serde(default)]
        revoked_before: Option<DateTime<Utc>>,
    },
}

impl EventRecord {
    /// The record of an event, and its key: the room, or for presence the gateway, so that
    /// one gateway's presence news stay in order. Room events are not announced: `None`.
    pub(crate) fn of(event: &Event) -> Option<(Self, String)> {
        let name = |n: &Username| n.as_str().to_owned();
        Some(match event {
            Event::Room(_) => return None,
            Event::Typing { room, user } => (
                Self::Typing {
                    room: room.as_str().to_owned(),
                    user: name(user),
                },
                room.as_str().to_owned(),
            ),
            Event::Presence(p) => {
                let record = match p {
                    Presence::Changed {
                        node,
                        room,
                        user,
                        online,
                    } => Self::Presence {
                        node: *node,
                        room: room.as_str().to_owned(),
                        user: name(user),
                        online: *online,
                    },
                    Presence::Connected { node, user, online } => Self::PresenceUser {
                        node: *node,
                        user: name(user),
                        online: *online,
                    },
                    Presence::Snapshot {
                        node,
                        online,
                        connected,
                        connections,
                    } => Self::PresenceSnapshot {
                        node: *node,
                        connections: *connections,
                        online: online
                            .iter()
                            .map(|(room, users)| {
                                (room.as_str().to_owned(), users.iter().map(name).collect())
                            })
                            .collect(),
                        connected: connected.iter().map(name).collect(),
                    },
                    Presence::Hello { node } => Self::PresenceHello { node: *node },
                    Presence::Gone { node } => Self::PresenceGone { node: *node },
                };
                (record, p.node().to_string())
            }
            Event::Account(standing) => (
                Self::Account {
                    user_id: standing.user.0,
                    user: name(&standing.username),
                    deactivated: standing.deactivated,
                    revoked_before: standing.revoked_before,
                },
                standing.user.to_string(),
            ),
        })
    }

    pub(crate) fn into_event(self) -> Result<Event, String> {
        let room = |r: &str| RoomName::parse(r).map_err(|e| e.to_string());
        let user = |u: &str| Username::parse(u).map_err(|e| e.to_string());
        Ok(match self {
            Self::Typing { room: r, user: u } => Event::Typing {
                room: room(&r)?,
                user: user(&u)?,
            },
            Self::Presence {
                node,
                room: r,
                user: u,
                online,
            } => Event::Presence(Presence::Changed {
                node,
                room: room(&r)?,
                user: user(&u)?,
                online,
            }),
            Self::PresenceUser {
                node,
                user: u,
                online,
            } => Event::Presence(Presence::Connected {
                node,
                user: user(&u)?,
                online,
            }),
            Self::PresenceSnapshot {
                node,
                online,
                connected,
                connections,
            } => Event::Presence(Presence::Snapshot {
                node,
                connections,
                connected: connected
                    .iter()
                    .map(|u| user(u))
                    .collect::<Result<_, _>>()?,
                online: online
                    .iter()
                    .map(|(r, users)| {
                        Ok((
                            room(r)?,
                            users.iter().map(|u| user(u)).collect::<Result<_, _>>()?,
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            }),
            Self::PresenceHello { node } => Event::Presence(Presence::Hello { node }),
            Self::PresenceGone { node } => Event::Presence(Presence::Gone { node }),
            Self::Account {
                user_id,
                user: u,
                deactivated,
                revoked_before,
            } => Event::Account(Standing {
                user: UserId(user_id),
                username: user(&u)?,
                deactivated,
                revoked_before,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(change: Change) -> RoomEvent {
        RoomEvent::Change(NewChange {
            id: Uuid::new_v4(),
            room: RoomName::parse("general").expect("room"),
            message: Uuid::new_v4(),
            user_id: UserId(7),
            user: Username::parse("alice").expect("name"),
            at: DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
            client_id: Some(ClientId::parse("c1").expect("cid")),
            change,
        })
    }

    #[test]
    fn presence_records_read_back_as_written_and_old_snapshots_still_read() {
        let node = Uuid::new_v4();
        let user = |n: &str| Username::parse(n).expect("name");
        let events = [
            Presence::Connected {
                node,
                user: user("bob"),
                online: true,
            },
            Presence::Snapshot {
                node,
                online: vec![(RoomName::parse("general").expect("room"), vec![user("bob")])],
                connected: vec![user("bob"), user("carol")],
                connections: 3,
            },
        ];
        for presence in events {
            let event = Event::Presence(presence.clone());
            let (record, key) = EventRecord::of(&event).expect("a record");
            assert_eq!(key, node.to_string());
            let text = serde_json::to_string(&record).expect("json");
            let back: EventRecord = serde_json::from_str(&text).expect("reads");
            assert_eq!(back.into_event().expect("event"), event);
        }
        // A snapshot from a gateway that did not know user presence yet.
        let old = format!(
            r#"{{"type":"presence_snapshot","node":"{node}","online":[["general",["bob"]]]}}"#
        );
        let back: EventRecord = serde_json::from_str(&old).expect("reads");
        let Event::Presence(Presence::Snapshot { connected, .. }) =
            back.into_event().expect("event")
        else {
            panic!("a snapshot");
        };
        assert!(connected.is_empty());
    }

    #[test]
    fn an_accounts_standing_travels_keyed_by_its_user() {
        let event = Event::Account(Standing {
            user: UserId(42),
            username: Username::parse("ann").expect("name"),
            deactivated: true,
            revoked_before: DateTime::from_timestamp(1_700_000_000, 0),
        });
        let (record, key) = EventRecord::of(&event).expect("a record");
        assert_eq!(key, "42");
        let text = serde_json::to_string(&record).expect("json");
        assert!(text.contains(r#""type":"account""#), "{text}");
        let back: EventRecord = serde_json::from_str(&text).expect("reads");
        assert_eq!(back.into_event().expect("event"), event);
    }

    #[test]
    fn every_event_survives_the_wire() {
        let message = RoomEvent::Message(NewMessage {
            id: Uuid::new_v4(),
            room: RoomName::parse("general").expect("room"),
            author_id: UserId(7),
            author: Username::parse("alice").expect("name"),
            body: "hi".into(),
            created_at: DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
            client_id: None,
            reply_to: Some(Uuid::new_v4()),
            thread_root: Some(Uuid::new_v4()),
            mentions: vec![Username::parse("bob").expect("name")],
            attachments: vec![Attachment {
                id: Uuid::new_v4(),
                name: "cat.png".into(),
                size: 1234,
                content_type: "image/png".into(),
                width: Some(64),
                height: Some(48),
                thumbnail: true,
            }],
            bot: Some(BotPost::new(Some(BotLabel::parse("CI").expect("label")))),
        });
        let emoji = Emoji::parse("👍").expect("emoji");
        let room = |change| {
            RoomEvent::Room(NewRoomChange {
                id: Uuid::new_v4(),
                room: RoomName::parse("dm:alice:bob").expect("room"),
                user_id: UserId(7),
                user: Username::parse("alice").expect("name"),
                at: DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
                client_id: Some(ClientId::parse("r1").expect("cid")),
                change,
            })
        };
        let bob = UserRef {
            id: UserId(8),
            name: Username::parse("bob").expect("name"),
        };
        let alice = UserRef {
            id: UserId(7),
            name: Username::parse("alice").expect("name"),
        };
        for event in [
            message,
            change(Change::Edit { body: "new".into() }),
            change(Change::Delete),
            change(Change::React {
                emoji: emoji.clone(),
            }),
            change(Change::Unreact { emoji }),
            room(RoomChange::Created {
                kind: RoomKind::Dm,
                topic: Topic::default(),
                members: vec![alice.clone(), bob.clone()],
            }),
            room(RoomChange::Created {
                kind: RoomKind::Private,
                topic: Topic::parse("plans").expect("topic"),
                members: vec![alice],
            }),
            room(RoomChange::Joined),
            room(RoomChange::Left),
            room(RoomChange::Added {
                member: bob.clone(),
            }),
            room(RoomChange::Removed { member: bob }),
            room(RoomChange::Topic {
                topic: Topic::parse("new").expect("topic"),
            }),
            room(RoomChange::Read {
                cursor: Cursor::new(3, 99),
            }),
            room(RoomChange::Muted { muted: true }),
            room(RoomChange::Muted { muted: false }),
            room(RoomChange::Archived { archived: true }),
            room(RoomChange::Archived { archived: false }),
            room(RoomChange::Deleted),
        ] {
            let bytes = serde_json::to_vec(&Record::of(&event)).expect("json");
            assert_eq!(Record::decode(&bytes), Ok(event));
        }
    }

    #[test]
    fn version_one_records_are_messages() {
        // A record as banter wrote it before room events (and the seed's fields).
        let v1 = br#"{"id":"0190b6c4-5f6e-7a8b-9c0d-1e2f3a4b5c6d","room":"general","author":"alice","author_id":3,"body":"old","created_at":"2026-11-01T10:00:00Z","client_id":"c9"}"#;
        let RoomEvent::Message(m) = Record::decode(v1).expect("v1") else {
            panic!("not a message");
        };
        assert_eq!((m.body.as_str(), m.author_id), ("old", UserId(3)));
        assert_eq!(
            m.client_id.map(|c| c.as_str().to_owned()).as_deref(),
            Some("c9")
        );
    }

    #[test]
    fn records_that_cannot_be_used_say_why() {
        let at = r#""created_at":"2026-11-01T10:00:00Z""#;
        let id = r#""id":"0190b6c4-5f6e-7a8b-9c0d-1e2f3a4b5c6d""#;
        for (record, why) in [
            ("not json".to_owned(), "not a banter record"),
            (
                format!(r#"{{"v":3,{id},"room":"r","author":"alice","author_id":1,{at}}}"#),
                "version 3",
            ),
            (
                format!(
                    r#"{{"v":2,"type":"dance",{id},"room":"r","author":"alice","author_id":1,{at}}}"#
                ),
                "unknown event type",
            ),
            (
                format!(
                    r#"{{"v":2,"type":"edit",{id},"room":"r","author":"alice","author_id":1,"body":"x",{at}}}"#
                ),
                "needs the message",
            ),
            (
                format!(
                    r#"{{"v":2,"type":"react",{id},"room":"r","author":"alice","author_id":1,"message":"0190b6c4-5f6e-7a8b-9c0d-1e2f3a4b5c6d",{at}}}"#
                ),
                "emoji",
            ),
            (
                format!(
                    r#"{{{id},"room":"bad room","author":"alice","author_id":1,"body":"x",{at}}}"#
                ),
                "room",
            ),
            (
                format!(
                    r#"{{"v":2,"type":"added",{id},"room":"r","author":"alice","author_id":1,{at}}}"#
                ),
                "member",
            ),
            (
                format!(
                    r#"{{"v":2,"type":"read",{id},"room":"r","author":"alice","author_id":1,"cursor":"x",{at}}}"#
                ),
                "cursor",
            ),
            (
                format!(
                    r#"{{"v":2,"type":"created",{id},"room":"r","author":"alice","author_id":1,{at}}}"#
                ),
                "room_kind",
            ),
        ] {
            let err = Record::decode(record.as_bytes()).expect_err(&record);
            assert!(err.to_string().contains(why), "{record}: {err}");
        }
    }
}
