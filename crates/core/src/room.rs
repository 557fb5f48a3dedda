//! Rooms as things with members: their kinds, the changes of a room itself (created,
//! joined, left, a member added or removed, its topic, a member's read position), and the
//! rules of what each change does.
//!
//! A room change is a room event like a message ([`crate::RoomEvent::Room`]): it takes its
//! place in the room's log, and what it does is decided by [`effect`], a pure function of
//! the change and the state it finds. The store's projection (on `serve` and in persist)
//! and each gateway's in-memory directory of rooms both apply changes through it, so the
//! database and every gateway agree on who is in a room.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use uuid::Uuid;

use crate::{ClientId, Cursor, RoomName, UserId, Username, ValidationError};

/// Who may be in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomKind {
    /// Anyone signed in may join, read and write; joining makes them a member.
    Public,
    /// Members only; the owner adds and removes them.
    Private,
    /// `dm:a:b`: its two users, members from its first message on.
    Dm,
}

impl RoomKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::Dm => "dm",
        }
    }

    /// The kind a client may ask for when creating a room (`dm` rooms make themselves).
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        match input {
            "public" => Ok(Self::Public),
            "private" => Ok(Self::Private),
            _ => Err(ValidationError::new(
                "kind",
                "must be \"public\" or \"private\"",
            )),
        }
    }

    /// The kind as the store and the log spell it.
    pub fn from_stored(input: &str) -> Option<Self> {
        match input {
            "public" => Some(Self::Public),
            "private" => Some(Self::Private),
            "dm" => Some(Self::Dm),
            _ => None,
        }
    }
}

impl Serialize for RoomKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A member's part in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Owner,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Member => "member",
        }
    }

    pub fn from_stored(input: &str) -> Self {
        if input == "owner" {
            Self::Owner
        } else {
            Self::Member
        }
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What a room is about: up to 250 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topic(String);

impl Topic {
    pub const MAX_LEN: usize = 250;

    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let trimmed = input.trim();
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(ValidationError::new(
                "topic",
                format!("must be at most {} characters long", Self::MAX_LEN),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "topic",
                "must be one line, without control characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// Wraps a topic the store or the log already holds.
    pub fn from_stored(topic: String) -> Self {
        Self(topic)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Topic {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A user named in a change (the one added or removed, a DM's members).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub id: UserId,
    pub name: Username,
}

/// What a change does to its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomChange {
    /// The room's first event: its kind and topic; the actor is the owner and first member
    /// (a DM has no owner, and both its users as members). Logged again for a room that
    /// exists (two gateways created it at once), it is a join of a public room and nothing
    /// otherwise.
    Created {
        kind: RoomKind,
        topic: Topic,
        members: Vec<UserRef>,
    },
    /// The actor joins a public room (or a DM that is theirs by its name).
    Joined,
    /// The actor leaves the room for good (not just a connection's `leave`).
    Left,
    /// The actor adds `member`.
    Added { member: UserRef },
    /// The actor removes `member`.
    Removed { member: UserRef },
    /// The room's topic becomes this.
    Topic { topic: Topic },
    /// The actor has read the room up to `cursor` (only ever forward).
    Read { cursor: Cursor },
    /// The actor mutes the room (no push for its messages, except mentions) or unmutes it.
    /// Like a read position, it is the actor's own: no one else hears of it.
    Muted { muted: bool },
    /// An admin archives the room (read-only from now on: history stays, nothing new is
    /// said in it) or brings it back.
    Archived { archived: bool },
    /// An admin deletes the room: it leaves every list and refuses everything from now on;
    /// its messages and files are removed in the background.
    Deleted,
}

impl RoomChange {
    /// The name of the kind, as the store and the log's records spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::Joined => "joined",
            Self::Left => "left",
            Self::Added { .. } => "added",
            Self::Removed { .. } => "removed",
            Self::Topic { .. } => "topic",
            Self::Read { .. } => "read",
            Self::Muted { .. } => "muted",
            Self::Archived { .. } => "archived",
            Self::Deleted => "deleted",
        }
    }
}

/// A change of a room, before the log places it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoomChange {
    pub id: Uuid,
    pub room: RoomName,
    pub user_id: UserId,
    /// Who made the change.
    pub user: Username,
    pub at: DateTime<Utc>,
    pub client_id: Option<ClientId>,
    pub change: RoomChange,
}

impl NewRoomChange {
    /// The users whose membership the change may touch: the actor, and whom it names.
    pub fn involved(&self) -> Vec<UserId> {
        let mut users = vec![self.user_id];
        match &self.change {
            RoomChange::Added { member } | RoomChange::Removed { member } => users.push(member.id),
            RoomChange::Created { members, .. } => users.extend(members.iter().map(|m| m.id)),
            _ => {}
        }
        users.sort_unstable_by_key(|u| u.0);
        users.dedup();
        users
    }
}

/// A room as its log made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    pub kind: RoomKind,
    pub topic: Topic,
    /// Who created it (none for a DM).
    pub owner: Option<UserRef>,
    pub created_at: DateTime<Utc>,
    /// Archived by an admin: read-only.
    pub archived_at: Option<DateTime<Utc>>,
    /// Deleted by an admin: gone from every list; nothing changes it any more.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A user's membership of a room, as its log made it. A former member keeps a row that is
/// not `present`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub user: Username,
    pub role: Role,
    pub present: bool,
    /// The newest message the user has read, if any.
    pub read: Option<Cursor>,
    /// The user muted the room.
    pub muted: bool,
}

/// What one change does: the room's info written, memberships written, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Effect {
    /// The room's info after the change, when the change wrote it.
    pub room: Option<RoomInfo>,
    /// Memberships after the change, for those it wrote.
    pub members: Vec<(UserId, Membership)>,
}

