//! What this gateway knows of rooms and their members, for rights and mentions without a
//! database round trip per frame.
//!
//! A room is loaded once, the first time it is asked about: its row and its memberships from
//! the store, then the changes of it this gateway heard lately and the store may not have
//! yet ([`Recent::room_changes`]: on Kafka, persist lags the log). From then on every room
//! change the gateway hears from the log is applied to it ([`Directory::apply`]), through the
//! same rules the store's projection uses ([`banter_core::effect`]). Each room's info and
//! each membership keeps the place in the log of the change that last wrote it, and a change
//! only writes what is older than itself, so hearing a change twice (from the store and from
//! the log, or from its own ack and then the log) changes nothing; what a change did is
//! remembered from its ack until the log brings it, for the news it makes.
//!
//! Ordering: the dispatcher remembers an event in `recent` before it applies it here, and a
//! load reads `recent` under the same lock that marks the room loaded. An event is therefore
//! either in what the load reads or applied after it: none is missed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use banter_core::{
    effect, Cursor, Effect, LoggedEvent, Membership, RoomEvent, RoomInfo, RoomName, UserId,
    Username,
};
use banter_store::{DynStore, StoreError};

use crate::recent::Recent;

/// Rooms asked about that do not exist, kept (so that a creation right after is applied to
/// them) up to this many; past it they are forgotten, so that asking about made-up names
/// cannot grow the gateway's memory.
pub const UNKNOWN_CAP: usize = 10_000;

#[derive(Debug, Default)]
struct Room {
    info: Option<(RoomInfo, Cursor)>,
    members: HashMap<UserId, (Membership, Cursor)>,
    /// What changes applied from their ack did, until the log's fan-out brings them: that is
    /// what they did, though applying them again now finds nothing to do.
    early: HashMap<uuid::Uuid, Effect>,
}

impl Room {
    /// A room asked about that does not exist (yet), with nothing pending.
    fn is_unknown(&self) -> bool {
        self.info.is_none() && self.members.is_empty() && self.early.is_empty()
    }

    /// Applies one change: what it does to the state found, written where the state is older.
    fn apply(&mut self, logged: &LoggedEvent) -> Option<Effect> {
        let RoomEvent::Room(change) = &logged.event else {
            return None;
        };
        let at = logged.cursor;
        let done = effect(change, self.info.as_ref().map(|(info, _)| info), |id| {
            self.members.get(&id).map(|(m, _)| m.clone())
        });
        if let Some(info) = &done.room {
            if self.info.as_ref().is_none_or(|(_, c)| *c < at) {
                self.info = Some((info.clone(), at));
            }
        }
        for (id, m) in &done.members {
            if self.members.get(id).is_none_or(|(_, c)| *c < at) {
                self.members.insert(*id, (m.clone(), at));
            }
        }
        Some(done)
    }
}

/// A room as the rules see it for one user.
#[derive(Debug, Clone)]
pub struct Known {
    pub info: RoomInfo,
    /// The user's membership, if they are a member now.
    pub member: Option<Membership>,
}

/// See the module docs. Shared behind an `Arc`.
#[derive(Debug)]
pub struct Directory {
    store: DynStore,
    recent: Arc<Recent>,
    /// A std mutex: held for map reads and writes only, never across an await.
    rooms: Mutex<HashMap<RoomName, Room>>,
    /// Unknown rooms added since the last sweep of them.
    unknown_added: AtomicUsize,
}

