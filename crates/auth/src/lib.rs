//! Accounts and sessions: who may talk on banter.
//!
//! - [`password`]: argon2id hashing on a bounded pool of blocking threads;
//! - [`token`]: HS256 access tokens (pinned algorithm) and opaque rotating refresh tokens;
//! - [`bot`]: bots' long-lived tokens, and [`TokenKeys::authenticate`], which takes either;
//! - [`routes`]: the auth API (`/api/v1/register`, `login`, `refresh`, `logout`, `me`);
//! - [`registration`]: who may register (open, invite, closed) and invite codes;
//! - [`standing`]: whose tokens are refused before they expire (deactivated accounts);
//! - [`AuthUser`]: the extractor other services use to require a Bearer token.
//!
//! Every failure is an [`Error`], whose variants name their HTTP status.

pub mod bot;
mod error;
pub mod password;
pub mod registration;
mod routes;
pub mod standing;
pub mod token;

use std::sync::Arc;

use banter_http::limit::{Limiter, Rate};
use banter_store::DynStore;

pub use bot::{BotScope, Identity};
pub use error::Error;
pub use registration::{InviteCode, Registration, RegistrationPolicy};
pub use routes::{router, AuthUser};
pub use token::{Claims, TokenKeys};

/// What the auth handlers share. Cloning is an `Arc` increment per field.
#[derive(Debug, Clone)]
pub struct AuthState {
    pub store: DynStore,
    pub hasher: Arc<password::Hasher>,
    pub tokens: Arc<TokenKeys>,
    pub limits: Arc<AuthLimits>,
    pub registration: RegistrationPolicy,
}

/// How often logins and registrations may come (`None`: unlimited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthLimitSettings {
    /// Login attempts per client address.
    pub login_per_ip: Option<Rate>,
    /// Login attempts per username, from anywhere: slows a distributed guess at one
    /// password (at the price that the real user waits too while it lasts).
    pub login_per_user: Option<Rate>,
    /// Registrations per client address.
    pub register_per_ip: Option<Rate>,
    /// Registrations per username, from anywhere: a name not taken yet costs a password hash
    /// per attempt until one wins, so a burst at one name from many addresses is bounded.
    pub register_per_user: Option<Rate>,
    /// Take the client's address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded: bool,
}

impl Default for AuthLimitSettings {
    fn default() -> Self {
        let rate = |s: &str| s.parse().ok();
        Self {
            login_per_ip: rate("30/min"),
            login_per_user: rate("10/min"),
            register_per_ip: rate("20/min"),
            register_per_user: rate("5/min"),
            trust_forwarded: false,
        }
    }
}

impl AuthLimitSettings {
    /// No limits (tools and tests that hammer on purpose).
    pub fn off() -> Self {
        Self {
            login_per_ip: None,
            login_per_user: None,
            register_per_ip: None,
            register_per_user: None,
            trust_forwarded: false,
        }
    }
}

/// The limiters of one auth process.
#[derive(Debug)]
pub struct AuthLimits {
    pub login_per_ip: Limiter<std::net::IpAddr>,
    pub login_per_user: Limiter<String>,
    pub register_per_ip: Limiter<std::net::IpAddr>,
    pub register_per_user: Limiter<String>,
    pub trust_forwarded: bool,
}

impl AuthLimits {
    pub fn new(settings: &AuthLimitSettings) -> Self {
        Self {
            login_per_ip: Limiter::new("login_per_ip", settings.login_per_ip),
            login_per_user: Limiter::new("login_per_user", settings.login_per_user),
            register_per_ip: Limiter::new("register_per_ip", settings.register_per_ip),
            register_per_user: Limiter::new("register_per_user", settings.register_per_user),
            trust_forwarded: settings.trust_forwarded,
        }
    }
}
