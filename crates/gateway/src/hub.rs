//! Who is in which room on this gateway, and the fan-out to them.
//!
//! A `Hub` maps each room to its members (connections) and counts each user's connections per
//! room, which is presence: a user comes online in a room with their first connection there
//! and goes offline with their last. Fan-out never waits: each connection has a bounded queue,
//! and a connection whose queue is full is kicked (closed with 4008, "too slow") instead of
//! letting the server's memory grow; its client reconnects and resumes with `since`.
//!
//! The hub also knows every connection of each user, whatever rooms it joined: the user
//! stream (rooms added and removed, read positions, mentions) goes to all of them, and a
//! member removed from a room is taken out of it on each of them at once ([`Hub::evict`]).
//!
//! With several gateways, a user is online in a room when they are online there on any
//! gateway. The hub also keeps what the other gateways said (see [`crate::presence`]), each
//! entry with the time it was last confirmed, and tells its members only about changes of the
//! union: a second tab on another gateway is not news, and neither is closing one of two.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use banter_bus::NodeId;
use banter_core::{Cursor, RoomName, Username};
use tokio::sync::{mpsc, Notify};

use crate::frames::ServerFrame;

/// Identifies one WebSocket connection on this gateway.
pub type ConnId = u64;

/// Close code for a connection that could not keep up.
pub const CLOSE_TOO_SLOW: u16 = 4008;

/// A frame on its way to connections: one allocation shared by every recipient (one
/// serialization per fan-out), so that a queue slot is a pointer: each connection's queue
/// allocates its first block of slots up front, and 48-byte slots cost an idle connection
/// 1.5 KiB (docs/benchmarks/history.md).
#[derive(Debug, Clone)]
pub struct Outbound(Arc<Queued>);

/// What an [`Outbound`] carries.
#[derive(Debug)]
pub struct Queued {
    pub text: Utf8Bytes,
    /// Where a message sits in its room's log, so a connection that has just replayed
    /// history can skip what it already sent.
    pub place: Option<(RoomName, Cursor)>,
    /// News of the user stream that the connection completes itself (its `text` is empty).
    pub news: Option<News>,
}

impl std::ops::Deref for Outbound {
    type Target = Queued;

    fn deref(&self) -> &Queued {
        &self.0
    }
}

impl Outbound {
    pub fn frame(frame: &ServerFrame<'_>) -> Self {
        Self::text(frame.to_json())
    }

    /// A frame already serialized.
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self(Arc::new(Queued {
            text: text.into(),
            place: None,
            news: None,
        }))
    }

    /// A room event's frame, at its place in the room's log.
    pub fn logged(text: impl Into<Utf8Bytes>, room: RoomName, cursor: Cursor) -> Self {
        Self(Arc::new(Queued {
            text: text.into(),
            place: Some((room, cursor)),
            news: None,
        }))
    }

    pub fn news(news: News) -> Self {
        Self(Arc::new(Queued {
            text: Utf8Bytes::from_static(""),
            place: None,
            news: Some(news),
        }))
    }
}

/// What a user-stream `room` frame says happened to one of the user's rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomOp {
    Added,
    Removed,
    Updated,
}

impl RoomOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Updated => "updated",
        }
    }
}

/// User-stream news the connection turns into a frame: the room's entry is read when it is
/// sent (so it is current), and a room the user was removed from is forgotten by the
/// connection first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct News {
    pub op: RoomOp,
    pub room: RoomName,
}

/// Tells a connection task to close, and with which code.
#[derive(Debug, Default)]
pub struct Kick {
    notify: Notify,
    code: AtomicU16,
}

impl Kick {
    pub fn kick(&self, code: u16) {
        // The first reason wins.
        if self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.notify.notify_one();
        }
    }

    /// Resolves once kicked, with the close code.
    pub async fn kicked(&self) -> u16 {
        loop {
            let code = self.code.load(Ordering::Acquire);
            if code != 0 {
                return code;
            }
            self.notify.notified().await;
        }
    }
}

