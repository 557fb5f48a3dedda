//! The queries both backends share, written once.
//!
//! SQLite and PostgreSQL accept the same SQL for everything banter does here (numbered `$n`
//! parameters, `RETURNING`, an index on `lower(username)`), so the [`Store`](crate::Store)
//! methods are expanded into each backend's impl from this one text rather than kept in two
//! copies that could drift apart. What differs (connecting, pragmas, migrations) stays in the
//! backend's own module.

/// Implements `Store` for `$store`, whose `pool` field is a sqlx pool of its engine. The
/// calling module provides `MIGRATOR` (its migrations) and `user_from_row` (its row type).
macro_rules! impl_store {
    ($store:ty, $backend:expr) => {
    #[async_trait::async_trait]
    impl Store for $store {
        fn backend(&self) -> Backend {
            $backend
        }

        async fn migrate(&self) -> Result<(), StoreError> {
            MIGRATOR.run(&self.pool).await?;
            Ok(())
        }

        async fn ping(&self) -> Result<(), StoreError> {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        }

        fn pool_stats(&self) -> PoolStats {
            PoolStats {
                size: self.pool.size(),
                idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            }
        }

        async fn close(&self) {
            self.pool.close().await;
        }

        async fn create_user(
            &self,
            username: &Username,
            password_hash: &str,
            created_at: DateTime<Utc>,
        ) -> Result<User, StoreError> {
            let row = sqlx::query(
                "INSERT INTO users (username, password, created_at) VALUES ($1, $2, $3) \
                 RETURNING id, username, created_at",
            )
            .bind(username.as_str())
            .bind(password_hash)
            .bind(created_at)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "username taken"))?;
            Ok(user_from_row(&row)?)
        }

        async fn credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError> {
            let row = sqlx::query(
                "SELECT id, username, created_at, password FROM users \
                 WHERE lower(username) = lower($1)",
            )
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|row| {
                Ok(Credentials {
                    user: user_from_row(&row)?,
                    password_hash: row.try_get("password")?,
                })
            })
            .transpose()
        }

        async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
            let row = sqlx::query("SELECT id, username, created_at FROM users WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.as_ref().map(user_from_row).transpose()?)
        }

        async fn insert_refresh_token(&self, t: &NewRefreshToken) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO refresh_tokens (id, token_hash, user_id, family_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(t.id)
            .bind(&t.token_hash)
            .bind(t.user_id.0)
            .bind(t.family_id)
            .bind(t.created_at)
            .bind(t.expires_at)
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn rotate_refresh_token(
            &self,
            presented: &[u8],
            next: &NewRefreshToken,
            now: DateTime<Utc>,
        ) -> Result<Rotation, StoreError> {
            let mut tx = self.pool.begin().await?;
            // Write first: the UPDATE takes PostgreSQL's row lock, or SQLite's write lock, at
            // once, so two concurrent rotations of one token queue up and the second finds it
            // used, which is a replay. (Reading first would let both see it live.)
            let live = sqlx::query(
                "UPDATE refresh_tokens SET used_at = $1 \
                 WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL \
                 RETURNING user_id, family_id, expires_at",
            )
            .bind(now)
            .bind(presented)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = live {
                let expires_at: DateTime<Utc> = row.try_get("expires_at")?;
                if expires_at <= now {
                    tx.rollback().await?;
                    return Ok(Rotation::Invalid);
                }
                let user_id: i64 = row.try_get("user_id")?;
                let family_id: Uuid = row.try_get("family_id")?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (id, token_hash, user_id, family_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(next.id)
                .bind(&next.token_hash)
                .bind(user_id)
                .bind(family_id)
                .bind(next.created_at)
                .bind(next.expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(Rotation::Rotated {
                    user_id: UserId(user_id),
                });
            }
            let used = sqlx::query(
                "SELECT family_id FROM refresh_tokens \
                 WHERE token_hash = $1 AND used_at IS NOT NULL AND revoked_at IS NULL",
            )
            .bind(presented)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = used else {
                tx.rollback().await?;
                return Ok(Rotation::Invalid);
            };
            let family_id: Uuid = row.try_get("family_id")?;
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(family_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Rotation::Reused)
        }

        async fn revoke_refresh_family(
            &self,
            presented: &[u8],
            user: UserId,
            now: DateTime<Utc>,
        ) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 \
                 WHERE revoked_at IS NULL AND family_id IN ( \
                   SELECT family_id FROM refresh_tokens \
                   WHERE token_hash = $2 AND user_id = $3 AND used_at IS NULL AND revoked_at IS NULL)",
            )
            .bind(now)
            .bind(presented)
            .bind(user.0)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        }
    }
    };
}

pub(crate) use impl_store;
