//! Which accounts' access tokens are refused before they expire: those an admin deactivated,
//! and the tokens they held when it happened.
//!
//! Access tokens are checked by signature alone, so every process that checks them keeps
//! this table: filled from the store when it starts ([`Standings::loaded`]) and kept up by
//! what the bus announces ([`Standings::heard`]), so every gateway refuses a deactivated
//! person's token the moment the deactivation is announced, not when the token expires.

use std::collections::HashMap;
use std::sync::RwLock;

use banter_core::{Standing, UserId};

/// See the module docs. Most users are never in it: a lookup is one read lock and a miss.
#[derive(Debug, Default)]
pub struct Standings {
    by_user: RwLock<HashMap<UserId, Standing>>,
}

impl Standings {
    /// Whether a token of `user` issued at `issued_at` (Unix seconds) is refused, and why:
    /// `Some(true)` deactivated, `Some(false)` revoked by a deactivation since undone.
    pub fn refuses(&self, user: UserId, issued_at: i64) -> Option<bool> {
        let map = self
            .by_user
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&user)
            .filter(|s| s.refuses(issued_at))
            .map(|s| s.deactivated)
    }

    /// An announced change: it is newer than anything known.
    pub fn heard(&self, standing: Standing) {
        self.write().insert(standing.user, standing);
    }

    /// What the store said at start. What was heard meanwhile is newer (the store is written
    /// before the bus is told), so it is kept.
    pub fn loaded(&self, standings: Vec<Standing>) {
        let mut map = self.write();
        for s in standings {
            map.entry(s.user).or_insert(s);
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<UserId, Standing>> {
        self.by_user
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use banter_core::Username;
    use chrono::DateTime;

    fn standing(deactivated: bool) -> Standing {
        Standing {
            user: UserId(3),
            username: Username::from_stored("cid".into()),
            deactivated,
            revoked_before: DateTime::from_timestamp(1000, 0),
        }
    }

    #[test]
    fn what_was_heard_wins_over_what_the_store_said_before() {
        let s = Standings::default();
        assert_eq!(s.refuses(UserId(3), 2000), None);
        s.heard(standing(false));
        s.loaded(vec![standing(true)]);
        assert_eq!(s.refuses(UserId(3), 2000), None, "reactivated, heard last");
        assert_eq!(
            s.refuses(UserId(3), 900),
            Some(false),
            "an old token stays refused"
        );
        s.heard(standing(true));
        assert_eq!(s.refuses(UserId(3), 2000), Some(true));
        assert_eq!(s.refuses(UserId(4), 2000), None);
    }
}