/// A connection as the hub sees it.
#[derive(Debug, Clone)]
pub struct Member {
    pub user: Username,
    pub tx: mpsc::Sender<Outbound>,
    pub kick: Arc<Kick>,
}

#[derive(Debug, Default)]
struct Room {
    members: HashMap<ConnId, Member>,
    /// Connections per user (keyed by the lowercased name, as names compare without case).
    online: HashMap<String, (Username, usize)>,
}

/// A user online in a room on other gateways: on which, and when each last confirmed it.
#[derive(Debug)]
struct Remote {
    user: Username,
    nodes: HashMap<NodeId, Instant>,
}

/// A change of a user's presence on this gateway, for the other gateways to hear: in a room,
/// or (`room: None`) their first connection here opened or their last one closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalChange {
    pub room: Option<RoomName>,
    pub user: Username,
    pub online: bool,
}

#[derive(Debug, Default)]
struct Inner {
    rooms: HashMap<RoomName, Room>,
    /// Every connection of each user (keyed by the lowercased name).
    users: HashMap<String, HashMap<ConnId, Member>>,
    /// What other gateways said, per room, keyed by lowercased name.
    remote: HashMap<RoomName, HashMap<String, Remote>>,
    /// Users other gateways said are connected there, keyed by lowercased name.
    remote_users: HashMap<String, Remote>,
}

impl Inner {
    fn online_here(&self, room: &RoomName, key: &str) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.online.contains_key(key))
    }

    fn online_elsewhere(&self, room: &RoomName, key: &str) -> bool {
        self.remote.get(room).is_some_and(|r| r.contains_key(key))
    }

    /// Tells this gateway's members of `room` that `user` came online or went offline.
    fn tell(&self, room: &RoomName, user: &Username, online: bool, except: Option<ConnId>) {
        if let Some(entry) = self.rooms.get(room) {
            let frame = Outbound::frame(&ServerFrame::Presence {
                room,
                user: user.as_str(),
                state: if online { "online" } else { "offline" },
            });
            send_all(entry, &frame, except, None);
        }
    }

    /// Records that `node` has `user` online in `room` as of `at`.
    fn remote_online(&mut self, node: NodeId, room: &RoomName, user: &Username, at: Instant) {
        let key = user.as_str().to_ascii_lowercase();
        let was = self.online_here(room, &key) || self.online_elsewhere(room, &key);
        confirm(self.remote.entry(room.clone()).or_default(), node, user, at);
        if !was {
            self.tell(room, user, true, None);
        }
    }

    /// Forgets the entries of `room` for which `gone(node, last confirmed)` holds, telling
    /// members about users that are offline everywhere as a result.
    fn remote_forget(&mut self, room: &RoomName, gone: impl Fn(NodeId, Instant) -> bool) {
        let Some(users) = self.remote.get_mut(room) else {
            return;
        };
        let mut offline = Vec::new();
        users.retain(|key, remote| {
            remote.nodes.retain(|node, at| !gone(*node, *at));
            if remote.nodes.is_empty() {
                offline.push((key.clone(), remote.user.clone()));
                false
            } else {
                true
            }
        });
        if users.is_empty() {
            self.remote.remove(room);
        }
        for (key, user) in offline {
            if !self.online_here(room, &key) {
                self.tell(room, &user, false, None);
            }
        }
    }

    /// Forgets the connected users' entries for which `gone(node, last confirmed)` holds.
    fn remote_users_forget(&mut self, gone: impl Fn(NodeId, Instant) -> bool) {
        self.remote_users.retain(|_, remote| {
            remote.nodes.retain(|node, at| !gone(*node, *at));
            !remote.nodes.is_empty()
        });
    }

    fn remote_rooms(&self) -> Vec<RoomName> {
        self.remote.keys().cloned().collect()
    }

    fn online_names(&self, room: &RoomName) -> Vec<String> {
        let mut names: HashMap<String, &Username> = HashMap::new();
        if let Some(r) = self.rooms.get(room) {
            names.extend(r.online.iter().map(|(k, (u, _))| (k.clone(), u)));
        }
        if let Some(r) = self.remote.get(room) {
            for (k, remote) in r {
                names.entry(k.clone()).or_insert(&remote.user);
            }
        }
        let mut names: Vec<String> = names.values().map(|u| u.as_str().to_owned()).collect();
        names.sort_unstable();
        names
    }
}