impl Effect {
    /// Whether the change changed nothing (logged all the same, never fanned out as news).
    pub fn is_noop(&self) -> bool {
        self.room.is_none() && self.members.is_empty()
    }
}

/// The rules: what `change` does to a room that is `room` now, whose members are `member`.
/// Rights (who may add whom, change the topic...) are checked before a change is logged, by
/// the chat service; these rules only keep the state coherent whatever order changes from
/// several gateways reach the log in.
pub fn effect(
    change: &NewRoomChange,
    room: Option<&RoomInfo>,
    member: impl Fn(UserId) -> Option<Membership>,
) -> Effect {
    let actor = UserRef {
        id: change.user_id,
        name: change.user.clone(),
    };
    let present = |id: UserId| member(id).is_some_and(|m| m.present);
    let join = |who: &UserRef, role: Role| -> (UserId, Membership) {
        let earlier = member(who.id);
        (
            who.id,
            Membership {
                user: who.name.clone(),
                role,
                present: true,
                read: earlier.as_ref().and_then(|m| m.read),
                muted: earlier.is_some_and(|m| m.muted),
            },
        )
    };
    let part = |id: UserId| -> Option<(UserId, Membership)> {
        let m = member(id).filter(|m| m.present)?;
        Some((
            id,
            Membership {
                present: false,
                ..m
            },
        ))
    };
    let mut out = Effect::default();
    // A deleted room stays so: whatever was logged after its delete changes nothing.
    if room.is_some_and(|info| info.deleted_at.is_some()) {
        return out;
    }
    match (&change.change, room) {
        (
            RoomChange::Created {
                kind,
                topic,
                members,
            },
            None,
        ) => {
            let owner = (*kind != RoomKind::Dm).then(|| actor.clone());
            out.room = Some(RoomInfo {
                kind: *kind,
                topic: topic.clone(),
                owner: owner.clone(),
                created_at: change.at,
                archived_at: None,
                deleted_at: None,
            });
            for m in members {
                let role = if owner.as_ref().is_some_and(|o| o.id == m.id) {
                    Role::Owner
                } else {
                    Role::Member
                };
                out.members.push(join(m, role));
            }
        }
        // A DM's user who is not a member yet (a DM older than memberships, whose user
        // signed up later) joins it like a public room: the chat service checked the name.
        (RoomChange::Created { .. } | RoomChange::Joined, Some(info))
            if info.kind != RoomKind::Private && !present(actor.id) =>
        {
            out.members.push(join(&actor, Role::Member));
        }
        (RoomChange::Left, Some(info)) if info.kind != RoomKind::Dm => {
            out.members.extend(part(actor.id));
        }
        (RoomChange::Added { member: added }, Some(info))
            if info.kind != RoomKind::Dm && !present(added.id) =>
        {
            let role = if info.owner.as_ref().is_some_and(|o| o.id == added.id) {
                Role::Owner
            } else {
                Role::Member
            };
            out.members.push(join(added, role));
        }
        (RoomChange::Removed { member: removed }, Some(info)) if info.kind != RoomKind::Dm => {
            out.members.extend(part(removed.id));
        }
        (RoomChange::Topic { topic }, Some(info)) if info.topic != *topic => {
            out.room = Some(RoomInfo {
                topic: topic.clone(),
                ..info.clone()
            });
        }
        (RoomChange::Archived { archived }, Some(info))
            if info.archived_at.is_some() != *archived =>
        {
            out.room = Some(RoomInfo {
                archived_at: archived.then_some(change.at),
                ..info.clone()
            });
        }
        (RoomChange::Deleted, Some(info)) => {
            out.room = Some(RoomInfo {
                deleted_at: Some(change.at),
                ..info.clone()
            });
        }
        (RoomChange::Muted { muted }, Some(_)) => {
            if let Some(m) = member(actor.id).filter(|m| m.present && m.muted != *muted) {
                out.members
                    .push((actor.id, Membership { muted: *muted, ..m }));
            }
        }
        (RoomChange::Read { cursor }, Some(_)) => {
            if let Some(m) = member(actor.id).filter(|m| m.present) {
                if m.read.is_none_or(|r| r < *cursor) {
                    out.members.push((
                        actor.id,
                        Membership {
                            read: Some(*cursor),
                            ..m
                        },
                    ));
                }
            }
        }
        _ => {}
    }
    out
}