impl Directory {
    pub fn new(store: DynStore, recent: Arc<Recent>) -> Self {
        Self {
            store,
            recent,
            rooms: Mutex::new(HashMap::new()),
            unknown_added: AtomicUsize::new(0),
        }
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<RoomName, Room>> {
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies a change heard from the log to a loaded room, and says what it did. `None`
    /// when the room is not loaded here: then nothing is known of what it did.
    pub fn apply(&self, logged: &LoggedEvent) -> Option<Effect> {
        let mut rooms = self.rooms();
        let room = rooms.get_mut(logged.room())?;
        let early = room.early.remove(&logged.event.id());
        let done = room.apply(logged);
        early.or(done)
    }

    /// Applies a change of this gateway's own user as soon as it is acked, ahead of the
    /// log's fan-out: the user's next request may depend on it.
    pub fn apply_acked(&self, logged: &LoggedEvent) {
        let mut rooms = self.rooms();
        let Some(room) = rooms.get_mut(logged.room()) else {
            return;
        };
        // Nothing to remember when it did nothing: the log had brought it already, or it
        // changes nothing whenever it comes.
        if let Some(done) = room.apply(logged).filter(|d| !d.is_noop()) {
            room.early.insert(logged.event.id(), done);
        }
    }

    /// Loads `room` if it is not loaded yet.
    async fn load(&self, room: &RoomName) -> Result<(), StoreError> {
        if self.rooms().contains_key(room) {
            return Ok(());
        }
        let info = self.store.room(room).await?;
        let members = self.store.room_members(room).await?;
        let mut rooms = self.rooms();
        if rooms.contains_key(room) {
            // Another task loaded it meanwhile, and it has been kept up since.
            return Ok(());
        }
        let mut state = Room {
            info,
            members: members
                .into_iter()
                .map(|(id, m, at)| (id, (m, at)))
                .collect(),
            early: HashMap::new(),
        };
        for logged in self.recent.room_changes(room) {
            state.apply(&logged);
        }
        if state.is_unknown() {
            // Counted as they are added (some become rooms meanwhile): amortized, the sweep
            // costs nothing per lookup.
            let added = self.unknown_added.fetch_add(1, Ordering::Relaxed) + 1;
            if added >= UNKNOWN_CAP {
                rooms.retain(|_, r| !r.is_unknown());
                self.unknown_added.store(0, Ordering::Relaxed);
            }
        }
        rooms.insert(room.clone(), state);
        Ok(())
    }

    /// The room and `user`'s membership of it, or `None` when it does not exist (yet).
    pub async fn lookup(&self, room: &RoomName, user: UserId) -> Result<Option<Known>, StoreError> {
        self.load(room).await?;
        let rooms = self.rooms();
        let Some(state) = rooms.get(room) else {
            return Ok(None);
        };
        Ok(state.info.as_ref().map(|(info, _)| Known {
            info: info.clone(),
            member: state
                .members
                .get(&user)
                .map(|(m, _)| m.clone())
                .filter(|m| m.present),
        }))
    }

    /// The members of `room` now, by name.
    pub async fn members(&self, room: &RoomName) -> Result<Vec<(UserId, Membership)>, StoreError> {
        self.load(room).await?;
        let rooms = self.rooms();
        let mut out: Vec<(UserId, Membership)> = rooms
            .get(room)
            .map(|state| {
                state
                    .members
                    .iter()
                    .filter(|(_, (m, _))| m.present)
                    .map(|(id, (m, _))| (*id, m.clone()))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by_key(|(_, m)| m.user.as_str().to_ascii_lowercase());
        Ok(out)
    }

    /// Which of `names` (lowercased) are members of `room` now, spelled as they are.
    pub async fn members_named(
        &self,
        room: &RoomName,
        names: &[String],
    ) -> Result<Vec<Username>, StoreError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        self.load(room).await?;
        let rooms = self.rooms();
        let Some(state) = rooms.get(room) else {
            return Ok(Vec::new());
        };
        let mut found: Vec<Username> = names
            .iter()
            .filter_map(|name| {
                state
                    .members
                    .values()
                    .find(|(m, _)| m.present && m.user.as_str().eq_ignore_ascii_case(name))
                    .map(|(m, _)| m.user.clone())
            })
            .collect();
        found.dedup();
        Ok(found)
    }

    /// The members of a loaded room now (nothing when it is not loaded here).
    pub fn loaded_members(&self, room: &RoomName) -> Vec<Username> {
        self.rooms()
            .get(room)
            .map(|state| {
                state
                    .members
                    .values()
                    .filter(|(m, _)| m.present)
                    .map(|(m, _)| m.user.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use banter_core::{NewRoomChange, RoomChange, RoomKind, Topic, UserRef};

    use super::*;

    async fn directory() -> Directory {
        let store = banter_store::connect("sqlite::memory:", 1)
            .await
            .expect("store");
        store.migrate().await.expect("migrate");
        let recent = Arc::new(Recent::new(Duration::from_secs(60), 100));
        Directory::new(store, recent)
    }

    fn created(room: &str, by: (i64, &str), kind: RoomKind, at: u64) -> LoggedEvent {
        let who = UserRef {
            id: UserId(by.0),
            name: Username::parse(by.1).expect("name"),
        };
        RoomEvent::Room(NewRoomChange {
            id: uuid::Uuid::now_v7(),
            room: RoomName::parse(room).expect("room"),
            user_id: who.id,
            user: who.name.clone(),
            at: chrono::Utc::now(),
            client_id: None,
            change: RoomChange::Created {
                kind,
                topic: Topic::default(),
                members: vec![who],
            },
        })
        .at_cursor(Cursor::new(0, at))
    }

    #[tokio::test]
    async fn a_room_asked_about_before_it_exists_learns_its_creation_from_the_log() {
        let dir = directory().await;
        let room = RoomName::parse("plans").expect("room");
        assert!(dir
            .lookup(&room, UserId(1))
            .await
            .expect("lookup")
            .is_none());
        let done = dir
            .apply(&created("plans", (1, "ann"), RoomKind::Private, 1))
            .expect("loaded, so known");
        assert!(!done.is_noop());
        let known = dir
            .lookup(&room, UserId(1))
            .await
            .expect("lookup")
            .expect("exists");
        assert_eq!(known.info.kind, RoomKind::Private);
        assert!(known.member.is_some(), "its creator is in it");
        assert!(dir
            .lookup(&room, UserId(2))
            .await
            .expect("lookup")
            .expect("exists")
            .member
            .is_none());
    }

    #[tokio::test]
    async fn a_change_applied_from_its_ack_keeps_what_it_did_for_the_log() {
        let dir = directory().await;
        let room = RoomName::parse("lobby").expect("room");
        dir.lookup(&room, UserId(1)).await.expect("lookup");
        let event = created("lobby", (1, "ann"), RoomKind::Public, 1);
        dir.apply_acked(&event);
        // Applied again from the log it finds nothing to do, and says what it did then.
        let done = dir.apply(&event).expect("loaded");
        assert_eq!(done.members.len(), 1, "{done:?}");
        // Heard a third time (a redelivery): nothing.
        assert!(dir.apply(&event).expect("loaded").is_noop());
    }

    #[tokio::test]
    async fn made_up_room_names_do_not_grow_memory_without_bound() {
        let dir = directory().await;
        for i in 0..UNKNOWN_CAP + 10 {
            let room = RoomName::parse(&format!("nothing-{i}")).expect("room");
            dir.lookup(&room, UserId(1)).await.expect("lookup");
        }
        assert!(
            dir.rooms().len() <= UNKNOWN_CAP,
            "{} kept",
            dir.rooms().len()
        );
    }
}
