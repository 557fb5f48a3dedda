//! Accounts and sessions: who may talk on banter.
//!
//! - [`password`]: argon2id hashing on a bounded pool of blocking threads;
//! - [`token`]: HS256 access tokens (pinned algorithm) and opaque rotating refresh tokens;
//! - [`routes`]: the auth API (`/api/v1/register`, `login`, `refresh`, `logout`, `me`);
//! - [`AuthUser`]: the extractor other services use to require a Bearer token.
//!
//! Every failure is an [`Error`], whose variants name their HTTP status.

mod error;
pub mod password;
mod routes;
pub mod token;

use std::sync::Arc;

use banter_store::DynStore;

pub use error::Error;
pub use routes::{router, AuthUser};
pub use token::{Claims, TokenKeys};

/// What the auth handlers share. Cloning is an `Arc` increment per field.
#[derive(Debug, Clone)]
pub struct AuthState {
    pub store: DynStore,
    pub hasher: Arc<password::Hasher>,
    pub tokens: Arc<TokenKeys>,
}
