//! The gateway: where clients talk. It upgrades `/ws` to WebSocket connections, keeps each
//! room's connections and each user's ([`hub`]), knows who is in which room ([`directory`]),
//! hands what people do to the chat service ([`chat`]: rights, then a room event for the
//! log) and fans the bus's events out to the rooms' connections and to the users they
//! concern (the user stream), serves rooms, members, history, threads and presence over
//! HTTP ([`api`]), attachments ([`files`]: uploads, downloads, their cleanup), the admin API
//! ([`admin`]), and the web pages ([`web`]).
//!
//! The gateway does not know which bus it runs on: the in-process one of `banter serve` or
//! Kafka. Every room event reaches sockets through the same path, [`dispatch`]: from the bus,
//! in log order, serialized once, queued to each member.

pub mod admin;
pub mod api;
pub mod bots;
pub mod chat;
pub mod conn;
pub mod directory;
pub mod files;
pub use banter_core::frames;
pub mod hub;
mod images;
pub mod limits;
pub mod openapi;
pub mod origins;
pub mod outgoing;
pub mod presence;
pub mod push;
pub mod recent;
pub mod search;
pub mod web;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use axum::routing::get;
use axum::Router;
use banter_auth::TokenKeys;
use banter_bus::{DynBus, Event, NodeId};
use banter_core::{LoggedEvent, RoomChange, RoomEvent, UserId};
use banter_store::DynStore;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::directory::Directory;
use crate::frames::ServerFrame;
use crate::hub::{Hub, News, Outbound, RoomOp};
use crate::recent::Recent;

/// The largest WebSocket message the socket layer accepts at all. Frames between
/// [`conn::MAX_FRAME`] and this get a `too_large` error frame and the connection lives on;
/// bigger ones close it (1009), as reading them would cost memory.
pub const MAX_WS_MESSAGE: usize = 1024 * 1024;
/// Bytes read from a WebSocket per read, and what an idle connection keeps for reading: the
/// socket layer allocates and zero-fills it up front (4 KiB cost 2 KiB more per idle
/// connection than 1 KiB, and 256 bytes about 1.8 KiB less than 1 KiB; history 7 and 12). A
/// frame larger than this (a long send) takes another read, and grows the buffer to fit it.
pub const WS_READ_BUFFER: usize = 256;
/// Bytes of queued frames gathered before a write to the socket (a flush writes the rest).
pub const WS_WRITE_BUFFER: usize = 16 * 1024;

/// Tunables of the gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Frames queued per connection before it counts as too slow and is closed (4008).
    pub outbound_queue: usize,
    /// How often the server pings each connection.
    pub ping_interval: Duration,
    /// A connection that sends nothing (not even a pong) for this long is closed.
    pub idle_timeout: Duration,
    /// A frame the client does not take within this long ends the connection.
    pub write_timeout: Duration,
    /// How long recent messages are kept for resumes that history cannot serve yet.
    pub recent_keep: Duration,
    /// At most this many recent messages are kept per room.
    pub recent_per_room: usize,
    /// How often this gateway tells the others everyone online on it.
    pub presence_heartbeat: Duration,
    /// Presence another gateway has not confirmed for this long is forgotten.
    pub presence_ttl: Duration,
    /// The web app's files and settings.
    pub web: web::WebConfig,
    /// Rate and connection limits.
    pub limits: limits::GatewayLimitSettings,
    /// Pages of other origins allowed to open WebSockets (the gateway's own always may).
    pub ws_origins: origins::WsOrigins,
    /// Attachments: sizes, the quota, the cleanup.
    pub files: files::FilesSettings,
    /// Web Push: the key browsers subscribe with (`None`: push is off here).
    pub push: Option<push::PushApi>,
    /// The admin API's settings.
    pub admin: admin::AdminConfig,
    /// How clients reach this listener (`http` or `https`), for the URLs it gives out (an
    /// incoming webhook's) when no trusted proxy says otherwise.
    pub scheme: &'static str,
    /// How outgoing webhooks are delivered.
    pub hooks: outgoing::HookSettings,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            outbound_queue: 1024,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            write_timeout: Duration::from_secs(30),
            recent_keep: Duration::from_secs(300),
            recent_per_room: 1000,
            presence_heartbeat: Duration::from_secs(10),
            presence_ttl: Duration::from_secs(30),
            web: web::WebConfig::default(),
            limits: limits::GatewayLimitSettings::default(),
            ws_origins: origins::WsOrigins::default(),
            files: files::FilesSettings::default(),
            push: None,
            admin: admin::AdminConfig::default(),
            scheme: "http",
            hooks: outgoing::HookSettings::default(),
        }
    }
}

