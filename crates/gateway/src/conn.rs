//! One WebSocket connection: its task reads frames, writes frames, and keeps the promises of
//! the protocol for this client.
//!
//! The task owns both halves of the socket and selects over: frames from the client, frames
//! queued for it by the hub, acks of its sends (in the order it sent them), a ping timer, its
//! token's expiry, a kick from the hub, and server shutdown. Nothing it does blocks the others
//! for long: sends are published concurrently (up to [`MAX_IN_FLIGHT`]) and their acks come
//! back in order.
//!
//! The user stream: the hub queues the user's own news (a room added or removed, a read
//! position, a mention) to every connection of the user; a `room` frame's entry is read when
//! it is written, so it is current, and a room the user was removed from is forgotten first.
//!
//! Gap-free join: the connection registers in the room *before* it reads history, so a
//! message committed meanwhile is either in what it reads or queued for it (or both). It
//! then remembers the room's cursor it answered in `joined` (its floor) and drops queued
//! messages at or below it: no gap, no duplicate.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use banter_bus::Event;
use banter_core::{ClientId, Cursor, MessageBody, RoomName, UserId, Username};
use futures::stream::FuturesOrdered;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::chat::{Acked, Actor, ChatError, Request};
use crate::frames::{self, ClientFrame, FrameError, ServerFrame};
use crate::hub::{Kick, Member, News, Outbound, RoomOp};
use crate::GatewayState;

/// Sends of one connection waiting for durability at once; past this, the connection stops
/// reading until acks come back (backpressure instead of unbounded buffering).
pub const MAX_IN_FLIGHT: usize = 64;
/// Close code for an access token that expired without an `auth` frame.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// Close code for an account an admin deactivated: the client should not reconnect.
pub const CLOSE_ACCOUNT_DISABLED: u16 = 4003;
/// Close code when the server shuts down: the client should reconnect (to another process).
pub const CLOSE_RESTART: u16 = 1012;
/// Largest text frame read; bigger ones get a `too_large` error (the socket layer itself
/// refuses anything over [`crate::MAX_WS_MESSAGE`]).
pub const MAX_FRAME: usize = 64 * 1024;
/// How long a closing connection waits for the client's Close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// History replayed per store query during a join.
const REPLAY_PAGE: u32 = 500;
/// Queued frames written per flush at most, so one busy connection cannot starve its own
/// reads and acks for long.
const WRITE_BATCH: usize = 64;
/// Typing events relayed per room per connection: at most one per this period.
const TYPING_PERIOD: Duration = Duration::from_secs(2);

/// The reason a kicked connection is closed with.
fn kick_reason(code: u16) -> &'static str {
    match code {
        CLOSE_ACCOUNT_DISABLED => "account deactivated",
        _ => "too slow: reconnect and resume",
    }
}

/// Who is on the other end, as the token said at upgrade.
#[derive(Debug, Clone)]
pub struct Peer {
    pub id: UserId,
    pub username: Username,
    /// Unix time at which the current token expires (a bot's: never, `i64::MAX`).
    pub expires_at: i64,
    /// Set for a bot, with the rooms it may use.
    pub bot: Option<banter_auth::BotScope>,
}

impl Peer {
    fn actor(&self) -> Actor {
        Actor::of(self.id, self.username.clone(), self.bot.clone())
    }
}

/// The furthest ahead a socket's expiry is timed (ten years): a bot's never comes.
const LONGEST_EXPIRY: i64 = 10 * 365 * 24 * 3600;

/// An error frame for a refusal of the chat service, echoing the client's id.
fn refused(e: &ChatError, client_id: Option<&ClientId>) -> FrameError {
    let message = match e {
        ChatError::Unavailable(_) => {
            "it was not stored; send it again (same client_id) shortly".to_owned()
        }
        other => other.to_string(),
    };
    let mut frame = FrameError::new(e.code(), message);
    frame.client_id = client_id.map(|c| c.as_str().to_owned());
    frame
}

