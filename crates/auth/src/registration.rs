//! Who may register: anyone (`open`), whoever holds an invite (`invite`), or nobody
//! (`closed`). The operator may fix the mode (`BANTER_REGISTRATION`); otherwise admins switch
//! it at run time and it is kept in the store, where every auth process reads it.

use banter_store::{DynStore, StoreError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

use crate::token::digest;

/// The store's setting that holds the mode admins chose.
pub const SETTING: &str = "registration";

/// A registration mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Registration {
    #[default]
    Open,
    Invite,
    Closed,
}

impl Registration {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Invite => "invite",
            Self::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "invite" => Some(Self::Invite),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

impl std::str::FromStr for Registration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| format!("must be open, invite or closed, not {s:?}"))
    }
}

/// Where the mode comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistrationPolicy {
    /// Set by the operator: admins cannot change it.
    pub locked: Option<Registration>,
}

impl RegistrationPolicy {
    /// The mode in force: the operator's, else the admins' choice, else `open`.
    pub async fn mode(&self, store: &DynStore) -> Result<Registration, StoreError> {
        if let Some(locked) = self.locked {
            return Ok(locked);
        }
        Ok(store
            .setting(SETTING)
            .await?
            .as_deref()
            .and_then(Registration::parse)
            .unwrap_or_default())
    }
}

/// A new invite code: what the admin hands out, and the digest the store keeps.
#[derive(Debug)]
pub struct InviteCode {
    pub code: String,
    pub digest: Vec<u8>,
}

impl InviteCode {
    /// 128 random bits, URL-safe (it travels in a `/join/<code>` link).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let code = URL_SAFE_NO_PAD.encode(bytes);
        let digest = digest(&code);
        Self { code, digest }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_from_their_names_only() {
        for mode in [
            Registration::Open,
            Registration::Invite,
            Registration::Closed,
        ] {
            assert_eq!(mode.as_str().parse::<Registration>(), Ok(mode));
        }
        assert!("Open".parse::<Registration>().is_err());
        assert!("".parse::<Registration>().is_err());
    }

    #[test]
    fn invite_codes_are_random_link_safe_and_stored_as_digests() {
        let a = InviteCode::generate();
        assert_ne!(a.code, InviteCode::generate().code);
        assert_eq!(a.code.len(), 22);
        assert!(a
            .code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(a.digest, digest(&a.code));
    }
}