/// How long shutdown waits for the bus to hand over what it still holds.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// What the gateway's handlers and connections share. Cloning is a few `Arc` increments.
#[derive(Debug, Clone)]
pub struct GatewayState {
    pub hub: Arc<Hub>,
    /// This gateway, for presence across gateways.
    pub node: NodeId,
    /// What this gateway heard lately, per room, for resumes ahead of the store.
    pub recent: Arc<Recent>,
    /// Rooms and their members, kept up from the log.
    pub directory: Arc<Directory>,
    /// Rights, and the events that go to the log: what every transport goes through.
    pub chat: chat::Chat,
    pub bus: DynBus,
    pub store: DynStore,
    pub tokens: Arc<TokenKeys>,
    pub config: Arc<GatewayConfig>,
    /// Cancelled at shutdown: every connection closes with 1012 and its client reconnects.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks, so shutdown can wait until they have said goodbye.
    pub tasks: TaskTracker,
    pub limits: Arc<limits::GatewayLimits>,
    /// Where attachments' bytes are kept (`None`: this gateway takes no uploads).
    pub files: Option<banter_files::Files>,
    /// What the admin API keeps between requests.
    pub admin: Arc<admin::AdminState>,
    /// The rooms' outgoing webhooks, as lately read.
    pub hooks: Arc<outgoing::Known>,
    /// The client outgoing webhooks are delivered with: no redirects followed (a redirect
    /// could lead where the URL check would refuse).
    pub webhook_http: reqwest::Client,
}

impl FromRef<GatewayState> for Arc<TokenKeys> {
    fn from_ref(state: &GatewayState) -> Self {
        state.tokens.clone()
    }
}

impl GatewayState {
    /// Builds the state and starts [`dispatch`] from the bus.
    pub fn start(
        bus: DynBus,
        store: DynStore,
        tokens: Arc<TokenKeys>,
        config: GatewayConfig,
        files: Option<banter_files::Files>,
        shutdown: CancellationToken,
    ) -> Self {
        let node = uuid::Uuid::new_v4();
        let (changes_tx, changes) = mpsc::channel(presence::CHANGES_QUEUE);
        let hub = Arc::new(Hub::with_changes(changes_tx));
        let recent = Arc::new(Recent::new(config.recent_keep, config.recent_per_room));
        let directory = Arc::new(Directory::new(store.clone(), recent.clone()));
        let hello = Arc::new(Notify::new());
        let tasks = TaskTracker::new();
        // Subscribed before the store is read, so no deactivation falls between.
        let events = bus.subscribe();
        tokio::spawn(load_standings(
            store.clone(),
            tokens.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(dispatch(
            node,
            Heard {
                hub: hub.clone(),
                recent: recent.clone(),
                directory: directory.clone(),
                tokens: tokens.clone(),
            },
            hello.clone(),
            events,
        ));
        // Tracked: shutdown waits for its goodbye.
        tasks.spawn(presence::announce(
            node,
            hub.clone(),
            bus.clone(),
            changes,
            hello,
            presence::Timing {
                heartbeat: config.presence_heartbeat,
                ttl: config.presence_ttl,
            },
            shutdown.clone(),
        ));
        let admin = Arc::new(admin::AdminState::default());
        tokio::spawn(admin::sweep(
            store.clone(),
            admin.swept.clone(),
            shutdown.clone(),
        ));
        if let Some(files) = &files {
            tasks.spawn(files::sweep(
                store.clone(),
                files.clone(),
                config.files.clone(),
                shutdown.clone(),
            ));
        }
        let webhook_http = outgoing::http_client(config.hooks.allow_private);
        Self {
            hub,
            node,
            chat: chat::Chat::new(
                store.clone(),
                bus.clone(),
                recent.clone(),
                directory.clone(),
                config.files.unattached_ttl,
            ),
            recent,
            directory,
            bus,
            store,
            tokens,
            limits: Arc::new(limits::GatewayLimits::new(&config.limits)),
            config: Arc::new(config),
            shutdown,
            tasks,
            files,
            admin,
            hooks: Arc::default(),
            webhook_http,
        }
    }

    /// Closes every connection (1012) and waits, at most `grace`, for them to finish.
    pub async fn drain(&self, grace: Duration) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within {grace:?}");
        }
        // What the connections handed over last (sends unanswered, presence goodbyes) leaves
        // the process before it exits.
        self.bus.flush(FLUSH_GRACE).await;
    }
}

