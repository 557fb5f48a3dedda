//! Command-line and environment settings. The doc comment of each field is its `--help` text;
//! flags win over environment variables, which keep the seed's names.
//!
//! Secrets (`JWT_SECRET`, `DB_PASSWORD`, `DATABASE_URL`) are held in [`Secret`], whose `Debug`
//! is redacted, so printing a settings struct can never leak them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// banter: a real-time chat server. Rooms, direct messages and history over WebSocket, on one
/// machine (SQLite) or many (PostgreSQL and Kafka).
#[derive(Debug, Parser)]
#[command(name = "banter", version, about, long_about = None)]
pub struct Cli {
    /// Log line format.
    #[arg(long, env = "BANTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

// Parsed once at start and moved into its command: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one process on the embedded defaults (a SQLite file in --data-dir). Needs
    /// nothing else installed. Give it DATABASE_URL to run on PostgreSQL instead.
    Serve(ServeArgs),
    /// The auth service alone (register, login, tokens), on PostgreSQL.
    Auth(AuthArgs),
    /// Apply the database schema migrations, then exit.
    Migrate(MigrateArgs),
    /// The WebSocket gateway and web page, on Kafka (fan-out) and PostgreSQL (history).
    Gateway(GatewayArgs),
    /// The persist worker: a Kafka consumer group writing messages into PostgreSQL.
    Persist(PersistArgs),
    /// The notifier: a Kafka consumer group pushing DMs and mentions to users who are away.
    Notify(NotifyArgs),
    /// Make a VAPID key pair for push notifications and print it as settings.
    PushKey,
    /// Grant or revoke a user's admin rights (admins may delete anyone's messages).
    Admin(AdminArgs),
    /// Send a message to a room over HTTP, as a bot or a user (for scripts and CI jobs).
    Send(SendArgs),
    /// Make, list or revoke bots over HTTP (an admin's token).
    Bots(BotsArgs),
    /// Print the OpenAPI 3.1 document of the HTTP API (what GET /api/v1/openapi.json serves).
    Openapi,
}

/// A secret setting: readable only through [`Secret::expose`], redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

fn secret(s: &str) -> Result<Secret, String> {
    Ok(Secret(s.to_owned()))
}

/// A rate limit from the command line: `N/s`, `N/min`, `N/h`, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateArg(pub Option<banter_http::limit::Rate>);

fn rate(s: &str) -> Result<RateArg, String> {
    banter_http::limit::parse_rate(s).map(RateArg)
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 900s, 15m, 30d)"))
}

/// Where the database is. `DATABASE_URL` wins over the `DB_*` parts.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: postgres://user:password@host:5432/name, or sqlite://path/to/file.db.
    #[arg(long, env = "DATABASE_URL", value_parser = secret, hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// PostgreSQL host (used when DATABASE_URL is not set).
    #[arg(long, env = "DB_HOST")]
    pub db_host: Option<String>,
    /// PostgreSQL port.
    #[arg(long, env = "DB_PORT", default_value_t = 5432)]
    pub db_port: u16,
    /// PostgreSQL database name.
    #[arg(long, env = "DB_NAME", default_value = "banter")]
    pub db_name: String,
    /// PostgreSQL user.
    #[arg(long, env = "DB_USER", default_value = "postgres")]
    pub db_user: String,
    /// PostgreSQL password.
    #[arg(long, env = "DB_PASSWORD", value_parser = secret, hide_env_values = true)]
    pub db_password: Option<Secret>,
    /// Most connections this process opens to the database.
    #[arg(long, env = "BANTER_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
}

impl DatabaseArgs {
    /// The configured database URL, or `None` when neither DATABASE_URL nor DB_HOST is set.
    pub fn url(&self) -> anyhow::Result<Option<Secret>> {
        if let Some(url) = &self.database_url {
            return Ok(Some(url.clone()));
        }
        let Some(host) = &self.db_host else {
            return Ok(None);
        };
        let mut url = url::Url::parse("postgres://localhost/")?;
        url.set_host(Some(host))
            .map_err(|e| anyhow::anyhow!("DB_HOST {host:?} is not a host name: {e}"))?;
        url.set_port(Some(self.db_port))
            .map_err(|()| anyhow::anyhow!("DB_PORT is not usable"))?;
        url.set_username(&self.db_user)
            .map_err(|()| anyhow::anyhow!("DB_USER is not usable"))?;
        if let Some(pw) = &self.db_password {
            url.set_password(Some(pw.expose()))
                .map_err(|()| anyhow::anyhow!("DB_PASSWORD is not usable"))?;
        }
        url.set_path(&self.db_name);
        Ok(Some(Secret(url.to_string())))
    }

