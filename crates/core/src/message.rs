//! Messages and cursors: what a room is made of, and how a reader says where it got to.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::{RoomName, UserId, Username, ValidationError};

/// A position in a room's history. Cursors of one room are totally ordered, and every reader
/// of the room sees its messages in cursor order.
///
/// It is a partition of the message log and an offset in it. A room always lives in one
/// partition (on Kafka, the room is the message key), so comparing the offsets of two cursors
/// of the same room orders them. On the wire it is opaque: 24 hex digits, which also sort as
/// strings within a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cursor {
    pub partition: u32,
    pub offset: u64,
}

impl Cursor {
    pub const fn new(partition: u32, offset: u64) -> Self {
        Self { partition, offset }
    }

    /// Before every message of every room, on every log: a client that has seen nothing of a
    /// room resumes from here.
    pub const ZERO: Self = Self::new(0, 0);

    /// The cursor of a Kafka record: one past its offset, so that no message has
    /// [`Cursor::ZERO`] (Kafka's first offset is 0; the local log's first is 1).
    pub fn of_record(partition: i32, offset: i64) -> Option<Self> {
        let partition = u32::try_from(partition).ok()?;
        let offset = u64::try_from(offset).ok()?.checked_add(1)?;
        Some(Self::new(partition, offset))
    }

    /// Parses a cursor a client sent back in `field` (`since`, `before`, ...).
    pub fn parse(field: &'static str, input: &str) -> Result<Self, ValidationError> {
        input
            .parse()
            .map_err(|()| ValidationError::new(field, "is not a cursor banter gave out"))
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}{:016x}", self.partition, self.offset)
    }
}

impl FromStr for Cursor {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 24 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(());
        }
        let partition = u32::from_str_radix(&s[..8], 16).map_err(|_| ())?;
        let offset = u64::from_str_radix(&s[8..], 16).map_err(|_| ())?;
        Ok(Self { partition, offset })
    }
}