/// Runs a socket write to completion within `timeout`; a peer that does not take it in time
/// is gone. The timer is armed only if the write has to wait: most writes complete at once
/// into the kernel's buffer, and a timer per write was a visible cost under fan-out.
async fn within<F>(timeout: Duration, write: F) -> Result<(), End>
where
    F: Future<Output = Result<(), axum::Error>>,
{
    tokio::pin!(write);
    let written = match futures::poll!(&mut write) {
        std::task::Poll::Ready(done) => Ok(done),
        std::task::Poll::Pending => tokio::time::timeout(timeout, write).await,
    };
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::Gone),
        Err(_) => {
            metrics::counter!("banter_ws_write_timeouts_total").increment(1);
            Err(End::Gone)
        }
    }
}

type Ack = Pin<Box<dyn Future<Output = (Option<ClientId>, Result<Acked, ChatError>)> + Send>>;

/// Why the loop ended, and so how the socket is closed.
enum End {
    /// The client closed or the socket failed: nothing more to send.
    Gone,
    Close(u16, &'static str),
}

struct Conn<S> {
    state: GatewayState,
    id: crate::hub::ConnId,
    peer: Peer,
    sink: S,
    member: Member,
    /// Rooms joined on this connection.
    rooms: HashSet<RoomName>,
    /// Per room, the cursor given in `joined`: queued messages at or below it were already
    /// sent (replayed) or predate the join.
    floors: HashMap<RoomName, Cursor>,
    last_typing: HashMap<RoomName, Instant>,
    acks: FuturesOrdered<Ack>,
    last_heard: Instant,
}

/// Runs a connection to its end. `initial` is the room of `?room=` (or `general`).
///
/// Not `async` itself: the socket is split before the future is made, so the future does not
/// keep room for the unsplit socket for as long as the connection is open.
pub fn run(
    socket: WebSocket,
    state: GatewayState,
    peer: Peer,
    initial: RoomName,
    since: Option<Cursor>,
) -> impl Future<Output = ()> + Send {
    let (sink, stream) = socket.split();
    serve(sink, stream, state, peer, initial, since)
}

/// The connection loop, generic over the socket halves so it can be driven by channels too.
pub async fn serve<S, R>(
    sink: S,
    mut stream: R,
    state: GatewayState,
    peer: Peer,
    initial: RoomName,
    since: Option<Cursor>,
) where
    S: Sink<WsMessage, Error = axum::Error> + Unpin + Send,
    R: Stream<Item = Result<WsMessage, axum::Error>> + Unpin + Send,
{
    let (tx, mut queue) = mpsc::channel(state.config.outbound_queue);
    let kick = Arc::new(Kick::default());
    let member = Member {
        user: peer.username.clone(),
        tx,
        kick: kick.clone(),
    };
    let mut conn = Conn {
        id: state.hub.next_conn_id(),
        state: state.clone(),
        peer,
        sink,
        member,
        rooms: HashSet::new(),
        floors: HashMap::new(),
        last_typing: HashMap::new(),
        acks: FuturesOrdered::new(),
        last_heard: Instant::now(),
    };
    state.hub.connect(conn.id, conn.member.clone());
    metrics::gauge!("banter_ws_connections").increment(1.0);

    let mut ping = tokio::time::interval(state.config.ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ping.tick().await;
    // Joins and frame handling are boxed: they are rare next to deliveries, and inline their
    // state (a replay, a store query) would sit in every idle connection's task for good.
    let end = match Box::pin(conn.join(initial, since)).await {
        Err(end) => end,
        Ok(()) => conn.run(&mut stream, &mut queue, &mut ping, &kick).await,
    };
    if let End::Close(code, reason) = end {
        let close = WsMessage::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }));
        if conn.send(close).await.is_ok() {
            // The closing handshake: read on until the client's Close (or a short timeout).
            // Dropping the socket with unread input would reset the connection, and the
            // client could lose the frames still buffered for it, the Close among them.
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                while let Some(Ok(frame)) = stream.next().await {
                    if matches!(frame, WsMessage::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }
    let _ = conn.sink.close().await;
    for room in &conn.rooms {
        state.hub.leave(room, conn.id);
    }
    state.hub.disconnect(conn.id, &conn.peer.username);
    metrics::gauge!("banter_ws_connections").decrement(1.0);
}

impl<S> Conn<S>
where
    S: Sink<WsMessage, Error = axum::Error> + Unpin + Send,
{
    async fn run<R>(
        &mut self,
        stream: &mut R,
        queue: &mut mpsc::Receiver<Outbound>,
        ping: &mut Interval,
        kick: &Kick,
    ) -> End
    where
        R: Stream<Item = Result<WsMessage, axum::Error>> + Unpin + Send,
    {
        let shutdown = self.state.shutdown.clone();
        // Made once and kept: a fresh waiter per loop turn was a visible cost at 100k
        // deliveries/s (registered and dropped on every wake-up).
        let restart = shutdown.cancelled();
        let kicked = kick.kicked();
        let expiry = tokio::time::sleep_until(self.expiry_instant());
        tokio::pin!(restart, kicked, expiry);
        // Each branch's work is boxed (one allocation per wake-up): a future is as large as
        // its largest await, and inline, a write's timer and frames would take room in every
        // idle connection's task for as long as it is open (about 1.3 KiB each).
        loop {
            let outcome = tokio::select! {
                biased;
                () = &mut restart => return End::Close(CLOSE_RESTART, "server restarting"),
                code = &mut kicked => return End::Close(code, kick_reason(code)),
                () = &mut expiry => {
                    let _ = Box::pin(self.send_frame(&ServerFrame::Error {
                        code: "token_expired",
                        message: "the access token expired; reconnect with a fresh one",
                        client_id: None,
                        retry_after_ms: None,
                    })).await;
                    return End::Close(CLOSE_TOKEN_EXPIRED, "token expired");
                }
                // Queued frames before acks, so a sender usually sees its message, then its ack.
                Some(out) = queue.recv() => Box::pin(self.forward(out, queue)).await,
                Some((client_id, result)) = self.acks.next(), if !self.acks.is_empty() => {
                    Box::pin(self.answer_send(client_id, result)).await
                }
                frame = stream.next(), if self.acks.len() < MAX_IN_FLIGHT => match frame {
                    None | Some(Err(_)) => return End::Gone,
                    Some(Ok(frame)) => {
                        self.last_heard = Instant::now();
                        match Box::pin(self.on_frame(frame)).await {
                            Ok(Some(new_expiry)) => {
                                expiry.as_mut().reset(new_expiry);
                                Ok(())
                            }
                            Ok(None) => Ok(()),
                            Err(end) => Err(end),
                        }
                    }
                },
                _ = ping.tick() => {
                    if self.last_heard.elapsed() > self.state.config.idle_timeout {
                        return End::Close(1001, "idle timeout");
                    }
                    Box::pin(self.send(WsMessage::Ping(Default::default()))).await
                }
            };
            if let Err(end) = outcome {
                return end;
            }
        }
    }

    fn expiry_instant(&self) -> Instant {
        let left = self
            .peer
            .expires_at
            .saturating_sub(chrono::Utc::now().timestamp());
        // A bot's token does not expire: its socket is closed when the bot is revoked.
        let left = left.clamp(0, LONGEST_EXPIRY);
        Instant::now() + Duration::from_secs(u64::try_from(left).unwrap_or(0))
    }

    /// Writes one frame. A client that does not take it within the write timeout is gone:
    /// the task must not hang on a dead peer (nor miss its kick or the shutdown).
    async fn send(&mut self, message: WsMessage) -> Result<(), End> {
        let timeout = self.state.config.write_timeout;
        within(timeout, self.sink.send(message)).await
    }

    async fn send_frame(&mut self, frame: &ServerFrame<'_>) -> Result<(), End> {
        self.send_text(frame.to_json()).await
    }

    async fn send_text(&mut self, text: String) -> Result<(), End> {
        self.send(WsMessage::Text(text.into())).await
    }

    async fn send_error(&mut self, e: &FrameError) -> Result<(), End> {
        metrics::counter!("banter_ws_frame_errors_total", "code" => e.code).increment(1);
        self.send_frame(&ServerFrame::from(e)).await
    }

    /// Writes a queued frame and whatever else is queued by now (up to [`WRITE_BATCH`]) in
    /// one flush: under fan-out a busy connection pays one write per wake-up, not one per
    /// message. Like [`Self::send`], the whole batch must be taken within the write timeout.
    async fn forward(
        &mut self,
        first: Outbound,
        queue: &mut mpsc::Receiver<Outbound>,
    ) -> Result<(), End> {
        let timeout = self.state.config.write_timeout;
        within(timeout, async {
            let mut next = Some(first);
            let mut batched = 0;
            while let Some(out) = next.take() {
                if let Some(news) = &out.news {
                    // Boxed: rare, and inline its store query would sit in every idle
                    // connection's task.
                    if let Some(text) = Box::pin(self.news_frame(news)).await {
                        self.sink.feed(WsMessage::Text(text.into())).await?;
                    }
                } else if self.wants(&out) {
                    self.sink.feed(WsMessage::Text(out.text.clone())).await?;
                }
                batched += 1;
                if batched < WRITE_BATCH {
                    next = queue.try_recv().ok();
                }
            }
            self.sink.flush().await
        })
        .await
    }

    /// The `room` frame of user-stream news, with the room's entry as it is now (`None` when
    /// there is nothing to tell any more: added, then removed before this was written). A
    /// room the user was removed from is forgotten first.
    async fn news_frame(&mut self, news: &News) -> Option<String> {
        if news.op == RoomOp::Removed {
            self.rooms.remove(&news.room);
            self.floors.remove(&news.room);
        }
        let entry = match self.state.chat.entry(&self.peer.actor(), &news.room).await {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(error = %e, "user stream: reading a room's entry failed");
                None
            }
        };
        let entry = match (news.op, entry) {
            (RoomOp::Removed, _) => self.state.chat.bare_entry(&news.room).await,
            (_, Some(mut entry)) => {
                entry.online = self.state.hub.online(&news.room).len();
                entry
            }
            (_, None) => return None,
        };
        Some(
            ServerFrame::Room {
                op: news.op.as_str(),
                room: &entry,
            }
            .to_json(),
        )
    }

    /// Whether a queued frame is for this connection: not a message of a room it left, nor
    /// one at or below the room's floor (already replayed, or older than its join).
    fn wants(&self, out: &Outbound) -> bool {
        let Some(place) = &out.place else {
            return true;
        };
        let (room, cursor) = place;
        self.rooms.contains(room) && self.floors.get(room).is_none_or(|f| cursor > f)
    }

    /// Handles one frame from the client. `Ok(Some(t))` moves the token expiry to `t`.
    async fn on_frame(&mut self, frame: WsMessage) -> Result<Option<Instant>, End> {
        let text = match frame {
            WsMessage::Text(text) => text,
            WsMessage::Binary(_) => {
                self.send_error(&FrameError::new(
                    "validation_failed",
                    "frames must be JSON text, not binary",
                ))
                .await?;
                return Ok(None);
            }
            WsMessage::Close(_) => return Err(End::Gone),
            // Pings are answered by the socket layer; pongs only prove the client is there.
            WsMessage::Ping(_) | WsMessage::Pong(_) => return Ok(None),
        };
        if text.len() > MAX_FRAME {
            self.send_error(&FrameError::new(
                "too_large",
                format!("frames must be at most {MAX_FRAME} bytes"),
            ))
            .await?;
            return Ok(None);
        }
        let parsed = match frames::parse(text.as_str()) {
            Ok(frame) => frame,
            Err(e) => {
                self.send_error(&e).await?;
                return Ok(None);
            }
        };
        match parsed {
            ClientFrame::Send {
                room,
                body,
                client_id,
                reply_to,
                attachments,
            } => self
                .on_send(room, body, client_id, reply_to, attachments)
                .await
                .map(|()| None),
            ClientFrame::Edit {
                id,
                body,
                client_id,
            } => self
                .on_change(id, Request::Edit(body), client_id)
                .await
                .map(|()| None),
            ClientFrame::Delete { id, client_id } => self
                .on_change(id, Request::Delete, client_id)
                .await
                .map(|()| None),
            ClientFrame::React {
                id,
                emoji,
                add,
                client_id,
            } => {
                let request = if add {
                    Request::React(emoji)
                } else {
                    Request::Unreact(emoji)
                };
                self.on_change(id, request, client_id).await.map(|()| None)
            }
            ClientFrame::Read {
                room,
                cursor,
                client_id,
            } => self.on_read(room, cursor, client_id).await.map(|()| None),
            ClientFrame::Join { room, since } => self.join(room, since).await.map(|()| None),
            ClientFrame::Leave { room } => self.leave(room).await.map(|()| None),
            ClientFrame::Typing { room } => self.on_typing(room).await.map(|()| None),
            ClientFrame::Auth { token } => self.on_auth(&token).await,
        }
    }

    /// Joins `room`: becomes a member if not one (durably), registers, sends `members`,
    /// replays after `since`, answers `joined`.
    async fn join(&mut self, room: RoomName, since: Option<Cursor>) -> Result<(), End> {
        let actor = self.peer.actor();
        let mut reader = match self.state.chat.reader(&actor, room.clone()).await {
            Ok(reader) => reader,
            Err(e) => return self.send_error(&refused(&e, None)).await,
        };
        if let Err(e) = self.state.chat.become_member(&actor, &mut reader).await {
            return self.send_error(&refused(&e, None)).await;
        }
        let online = self.state.hub.join(&room, self.id, self.member.clone());
        self.rooms.insert(room.clone());
        self.send_frame(&ServerFrame::Members {
            room: &room,
            users: online,
        })
        .await?;
        let floor = match since {
            Some(since) => self.replay(&room, since).await?,
            None => self.state.store.latest_cursor(&room).await,
        };
        let mut floor = match floor {
            Ok(floor) => floor,
            Err(e) => return self.join_failed(&room, &e).await,
        };
        // What the store does not have yet (on Kafka, persist lags the log) may be in what
        // this gateway heard lately: a resume sends it; a plain join starts after it.
        let ahead = self.state.recent.after(&room, floor);
        if let Some(newest) = ahead.last() {
            if since.is_some() {
                for event in &ahead {
                    self.send_text(frames::event_json(event)).await?;
                }
            }
            floor = Some(newest.cursor);
        }
        match floor {
            Some(cursor) => {
                self.floors.insert(room.clone(), cursor);
            }
            None => {
                self.floors.remove(&room);
            }
        }
        self.send_frame(&ServerFrame::Joined {
            room: &room,
            cursor: floor,
        })
        .await
    }

    async fn join_failed(
        &mut self,
        room: &RoomName,
        e: &banter_store::StoreError,
    ) -> Result<(), End> {
        tracing::warn!(error = %e, "join: reading history failed");
        self.state.hub.leave(room, self.id);
        self.rooms.remove(room);
        self.send_error(&FrameError::new(
            "unavailable",
            "history is unavailable right now; join again shortly",
        ))
        .await
    }

    /// Sends every event of `room` after `since` (messages, edits, deletes, reactions), in
    /// log order. Returns the last cursor sent (`since` when there was nothing to send), or
    /// the store's error.
    async fn replay(
        &mut self,
        room: &RoomName,
        since: Cursor,
    ) -> Result<Result<Option<Cursor>, banter_store::StoreError>, End> {
        let mut after = since;
        loop {
            let page = match self
                .state
                .store
                .events_after(room, Some(after), REPLAY_PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => return Ok(Err(e)),
            };
            let full = page.len() == REPLAY_PAGE as usize;
            for event in &page {
                self.send_text(frames::event_json(event)).await?;
                after = event.cursor;
            }
            metrics::counter!("banter_ws_replayed_messages_total").increment(page.len() as u64);
            if !full {
                return Ok(Ok(Some(after)));
            }
        }
    }

    async fn leave(&mut self, room: RoomName) -> Result<(), End> {
        self.state.hub.leave(&room, self.id);
        self.rooms.remove(&room);
        self.floors.remove(&room);
        self.send_frame(&ServerFrame::Left { room: &room }).await
    }

    /// Whether this user may write now; otherwise the refusal (nothing is stored: the client
    /// sends it again, same client_id, after the wait).
    fn within_rate(&self, client_id: Option<&ClientId>) -> Result<(), FrameError> {
        self.state
            .limits
            .sends_of(self.peer.bot.is_some())
            .check(&self.peer.id)
            .map_err(|wait| {
                let mut e = FrameError::new(
                    "rate_limited",
                    "too many messages; send this one again after retry_after_ms",
                );
                e.client_id = client_id.map(|c| c.as_str().to_owned());
                e.retry_after_ms = Some(wait.millis());
                e
            })
    }

    async fn on_send(
        &mut self,
        room: RoomName,
        body: MessageBody,
        client_id: Option<ClientId>,
        reply_to: Option<uuid::Uuid>,
        attachments: Vec<uuid::Uuid>,
    ) -> Result<(), End> {
        let actor = self.peer.actor();
        if let Err(e) = self.state.chat.reader(&actor, room.clone()).await {
            return self.send_error(&refused(&e, client_id.as_ref())).await;
        }
        if let Err(e) = self.within_rate(client_id.as_ref()) {
            return self.send_error(&e).await;
        }
        if !self.rooms.contains(&room) {
            // Sending to a room joins it, so the sender sees its own message like everyone.
            self.join(room.clone(), None).await?;
        }
        metrics::counter!("banter_ws_sends_total").increment(1);
        // Read again after the join: it may have made the sender a member.
        let pending = match self.state.chat.reader(&actor, room).await {
            Ok(mut reader) => {
                self.state
                    .chat
                    .send(
                        &actor,
                        &mut reader,
                        body,
                        client_id.clone(),
                        reply_to,
                        &attachments,
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        self.await_ack(client_id, pending).await
    }

    /// A read position moved forward.
    async fn on_read(
        &mut self,
        room: RoomName,
        cursor: Cursor,
        client_id: Option<ClientId>,
    ) -> Result<(), End> {
        let actor = self.peer.actor();
        let pending = match self.state.chat.reader(&actor, room).await {
            Ok(reader) => {
                self.state
                    .chat
                    .read(&actor, &reader, cursor, client_id.clone())
                    .await
            }
            Err(e) => Err(e),
        };
        self.await_ack(client_id, pending).await
    }

    /// An edit, delete, reaction or removed reaction.
    async fn on_change(
        &mut self,
        id: uuid::Uuid,
        request: Request,
        client_id: Option<ClientId>,
    ) -> Result<(), End> {
        if let Err(e) = self.within_rate(client_id.as_ref()) {
            return self.send_error(&e).await;
        }
        metrics::counter!("banter_ws_changes_total").increment(1);
        let actor = self.peer.actor();
        let pending = self
            .state
            .chat
            .change(&actor, id, request, client_id.clone())
            .await;
        self.await_ack(client_id, pending).await
    }

    /// Queues the ack of a submitted event: submitted here, in the order the client sent
    /// them (so its events keep their order in the room); the acks are awaited side by side
    /// and answered in that order. A refusal before the log is answered at once.
    async fn await_ack(
        &mut self,
        client_id: Option<ClientId>,
        pending: Result<crate::chat::Pending, ChatError>,
    ) -> Result<(), End> {
        match pending {
            Ok(pending) => {
                self.acks
                    .push_back(Box::pin(async move { (client_id, pending.await) }));
                Ok(())
            }
            Err(e) => self.send_error(&refused(&e, client_id.as_ref())).await,
        }
    }

    async fn answer_send(
        &mut self,
        client_id: Option<ClientId>,
        result: Result<Acked, ChatError>,
    ) -> Result<(), End> {
        match result {
            Ok(acked) => {
                self.send_frame(&ServerFrame::Ack {
                    client_id: client_id.as_ref(),
                    id: acked.id,
                    room: &acked.room,
                    cursor: acked.cursor,
                    created_at: acked.at,
                })
                .await
            }
            Err(e) => self.send_error(&refused(&e, client_id.as_ref())).await,
        }
    }

    async fn on_typing(&mut self, room: RoomName) -> Result<(), End> {
        if !self.rooms.contains(&room) {
            return self
                .send_error(&FrameError::new(
                    "forbidden",
                    format!("join {room} before typing in it"),
                ))
                .await;
        }
        if self.state.limits.typing.check(&self.peer.id).is_err() {
            // A hint, not a message: dropping an excess one loses nothing the client needs.
            return Ok(());
        }
        let now = Instant::now();
        if self
            .last_typing
            .get(&room)
            .is_some_and(|t| now.duration_since(*t) < TYPING_PERIOD)
        {
            // Typing is a hint that lasts seconds: extra ones inside the period add nothing.
            return Ok(());
        }
        self.last_typing.insert(room.clone(), now);
        let event = Event::Typing {
            room,
            user: self.peer.username.clone(),
        };
        if self.state.bus.announce(event).await.is_err() {
            return self
                .send_error(&FrameError::new(
                    "unavailable",
                    "typing could not be relayed",
                ))
                .await;
        }
        Ok(())
    }

    async fn on_auth(&mut self, token: &str) -> Result<Option<Instant>, End> {
        // Boxed: a re-auth is rare, and its future would sit in every idle connection's.
        let who = match Box::pin(self.state.tokens.authenticate(token)).await {
            Ok(who) => who,
            Err(banter_auth::Error::AccountDisabled) => {
                return Err(End::Close(
                    CLOSE_ACCOUNT_DISABLED,
                    kick_reason(CLOSE_ACCOUNT_DISABLED),
                ))
            }
            Err(e) => {
                let code = if matches!(e, banter_auth::Error::TokenExpired) {
                    "token_expired"
                } else {
                    "unauthorized"
                };
                self.send_error(&FrameError::new(code, "that token is not valid"))
                    .await?;
                return Ok(None);
            }
        };
        if who.id != self.peer.id {
            self.send_error(&FrameError::new(
                "forbidden",
                "the token is for another user",
            ))
            .await?;
            return Ok(None);
        }
        self.peer.expires_at = who.expires_at.unwrap_or(i64::MAX);
        self.send_frame(&ServerFrame::Authenticated {
            expires_in: self
                .peer
                .expires_at
                .saturating_sub(chrono::Utc::now().timestamp())
                .min(LONGEST_EXPIRY),
        })
        .await?;
        Ok(Some(self.expiry_instant()))
    }
}

#[cfg(test)]
mod tests {
    /// The size of what `f` returns, from its type alone.
    fn size_of_output<A, B, C, D, E, F: FnOnce(A, B, C, D, E) -> Fut, Fut>(_: F) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// Every idle connection holds its task's state for as long as it is open: keep it small
    /// (rare, large steps such as a join's replay are boxed). 19,000 connections × this is
    /// part of the idle benchmark's memory per connection.
    #[test]
    fn a_connection_task_stays_small() {
        let bytes = size_of_output(super::run);
        assert!(bytes <= 2 * 1024, "the connection future is {bytes} bytes");
    }
}