    /// Like [`DatabaseArgs::url`], for commands that cannot run without a database.
    pub fn required_url(&self, command: &str) -> anyhow::Result<Secret> {
        self.url()?.ok_or_else(|| {
            anyhow::anyhow!(
                "banter {command} needs a database: set DATABASE_URL \
                 (postgres://user:password@host:5432/name) or DB_HOST and the other DB_* settings"
            )
        })
    }
}

/// Token settings.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Secret that signs access tokens (HS256), at least 32 bytes. Every process of one
    /// deployment must share it.
    #[arg(long, env = "JWT_SECRET", value_parser = secret, hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// How long an access token stays valid.
    #[arg(long, env = "BANTER_ACCESS_TOKEN_TTL", value_parser = duration, default_value = "15m")]
    pub access_token_ttl: Duration,
    /// How long a refresh token stays valid if unused.
    #[arg(long, env = "BANTER_REFRESH_TOKEN_TTL", value_parser = duration, default_value = "30d")]
    pub refresh_token_ttl: Duration,
    /// Password hashes computed at once (each takes 19 MiB and a core for tens of ms).
    /// Default: half the cores (at least one), leaving the rest to the sockets.
    #[arg(long, env = "BANTER_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
}

/// Limits on logins and registrations, counted per process (docs/operations.md).
#[derive(Debug, Clone, Args)]
pub struct AuthLimitArgs {
    /// Login attempts per client address: N/s, N/min, N/h, or off.
    #[arg(long, env = "BANTER_LIMIT_LOGIN_PER_IP", value_parser = rate, default_value = "30/min")]
    pub limit_login_per_ip: RateArg,
    /// Login attempts per username, from anywhere.
    #[arg(long, env = "BANTER_LIMIT_LOGIN_PER_USER", value_parser = rate, default_value = "10/min")]
    pub limit_login_per_user: RateArg,
    /// Registrations per client address.
    #[arg(long, env = "BANTER_LIMIT_REGISTER_PER_IP", value_parser = rate, default_value = "20/min")]
    pub limit_register_per_ip: RateArg,
    /// Registrations per username, from anywhere.
    #[arg(long, env = "BANTER_LIMIT_REGISTER_PER_USER", value_parser = rate, default_value = "5/min")]
    pub limit_register_per_user: RateArg,
}

impl AuthLimitArgs {
    pub fn settings(&self, proxy: &ProxyArgs) -> banter_auth::AuthLimitSettings {
        banter_auth::AuthLimitSettings {
            login_per_ip: self.limit_login_per_ip.0,
            login_per_user: self.limit_login_per_user.0,
            register_per_ip: self.limit_register_per_ip.0,
            register_per_user: self.limit_register_per_user.0,
            trust_forwarded: proxy.trust_forwarded_for,
        }
    }
}

/// Limits on WebSocket connections and what they send, counted per process.
#[derive(Debug, Clone, Args)]
pub struct GatewayLimitArgs {
    /// Messages a user may send: N/s, N/min, N/h, or off.
    #[arg(long, env = "BANTER_LIMIT_SENDS", value_parser = rate, default_value = "30/s")]
    pub limit_sends: RateArg,
    /// Messages a bot may send (over HTTP, its sockets, or its webhook's URL).
    #[arg(long, env = "BANTER_LIMIT_BOT_SENDS", value_parser = rate, default_value = "60/min")]
    pub limit_bot_sends: RateArg,
    /// Typing notices a user may send.
    #[arg(long, env = "BANTER_LIMIT_TYPING", value_parser = rate, default_value = "10/s")]
    pub limit_typing: RateArg,
    /// Files a user may upload.
    #[arg(long, env = "BANTER_LIMIT_UPLOADS", value_parser = rate, default_value = "60/min")]
    pub limit_uploads: RateArg,
    /// Searches a user may make.
    #[arg(long, env = "BANTER_LIMIT_SEARCHES", value_parser = rate, default_value = "5/s")]
    pub limit_searches: RateArg,
    /// New WebSocket connections per client address.
    #[arg(long, env = "BANTER_LIMIT_CONNECTS_PER_IP", value_parser = rate, default_value = "300/min")]
    pub limit_connects_per_ip: RateArg,
    /// WebSocket connections one user may hold open at once (0: no limit).
    #[arg(long, env = "BANTER_LIMIT_CONNECTIONS_PER_USER", default_value_t = 50)]
    pub limit_connections_per_user: u32,
}

