//! banter's processes. Each role is a `launch_*` function that takes its settings, an already
//! bound listener and a shutdown future, so tests run the real thing on port 0 and stop it
//! cleanly; `main` only parses the command line and calls [`run`].

mod cli;
pub mod config;
mod data_dir;
pub mod telemetry;
pub mod tls;
pub mod wiring;

pub use tls::{Listener, Tls, TlsFiles};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use banter_auth::{password::Hasher, AuthState, TokenKeys};
use banter_bus::{DynBus, KafkaBus, MemoryBus};
use banter_gateway::{GatewayConfig, GatewayState};
use banter_http::ops::{self, Check, Collector};
use banter_persist::PersistSettings;
use banter_store::{DynStore, StoreError};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{
    AdminAction, AdminArgs, AuthArgs, Command, GatewayArgs, MigrateArgs, NotifyArgs, PersistArgs,
    ServeArgs, TokenArgs,
};
use crate::wiring::StorePorts;

/// How long shutdown waits for WebSocket connections to close before giving up on them.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Settings of the auth API, resolved from the command line (or built by tests).
#[derive(Debug, Clone)]
pub struct AuthOptions {
    pub jwt_secret: SecretString,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub hash_concurrency: usize,
    pub limits: banter_auth::AuthLimitSettings,
    /// Who may register.
    pub registration: banter_auth::RegistrationPolicy,
}

impl AuthOptions {
    fn from_args(
        args: &TokenArgs,
        secret: SecretString,
        limits: banter_auth::AuthLimitSettings,
        registration: banter_auth::RegistrationPolicy,
    ) -> Self {
        Self {
            jwt_secret: secret,
            access_ttl: args.access_token_ttl,
            refresh_ttl: args.refresh_token_ttl,
            hash_concurrency: args.hash_concurrency.unwrap_or_else(default_concurrency),
            limits,
            registration,
        }
    }
}

/// Settings of `banter serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub auth: AuthOptions,
    pub gateway: GatewayConfig,
    /// Where attachments are kept (`None`: uploads are refused).
    pub files: Option<banter_files::Files>,
    /// With Kafka: the bus is Kafka, and a persist worker runs in the process.
    pub kafka: Option<PersistSettings>,
    /// Web Push: the API offers it and a notifier runs in the process (`None`: off).
    pub push: Option<PushOptions>,
}

/// What push notifications need: the key, how to send, whom to tell.
#[derive(Debug, Clone)]
pub struct PushOptions {
    pub key: banter_push::VapidKey,
    pub sender: banter_push::SenderSettings,
    pub notify: banter_push::NotifySettings,
    /// Push services accepted over plain HTTP.
    pub insecure: banter_push::InsecureOrigins,
    /// The notifiers' consumer group, when the log is Kafka.
    pub notify_group: String,
}

impl PushOptions {
    fn api(&self) -> banter_gateway::push::PushApi {
        banter_gateway::push::PushApi {
            public_key: self.key.public_base64().to_owned(),
            insecure: self.insecure.clone(),
        }
    }

    fn notifier(
        &self,
        store: &DynStore,
        connections: Arc<dyn banter_push::Connections>,
    ) -> anyhow::Result<banter_push::Notifier> {
        let settings = banter_push::SenderSettings {
            insecure: self.insecure.clone(),
            ..self.sender.clone()
        };
        let sender =
            banter_push::Sender::new(self.key.clone(), settings).map_err(anyhow::Error::msg)?;
        Ok(banter_push::Notifier::new(
            store.clone(),
            sender,
            connections,
            self.notify.clone(),
        ))
    }
}