/// A room as its member's list shows it (`GET /api/v1/rooms`, and the user stream's `room`
/// frames).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomEntry {
    pub room: RoomName,
    pub kind: RoomKind,
    pub topic: Topic,
    pub owner: Option<Username>,
    pub role: Role,
    /// Users online in it now, on any gateway (filled in by the gateway).
    pub online: usize,
    #[serde(serialize_with = "crate::optional_rfc3339_millis")]
    pub last_message_at: Option<DateTime<Utc>>,
    /// Messages after `read_cursor` by others, not deleted; at most [`UNREAD_CAP`].
    pub unread: u32,
    /// Those of them that mention the user; at most [`UNREAD_CAP`].
    pub mentions: u32,
    pub read_cursor: Option<Cursor>,
    /// The user muted it: its messages are not pushed, except mentions.
    pub muted: bool,
    /// An admin archived it: read-only.
    pub archived: bool,
}

/// Unread messages and mentions are counted up to this many (a client shows "99+").
pub const UNREAD_CAP: u32 = 100;

/// The names `@name` in a body points at, lowercased, each once, in order (at most
/// [`MAX_MENTIONS`]): candidates only; a mention counts when the name is a member's.
pub fn mention_candidates(body: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let bytes = body.as_bytes();
    let name_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    let mut i = 0;
    while i < bytes.len() && out.len() < MAX_MENTIONS {
        // An `@` that starts a word: not inside an e-mail address or another name.
        if bytes[i] == b'@' && (i == 0 || !name_byte(bytes[i - 1])) {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && name_byte(bytes[end]) {
                end += 1;
            }
            // A sentence's full stop after a name is not part of it.
            let mut name = &body[start..end];
            name = name.trim_end_matches(['.', '-']);
            if (3..=32).contains(&name.len()) {
                let lower = name.to_ascii_lowercase();
                if !out.contains(&lower) {
                    out.push(lower);
                }
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// Most users one message mentions.
pub const MAX_MENTIONS: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64, name: &str) -> UserRef {
        UserRef {
            id: UserId(id),
            name: Username::parse(name).expect("name"),
        }
    }

    fn change(by: &UserRef, change: RoomChange) -> NewRoomChange {
        NewRoomChange {
            id: Uuid::now_v7(),
            room: RoomName::parse("r").expect("room"),
            user_id: by.id,
            user: by.name.clone(),
            at: Utc::now(),
            client_id: None,
            change,
        }
    }

    fn member(name: &str, present: bool, read: Option<Cursor>) -> Membership {
        Membership {
            user: Username::parse(name).expect("name"),
            role: Role::Member,
            present,
            read,
            muted: false,
        }
    }

    #[test]
    fn a_room_is_created_once_and_a_second_creation_of_a_public_one_is_a_join() {
        let (alice, bob) = (user(1, "alice"), user(2, "bob"));
        let created = |by: &UserRef, kind| {
            change(
                by,
                RoomChange::Created {
                    kind,
                    topic: Topic::default(),
                    members: vec![by.clone()],
                },
            )
        };
        let first = effect(&created(&alice, RoomKind::Private), None, |_| None);
        let info = first.room.clone().expect("created");
        assert_eq!(info.owner, Some(alice.clone()));
        assert_eq!(first.members[0].1.role, Role::Owner);
        // Bob's creation of the same private room came second: nothing.
        assert!(effect(&created(&bob, RoomKind::Private), Some(&info), |_| None).is_noop());
        let public = RoomInfo {
            kind: RoomKind::Public,
            ..info
        };
        let second = effect(&created(&bob, RoomKind::Public), Some(&public), |_| None);
        assert!(second.room.is_none());
        assert_eq!(second.members[0].0, bob.id);
        assert_eq!(second.members[0].1.role, Role::Member);
    }

    #[test]
    fn private_rooms_are_never_joined_and_dms_never_left() {
        let alice = user(1, "alice");
        let mut info = RoomInfo {
            kind: RoomKind::Private,
            topic: Topic::default(),
            owner: None,
            created_at: Utc::now(),
            archived_at: None,
            deleted_at: None,
        };
        assert!(effect(&change(&alice, RoomChange::Joined), Some(&info), |_| None).is_noop());
        assert!(effect(&change(&alice, RoomChange::Joined), None, |_| None).is_noop());
        info.kind = RoomKind::Dm;
        let inside = |_| Some(member("alice", true, None));
        assert!(effect(&change(&alice, RoomChange::Left), Some(&info), inside).is_noop());
        info.kind = RoomKind::Public;
        let left = effect(&change(&alice, RoomChange::Left), Some(&info), inside);
        assert!(!left.members[0].1.present);
        // Joining again keeps the read position.
        let read = Some(Cursor::new(0, 4));
        let back = effect(&change(&alice, RoomChange::Joined), Some(&info), |_| {
            Some(member("alice", false, read))
        });
        assert_eq!(back.members[0].1.read, read);
        assert!(back.members[0].1.present);
    }

    #[test]
    fn an_archived_room_comes_back_and_a_deleted_one_stays_deleted() {
        let admin = user(1, "root");
        let info = RoomInfo {
            kind: RoomKind::Public,
            topic: Topic::default(),
            owner: None,
            created_at: Utc::now(),
            archived_at: None,
            deleted_at: None,
        };
        let archive = |a| change(&admin, RoomChange::Archived { archived: a });
        let archived = effect(&archive(true), Some(&info), |_| None)
            .room
            .expect("archived");
        assert!(archived.archived_at.is_some());
        assert!(effect(&archive(true), Some(&archived), |_| None).is_noop());
        assert!(effect(&archive(false), Some(&info), |_| None).is_noop());
        let back = effect(&archive(false), Some(&archived), |_| None)
            .room
            .expect("back");
        assert_eq!(back.archived_at, None);
        let deleted = effect(
            &change(&admin, RoomChange::Deleted),
            Some(&archived),
            |_| None,
        )
        .room
        .expect("deleted");
        assert!(deleted.deleted_at.is_some());
        // Whatever was logged after the delete changes nothing.
        let inside = |_| Some(member("root", true, None));
        for later in [
            RoomChange::Deleted,
            RoomChange::Archived { archived: false },
            RoomChange::Joined,
            RoomChange::Left,
            RoomChange::Topic {
                topic: Topic::parse("back").expect("topic"),
            },
            RoomChange::Muted { muted: true },
        ] {
            assert!(effect(&change(&admin, later), Some(&deleted), inside).is_noop());
        }
    }

    #[test]
    fn read_positions_only_move_forward_and_only_for_members() {
        let alice = user(1, "alice");
        let info = RoomInfo {
            kind: RoomKind::Public,
            topic: Topic::default(),
            owner: None,
            created_at: Utc::now(),
            archived_at: None,
            deleted_at: None,
        };
        let read = |c| change(&alice, RoomChange::Read { cursor: c });
        let at5 = |_| Some(member("alice", true, Some(Cursor::new(0, 5))));
        assert!(effect(&read(Cursor::new(0, 4)), Some(&info), at5).is_noop());
        assert!(effect(&read(Cursor::new(0, 5)), Some(&info), at5).is_noop());
        let moved = effect(&read(Cursor::new(0, 6)), Some(&info), at5);
        assert_eq!(moved.members[0].1.read, Some(Cursor::new(0, 6)));
        assert!(effect(&read(Cursor::new(0, 6)), Some(&info), |_| None).is_noop());
    }

    #[test]
    fn a_member_mutes_and_unmutes_and_keeps_it_through_leaving_and_joining() {
        let alice = user(1, "alice");
        let info = RoomInfo {
            kind: RoomKind::Public,
            topic: Topic::default(),
            owner: None,
            created_at: Utc::now(),
            archived_at: None,
            deleted_at: None,
        };
        let mute = |muted| change(&alice, RoomChange::Muted { muted });
        let inside = |_| Some(member("alice", true, None));
        let muted = effect(&mute(true), Some(&info), inside);
        assert!(muted.members[0].1.muted);
        assert!(
            effect(&mute(false), Some(&info), inside).is_noop(),
            "not muted"
        );
        assert!(
            effect(&mute(true), Some(&info), |_| None).is_noop(),
            "not a member"
        );
        let was_muted = |_| {
            Some(Membership {
                muted: true,
                present: false,
                ..member("alice", false, None)
            })
        };
        assert!(
            effect(&mute(false), Some(&info), was_muted).is_noop(),
            "gone"
        );
        let back = effect(&change(&alice, RoomChange::Joined), Some(&info), was_muted);
        assert!(
            back.members[0].1.muted,
            "still muted after leaving and joining"
        );
    }

    #[test]
    fn mentions_are_words_that_start_with_an_at() {
        assert_eq!(
            mention_candidates("hi @Bob and @carol. mail x@dave.com, @bob again, @al"),
            ["bob", "carol"]
        );
        assert_eq!(mention_candidates("@eve-"), ["eve"]);
        assert!(mention_candidates("no mentions @ all").is_empty());
        let many: String = (0..30).map(|i| format!("@user{i} ")).collect();
        assert_eq!(mention_candidates(&many).len(), MAX_MENTIONS);
    }
}