impl GatewayLimitArgs {
    pub fn settings(&self, proxy: &ProxyArgs) -> banter_gateway::limits::GatewayLimitSettings {
        banter_gateway::limits::GatewayLimitSettings {
            sends: self.limit_sends.0,
            bot_sends: self.limit_bot_sends.0,
            typing: self.limit_typing.0,
            uploads: self.limit_uploads.0,
            searches: self.limit_searches.0,
            connects_per_ip: self.limit_connects_per_ip.0,
            connections_per_user: (self.limit_connections_per_user > 0)
                .then_some(self.limit_connections_per_user),
            trust_forwarded: proxy.trust_forwarded_for,
        }
    }
}

/// Attachments: where their bytes go, how large, how much per user, how long unattached.
#[derive(Debug, Clone, Args)]
pub struct FilesArgs {
    /// Where attachments are kept: file:///absolute/path, or
    /// s3://bucket[/prefix]?endpoint=https://host&region=us-east-1 (credentials from
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY). Several gateways need S3 (one they all
    /// reach); `serve` defaults to its data dir.
    #[arg(long, env = "BANTER_FILES")]
    pub files: Option<String>,
    /// The largest file a user may upload, in bytes.
    #[arg(long, env = "BANTER_MAX_UPLOAD_BYTES", default_value_t = 25 * 1024 * 1024)]
    pub max_upload_bytes: u64,
    /// What one user's files may take in all, in bytes.
    #[arg(long, env = "BANTER_UPLOAD_QUOTA_BYTES", default_value_t = 2 * 1024 * 1024 * 1024)]
    pub upload_quota_bytes: u64,
    /// An upload no message carries is removed after this long.
    #[arg(long, env = "BANTER_UNATTACHED_UPLOAD_TTL", value_parser = duration, default_value = "24h")]
    pub unattached_upload_ttl: Duration,
    /// How often files no message carries any more are looked for and removed.
    #[arg(long, env = "BANTER_FILES_SWEEP_EVERY", value_parser = duration, default_value = "10m")]
    pub files_sweep_every: Duration,
    /// The S3 access key of BANTER_FILES.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub aws_access_key_id: Option<String>,
    /// The S3 secret key of BANTER_FILES.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", value_parser = secret, hide_env_values = true)]
    pub aws_secret_access_key: Option<Secret>,
    /// A session token that goes with temporary S3 keys.
    #[arg(long, env = "AWS_SESSION_TOKEN", value_parser = secret, hide_env_values = true)]
    pub aws_session_token: Option<Secret>,
    /// The S3 region, when BANTER_FILES names none.
    #[arg(long, env = "AWS_REGION")]
    pub aws_region: Option<String>,
}

impl FilesArgs {
    pub fn settings(&self) -> banter_gateway::files::FilesSettings {
        banter_gateway::files::FilesSettings {
            max_upload_bytes: self.max_upload_bytes,
            quota_bytes: self.upload_quota_bytes,
            unattached_ttl: self.unattached_upload_ttl,
            sweep_every: self.files_sweep_every.max(Duration::from_secs(1)),
        }
    }

    /// The storage BANTER_FILES names, or `default_dir` when it names none (`None`: no
    /// storage, uploads refused).
    pub fn open(
        &self,
        default_dir: Option<&std::path::Path>,
    ) -> anyhow::Result<Option<banter_files::Files>> {
        let aws = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => self.aws_access_key_id.clone(),
            "AWS_SECRET_ACCESS_KEY" => self
                .aws_secret_access_key
                .as_ref()
                .map(|s| s.expose().to_owned()),
            "AWS_SESSION_TOKEN" => self
                .aws_session_token
                .as_ref()
                .map(|s| s.expose().to_owned()),
            "AWS_REGION" => self.aws_region.clone(),
            _ => None,
        };
        let files = match (&self.files, default_dir) {
            (Some(url), _) => banter_files::Files::open(url, &aws)?,
            (None, Some(dir)) => banter_files::Files::directory(dir)?,
            (None, None) => return Ok(None),
        };
        Ok(Some(files))
    }
}

/// Who may register.
#[derive(Debug, Clone, Args)]
pub struct RegistrationArgs {
    /// open: anyone; invite: with an invite code from an admin; closed: nobody. Unset: open
    /// until an admin chooses otherwise on /admin. Set: admins cannot change it (give every
    /// auth process and gateway the same value).
    #[arg(long, env = "BANTER_REGISTRATION")]
    pub registration: Option<banter_auth::Registration>,
}

