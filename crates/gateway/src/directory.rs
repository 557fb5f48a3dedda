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
use std::sync::{Arc, Mutex, MutexGuard};

use banter_core::{
    effect, Cursor, Effect, LoggedEvent, Membership, RoomEvent, RoomInfo, RoomName, UserId,
    Username,
};
use banter_store::{DynStore, StoreError};

use crate::recent::Recent;

#[derive(Debug, Default)]
struct Room {
    info: Option<(RoomInfo, Cursor)>,
    members: HashMap<UserId, (Membership, Cursor)>,
    /// What changes applied from their ack did, until the log's fan-out brings them: that is
    /// what they did, though applying them again now finds nothing to do.
    early: HashMap<uuid::Uuid, Effect>,
}

impl Room {
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
}

impl Directory {
    pub fn new(store: DynStore, recent: Arc<Recent>) -> Self {
        Self {
            store,
            recent,
            rooms: Mutex::new(HashMap::new()),
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
