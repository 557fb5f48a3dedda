//! The auth API: register, login, refresh, logout, me. Paths and JSON follow the seed.

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use banter_core::{Password, User, UserId, Username};
use banter_http::limit::{Limiter, PeerAddr};
use banter_http::{ApiJson, Envelope};
use banter_store::{NewAccount, NewRefreshToken, Registered, Rotation};
use serde::{Deserialize, Serialize};

use crate::token::{digest, RefreshSecret};
use crate::{AuthState, Error, Registration, TokenKeys};

/// The auth API's routes, with their state.
pub fn router(state: AuthState) -> Router {
    Router::new()
        .route("/api/v1/register", post(register).get(registration))
        .route("/api/v1/login", post(login))
        .route("/api/v1/refresh", post(refresh))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .with_state(state)
}

impl FromRef<AuthState> for Arc<TokenKeys> {
    fn from_ref(state: &AuthState) -> Self {
        state.tokens.clone()
    }
}

/// The user (or bot) a valid `Authorization: Bearer <token>` names: a user's JWT or a bot's
/// token. Any handler that takes it requires one; without it the request is answered 401
/// before the handler runs.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub username: Username,
    /// Set for a bot, with the rooms it may use.
    pub bot: Option<crate::BotScope>,
}

impl<S> FromRequestParts<S> for AuthUser
where
    Arc<TokenKeys>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header =
            parts
                .headers
                .get(axum::http::header::AUTHORIZATION)
                .ok_or(Error::Unauthorized(
                    "an Authorization: Bearer token is required",
                ))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(Error::Unauthorized(
                "the Authorization header must be: Bearer <token>",
            ))?;
        let who = Arc::<TokenKeys>::from_ref(state)
            .authenticate(token)
            .await?;
        Ok(Self {
            id: who.id,
            username: who.username,
            bot: who.bot,
        })
    }
}

#[derive(Deserialize)]
struct CredentialsInput {
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct RegisterInput {
    username: String,
    password: String,
    /// The invite code, when registration needs one.
    #[serde(default)]
    invite: Option<String>,
}

#[derive(Deserialize)]
struct RefreshInput {
    refresh_token: String,
}

#[derive(Serialize)]
struct UserView {
    id: UserId,
    username: Username,
    created_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            created_at: u
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }
}

/// `GET /api/v1/me`: the user, and whether they are an admin (the web app shows the admin
/// page's link then).
#[derive(Serialize)]
struct MeView {
    #[serde(flatten)]
    user: UserView,
    admin: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    bot: bool,
}

#[derive(Serialize)]
struct TokenPair {
    token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: u64,
    refresh_expires_in: u64,
    user: UserView,
}

/// The address a request came from, as far as the limits are concerned.
fn client_ip(state: &AuthState, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
    banter_http::limit::client_ip(peer, headers, state.limits.trust_forwarded)
}

/// Counts one for `key`; refused with 429 naming `what` there was too much of.
fn within<K: Hash + Eq + Clone>(
    limiter: &Limiter<K>,
    key: &K,
    what: &'static str,
) -> Result<(), Error> {
    limiter
        .check(key)
        .map_err(|wait| Error::RateLimited(wait, what))
}

