//! The queries both backends share, written once.
//!
//! SQLite and PostgreSQL accept the same SQL for everything banter does here (numbered `$n`
//! parameters, `RETURNING`, an index on `lower(username)`), so the [`Store`](crate::Store)
//! methods are expanded into each backend's impl from this one text rather than kept in two
//! copies that could drift apart. What differs (connecting, pragmas, migrations) stays in the
//! backend's own module.

/// Implements `Store` for `$store`, whose `pool` field is a sqlx pool of its engine, whose rows
/// are `$row`. The calling module provides `MIGRATOR` (its migrations).
macro_rules! impl_store {
    ($store:ty, $backend:expr, $row:ty) => {
    fn user_from_row(row: &$row) -> Result<User, sqlx::Error> {
        Ok(User {
            id: UserId(row.try_get("id")?),
            username: Username::from_stored(row.try_get("username")?),
            created_at: row.try_get("created_at")?,
        })
    }

    /// How a transaction that writes begins. On SQLite it takes the write lock at once
    /// (`IMMEDIATE`), so that the busy timeout queues it behind other writers: a deferred one
    /// that reads first cannot upgrade once another connection has written, and fails with
    /// "database is locked" at once.
    fn begin_write() -> &'static str {
        match $backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    const MESSAGE_COLUMNS: &str =
        "id, part, seq, room, author, body, created_at, client_id";

    fn message_from_row(row: &$row) -> Result<Message, sqlx::Error> {
        let room: String = row.try_get("room")?;
        let part: i64 = row.try_get("part")?;
        let seq: i64 = row.try_get("seq")?;
        let cursor = match (u32::try_from(part), u64::try_from(seq)) {
            (Ok(p), Ok(s)) => Cursor::new(p, s),
            _ => return Err(sqlx::Error::Decode(format!("bad cursor {part}/{seq}").into())),
        };
        Ok(Message {
            id: row.try_get("id")?,
            room: RoomName::from_stored(room),
            author: Username::from_stored(row.try_get("author")?),
            body: row.try_get("body")?,
            created_at: row.try_get("created_at")?,
            cursor,
            client_id: row
                .try_get::<Option<String>, _>("client_id")?
                .map(ClientId::from_stored),
        })
    }

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
            let mut tx = self.pool.begin_with(begin_write()).await?;
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

        async fn is_admin(&self, id: UserId) -> Result<bool, StoreError> {
            let row = sqlx::query("SELECT is_admin FROM users WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?;
            Ok(match row {
                Some(row) => row.try_get("is_admin")?,
                None => false,
            })
        }

        async fn set_admin(&self, username: &str, admin: bool) -> Result<bool, StoreError> {
            let done = sqlx::query("UPDATE users SET is_admin = $1 WHERE lower(username) = lower($2)")
                .bind(admin)
                .bind(username)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() > 0)
        }

        async fn append_messages(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
            let mut tx = self.pool.begin_with(begin_write()).await?;
            let mut out = Vec::with_capacity(batch.len());
            for m in batch {
                if let Some(client_id) = &m.client_id {
                    let first = sqlx::query(&format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE author_id = $1 AND client_id = $2"
                    ))
                    .bind(m.author_id.0)
                    .bind(client_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(row) = first {
                        out.push(Appended::Duplicate(message_from_row(&row)?));
                        continue;
                    }
                }
                // One counter row hands out the local log's offsets; the transaction holds its
                // lock, so offsets are given in commit order.
                let seq: i64 = sqlx::query(
                    "UPDATE counters SET value = value + 1 WHERE name = 'messages' RETURNING value",
                )
                .fetch_one(&mut *tx)
                .await?
                .try_get("value")?;
                sqlx::query(
                    "INSERT INTO messages \
                     (id, part, seq, room, author_id, author, body, created_at, client_id) \
                     VALUES ($1, 0, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(m.id)
                .bind(seq)
                .bind(m.room.as_str())
                .bind(m.author_id.0)
                .bind(m.author.as_str())
                .bind(&m.body)
                .bind(m.created_at)
                .bind(m.client_id.as_ref().map(ClientId::as_str))
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "message id taken"))?;
                let seq = u64::try_from(seq).map_err(|_| StoreError::Other(sqlx::Error::Decode("negative offset".into())))?;
                out.push(Appended::New(m.at(Cursor::new(0, seq))));
            }
            tx.commit().await?;
            Ok(out)
        }

        async fn insert_logged(&self, batch: &[LoggedMessage]) -> Result<u64, StoreError> {
            // Each engine has its own way to write many rows fast (see the backend modules).
            self.insert_logged_batch(batch).await
        }

        async fn messages_after(
            &self,
            room: &RoomName,
            after: Option<Cursor>,
            limit: u32,
        ) -> Result<Vec<Message>, StoreError> {
            let (part, seq) = after.map_or((-1, -1), cursor_values);
            let rows = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages \
                 WHERE room = $1 AND deleted_at IS NULL AND (part, seq) > ($2, $3) \
                 ORDER BY part, seq LIMIT $4"
            ))
            .bind(room.as_str())
            .bind(part)
            .bind(seq)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.iter().map(message_from_row).collect::<Result<_, _>>()?)
        }

        async fn messages_before(
            &self,
            room: &RoomName,
            before: Option<Cursor>,
            limit: u32,
        ) -> Result<Vec<Message>, StoreError> {
            let (part, seq) = before.map_or((i64::MAX, i64::MAX), cursor_values);
            let rows = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages \
                 WHERE room = $1 AND deleted_at IS NULL AND (part, seq) < ($2, $3) \
                 ORDER BY part DESC, seq DESC LIMIT $4"
            ))
            .bind(room.as_str())
            .bind(part)
            .bind(seq)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            let mut page: Vec<Message> = rows.iter().map(message_from_row).collect::<Result<_, _>>()?;
            page.reverse();
            Ok(page)
        }

        async fn latest_cursor(&self, room: &RoomName) -> Result<Option<Cursor>, StoreError> {
            let row = sqlx::query(
                "SELECT part, seq FROM messages WHERE room = $1 ORDER BY part DESC, seq DESC LIMIT 1",
            )
            .bind(room.as_str())
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let (part, seq): (i64, i64) = (row.try_get("part")?, row.try_get("seq")?);
            match (u32::try_from(part), u64::try_from(seq)) {
                (Ok(p), Ok(s)) => Ok(Some(Cursor::new(p, s))),
                _ => Err(StoreError::Other(sqlx::Error::Decode("bad cursor".into()))),
            }
        }

        async fn message_by_client_id(
            &self,
            author: UserId,
            client_id: &ClientId,
        ) -> Result<Option<Message>, StoreError> {
            let row = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE author_id = $1 AND client_id = $2"
            ))
            .bind(author.0)
            .bind(client_id.as_str())
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.as_ref().map(message_from_row).transpose()?)
        }

        async fn message(&self, id: uuid::Uuid) -> Result<Option<Message>, StoreError> {
            let row = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND deleted_at IS NULL"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.as_ref().map(message_from_row).transpose()?)
        }

        async fn delete_message(&self, id: uuid::Uuid, now: DateTime<Utc>) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE messages SET deleted_at = $1, body = '' WHERE id = $2 AND deleted_at IS NULL",
            )
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        }

        async fn rooms(&self, limit: u32) -> Result<Vec<RoomSummary>, StoreError> {
            let rows = sqlx::query(
                "SELECT room, MAX(created_at) AS last_message_at FROM messages \
                 WHERE deleted_at IS NULL GROUP BY room ORDER BY last_message_at DESC LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(RoomSummary {
                        room: RoomName::from_stored(row.try_get("room")?),
                        last_message_at: row.try_get("last_message_at")?,
                    })
                })
                .collect()
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

/// A cursor as the two integer columns that hold it.
pub(crate) fn cursor_values(c: banter_core::Cursor) -> (i64, i64) {
    (
        i64::from(c.partition),
        i64::try_from(c.offset).unwrap_or(i64::MAX),
    )
}
