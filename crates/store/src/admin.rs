//! What running banter for a team needs kept: accounts as admins see them (admin, deactivated),
//! registration (the first account is an admin; invite codes), settings admins change at run
//! time, the append-only audit log of what admins did, and the reads admins need of rooms
//! (their list, a purge's messages) and the sweep of deleted rooms' messages.
//!
//! The accounts, invites and settings are not changes of a room, so they go through no room's
//! log: they are the server's own records, written directly, like refresh tokens. What must
//! reach every gateway at once (a deactivation) is announced on the bus after it is stored.
//! Each of these actions is stored in the same transaction as its audit entry, so there is no
//! action without its entry, nor an entry for an action that did not happen. (Archiving or
//! deleting a room and purging messages are room changes: they go through the rooms' logs,
//! and are audited with [`Admin::record_audit`] once logged. The sweep removes what a deleted
//! room's log has already taken from everyone.)

use async_trait::async_trait;
use banter_core::{RoomKind, RoomName, Standing, Topic, User, UserId, Username};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreError;

/// An account as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: User,
    pub admin: bool,
    pub deactivated_at: Option<DateTime<Utc>>,
    /// Access tokens issued before this instant are refused (see [`Standing`]).
    pub revoked_before: Option<DateTime<Utc>>,
    /// A bot's account (see [`crate::Bots`]).
    pub bot: bool,
}

impl Account {
    /// What gateways must know of it.
    pub fn standing(&self) -> Standing {
        Standing {
            user: self.user.id,
            username: self.user.username.clone(),
            deactivated: self.deactivated_at.is_some(),
            revoked_before: self.revoked_before,
        }
    }
}

/// A registration about to be stored.
#[derive(Debug, Clone)]
pub struct NewAccount<'a> {
    pub username: &'a Username,
    /// PHC string.
    pub password_hash: &'a str,
    pub created_at: DateTime<Utc>,
    /// The SHA-256 digest of the invite code it registers with, if any.
    pub invite: Option<&'a [u8]>,
    /// Registration is closed (or needs an invite, and none was given): only the first
    /// account of an empty database may be made, the admin who opens it.
    pub only_first: bool,
}

/// What a registration came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    Created(Account),
    /// The invite is unknown, revoked, used up or expired: nothing was stored.
    InviteRefused,
    /// `only_first`, and the database has accounts: nothing was stored.
    Closed,
}

/// An invite about to be stored.
#[derive(Debug, Clone)]
pub struct NewInvite {
    pub id: Uuid,
    /// SHA-256 of the code; the code itself is shown once and never stored.
    pub code_hash: Vec<u8>,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// How many registrations it admits.
    pub uses: u32,
}

/// An invite as admins see it (without its code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub id: Uuid,
    pub created_by: Username,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub uses: u32,
    pub used: u32,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An entry for the audit log: who (`actor`), did what (`action`, e.g. `user.deactivate`), on
/// whom or what (`target`), with what details (a JSON object), from which address.
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub at: DateTime<Utc>,
    pub actor_id: Option<UserId>,
    pub actor: String,
    pub action: &'static str,
    pub target: String,
    pub detail: serde_json::Value,
    pub address: Option<String>,
}

/// An entry of the audit log, with its place (`id`, increasing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: serde_json::Value,
    pub address: Option<String>,
}

/// A room as the admin API lists it (never a DM: those are their two people's business).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRoom {
    pub name: RoomName,
    pub kind: RoomKind,
    pub topic: Topic,
    pub owner: Option<Username>,
    pub created_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Its members now.
    pub members: u64,
    /// Its messages kept (not deleted; a deleted room's count falls to 0 as they go).
    pub messages: u64,
}

/// A message a purge deletes: where it is, and its place in the purge's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeItem {
    pub id: Uuid,
    pub room: RoomName,
    pub created_at: DateTime<Utc>,
}

