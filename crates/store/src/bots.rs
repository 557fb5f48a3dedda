//! Bots and incoming webhooks as the store keeps them: a bot is an account marked as one
//! (its name from the users' space, no password that can log in), with a long-lived token kept
//! as its SHA-256 digest and, optionally, the rooms it may use; an incoming webhook is a secret
//! (kept as its digest) that lets whoever holds its URL post to one room as its own bot; an
//! outgoing webhook is a URL a room's new messages are sent to, signed with a secret kept as
//! it is (signing needs it), whose answers its own bot posts back.
//!
//! These are the server's own records, like invites: written here directly, each in one
//! transaction with its audit entry. What a bot then does in a room (being added, posting)
//! is a room change like anyone's and goes through the room's log.

use async_trait::async_trait;
use banter_core::{RoomName, User, UserId, Username};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Account, NewAudit, StoreError};

/// What a bot's `password` column holds: no PHC string, so no password logs in as it.
pub const NO_PASSWORD: &str = "!bot";

/// A bot about to be made.
#[derive(Debug, Clone)]
pub struct NewBot<'a> {
    pub name: &'a Username,
    /// SHA-256 of its token (shown once); `None` for a webhook's bot, which has none.
    pub token_hash: Option<Vec<u8>>,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    /// The rooms it may use; `None`: any room a member may.
    pub rooms: Option<Vec<RoomName>>,
}

/// A bot as the bots API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bot {
    pub user: User,
    pub created_by: Username,
    pub created_at: DateTime<Utc>,
    pub rooms: Option<Vec<RoomName>>,
    /// Its token is live (not revoked; a webhook's bot never has one).
    pub has_token: bool,
    /// Revoked (its account deactivated with its token).
    pub revoked: bool,
}

/// Who a live bot token belongs to, and where it may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotLogin {
    pub user: User,
    pub rooms: Option<Vec<RoomName>>,
}

/// An incoming webhook about to be made, with its bot (limited to the webhook's room).
#[derive(Debug, Clone)]
pub struct NewWebhook<'a> {
    pub id: Uuid,
    pub room: RoomName,
    pub bot: &'a Username,
    /// SHA-256 of the secret in its URL (shown once).
    pub secret_hash: Vec<u8>,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
}

/// An incoming webhook (without its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: Uuid,
    pub room: RoomName,
    pub bot: User,
    pub created_by: UserId,
    pub created_by_name: Username,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An outgoing webhook about to be made, with its bot (limited to the webhook's room).
#[derive(Debug, Clone)]
pub struct NewOutgoing<'a> {
    pub id: Uuid,
    pub room: RoomName,
    pub bot: &'a Username,
    pub url: String,
    /// Only messages that start with this word are sent (all: `None`).
    pub trigger: Option<String>,
    /// What deliveries are signed with (HMAC-SHA256): kept as it is, since signing needs it.
    pub secret: String,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
}

/// An outgoing webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub id: Uuid,
    pub room: RoomName,
    pub bot: User,
    pub url: String,
    pub trigger: Option<String>,
    pub secret: String,
    pub created_by: UserId,
    pub created_by_name: Username,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The storage of bots and webhooks. Every method is one transaction.