/// Password hashes at once by default: half the cores, so that a login storm (each hash a
/// core for tens of milliseconds) leaves the other half to the sockets. Logins queue a little
/// instead; the fan-out's latency does not pay for them (docs/benchmarks).
fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Runs one command to completion (for servers: until SIGINT or SIGTERM).
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Auth(args) => auth(args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Gateway(args) => gateway(args).await,
        Command::Persist(args) => persist(args).await,
        Command::Admin(args) => admin(args).await,
        Command::Send(args) => cli::send(args).await,
        Command::Bots(args) => cli::bots(args).await,
        Command::Openapi => {
            use std::io::Write;
            let doc = banter_gateway::openapi::document();
            // Written, not printed: a closed pipe (`| head`) is an error, not a panic.
            writeln!(
                std::io::stdout().lock(),
                "{}",
                serde_json::to_string_pretty(&doc)?
            )?;
            Ok(())
        }
        Command::Notify(args) => notify(args).await,
        Command::PushKey => {
            push_key();
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let dir = data_dir::DataDir::open(&args.data_dir)?;
    let url = match args.database.url()? {
        Some(url) => url,
        None => dir.sqlite_url().into(),
    };
    let secret = match &args.tokens.jwt_secret {
        Some(s) => SecretString::from(s.expose().to_owned()),
        None => dir.jwt_secret()?,
    };
    let store = open_store(url.expose(), args.database.db_max_connections).await?;
    store.migrate().await.context("applying migrations")?;
    let files = args.files.open(Some(&dir.path().join("files")))?;
    let listener = bind(args.listen, &args.tls).await?;
    tracing::info!(
        "banter serve is listening on {}://{} (data in {}, database: {}, files: {})",
        listener.scheme(),
        listener.local_addr()?,
        dir.path().display(),
        store.backend().as_str(),
        files.as_ref().map_or("none", |f| f.place()),
    );
    let options = ServeOptions {
        auth: AuthOptions::from_args(
            &args.tokens,
            secret,
            args.auth_limits.settings(&args.proxy),
            args.registration.policy(),
        ),
        gateway: GatewayConfig {
            admin: banter_gateway::admin::AdminConfig {
                registration: args.registration.policy(),
            },
            web: args.web.config()?,
            limits: args.gateway_limits.settings(&args.proxy),
            ws_origins: args.web.ws_origins()?,
            files: args.files.settings(),
            hooks: args.hooks.settings(),
            ..GatewayConfig::default()
        },
        files,
        kafka: args.kafka.settings().map(|k| args.group.settings(k)),
        push: match args.push_enabled {
            config::OnOff::Off => None,
            config::OnOff::On => {
                let key = match args.push.key()? {
                    Some(key) => key,
                    None => dir.vapid_key()?,
                };
                let mut push = args.push.options(key)?;
                push.notify_group
                    .clone_from(&args.notify_group.notify_group);
                Some(push)
            }
        },
    };
    launch_serve(store, options, listener, shutdown_signal()).await
}

async fn auth(args: AuthArgs) -> anyhow::Result<()> {
    let secret = args.tokens.jwt_secret.as_ref().context(
        "banter auth needs JWT_SECRET (at least 32 bytes, shared by every banter process; \
         generate one with: openssl rand -base64 48)",
    )?;
    let options = AuthOptions::from_args(
        &args.tokens,
        SecretString::from(secret.expose().to_owned()),
        args.limits.settings(&args.proxy),
        args.registration.policy(),
    );
    let url = args.database.required_url("auth")?;
    let store = open_store(url.expose(), args.database.db_max_connections).await?;
    let cors = args
        .cors_origins
        .iter()
        .filter(|o| !o.trim().is_empty())
        .map(|o| {
            banter_gateway::web::WebConfig::parse_auth_origin(o.trim())
                .map_err(|e| anyhow::anyhow!("BANTER_CORS_ORIGINS {e}"))
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    let listener = bind(args.listen_addr(), &args.tls).await?;
    tracing::info!(
        "banter auth is listening on {}://{}",
        listener.scheme(),
        listener.local_addr()?
    );
    launch_auth(store, options, cors, listener, shutdown_signal()).await
}

async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let secret = args
        .tokens
        .jwt_secret
        .as_ref()
        .context("banter gateway needs JWT_SECRET, the same as banter auth's")?;
    // The gateway signs no tokens and takes no logins: auth's limits do not apply here.
    let options = AuthOptions::from_args(
        &args.tokens,
        SecretString::from(secret.expose().to_owned()),
        banter_auth::AuthLimitSettings::off(),
        args.registration.policy(),
    );
    let kafka = args.kafka.required("gateway")?;
    let url = args.database.required_url("gateway")?;
    let store = open_store(url.expose(), args.database.db_max_connections).await?;
    let listener = bind(args.listen_addr(), &args.tls).await?;
    let mut config = args.presence.gateway_config(args.web.config()?);
    config.limits = args.limits.settings(&args.proxy);
    config.ws_origins = args.web.ws_origins()?;
    config.files = args.files.settings();
    config.hooks = args.hooks.settings();
    config.push = args.push.api()?;
    config.admin.registration = args.registration.policy();
    if config.push.is_none() {
        tracing::info!("no BANTER_VAPID_PUBLIC_KEY: this gateway offers no push notifications");
    }
    let files = args.files.open(None)?;
    match &files {
        Some(f) => tracing::info!(files = f.place(), "attachments kept there"),
        None => tracing::warn!(
            "no BANTER_FILES: this gateway refuses uploads (several gateways need one S3 \
             bucket they all reach)"
        ),
    }
    launch_gateway(
        store,
        options,
        kafka,
        config,
        files,
        listener,
        shutdown_signal(),
    )
    .await
}

async fn persist(args: PersistArgs) -> anyhow::Result<()> {
    let kafka = args.kafka.required("persist")?;
    let url = args.database.required_url("persist")?;
    let store = open_store(url.expose(), args.database.db_max_connections).await?;
    let listener = bind(args.listen, &args.tls).await?;
    tracing::info!(
        "banter persist is listening on {}://{}",
        listener.scheme(),
        listener.local_addr()?
    );
    launch_persist(
        store,
        args.group.settings(kafka),
        listener,
        shutdown_signal(),
    )
    .await
}

async fn notify(args: NotifyArgs) -> anyhow::Result<()> {
    let kafka = args.kafka.required("notify")?;
    let url = args.database.required_url("notify")?;
    let key = args.push.key()?.context(
        "banter notify needs BANTER_VAPID_PRIVATE_KEY (make a pair with: banter push-key; the \
         gateways take its BANTER_VAPID_PUBLIC_KEY)",
    )?;
    let push = args.push.options(key)?;
    let store = open_store(url.expose(), args.database.db_max_connections).await?;
    let listener = bind(args.listen, &args.tls).await?;
    tracing::info!(
        "banter notify is listening on {}://{}",
        listener.scheme(),
        listener.local_addr()?
    );
    launch_notify(
        store,
        args.group.settings(kafka),
        push,
        args.presence
            .presence_ttl
            .max(args.presence.presence_heartbeat),
        listener,
        shutdown_signal(),
    )
    .await
}

/// Prints a new VAPID key pair as the settings `notify` and `gateway` take.
fn push_key() {
    let key = banter_push::VapidKey::generate();
    println!("BANTER_VAPID_PRIVATE_KEY={}", key.private_base64());
    println!("BANTER_VAPID_PUBLIC_KEY={}", key.public_base64());
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let url = args.database.required_url("migrate")?;
    let store = open_store(url.expose(), 1).await?;
    store.migrate().await.context("applying migrations")?;
    tracing::info!(database = store.backend().as_str(), "migrations applied");
    store.close().await;
    Ok(())
}

async fn admin(args: AdminArgs) -> anyhow::Result<()> {
    let url = match args.database.url()? {
        Some(url) => url,
        None => data_dir::DataDir::open(&args.data_dir)?.sqlite_url().into(),
    };
    let store = open_store(url.expose(), 1).await?;
    store.migrate().await.context("applying migrations")?;
    let (username, admin) = match &args.action {
        AdminAction::Grant { username } => (username, true),
        AdminAction::Revoke { username } => (username, false),
    };
    // Audited like the admin API's change, with the operator as the actor.
    let audit = banter_store::NewAudit {
        at: banter_store::now(),
        actor_id: None,
        actor: "banter admin (command line)".into(),
        action: "user.admin",
        target: username.clone(),
        detail: serde_json::json!({ "admin": admin }),
        address: None,
    };
    let found = store.set_admin_audited(username, admin, &audit).await?;
    store.close().await;
    anyhow::ensure!(found.is_some(), "there is no user named {username:?}");
    println!(
        "{username} is {} an admin",
        if admin { "now" } else { "no longer" }
    );
    Ok(())
}

async fn open_store(url: &str, max_connections: u32) -> anyhow::Result<DynStore> {
    banter_store::connect(url, max_connections)
        .await
        .context("opening the database")
}

async fn bind(addr: std::net::SocketAddr, tls: &config::TlsArgs) -> anyhow::Result<Listener> {
    let tls = tls.files()?.map(tls::Tls::load).transpose()?;
    let tcp = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    Ok(Listener { tcp, tls })
}

/// Everything in one process: the auth API, the gateway (WebSocket, history, web page) and the
/// rooms' log, which here is the store itself behind the in-process bus.
pub async fn launch_serve(
    store: DynStore,
    options: ServeOptions,
    listener: impl Into<Listener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener: Listener = listener.into();
    let tokens = token_keys(&options.auth, &store)?;
    let stop_worker = CancellationToken::new();
    let bus: DynBus = match &options.kafka {
        None => Arc::new(MemoryBus::start(StorePorts::local_log(&store))),
        Some(persist) => {
            let bus = KafkaBus::start(persist.kafka.clone(), StorePorts::first_copies(&store))
                .await
                .map_err(anyhow::Error::msg)?;
            tokio::spawn(persist_worker(
                persist.clone(),
                store.clone(),
                stop_worker.clone(),
            ));
            Arc::new(bus)
        }
    };
    let mut config = options.gateway;
    config.push = options.push.as_ref().map(PushOptions::api);
    config.scheme = listener.scheme();
    let gateway = GatewayState::start(
        bus.clone(),
        store.clone(),
        tokens.clone(),
        config,
        options.files,
        CancellationToken::new(),
    );
    let notifier = match (&options.push, &options.kafka) {
        (Some(push), None) => {
            let notifier = push.notifier(&store, gateway.hub.clone())?;
            Some(tokio::spawn(banter_push::run_local(
                notifier,
                bus.subscribe(),
                stop_worker.clone(),
            )))
        }
        // On Kafka, a group of its own, shared with any other `serve` or `notify`: each
        // message is considered once whatever the number of processes.
        (Some(push), Some(persist)) => {
            let notifier = push.notifier(&store, gateway.hub.clone())?;
            let mut group = banter_push::GroupSettings::new(persist.kafka.clone());
            group.group.clone_from(&push.notify_group);
            Some(tokio::spawn(notify_worker(
                group,
                notifier,
                stop_worker.clone(),
            )))
        }
        (None, _) => None,
    };
    // Outgoing webhooks, after the fact: from the in-process log, or as the gateways' group.
    let hooks = match &options.kafka {
        None => tokio::spawn(banter_gateway::outgoing::run_local(
            gateway.clone(),
            bus.subscribe(),
            stop_worker.clone(),
        )),
        Some(persist) => tokio::spawn(banter_gateway::outgoing::run_group(
            gateway.clone(),
            persist.kafka.clone(),
            stop_worker.clone(),
        )),
    };
    let mut checks = database_check(&store);
    if let Some(persist) = &options.kafka {
        checks.push(kafka_check(&persist.kafka)?);
    }
    let app = auth_routes(&store, &options.auth, tokens)?
        .merge(banter_gateway::router(gateway.clone()))
        .merge(ops::router(checks, pool_gauges(&store)));
    // Once no new connection is taken, sockets first: they get 1012 and reconnect elsewhere
    // while HTTP drains.
    serve_http(listener, ops::finish(app), shutdown, async move {
        gateway.drain(DRAIN_GRACE).await;
    })
    .await?;
    stop_worker.cancel();
    if let Some(notifier) = notifier {
        let _ = notifier.await;
    }
    let _ = hooks.await;
    store.close().await;
    Ok(())
}

/// The gateway alone: WebSocket, history API and web page, on Kafka and the store.
pub async fn launch_gateway(
    store: DynStore,
    options: AuthOptions,
    kafka: banter_bus::KafkaSettings,
    config: GatewayConfig,
    files: Option<banter_files::Files>,
    listener: impl Into<Listener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener: Listener = listener.into();
    let tokens = token_keys(&options, &store)?;
    let mut checks = database_check(&store);
    checks.push(kafka_check(&kafka)?);
    let bus = KafkaBus::start(kafka.clone(), StorePorts::first_copies(&store))
        .await
        .map_err(anyhow::Error::msg)?;
    // Said once the bus is up, so "listening" means ready to chat.
    tracing::info!(
        "banter gateway is listening on {}://{}",
        listener.scheme(),
        listener.local_addr()?
    );
    let config = GatewayConfig {
        scheme: listener.scheme(),
        ..config
    };
    let gateway = GatewayState::start(
        Arc::new(bus),
        store.clone(),
        tokens,
        config,
        files,
        CancellationToken::new(),
    );
    // The gateways deliver outgoing webhooks as a consumer group of their own.
    let stop_hooks = CancellationToken::new();
    let hooks = tokio::spawn(banter_gateway::outgoing::run_group(
        gateway.clone(),
        kafka,
        stop_hooks.clone(),
    ));
    let app =
        banter_gateway::router(gateway.clone()).merge(ops::router(checks, pool_gauges(&store)));
    serve_http(listener, ops::finish(app), shutdown, async move {
        gateway.drain(DRAIN_GRACE).await;
    })
    .await?;
    stop_hooks.cancel();
    let _ = hooks.await;
    store.close().await;
    Ok(())
}

/// The persist worker, with its health, readiness and metrics endpoints on `listener`.
pub async fn launch_persist(
    store: DynStore,
    settings: PersistSettings,
    listener: impl Into<Listener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener: Listener = listener.into();
    let mut checks = database_check(&store);
    checks.push(kafka_check(&settings.kafka)?);
    let stop = CancellationToken::new();
    // At the stop it finishes the batch in hand, commits its offsets and leaves the group.
    let worker = tokio::spawn(banter_persist::run(settings, store.clone(), stop.clone()));
    serve_worker(
        store,
        checks,
        listener,
        shutdown,
        stop,
        worker,
        "persist worker",
    )
    .await
}

/// A worker of a consumer group (persist, notify) with health, readiness and metrics on
/// `listener`: once `shutdown` comes, the worker is told to `stop` and waited for, then the
/// pool closes.
async fn serve_worker(
    store: DynStore,
    checks: Vec<Check>,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    stop: CancellationToken,
    worker: tokio::task::JoinHandle<Result<(), String>>,
    what: &str,
) -> anyhow::Result<()> {
    let app = ops::finish(ops::router(checks, pool_gauges(&store)));
    serve_http(listener, app, shutdown, async {}).await?;
    stop.cancel();
    let outcome = worker.await;
    store.close().await;
    match outcome {
        Ok(result) => result.map_err(anyhow::Error::msg),
        Err(e) => Err(anyhow::anyhow!("{what} failed: {e}")),
    }
}

/// Runs a notifier group, logging if it cannot start.
async fn notify_worker(
    settings: banter_push::GroupSettings,
    notifier: banter_push::Notifier,
    stop: CancellationToken,
) {
    if let Err(e) = banter_push::group::run(settings, notifier, stop).await {
        tracing::error!(error = %e, "the notifier stopped");
    }
}

/// The notifier alone: a Kafka consumer group that pushes DMs and mentions to users with no
/// connection, as presence heard from the gateways says, with health, readiness and metrics
/// on `listener`.
pub async fn launch_notify(
    store: DynStore,
    group: banter_push::GroupSettings,
    push: PushOptions,
    presence_ttl: Duration,
    listener: impl Into<Listener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener: Listener = listener.into();
    let mut checks = database_check(&store);
    checks.push(kafka_check(&group.kafka)?);
    // Presence only: the log is read by the group.
    let mut hearing = group.kafka.clone();
    hearing.hear_log = false;
    let bus: DynBus = Arc::new(
        KafkaBus::start(hearing, StorePorts::first_copies(&store))
            .await
            .map_err(anyhow::Error::msg)?,
    );
    let hub = Arc::new(banter_gateway::hub::Hub::new());
    let stop = CancellationToken::new();
    tokio::spawn(hear_presence(bus, hub.clone(), presence_ttl, stop.clone()));
    let notifier = push.notifier(&store, hub)?;
    // At the stop, sends in flight end or are left uncommitted; the group is left.
    let worker = tokio::spawn(banter_push::group::run(group, notifier, stop.clone()));
    serve_worker(
        store,
        checks,
        listener,
        shutdown,
        stop,
        worker,
        "the notifier",
    )
    .await
}

/// Keeps `hub` up with what the gateways tell of who is connected, asking them at once.
async fn hear_presence(
    bus: DynBus,
    hub: Arc<banter_gateway::hub::Hub>,
    ttl: Duration,
    stop: CancellationToken,
) {
    use banter_bus::{Event, Presence};
    let node = banter_bus::NodeId::new_v4();
    let mut events = bus.subscribe();
    // Their hellos ask for a snapshot this process has none of: nothing to answer.
    let hellos = tokio::sync::Notify::new();
    if let Err(e) = bus
        .announce(Event::Presence(Presence::Hello { node }))
        .await
    {
        tracing::warn!(error = %e, "presence hello not sent; learning it from heartbeats");
    }
    let mut expire = tokio::time::interval(ttl / 3);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            event = events.recv() => match event {
                Some(Event::Presence(p)) => banter_gateway::presence::heard(node, &hub, &hellos, &p),
                Some(_) => {}
                None => break,
            },
            _ = expire.tick() => hub.expire_remote(ttl),
        }
    }
}

