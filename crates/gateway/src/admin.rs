//! The admin API (`/api/v1/admin/...`): people (deactivate, reactivate, admin rights), invites,
//! the registration mode, and the audit log.
//!
//! Every route takes an [`AdminUser`], which is where the right is checked, once: anyone
//! else is answered 403 `forbidden` before a handler runs. Every action is stored with its
//! audit entry (who, what, on whom, when, from which address) in one transaction.
//!
//! A deactivation is stored, then announced on the bus: every gateway refuses the person's
//! tokens from then on and closes their sockets with 4003 (see [`crate::dispatch`]).

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use banter_auth::{AuthUser, InviteCode, Registration, RegistrationPolicy};
use banter_bus::Event;
use banter_core::ValidationError;
use banter_http::limit::PeerAddr;
use banter_http::{ApiError, ApiJson, Envelope};
use banter_store::{Account, AuditEntry, Invite, NewAudit, NewInvite};
use serde::{Deserialize, Serialize};

use crate::api::Error;
use crate::GatewayState;

/// Invites admit at most this many registrations each.
pub const MAX_INVITE_USES: u32 = 1000;
/// An invite lives at least a minute and at most 30 days (7 by default).
pub const INVITE_TTL_RANGE: std::ops::RangeInclusive<u64> = 60..=30 * 24 * 3600;
const DEFAULT_INVITE_TTL: u64 = 7 * 24 * 3600;

/// Settings of the admin API.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdminConfig {
    /// The registration mode, when the operator fixed it (`BANTER_REGISTRATION`).
    pub registration: RegistrationPolicy,
}

/// An admin making a request, and where it came from (for the audit log).
#[derive(Debug, Clone)]
pub struct AdminUser {
    pub user: AuthUser,
    pub address: Option<String>,
}

impl AdminUser {
    /// An audit entry of this admin doing `action` on `target`.
    fn audit(&self, action: &'static str, target: &str, detail: serde_json::Value) -> NewAudit {
        NewAudit {
            at: banter_store::now(),
            actor_id: Some(self.user.id),
            actor: self.user.username.as_str().to_owned(),
            action,
            target: target.to_owned(),
            detail,
            address: self.address.clone(),
        }
    }

    fn is(&self, username: &str) -> bool {
        self.user.username.as_str().eq_ignore_ascii_case(username)
    }
}

impl FromRequestParts<GatewayState> for AdminUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &GatewayState,
    ) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let admin = state
            .store
            .is_admin(user.id)
            .await
            .map_err(|e| Error::from(e).into_response())?;
        if !admin {
            return Err(Error::Forbidden("only an admin may do this").into_response());
        }
        let PeerAddr(peer) = PeerAddr::from_request_parts(parts, state)
            .await
            .unwrap_or(PeerAddr(None));
        let address = peer.map(|peer| {
            banter_http::limit::client_ip(Some(peer), &parts.headers, state.limits.trust_forwarded)
                .to_string()
        });
        Ok(Self { user, address })
    }
}

/// 409 `conflict`: the action makes no sense on this target (e.g. deactivating yourself).
fn conflict(why: &'static str) -> Response {
    ApiError::new(StatusCode::CONFLICT, "conflict", why).into_response()
}

/// An account as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct AccountView {
    id: banter_core::UserId,
    username: banter_core::Username,
    created_at: String,
    admin: bool,
    deactivated_at: Option<String>,
}