/// Which messages a purge takes: by `author`, written in `[from, to)` (open ends: `None`).
#[derive(Debug, Clone)]
pub struct PurgeRange {
    pub author: UserId,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The storage of administration. Every method is one transaction.
#[async_trait]
pub trait Admin: Send + Sync {
    /// Registers an account. The first one on an empty database is an admin (concurrent
    /// first registrations queue, so only one is). With an invite, one of its uses is taken
    /// in the same transaction; with `only_first`, nothing is stored unless the database is
    /// empty. `Conflict` when the name is taken (the use is not spent).
    async fn register(&self, new: &NewAccount<'_>) -> Result<Registered, StoreError>;

    /// The account of `username` (compared without case).
    async fn account(&self, username: &str) -> Result<Option<Account>, StoreError>;

    async fn account_by_id(&self, id: UserId) -> Result<Option<Account>, StoreError>;

    /// Accounts whose name contains `q` (without case), by name, after `after`.
    async fn accounts(
        &self,
        q: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Account>, StoreError>;

    /// Deactivates `username` (its refresh tokens revoked, its access tokens up to `at`
    /// refused) or reactivates it, with `audit`. `None`: no such user.
    async fn set_deactivated(
        &self,
        username: &str,
        deactivated: bool,
        audit: &NewAudit,
    ) -> Result<Option<Account>, StoreError>;

    /// Grants or withdraws admin rights, with `audit`. `None`: no such user.
    async fn set_admin_audited(
        &self,
        username: &str,
        admin: bool,
        audit: &NewAudit,
    ) -> Result<Option<Account>, StoreError>;

    /// What a gateway must know when it starts: every deactivated account, and every one
    /// whose tokens were revoked after `since` (older tokens have expired anyway).
    async fn standings(&self, since: DateTime<Utc>) -> Result<Vec<Standing>, StoreError>;

    async fn create_invite(
        &self,
        invite: &NewInvite,
        audit: &NewAudit,
    ) -> Result<Invite, StoreError>;

    /// The newest invites first.
    async fn invites(&self, limit: u32) -> Result<Vec<Invite>, StoreError>;

    /// Revokes an invite (already revoked: unchanged), with `audit`. `None`: no such invite.
    async fn revoke_invite(&self, id: Uuid, audit: &NewAudit)
        -> Result<Option<Invite>, StoreError>;

    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError>;

    async fn put_setting(
        &self,
        name: &str,
        value: &str,
        audit: &NewAudit,
    ) -> Result<(), StoreError>;

    /// Appends an entry on its own: for actions whose change went through a room's log.
    async fn record_audit(&self, audit: &NewAudit) -> Result<(), StoreError>;

    /// Rooms (not DMs) whose name contains `q`, by name, after `after`.
    async fn admin_rooms(
        &self,
        q: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AdminRoom>, StoreError>;

    /// One room as [`Admin::admin_rooms`] lists it (a DM: `None`).
    async fn admin_room(&self, name: &RoomName) -> Result<Option<AdminRoom>, StoreError>;

    /// How many messages `range` takes (not deleted already): a purge's dry run.
    async fn purge_count(&self, range: &PurgeRange) -> Result<u64, StoreError>;

    /// The next messages of `range` after `after` (by time, then id), oldest first.
    async fn purge_batch(
        &self,
        range: &PurgeRange,
        after: Option<&PurgeItem>,
        limit: u32,
    ) -> Result<Vec<PurgeItem>, StoreError>;

    /// Removes up to `limit` messages (the oldest) of one deleted room, with what hangs on
    /// them (edits, reactions, mentions; their files are marked for the cleanup): which
    /// room and how many, or `None` when no deleted room has any left.
    async fn sweep_deleted_room(&self, limit: u32) -> Result<Option<(RoomName, u64)>, StoreError>;

    /// The newest place of partition `part` of the log that is stored (for the lag of
    /// persist behind the log).
    async fn newest_stored(&self, part: u32) -> Result<Option<u64>, StoreError>;

    /// Entries before `before` (all: `None`), newest first.
    async fn audit_log(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError>;
}

/// Implements [`Admin`] for `$store` (see `queries::impl_store`, whose helpers it uses).
macro_rules! impl_admin {
    ($store:ty, $backend:expr, $row:ty, $conn:ty) => {
        const ACCOUNT_COLUMNS: &str =
            "id, username, created_at, is_admin, deactivated_at, revoked_before, is_bot";

        fn account_from_row(row: &$row) -> Result<$crate::admin::Account, sqlx::Error> {
            Ok($crate::admin::Account {
                user: user_from_row(row)?,
                admin: row.try_get("is_admin")?,
                deactivated_at: row.try_get("deactivated_at")?,
                revoked_before: row.try_get("revoked_before")?,
                bot: row.try_get("is_bot")?,
            })
        }

        fn invite_from_row(row: &$row) -> Result<$crate::admin::Invite, sqlx::Error> {
            let count = |name: &str| -> Result<u32, sqlx::Error> {
                Ok(u32::try_from(row.try_get::<i32, _>(name)?).unwrap_or(0))
            };
            Ok($crate::admin::Invite {
                id: row.try_get("id")?,
                created_by: Username::from_stored(row.try_get("created_by_name")?),
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                uses: count("uses")?,
                used: count("used")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        }

        /// SQL for "`column` contains `$1`, without case": `instr`/`strpos` rather than LIKE,
        /// so that `%` and `_` in it are plain text.
        fn contains_q(column: &str) -> String {
            match $backend {
                Backend::Sqlite => format!("instr(lower({column}), lower($1)) > 0"),
                Backend::Postgres => format!("strpos(lower({column}), lower($1)) > 0"),
            }
        }

        /// `column` ordered by its bytes on both engines (PostgreSQL's collation would skip
        /// punctuation), so that pages follow each other the same way everywhere.
        fn by_bytes(column: &str) -> String {
            match $backend {
                Backend::Sqlite => column.to_owned(),
                Backend::Postgres => format!("{column} COLLATE \"C\""),
            }
        }

        const ADMIN_ROOM_SELECT: &str = "SELECT r.name, r.kind, r.topic, r.owner, r.created_at, \
             r.archived_at, r.deleted_at, \
             (SELECT COUNT(*) FROM memberships mb WHERE mb.room = r.name AND mb.present) AS members, \
             (SELECT COUNT(*) FROM messages m WHERE m.room = r.name AND m.deleted_at IS NULL) \
               AS messages \
             FROM rooms r";

        fn admin_room_from_row(row: &$row) -> Result<$crate::admin::AdminRoom, sqlx::Error> {
            let kind: String = row.try_get("kind")?;
            let count = |c: &str| -> Result<u64, sqlx::Error> {
                Ok(u64::try_from(row.try_get::<i64, _>(c)?).unwrap_or(0))
            };
            Ok($crate::admin::AdminRoom {
                name: RoomName::from_stored(row.try_get("name")?),
                kind: RoomKind::from_stored(&kind)
                    .ok_or_else(|| sqlx::Error::Decode(format!("unknown room kind {kind}").into()))?,
                topic: Topic::from_stored(row.try_get("topic")?),
                owner: row
                    .try_get::<Option<String>, _>("owner")?
                    .map(Username::from_stored),
                created_at: row.try_get("created_at")?,
                archived_at: row.try_get("archived_at")?,
                deleted_at: row.try_get("deleted_at")?,
                members: count("members")?,
                messages: count("messages")?,
            })
        }

        const INVITE_SELECT: &str = "SELECT i.id, u.username AS created_by_name, i.created_at, \
             i.expires_at, i.uses, i.used, i.revoked_at \
             FROM invites i JOIN users u ON u.id = i.created_by";

        async fn insert_audit(
            conn: &mut $conn,
            audit: &$crate::admin::NewAudit,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(
                "INSERT INTO audit_log (at, actor_id, actor, action, target, detail, address) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(audit.at)
            .bind(audit.actor_id.map(|u| u.0))
            .bind(&audit.actor)
            .bind(audit.action)
            .bind(&audit.target)
            .bind(audit.detail.to_string())
            .bind(&audit.address)
            .execute(conn)
            .await?;
            Ok(())
        }

        async fn account_in(
            conn: &mut $conn,
            username: &str,
        ) -> Result<Option<$crate::admin::Account>, sqlx::Error> {
            let row = sqlx::query(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM users WHERE lower(username) = lower($1)"
            ))
            .bind(username)
            .fetch_optional(conn)
            .await?;
            row.as_ref().map(account_from_row).transpose()
        }

        async fn invite_in(
            conn: &mut $conn,
            id: Uuid,
        ) -> Result<Option<$crate::admin::Invite>, sqlx::Error> {
            let row = sqlx::query(&format!("{INVITE_SELECT} WHERE i.id = $1"))
                .bind(id)
                .fetch_optional(conn)
                .await?;
            row.as_ref().map(invite_from_row).transpose()
        }

        #[async_trait::async_trait]
        impl $crate::admin::Admin for $store {
            async fn register(
                &self,
                new: &$crate::admin::NewAccount<'_>,
            ) -> Result<$crate::admin::Registered, StoreError> {
                let mut tx = self.pool.begin_with(begin_write()).await?;
                if $backend == Backend::Postgres {
                    // Registrations queue here, so that of two first registrations on an empty
                    // database the second sees the first and is no admin. (SQLite's write
                    // lock, taken at BEGIN, does the same.)
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind($crate::admin::REGISTRATION_LOCK)
                        .execute(&mut *tx)
                        .await?;
                }
                if new.only_first {
                    let any = sqlx::query("SELECT 1 AS one FROM users LIMIT 1")
                        .fetch_optional(&mut *tx)
                        .await?;
                    if any.is_some() {
                        tx.rollback().await?;
                        return Ok($crate::admin::Registered::Closed);
                    }
                }
                let mut invite_id: Option<Uuid> = None;
                if let Some(code_hash) = new.invite {
                    let row = sqlx::query(
                        "UPDATE invites SET used = used + 1 \
                         WHERE code_hash = $1 AND revoked_at IS NULL AND used < uses \
                         RETURNING id, expires_at",
                    )
                    .bind(code_hash)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let usable = match &row {
                        Some(row) => row.try_get::<DateTime<Utc>, _>("expires_at")? > new.created_at,
                        None => false,
                    };
                    if !usable {
                        tx.rollback().await?;
                        return Ok($crate::admin::Registered::InviteRefused);
                    }
                    invite_id = row.map(|r| r.try_get("id")).transpose()?;
                }
                let row = sqlx::query(&format!(
                    "INSERT INTO users (username, password, created_at, is_admin, invite_id) \
                     VALUES ($1, $2, $3, NOT EXISTS (SELECT 1 FROM users), $4) \
                     RETURNING {ACCOUNT_COLUMNS}"
                ))
                .bind(new.username.as_str())
                .bind(new.password_hash)
                .bind(new.created_at)
                .bind(invite_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "username taken"))?;
                let account = account_from_row(&row)?;
                tx.commit().await?;
                Ok($crate::admin::Registered::Created(account))
            }

            async fn account(
                &self,
                username: &str,
            ) -> Result<Option<$crate::admin::Account>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                Ok(account_in(&mut *conn, username).await?)
            }

            async fn account_by_id(
                &self,
                id: UserId,
            ) -> Result<Option<$crate::admin::Account>, StoreError> {
                let row = sqlx::query(&format!("SELECT {ACCOUNT_COLUMNS} FROM users WHERE id = $1"))
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.as_ref().map(account_from_row).transpose()?)
            }

            async fn accounts(
                &self,
                q: &str,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::admin::Account>, StoreError> {
                let contains = contains_q("username");
                let key = by_bytes("lower(username)");
                let rows = sqlx::query(&format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM users \
                     WHERE ($1 = '' OR {contains}) AND ($2 IS NULL OR {key} > lower($2)) \
                     ORDER BY {key} LIMIT $3"
                ))
                .bind(q)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(account_from_row).collect::<Result<_, _>>()?)
            }

            async fn set_deactivated(
                &self,
                username: &str,
                deactivated: bool,
                audit: &$crate::admin::NewAudit,
            ) -> Result<Option<$crate::admin::Account>, StoreError> {
                let mut tx = self.pool.begin_with(begin_write()).await?;
                let at = audit.at;
                let row = if deactivated {
                    sqlx::query(&format!(
                        "UPDATE users SET deactivated_at = COALESCE(deactivated_at, $1), \
                         revoked_before = $1 WHERE lower(username) = lower($2) \
                         RETURNING {ACCOUNT_COLUMNS}"
                    ))
                    .bind(at)
                    .bind(username)
                    .fetch_optional(&mut *tx)
                    .await?
                } else {
                    sqlx::query(&format!(
                        "UPDATE users SET deactivated_at = NULL \
                         WHERE lower(username) = lower($1) RETURNING {ACCOUNT_COLUMNS}"
                    ))
                    .bind(username)
                    .fetch_optional(&mut *tx)
                    .await?
                };
                let Some(row) = row else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let account = account_from_row(&row)?;
                if deactivated {
                    sqlx::query(
                        "UPDATE refresh_tokens SET revoked_at = $1 \
                         WHERE user_id = $2 AND revoked_at IS NULL",
                    )
                    .bind(at)
                    .bind(account.user.id.0)
                    .execute(&mut *tx)
                    .await?;
                }
                insert_audit(&mut *tx, audit).await?;
                tx.commit().await?;
                Ok(Some(account))
            }

            async fn set_admin_audited(
                &self,
                username: &str,
                admin: bool,
                audit: &$crate::admin::NewAudit,
            ) -> Result<Option<$crate::admin::Account>, StoreError> {
                let mut tx = self.pool.begin_with(begin_write()).await?;
                let row = sqlx::query(&format!(
                    "UPDATE users SET is_admin = $1 WHERE lower(username) = lower($2) \
                     RETURNING {ACCOUNT_COLUMNS}"
                ))
                .bind(admin)
                .bind(username)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let account = account_from_row(&row)?;
                insert_audit(&mut *tx, audit).await?;
                tx.commit().await?;
                Ok(Some(account))
            }

            async fn standings(
                &self,
                since: DateTime<Utc>,
            ) -> Result<Vec<banter_core::Standing>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM users \
                     WHERE deactivated_at IS NOT NULL OR revoked_before > $1"
                ))
                .bind(since)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| Ok(account_from_row(row)?.standing()))
                    .collect()
            }