impl RegistrationArgs {
    pub fn policy(&self) -> banter_auth::RegistrationPolicy {
        banter_auth::RegistrationPolicy {
            locked: self.registration,
        }
    }
}

/// TLS on this command's listener.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// Serve HTTPS and WSS (only) with this PEM certificate chain; with --tls-key. Read
    /// again on SIGHUP (connections already open keep theirs).
    #[arg(long, env = "BANTER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "BANTER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    pub fn files(&self) -> anyhow::Result<Option<crate::TlsFiles>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(crate::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })),
            (None, None) => Ok(None),
            _ => anyhow::bail!("BANTER_TLS_CERT and BANTER_TLS_KEY go together"),
        }
    }
}

/// Where clients' addresses come from.
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// Take the client's address from the last X-Forwarded-For hop, for per-address limits.
    /// Only behind a proxy that appends it (ingress-nginx does); otherwise clients could
    /// claim any address.
    #[arg(long, env = "BANTER_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,
}

/// Where Kafka is, and the topics banter uses.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated (host:port,host:port).
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// The message log topic (the seed's name).
    #[arg(long, env = "BANTER_KAFKA_TOPIC", default_value = "chat-in")]
    pub kafka_topic: String,
    /// The topic for typing and presence (every change of a room is on the log topic).
    #[arg(long, env = "BANTER_KAFKA_EVENTS_TOPIC", default_value = "chat-events")]
    pub kafka_events_topic: String,
    /// Partitions of the topics when banter creates them (rooms spread over them; persist
    /// workers beyond this number stay idle).
    #[arg(long, env = "BANTER_KAFKA_PARTITIONS", default_value_t = 6)]
    pub kafka_partitions: i32,
    /// Replication factor of the topics when banter creates them.
    #[arg(long, env = "BANTER_KAFKA_REPLICATION", default_value_t = 1)]
    pub kafka_replication: i32,
    /// How long a send waits for Kafka before the sender is told `unavailable`.
    #[arg(long, env = "BANTER_KAFKA_SEND_TIMEOUT", value_parser = duration, default_value = "10s")]
    pub kafka_send_timeout: Duration,
    /// How to reach the brokers: plaintext (the default), ssl, sasl_plaintext or sasl_ssl
    /// (librdkafka's security.protocol). TLS and SASL settings come from KAFKA_SSL_* and
    /// KAFKA_SASL_* variables: KAFKA_SSL_CA_LOCATION=/etc/banter/kafka-ca.pem is librdkafka's
    /// ssl.ca.location, KAFKA_SASL_MECHANISMS is sasl.mechanisms.
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL")]
    pub kafka_security_protocol: Option<String>,
}

/// librdkafka's `ssl.*` and `sasl.*` settings from `KAFKA_SSL_*` and `KAFKA_SASL_*`
/// variables: the rest of the name, lowercased, with `_` for `.` (`KAFKA_SSL_KEY_LOCATION` is
/// `ssl.key.location`, `KAFKA_SASL_USERNAME` is `sasl.username`).
pub fn kafka_security_options(
    vars: impl Iterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let mut options: Vec<(String, String)> = vars
        .filter_map(|(name, value)| {
            let (family, rest) = [("ssl", "KAFKA_SSL_"), ("sasl", "KAFKA_SASL_")]
                .into_iter()
                .find_map(|(family, prefix)| Some((family, name.strip_prefix(prefix)?)))?;
            (!rest.is_empty()).then(|| {
                (
                    format!("{family}.{}", rest.to_ascii_lowercase().replace('_', ".")),
                    value,
                )
            })
        })
        .collect();
    options.sort();
    options
}

impl KafkaArgs {
    /// The bus settings, or `None` when no brokers are configured.
    pub fn settings(&self) -> Option<banter_bus::KafkaSettings> {
        let brokers = self.kafka_brokers.as_deref()?.trim();
        if brokers.is_empty() {
            return None;
        }
        let mut s = banter_bus::KafkaSettings::new(brokers);
        s.topic.clone_from(&self.kafka_topic);
        s.events_topic.clone_from(&self.kafka_events_topic);
        s.partitions = self.kafka_partitions;
        s.replication = self.kafka_replication;
        s.send_timeout = self.kafka_send_timeout;
        if let Some(protocol) = &self.kafka_security_protocol {
            s.security.push((
                "security.protocol".into(),
                protocol.trim().to_ascii_lowercase(),
            ));
        }
        s.security.extend(kafka_security_options(std::env::vars()));
        Some(s)
    }