#[async_trait]
pub trait Bots: Send + Sync {
    /// Makes a bot account, with `audit`. `Conflict` when its name is taken.
    async fn create_bot(&self, bot: &NewBot<'_>, audit: &NewAudit) -> Result<Bot, StoreError>;

    /// Every bot with a token (revoked ones too), by name. Webhooks' bots are listed with
    /// their webhooks.
    async fn bots(&self) -> Result<Vec<Bot>, StoreError>;

    /// The ids of every bot account (webhooks' too): few, for marking members as bots.
    async fn bot_ids(&self) -> Result<Vec<UserId>, StoreError>;

    /// The live bot whose token has this digest.
    async fn bot_login(&self, token_hash: &[u8]) -> Result<Option<BotLogin>, StoreError>;

    /// Revokes a bot: its token forgotten, its account deactivated (so its sockets close and
    /// its access is refused everywhere, like a deactivated user's), with `audit`. `None`: no
    /// such bot.
    async fn revoke_bot(&self, name: &str, audit: &NewAudit)
        -> Result<Option<Account>, StoreError>;

    /// Makes a webhook and its bot, with `audit`. `Conflict` when the bot's name is taken.
    async fn create_webhook(
        &self,
        hook: &NewWebhook<'_>,
        audit: &NewAudit,
    ) -> Result<Webhook, StoreError>;

    /// The live webhooks of `room` (of every room: `None`), oldest first.
    async fn webhooks(&self, room: Option<&RoomName>) -> Result<Vec<Webhook>, StoreError>;

    async fn webhook(&self, id: Uuid) -> Result<Option<Webhook>, StoreError>;

    /// The live webhook whose secret has this digest.
    async fn webhook_by_secret(&self, secret_hash: &[u8]) -> Result<Option<Webhook>, StoreError>;

    /// Revokes a webhook (already revoked: unchanged) and deactivates its bot, with `audit`.
    /// `None`: no such webhook.
    async fn revoke_webhook(
        &self,
        id: Uuid,
        audit: &NewAudit,
    ) -> Result<Option<Webhook>, StoreError>;

    /// Makes an outgoing webhook and its bot, with `audit`. `Conflict` when the bot's name is
    /// taken.
    async fn create_outgoing(
        &self,
        hook: &NewOutgoing<'_>,
        audit: &NewAudit,
    ) -> Result<Outgoing, StoreError>;

    /// The live outgoing webhooks of `room`, oldest first.
    async fn outgoing_of(&self, room: &RoomName) -> Result<Vec<Outgoing>, StoreError>;

    async fn outgoing(&self, id: Uuid) -> Result<Option<Outgoing>, StoreError>;

    /// Revokes an outgoing webhook and deactivates its bot, with `audit`. `None`: no such one.
    async fn revoke_outgoing(
        &self,
        id: Uuid,
        audit: &NewAudit,
    ) -> Result<Option<Outgoing>, StoreError>;
}

/// Room names as the `bots.rooms` column keeps them.
pub(crate) fn rooms_text(rooms: &Option<Vec<RoomName>>) -> Option<String> {
    rooms.as_ref().map(|rooms| {
        rooms
            .iter()
            .map(RoomName::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    })
}

pub(crate) fn rooms_of(text: Option<String>) -> Option<Vec<RoomName>> {
    text.map(|t| {
        t.split_whitespace()
            .map(|r| RoomName::from_stored(r.to_owned()))
            .collect()
    })
}

/// Implements [`Bots`] for `$store` (see `admin::impl_admin`, whose helpers it uses).
macro_rules! impl_bots {
    ($store:ty, $backend:expr, $row:ty, $conn:ty) => {
        const BOT_SELECT: &str = "SELECT u.id, u.username, u.created_at, \
             b.created_at AS made_at, c.username AS maker, b.rooms, \
             b.token_hash IS NOT NULL AS has_token, u.deactivated_at IS NOT NULL AS revoked \
             FROM bots b JOIN users u ON u.id = b.user_id JOIN users c ON c.id = b.created_by";

        fn bot_from_row(row: &$row) -> Result<$crate::bots::Bot, sqlx::Error> {
            Ok($crate::bots::Bot {
                user: user_from_row(row)?,
                created_by: Username::from_stored(row.try_get("maker")?),
                created_at: row.try_get("made_at")?,
                rooms: $crate::bots::rooms_of(row.try_get("rooms")?),
                has_token: row.try_get("has_token")?,
                revoked: row.try_get("revoked")?,
            })
        }

        const WEBHOOK_SELECT: &str = "SELECT w.id AS hook_id, w.room AS hook_room, \
             w.created_by AS maker_id, c.username AS maker, w.created_at AS made_at, \
             w.revoked_at, u.id, u.username, u.created_at \
             FROM webhooks w JOIN users u ON u.id = w.bot_id JOIN users c ON c.id = w.created_by";

        fn webhook_from_row(row: &$row) -> Result<$crate::bots::Webhook, sqlx::Error> {
            Ok($crate::bots::Webhook {
                id: row.try_get("hook_id")?,
                room: RoomName::from_stored(row.try_get("hook_room")?),
                bot: user_from_row(row)?,
                created_by: UserId(row.try_get("maker_id")?),
                created_by_name: Username::from_stored(row.try_get("maker")?),
                created_at: row.try_get("made_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        }

        const OUTGOING_SELECT: &str = "SELECT w.id AS hook_id, w.room AS hook_room, w.url, \
             w.trigger, w.secret, w.created_by AS maker_id, c.username AS maker, \
             w.created_at AS made_at, w.revoked_at, u.id, u.username, u.created_at \
             FROM outgoing_webhooks w JOIN users u ON u.id = w.bot_id \
             JOIN users c ON c.id = w.created_by";

        fn outgoing_from_row(row: &$row) -> Result<$crate::bots::Outgoing, sqlx::Error> {
            Ok($crate::bots::Outgoing {
                id: row.try_get("hook_id")?,
                room: RoomName::from_stored(row.try_get("hook_room")?),
                bot: user_from_row(row)?,
                url: row.try_get("url")?,
                trigger: row.try_get("trigger")?,
                secret: row.try_get("secret")?,
                created_by: UserId(row.try_get("maker_id")?),
                created_by_name: Username::from_stored(row.try_get("maker")?),
                created_at: row.try_get("made_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        }

        /// Deactivates a webhook's bot, in `conn`.
        async fn deactivate_bot(
            conn: &mut $conn,
            bot_id: i64,
            at: DateTime<Utc>,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(
                "UPDATE users SET deactivated_at = COALESCE(deactivated_at, $1), \
                 revoked_before = $1 WHERE id = $2",
            )
            .bind(at)
            .bind(bot_id)
            .execute(conn)
            .await?;
            Ok(())
        }

        /// Makes the account and the `bots` row of a bot, in `tx`.
        async fn insert_bot(
            conn: &mut $conn,
            bot: &$crate::bots::NewBot<'_>,
        ) -> Result<UserId, StoreError> {
            let row = sqlx::query(
                "INSERT INTO users (username, password, created_at, is_admin, is_bot) \
                 VALUES ($1, $2, $3, FALSE, TRUE) RETURNING id",
            )
            .bind(bot.name.as_str())
            .bind($crate::bots::NO_PASSWORD)
            .bind(bot.created_at)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "username taken"))?;
            let id = UserId(row.try_get("id")?);
            sqlx::query(
                "INSERT INTO bots (user_id, token_hash, created_by, created_at, rooms) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id.0)
            .bind(bot.token_hash.as_deref())
            .bind(bot.created_by.0)
            .bind(bot.created_at)
            .bind($crate::bots::rooms_text(&bot.rooms))
            .execute(&mut *conn)
            .await?;
            Ok(id)
        }

        #[async_trait::async_trait]
        impl $crate::bots::Bots for $store {
            async fn create_bot(
                &self,
                bot: &$crate::bots::NewBot<'_>,
                audit: &$crate::admin::NewAudit,
            ) -> Result<$crate::bots::Bot, StoreError> {
                let mut tx = self.pool.begin_with(begin_write()).await?;
                let id = insert_bot(&mut *tx, bot).await?;
                insert_audit(&mut *tx, audit).await?;
                let row = sqlx::query(&format!("{BOT_SELECT} WHERE b.user_id = $1"))
                    .bind(id.0)
                    .fetch_one(&mut *tx)
                    .await?;
                let made = bot_from_row(&row)?;
                tx.commit().await?;
                Ok(made)
            }

            async fn bots(&self) -> Result<Vec<$crate::bots::Bot>, StoreError> {
                let key = by_bytes("lower(u.username)");
                let rows = sqlx::query(&format!(
                    "{BOT_SELECT} WHERE NOT EXISTS \
                       (SELECT 1 FROM webhooks w WHERE w.bot_id = b.user_id) \
                     AND NOT EXISTS \
                       (SELECT 1 FROM outgoing_webhooks o WHERE o.bot_id = b.user_id) \
                     ORDER BY {key}"
                ))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(bot_from_row).collect::<Result<_, _>>()?)
            }

            async fn bot_ids(&self) -> Result<Vec<UserId>, StoreError> {
                let rows = sqlx::query("SELECT user_id FROM bots")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok(UserId(r.try_get("user_id")?)))
                    .collect()
            }

            async fn bot_login(
                &self,
                token_hash: &[u8],
            ) -> Result<Option<$crate::bots::BotLogin>, StoreError> {
                let row = sqlx::query(
                    "SELECT u.id, u.username, u.created_at, b.rooms \
                     FROM bots b JOIN users u ON u.id = b.user_id \
                     WHERE b.token_hash = $1 AND u.deactivated_at IS NULL",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some($crate::bots::BotLogin {
                    user: user_from_row(&row)?,
                    rooms: $crate::bots::rooms_of(row.try_get("rooms")?),
                }))
            }

            async fn revoke_bot(
                &self,
                name: &str,
                audit: &$crate::admin::NewAudit,
            ) -> Result<Option<$crate::admin::Account>, StoreError> {
                let mut tx = self.pool.begin_with(begin_write()).await?;
                let row = sqlx::query(&format!(
                    "UPDATE users SET deactivated_at = COALESCE(deactivated_at, $1), \
                     revoked_before = $1 \
                     WHERE lower(username) = lower($2) AND is_bot \
                     RETURNING {ACCOUNT_COLUMNS}"
                ))
                .bind(audit.at)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let account = account_from_row(&row)?;
                sqlx::query("UPDATE bots SET token_hash = NULL WHERE user_id = $1")
                    .bind(account.user.id.0)
                    .execute(&mut *tx)
                    .await?;
                insert_audit(&mut *tx, audit).await?;
                tx.commit().await?;
                Ok(Some(account))
            }

            async fn create_webhook(
                &self,
                hook: &$crate::bots::NewWebhook<'_>,
                audit: &$crate::admin::NewAudit,
            ) -> Result<$crate::bots::Webhook, StoreError> {
                let mut tx = self.pool.begin_with(begin_write()).await?;
                let bot = $crate::bots::NewBot {
                    name: hook.bot,
                    token_hash: None,
                    created_by: hook.created_by,
                    created_at: hook.created_at,
                    rooms: Some(vec![hook.room.clone()]),
                };
                let bot_id = insert_bot(&mut *tx, &bot).await?;
                sqlx::query(
                    "INSERT INTO webhooks (id, room, bot_id, secret_hash, created_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(hook.id)
                .bind(hook.room.as_str())
                .bind(bot_id.0)
                .bind(&hook.secret_hash)
                .bind(hook.created_by.0)
                .bind(hook.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "webhook secret taken"))?;
                insert_audit(&mut *tx, audit).await?;
                let row = sqlx::query(&format!("{WEBHOOK_SELECT} WHERE w.id = $1"))
                    .bind(hook.id)
                    .fetch_one(&mut *tx)
                    .await?;
                let made = webhook_from_row(&row)?;
                tx.commit().await?;
                Ok(made)
            }

            async fn webhooks(
                &self,
                room: Option<&RoomName>,
            ) -> Result<Vec<$crate::bots::Webhook>, StoreError> {
                let rows = sqlx::query(&format!(
                    "{WEBHOOK_SELECT} WHERE w.revoked_at IS NULL AND ($1 IS NULL OR w.room = $1) \
                     ORDER BY w.created_at, w.id"
                ))
                .bind(room.map(RoomName::as_str))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(webhook_from_row).collect::<Result<_, _>>()?)
            }

            async fn webhook(
                &self,
                id: Uuid,
            ) -> Result<Option<$crate::bots::Webhook>, StoreError> {
                let row = sqlx::query(&format!("{WEBHOOK_SELECT} WHERE w.id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.as_ref().map(webhook_from_row).transpose()?)
            }

            async fn webhook_by_secret(
                &self,
                secret_hash: &[u8],
            ) -> Result<Option<$crate::bots::Webhook>, StoreError> {
                let row = sqlx::query(&format!(
                    "{WEBHOOK_SELECT} WHERE w.secret_hash = $1 AND w.revoked_at IS NULL"
                ))
                .bind(secret_hash)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(webhook_from_row).transpose()?)
            }

            async fn revoke_webhook(
                &self,
                id: Uuid,
                audit: &$crate::admin::NewAudit,
            ) -> Result<Option<$crate::bots::Webhook>, StoreError> {
                let mut tx = self.pool.begin_with(begin_write()).await?;
                let row = sqlx::query(
                    "UPDATE webhooks SET revoked_at = COALESCE(revoked_at, $1) \
                     WHERE id = $2 RETURNING bot_id",
                )
                .bind(audit.at)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                deactivate_bot(&mut *tx, row.try_get::<i64, _>("bot_id")?, audit.at).await?;
                insert_audit(&mut *tx, audit).await?;
                let row = sqlx::query(&format!("{WEBHOOK_SELECT} WHERE w.id = $1"))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let hook = webhook_from_row(&row)?;
                tx.commit().await?;
                Ok(Some(hook))
            }

            async fn create_outgoing(
                &self,
                hook: &$crate::bots::NewOutgoing<'_>,
                audit: &$crate::admin::NewAudit,
            ) -> Result<$crate::bots::Outgoing, StoreError> {
                let mut tx = self.pool.begin_with(begin_write()).await?;
                let bot = $crate::bots::NewBot {
                    name: hook.bot,
                    token_hash: None,
                    created_by: hook.created_by,
                    created_at: hook.created_at,
                    rooms: Some(vec![hook.room.clone()]),
                };
                let bot_id = insert_bot(&mut *tx, &bot).await?;
                sqlx::query(
                    "INSERT INTO outgoing_webhooks \
                     (id, room, bot_id, url, trigger, secret, created_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(hook.id)
                .bind(hook.room.as_str())
                .bind(bot_id.0)
                .bind(&hook.url)
                .bind(&hook.trigger)
                .bind(&hook.secret)
                .bind(hook.created_by.0)
                .bind(hook.created_at)
                .execute(&mut *tx)
                .await?;
                insert_audit(&mut *tx, audit).await?;
                let row = sqlx::query(&format!("{OUTGOING_SELECT} WHERE w.id = $1"))
                    .bind(hook.id)
                    .fetch_one(&mut *tx)
                    .await?;
                let made = outgoing_from_row(&row)?;
                tx.commit().await?;
                Ok(made)
            }

            async fn outgoing_of(
                &self,
                room: &RoomName,
            ) -> Result<Vec<$crate::bots::Outgoing>, StoreError> {
                let rows = sqlx::query(&format!(
                    "{OUTGOING_SELECT} WHERE w.room = $1 AND w.revoked_at IS NULL \
                     ORDER BY w.created_at, w.id"
                ))
                .bind(room.as_str())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(outgoing_from_row).collect::<Result<_, _>>()?)
            }

            async fn outgoing(
                &self,
                id: Uuid,
            ) -> Result<Option<$crate::bots::Outgoing>, StoreError> {
                let row = sqlx::query(&format!("{OUTGOING_SELECT} WHERE w.id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.as_ref().map(outgoing_from_row).transpose()?)
            }

            async fn revoke_outgoing(
                &self,
                id: Uuid,
                audit: &$crate::admin::NewAudit,
            ) -> Result<Option<$crate::bots::Outgoing>, StoreError> {
                let mut tx = self.pool.begin_with(begin_write()).await?;
                let row = sqlx::query(
                    "UPDATE outgoing_webhooks SET revoked_at = COALESCE(revoked_at, $1) \
                     WHERE id = $2 RETURNING bot_id",
                )
                .bind(audit.at)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                deactivate_bot(&mut *tx, row.try_get::<i64, _>("bot_id")?, audit.at).await?;
                insert_audit(&mut *tx, audit).await?;
                let row = sqlx::query(&format!("{OUTGOING_SELECT} WHERE w.id = $1"))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let hook = outgoing_from_row(&row)?;
                tx.commit().await?;
                Ok(Some(hook))
            }
        }
    };
}

pub(crate) use impl_bots;