/// Rooms and members of this gateway, and presence from the others. Shared behind an `Arc`.
#[derive(Debug, Default)]
pub struct Hub {
    /// One std mutex over all rooms: it is held for map updates and non-blocking `try_send`s
    /// only, never across an await. (Per-room locks can replace it when profiles say so.)
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    /// Where this gateway's presence changes go, to be told to the other gateways.
    changes: Option<mpsc::Sender<LocalChange>>,
    /// The other gateways' open connections, as their last snapshot said, and when.
    remote_nodes: Mutex<HashMap<NodeId, (usize, Instant)>>,
}

impl Hub {
    /// A hub on its own (nothing tells other gateways about it).
    pub fn new() -> Self {
        Self::default()
    }

    /// A hub whose local presence changes are queued on `changes`.
    pub fn with_changes(changes: mpsc::Sender<LocalChange>) -> Self {
        Self {
            changes: Some(changes),
            ..Self::default()
        }
    }

    pub fn next_conn_id(&self) -> ConnId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn changed(&self, room: Option<&RoomName>, user: &Username, online: bool) {
        if let Some(changes) = &self.changes {
            let change = LocalChange {
                room: room.cloned(),
                user: user.clone(),
                online,
            };
            // A full queue means the bus is stuck; the next snapshot carries the truth.
            if changes.try_send(change).is_err() {
                metrics::counter!("banter_presence_changes_dropped_total").increment(1);
            }
        }
    }

    /// Adds a connection to a room. Returns the users online there afterwards. When this is
    /// the user's first connection in the room, the others hear it come online.
    pub fn join(&self, room: &RoomName, id: ConnId, member: Member) -> Vec<String> {
        let mut inner = self.inner();
        let key = member.user.as_str().to_ascii_lowercase();
        let elsewhere = inner.online_elsewhere(room, &key);
        let entry = inner.rooms.entry(room.clone()).or_default();
        let user = member.user.clone();
        if entry.members.insert(id, member).is_some() {
            // Already a member: nothing changes.
            return inner.online_names(room);
        }
        let count = entry.online.entry(key).or_insert_with(|| (user.clone(), 0));
        count.1 += 1;
        if count.1 == 1 {
            if !elsewhere {
                inner.tell(room, &user, true, Some(id));
            }
            self.changed(Some(room), &user, true);
        }
        inner.online_names(room)
    }

    /// Registers a connection of its user, for the user stream. The user's first connection
    /// here is told to the other gateways (and notifiers).
    pub fn connect(&self, id: ConnId, member: Member) {
        let key = member.user.as_str().to_ascii_lowercase();
        let user = member.user.clone();
        let first = {
            let mut inner = self.inner();
            let conns = inner.users.entry(key).or_default();
            conns.insert(id, member);
            conns.len() == 1
        };
        if first {
            self.changed(None, &user, true);
        }
    }

    /// Forgets a connection (it has closed), after it has left its rooms.
    pub fn disconnect(&self, id: ConnId, user: &Username) {
        let key = user.as_str().to_ascii_lowercase();
        let last = {
            let mut inner = self.inner();
            let emptied = inner
                .users
                .get_mut(&key)
                .is_some_and(|conns| conns.remove(&id).is_some() && conns.is_empty());
            if emptied {
                inner.users.remove(&key);
            }
            emptied
        };
        if last {
            self.changed(None, user, false);
        }
    }