            async fn create_invite(
                &self,
                invite: &$crate::admin::NewInvite,
                audit: &$crate::admin::NewAudit,
            ) -> Result<$crate::admin::Invite, StoreError> {
                let mut tx = self.pool.begin_with(begin_write()).await?;
                sqlx::query(
                    "INSERT INTO invites (id, code_hash, created_by, created_at, expires_at, uses) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(invite.id)
                .bind(&invite.code_hash)
                .bind(invite.created_by.0)
                .bind(invite.created_at)
                .bind(invite.expires_at)
                .bind(i32::try_from(invite.uses).unwrap_or(i32::MAX))
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "invite code taken"))?;
                insert_audit(&mut *tx, audit).await?;
                let stored = invite_in(&mut *tx, invite.id)
                    .await?
                    .ok_or_else(|| StoreError::Other(sqlx::Error::RowNotFound))?;
                tx.commit().await?;
                Ok(stored)
            }

            async fn invites(&self, limit: u32) -> Result<Vec<$crate::admin::Invite>, StoreError> {
                let rows = sqlx::query(&format!(
                    "{INVITE_SELECT} ORDER BY i.created_at DESC, i.id LIMIT $1"
                ))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(invite_from_row).collect::<Result<_, _>>()?)
            }

            async fn revoke_invite(
                &self,
                id: Uuid,
                audit: &$crate::admin::NewAudit,
            ) -> Result<Option<$crate::admin::Invite>, StoreError> {
                let mut tx = self.pool.begin_with(begin_write()).await?;
                let done = sqlx::query(
                    "UPDATE invites SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
                )
                .bind(audit.at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(None);
                }
                insert_audit(&mut *tx, audit).await?;
                let invite = invite_in(&mut *tx, id).await?;
                tx.commit().await?;
                Ok(invite)
            }

            async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
                let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|r| r.try_get("value")).transpose()?)
            }

            async fn put_setting(
                &self,
                name: &str,
                value: &str,
                audit: &$crate::admin::NewAudit,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_with(begin_write()).await?;
                sqlx::query(
                    "INSERT INTO settings (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )
                .bind(name)
                .bind(value)
                .execute(&mut *tx)
                .await?;
                insert_audit(&mut *tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn record_audit(&self, audit: &$crate::admin::NewAudit) -> Result<(), StoreError> {
                let mut conn = self.pool.acquire().await?;
                insert_audit(&mut *conn, audit).await?;
                Ok(())
            }

            async fn admin_rooms(
                &self,
                q: &str,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::admin::AdminRoom>, StoreError> {
                let (contains, key) = (contains_q("r.name"), by_bytes("r.name"));
                let rows = sqlx::query(&format!(
                    "{ADMIN_ROOM_SELECT} WHERE r.kind <> 'dm' AND ($1 = '' OR {contains}) \
                       AND ($2 IS NULL OR {key} > $2) \
                     ORDER BY {key} LIMIT $3"
                ))
                .bind(q)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(admin_room_from_row)
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }

            async fn admin_room(
                &self,
                name: &RoomName,
            ) -> Result<Option<$crate::admin::AdminRoom>, StoreError> {
                let row = sqlx::query(&format!(
                    "{ADMIN_ROOM_SELECT} WHERE r.kind <> 'dm' AND r.name = $1"
                ))
                .bind(name.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(admin_room_from_row).transpose()?)
            }

            async fn purge_count(
                &self,
                range: &$crate::admin::PurgeRange,
            ) -> Result<u64, StoreError> {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n FROM messages WHERE author_id = $1 \
                     AND deleted_at IS NULL AND ($2 IS NULL OR created_at >= $2) \
                     AND ($3 IS NULL OR created_at < $3)",
                )
                .bind(range.author.0)
                .bind(range.from)
                .bind(range.to)
                .fetch_one(&self.pool)
                .await?;
                Ok(u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0))
            }

            async fn purge_batch(
                &self,
                range: &$crate::admin::PurgeRange,
                after: Option<&$crate::admin::PurgeItem>,
                limit: u32,
            ) -> Result<Vec<$crate::admin::PurgeItem>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, room, created_at FROM messages WHERE author_id = $1 \
                     AND deleted_at IS NULL AND ($2 IS NULL OR created_at >= $2) \
                     AND ($3 IS NULL OR created_at < $3) \
                     AND ($4 IS NULL OR (created_at, id) > ($4, $5)) \
                     ORDER BY created_at, id LIMIT $6",
                )
                .bind(range.author.0)
                .bind(range.from)
                .bind(range.to)
                .bind(after.map(|a| a.created_at))
                .bind(after.map(|a| a.id))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::admin::PurgeItem {
                            id: row.try_get("id")?,
                            room: RoomName::from_stored(row.try_get("room")?),
                            created_at: row.try_get("created_at")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }

            async fn sweep_deleted_room(
                &self,
                limit: u32,
            ) -> Result<Option<(RoomName, u64)>, StoreError> {
                let mut tx = self.pool.begin_with(begin_write()).await?;
                let room: Option<String> = sqlx::query(
                    "SELECT r.name FROM rooms r WHERE r.deleted_at IS NOT NULL \
                     AND EXISTS (SELECT 1 FROM messages m WHERE m.room = r.name) \
                     ORDER BY r.deleted_at, r.name LIMIT 1",
                )
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get("name"))
                .transpose()?;
                let Some(room) = room else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                // The batch ends at a fixed place, so every statement below takes the same
                // messages even if another one reaches the room meanwhile.
                let offset = i64::from(limit.max(1) - 1);
                let mut end = sqlx::query(
                    "SELECT part, seq FROM messages WHERE room = $1 \
                     ORDER BY part, seq LIMIT 1 OFFSET $2",
                )
                .bind(&room)
                .bind(offset)
                .fetch_optional(&mut *tx)
                .await?;
                if end.is_none() {
                    end = sqlx::query(
                        "SELECT part, seq FROM messages WHERE room = $1 \
                         ORDER BY part DESC, seq DESC LIMIT 1",
                    )
                    .bind(&room)
                    .fetch_optional(&mut *tx)
                    .await?;
                }
                let Some(end) = end else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let (part, seq): (i64, i64) = (end.try_get("part")?, end.try_get("seq")?);
                let batch = "SELECT id FROM messages WHERE room = $1 AND (part, seq) <= ($2, $3)";
                for statement in [
                    format!("UPDATE uploads SET removing = TRUE WHERE message_id IN ({batch})"),
                    format!("DELETE FROM reactions WHERE message_id IN ({batch})"),
                    format!("DELETE FROM mentions WHERE message_id IN ({batch})"),
                    format!("DELETE FROM room_events WHERE message_id IN ({batch})"),
                ] {
                    sqlx::query(&statement)
                        .bind(&room)
                        .bind(part)
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?;
                }
                let removed = sqlx::query(
                    "DELETE FROM messages WHERE room = $1 AND (part, seq) <= ($2, $3)",
                )
                .bind(&room)
                .bind(part)
                .bind(seq)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(Some((RoomName::from_stored(room), removed)))
            }

            async fn newest_stored(&self, part: u32) -> Result<Option<u64>, StoreError> {
                // Each MAX is one step down a (part, seq) unique index.
                let row = sqlx::query(
                    "SELECT MAX(s) AS newest FROM ( \
                       SELECT MAX(seq) AS s FROM messages WHERE part = $1 \
                       UNION ALL SELECT MAX(seq) FROM room_events WHERE part = $1 \
                       UNION ALL SELECT MAX(seq) FROM room_changes WHERE part = $1) AS t",
                )
                .bind(i64::from(part))
                .fetch_one(&self.pool)
                .await?;
                Ok(row
                    .try_get::<Option<i64>, _>("newest")?
                    .and_then(|s| u64::try_from(s).ok()))
            }

            async fn audit_log(
                &self,
                before: Option<i64>,
                limit: u32,
            ) -> Result<Vec<$crate::admin::AuditEntry>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, at, actor, action, target, detail, address FROM audit_log \
                     WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
                )
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let detail: String = row.try_get("detail")?;
                        Ok($crate::admin::AuditEntry {
                            id: row.try_get("id")?,
                            at: row.try_get("at")?,
                            actor: row.try_get("actor")?,
                            action: row.try_get("action")?,
                            target: row.try_get("target")?,
                            detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                            address: row.try_get("address")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }
        }
    };
}

pub(crate) use impl_admin;

/// The key of the advisory lock PostgreSQL registrations queue on (any constant: nothing
/// else in banter takes advisory locks but sqlx's migrations, which use their own key).
pub(crate) const REGISTRATION_LOCK: i64 = 0x6261_6e74_6572_0001;