/// The gateway's routes: `/ws`, the rooms/history/presence/message API, bots and webhooks,
/// and the web page.
pub fn router(state: GatewayState) -> Router {
    Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/api/v1/rooms", get(api::rooms).post(api::create_room))
        .route("/api/v1/rooms/public", get(api::public_rooms))
        .route(
            "/api/v1/rooms/{room}",
            axum::routing::patch(api::update_room),
        )
        .route(
            "/api/v1/rooms/{room}/members",
            get(api::members).post(api::add_member),
        )
        .route(
            "/api/v1/rooms/{room}/members/{username}",
            axum::routing::delete(api::remove_member),
        )
        .route(
            "/api/v1/rooms/{room}/read",
            axum::routing::put(api::mark_read),
        )
        .route("/api/v1/rooms/{room}/muted", axum::routing::put(api::mute))
        .route(
            "/api/v1/rooms/{room}/messages",
            get(api::history).post(bots::post_message),
        )
        .route(
            "/api/v1/rooms/{room}/webhooks",
            get(bots::list_webhooks).post(bots::create_webhook),
        )
        .route(
            "/api/v1/rooms/{room}/webhooks/{id}",
            axum::routing::delete(bots::revoke_webhook),
        )
        .route(
            "/api/v1/rooms/{room}/outgoing-webhooks",
            get(outgoing::list).post(outgoing::create),
        )
        .route(
            "/api/v1/rooms/{room}/outgoing-webhooks/{id}",
            axum::routing::delete(outgoing::revoke),
        )
        .route(
            "/api/v1/hooks/{secret}",
            axum::routing::post(bots::incoming),
        )
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/api/v1/bots", get(bots::list).post(bots::create))
        .route("/api/v1/bots/{name}", axum::routing::delete(bots::revoke))
        .route("/api/v1/rooms/{room}/presence", get(api::presence))
        .route(
            "/api/v1/messages/{id}",
            axum::routing::patch(api::edit_message).delete(api::delete_message),
        )
        .route("/api/v1/messages/{id}/replies", get(api::replies))
        .route("/api/v1/messages/{id}/edits", get(api::edits))
        .route("/api/v1/search", get(search::search))
        .route("/api/v1/push/key", get(push::key))
        .route(
            "/api/v1/push/subscriptions",
            axum::routing::post(push::subscribe).delete(push::unsubscribe),
        )
        .route(
            "/api/v1/uploads",
            axum::routing::post(files::upload)
                // The size limit is the handler's: it answers 413 once the body crosses it.
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/api/v1/files/{id}", get(files::download))
        .route("/api/v1/files/{id}/thumbnail", get(files::thumbnail))
        .route("/api/v1/admin/users", get(admin::users))
        .route(
            "/api/v1/admin/users/{username}/deactivate",
            axum::routing::post(admin::deactivate),
        )
        .route(
            "/api/v1/admin/users/{username}/reactivate",
            axum::routing::post(admin::reactivate),
        )
        .route(
            "/api/v1/admin/users/{username}/admin",
            axum::routing::put(admin::set_admin),
        )
        .route(
            "/api/v1/admin/invites",
            get(admin::invites).post(admin::create_invite),
        )
        .route(
            "/api/v1/admin/invites/{id}",
            axum::routing::delete(admin::revoke_invite),
        )
        .route(
            "/api/v1/admin/settings",
            get(admin::settings).put(admin::put_settings),
        )
        .route("/api/v1/admin/audit", get(admin::audit))
        .route("/api/v1/admin/stats", get(admin::stats))
        .route(
            "/api/v1/admin/users/{username}/purge",
            axum::routing::post(admin::purge),
        )
        .route("/api/v1/admin/rooms", get(admin::rooms))
        .route(
            "/api/v1/admin/rooms/{room}",
            axum::routing::delete(admin::delete_room),
        )
        .route(
            "/api/v1/admin/rooms/{room}/archived",
            axum::routing::put(admin::archive),
        )
        .merge(web::router(state.config.web.clone()))
        .with_state(state)
}

/// What the dispatcher keeps up from the log.
#[derive(Debug, Clone)]
pub struct Heard {
    pub hub: Arc<Hub>,
    pub recent: Arc<Recent>,
    pub directory: Arc<Directory>,
    /// Whose tokens are refused (deactivated accounts).
    pub tokens: Arc<TokenKeys>,
}

/// Reads which accounts are deactivated (or had their tokens revoked lately) into `tokens`,
/// retrying until the store answers: until then only what the bus announces is known.
async fn load_standings(store: DynStore, tokens: Arc<TokenKeys>, shutdown: CancellationToken) {
    let mut wait = Duration::from_millis(200);
    loop {
        let since = chrono::Utc::now()
            - chrono::Duration::from_std(tokens.access_ttl).unwrap_or(chrono::Duration::days(1));
        match store.standings(since).await {
            Ok(standings) => {
                tokens.standings.loaded(standings);
                return;
            }
            Err(e) => tracing::warn!(error = %e, "reading deactivated accounts; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

/// Moves everything the bus delivers to the connections of its room, and the user stream to
/// the users it concerns: each event is serialized once, and the same bytes are queued to
/// every recipient. Room events are also kept in `recent` (before the directory applies
/// them: see [`directory`]), and carry their place so a connection that has just replayed
/// skips them.
pub async fn dispatch(
    node: NodeId,
    heard: Heard,
    hello: Arc<Notify>,
    mut events: mpsc::Receiver<Event>,
) {
    let Heard {
        hub,
        recent,
        directory,
        tokens,
    } = heard;
    let mut prune = tokio::time::interval(Duration::from_secs(10));
    loop {
        let event = tokio::select! {
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
            _ = prune.tick() => {
                recent.prune();
                continue;
            }
        };
        match &event {
            Event::Room(logged) => {
                recent.push(logged.clone());
                if !user_stream(&hub, &directory, logged) {
                    continue;
                }
                let out = Outbound::logged(
                    frames::event_json(logged),
                    logged.room().clone(),
                    logged.cursor,
                );
                hub.fan_out(logged.room(), &out, None);
                metrics::counter!("banter_messages_fanned_out_total").increment(1);
            }
            Event::Typing { room, user } => {
                let out = Outbound::frame(&ServerFrame::Typing {
                    room,
                    user: user.as_str(),
                });
                hub.fan_out(room, &out, Some(user.as_str()));
            }
            Event::Presence(p) => presence::heard(node, &hub, &hello, p),
            Event::Account(standing) => {
                tokens.standings.heard(standing.clone());
                if standing.deactivated {
                    hub.kick_user(standing.username.as_str(), conn::CLOSE_ACCOUNT_DISABLED);
                }
            }
        }
    }
    tracing::debug!("bus closed; dispatch stopped");
}

/// The user stream of one room event: a mention to whom a message mentions; a read position
/// to its user's connections; a room added to, or removed from, the users a membership
/// change concerns (taking the removed out of the room first), an update to the members of
/// a room whose topic changed. Returns whether the room's connections hear the event too:
/// not a read position (its user's own), nor a change the directory knows changed nothing
/// (on Kafka, one logged before anyone could know).
fn user_stream(hub: &Arc<Hub>, directory: &Arc<Directory>, logged: &LoggedEvent) -> bool {
    let room = logged.room();
    let r = match &logged.event {
        RoomEvent::Message(m) => {
            if !m.mentions.is_empty() {
                let out = Outbound::frame(&ServerFrame::Mention {
                    room,
                    id: m.id,
                    author: m.author.as_str(),
                    cursor: logged.cursor,
                });
                for user in &m.mentions {
                    hub.to_user(user.as_str(), &out);
                }
            }
            return true;
        }
        RoomEvent::Change(_) => return true,
        RoomEvent::Room(r) => r,
    };
    let effect = directory.apply(logged);
    // A read position and muting are their user's own: only their connections hear them.
    let own = match &r.change {
        RoomChange::Read { cursor } => Some(ServerFrame::Read {
            room,
            cursor: *cursor,
        }),
        RoomChange::Muted { muted } => Some(ServerFrame::Muted {
            room,
            muted: *muted,
        }),
        _ => None,
    };
    if let Some(frame) = own {
        if effect.is_none_or(|e| !e.is_noop()) {
            hub.to_user(r.user.as_str(), &Outbound::frame(&frame));
        }
        return false;
    }
    if effect.as_ref().is_some_and(|e| e.is_noop()) {
        return false;
    }
    let news = |op| news_of(op, room);
    match &r.change {
        RoomChange::Created { members, .. } => {
            for m in members {
                hub.to_user(m.name.as_str(), &news(RoomOp::Added));
            }
        }
        RoomChange::Joined => hub.to_user(r.user.as_str(), &news(RoomOp::Added)),
        RoomChange::Added { member } => hub.to_user(member.name.as_str(), &news(RoomOp::Added)),
        RoomChange::Left | RoomChange::Removed { .. } => {
            let gone = match &r.change {
                RoomChange::Removed { member } => member.name.as_str(),
                _ => r.user.as_str(),
            };
            // At once, on this gateway: what the room hears from now on, they do not.
            hub.evict(room, gone);
            hub.to_user(gone, &news(RoomOp::Removed));
        }
        RoomChange::Topic { .. } | RoomChange::Archived { .. } => {
            for user in directory.loaded_members(room) {
                if hub.has_user(user.as_str()) {
                    hub.to_user(user.as_str(), &news(RoomOp::Updated));
                }
            }
        }
        RoomChange::Deleted => {
            // Its readers hear it, then leave it at once; every member's list loses it.
            let out = Outbound::logged(frames::event_json(logged), room.clone(), logged.cursor);
            hub.fan_out(room, &out, None);
            hub.evict_room(room);
            let (hub, directory, room) = (hub.clone(), directory.clone(), room.clone());
            // Its members as the directory has them, loading them if no one asked here yet.
            tokio::spawn(async move {
                if let Err(e) = directory.lookup(&room, UserId(0)).await {
                    tracing::warn!(error = %e, %room, "a deleted room's members not read");
                }
                for user in directory.loaded_members(&room) {
                    hub.to_user(user.as_str(), &news_of(RoomOp::Removed, &room));
                }
            });
            return false;
        }
        RoomChange::Read { .. } | RoomChange::Muted { .. } => {}
    }
    true
}

fn news_of(op: RoomOp, room: &banter_core::RoomName) -> Outbound {
    Outbound::news(News {
        op,
        room: room.clone(),
    })
}
