//! Bot tokens, and who a Bearer token names.
//!
//! A bot's token is `bnt_` and 256 random bits, shown once when an admin makes the bot and
//! stored only as its SHA-256 digest, like a refresh token. It does not expire; revoking the
//! bot forgets the digest and deactivates the account, which [`crate::standing`] then refuses
//! on every gateway at once, like a deactivated user's tokens. A bot may be limited to some
//! rooms ([`BotScope`]); the gateway's rights check applies the limit everywhere.
//!
//! [`TokenKeys::authenticate`] takes any Bearer token (a user's JWT or a bot's token) and
//! says who it is ([`Identity`]): the one way in for the HTTP API and the WebSocket alike.

use std::sync::Arc;

use banter_core::{RoomName, UserId, Username};
use banter_store::DynStore;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

use crate::token::{digest, TokenKeys};
use crate::Error;

/// How every bot token begins: so that a leaked one is recognisable (secret scanners), and
/// so that it is told from a JWT without trying to decode it.
pub const PREFIX: &str = "bnt_";
/// How every incoming webhook's secret begins (it is no Bearer token).
pub const HOOK_PREFIX: &str = "bwh_";

/// A new bot token (or webhook secret): what its owner gets once, and the digest kept.
#[derive(Debug)]
pub struct BotSecret {
    pub token: String,
    pub digest: Vec<u8>,
}

impl BotSecret {
    /// A token beginning with `prefix` ([`PREFIX`] or [`HOOK_PREFIX`]).
    pub fn generate(prefix: &str) -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
        let digest = digest(&token);
        Self { token, digest }
    }
}

/// Where a bot may go: every room a member may (`rooms: None`), or only these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotScope {
    pub rooms: Option<Arc<[RoomName]>>,
}

impl BotScope {
    pub fn admits(&self, room: &RoomName) -> bool {
        self.rooms
            .as_ref()
            .is_none_or(|rooms| rooms.iter().any(|r| r == room))
    }
}

/// Who a valid Bearer token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: UserId,
    pub username: Username,
    /// When it stops being valid (Unix seconds); a bot's token does not expire.
    pub expires_at: Option<i64>,
    /// Set for a bot, with where it may go.
    pub bot: Option<BotScope>,
}

impl TokenKeys {
    /// Lets [`TokenKeys::authenticate`] accept bot tokens, looked up in `store`.
    pub fn with_bots(mut self, store: DynStore) -> Self {
        self.bots = Some(store);
        self
    }

    /// Who `token` names: a user's access token (see [`TokenKeys::verify`]), or a live bot's
    /// token. A revoked bot's is refused like a deactivated account's.
    pub async fn authenticate(&self, token: &str) -> Result<Identity, Error> {
        if !token.starts_with(PREFIX) {
            let claims = self.verify(token)?;
            return Ok(Identity {
                id: claims.user_id()?,
                username: Username::from_stored(claims.name),
                expires_at: Some(claims.exp),
                bot: None,
            });
        }
        let store = self
            .bots
            .as_ref()
            .ok_or(Error::Unauthorized("bot tokens are not accepted here"))?;
        let login = store
            .bot_login(&digest(token))
            .await?
            .ok_or(Error::Unauthorized("the token is not valid"))?;
        // A revocation another gateway announced is heard before the store is asked again.
        if self.standings.refuses(login.user.id, i64::MIN).is_some() {
            return Err(Error::AccountDisabled);
        }
        Ok(Identity {
            id: login.user.id,
            username: login.user.username,
            expires_at: None,
            bot: Some(BotScope {
                rooms: login.rooms.map(Arc::from),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_kept_as_digests() {
        let a = BotSecret::generate(PREFIX);
        let b = BotSecret::generate(PREFIX);
        assert!(a.token.starts_with(PREFIX));
        assert_eq!(a.token.len(), PREFIX.len() + 43);
        assert_ne!(a.token, b.token);
        assert_eq!(a.digest, digest(&a.token));
    }

    #[test]
    fn a_scope_admits_its_rooms_only() {
        let room = |n: &str| RoomName::parse(n).expect("room");
        let any = BotScope { rooms: None };
        assert!(any.admits(&room("general")));
        let some = BotScope {
            rooms: Some(Arc::from(vec![room("ci")])),
        };
        assert!(some.admits(&room("ci")));
        assert!(!some.admits(&room("general")));
    }
}