    /// Whether `user` has a connection on this gateway or, as far as presence says, on
    /// another one.
    pub fn connected_anywhere(&self, user: &str) -> bool {
        let key = user.to_ascii_lowercase();
        let inner = self.inner();
        inner.users.contains_key(&key) || inner.remote_users.contains_key(&key)
    }

    /// Open connections on this gateway.
    pub fn connections(&self) -> usize {
        self.inner().users.values().map(HashMap::len).sum()
    }

    /// Another gateway's open connections, from its snapshot.
    pub fn remote_connections(&self, node: NodeId, connections: usize) {
        self.nodes().insert(node, (connections, Instant::now()));
    }

    /// The other gateways heard from, with their open connections.
    pub fn remote_gateways(&self) -> Vec<(NodeId, usize)> {
        self.nodes().iter().map(|(n, (c, _))| (*n, *c)).collect()
    }

    fn nodes(&self) -> MutexGuard<'_, HashMap<NodeId, (usize, Instant)>> {
        self.remote_nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Everyone with a connection on this gateway: what a presence snapshot carries.
    pub fn local_users(&self) -> Vec<Username> {
        self.inner()
            .users
            .values()
            .filter_map(|conns| conns.values().next().map(|m| m.user.clone()))
            .collect()
    }

    /// Another gateway says `user`'s first connection there opened, or their last closed.
    pub fn remote_connected(&self, node: NodeId, user: &Username, online: bool) {
        let key = user.as_str().to_ascii_lowercase();
        let mut inner = self.inner();
        if online {
            confirm(&mut inner.remote_users, node, user, Instant::now());
        } else if let Some(remote) = inner.remote_users.get_mut(&key) {
            remote.nodes.remove(&node);
            if remote.nodes.is_empty() {
                inner.remote_users.remove(&key);
            }
        }
    }

    /// Another gateway's connected users, replacing what it said before.
    pub fn remote_connected_snapshot(&self, node: NodeId, users: &[Username]) {
        let now = Instant::now();
        let listed: HashSet<String> = users
            .iter()
            .map(|u| u.as_str().to_ascii_lowercase())
            .collect();
        let mut inner = self.inner();
        inner.remote_users.retain(|key, remote| {
            if !listed.contains(key) {
                remote.nodes.remove(&node);
            }
            !remote.nodes.is_empty()
        });
        for user in users {
            confirm(&mut inner.remote_users, node, user, now);
        }
    }

    /// Sends a frame to every connection of `user` on this gateway.
    pub fn to_user(&self, user: &str, frame: &Outbound) {
        let inner = self.inner();
        if let Some(conns) = inner.users.get(&user.to_ascii_lowercase()) {
            for member in conns.values() {
                offer(member, frame);
            }
        }
    }

    /// Takes every connection out of `room` at once (it was deleted).
    pub fn evict_room(&self, room: &RoomName) {
        let conns: Vec<ConnId> = match self.inner().rooms.get(room) {
            Some(entry) => entry.members.keys().copied().collect(),
            None => return,
        };
        for id in conns {
            self.leave(room, id);
        }
    }

    /// Tells every connection of `user` on this gateway to close with `code`.
    pub fn kick_user(&self, user: &str, code: u16) {
        let inner = self.inner();
        if let Some(conns) = inner.users.get(&user.to_ascii_lowercase()) {
            for member in conns.values() {
                member.kick.kick(code);
            }
        }
    }

    /// Whether `user` has a connection on this gateway.
    pub fn has_user(&self, user: &str) -> bool {
        self.inner().users.contains_key(&user.to_ascii_lowercase())
    }