/// Runs the in-process persist worker of `serve` on Kafka, logging if it cannot start.
async fn persist_worker(settings: PersistSettings, store: DynStore, stop: CancellationToken) {
    if let Err(e) = banter_persist::run(settings, store, stop).await {
        tracing::error!(error = %e, "the persist worker stopped");
    }
}

/// The auth service alone. Pages from `cors_origins` (origins such as
/// `https://chat.example.com`) may call it from a browser.
pub async fn launch_auth(
    store: DynStore,
    options: AuthOptions,
    cors_origins: Vec<String>,
    listener: impl Into<Listener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener: Listener = listener.into();
    let tokens = token_keys(&options, &store)?;
    let app = auth_routes(&store, &options, tokens)?
        .merge(ops::router(database_check(&store), pool_gauges(&store)));
    let mut app = ops::finish(app);
    if !cors_origins.is_empty() {
        app = app.layer(cors(&cors_origins)?);
    }
    serve_http(listener, app, shutdown, async {}).await?;
    store.close().await;
    Ok(())
}

/// Lets pages from `origins` call the API: the methods and headers the web app uses.
fn cors(origins: &[String]) -> anyhow::Result<tower_http::cors::CorsLayer> {
    use axum::http::{header, HeaderValue, Method};
    let origins = origins
        .iter()
        .map(|o| HeaderValue::from_str(o).context("a CORS origin"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .max_age(std::time::Duration::from_secs(600)))
}

/// The keys that check Bearer tokens: users' JWTs, and bots' tokens looked up in `store`.
fn token_keys(options: &AuthOptions, store: &DynStore) -> anyhow::Result<Arc<TokenKeys>> {
    TokenKeys::new(&options.jwt_secret, options.access_ttl, options.refresh_ttl)
        .map(|keys| Arc::new(keys.with_bots(store.clone())))
        .map_err(anyhow::Error::msg)
}

fn auth_routes(
    store: &DynStore,
    options: &AuthOptions,
    tokens: Arc<TokenKeys>,
) -> anyhow::Result<Router> {
    let state = AuthState {
        store: store.clone(),
        hasher: Arc::new(Hasher::new(options.hash_concurrency)?),
        tokens,
        limits: Arc::new(banter_auth::AuthLimits::new(&options.limits)),
        registration: options.registration,
    };
    Ok(banter_auth::router(state))
}

fn database_check(store: &DynStore) -> Vec<Check> {
    let store = store.clone();
    vec![Check {
        name: "database",
        run: Arc::new(move || {
            let store = store.clone();
            Box::pin(async move {
                store.ping().await.map_err(|e| {
                    // The detail is for the log; /ready is public and says only what kind.
                    tracing::warn!(error = %e, "readiness: database check failed");
                    match e {
                        StoreError::Unavailable(_) => "unreachable".to_owned(),
                        StoreError::Conflict(_) | StoreError::Other(_) => "error".to_owned(),
                    }
                })
            })
        }),
    }]
}

/// Readiness of Kafka: a metadata request for the log topic answered within 1.5 s (inside
/// the 2 s every check gets).
fn kafka_check(settings: &banter_bus::KafkaSettings) -> anyhow::Result<Check> {
    let probe = banter_bus::KafkaProbe::new(settings).map_err(anyhow::Error::msg)?;
    Ok(Check {
        name: "kafka",
        run: Arc::new(move || {
            let probe = probe.clone();
            Box::pin(async move {
                probe
                    .check(std::time::Duration::from_millis(1500))
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "readiness: Kafka check failed");
                        "unreachable".to_owned()
                    })
            })
        }),
    })
}

