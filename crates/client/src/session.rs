//! The client with its I/O: HTTP for logging in, refreshing and sending, and one WebSocket
//! kept open by a background task that drives [`Outbox`], [`Resume`] and [`Gateways`].
//!
//! ```no_run
//! # async fn run() -> Result<(), banter_client::Error> {
//! let client = banter_client::Client::with_token(vec!["http://localhost:8080".into()], "bnt_…");
//! let mut session = client.connect(&["general"]).await?;
//! while let Some(event) = session.next().await {
//!     if let banter_client::Event::Message(m) = event {
//!         if let Some(text) = m.body.strip_prefix("!echo ") {
//!             session.send(&m.room, text).reply_to(&m.id).await?;
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The task reconnects after any loss (with backoff, to the next gateway), resumes every
//! room after the last cursor it handed out (so nothing is missed and nothing doubled), and
//! re-sends what was not acked with its `client_id` (so the server stores it once). Events
//! come out of [`Session::next`] in each room's log order.

use std::collections::HashMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::{Answer, Gateways, Outbox, Resume};

/// What went wrong, in terms a caller acts on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The server refused: its HTTP status (0 over the socket), its `error` code and message.
    #[error("{code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// No server could be reached (the request may be sent again).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The session ended (closed, or its token was revoked).
    #[error("the session is closed")]
    Closed,
}

/// A message as readers get it (see docs/api.md): the fields a bot needs typed, the whole
/// frame in `raw`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Message {
    pub id: String,
    pub room: String,
    pub author: String,
    pub body: String,
    pub cursor: String,
    pub created_at: String,
    #[serde(default)]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    /// A bot sent it.
    #[serde(default)]
    pub bot: bool,
    /// The label a webhook posted it under.
    #[serde(default)]
    pub label: Option<String>,
    #[serde(skip)]
    pub raw: Value,
}

/// What [`Session::next`] hands out.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new message in a room followed (boxed: it is much larger than the others).
    Message(Box<Message>),
    /// Any other frame of the rooms' logs or the user's stream (`edited`, `deleted`,
    /// `reaction`, `member`, `topic`, `read`, `mention`, `typing`, `presence`, …), as sent.
    Frame(Value),
    /// Connected to this gateway, every room joined (again).
    Connected(String),
    /// The connection was lost; the task is reconnecting.
    Disconnected,
}

/// An ack: the message is durable at `cursor`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Ack {
    pub id: String,
    pub room: String,
    pub cursor: String,
    pub created_at: String,
    #[serde(default)]
    pub client_id: Option<String>,
}

/// A user's or a bot's handle on banter's HTTP API, before a socket is opened.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    servers: Vec<String>,
    /// Where the auth API is when it is not on the servers (a split deployment).
    auth: Option<String>,
    token: String,
    refresh_token: Option<String>,
}