async fn register(
    State(state): State<AuthState>,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    ApiJson(input): ApiJson<RegisterInput>,
) -> Result<Envelope<UserView>, Error> {
    let ip = client_ip(&state, peer, &headers);
    within(
        &state.limits.register_per_ip,
        &ip,
        "registrations from this address",
    )?;
    let username = Username::parse(&input.username)?;
    let password = Password::parse(&input.password)?;
    // After validation, so that a mistyped form does not spend the allowance; names are
    // case-insensitive, so `Alice` and `alice` share one.
    within(
        &state.limits.register_per_user,
        &username.as_str().to_lowercase(),
        "registrations of this username",
    )?;
    let refused = |why| {
        metrics::counter!("banter_registrations_total", "outcome" => "refused").increment(1);
        Err(Error::RegistrationClosed(why))
    };
    // Closed, or invite-only without an invite: only the first account of an empty database
    // (its admin, who can then invite the others) is made; the store decides, atomically.
    let (invite, closed_because) = match state.registration.mode(&state.store).await? {
        Registration::Open => (None, None),
        Registration::Closed => (None, Some("registration is closed")),
        Registration::Invite => match input.invite.as_deref().map(str::trim) {
            Some(code) if !code.is_empty() => (Some(digest(code)), None),
            _ => (
                None,
                Some("registration needs an invite; ask an admin for one"),
            ),
        },
    };
    // Checked first so that a refusal costs no hashing (the store decides again, atomically).
    if let Some(why) = closed_because {
        if !state.store.accounts("", None, 1).await?.is_empty() {
            return refused(why);
        }
    }
    if state.store.credentials(username.as_str()).await?.is_some() {
        metrics::counter!("banter_registrations_total", "outcome" => "taken").increment(1);
        return Err(Error::UsernameTaken);
    }
    let hash = state.hasher.hash(password).await?;
    let new = NewAccount {
        username: &username,
        password_hash: &hash,
        created_at: banter_store::now(),
        invite: invite.as_deref(),
        only_first: closed_because.is_some(),
    };
    let account = match state.store.register(&new).await {
        Ok(Registered::Created(account)) => account,
        Ok(Registered::InviteRefused) => {
            return refused("this invite is used up, expired or revoked; ask for a new one")
        }
        Ok(Registered::Closed) => {
            return refused(closed_because.unwrap_or("registration is closed"))
        }
        // Lost a race with another registration of the same name.
        Err(banter_store::StoreError::Conflict(_)) => return Err(Error::UsernameTaken),
        Err(other) => return Err(other.into()),
    };
    metrics::counter!("banter_registrations_total", "outcome" => "created").increment(1);
    tracing::info!(user_id = %account.user.id, admin = account.admin, "user registered");
    Ok(Envelope::created(
        "User registered successfully",
        account.user.into(),
    ))
}

/// `GET /api/v1/register`: the mode the next registration meets, so the sign-in page offers
/// what works: `open` on an empty database whatever the setting (its first account is made,
/// the admin who opens it).
async fn registration(
    State(state): State<AuthState>,
) -> Result<Envelope<serde_json::Value>, Error> {
    let mut mode = state.registration.mode(&state.store).await?;
    if mode != Registration::Open && state.store.accounts("", None, 1).await?.is_empty() {
        mode = Registration::Open;
    }
    Ok(Envelope::ok(
        "Registration mode",
        serde_json::json!({ "registration": mode.as_str() }),
    ))
}

async fn login(
    State(state): State<AuthState>,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    ApiJson(input): ApiJson<CredentialsInput>,
) -> Result<Envelope<TokenPair>, Error> {
    // Before any work: a refused attempt costs no hashing.
    let ip = client_ip(&state, peer, &headers);
    within(
        &state.limits.login_per_ip,
        &ip,
        "login attempts from this address",
    )?;
    if input.username.is_empty() {
        return Err(banter_core::ValidationError::new("username", "must not be empty").into());
    }
    if input.password.is_empty() {
        return Err(banter_core::ValidationError::new("password", "must not be empty").into());
    }
    // Names are case-insensitive, so `Alice` and `alice` share one allowance.
    within(
        &state.limits.login_per_user,
        &input.username.to_lowercase(),
        "login attempts for this user",
    )?;
    let found = state.store.credentials(&input.username).await?;
    let (user, hash, deactivated) = match found {
        Some(c) => (Some(c.user), Some(c.password_hash), c.deactivated),
        None => (None, None, false),
    };
    // Unknown users are verified against a dummy hash: same work, same answer, same time.
    let ok = state.hasher.verify(input.password, hash).await?;
    let user = match (ok, user) {
        (true, Some(user)) => user,
        _ => {
            metrics::counter!("banter_logins_total", "outcome" => "rejected").increment(1);
            return Err(Error::InvalidCredentials);
        }
    };
    // Only once the password is right: whether an account is deactivated is nobody else's
    // business.
    if deactivated {
        metrics::counter!("banter_logins_total", "outcome" => "disabled").increment(1);
        return Err(Error::AccountDisabled);
    }
    let (refresh_token, record) = new_refresh(&state, user.id, uuid::Uuid::new_v4());
    state.store.insert_refresh_token(&record).await?;
    metrics::counter!("banter_logins_total", "outcome" => "ok").increment(1);
    Ok(Envelope::ok(
        "Login successful",
        pair(&state, user, refresh_token)?,
    ))
}