    pub fn required(&self, command: &str) -> anyhow::Result<banter_bus::KafkaSettings> {
        self.settings().ok_or_else(|| {
            anyhow::anyhow!("banter {command} needs Kafka: set KAFKA_BROKERS (host:port,...)")
        })
    }
}

/// Settings of the persist worker's consumer group.
#[derive(Debug, Clone, Args)]
pub struct PersistGroupArgs {
    /// The persist workers' consumer group.
    #[arg(long, env = "KAFKA_CONSUMER_GROUP", default_value = "persist-svc")]
    pub consumer_group: String,
    /// Where records that cannot be stored go, with the reason.
    #[arg(long, env = "KAFKA_DLQ_TOPIC", default_value = "chat-dlq")]
    pub dlq_topic: String,
    /// Most messages written in one transaction.
    #[arg(long, env = "BANTER_PERSIST_BATCH", default_value_t = 5000)]
    pub batch_size: usize,
    /// How long a started batch waits for more messages.
    #[arg(long, env = "BANTER_PERSIST_BATCH_WAIT", value_parser = duration, default_value = "20ms")]
    pub batch_wait: Duration,
}

impl PersistGroupArgs {
    pub fn settings(&self, kafka: banter_bus::KafkaSettings) -> banter_persist::PersistSettings {
        let mut s = banter_persist::PersistSettings::new(kafka);
        s.group.clone_from(&self.consumer_group);
        s.dlq_topic.clone_from(&self.dlq_topic);
        s.batch_size = self.batch_size.max(1);
        s.batch_wait = self.batch_wait;
        s
    }
}

#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Address to listen on; overrides --port.
    #[arg(long, env = "BANTER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Port to listen on, on all interfaces (the seed's GATEWAY_PORT).
    #[arg(long, env = "GATEWAY_PORT", default_value_t = 8081)]
    pub port: u16,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub tokens: TokenArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub presence: PresenceArgs,
    #[command(flatten)]
    pub files: FilesArgs,
    #[command(flatten)]
    pub web: WebArgs,
    #[command(flatten)]
    pub limits: GatewayLimitArgs,
    #[command(flatten)]
    pub hooks: HookArgs,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    #[command(flatten)]
    pub push: GatewayPushArgs,
    #[command(flatten)]
    pub registration: RegistrationArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// The web app.
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// Serve the web app's files from this directory, read at each request, instead of the
    /// copies built into the binary (for working on the app).
    #[arg(long, env = "BANTER_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Where browsers reach the auth API when it is not on the page's own origin (e.g.
    /// https://auth.example.com): the app calls it there and the page's policy allows it.
    /// Give that auth service BANTER_CORS_ORIGINS with this gateway's public origin.
    #[arg(long, env = "BANTER_PUBLIC_AUTH_URL")]
    pub public_auth_url: Option<String>,
    /// Web pages of other origins that may open WebSockets here, comma-separated
    /// (https://chat.example.com), or * for any. Pages served by this process always may;
    /// clients that are not browsers send no origin and are not affected.
    #[arg(long, env = "BANTER_WS_ORIGINS", value_delimiter = ',')]
    pub ws_origins: Vec<String>,
}

impl WebArgs {
    /// The WebSocket origin policy these settings ask for.
    pub fn ws_origins(&self) -> anyhow::Result<banter_gateway::origins::WsOrigins> {
        banter_gateway::origins::WsOrigins::parse(&self.ws_origins)
            .map_err(|e| anyhow::anyhow!("BANTER_WS_ORIGINS: {e}"))
    }
}

impl WebArgs {
    pub fn config(&self) -> anyhow::Result<banter_gateway::web::WebConfig> {
        let auth_origin = self
            .public_auth_url
            .as_deref()
            .map(banter_gateway::web::WebConfig::parse_auth_origin)
            .transpose()
            .map_err(|e| anyhow::anyhow!("BANTER_PUBLIC_AUTH_URL {e}"))?;
        Ok(banter_gateway::web::WebConfig {
            dir: self.web_dir.clone(),
            auth_origin,
        })
    }
}