    /// Takes every connection of `user` out of `room` at once (removed from it, or left it
    /// on another device), as if each had left.
    pub fn evict(&self, room: &RoomName, user: &str) {
        let conns: Vec<ConnId> = {
            let inner = self.inner();
            let Some(entry) = inner.rooms.get(room) else {
                return;
            };
            entry
                .members
                .iter()
                .filter(|(_, m)| m.user.as_str().eq_ignore_ascii_case(user))
                .map(|(id, _)| *id)
                .collect()
        };
        for id in conns {
            self.leave(room, id);
        }
    }

    /// Removes a connection from a room. When it was the user's last connection there, the
    /// others hear it go offline.
    pub fn leave(&self, room: &RoomName, id: ConnId) {
        let mut inner = self.inner();
        let Some(entry) = inner.rooms.get_mut(room) else {
            return;
        };
        let Some(member) = entry.members.remove(&id) else {
            return;
        };
        let key = member.user.as_str().to_ascii_lowercase();
        let last = match entry.online.get_mut(&key) {
            Some(count) => {
                count.1 -= 1;
                count.1 == 0
            }
            None => false,
        };
        if last {
            entry.online.remove(&key);
            if !inner.online_elsewhere(room, &key) {
                inner.tell(room, &member.user, false, None);
            }
            self.changed(Some(room), &member.user, false);
        }
        if inner.rooms.get(room).is_some_and(|r| r.members.is_empty()) {
            inner.rooms.remove(room);
        }
    }

    /// Sends a frame to every member of `room`, except the connections of `except_user`.
    pub fn fan_out(&self, room: &RoomName, frame: &Outbound, except_user: Option<&str>) {
        let inner = self.inner();
        if let Some(entry) = inner.rooms.get(room) {
            send_all(entry, frame, None, except_user);
        }
    }

    /// The users online in a room on any gateway, sorted.
    pub fn online(&self, room: &RoomName) -> Vec<String> {
        self.inner().online_names(room)
    }

    /// Every room with someone online, on any gateway, and how many users.
    pub fn online_counts(&self) -> Vec<(RoomName, usize)> {
        let inner = self.inner();
        let mut counts: HashMap<RoomName, HashSet<&str>> = HashMap::new();
        for (room, r) in &inner.rooms {
            counts
                .entry(room.clone())
                .or_default()
                .extend(r.online.keys().map(String::as_str));
        }
        for (room, users) in &inner.remote {
            counts
                .entry(room.clone())
                .or_default()
                .extend(users.keys().map(String::as_str));
        }
        counts
            .into_iter()
            .filter(|(_, users)| !users.is_empty())
            .map(|(room, users)| (room, users.len()))
            .collect()
    }

    /// Connections currently registered in any room (a connection in two rooms counts twice).
    pub fn memberships(&self) -> usize {
        self.inner().rooms.values().map(|r| r.members.len()).sum()
    }

    /// Everyone online on this gateway, per room: what a presence snapshot carries.
    pub fn local_presence(&self) -> Vec<(RoomName, Vec<Username>)> {
        self.inner()
            .rooms
            .iter()
            .filter(|(_, r)| !r.online.is_empty())
            .map(|(room, r)| {
                (
                    room.clone(),
                    r.online.values().map(|(u, _)| u.clone()).collect(),
                )
            })
            .collect()
    }

    /// Another gateway says `user` came online in `room`, or went offline there.
    pub fn remote_changed(&self, node: NodeId, room: &RoomName, user: &Username, online: bool) {
        let mut inner = self.inner();
        if online {
            inner.remote_online(node, room, user, Instant::now());
        } else {
            let key = user.as_str().to_ascii_lowercase();
            let Some(remote) = inner.remote.get_mut(room).and_then(|r| r.get_mut(&key)) else {
                return;
            };
            remote.nodes.remove(&node);
            inner.remote_forget(room, |_, _| false);
        }
    }

