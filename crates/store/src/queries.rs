//! The queries both backends share, written once.
//!
//! SQLite and PostgreSQL accept the same SQL for everything banter does here (numbered `$n`
//! parameters, `RETURNING`, `ON CONFLICT`, row values, an index on `lower(username)`), so the
//! [`Store`](crate::Store) methods — and the projection of room events, `apply_change` — are
//! expanded into each backend's impl from this one text rather than kept in two copies that
//! could drift apart. What differs (connecting, pragmas, migrations, and statements over many
//! rows at once: `insert_messages` and `client_ids_taken`, a `VALUES` list on SQLite, arrays
//! and `UNNEST` on PostgreSQL) is plain code in the backend's own module.

/// Implements `Store` for `$store`, whose `pool` field is a sqlx pool of its engine, whose rows
/// are `$row`, whose connections are `$conn`. The calling module provides `MIGRATOR` (its
/// migrations), `Self::insert_messages` (its way to write a run of messages) and
/// `Self::client_ids_taken` (its way to ask about many client ids at once).
macro_rules! impl_store {
    ($store:ty, $backend:expr, $row:ty, $conn:ty) => {
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

    const MESSAGE_COLUMNS: &str = "id, part, seq, room, author_id, author, body, created_at, \
         client_id, reply_to, thread_root, edited_at, mentions, attachments, bot";

    fn attachments_of(row: &$row) -> Result<Vec<Attachment>, sqlx::Error> {
        attachments_from_json(row.try_get::<Option<String>, _>("attachments")?.as_deref())
            .map_err(|e| sqlx::Error::Decode(format!("a message's attachments: {e}").into()))
    }

    fn upload_from_row(row: &$row) -> Result<Upload, sqlx::Error> {
        let dimension = |name: &str| -> Result<Option<u32>, sqlx::Error> {
            Ok(row
                .try_get::<Option<i32>, _>(name)?
                .and_then(|v| u32::try_from(v).ok()))
        };
        let message: Option<Uuid> = row.try_get("message_id")?;
        let room: Option<String> = row.try_get("room")?;
        Ok(Upload {
            uploader: UserId(row.try_get("uploader_id")?),
            file: Attachment {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                size: u64::try_from(row.try_get::<i64, _>("size")?).unwrap_or(0),
                content_type: row.try_get("content_type")?,
                width: dimension("width")?,
                height: dimension("height")?,
                thumbnail: row.try_get("thumbnail")?,
            },
            created_at: row.try_get("created_at")?,
            message: message.zip(room.map(RoomName::from_stored)),
            removing: row.try_get("removing")?,
        })
    }

    fn mentions_of(row: &$row) -> Result<Vec<Username>, sqlx::Error> {
        Ok(row
            .try_get::<Option<String>, _>("mentions")?
            .unwrap_or_default()
            .split_whitespace()
            .map(|n| Username::from_stored(n.to_owned()))
            .collect())
    }

    fn cursor_of(part: i64, seq: i64) -> Result<Cursor, sqlx::Error> {
        match (u32::try_from(part), u64::try_from(seq)) {
            (Ok(p), Ok(s)) => Ok(Cursor::new(p, s)),
            _ => Err(sqlx::Error::Decode(format!("bad cursor {part}/{seq}").into())),
        }
    }

    fn new_message_from_row(row: &$row) -> Result<(NewMessage, Cursor), sqlx::Error> {
        let cursor = cursor_of(row.try_get("part")?, row.try_get("seq")?)?;
        let message = NewMessage {
            id: row.try_get("id")?,
            room: RoomName::from_stored(row.try_get("room")?),
            author_id: UserId(row.try_get("author_id")?),
            author: Username::from_stored(row.try_get("author")?),
            body: row.try_get("body")?,
            created_at: row.try_get("created_at")?,
            client_id: row
                .try_get::<Option<String>, _>("client_id")?
                .map(ClientId::from_stored),
            reply_to: row.try_get("reply_to")?,
            thread_root: row.try_get("thread_root")?,
            mentions: mentions_of(row)?,
            attachments: attachments_of(row)?,
            bot: row.try_get::<Option<String>, _>("bot")?.map(|label| {
                BotPost::new((!label.is_empty()).then(|| BotLabel::from_stored(label)))
            }),
        };
        Ok((message, cursor))
    }

    fn message_from_row(row: &$row) -> Result<Message, sqlx::Error> {
        let (message, cursor) = new_message_from_row(row)?;
        Ok(message.at(cursor))
    }

    /// A message row with its `reply_count` column; reactions are added by [`decorate`].
    fn stored_from_row(row: &$row) -> Result<StoredMessage, sqlx::Error> {
        let m = message_from_row(row)?;
        Ok(StoredMessage {
            id: m.id,
            room: m.room,
            author: m.author,
            body: m.body,
            created_at: m.created_at,
            cursor: m.cursor,
            client_id: m.client_id,
            reply_to: m.reply_to,
            thread_root: m.thread_root,
            mentions: m.mentions,
            attachments: m.attachments,
            edited_at: row.try_get("edited_at")?,
            reactions: Vec::new(),
            reply_count: u32::try_from(row.try_get::<i64, _>("reply_count")?).unwrap_or(u32::MAX),
            bot: m.bot,
        })
    }

    /// The columns of a stored message, with its replies counted from their rows.
    fn stored_columns() -> String {
        format!(
            "{MESSAGE_COLUMNS}, (SELECT COUNT(*) FROM messages r \
             WHERE r.thread_root = messages.id AND r.deleted_at IS NULL) AS reply_count"
        )
    }

    const EVENT_COLUMNS: &str = "id, part, seq, room, kind, message_id, user_id, username, body, \
         emoji, created_at, client_id";

    fn change_from_row(row: &$row) -> Result<LoggedEvent, sqlx::Error> {
        let kind: String = row.try_get("kind")?;
        let emoji = || -> Result<Emoji, sqlx::Error> {
            Ok(Emoji::from_stored(
                row.try_get::<Option<String>, _>("emoji")?.unwrap_or_default(),
            ))
        };
        let change = match kind.as_str() {
            "edit" => Change::Edit {
                body: row.try_get::<Option<String>, _>("body")?.unwrap_or_default(),
            },
            "delete" => Change::Delete,
            "react" => Change::React { emoji: emoji()? },
            "unreact" => Change::Unreact { emoji: emoji()? },
            other => return Err(sqlx::Error::Decode(format!("unknown event kind {other}").into())),
        };
        let event = NewChange {
            id: row.try_get("id")?,
            room: RoomName::from_stored(row.try_get("room")?),
            message: row.try_get("message_id")?,
            user_id: UserId(row.try_get("user_id")?),
            user: Username::from_stored(row.try_get("username")?),
            at: row.try_get("created_at")?,
            client_id: row
                .try_get::<Option<String>, _>("client_id")?
                .map(ClientId::from_stored),
            change,
        };
        Ok(RoomEvent::Change(event).at_cursor(cursor_of(row.try_get("part")?, row.try_get("seq")?)?))
    }

    /// What applying one change did.
    enum Applied {
        Changed,
        /// Nothing to do: applied before, or a reaction already so. The message's cursor.
        Unchanged(Cursor),
        /// The message is not there (or not in that room, or, for an edit, not the user's).
        Missing,
    }

    /// The projection of one change: the only code that writes what a change does.
    /// `keep_noop`: a reaction that changes nothing is still written down (as not changed),
    /// for an external log that has it already (see the migration's `changed`); the local log
    /// gives such a reaction no place at all.
    async fn apply_change(
        conn: &mut $conn,
        c: &NewChange,
        cursor: Cursor,
        keep_noop: bool,
    ) -> Result<Applied, StoreError> {
        let target = sqlx::query(
            "SELECT part, seq, author_id, body FROM messages \
             WHERE id = $1 AND room = $2 AND deleted_at IS NULL",
        )
        .bind(c.message)
        .bind(c.room.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        let Some(target) = target else {
            return Ok(Applied::Missing);
        };
        let message_cursor = cursor_of(target.try_get("part")?, target.try_get("seq")?)?;
        // Applied before (redelivered), or a re-send of a change already logged.
        let known = sqlx::query(
            "SELECT 1 AS known FROM room_events WHERE id = $1 \
             OR ($3 IS NOT NULL AND user_id = $2 AND client_id = $3)",
        )
        .bind(c.id)
        .bind(c.user_id.0)
        .bind(c.client_id.as_ref().map(ClientId::as_str))
        .fetch_optional(&mut *conn)
        .await?;
        if known.is_some() {
            return Ok(Applied::Unchanged(message_cursor));
        }
        let (part, seq) = cursor_values(cursor);
        let mut previous_body: Option<String> = None;
        let mut new_body: Option<&str> = None;
        let mut emoji_text: Option<&str> = None;
        let mut changed = true;
        match &c.change {
            Change::Edit { body } => {
                let author: i64 = target.try_get("author_id")?;
                if author != c.user_id.0 {
                    return Ok(Applied::Missing);
                }
                previous_body = Some(target.try_get("body")?);
                new_body = Some(body);
                sqlx::query("UPDATE messages SET body = $1, edited_at = $2 WHERE id = $3")
                    .bind(body)
                    .bind(c.at)
                    .bind(c.message)
                    .execute(&mut *conn)
                    .await?;
            }
            Change::Delete => {
                sqlx::query(
                    "UPDATE messages SET deleted_at = $1, body = '', attachments = NULL \
                     WHERE id = $2",
                )
                .bind(c.at)
                .bind(c.message)
                .execute(&mut *conn)
                .await?;
                // Its files go with it: the cleanup job removes what is marked so.
                sqlx::query("UPDATE uploads SET removing = TRUE WHERE message_id = $1")
                    .bind(c.message)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM reactions WHERE message_id = $1")
                    .bind(c.message)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM mentions WHERE message_id = $1")
                    .bind(c.message)
                    .execute(&mut *conn)
                    .await?;
                // Erased with the message: its earlier bodies are its words too.
                sqlx::query(
                    "UPDATE room_events SET body = '', previous_body = '' \
                     WHERE message_id = $1 AND kind = 'edit'",
                )
                .bind(c.message)
                .execute(&mut *conn)
                .await?;
            }
            Change::React { emoji } | Change::Unreact { emoji } => {
                let want = matches!(c.change, Change::React { .. });
                let now = sqlx::query(
                    "SELECT part, seq, present FROM reactions \
                     WHERE message_id = $1 AND user_id = $2 AND emoji = $3",
                )
                .bind(c.message)
                .bind(c.user_id.0)
                .bind(emoji.as_str())
                .fetch_optional(&mut *conn)
                .await?;
                let already = match now {
                    Some(now) => {
                        let last = cursor_of(now.try_get("part")?, now.try_get("seq")?)?;
                        let present: bool = now.try_get("present")?;
                        // A set member's last change wins: an older event, applied again,
                        // changes nothing.
                        if last >= cursor {
                            return Ok(Applied::Unchanged(message_cursor));
                        }
                        present == want
                    }
                    None => !want,
                };
                emoji_text = Some(emoji.as_str());
                if already {
                    if !keep_noop {
                        return Ok(Applied::Unchanged(message_cursor));
                    }
                    changed = false;
                } else {
                sqlx::query(
                    "INSERT INTO reactions (message_id, user_id, emoji, username, part, seq, present) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (message_id, user_id, emoji) \
                     DO UPDATE SET part = excluded.part, seq = excluded.seq, present = excluded.present",
                )
                .bind(c.message)
                .bind(c.user_id.0)
                .bind(emoji.as_str())
                .bind(c.user.as_str())
                .bind(part)
                .bind(seq)
                .bind(want)
                .execute(&mut *conn)
                .await?;
                }
            }
        }
        sqlx::query(
            "INSERT INTO room_events (id, part, seq, room, kind, message_id, user_id, username, \
             body, previous_body, emoji, created_at, client_id, changed) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(c.id)
        .bind(part)
        .bind(seq)
        .bind(c.room.as_str())
        .bind(c.change.kind())
        .bind(c.message)
        .bind(c.user_id.0)
        .bind(c.user.as_str())
        .bind(new_body)
        .bind(previous_body)
        .bind(emoji_text)
        .bind(c.at)
        .bind(c.client_id.as_ref().map(ClientId::as_str))
        .bind(changed)
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "an event is stored at that place"))?;
        Ok(if changed {
            Applied::Changed
        } else {
            Applied::Unchanged(message_cursor)
        })
    }

    /// The event `actor` logged with `client_id`, if any: a message or a change.
    async fn first_copy_in(
        conn: &mut $conn,
        actor: UserId,
        client_id: &ClientId,
    ) -> Result<Option<LoggedEvent>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE author_id = $1 AND client_id = $2"
        ))
        .bind(actor.0)
        .bind(client_id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = row {
            let (message, cursor) = new_message_from_row(&row)?;
            return Ok(Some(RoomEvent::Message(message).at_cursor(cursor)));
        }
        let row = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM room_events WHERE user_id = $1 AND client_id = $2"
        ))
        .bind(actor.0)
        .bind(client_id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = row {
            return Ok(Some(change_from_row(&row)?));
        }
        let row = sqlx::query(&format!(
            "SELECT {ROOM_CHANGE_COLUMNS} FROM room_changes WHERE user_id = $1 AND client_id = $2"
        ))
        .bind(actor.0)
        .bind(client_id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        Ok(row.as_ref().map(room_change_from_row).transpose()?)
    }

    const ROOM_CHANGE_COLUMNS: &str = "id, part, seq, room, kind, user_id, username, member_id, \
         member, room_kind, topic, read_part, read_seq, muted, archived, created_at, client_id";

    fn room_change_from_row(row: &$row) -> Result<LoggedEvent, sqlx::Error> {
        let kind: String = row.try_get("kind")?;
        let actor = UserRef {
            id: UserId(row.try_get("user_id")?),
            name: Username::from_stored(row.try_get("username")?),
        };
        let member = || -> Result<Option<UserRef>, sqlx::Error> {
            let id: Option<i64> = row.try_get("member_id")?;
            let name: Option<String> = row.try_get("member")?;
            Ok(id.zip(name).map(|(id, name)| UserRef {
                id: UserId(id),
                name: Username::from_stored(name),
            }))
        };
        let needed = |what: &str| sqlx::Error::Decode(format!("a {kind} change needs its {what}").into());
        let topic = || -> Result<Topic, sqlx::Error> {
            Ok(Topic::from_stored(row.try_get::<Option<String>, _>("topic")?.unwrap_or_default()))
        };
        let change = match kind.as_str() {
            "created" => {
                let room_kind: Option<String> = row.try_get("room_kind")?;
                let kind = room_kind
                    .as_deref()
                    .and_then(RoomKind::from_stored)
                    .ok_or_else(|| needed("room kind"))?;
                let mut members = vec![actor.clone()];
                members.extend(member()?);
                RoomChange::Created { kind, topic: topic()?, members }
            }
            "joined" => RoomChange::Joined,
            "left" => RoomChange::Left,
            "added" => RoomChange::Added { member: member()?.ok_or_else(|| needed("member"))? },
            "removed" => RoomChange::Removed { member: member()?.ok_or_else(|| needed("member"))? },
            "topic" => RoomChange::Topic { topic: topic()? },
            "read" => {
                let part: Option<i64> = row.try_get("read_part")?;
                let seq: Option<i64> = row.try_get("read_seq")?;
                let (part, seq) = part.zip(seq).ok_or_else(|| needed("cursor"))?;
                RoomChange::Read { cursor: cursor_of(part, seq)? }
            }
            "muted" => RoomChange::Muted {
                muted: row.try_get::<Option<bool>, _>("muted")?.ok_or_else(|| needed("muted"))?,
            },
            "archived" => RoomChange::Archived {
                archived: row
                    .try_get::<Option<bool>, _>("archived")?
                    .ok_or_else(|| needed("archived"))?,
            },
            "deleted" => RoomChange::Deleted,
            other => return Err(sqlx::Error::Decode(format!("unknown room change {other}").into())),
        };
        let event = NewRoomChange {
            id: row.try_get("id")?,
            room: RoomName::from_stored(row.try_get("room")?),
            user_id: actor.id,
            user: actor.name,
            at: row.try_get("created_at")?,
            client_id: row
                .try_get::<Option<String>, _>("client_id")?
                .map(ClientId::from_stored),
            change,
        };
        Ok(RoomEvent::Room(event).at_cursor(cursor_of(row.try_get("part")?, row.try_get("seq")?)?))
    }

    /// A room's row: what its log made it, and the place of the change that last wrote it.
    async fn room_row(conn: &mut $conn, room: &str) -> Result<Option<(RoomInfo, Cursor)>, StoreError> {
        let row = sqlx::query(
            "SELECT kind, topic, owner_id, owner, created_at, archived_at, deleted_at, part, seq \
             FROM rooms WHERE name = $1",
        )
        .bind(room)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let kind: String = row.try_get("kind")?;
        let owner_id: Option<i64> = row.try_get("owner_id")?;
        let owner: Option<String> = row.try_get("owner")?;
        let info = RoomInfo {
            kind: RoomKind::from_stored(&kind)
                .ok_or_else(|| sqlx::Error::Decode(format!("unknown room kind {kind}").into()))?,
            topic: Topic::from_stored(row.try_get("topic")?),
            owner: owner_id.zip(owner).map(|(id, name)| UserRef {
                id: UserId(id),
                name: Username::from_stored(name),
            }),
            created_at: row.try_get("created_at")?,
            archived_at: row.try_get("archived_at")?,
            deleted_at: row.try_get("deleted_at")?,
        };
        Ok(Some((info, cursor_of(row.try_get("part")?, row.try_get("seq")?)?)))
    }

    fn membership_from_row(row: &$row) -> Result<(UserId, Membership, Cursor), sqlx::Error> {
        let read_part: Option<i64> = row.try_get("read_part")?;
        let read_seq: Option<i64> = row.try_get("read_seq")?;
        let read = match read_part.zip(read_seq) {
            Some((p, s)) => Some(cursor_of(p, s)?),
            None => None,
        };
        Ok((
            UserId(row.try_get("user_id")?),
            Membership {
                user: Username::from_stored(row.try_get("username")?),
                role: Role::from_stored(&row.try_get::<String, _>("role")?),
                present: row.try_get("present")?,
                read,
                muted: row.try_get("muted")?,
            },
            cursor_of(row.try_get("part")?, row.try_get("seq")?)?,
        ))
    }

    const MEMBERSHIP_COLUMNS: &str =
        "user_id, username, role, present, read_part, read_seq, muted, part, seq";

    /// The projection of one room change: the only code that writes rooms and memberships.
    /// What it does is [`banter_core::effect`]'s, the rules every gateway's directory uses.
    async fn apply_room_change(
        conn: &mut $conn,
        r: &NewRoomChange,
        cursor: Cursor,
        keep_noop: bool,
    ) -> Result<Applied, StoreError> {
        let known = sqlx::query(
            "SELECT part, seq FROM room_changes WHERE id = $1 \
             OR ($3 IS NOT NULL AND user_id = $2 AND client_id = $3)",
        )
        .bind(r.id)
        .bind(r.user_id.0)
        .bind(r.client_id.as_ref().map(ClientId::as_str))
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(known) = known {
            return Ok(Applied::Unchanged(cursor_of(known.try_get("part")?, known.try_get("seq")?)?));
        }
        let room = room_row(conn, r.room.as_str()).await?;
        let mut members = std::collections::HashMap::new();
        for user in r.involved() {
            let row = sqlx::query(&format!(
                "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE room = $1 AND user_id = $2"
            ))
            .bind(r.room.as_str())
            .bind(user.0)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(row) = row {
                let (id, m, _) = membership_from_row(&row)?;
                members.insert(id, m);
            }
        }
        let effect = banter_core::effect(r, room.as_ref().map(|(info, _)| info), |id| {
            members.get(&id).cloned()
        });
        let changed = !effect.is_noop();
        if !changed && !keep_noop {
            return Ok(Applied::Unchanged(room.map_or(Cursor::ZERO, |(_, at)| at)));
        }
        let (part, seq) = cursor_values(cursor);
        if let Some(info) = &effect.room {
            sqlx::query(
                "INSERT INTO rooms (name, kind, topic, owner_id, owner, created_at, archived_at, \
                   deleted_at, part, seq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $9, $10, $7, $8) \
                 ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, topic = excluded.topic, \
                   owner_id = excluded.owner_id, owner = excluded.owner, \
                   archived_at = excluded.archived_at, deleted_at = excluded.deleted_at, \
                   part = excluded.part, seq = excluded.seq",
            )
            .bind(r.room.as_str())
            .bind(info.kind.as_str())
            .bind(info.topic.as_str())
            .bind(info.owner.as_ref().map(|o| o.id.0))
            .bind(info.owner.as_ref().map(|o| o.name.as_str()))
            .bind(info.created_at)
            .bind(part)
            .bind(seq)
            .bind(info.archived_at)
            .bind(info.deleted_at)
            .execute(&mut *conn)
            .await?;
        }
        for (user, m) in &effect.members {
            let (read_part, read_seq) = match m.read.map(cursor_values) {
                Some((p, s)) => (Some(p), Some(s)),
                None => (None, None),
            };
            sqlx::query(
                "INSERT INTO memberships \
                 (room, user_id, username, role, joined_at, present, read_part, read_seq, part, seq, \
                  muted) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (room, user_id) DO UPDATE SET username = excluded.username, \
                   role = excluded.role, present = excluded.present, \
                   joined_at = CASE WHEN memberships.present THEN memberships.joined_at \
                                    ELSE excluded.joined_at END, \
                   read_part = excluded.read_part, read_seq = excluded.read_seq, \
                   part = excluded.part, seq = excluded.seq, muted = excluded.muted",
            )
            .bind(r.room.as_str())
            .bind(user.0)
            .bind(m.user.as_str())
            .bind(m.role.as_str())
            .bind(r.at)
            .bind(m.present)
            .bind(read_part)
            .bind(read_seq)
            .bind(part)
            .bind(seq)
            .bind(m.muted)
            .execute(&mut *conn)
            .await?;
        }
        let (mut member, mut room_kind, mut topic, mut read) = (None, None, None, None);
        let (mut muted, mut archived) = (None, None);
        match &r.change {
            RoomChange::Created { kind, topic: t, members } => {
                room_kind = Some(kind.as_str());
                topic = Some(t.as_str());
                member = members.iter().find(|m| m.id != r.user_id);
            }
            RoomChange::Added { member: m } | RoomChange::Removed { member: m } => member = Some(m),
            RoomChange::Topic { topic: t } => topic = Some(t.as_str()),
            RoomChange::Read { cursor } => read = Some(cursor_values(*cursor)),
            RoomChange::Muted { muted: m } => muted = Some(*m),
            RoomChange::Archived { archived: a } => archived = Some(*a),
            RoomChange::Joined | RoomChange::Left | RoomChange::Deleted => {}
        }
        sqlx::query(
            "INSERT INTO room_changes (id, part, seq, room, kind, user_id, username, member_id, \
             member, room_kind, topic, read_part, read_seq, created_at, client_id, changed, muted, \
             archived) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(r.id)
        .bind(part)
        .bind(seq)
        .bind(r.room.as_str())
        .bind(r.change.kind())
        .bind(r.user_id.0)
        .bind(r.user.as_str())
        .bind(member.map(|m| m.id.0))
        .bind(member.map(|m| m.name.as_str()))
        .bind(room_kind)
        .bind(topic)
        .bind(read.map(|(p, _)| p))
        .bind(read.map(|(_, s)| s))
        .bind(r.at)
        .bind(r.client_id.as_ref().map(ClientId::as_str))
        .bind(changed)
        .bind(muted)
        .bind(archived)
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "an event is stored at that place"))?;
        Ok(if changed { Applied::Changed } else { Applied::Unchanged(cursor) })
    }

    /// The mention rows of messages just written: one per mentioned name that is a member
    /// of the room at this point of its log. A message that was not written (a re-send's
    /// second copy) gets none.
    async fn insert_mentions(conn: &mut $conn, run: &[(&NewMessage, Cursor)]) -> Result<(), StoreError> {
        for (m, cursor) in run.iter().filter(|(m, _)| !m.mentions.is_empty()) {
            let (part, seq) = cursor_values(*cursor);
            for name in &m.mentions {
                sqlx::query(
                    "INSERT INTO mentions (message_id, user_id, room, part, seq) \
                     SELECT $1, mb.user_id, mb.room, $3, $4 FROM memberships mb \
                     WHERE mb.room = $2 AND mb.present AND lower(mb.username) = lower($5) \
                       AND mb.user_id <> $6 \
                       AND EXISTS (SELECT 1 FROM messages WHERE id = $1) \
                     ON CONFLICT (message_id, user_id) DO NOTHING",
                )
                .bind(m.id)
                .bind(m.room.as_str())
                .bind(part)
                .bind(seq)
                .bind(name.as_str())
                .bind(m.author_id.0)
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }

    /// The uploads that messages just written carry become theirs: the first message that
    /// carries an upload of its own author's takes it (a later one, or someone else's upload,
    /// changes nothing), and from then on readers of its room may fetch it.
    async fn attach_uploads(conn: &mut $conn, run: &[(&NewMessage, Cursor)]) -> Result<(), StoreError> {
        for (m, _) in run.iter().filter(|(m, _)| !m.attachments.is_empty()) {
            for a in &m.attachments {
                sqlx::query(
                    "UPDATE uploads SET message_id = $1, room = $2 \
                     WHERE id = $3 AND uploader_id = $4 AND message_id IS NULL \
                       AND EXISTS (SELECT 1 FROM messages WHERE id = $1)",
                )
                .bind(m.id)
                .bind(m.room.as_str())
                .bind(a.id)
                .bind(m.author_id.0)
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }

    impl $store {
        /// Writes a run of new messages, their mentions and what they attach, and empties
        /// it. Returns how many messages were new.
        async fn write_run(
            conn: &mut $conn,
            run: &mut Vec<(&NewMessage, Cursor)>,
        ) -> Result<u64, StoreError> {
            if run.is_empty() {
                return Ok(0);
            }
            let inserted = Self::insert_messages(&mut *conn, run).await?;
            insert_mentions(&mut *conn, run).await?;
            attach_uploads(&mut *conn, run).await?;
            run.clear();
            Ok(inserted)
        }
    }

    /// The entry columns of a membership `mb` joined with its room `r`: counts stop at the
    /// cap, so a room with a million unread messages costs what one with a hundred does.
    fn entry_sql(filter: &str) -> String {
        format!(
            "SELECT r.name, r.kind, r.topic, r.owner, r.archived_at, mb.role, mb.read_part, mb.read_seq, \
               mb.muted, \
               (SELECT m.created_at FROM messages m WHERE m.room = mb.room AND m.deleted_at IS NULL \
                ORDER BY m.part DESC, m.seq DESC LIMIT 1) AS last_message_at, \
               (SELECT COUNT(*) FROM (SELECT 1 FROM messages m WHERE m.room = mb.room \
                  AND (m.part, m.seq) > (COALESCE(mb.read_part, -1), COALESCE(mb.read_seq, -1)) \
                  AND m.author_id <> mb.user_id AND m.deleted_at IS NULL LIMIT {cap}) AS u) AS unread, \
               (SELECT COUNT(*) FROM (SELECT 1 FROM mentions x WHERE x.user_id = mb.user_id \
                  AND x.room = mb.room \
                  AND (x.part, x.seq) > (COALESCE(mb.read_part, -1), COALESCE(mb.read_seq, -1)) \
                  LIMIT {cap}) AS y) AS mentioned \
             FROM memberships mb JOIN rooms r ON r.name = mb.room \
             WHERE mb.user_id = $1 AND mb.present AND r.deleted_at IS NULL {filter} \
             ORDER BY last_message_at DESC NULLS LAST, r.name",
            cap = banter_core::UNREAD_CAP,
        )
    }

    fn entry_from_row(row: &$row) -> Result<RoomEntry, sqlx::Error> {
        let kind: String = row.try_get("kind")?;
        let read_part: Option<i64> = row.try_get("read_part")?;
        let read_seq: Option<i64> = row.try_get("read_seq")?;
        let count = |column: &str| -> Result<u32, sqlx::Error> {
            Ok(u32::try_from(row.try_get::<i64, _>(column)?).unwrap_or(u32::MAX))
        };
        Ok(RoomEntry {
            room: RoomName::from_stored(row.try_get("name")?),
            kind: RoomKind::from_stored(&kind)
                .ok_or_else(|| sqlx::Error::Decode(format!("unknown room kind {kind}").into()))?,
            topic: Topic::from_stored(row.try_get("topic")?),
            owner: row.try_get::<Option<String>, _>("owner")?.map(Username::from_stored),
            role: Role::from_stored(&row.try_get::<String, _>("role")?),
            online: 0,
            last_message_at: row.try_get("last_message_at")?,
            unread: count("unread")?,
            mentions: count("mentioned")?,
            read_cursor: match read_part.zip(read_seq) {
                Some((p, s)) => Some(cursor_of(p, s)?),
                None => None,
            },
            muted: row.try_get("muted")?,
            archived: row
                .try_get::<Option<DateTime<Utc>>, _>("archived_at")?
                .is_some(),
        })
    }

    /// Whose page of messages: a room's history, or a thread's replies.
    enum PageOf<'a> {
        Room(&'a str),
        Thread(Uuid),
    }

    /// Which way a page goes from its cursor.
    enum Toward {
        /// The messages just before it (the newest with `None`).
        Older(Option<Cursor>),
        /// The messages just after it.
        Newer(Cursor),
    }

    /// Up to `limit` messages next to a cursor, the way `toward` says, oldest first, in their
    /// current state. Deleted messages are left out.
    async fn page(
        conn: &mut $conn,
        of: PageOf<'_>,
        toward: Toward,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let ((part, seq), compare, order) = match toward {
            Toward::Older(before) => (
                before.map_or((i64::MAX, i64::MAX), cursor_values),
                "<",
                "DESC",
            ),
            Toward::Newer(after) => (cursor_values(after), ">", "ASC"),
        };
        let column = match of {
            PageOf::Room(_) => "room",
            PageOf::Thread(_) => "thread_root",
        };
        let sql = format!(
            "SELECT {} FROM messages \
             WHERE {column} = $1 AND deleted_at IS NULL AND (part, seq) {compare} ($2, $3) \
             ORDER BY part {order}, seq {order} LIMIT $4",
            stored_columns()
        );
        let query = sqlx::query(&sql);
        let query = match of {
            PageOf::Room(room) => query.bind(room),
            PageOf::Thread(root) => query.bind(root),
        };
        let rows = query
            .bind(part)
            .bind(seq)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
        let mut page: Vec<StoredMessage> = rows.iter().map(stored_from_row).collect::<Result<_, _>>()?;
        if order == "DESC" {
            page.reverse();
        }
        decorate(conn, &mut page).await?;
        Ok(page)
    }

    /// Fills in the reactions of `messages` (one query), counted from the rows in place.
    async fn decorate(
        conn: &mut $conn,
        messages: &mut [StoredMessage],
    ) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let placeholders: Vec<String> = (1..=messages.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT message_id, emoji, username FROM reactions \
             WHERE present AND message_id IN ({}) ORDER BY message_id, part, seq",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for m in messages.iter() {
            query = query.bind(m.id);
        }
        let rows = query.fetch_all(&mut *conn).await?;
        let mut by_message: std::collections::HashMap<Uuid, Vec<ReactionSummary>> =
            std::collections::HashMap::new();
        for row in &rows {
            let id: Uuid = row.try_get("message_id")?;
            let emoji = Emoji::from_stored(row.try_get("emoji")?);
            let user = Username::from_stored(row.try_get("username")?);
            let list = by_message.entry(id).or_default();
            // Emoji in the order they were first used on the message.
            match list.iter_mut().find(|r| r.emoji == emoji) {
                Some(summary) => {
                    summary.count += 1;
                    if summary.users.len() < ReactionSummary::MAX_USERS {
                        summary.users.push(user);
                    }
                }
                None => list.push(ReactionSummary {
                    emoji,
                    count: 1,
                    users: vec![user],
                }),
            }
        }
        for m in messages.iter_mut() {
            m.reactions = by_message.remove(&m.id).unwrap_or_default();
        }
        Ok(())
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
            let new = $crate::admin::NewAccount {
                username,
                password_hash,
                created_at,
                invite: None,
                only_first: false,
            };
            match $crate::admin::Admin::register(self, &new).await? {
                $crate::admin::Registered::Created(account) => Ok(account.user),
                // Only an invite or `only_first` can refuse, and neither is asked for.
                $crate::admin::Registered::InviteRefused | $crate::admin::Registered::Closed => {
                    Err(StoreError::Other(sqlx::Error::RowNotFound))
                }
            }
        }

        async fn credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError> {
            let row = sqlx::query(
                "SELECT id, username, created_at, password, deactivated_at FROM users \
                 WHERE lower(username) = lower($1)",
            )
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|row| {
                Ok(Credentials {
                    user: user_from_row(&row)?,
                    password_hash: row.try_get("password")?,
                    deactivated: row
                        .try_get::<Option<DateTime<Utc>>, _>("deactivated_at")?
                        .is_some(),
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

        async fn append_events(&self, batch: &[RoomEvent]) -> Result<Vec<Appended>, StoreError> {
            // Few statements per batch: one per run of messages (and per mention), one per
            // change, and four around them. On SQLite each statement is a round trip to the
            // connection's worker thread (two context switches), which cost more CPU than the
            // writes themselves (docs/benchmarks/history.md).
            let mut tx = self.pool.begin_with(begin_write()).await?;
            // One counter row hands out the local log's offsets. Taking it first locks it (on
            // SQLite the transaction holds the write lock anyway), so offsets are given in
            // commit order. A place is reserved for every event of the batch at once; the row
            // is written again only when some of them took none (copies, no-ops).
            let wanted = i64::try_from(batch.len()).unwrap_or(i64::MAX);
            let reserved: i64 = sqlx::query(
                "UPDATE counters SET value = value + $1 WHERE name = 'messages' RETURNING value",
            )
            .bind(wanted)
            .fetch_one(&mut *tx)
            .await?
            .try_get("value")?;
            let mut next = u64::try_from(reserved - wanted)
                .map_err(|_| StoreError::Other(sqlx::Error::Decode("negative offset".into())))?
                + 1;
            // Which of the batch's client ids were taken before it, in one query; a client id
            // taken before or earlier in the batch is looked up in full (rare: a retry).
            let taken = Self::client_ids_taken(&mut tx, batch).await?;
            let mut in_batch = std::collections::HashSet::new();
            let mut out = Vec::with_capacity(batch.len());
            // Messages in a row are written together, in one statement where the engine can.
            let mut run: Vec<(&NewMessage, Cursor)> = Vec::new();
            for event in batch {
                if let Some(client_id) = event.client_id() {
                    let key = (event.actor_id().0, client_id.as_str());
                    if taken.iter().any(|(a, c)| *a == key.0 && c == key.1) || !in_batch.insert(key) {
                        // Taken before, or earlier in this batch: then the first copy may
                        // be in the run, which is written before looking.
                        Self::write_run(&mut tx, &mut run).await?;
                        if let Some(first) =
                            first_copy_in(&mut tx, event.actor_id(), client_id).await?
                        {
                            out.push(Appended::Duplicate(first));
                            continue;
                        }
                    }
                }
                let cursor = Cursor::new(0, next);
                let appended = |applied, id| match applied {
                    Applied::Changed => Appended::New(event.clone().at_cursor(cursor)),
                    Applied::Unchanged(at) => Appended::Unchanged { message: id, cursor: at },
                    Applied::Missing => Appended::Missing,
                };
                let outcome = match event {
                    RoomEvent::Message(m) => {
                        run.push((m, cursor));
                        Appended::New(event.clone().at_cursor(cursor))
                    }
                    RoomEvent::Change(c) => {
                        // A change may concern a message of the run.
                        Self::write_run(&mut tx, &mut run).await?;
                        appended(apply_change(&mut tx, c, cursor, false).await?, c.message)
                    }
                    RoomEvent::Room(r) => {
                        // Mentions in the run are of members as they were before this.
                        Self::write_run(&mut tx, &mut run).await?;
                        appended(apply_room_change(&mut tx, r, cursor, false).await?, r.id)
                    }
                };
                if matches!(outcome, Appended::New(_)) {
                    next += 1;
                }
                out.push(outcome);
            }
            Self::write_run(&mut tx, &mut run).await?;
            let last = i64::try_from(next - 1).unwrap_or(i64::MAX);
            if last != reserved {
                sqlx::query("UPDATE counters SET value = $1 WHERE name = 'messages'")
                    .bind(last)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(out)
        }

        async fn apply_logged(&self, batch: &[LoggedEvent]) -> Result<u64, StoreError> {
            let mut tx = self.pool.begin_with(begin_write()).await?;
            let mut changed = 0;
            // Runs of messages go to the store in one statement where the engine can (see the
            // backend's insert_messages); changes are applied one by one, in log order.
            let mut run: Vec<(&NewMessage, Cursor)> = Vec::new();
            for logged in batch {
                if let RoomEvent::Message(m) = &logged.event {
                    run.push((m, logged.cursor));
                    continue;
                }
                changed += Self::write_run(&mut tx, &mut run).await?;
                let applied = match &logged.event {
                    RoomEvent::Change(c) => apply_change(&mut tx, c, logged.cursor, true).await?,
                    RoomEvent::Room(r) => apply_room_change(&mut tx, r, logged.cursor, true).await?,
                    RoomEvent::Message(_) => continue,
                };
                if matches!(applied, Applied::Changed) {
                    changed += 1;
                }
            }
            changed += Self::write_run(&mut tx, &mut run).await?;
            tx.commit().await?;
            Ok(changed)
        }

        async fn events_after(
            &self,
            room: &RoomName,
            after: Option<Cursor>,
            limit: u32,
        ) -> Result<Vec<LoggedEvent>, StoreError> {
            let (part, seq) = after.map_or((-1, -1), cursor_values);
            let mut conn = self.pool.acquire().await?;
            let messages = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages \
                 WHERE room = $1 AND deleted_at IS NULL AND (part, seq) > ($2, $3) \
                 ORDER BY part, seq LIMIT $4"
            ))
            .bind(room.as_str())
            .bind(part)
            .bind(seq)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
            let changes = sqlx::query(&format!(
                "SELECT {EVENT_COLUMNS} FROM room_events e \
                 WHERE room = $1 AND (part, seq) > ($2, $3) AND changed AND (kind = 'delete' OR EXISTS \
                   (SELECT 1 FROM messages m WHERE m.id = e.message_id AND m.deleted_at IS NULL)) \
                 ORDER BY part, seq LIMIT $4"
            ))
            .bind(room.as_str())
            .bind(part)
            .bind(seq)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
            // A read position and muting are their user's own: they are not replayed to the room.
            let room_changes = sqlx::query(&format!(
                "SELECT {ROOM_CHANGE_COLUMNS} FROM room_changes \
                 WHERE room = $1 AND (part, seq) > ($2, $3) AND changed AND kind NOT IN ('read', 'muted') \
                 ORDER BY part, seq LIMIT $4"
            ))
            .bind(room.as_str())
            .bind(part)
            .bind(seq)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
            // Three pages in log order, merged: the first `limit` of them all are the first
            // `limit` events after the cursor.
            let mut out = Vec::with_capacity(messages.len() + changes.len() + room_changes.len());
            for row in &messages {
                let (message, cursor) = new_message_from_row(row)?;
                out.push(RoomEvent::Message(message).at_cursor(cursor));
            }
            for row in &changes {
                out.push(change_from_row(row)?);
            }
            for row in &room_changes {
                out.push(room_change_from_row(row)?);
            }
            out.sort_by_key(|e| e.cursor);
            out.truncate(limit as usize);
            Ok(out)
        }

        async fn messages_before(
            &self,
            room: &RoomName,
            before: Option<Cursor>,
            limit: u32,
        ) -> Result<Vec<StoredMessage>, StoreError> {
            let mut conn = self.pool.acquire().await?;
            page(&mut conn, PageOf::Room(room.as_str()), Toward::Older(before), limit).await
        }

        async fn replies(
            &self,
            root: Uuid,
            before: Option<Cursor>,
            limit: u32,
        ) -> Result<Vec<StoredMessage>, StoreError> {
            let mut conn = self.pool.acquire().await?;
            page(&mut conn, PageOf::Thread(root), Toward::Older(before), limit).await
        }

        async fn messages_after(
            &self,
            room: &RoomName,
            after: Cursor,
            limit: u32,
        ) -> Result<Vec<StoredMessage>, StoreError> {
            let mut conn = self.pool.acquire().await?;
            page(&mut conn, PageOf::Room(room.as_str()), Toward::Newer(after), limit).await
        }

        async fn search(&self, search: &crate::Search) -> Result<Vec<StoredMessage>, StoreError> {
            if search.query.is_empty() || search.limit == 0 {
                return Ok(Vec::new());
            }
            let mut conn = self.pool.acquire().await?;
            let rows = Self::find(&mut conn, search).await?;
            let mut found: Vec<StoredMessage> = rows.iter().map(stored_from_row).collect::<Result<_, _>>()?;
            decorate(&mut conn, &mut found).await?;
            Ok(found)
        }

        async fn stored_message(&self, id: Uuid) -> Result<Option<StoredMessage>, StoreError> {
            let mut conn = self.pool.acquire().await?;
            let row = sqlx::query(&format!(
                "SELECT {} FROM messages WHERE id = $1 AND deleted_at IS NULL",
                stored_columns()
            ))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            let mut found: Vec<StoredMessage> = row.iter().map(stored_from_row).collect::<Result<_, _>>()?;
            decorate(&mut conn, &mut found).await?;
            Ok(found.pop())
        }

        async fn earlier_bodies(&self, id: Uuid) -> Result<Vec<EarlierBody>, StoreError> {
            let Some(message) = self.message(id).await? else {
                return Ok(Vec::new());
            };
            let rows = sqlx::query(
                "SELECT previous_body, created_at FROM room_events \
                 WHERE message_id = $1 AND kind = 'edit' ORDER BY part, seq",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            // Each edit replaced the body written at the edit before it (the first, the
            // message's own).
            let mut written = message.created_at;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let replaced_at: DateTime<Utc> = row.try_get("created_at")?;
                out.push(EarlierBody {
                    body: row.try_get::<Option<String>, _>("previous_body")?.unwrap_or_default(),
                    created_at: written,
                    replaced_at,
                });
                written = replaced_at;
            }
            Ok(out)
        }

        async fn latest_cursor(&self, room: &RoomName) -> Result<Option<Cursor>, StoreError> {
            let mut latest = None;
            for table in ["messages", "room_events", "room_changes"] {
                let row = sqlx::query(&format!(
                    "SELECT part, seq FROM {table} WHERE room = $1 ORDER BY part DESC, seq DESC LIMIT 1"
                ))
                .bind(room.as_str())
                .fetch_optional(&self.pool)
                .await?;
                if let Some(row) = row {
                    let cursor = cursor_of(row.try_get("part")?, row.try_get("seq")?)?;
                    latest = latest.max(Some(cursor));
                }
            }
            Ok(latest)
        }

        async fn first_copy(
            &self,
            actor: UserId,
            client_id: &ClientId,
        ) -> Result<Option<LoggedEvent>, StoreError> {
            let mut conn = self.pool.acquire().await?;
            first_copy_in(&mut conn, actor, client_id).await
        }

        async fn message(&self, id: Uuid) -> Result<Option<Message>, StoreError> {
            let row = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND deleted_at IS NULL"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.as_ref().map(message_from_row).transpose()?)
        }

        async fn has_reaction(
            &self,
            message: Uuid,
            user: UserId,
            emoji: &Emoji,
        ) -> Result<bool, StoreError> {
            let row = sqlx::query(
                "SELECT present FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3",
            )
            .bind(message)
            .bind(user.0)
            .bind(emoji.as_str())
            .fetch_optional(&self.pool)
            .await?;
            Ok(match row {
                Some(row) => row.try_get("present")?,
                None => false,
            })
        }

        async fn room(&self, room: &RoomName) -> Result<Option<(RoomInfo, Cursor)>, StoreError> {
            let mut conn = self.pool.acquire().await?;
            room_row(&mut conn, room.as_str()).await
        }

        async fn room_members(
            &self,
            room: &RoomName,
        ) -> Result<Vec<(UserId, Membership, Cursor)>, StoreError> {
            let rows = sqlx::query(&format!(
                "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE room = $1 ORDER BY lower(username)"
            ))
            .bind(room.as_str())
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.iter().map(membership_from_row).collect::<Result<_, _>>()?)
        }

        async fn memberships(&self, user: UserId) -> Result<Vec<RoomEntry>, StoreError> {
            let rows = sqlx::query(&entry_sql(""))
                .bind(user.0)
                .fetch_all(&self.pool)
                .await?;
            Ok(rows.iter().map(entry_from_row).collect::<Result<_, _>>()?)
        }

        async fn membership(
            &self,
            user: UserId,
            room: &RoomName,
        ) -> Result<Option<RoomEntry>, StoreError> {
            let row = sqlx::query(&entry_sql("AND mb.room = $2"))
                .bind(user.0)
                .bind(room.as_str())
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.as_ref().map(entry_from_row).transpose()?)
        }

        async fn public_rooms(
            &self,
            user: UserId,
            limit: u32,
        ) -> Result<Vec<PublicRoom>, StoreError> {
            let rows = sqlx::query(
                "SELECT r.name, r.topic, \
                   (SELECT COUNT(*) FROM memberships mb WHERE mb.room = r.name AND mb.present) AS members, \
                   (SELECT m.created_at FROM messages m WHERE m.room = r.name AND m.deleted_at IS NULL \
                    ORDER BY m.part DESC, m.seq DESC LIMIT 1) AS last_message_at, \
                   EXISTS (SELECT 1 FROM memberships mb \
                     WHERE mb.room = r.name AND mb.user_id = $1 AND mb.present) AS joined \
                 FROM rooms r WHERE r.kind = 'public' AND r.archived_at IS NULL \
                   AND r.deleted_at IS NULL \
                 ORDER BY last_message_at DESC NULLS LAST, r.name LIMIT $2",
            )
            .bind(user.0)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(PublicRoom {
                        room: RoomName::from_stored(row.try_get("name")?),
                        topic: Topic::from_stored(row.try_get("topic")?),
                        members: u32::try_from(row.try_get::<i64, _>("members")?).unwrap_or(u32::MAX),
                        last_message_at: row.try_get("last_message_at")?,
                        joined: row.try_get("joined")?,
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

        async fn insert_upload(&self, upload: &Upload) -> Result<(), StoreError> {
            let f = &upload.file;
            sqlx::query(
                "INSERT INTO uploads (id, uploader_id, name, size, content_type, width, height, \
                   thumbnail, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(f.id)
            .bind(upload.uploader.0)
            .bind(&f.name)
            .bind(i64::try_from(f.size).unwrap_or(i64::MAX))
            .bind(&f.content_type)
            .bind(f.width.and_then(|w| i32::try_from(w).ok()))
            .bind(f.height.and_then(|h| i32::try_from(h).ok()))
            .bind(f.thumbnail)
            .bind(upload.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "an upload with that id exists"))?;
            Ok(())
        }

        async fn upload(&self, id: Uuid) -> Result<Option<Upload>, StoreError> {
            let row = sqlx::query(
                "SELECT id, uploader_id, name, size, content_type, width, height, thumbnail, \
                   created_at, message_id, room, removing FROM uploads WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.as_ref().map(upload_from_row).transpose()?)
        }

        async fn uploaded_bytes(&self, user: UserId) -> Result<u64, StoreError> {
            let total: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(SUM(size) AS BIGINT) FROM uploads \
                 WHERE uploader_id = $1 AND NOT removing",
            )
            .bind(user.0)
            .fetch_one(&self.pool)
            .await?;
            Ok(total.and_then(|t| u64::try_from(t).ok()).unwrap_or(0))
        }

        async fn uploads_to_remove(
            &self,
            unattached_before: DateTime<Utc>,
            limit: u32,
        ) -> Result<Vec<Uuid>, StoreError> {
            let ids = sqlx::query_scalar(
                "SELECT id FROM uploads WHERE removing \
                 UNION ALL \
                 SELECT id FROM uploads WHERE message_id IS NULL AND created_at < $1 \
                 LIMIT $2",
            )
            .bind(unattached_before)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            Ok(ids)
        }

        async fn forget_uploads(
            &self,
            ids: &[Uuid],
            unattached_before: DateTime<Utc>,
        ) -> Result<u64, StoreError> {
            let mut forgotten = 0;
            for id in ids {
                // Only what is still due: an upload attached since it was picked stays.
                let done = sqlx::query(
                    "DELETE FROM uploads WHERE id = $1 \
                     AND (removing OR (message_id IS NULL AND created_at < $2))",
                )
                .bind(id)
                .bind(unattached_before)
                .execute(&self.pool)
                .await?;
                forgotten += done.rows_affected();
            }
            Ok(forgotten)
        }

        async fn save_push_subscription(
            &self,
            sub: &PushSubscription,
            keep: u32,
        ) -> Result<(), StoreError> {
            let mut tx = self.pool.begin_with(begin_write()).await?;
            sqlx::query(
                "INSERT INTO push_subscriptions (endpoint, user_id, p256dh, auth, created_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, \
                   p256dh = excluded.p256dh, auth = excluded.auth, created_at = excluded.created_at",
            )
            .bind(&sub.endpoint)
            .bind(sub.user.0)
            .bind(&sub.p256dh)
            .bind(&sub.auth)
            .bind(sub.created_at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint NOT IN \
                   (SELECT endpoint FROM push_subscriptions WHERE user_id = $1 \
                    ORDER BY created_at DESC, endpoint LIMIT $2)",
            )
            .bind(sub.user.0)
            .bind(i64::from(keep))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        }

        async fn delete_push_subscription(
            &self,
            user: UserId,
            endpoint: &str,
        ) -> Result<bool, StoreError> {
            let done =
                sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2")
                    .bind(user.0)
                    .bind(endpoint)
                    .execute(&self.pool)
                    .await?;
            Ok(done.rows_affected() > 0)
        }

        async fn forget_push_endpoint(&self, endpoint: &str) -> Result<bool, StoreError> {
            let done = sqlx::query("DELETE FROM push_subscriptions WHERE endpoint = $1")
                .bind(endpoint)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() > 0)
        }

        async fn push_subscriptions(
            &self,
            username: &str,
        ) -> Result<Vec<PushSubscription>, StoreError> {
            let rows = sqlx::query(
                "SELECT s.endpoint, s.user_id, s.p256dh, s.auth, s.created_at \
                 FROM push_subscriptions s JOIN users u ON u.id = s.user_id \
                 WHERE lower(u.username) = lower($1) \
                 ORDER BY s.created_at DESC, s.endpoint",
            )
            .bind(username)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(PushSubscription {
                        endpoint: row.try_get("endpoint")?,
                        user: UserId(row.try_get("user_id")?),
                        p256dh: row.try_get("p256dh")?,
                        auth: row.try_get("auth")?,
                        created_at: row.try_get("created_at")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(StoreError::from)
        }
    }
    };
}

pub(crate) use impl_store;

/// A cursor as the two integer columns that hold it.
/// A cursor's columns, or two NULLs.
pub(crate) fn optional_cursor_values(c: Option<banter_core::Cursor>) -> (Option<i64>, Option<i64>) {
    c.map(cursor_values)
        .map_or((None, None), |(p, s)| (Some(p), Some(s)))
}

pub(crate) fn cursor_values(c: banter_core::Cursor) -> (i64, i64) {
    (
        i64::from(c.partition),
        i64::try_from(c.offset).unwrap_or(i64::MAX),
    )
}

/// The messages of a run that are not copies of one earlier in it (same id, or same author
/// and client id): a statement over the whole run does not see its own rows, so copies within
/// it are dropped before, keeping the first like the log does.
pub(crate) fn first_copies<'r, 'm>(
    run: &'r [(&'m banter_core::NewMessage, banter_core::Cursor)],
) -> Vec<&'r (&'m banter_core::NewMessage, banter_core::Cursor)> {
    let mut ids = std::collections::HashSet::with_capacity(run.len());
    let mut sent = std::collections::HashSet::new();
    run.iter()
        .filter(|(m, _)| {
            let new_id = ids.insert(m.id);
            let new_send = m
                .client_id
                .as_ref()
                .is_none_or(|c| sent.insert((m.author_id.0, c.as_str())));
            new_id && new_send
        })
        .collect()
}

/// A message's mentions as the `mentions` column keeps them: names separated by spaces.
pub(crate) fn mention_text(m: &banter_core::NewMessage) -> Option<String> {
    if m.mentions.is_empty() {
        return None;
    }
    let names: Vec<&str> = m
        .mentions
        .iter()
        .map(banter_core::Username::as_str)
        .collect();
    Some(names.join(" "))
}

/// A message's bot mark as the `bot` column keeps it: `NULL` for a person's message, else the
/// label it was posted under (`''` for none).
pub(crate) fn bot_text(m: &banter_core::NewMessage) -> Option<String> {
    m.bot.as_ref().map(|b| {
        b.label
            .as_ref()
            .map(|l| l.as_str().to_owned())
            .unwrap_or_default()
    })
}