/// Web Push: how pushes are made and sent (serve and notify).
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// The VAPID private key (P-256, base64url) that pushes are signed with (`banter
    /// push-key` makes one); `banter serve` makes one in its data dir when this is not
    /// given. Browsers' subscriptions are bound to its public key: keep it.
    #[arg(long, env = "BANTER_VAPID_PRIVATE_KEY", value_parser = secret, hide_env_values = true)]
    pub vapid_private_key: Option<Secret>,
    /// Who runs this server, for push services to reach (mailto: or https:).
    #[arg(
        long,
        env = "BANTER_VAPID_SUBJECT",
        default_value = "mailto:admin@localhost"
    )]
    pub vapid_subject: String,
    /// Whether a push carries the start of the message (off: only the room and author).
    #[arg(long, env = "BANTER_PUSH_PREVIEW", value_enum, default_value_t = OnOff::On)]
    pub push_preview: OnOff,
    /// How long after a message its recipient must still have no connection to be pushed.
    #[arg(long, env = "BANTER_PUSH_WAIT", value_parser = duration, default_value = "2s")]
    pub push_wait: Duration,
    /// How long a push service keeps a push for an offline device, and how long a failing
    /// push is retried.
    #[arg(long, env = "BANTER_PUSH_TTL", value_parser = duration, default_value = "1h")]
    pub push_ttl: Duration,
    /// Push services reachable over plain HTTP (http://host:port, comma-separated): a stand-in
    /// push service in tests. Every other endpoint must be https://.
    #[arg(long, env = "BANTER_PUSH_INSECURE_ORIGINS", default_value = "")]
    pub push_insecure_origins: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

impl PushArgs {
    /// The push settings, with `key` as the VAPID key.
    pub fn options(&self, key: banter_push::VapidKey) -> anyhow::Result<crate::PushOptions> {
        if self.push_wait > Duration::from_secs(60) {
            anyhow::bail!("BANTER_PUSH_WAIT: at most 60s (a push that late is no use)");
        }
        let ttl = self
            .push_ttl
            .clamp(Duration::from_secs(1), Duration::from_secs(28 * 24 * 3600));
        Ok(crate::PushOptions {
            key,
            sender: banter_push::SenderSettings {
                subject: self.vapid_subject.clone(),
                ttl,
                ..banter_push::SenderSettings::default()
            },
            notify: banter_push::NotifySettings {
                preview: self.push_preview == OnOff::On,
                away_wait: self.push_wait,
            },
            insecure: insecure_origins(&self.push_insecure_origins)?,
            notify_group: "notify-svc".into(),
        })
    }

    /// The configured VAPID key, if any.
    pub fn key(&self) -> anyhow::Result<Option<banter_push::VapidKey>> {
        self.vapid_private_key
            .as_ref()
            .map(|k| banter_push::VapidKey::from_private_base64(k.expose()))
            .transpose()
            .map_err(|e| anyhow::anyhow!("BANTER_VAPID_PRIVATE_KEY: {e}"))
    }
}

fn insecure_origins(list: &str) -> anyhow::Result<banter_push::InsecureOrigins> {
    banter_push::InsecureOrigins::parse(list)
        .map_err(|e| anyhow::anyhow!("BANTER_PUSH_INSECURE_ORIGINS: {e}"))
}

/// Web Push as a gateway offers it: the key browsers subscribe with.
#[derive(Debug, Clone, Args)]
pub struct GatewayPushArgs {
    /// The VAPID public key browsers subscribe with (base64url; `banter push-key` prints it
    /// beside the private key that `banter notify` signs with). Without it this gateway
    /// offers no push notifications.
    #[arg(long, env = "BANTER_VAPID_PUBLIC_KEY")]
    pub vapid_public_key: Option<String>,
    /// Push services accepted over plain HTTP (http://host:port, comma-separated): a stand-in
    /// push service in tests. Every other endpoint must be https://.
    #[arg(long, env = "BANTER_PUSH_INSECURE_ORIGINS", default_value = "")]
    pub push_insecure_origins: String,
}

impl GatewayPushArgs {
    pub fn api(&self) -> anyhow::Result<Option<banter_gateway::push::PushApi>> {
        let Some(key) = &self.vapid_public_key else {
            return Ok(None);
        };
        let public_key = banter_push::vapid::check_public_base64(key)
            .map_err(|e| anyhow::anyhow!("BANTER_VAPID_PUBLIC_KEY: {e}"))?;
        Ok(Some(banter_gateway::push::PushApi {
            public_key,
            insecure: insecure_origins(&self.push_insecure_origins)?,
        }))
    }
}