    /// Another gateway's full presence, replacing whatever it said before. It also confirms
    /// every entry of that gateway as of now.
    pub fn remote_snapshot(&self, node: NodeId, online: &[(RoomName, Vec<Username>)]) {
        let now = Instant::now();
        let mut inner = self.inner();
        let mut listed: HashSet<(&RoomName, String)> = HashSet::new();
        for (room, users) in online {
            for user in users {
                listed.insert((room, user.as_str().to_ascii_lowercase()));
                inner.remote_online(node, room, user, now);
            }
        }
        // Whatever the node had and no longer lists is offline there.
        for room in inner.remote_rooms() {
            let stale: Vec<String> = inner.remote[&room]
                .iter()
                .filter(|(key, r)| {
                    r.nodes.contains_key(&node) && !listed.contains(&(&room, (*key).clone()))
                })
                .map(|(key, _)| key.clone())
                .collect();
            if stale.is_empty() {
                continue;
            }
            if let Some(users) = inner.remote.get_mut(&room) {
                for key in &stale {
                    if let Some(r) = users.get_mut(key) {
                        r.nodes.remove(&node);
                    }
                }
            }
            inner.remote_forget(&room, |_, _| false);
        }
    }

    /// Forgets everything a gateway said (it said goodbye).
    pub fn remote_gone(&self, node: NodeId) {
        self.nodes().remove(&node);
        let mut inner = self.inner();
        for room in inner.remote_rooms() {
            inner.remote_forget(&room, |n, _| n == node);
        }
        inner.remote_users_forget(|n, _| n == node);
    }

    /// Forgets what other gateways have not confirmed for `ttl`: a gateway that died without
    /// saying goodbye leaves no ghosts for longer than that.
    pub fn expire_remote(&self, ttl: Duration) {
        self.expire_remote_at(Instant::now(), ttl);
    }

    fn expire_remote_at(&self, now: Instant, ttl: Duration) {
        self.nodes()
            .retain(|_, (_, at)| now.duration_since(*at) <= ttl);
        let mut inner = self.inner();
        for room in inner.remote_rooms() {
            inner.remote_forget(&room, |_, at| now.duration_since(at) > ttl);
        }
        inner.remote_users_forget(|_, at| now.duration_since(at) > ttl);
    }
}

/// Records that `node` has `user` as of `at`, in a map of users by lowercased name.
fn confirm(users: &mut HashMap<String, Remote>, node: NodeId, user: &Username, at: Instant) {
    users
        .entry(user.as_str().to_ascii_lowercase())
        .or_insert_with(|| Remote {
            user: user.clone(),
            nodes: HashMap::new(),
        })
        .nodes
        .insert(node, at);
}

fn send_all(room: &Room, frame: &Outbound, except_conn: Option<ConnId>, except_user: Option<&str>) {
    for (id, member) in &room.members {
        if Some(*id) == except_conn
            || except_user.is_some_and(|u| member.user.as_str().eq_ignore_ascii_case(u))
        {
            continue;
        }
        offer(member, frame);
    }
}