impl Serialize for Cursor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The sender's own id for a message, so a re-send after a lost ack makes no duplicate:
/// 1 to 64 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        if input.is_empty() || input.len() > Self::MAX_LEN {
            return Err(ValidationError::new(
                "client_id",
                format!("must be 1 to {} characters long", Self::MAX_LEN),
            ));
        }
        if !input.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValidationError::new(
                "client_id",
                "may only contain printable ASCII characters without spaces",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// Wraps an id the store already holds.
    pub fn from_stored(id: String) -> Self {
        Self(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for ClientId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A message as every reader sees it: the seed's fields (`id`, `room`, `author`, `body`,
/// `created_at`) plus banter's `cursor` and the sender's `client_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub id: Uuid,
    pub room: RoomName,
    pub author: Username,
    pub body: String,
    #[serde(serialize_with = "rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    pub cursor: Cursor,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<ClientId>,
    /// The message this one answers, when it is a reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Uuid>,
    /// The first message of the thread a reply is in (a reply to a reply joins its thread).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_root: Option<Uuid>,
    /// The members it mentions (`@name`), with their own spelling.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<Username>,
    /// The files it carries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Set when a bot sent it: `"bot": true` and the label it posted under, if any.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub bot: Option<BotPost>,
}

/// The mark of a message a bot sent: readers show it as a bot's, under `label` when an
/// incoming webhook gave one (Slack's `username`), else under the bot's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BotPost {
    #[serde(serialize_with = "always_true")]
    pub bot: (),
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<BotLabel>,
}

impl BotPost {
    pub fn new(label: Option<BotLabel>) -> Self {
        Self { bot: (), label }
    }
}

fn always_true<S: Serializer>(_: &(), s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(true)
}

/// The name a bot's message is shown under instead of the bot's own: 1 to 64 characters,
/// trimmed, without control characters. It is a label, never an account's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BotLabel(String);

impl BotLabel {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let trimmed = input.trim();
        let chars = trimmed.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(ValidationError::new(
                "username",
                format!("must be 1 to {} characters long", Self::MAX_CHARS),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "username",
                "may not contain control characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// Wraps a label the store or the log already holds.
    pub fn from_stored(label: String) -> Self {
        Self(label)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for BotLabel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A file a message carries, as its upload described it: what the client shows (name, size,
/// type, an image's size) and where to fetch it.
///
/// It serializes as the contract's `{"id","name","size","content_type","url",
/// "thumbnail_url"?,"width"?,"height"?}`, everywhere: in frames and history, in the log's
/// records and in the store's rows, so one form reads back what it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The upload's id, which is also the file's.
    pub id: Uuid,
    /// The name the uploader gave, as a label: never a path anywhere.
    pub name: String,
    pub size: u64,
    /// The type sniffed from the bytes (`application/octet-stream` when unknown).
    pub content_type: String,
    /// An image's width and height (after its EXIF orientation), when it was decoded.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Whether banter made a thumbnail of it.
    pub thumbnail: bool,
}

impl Attachment {
    /// At most this many on one message.
    pub const MAX_PER_MESSAGE: usize = 10;

    /// Where a member fetches the file.
    pub fn url(&self) -> String {
        format!("/api/v1/files/{}", self.id)
    }

    pub fn thumbnail_url(&self) -> Option<String> {
        self.thumbnail
            .then(|| format!("/api/v1/files/{}/thumbnail", self.id))
    }
}

impl Serialize for Attachment {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            id: Uuid,
            name: &'a str,
            size: u64,
            content_type: &'a str,
            url: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            thumbnail_url: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            width: Option<u32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            height: Option<u32>,
        }
        Wire {
            id: self.id,
            name: &self.name,
            size: self.size,
            content_type: &self.content_type,
            url: self.url(),
            thumbnail_url: self.thumbnail_url(),
            width: self.width,
            height: self.height,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Attachment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            id: Uuid,
            name: String,
            size: u64,
            content_type: String,
            #[serde(default)]
            thumbnail_url: Option<String>,
            #[serde(default)]
            width: Option<u32>,
            #[serde(default)]
            height: Option<u32>,
        }
        let w = Wire::deserialize(d)?;
        Ok(Self {
            id: w.id,
            name: w.name,
            size: w.size,
            content_type: w.content_type,
            width: w.width,
            height: w.height,
            thumbnail: w.thumbnail_url.is_some(),
        })
    }
}

/// The attachments of a message as the store keeps them: a JSON array, or nothing for none.
pub fn attachments_json(attachments: &[Attachment]) -> Option<String> {
    (!attachments.is_empty())
        .then(|| serde_json::to_string(attachments).expect("attachments serialize"))
}

/// Reads what [`attachments_json`] wrote.
pub fn attachments_from_json(json: Option<&str>) -> Result<Vec<Attachment>, serde_json::Error> {
    match json {
        None | Some("") => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text),
    }
}

/// RFC 3339 in UTC with milliseconds (`2026-11-23T22:50:57.123Z`), like the seed's Go times.
pub fn rfc3339_millis<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// A message accepted from a sender, before the log gives it a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub id: Uuid,
    pub room: RoomName,
    pub author_id: UserId,
    pub author: Username,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub client_id: Option<ClientId>,
    /// See [`Message::reply_to`]; checked to be a message of the same room.
    pub reply_to: Option<Uuid>,
    /// See [`Message::thread_root`].
    pub thread_root: Option<Uuid>,
    /// See [`Message::mentions`]; members of the room when it was sent.
    pub mentions: Vec<Username>,
    /// See [`Message::attachments`]; uploads of the author's, checked when it was sent.
    pub attachments: Vec<Attachment>,
    /// See [`Message::bot`]; set from the sender's account, never from its input.
    pub bot: Option<BotPost>,
}

impl NewMessage {
    /// The message as stored at `cursor`.
    pub fn at(&self, cursor: Cursor) -> Message {
        Message {
            id: self.id,
            room: self.room.clone(),
            author: self.author.clone(),
            body: self.body.clone(),
            created_at: self.created_at,
            cursor,
            client_id: self.client_id.clone(),
            reply_to: self.reply_to,
            thread_root: self.thread_root,
            mentions: self.mentions.clone(),
            attachments: self.attachments.clone(),
            bot: self.bot.clone(),
        }
    }
}

/// `Some` times in RFC 3339 with milliseconds, `None` as null.
pub fn optional_rfc3339_millis<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339_millis(t, s),
        None => s.serialize_none(),
    }
}

/// A message in its current state, as history shows it: the latest body, when it was last
/// edited, its reactions counted from their rows, and (on a thread's first message) how many
/// replies it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredMessage {
    pub id: Uuid,
    pub room: RoomName,
    pub author: Username,
    pub body: String,
    #[serde(serialize_with = "rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    pub cursor: Cursor,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<ClientId>,
    pub reply_to: Option<Uuid>,
    pub thread_root: Option<Uuid>,
    pub mentions: Vec<Username>,
    pub attachments: Vec<Attachment>,
    #[serde(serialize_with = "optional_rfc3339_millis")]
    pub edited_at: Option<DateTime<Utc>>,
    pub reactions: Vec<ReactionSummary>,
    pub reply_count: u32,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub bot: Option<BotPost>,
}

/// One emoji's reactions to a message: how many, and the first of those who reacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReactionSummary {
    pub emoji: crate::Emoji,
    pub count: u32,
    /// At most [`ReactionSummary::MAX_USERS`], in the order they reacted.
    pub users: Vec<Username>,
}

impl ReactionSummary {
    pub const MAX_USERS: usize = 20;
}

