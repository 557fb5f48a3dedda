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