/// Queues a frame to one connection without waiting; a connection whose queue is full is
/// kicked (too slow).
fn offer(member: &Member, frame: &Outbound) {
    match member.tx.try_send(frame.clone()) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            metrics::counter!("banter_ws_slow_consumers_total").increment(1);
            member.kick.kick(CLOSE_TOO_SLOW);
        }
        // The connection is closing; it is about to leave every room.
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, capacity: usize) -> (Member, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            Member {
                user: Username::parse(name).expect("name"),
                tx,
                kick: Arc::new(Kick::default()),
            },
            rx,
        )
    }

    fn texts(rx: &mut mpsc::Receiver<Outbound>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(o) = rx.try_recv() {
            out.push(o.text.as_str().to_owned());
        }
        out
    }

    #[test]
    fn presence_follows_the_first_and_last_connection_of_a_user() {
        let hub = Hub::new();
        let room = RoomName::parse("general").expect("room");
        let (bob, mut bob_rx) = member("bob", 16);
        assert_eq!(hub.join(&room, 1, bob), vec!["bob"]);
        let (alice1, _a1) = member("alice", 16);
        let (alice2, _a2) = member("alice", 16);
        assert_eq!(hub.join(&room, 2, alice1), vec!["alice", "bob"]);
        assert_eq!(hub.join(&room, 3, alice2), vec!["alice", "bob"]);
        let got = texts(&mut bob_rx);
        assert_eq!(got.len(), 1, "one online event for two tabs: {got:?}");
        assert!(got[0].contains(r#""state":"online""#) && got[0].contains("alice"));

        hub.leave(&room, 2);
        assert!(texts(&mut bob_rx).is_empty(), "alice still has a tab open");
        hub.leave(&room, 3);
        let got = texts(&mut bob_rx);
        assert_eq!(got.len(), 1);
        assert!(got[0].contains(r#""state":"offline""#));
        assert_eq!(hub.online(&room), vec!["bob"]);
        hub.leave(&room, 1);
        assert!(hub.online_counts().is_empty(), "empty rooms are forgotten");
    }

    fn name(n: &str) -> Username {
        Username::parse(n).expect("name")
    }

    #[test]
    fn a_user_is_connected_while_any_gateway_has_a_connection_of_theirs() {
        let (changes_tx, mut changes) = mpsc::channel(16);
        let hub = Hub::with_changes(changes_tx);
        let (one, _rx1) = member("Bob", 16);
        let (two, _rx2) = member("bob", 16);
        assert!(!hub.connected_anywhere("bob"));
        hub.connect(1, one);
        hub.connect(2, two);
        assert!(hub.connected_anywhere("BOB"));
        let told = |changes: &mut mpsc::Receiver<LocalChange>| {
            std::iter::from_fn(|| changes.try_recv().ok()).collect::<Vec<_>>()
        };
        assert_eq!(
            told(&mut changes),
            [LocalChange {
                room: None,
                user: name("Bob"),
                online: true
            }],
            "the first connection only"
        );
        hub.disconnect(1, &name("Bob"));
        assert!(hub.connected_anywhere("bob"), "one left");
        assert!(told(&mut changes).is_empty());
        hub.disconnect(2, &name("bob"));
        assert!(!hub.connected_anywhere("bob"));
        assert_eq!(told(&mut changes).len(), 1, "the last one closing");

        // Elsewhere: told, confirmed by snapshots, forgotten when the gateway goes or falls
        // silent.
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        hub.remote_connected(a, &name("carol"), true);
        assert!(hub.connected_anywhere("carol"));
        hub.remote_connected_snapshot(b, &[name("carol"), name("dave")]);
        hub.remote_connected_snapshot(a, &[]);
        assert!(hub.connected_anywhere("carol"), "still on b");
        hub.remote_gone(b);
        assert!(!hub.connected_anywhere("carol") && !hub.connected_anywhere("dave"));
        hub.remote_connected(a, &name("erin"), true);
        hub.expire_remote_at(
            Instant::now() + Duration::from_secs(31),
            Duration::from_secs(30),
        );
        assert!(!hub.connected_anywhere("erin"), "expired");
        hub.remote_connected(a, &name("erin"), true);
        hub.remote_connected(a, &name("erin"), false);
        assert!(!hub.connected_anywhere("erin"));
    }

    #[test]
    fn presence_is_the_union_over_gateways_and_members_hear_only_its_changes() {
        let (changes_tx, mut changes) = mpsc::channel(16);
        let hub = Hub::with_changes(changes_tx);
        let room = RoomName::parse("general").expect("room");
        let other = uuid::Uuid::new_v4();
        let (bob, mut bob_rx) = member("bob", 16);
        hub.join(&room, 1, bob);
        assert_eq!(
            changes.try_recv().expect("told"),
            LocalChange {
                room: Some(room.clone()),
                user: name("bob"),
                online: true
            }
        );

        // Alice comes online on another gateway: bob hears it once, however often confirmed.
        hub.remote_changed(other, &room, &name("alice"), true);
        hub.remote_snapshot(other, &[(room.clone(), vec![name("alice")])]);
        let got = texts(&mut bob_rx);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("alice") && got[0].contains("online"));
        assert_eq!(hub.online(&room), ["alice", "bob"]);
        assert_eq!(hub.online_counts(), [(room.clone(), 2)]);

        // She opens a tab here too, then closes the other gateway's: no news for bob.
        let (alice, _a) = member("alice", 16);
        hub.join(&room, 2, alice);
        hub.remote_changed(other, &room, &name("alice"), false);
        assert!(texts(&mut bob_rx).is_empty());
        // Closing the last tab anywhere is news.
        hub.leave(&room, 2);
        let got = texts(&mut bob_rx);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("offline"));
        assert_eq!(hub.online(&room), ["bob"]);
    }

    #[test]
    fn a_snapshot_replaces_and_silence_expires_what_a_gateway_said() {
        let hub = Hub::new();
        let room = RoomName::parse("general").expect("room");
        let (bob, mut bob_rx) = member("bob", 16);
        hub.join(&room, 1, bob);
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        hub.remote_snapshot(a, &[(room.clone(), vec![name("alice"), name("carol")])]);
        hub.remote_snapshot(b, &[(room.clone(), vec![name("carol")])]);
        assert_eq!(hub.online(&room), ["alice", "bob", "carol"]);
        texts(&mut bob_rx);

        // Gateway a no longer lists alice: offline; carol is still on a and b.
        hub.remote_snapshot(a, &[(room.clone(), vec![name("carol")])]);
        let got = texts(&mut bob_rx);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("alice") && got[0].contains("offline"));

        // Gateway a says goodbye: carol stays (b has her). Then b falls silent: she expires.
        hub.remote_gone(a);
        assert_eq!(hub.online(&room), ["bob", "carol"]);
        hub.expire_remote_at(Instant::now(), Duration::from_secs(30));
        assert_eq!(
            hub.online(&room),
            ["bob", "carol"],
            "not silent long enough"
        );
        hub.expire_remote_at(
            Instant::now() + Duration::from_secs(31),
            Duration::from_secs(30),
        );
        assert_eq!(hub.online(&room), ["bob"]);
        let got = texts(&mut bob_rx);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("carol") && got[0].contains("offline"));
        assert!(hub.inner().remote.is_empty(), "nothing left behind");
    }

    #[test]
    fn a_queue_slot_is_a_pointer() {
        // Each connection's queue allocates a block of slots up front (idle memory).
        assert_eq!(
            std::mem::size_of::<Outbound>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn a_full_queue_kicks_instead_of_growing() {
        let hub = Hub::new();
        let room = RoomName::parse("r").expect("room");
        let (slow, _rx) = member("slow", 2);
        let kick = slow.kick.clone();
        hub.join(&room, 1, slow);
        let frame = Outbound::text("x");
        hub.fan_out(&room, &frame, None);
        hub.fan_out(&room, &frame, None);
        assert_eq!(kick.code.load(Ordering::Acquire), 0);
        hub.fan_out(&room, &frame, None);
        assert_eq!(kick.code.load(Ordering::Acquire), CLOSE_TOO_SLOW);
    }

    #[test]
    fn fan_out_can_skip_one_user() {
        let hub = Hub::new();
        let room = RoomName::parse("r").expect("room");
        let (a, mut a_rx) = member("alice", 4);
        let (b, mut b_rx) = member("bob", 4);
        hub.join(&room, 1, a);
        hub.join(&room, 2, b);
        texts(&mut a_rx);
        let frame = Outbound::text("typing");
        hub.fan_out(&room, &frame, Some("ALICE"));
        assert!(texts(&mut a_rx).is_empty());
        assert_eq!(texts(&mut b_rx), vec!["typing"]);
    }
}