/// Times as the rest of the API writes them (RFC 3339, milliseconds, UTC).
fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl From<Account> for AccountView {
    fn from(a: Account) -> Self {
        Self {
            id: a.user.id,
            username: a.user.username,
            created_at: time(a.user.created_at),
            admin: a.admin,
            deactivated_at: a.deactivated_at.map(time),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AccountsPage {
    users: Vec<AccountView>,
    has_more: bool,
}

/// `limit` of a page: 1 to 100, default 50.
fn limit(query: &HashMap<String, String>) -> Result<u32, Error> {
    match query.get("limit") {
        None => Ok(50),
        Some(raw) => Ok(raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| ValidationError::new("limit", "must be a number from 1 to 100"))?),
    }
}

/// `GET /api/v1/admin/users?q=&after=&limit=`: accounts whose name contains `q`, by name.
pub async fn users(
    State(state): State<GatewayState>,
    _admin: AdminUser,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Envelope<AccountsPage>, Error> {
    let limit = limit(&query)?;
    let q = query.get("q").map_or("", |q| q.trim());
    if q.chars().count() > 64 {
        return Err(ValidationError::new("q", "must be at most 64 characters").into());
    }
    let mut found = state
        .store
        .accounts(q, query.get("after").map(String::as_str), limit + 1)
        .await?;
    let has_more = found.len() > limit as usize;
    found.truncate(limit as usize);
    Ok(Envelope::ok(
        "Users",
        AccountsPage {
            users: found.into_iter().map(AccountView::from).collect(),
            has_more,
        },
    ))
}

/// `POST /api/v1/admin/users/{username}/deactivate`: refresh tokens revoked, logins refused
/// (403 `account_disabled`), and, once announced, every gateway refuses their access tokens
/// and closes their sockets with 4003. Their messages stay.
pub async fn deactivate(
    State(state): State<GatewayState>,
    admin: AdminUser,
    Path(username): Path<String>,
) -> Result<Response, Error> {
    if admin.is(&username) {
        return Ok(conflict("you cannot deactivate yourself"));
    }
    standing(state, admin, username, true).await
}

/// `POST /api/v1/admin/users/{username}/reactivate`: they may log in again (the tokens they
/// had stay refused).
pub async fn reactivate(
    State(state): State<GatewayState>,
    admin: AdminUser,
    Path(username): Path<String>,
) -> Result<Response, Error> {
    standing(state, admin, username, false).await
}

async fn standing(
    state: GatewayState,
    admin: AdminUser,
    username: String,
    deactivated: bool,
) -> Result<Response, Error> {
    let action = if deactivated {
        "user.deactivate"
    } else {
        "user.reactivate"
    };
    let audit = admin.audit(action, &username, serde_json::json!({}));
    let account = state
        .store
        .set_deactivated(&username, deactivated, &audit)
        .await?
        .ok_or(Error::NotFound("no such user"))?;
    // Stored first: a gateway that starts now reads it; those running hear this.
    state
        .bus
        .announce(Event::Account(account.standing()))
        .await
        .map_err(|e| Error::Unavailable(format!("announcing a deactivation: {e}")))?;
    tracing::info!(user = %account.user.username, deactivated, by = %admin.user.username, "account standing changed");
    Ok(Envelope::ok(
        if deactivated {
            "User deactivated"
        } else {
            "User reactivated"
        },
        AccountView::from(account),
    )
    .into_response())
}

#[derive(Debug, Deserialize)]
pub struct AdminInput {
    admin: bool,
}

/// `PUT /api/v1/admin/users/{username}/admin` `{"admin":bool}`.
pub async fn set_admin(
    State(state): State<GatewayState>,
    admin: AdminUser,
    Path(username): Path<String>,
    ApiJson(input): ApiJson<AdminInput>,
) -> Result<Response, Error> {
    if admin.is(&username) && !input.admin {
        return Ok(conflict("you cannot take your own admin rights away"));
    }
    let audit = admin.audit(
        "user.admin",
        &username,
        serde_json::json!({ "admin": input.admin }),
    );
    let account = state
        .store
        .set_admin_audited(&username, input.admin, &audit)
        .await?
        .ok_or(Error::NotFound("no such user"))?;
    Ok(Envelope::ok("Admin rights changed", AccountView::from(account)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct InviteInput {
    #[serde(default)]
    uses: Option<u32>,
    /// Seconds.
    #[serde(default)]
    expires_in: Option<u64>,
}

/// An invite as the admin API shows it; `code` and `url` only when it was just made.
#[derive(Debug, Serialize)]
pub struct InviteView {
    id: uuid::Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    uses: u32,
    used: u32,
    expires_at: String,
    created_at: String,
    created_by: banter_core::Username,
    revoked: bool,
}

impl From<Invite> for InviteView {
    fn from(i: Invite) -> Self {
        Self {
            id: i.id,
            code: None,
            url: None,
            uses: i.uses,
            used: i.used,
            expires_at: time(i.expires_at),
            created_at: time(i.created_at),
            created_by: i.created_by,
            revoked: i.revoked_at.is_some(),
        }
    }
}

/// `POST /api/v1/admin/invites` `{"uses"?, "expires_in"?}` → 201 with the code, shown once.
pub async fn create_invite(
    State(state): State<GatewayState>,
    admin: AdminUser,
    ApiJson(input): ApiJson<InviteInput>,
) -> Result<Envelope<InviteView>, Error> {
    let uses = input.uses.unwrap_or(1);
    if !(1..=MAX_INVITE_USES).contains(&uses) {
        return Err(ValidationError::new(
            "uses",
            format!("must be a number from 1 to {MAX_INVITE_USES}"),
        )
        .into());
    }
    let ttl = input.expires_in.unwrap_or(DEFAULT_INVITE_TTL);
    if !INVITE_TTL_RANGE.contains(&ttl) {
        return Err(ValidationError::new(
            "expires_in",
            "must be from 60 seconds to 30 days (2592000)",
        )
        .into());
    }
    let code = InviteCode::generate();
    let now = banter_store::now();
    let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
    let invite = NewInvite {
        id: uuid::Uuid::new_v4(),
        code_hash: code.digest,
        created_by: admin.user.id,
        created_at: now,
        expires_at: now + chrono::Duration::seconds(ttl),
        uses,
    };
    let audit = admin.audit(
        "invite.create",
        &invite.id.to_string(),
        serde_json::json!({ "uses": uses, "expires_at": time(invite.expires_at) }),
    );
    let stored = state.store.create_invite(&invite, &audit).await?;
    let mut view = InviteView::from(stored);
    view.url = Some(format!("/join/{}", code.code));
    view.code = Some(code.code);
    Ok(Envelope::created("Invite created", view))
}

#[derive(Debug, Serialize)]
pub struct InvitesPage {
    invites: Vec<InviteView>,
}

/// `GET /api/v1/admin/invites`: the newest 100, without their codes.
pub async fn invites(
    State(state): State<GatewayState>,
    _admin: AdminUser,
) -> Result<Envelope<InvitesPage>, Error> {
    let invites = state.store.invites(100).await?;
    Ok(Envelope::ok(
        "Invites",
        InvitesPage {
            invites: invites.into_iter().map(InviteView::from).collect(),
        },
    ))
}

/// `DELETE /api/v1/admin/invites/{id}`: nobody registers with it any more.
pub async fn revoke_invite(
    State(state): State<GatewayState>,
    admin: AdminUser,
    Path(id): Path<String>,
) -> Result<Envelope<InviteView>, Error> {
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ValidationError::new("id", "is not an invite id (a UUID)"))?;
    let audit = admin.audit("invite.revoke", &id.to_string(), serde_json::json!({}));
    let invite = state
        .store
        .revoke_invite(id, &audit)
        .await?
        .ok_or(Error::NotFound("no such invite"))?;
    Ok(Envelope::ok("Invite revoked", InviteView::from(invite)))
}

#[derive(Debug, Serialize)]
pub struct SettingsView {
    registration: &'static str,
    /// The operator fixed it (`BANTER_REGISTRATION`): admins cannot change it.
    registration_locked: bool,
}

async fn settings_view(state: &GatewayState) -> Result<SettingsView, Error> {
    let policy = state.config.admin.registration;
    Ok(SettingsView {
        registration: policy.mode(&state.store).await?.as_str(),
        registration_locked: policy.locked.is_some(),
    })
}

/// `GET /api/v1/admin/settings`.
pub async fn settings(
    State(state): State<GatewayState>,
    _admin: AdminUser,
) -> Result<Envelope<SettingsView>, Error> {
    Ok(Envelope::ok("Settings", settings_view(&state).await?))
}

#[derive(Debug, Deserialize)]
pub struct SettingsInput {
    registration: String,
}

/// `PUT /api/v1/admin/settings` `{"registration":"open"|"invite"|"closed"}`.
pub async fn put_settings(
    State(state): State<GatewayState>,
    admin: AdminUser,
    ApiJson(input): ApiJson<SettingsInput>,
) -> Result<Response, Error> {
    let mode = Registration::parse(&input.registration)
        .ok_or_else(|| ValidationError::new("registration", "must be open, invite or closed"))?;
    if state.config.admin.registration.locked.is_some() {
        return Ok(conflict(
            "the registration mode is set by the operator (BANTER_REGISTRATION)",
        ));
    }
    let audit = admin.audit(
        "settings.registration",
        "registration",
        serde_json::json!({ "registration": mode.as_str() }),
    );
    state
        .store
        .put_setting(banter_auth::registration::SETTING, mode.as_str(), &audit)
        .await?;
    Ok(Envelope::ok("Settings changed", settings_view(&state).await?).into_response())
}

#[derive(Debug, Serialize)]
pub struct AuditView {
    id: i64,
    at: String,
    actor: String,
    action: String,
    target: String,
    detail: serde_json::Value,
    address: Option<String>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            at: time(e.at),
            actor: e.actor,
            action: e.action,
            target: e.target,
            detail: e.detail,
            address: e.address,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AuditPage {
    entries: Vec<AuditView>,
    has_more: bool,
}

/// `GET /api/v1/admin/audit?before=<id>&limit=`: newest first.
pub async fn audit(
    State(state): State<GatewayState>,
    _admin: AdminUser,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Envelope<AuditPage>, Error> {
    let limit = limit(&query)?;
    let before = query
        .get("before")
        .map(|b| {
            b.parse::<i64>()
                .map_err(|_| ValidationError::new("before", "must be an entry's id"))
        })
        .transpose()?;
    let mut entries = state.store.audit_log(before, limit + 1).await?;
    let has_more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    Ok(Envelope::ok(
        "Audit log",
        AuditPage {
            entries: entries.into_iter().map(AuditView::from).collect(),
            has_more,
        },
    ))
}
