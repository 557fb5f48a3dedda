//! Users as the rest of the system sees them (never with their password hash).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Username;

/// A user's numeric id: the seed's `SERIAL` key, kept so its rows and tokens stay meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub username: Username,
    pub created_at: DateTime<Utc>,
}

/// Whether an account may use banter: what every process that checks access tokens must
/// learn at once when an admin deactivates someone (access tokens live on until they expire,
/// so their signature alone cannot say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub user: UserId,
    pub username: Username,
    /// Deactivated: every token of theirs is refused.
    pub deactivated: bool,
    /// Access tokens issued before this instant are refused (set when they were deactivated,
    /// so that reactivation does not bring back the tokens they had then). Tokens say when
    /// they were issued to the second: one from the very second of the deactivation counts
    /// as later, so that a login just after a quick reactivation is not refused.
    pub revoked_before: Option<DateTime<Utc>>,
}

impl Standing {
    /// Whether an access token of this user issued at `issued_at` (Unix seconds) is refused.
    pub fn refuses(&self, issued_at: i64) -> bool {
        self.deactivated
            || self
                .revoked_before
                .is_some_and(|t| issued_at < t.timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(deactivated: bool, revoked_before: Option<i64>) -> Standing {
        Standing {
            user: UserId(1),
            username: Username::from_stored("ann".into()),
            deactivated,
            revoked_before: revoked_before.map(|t| DateTime::from_timestamp(t, 0).expect("time")),
        }
    }

    #[test]
    fn a_deactivated_account_refuses_every_token_and_a_reactivated_one_its_old_tokens() {
        assert!(standing(true, Some(100)).refuses(500));
        let back = standing(false, Some(100));
        assert!(back.refuses(99));
        assert!(!back.refuses(100));
        assert!(!back.refuses(101));
        assert!(!standing(false, None).refuses(0));
    }
}