/// A new refresh token in `family`: the string for the client, the record for the store.
fn new_refresh(
    state: &AuthState,
    user_id: UserId,
    family: uuid::Uuid,
) -> (String, NewRefreshToken) {
    let now = banter_store::now();
    let secret = RefreshSecret::generate();
    let ttl =
        chrono::Duration::from_std(state.tokens.refresh_ttl).unwrap_or(chrono::Duration::days(30));
    let record = NewRefreshToken {
        id: uuid::Uuid::new_v4(),
        token_hash: secret.digest,
        user_id,
        family_id: family,
        created_at: now,
        expires_at: now + ttl,
    };
    (secret.token, record)
}

/// The answer to a login or refresh: a new access token beside the given refresh token.
fn pair(state: &AuthState, user: User, refresh_token: String) -> Result<TokenPair, Error> {
    let access = state.tokens.issue(user.id, &user.username)?;
    Ok(TokenPair {
        token: access.token,
        refresh_token,
        token_type: "Bearer",
        expires_in: access.expires_in,
        refresh_expires_in: state.tokens.refresh_ttl.as_secs(),
        user: user.into(),
    })
}

async fn refresh(
    State(state): State<AuthState>,
    ApiJson(input): ApiJson<RefreshInput>,
) -> Result<Envelope<TokenPair>, Error> {
    let presented = digest(&input.refresh_token);
    // The store takes the user and family from the presented token, not from this record.
    let (refresh_token, record) = new_refresh(&state, UserId(0), uuid::Uuid::nil());
    let user_id = match state
        .store
        .rotate_refresh_token(&presented, &record, record.created_at)
        .await?
    {
        Rotation::Rotated { user_id } => user_id,
        Rotation::Reused => {
            metrics::counter!("banter_refresh_replays_total").increment(1);
            tracing::warn!("a used refresh token was replayed; its session is revoked");
            return Err(Error::InvalidRefreshToken);
        }
        Rotation::Invalid => return Err(Error::InvalidRefreshToken),
    };
    let account = state
        .store
        .account_by_id(user_id)
        .await?
        .ok_or(Error::InvalidRefreshToken)?;
    // Deactivation revokes refresh tokens; this covers one rotated in the same instant.
    if account.deactivated_at.is_some() {
        return Err(Error::AccountDisabled);
    }
    let user = account.user;
    Ok(Envelope::ok(
        "Token refreshed",
        pair(&state, user, refresh_token)?,
    ))
}

async fn logout(
    State(state): State<AuthState>,
    user: AuthUser,
    ApiJson(input): ApiJson<RefreshInput>,
) -> Result<Envelope<serde_json::Value>, Error> {
    // Like RFC 7009, an unknown or foreign token is not an error: the session it would name
    // is not usable either way, and the answer reveals nothing about other users' tokens.
    let revoked = state
        .store
        .revoke_refresh_family(&digest(&input.refresh_token), user.id, banter_store::now())
        .await?;
    Ok(Envelope::ok(
        "Logged out",
        serde_json::json!({ "revoked": revoked }),
    ))
}

async fn me(State(state): State<AuthState>, user: AuthUser) -> Result<Envelope<MeView>, Error> {
    let found = state
        .store
        .account_by_id(user.id)
        .await?
        .ok_or(Error::Unauthorized("the token's user no longer exists"))?;
    // The auth service may hear of deactivations from no bus: the store has the last word.
    if found.deactivated_at.is_some() {
        return Err(Error::AccountDisabled);
    }
    Ok(Envelope::ok(
        "Current user",
        MeView {
            admin: found.admin,
            bot: found.bot,
            user: found.user.into(),
        },
    ))
}
