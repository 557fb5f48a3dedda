//! The admin API (`/api/v1/admin/...`): people (deactivate, reactivate, admin rights, purge
//! their messages), rooms (archive, delete), invites, the registration mode, the audit log,
//! and live figures; and the background removal of deleted rooms' messages ([`sweep`]).
//!
//! Every route takes an [`AdminUser`], which is where the right is checked, once: anyone
//! else is answered 403 `forbidden` before a handler runs. Every action is stored with its
//! audit entry (who, what, on whom, when, from which address) in one transaction.
//!
//! A deactivation is stored, then announced on the bus: every gateway refuses the person's
//! tokens from then on and closes their sockets with 4003 (see [`crate::dispatch`]).
//! Archiving and deleting a room, and purging messages, are changes of rooms: they go
//! through the chat service to the rooms' logs like anyone's, and are audited once logged.

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
use banter_store::{Account, AdminRoom, AuditEntry, Invite, NewAudit, NewInvite, PurgeRange};
use serde::{Deserialize, Serialize};

use crate::api::{page_limit, Error};
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
    pub(crate) fn audit(
        &self,
        action: &'static str,
        target: &str,
        detail: serde_json::Value,
    ) -> NewAudit {
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
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    bot: bool,
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
            bot: a.bot,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AccountsPage {
    users: Vec<AccountView>,
    has_more: bool,
}

/// `q` of a search by name: trimmed, at most 64 characters.
fn name_query(query: &HashMap<String, String>) -> Result<&str, Error> {
    let q = query.get("q").map_or("", |q| q.trim());
    if q.chars().count() > 64 {
        return Err(ValidationError::new("q", "must be at most 64 characters").into());
    }
    Ok(q)
}

/// A page of `limit` from `found`, asked for one more: whether there is more after it.
fn page<T>(mut found: Vec<T>, limit: u32) -> (Vec<T>, bool) {
    let has_more = found.len() > limit as usize;
    found.truncate(limit as usize);
    (found, has_more)
}

/// `GET /api/v1/admin/users?q=&after=&limit=`: accounts whose name contains `q`, by name.
pub async fn users(
    State(state): State<GatewayState>,
    _admin: AdminUser,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Envelope<AccountsPage>, Error> {
    let limit = page_limit(&query)?;
    let found = state
        .store
        .accounts(
            name_query(&query)?,
            query.get("after").map(String::as_str),
            limit + 1,
        )
        .await?;
    let (found, has_more) = page(found, limit);
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
    let limit = page_limit(&query)?;
    let before = query
        .get("before")
        .map(|b| {
            b.parse::<i64>()
                .map_err(|_| ValidationError::new("before", "must be an entry's id"))
        })
        .transpose()?;
    let entries = state.store.audit_log(before, limit + 1).await?;
    let (entries, has_more) = page(entries, limit);
    Ok(Envelope::ok(
        "Audit log",
        AuditPage {
            entries: entries.into_iter().map(AuditView::from).collect(),
            has_more,
        },
    ))
}

/// A room as the admin API lists it.
#[derive(Debug, Serialize)]
pub struct RoomView {
    name: banter_core::RoomName,
    kind: banter_core::RoomKind,
    topic: banter_core::Topic,
    owner: Option<banter_core::Username>,
    created_at: String,
    archived: bool,
    /// Deleted: its messages are being removed (`messages` counts what is left).
    deleting: bool,
    members: u64,
    messages: u64,
}

impl From<AdminRoom> for RoomView {
    fn from(r: AdminRoom) -> Self {
        Self {
            name: r.name,
            kind: r.kind,
            topic: r.topic,
            owner: r.owner,
            created_at: time(r.created_at),
            archived: r.archived_at.is_some(),
            deleting: r.deleted_at.is_some(),
            members: r.members,
            messages: r.messages,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RoomsPage {
    rooms: Vec<RoomView>,
    has_more: bool,
}

/// `GET /api/v1/admin/rooms?q=&after=&limit=`: rooms (never DMs) with their members and
/// messages, by name; a deleted room shows `deleting` until its messages are gone.
pub async fn rooms(
    State(state): State<GatewayState>,
    _admin: AdminUser,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Envelope<RoomsPage>, Error> {
    let limit = page_limit(&query)?;
    let found = state
        .store
        .admin_rooms(
            name_query(&query)?,
            query.get("after").map(String::as_str),
            limit + 1,
        )
        .await?;
    let (found, has_more) = page(found, limit);
    Ok(Envelope::ok(
        "Rooms",
        RoomsPage {
            rooms: found.into_iter().map(RoomView::from).collect(),
            has_more,
        },
    ))
}

/// The room as the list shows it after a change just logged: its counts from the store, and
/// what the change made of it (on Kafka the store may not have the change yet).
async fn room_view(
    state: &GatewayState,
    room: &banter_core::RoomName,
    archived: Option<bool>,
    deleting: bool,
) -> Result<RoomView, Error> {
    let mut view = match state.store.admin_room(room).await? {
        Some(found) => RoomView::from(found),
        // Created so lately that persist has not stored it yet: what this gateway knows.
        None => {
            let known = state
                .directory
                .lookup(room, banter_core::UserId(0))
                .await?
                .ok_or(Error::NotFound("no such room"))?;
            RoomView {
                name: room.clone(),
                kind: known.info.kind,
                topic: known.info.topic,
                owner: known.info.owner.map(|o| o.name),
                created_at: time(known.info.created_at),
                archived: known.info.archived_at.is_some(),
                deleting: known.info.deleted_at.is_some(),
                members: 0,
                messages: 0,
            }
        }
    };
    if let Some(archived) = archived {
        view.archived = archived;
    }
    view.deleting |= deleting;
    Ok(view)
}

#[derive(Debug, Deserialize)]
pub struct ArchiveInput {
    archived: bool,
}

/// `PUT /api/v1/admin/rooms/{room}/archived` `{"archived":bool}`: read-only, or not any more;
/// an `archived` change in the room's log, which its readers hear.
pub async fn archive(
    State(state): State<GatewayState>,
    admin: AdminUser,
    Path(room): Path<String>,
    ApiJson(input): ApiJson<ArchiveInput>,
) -> Result<Envelope<RoomView>, Error> {
    let room = banter_core::RoomName::parse(&room)?;
    let actor = crate::api::actor(&admin.user);
    state
        .chat
        .archive(&actor, room.clone(), input.archived)
        .await?;
    let action = if input.archived {
        "room.archive"
    } else {
        "room.unarchive"
    };
    state
        .store
        .record_audit(&admin.audit(action, room.as_str(), serde_json::json!({})))
        .await?;
    Ok(Envelope::ok(
        if input.archived {
            "Room archived"
        } else {
            "Room unarchived"
        },
        room_view(&state, &room, Some(input.archived), false).await?,
    ))
}

/// `DELETE /api/v1/admin/rooms/{room}` → 202: the room leaves every list and refuses
/// everything at once (a `deleted` change in its log); its messages and files go in the
/// background ([`sweep`]), and the list shows how many are left.
pub async fn delete_room(
    State(state): State<GatewayState>,
    admin: AdminUser,
    Path(room): Path<String>,
) -> Result<Response, Error> {
    let room = banter_core::RoomName::parse(&room)?;
    let actor = crate::api::actor(&admin.user);
    state.chat.delete_room(&actor, room.clone()).await?;
    // The sweep first: whatever the answer meets, the room is deleted in its log.
    state.admin.swept.notify_one();
    let view = room_view(&state, &room, None, true).await?;
    state
        .store
        .record_audit(&admin.audit(
            "room.delete",
            room.as_str(),
            serde_json::json!({ "messages": view.messages, "members": view.members }),
        ))
        .await?;
    Ok(Envelope::accepted("Room deleted; its messages are being removed", view).into_response())
}

#[derive(Debug, Deserialize)]
pub struct PurgeInput {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Serialize)]
pub struct PurgeView {
    /// How many messages the purge takes (a dry run deletes none).
    messages: u64,
    dry_run: bool,
}

/// Messages of one purge deleted per batch: each batch is that many deletes in the log, so
/// sends keep flowing between batches and no lock is held for long.
pub const PURGE_BATCH: u32 = 100;

fn instant(
    field: &'static str,
    raw: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Error> {
    raw.map(|r| {
        chrono::DateTime::parse_from_rfc3339(r)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|_| ValidationError::new(field, "must be an RFC 3339 time").into())
    })
    .transpose()
}

/// `POST /api/v1/admin/users/{username}/purge` `{"from"?, "to"?, "dry_run"}`: the person's
/// messages written in `[from, to)`. A dry run says how many; otherwise they are deleted in
/// the background, in batches of [`PURGE_BATCH`] deletes through the log (open chats see
/// them go), and the answer (202) says how many it takes.
pub async fn purge(
    State(state): State<GatewayState>,
    admin: AdminUser,
    Path(username): Path<String>,
    ApiJson(input): ApiJson<PurgeInput>,
) -> Result<Response, Error> {
    let from = instant("from", input.from.as_deref())?;
    let to = instant("to", input.to.as_deref())?;
    if let (Some(from), Some(to)) = (from, to) {
        if from >= to {
            return Err(ValidationError::new("to", "must be after from").into());
        }
    }
    let account = state
        .store
        .account(&username)
        .await?
        .ok_or(Error::NotFound("no such user"))?;
    let range = PurgeRange {
        author: account.user.id,
        from,
        to,
    };
    let messages = state.store.purge_count(&range).await?;
    let view = PurgeView {
        messages,
        dry_run: input.dry_run,
    };
    if input.dry_run {
        return Ok(Envelope::ok("Messages a purge would delete", view).into_response());
    }
    state
        .store
        .record_audit(&admin.audit(
            "user.purge",
            account.user.username.as_str(),
            serde_json::json!({
                "from": from.map(time),
                "to": to.map(time),
                "messages": messages,
            }),
        ))
        .await?;
    let actor = crate::api::actor(&admin.user);
    tokio::spawn(run_purge(state.clone(), actor, range));
    Ok(Envelope::accepted("Purge started", view).into_response())
}

/// Deletes a purge's messages batch after batch, until none is left or the gateway stops
/// (what is left then is found again by a new purge).
async fn run_purge(state: GatewayState, actor: crate::chat::Actor, range: PurgeRange) {
    let mut after = None;
    let mut deleted = 0u64;
    loop {
        if state.shutdown.is_cancelled() {
            tracing::warn!(deleted, "purge stopped by shutdown; run it again to finish");
            return;
        }
        let batch = match state
            .store
            .purge_batch(&range, after.as_ref(), PURGE_BATCH)
            .await
        {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, deleted, "purge stopped: the store failed");
                return;
            }
        };
        let Some(last) = batch.last().cloned() else {
            tracing::info!(deleted, author = %range.author, "purge done");
            return;
        };
        if let Err(e) = state.chat.purge(&actor, &batch).await {
            tracing::warn!(error = %e, deleted, "purge stopped: the log refused");
            return;
        }
        deleted += batch.len() as u64;
        after = Some(last);
    }
}

/// Messages of a deleted room removed per transaction.
pub const SWEEP_BATCH: u32 = 500;
/// How often a gateway looks for deleted rooms with messages left (at once after a delete
/// made here; on Kafka the store has it once persist has, so soon after).
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Removes deleted rooms' messages, batch after batch, while any are left; then waits.
/// Every gateway runs one: batches are small transactions, so several at once only share
/// the work. The files of those messages are marked for the file cleanup.
pub async fn sweep(
    store: banter_store::DynStore,
    swept: std::sync::Arc<tokio::sync::Notify>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        match store.sweep_deleted_room(SWEEP_BATCH).await {
            Ok(Some((room, removed))) => {
                metrics::counter!("banter_deleted_room_messages_removed_total").increment(removed);
                tracing::debug!(%room, removed, "removed messages of a deleted room");
                if !shutdown.is_cancelled() {
                    // Others' sends come first between batches.
                    tokio::task::yield_now().await;
                    continue;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "removing a deleted room's messages"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = swept.notified() => {}
            () = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}

/// One gateway's figure for the admin page.
#[derive(Debug, Serialize)]
pub struct GatewayFigure {
    node: uuid::Uuid,
    connections: usize,
    /// This gateway: the one answering.
    here: bool,
}

#[derive(Debug, Serialize)]
pub struct Stats {
    gateways: Vec<GatewayFigure>,
    /// Messages this gateway heard from the log per second, over the last 10 s (every
    /// gateway hears every room, so it is the whole service's rate).
    messages_per_second: f64,
    /// Log places heard but not stored yet, summed over partitions: how far persist is behind.
    persist_lag: u64,
    /// Requests and frames refused by rate limits on this gateway per minute, since the
    /// previous reading (or its start).
    rate_limited_per_minute: f64,
    at: String,
}

/// What the admin API keeps while the gateway runs.
#[derive(Debug, Default)]
pub struct AdminState {
    /// The last reading of the rate-limit counter, for a rate between readings.
    rate_limited: std::sync::Mutex<Option<(std::time::Instant, f64)>>,
    /// Wakes this gateway's [`sweep`] (a room was just deleted here).
    pub swept: std::sync::Arc<tokio::sync::Notify>,
}

/// The sum of a counter's series in the process's Prometheus rendering.
fn counter_total(rendered: &str, name: &str) -> f64 {
    rendered
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `GET /api/v1/admin/stats`: live figures from what banter keeps anyway: connections per
/// gateway (presence snapshots), messages per second and persist lag (what this gateway
/// heard of the log, against the store), rate-limit refusals (its metrics).
pub async fn stats(
    State(state): State<GatewayState>,
    _admin: AdminUser,
) -> Result<Envelope<Stats>, Error> {
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(10);
    let mut gateways = vec![GatewayFigure {
        node: state.node,
        connections: state.hub.connections(),
        here: true,
    }];
    let mut others = state.hub.remote_gateways();
    others.sort_by_key(|(node, _)| *node);
    gateways.extend(others.into_iter().map(|(node, connections)| GatewayFigure {
        node,
        connections,
        here: false,
    }));
    let (heard, newest) = state.recent.heard(WINDOW);
    let mut persist_lag = 0;
    for (part, offset) in newest {
        let stored = state.store.newest_stored(part).await?.unwrap_or(0);
        persist_lag += offset.saturating_sub(stored);
    }
    let total = counter_total(
        &banter_http::ops::prometheus().render(),
        "banter_rate_limited_total",
    );
    let now = std::time::Instant::now();
    let rate_limited_per_minute = {
        let mut last = state
            .admin
            .rate_limited
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rate = match *last {
            Some((at, before)) if now > at => {
                (total - before).max(0.0) * 60.0 / now.duration_since(at).as_secs_f64()
            }
            _ => 0.0,
        };
        *last = Some((now, total));
        rate
    };
    Ok(Envelope::ok(
        "Figures",
        Stats {
            gateways,
            messages_per_second: heard as f64 / WINDOW.as_secs_f64(),
            persist_lag,
            rate_limited_per_minute,
            at: time(chrono::Utc::now()),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_is_summed_over_its_series_and_no_other() {
        let rendered = "# TYPE banter_rate_limited_total counter\n\
            banter_rate_limited_total{what=\"sends\"} 3\n\
            banter_rate_limited_total{what=\"joins\"} 4\n\
            banter_rate_limited_total_other 100\n\
            banter_ws_connections 9\n";
        assert_eq!(counter_total(rendered, "banter_rate_limited_total"), 7.0);
        assert_eq!(counter_total(rendered, "banter_missing_total"), 0.0);
    }
}