/// An earlier body of an edited message: what it said, when that was written, and when an
/// edit replaced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EarlierBody {
    pub body: String,
    #[serde(serialize_with = "rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339_millis")]
    pub replaced_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_record_cursor_is_one_past_its_offset_so_zero_is_before_everything() {
        assert_eq!(Cursor::of_record(0, 0), Some(Cursor::new(0, 1)));
        assert!(Cursor::ZERO < Cursor::of_record(0, 0).unwrap());
        assert_eq!(Cursor::ZERO.to_string(), "000000000000000000000000");
        assert_eq!(Cursor::of_record(-1, 0), None);
        assert_eq!(Cursor::of_record(0, -1), None);
    }

    use super::*;

    #[test]
    fn cursors_round_trip_and_sort_as_strings() {
        let a = Cursor::new(3, 9);
        let b = Cursor::new(3, 10);
        let c = Cursor::new(3, 0x1_0000_0000);
        for cur in [a, b, c, Cursor::new(u32::MAX, u64::MAX)] {
            assert_eq!(cur.to_string().parse::<Cursor>(), Ok(cur));
            assert_eq!(cur.to_string().len(), 24);
        }
        assert!(a.to_string() < b.to_string() && b.to_string() < c.to_string());
        assert!(a < b && b < c);
    }

    #[test]
    fn foreign_cursors_are_refused() {
        for bad in [
            "",
            "12",
            "zzzzzzzzzzzzzzzzzzzzzzzz",
            "00000000000000000000000g",
            "+0000000000000000000000a",
            "0000000000000000000000000",
            "é0000000000000000000000",
        ] {
            let err = Cursor::parse("since", bad).expect_err(bad);
            assert_eq!(err.field, "since");
        }
    }

    #[test]
    fn client_ids_are_short_and_printable() {
        assert!(ClientId::parse("c-1").is_ok());
        assert!(ClientId::parse(&"x".repeat(64)).is_ok());
        assert!(ClientId::parse(&"x".repeat(65)).is_err());
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("has space").is_err());
        assert!(ClientId::parse("é").is_err());
    }

    #[test]
    fn messages_serialize_with_the_seed_fields() {
        let m = Message {
            id: Uuid::nil(),
            room: RoomName::parse("general").expect("room"),
            author: Username::parse("alice").expect("name"),
            body: "hi".into(),
            created_at: DateTime::from_timestamp(1_700_000_000, 123_000_000).expect("time"),
            cursor: Cursor::new(0, 7),
            client_id: None,
            reply_to: None,
            thread_root: None,
            mentions: Vec::new(),
            attachments: Vec::new(),
            bot: None,
        };
        let v = serde_json::to_value(&m).expect("json");
        assert_eq!(
            v,
            serde_json::json!({
                "id": "00000000-0000-0000-0000-000000000000",
                "room": "general",
                "author": "alice",
                "body": "hi",
                "created_at": "2023-11-14T22:13:20.123Z",
                "cursor": "000000000000000000000007",
            })
        );
        let from_bot = Message {
            bot: Some(BotPost::new(Some(BotLabel::parse(" CI ").expect("label")))),
            ..m.clone()
        };
        let v = serde_json::to_value(&from_bot).expect("json");
        assert_eq!(v["bot"], true);
        assert_eq!(v["label"], "CI");
        let unlabelled = Message {
            bot: Some(BotPost::new(None)),
            ..m
        };
        let v = serde_json::to_value(&unlabelled).expect("json");
        assert_eq!(v["bot"], true);
        assert!(v.get("label").is_none());
    }

    #[test]
    fn bot_labels_are_short_and_printable() {
        assert_eq!(
            BotLabel::parse("  Jenkins ").expect("ok").as_str(),
            "Jenkins"
        );
        assert!(BotLabel::parse(&"é".repeat(64)).is_ok());
        assert!(BotLabel::parse(&"é".repeat(65)).is_err());
        assert!(BotLabel::parse("   ").is_err());
        assert_eq!(
            BotLabel::parse("a\nb").expect_err("control").field,
            "username"
        );
    }

    #[test]
    fn attachments_serialize_as_the_contract_says_and_read_back() {
        let a = Attachment {
            id: Uuid::nil(),
            name: "cat.png".into(),
            size: 1234,
            content_type: "image/png".into(),
            width: Some(640),
            height: Some(480),
            thumbnail: true,
        };
        let v = serde_json::to_value(&a).expect("json");
        assert_eq!(
            v,
            serde_json::json!({
                "id": "00000000-0000-0000-0000-000000000000",
                "name": "cat.png",
                "size": 1234,
                "content_type": "image/png",
                "url": "/api/v1/files/00000000-0000-0000-0000-000000000000",
                "thumbnail_url": "/api/v1/files/00000000-0000-0000-0000-000000000000/thumbnail",
                "width": 640,
                "height": 480,
            })
        );
        let plain = Attachment {
            width: None,
            height: None,
            thumbnail: false,
            content_type: "application/pdf".into(),
            ..a.clone()
        };
        let both = vec![a, plain];
        let json = attachments_json(&both);
        assert_eq!(
            attachments_from_json(json.as_deref()).expect("read back"),
            both
        );
        assert_eq!(attachments_json(&[]), None);
        assert!(attachments_from_json(None).expect("none").is_empty());
    }
}