/// The notifier's consumer group.
#[derive(Debug, Clone, Args)]
pub struct NotifyGroupArgs {
    /// The notifiers' consumer group (all `banter notify` processes share its partitions).
    #[arg(
        long = "notify-group",
        env = "BANTER_NOTIFY_GROUP",
        default_value = "notify-svc"
    )]
    pub notify_group: String,
}

impl NotifyGroupArgs {
    pub fn settings(&self, kafka: banter_bus::KafkaSettings) -> banter_push::GroupSettings {
        let mut s = banter_push::GroupSettings::new(kafka);
        s.group.clone_from(&self.notify_group);
        s
    }
}

#[derive(Debug, Clone, Args)]
pub struct NotifyArgs {
    /// Address of the health, readiness and metrics endpoints.
    #[arg(long, env = "BANTER_LISTEN", default_value = "0.0.0.0:8083")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub group: NotifyGroupArgs,
    #[command(flatten)]
    pub presence: PresenceArgs,
    #[command(flatten)]
    pub push: PushArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Presence across gateways.
#[derive(Debug, Clone, Args)]
pub struct PresenceArgs {
    /// How often a gateway tells the others everyone online on it (its heartbeat).
    #[arg(long, env = "BANTER_PRESENCE_HEARTBEAT", value_parser = duration, default_value = "10s")]
    pub presence_heartbeat: Duration,
    /// Users of a gateway not heard from for this long are offline (bounds ghosts of a gateway
    /// that died); keep it a few heartbeats.
    #[arg(long, env = "BANTER_PRESENCE_TTL", value_parser = duration, default_value = "30s")]
    pub presence_ttl: Duration,
}

impl PresenceArgs {
    /// The gateway's settings with these.
    pub fn gateway_config(
        &self,
        web: banter_gateway::web::WebConfig,
    ) -> banter_gateway::GatewayConfig {
        banter_gateway::GatewayConfig {
            presence_heartbeat: self.presence_heartbeat.max(Duration::from_millis(100)),
            presence_ttl: self.presence_ttl.max(self.presence_heartbeat),
            web,
            ..banter_gateway::GatewayConfig::default()
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct PersistArgs {
    /// Address of the health, readiness and metrics endpoints.
    #[arg(long, env = "BANTER_LISTEN", default_value = "0.0.0.0:8082")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub group: PersistGroupArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (API, WebSocket and web app on one port).
    #[arg(long, env = "BANTER_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Directory for the SQLite database, the generated JWT secret and (unless BANTER_FILES
    /// says otherwise) attachments, under files/.
    #[arg(long, env = "BANTER_DATA_DIR", default_value = "./banter-data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub tokens: TokenArgs,
    #[command(flatten)]
    pub files: FilesArgs,
    /// With KAFKA_BROKERS set, messages go through Kafka and a persist worker runs inside.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub group: PersistGroupArgs,
    #[command(flatten)]
    pub web: WebArgs,
    #[command(flatten)]
    pub auth_limits: AuthLimitArgs,
    #[command(flatten)]
    pub gateway_limits: GatewayLimitArgs,
    #[command(flatten)]
    pub hooks: HookArgs,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    /// Push notifications of DMs and mentions to browsers with no connection.
    #[arg(long = "push", env = "BANTER_PUSH", value_enum, default_value_t = OnOff::On)]
    pub push_enabled: OnOff,
    #[command(flatten)]
    pub push: PushArgs,
    #[command(flatten)]
    pub notify_group: NotifyGroupArgs,
    #[command(flatten)]
    pub registration: RegistrationArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// Address to listen on; overrides --port.
    #[arg(long, env = "BANTER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Port to listen on, on all interfaces (the seed's AUTH_PORT).
    #[arg(long, env = "AUTH_PORT", default_value_t = 8080)]
    pub port: u16,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// Origins whose pages may call this API from a browser, comma-separated (the gateways'
    /// public origins when the web app is served from another origin than auth).
    #[arg(long, env = "BANTER_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    #[command(flatten)]
    pub limits: AuthLimitArgs,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    #[command(flatten)]
    pub registration: RegistrationArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// `--listen` when given, else the seed's way: the port on all interfaces.
fn listen_or_port(listen: Option<SocketAddr>, port: u16) -> SocketAddr {
    listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port)))
}

impl AuthArgs {
    pub fn listen_addr(&self) -> SocketAddr {
        listen_or_port(self.listen, self.port)
    }
}

impl GatewayArgs {
    pub fn listen_addr(&self) -> SocketAddr {
        listen_or_port(self.listen, self.port)
    }
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub action: AdminAction,
    /// `banter serve`'s data directory, whose SQLite database is used when no DATABASE_URL
    /// or DB_HOST is set.
    #[arg(
        long,
        env = "BANTER_DATA_DIR",
        default_value = "./banter-data",
        global = true
    )]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// Outgoing webhooks.
#[derive(Debug, Clone, Args)]
pub struct HookArgs {
    /// Let outgoing webhooks reach loopback and private addresses (a receiver on this machine
    /// or network). Off: a member could otherwise make the server call into its network.
    #[arg(long, env = "BANTER_HOOKS_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub hooks_allow_private: bool,
    /// On Kafka, the consumer group in which the gateways deliver outgoing webhooks.
    #[arg(long, env = "BANTER_HOOKS_GROUP", default_value = "hooks-svc")]
    pub hooks_group: String,
}

impl HookArgs {
    pub fn settings(&self) -> banter_gateway::outgoing::HookSettings {
        banter_gateway::outgoing::HookSettings {
            allow_private: self.hooks_allow_private,
            group: self.hooks_group.clone(),
            ..banter_gateway::outgoing::HookSettings::default()
        }
    }
}

/// Where a client command finds banter, and with what token.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// banter's base URL (several, comma-separated: the next is tried when one is down).
    #[arg(
        long,
        env = "BANTER_URL",
        default_value = "http://localhost:8080",
        value_delimiter = ',',
        global = true
    )]
    pub server: Vec<String>,
    /// A bot's token, or a user's access token.
    #[arg(long, env = "BANTER_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The room to send to.
    #[arg(long)]
    pub room: String,
    /// Makes a re-run of the same command (after a timeout, say) post nothing new.
    #[arg(long)]
    pub client_id: Option<String>,
    /// The message (`-`: read it from standard input).
    pub body: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BotsArgs {
    #[command(subcommand)]
    pub action: BotsAction,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BotsAction {
    /// Make a bot; prints its token (shown this once) on standard output.
    Create {
        name: String,
        /// Limit it to this room (repeat for several); without: any room a member may use.
        #[arg(long = "room")]
        rooms: Vec<String>,
    },
    /// List the bots.
    List,
    /// Revoke a bot: its token stops working everywhere at once.
    Revoke { name: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum AdminAction {
    /// Make a user an admin.
    Grant { username: String },
    /// Take a user's admin rights away.
    Revoke { username: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn kafka_ssl_and_sasl_variables_become_librdkafka_settings_and_nothing_else_does() {
        let vars = [
            ("KAFKA_SSL_CA_LOCATION", "/etc/banter/ca.pem"),
            ("KAFKA_SSL_KEY_PASSWORD", "pw"),
            ("KAFKA_SASL_MECHANISMS", "SCRAM-SHA-512"),
            ("KAFKA_SSL_", "ignored"),
            ("KAFKA_BROKERS", "b:9092"),
            ("BANTER_SSL_CA_LOCATION", "no"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            kafka_security_options(vars.into_iter()),
            [
                pair("sasl.mechanisms", "SCRAM-SHA-512"),
                pair("ssl.ca.location", "/etc/banter/ca.pem"),
                pair("ssl.key.password", "pw"),
            ]
        );
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn database_url_wins_and_parts_are_encoded() {
        let mut db = DatabaseArgs {
            database_url: None,
            db_host: Some("db".into()),
            db_port: 5433,
            db_name: "go-message-app".into(),
            db_user: "postgres".into(),
            db_password: Some(Secret("p@ss:w/rd".into())),
            db_max_connections: 5,
        };
        let url = db.url().expect("url").expect("some");
        assert_eq!(
            url.expose(),
            "postgres://postgres:p%40ss%3Aw%2Frd@db:5433/go-message-app"
        );
        db.database_url = Some(Secret("postgres://x@y/z".into()));
        assert_eq!(
            db.url().expect("url").expect("some").expose(),
            "postgres://x@y/z"
        );
        db.database_url = None;
        db.db_host = None;
        assert!(db.url().expect("url").is_none());
        assert!(db.required_url("auth").is_err());
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let cli = Cli::try_parse_from([
            "banter",
            "auth",
            "--jwt-secret",
            "very-secret-value-very-secret-value",
            "--database-url",
            "postgres://u:hunter2@h/d",
        ])
        .expect("parse");
        let shown = format!("{cli:?}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