/// The auth API's paths: on `auth` when it is elsewhere.
const AUTH_PATHS: [&str; 5] = [
    "/api/v1/register",
    "/api/v1/login",
    "/api/v1/refresh",
    "/api/v1/logout",
    "/api/v1/me",
];

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Value,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl Client {
    /// A bot's token (or a user's access token, without refreshing it).
    pub fn with_token(servers: Vec<String>, token: impl Into<String>) -> Self {
        assert!(!servers.is_empty(), "a client needs a server");
        Self {
            http: reqwest::Client::new(),
            servers: servers
                .into_iter()
                .map(|s| s.trim_end_matches('/').to_owned())
                .collect(),
            auth: None,
            token: token.into(),
            refresh_token: None,
        }
    }

    /// The auth API's base URL, when it is not on the servers (`banter auth` beside
    /// gateways); login, refresh and `me` go there.
    pub fn auth_url(mut self, auth: impl Into<String>) -> Self {
        self.auth = Some(auth.into().trim_end_matches('/').to_owned());
        self
    }

    /// Logs in as a user (its access token is refreshed when it expires). For an auth API
    /// elsewhere: `Client::with_token(servers, "").auth_url(auth)`, then [`Client::log_in`].
    pub async fn login(
        servers: Vec<String>,
        username: &str,
        password: &str,
    ) -> Result<Self, Error> {
        let mut client = Self::with_token(servers, "");
        client.log_in(username, password).await?;
        Ok(client)
    }

    /// Logs in as a user, keeping its tokens.
    pub async fn log_in(&mut self, username: &str, password: &str) -> Result<(), Error> {
        let data = self
            .call(
                reqwest::Method::POST,
                "/api/v1/login",
                Some(json!({"username": username, "password": password})),
                false,
            )
            .await?;
        self.take_tokens(&data);
        Ok(())
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    fn take_tokens(&mut self, data: &Value) {
        self.token = data["token"].as_str().unwrap_or_default().to_owned();
        self.refresh_token = data["refresh_token"].as_str().map(str::to_owned);
    }

    /// A fresh access token from the refresh token (which rotates).
    pub async fn refresh(&mut self) -> Result<(), Error> {
        let Some(refresh) = self.refresh_token.clone() else {
            return Err(refused(401, "token_expired", "no refresh token"));
        };
        let data = self
            .call(
                reqwest::Method::POST,
                "/api/v1/refresh",
                Some(json!({ "refresh_token": refresh })),
                false,
            )
            .await?;
        self.take_tokens(&data);
        Ok(())
    }

    /// Calls the HTTP API (any server of the list that answers); the envelope's `data`.
    pub async fn api(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Error> {
        match self.call(method.clone(), path, body.clone(), true).await {
            Err(Error::Refused { code, .. })
                if code == "token_expired" && self.refresh_token.is_some() =>
            {
                self.refresh().await?;
                self.call(method, path, body, true).await
            }
            other => other,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        auth: bool,
    ) -> Result<Value, Error> {
        let mut last = String::new();
        let elsewhere = self
            .auth
            .as_ref()
            .filter(|_| AUTH_PATHS.contains(&path))
            .map(std::slice::from_ref);
        for server in elsewhere.unwrap_or(&self.servers) {
            let mut request = self.http.request(method.clone(), format!("{server}{path}"));
            if auth {
                request = request.bearer_auth(&self.token);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let status = response.status().as_u16();
            let envelope: Envelope = response.json().await.unwrap_or(Envelope {
                data: Value::Null,
                error: None,
                message: None,
            });
            if (200..300).contains(&status) {
                return Ok(envelope.data);
            }
            return Err(refused(
                status,
                envelope.error.as_deref().unwrap_or("unknown"),
                envelope.message.as_deref().unwrap_or(""),
            ));
        }
        Err(Error::Unreachable(last))
    }

    /// The account's name.
    pub async fn username(&mut self) -> Result<String, Error> {
        let me = self.api(reqwest::Method::GET, "/api/v1/me", None).await?;
        Ok(me["username"].as_str().unwrap_or_default().to_owned())
    }

    /// Sends a message over HTTP (`POST /api/v1/rooms/{room}/messages`): the stored message
    /// once durable. The same `client_id` again answers with the first.
    pub async fn post_message(
        &mut self,
        room: &str,
        body: &str,
        client_id: Option<&str>,
    ) -> Result<Value, Error> {
        let mut input = json!({ "body": body });
        if let Some(id) = client_id {
            input["client_id"] = id.into();
        }
        let path = format!("/api/v1/rooms/{}/messages", encode(room));
        self.api(reqwest::Method::POST, &path, Some(input)).await
    }

    /// Opens the socket, joins `rooms` (from now on), and hands the socket to a background
    /// task; resolves once the first connection has joined them all.
    pub async fn connect(mut self, rooms: &[&str]) -> Result<Session, Error> {
        let username = self.username().await?;
        let (commands, inbox) = mpsc::channel(256);
        // Unbounded: the task must never wait on a caller that awaits an ack meanwhile.
        let (events, outbox) = mpsc::unbounded_channel();
        let (ready, joined) = oneshot::channel();
        let task = Task {
            gateways: Gateways::new(self.servers.clone(), 0),
            client: self,
            rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
            resume: Resume::new(rooms.iter().copied()),
            outbox: Outbox::new(32, Instant::now()),
            waiting: HashMap::new(),
            commands: inbox,
            events,
            ready: Some(ready),
            seq: 0,
        };
        tokio::spawn(task.run());
        joined.await.map_err(|_| Error::Closed)??;
        Ok(Session {
            username,
            commands,
            events: outbox,
        })
    }
}

fn refused(status: u16, code: &str, message: &str) -> Error {
    Error::Refused {
        status,
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

/// A room name in a path (`dm:a:b` has colons, which paths keep).
fn encode(room: &str) -> String {
    url::form_urlencoded::byte_serialize(room.as_bytes()).collect()
}

/// An open session: events in, sends out. Dropping it closes the socket.
#[derive(Debug)]
pub struct Session {
    pub username: String,
    commands: mpsc::Sender<Command>,
    events: mpsc::UnboundedReceiver<Event>,
}

enum Command {
    Send {
        room: String,
        body: String,
        reply_to: Option<String>,
        client_id: Option<String>,
        done: oneshot::Sender<Result<Ack, Error>>,
    },
}

impl Session {
    /// The next event; `None` once the session is over.
    pub async fn next(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// A message to send: `.await` it for its ack (once durable, however many reconnects
    /// that takes); `.reply_to(id)` and `.client_id(id)` before.
    pub fn send(&self, room: &str, body: &str) -> Send<'_> {
        Send {
            session: self,
            room: room.to_owned(),
            body: body.to_owned(),
            reply_to: None,
            client_id: None,
        }
    }
}

/// See [`Session::send`].
#[derive(Debug)]
pub struct Send<'a> {
    session: &'a Session,
    room: String,
    body: String,
    reply_to: Option<String>,
    client_id: Option<String>,
}

impl Send<'_> {
    pub fn reply_to(mut self, id: &str) -> Self {
        self.reply_to = Some(id.to_owned());
        self
    }

    pub fn client_id(mut self, id: &str) -> Self {
        self.client_id = Some(id.to_owned());
        self
    }
}

impl std::future::IntoFuture for Send<'_> {
    type Output = Result<Ack, Error>;
    type IntoFuture = futures::future::BoxFuture<'static, Result<Ack, Error>>;

    fn into_future(self) -> Self::IntoFuture {
        let (done, answer) = oneshot::channel();
        let commands = self.session.commands.clone();
        let command = Command::Send {
            room: self.room,
            body: self.body,
            reply_to: self.reply_to,
            client_id: self.client_id,
            done,
        };
        Box::pin(async move {
            commands.send(command).await.map_err(|_| Error::Closed)?;
            answer.await.map_err(|_| Error::Closed)?
        })
    }
}

/// The background task of a session.
struct Task {
    client: Client,
    gateways: Gateways,
    rooms: Vec<String>,
    resume: Resume,
    outbox: Outbox,
    /// The sends waiting for their answer, by `seq`.
    waiting: HashMap<u64, oneshot::Sender<Result<Ack, Error>>>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    ready: Option<oneshot::Sender<Result<(), Error>>>,
    seq: u64,
}

/// How one connection ended.
enum End {
    /// Lost: connect again.
    Lost,
    /// The session is over (the caller dropped it, or the account is gone).
    Over(Error),
}

/// Close codes after which connecting again is no use.
const CLOSE_ACCOUNT_DISABLED: u16 = 4003;
const CLOSE_TOKEN_EXPIRED: u16 = 4001;

impl Task {
    async fn run(mut self) {
        let mut attempt: u32 = 0;
        loop {
            let end = match self.connection(&mut attempt).await {
                Ok(end) => end,
                Err(e) => End::Over(e),
            };
            self.outbox.disconnected();
            match end {
                End::Over(e) => {
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Err(e.clone()));
                    }
                    for (_, done) in self.waiting.drain() {
                        let _ = done.send(Err(e.clone()));
                    }
                    return;
                }
                End::Lost => {
                    let _ = self.events.send(Event::Disconnected);
                    // Half a second, doubling to ten, the next gateway each time.
                    let wait = Duration::from_millis(500 * 2u64.pow(attempt.min(5)))
                        .min(Duration::from_secs(10));
                    attempt += 1;
                    self.gateways.move_on();
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One connection, from the handshake to its loss.
    async fn connection(&mut self, attempt: &mut u32) -> Result<End, Error> {
        // The first room is joined by the URL itself, resuming after its cursor (the
        // server's own join, with `since`): no live event of it can overtake its replay.
        let mut url = crate::ws_url(self.gateways.current(), &self.client.token);
        if let Some(first) = self.rooms.first() {
            url.push_str("&room=");
            url.push_str(&encode(first));
            if let Some(cursor) = self.resume.cursor(first) {
                url.push_str("&since=");
                url.push_str(cursor);
            }
        }
        let handshake = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await;
        let mut socket = match handshake {
            Ok(Ok((socket, _))) => socket,
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response)))
                if response.status() == 401 && self.client.refresh_token.is_some() =>
            {
                self.client.refresh().await?;
                return Ok(End::Lost);
            }
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response)))
                if matches!(response.status().as_u16(), 401 | 403) =>
            {
                return Err(refused(
                    response.status().as_u16(),
                    "unauthorized",
                    "the server refused the token",
                ));
            }
            _ => return Ok(End::Lost),
        };
        for room in self.rooms.iter().skip(1) {
            if socket
                .send(WsMessage::text(self.resume.join(room)))
                .await
                .is_err()
            {
                return Ok(End::Lost);
            }
        }
        // One `joined` per room: the URL's (or `general` without rooms), then ours.
        let mut joins_due = self.rooms.len().max(1);
        let mut connected = false;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            if connected {
                while let Some((seq, frame)) = self.outbox.next_to_send(Instant::now()) {
                    if socket.send(WsMessage::text(frame)).await.is_err() {
                        self.outbox.unsent(seq);
                        return Ok(End::Lost);
                    }
                }
            }
            tokio::select! {
                command = self.commands.recv() => match command {
                    None => {
                        let _ = socket.close(None).await;
                        return Ok(End::Over(Error::Closed));
                    }
                    Some(command) => self.take(command),
                },
                frame = socket.next() => {
                    let text = match frame {
                        Some(Ok(WsMessage::Text(text))) => text,
                        Some(Ok(WsMessage::Close(close))) => {
                            let code = close.map(|c| u16::from(c.code)).unwrap_or(0);
                            if code == CLOSE_ACCOUNT_DISABLED {
                                return Ok(End::Over(refused(403, "account_disabled", "the account was deactivated or the bot revoked")));
                            }
                            if code == CLOSE_TOKEN_EXPIRED {
                                self.client.refresh().await?;
                            }
                            return Ok(End::Lost);
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(_)) | None => return Ok(End::Lost),
                    };
                    let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    if frame["type"] == "joined" && !connected {
                        self.resume.heard(&frame);
                        joins_due = joins_due.saturating_sub(1);
                        if joins_due == 0 {
                            connected = true;
                            *attempt = 0;
                            if let Some(ready) = self.ready.take() {
                                let _ = ready.send(Ok(()));
                            }
                            let _ = self.events.send(Event::Connected(self.gateways.current().to_owned()));
                        }
                        continue;
                    }
                    self.hear(frame).await;
                }
                _ = tick.tick() => {}
            }
        }
    }

    fn take(&mut self, command: Command) {
        let Command::Send {
            room,
            body,
            reply_to,
            client_id,
            done,
        } = command;
        self.seq += 1;
        let client_id = client_id
            .unwrap_or_else(|| format!("rs-{}-{}", std::process::id(), uuid_ish(self.seq)));
        let mut frame = json!({"type": "send", "room": room, "body": body, "client_id": client_id});
        if let Some(parent) = reply_to {
            frame["reply_to"] = parent.into();
        }
        self.outbox.push(self.seq, client_id, frame.to_string());
        self.waiting.insert(self.seq, done);
    }

    /// A frame from the server: an answer to a send, or an event to hand out (once: a
    /// timeline event at or before the room's cursor was handed out already).
    async fn hear(&mut self, frame: Value) {
        match self.outbox.answer(&frame, Instant::now()) {
            Some(Answer::Acked { seq, ack }) => {
                if let Some(done) = self.waiting.remove(&seq) {
                    let ack = serde_json::from_value(ack)
                        .map_err(|e| refused(0, "bad_ack", &e.to_string()));
                    let _ = done.send(ack);
                }
                return;
            }
            Some(Answer::Refused { seq, code, error }) => {
                if let Some(done) = self.waiting.remove(&seq) {
                    let message = error["message"].as_str().unwrap_or_default();
                    let _ = done.send(Err(refused(0, &code, message)));
                }
                return;
            }
            Some(Answer::Retry { .. }) => return,
            None => {}
        }
        if let (Some(room), Some(cursor)) = (frame["room"].as_str(), frame["cursor"].as_str()) {
            if frame["type"] != "read" && frame["type"] != "mention" {
                if self.resume.cursor(room).is_some_and(|seen| cursor <= seen) {
                    return;
                }
                self.resume.heard(&frame);
            }
        }
        let event = if frame["type"] == "message" {
            match serde_json::from_value::<Message>(frame.clone()) {
                Ok(mut m) => {
                    m.raw = frame;
                    Event::Message(Box::new(m))
                }
                Err(_) => Event::Frame(frame),
            }
        } else {
            Event::Frame(frame)
        };
        let _ = self.events.send(event);
    }
}

/// A client id part unique enough within a process and across its restarts.
fn uuid_ish(seq: u64) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}-{seq:x}")
}