fn pool_gauges(store: &DynStore) -> Vec<Collector> {
    let store = store.clone();
    vec![Arc::new(move || {
        let stats = store.pool_stats();
        metrics::gauge!("banter_db_pool_connections").set(f64::from(stats.size));
        metrics::gauge!("banter_db_pool_idle_connections").set(f64::from(stats.idle));
    })]
}

/// How long a client may take to send a request's line and headers: a slow-loris client
/// that trickles them is cut off instead of holding a connection for ever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of request line and headers; more is answered 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long HTTP requests in progress may take to finish at shutdown.
const HTTP_DRAIN: Duration = Duration::from_secs(20);

/// Serves `app` on `listener` until `shutdown`; then takes no new connection, runs `drain`
/// (the gateway closes its WebSockets there) and lets HTTP requests in progress finish.
///
/// hyper directly rather than `axum::serve`, for what that does not set: a header read
/// timeout (it needs a timer) and a bound on header bytes. Each connection also gets
/// `TCP_NODELAY` (chat frames are small and wanted at once: with Nagle's algorithm one
/// written while an earlier one is unacknowledged waits for the peer's delayed ACK) and its
/// peer address for the per-address limits.
async fn serve_http(
    listener: Listener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES);
    let closing = CancellationToken::new();
    let connections = tokio_util::task::TaskTracker::new();
    let Listener { tcp: listener, tls } = listener;
    if let Some(tls) = &tls {
        tokio::spawn(tls.clone().reload_on_hangup(closing.clone()));
    }
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, usually: let some close before trying again.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        ));
        let closing = closing.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let stream: Box<dyn Stream> = match tls {
                None => Box::new(tcp),
                // The handshake in the connection's own task, bounded like a request's
                // headers: a client that never finishes it holds nothing for long.
                Some(tls) => {
                    match tokio::time::timeout(HEADER_READ_TIMEOUT, tls.acceptor().accept(tcp))
                        .await
                    {
                        Ok(Ok(stream)) => Box::new(stream),
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            let done = tokio::select! {
                done = connection.as_mut() => done,
                () = closing.cancelled() => {
                    // Idle keep-alive connections close now, requests in progress finish.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = done {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    drain.await;
    closing.cancel();
    connections.close();
    if tokio::time::timeout(HTTP_DRAIN, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("HTTP requests still in progress after {HTTP_DRAIN:?}; stopping anyway");
    }
    Ok(())
}

/// A connection's byte stream, plain or TLS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what Kubernetes sends).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = futures::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
