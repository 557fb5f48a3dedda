//! The command line: a scenario and its knobs, and the settings every scenario shares.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "banter-bench",
    version,
    about = "Load generator for banter and for servers speaking the Go seed's protocol",
    long_about = "Drives a chat server over its public protocol and checks every delivery for \
                  loss, duplication and order; measures latency with an HdrHistogram. \
                  Send traffic to loopback addresses only."
)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// banter's: typed frames, client ids, acks, joins with `since`.
    Banter,
    /// The Go seed's: token in the query, bare `{"room","body"}` sends, bare message objects.
    Seed,
    /// A Socket.IO room chat (bench/peers/socketio): `join` and `send` events, `message`
    /// events back; no accounts, no acks.
    #[value(name = "socketio")]
    SocketIo,
    /// Centrifugo's JSON client protocol: a connection JWT signed with `--token-secret`,
    /// a subscription per room, publications pushed back (several per frame under load).
    Centrifugo,
}

impl Protocol {
    /// Whether the server answers each send with an ack once it is durable (else a send
    /// counts as answered when it is written).
    pub fn acks(self) -> bool {
        self == Self::Banter
    }

    /// Whether connections log in with accounts of the auth API (Centrifugo's tokens are
    /// made here, signed with its key; Socket.IO's chat has no accounts).
    pub fn has_accounts(self) -> bool {
        matches!(self, Self::Banter | Self::Seed)
    }
}

#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The server's base URL (WebSocket at /ws). Several, comma-separated, spread the
    /// connections over them (e.g. two gateways).
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The auth API's base URL (default: the first --url).
    #[arg(long, global = true)]
    pub auth_url: Option<String>,
    #[arg(long, global = true, value_enum, default_value_t = Protocol::Banter)]
    pub protocol: Protocol,
    /// Connections come from this many loopback source addresses, 127.0.0.2 upwards
    /// (0: the OS picks, 127.0.0.1).
    #[arg(long, global = true, default_value_t = 16)]
    pub source_ips: u8,
    /// Accounts the connections are spread over (registered when missing).
    #[arg(long, global = true, default_value_t = 20)]
    pub users: usize,
    /// Account names are this prefix and a number.
    #[arg(long, global = true, default_value = "bench")]
    pub user_prefix: String,
    /// The server's process id: its resident memory goes into the summary.
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,
    /// Write the summary here as JSON.
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    /// Centrifugo's `client.token.hmac_secret_key`: the generator signs its connection tokens
    /// with it (HS256).
    #[arg(long, global = true, default_value = "banter-bench-centrifugo-secret")]
    pub token_secret: String,
    /// Connections opened at once while setting up.
    #[arg(long, global = true, default_value_t = 256)]
    pub connect_concurrency: usize,
}

impl Common {
    pub fn urls(&self) -> Vec<String> {
        self.url
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect()
    }

    pub fn auth(&self) -> String {
        self.auth_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| self.urls().first().cloned().unwrap_or_default())
    }
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// R rooms of M members; P sends per second in total, bodies of --body-bytes.
    Fanout(FanoutArgs),
    /// N connections held for a while: drops, and the server's memory per connection.
    Idle(IdleArgs),
    /// Members of a busy room reconnect at a rate, each resuming with `since` (Centrifugo:
    /// subscribing again with recovery from the last offset, which needs its history on).
    Reconnect(ReconnectArgs),
    /// Logins at a rate beside a fanout: login latency, and what it does to the fanout's.
    Login(LoginArgs),
    /// Watches persist workers store a Kafka backlog: rows per second into PostgreSQL.
    Persist(PersistArgs),
    /// Writes the report of a suite (markdown and SVG charts) from its JSON summaries.
    Report(ReportArgs),
    /// Loads a store with made-up chat (or reuses one) and times searches by a user in some
    /// of its rooms: one word, three words, the commonest word (p50, p99, max).
    Search(SearchArgs),
    /// Steady traffic on a `scripts/cluster` cluster while its parts fail in turn; checks
    /// what clients sent, were acked and received against PostgreSQL (`scripts/chaos`).
    Chaos(ChaosArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    /// The cluster's directory (`scripts/cluster up DIR`).
    #[arg(long)]
    pub cluster: PathBuf,
    /// The script that kills, stops and starts its parts.
    #[arg(long, default_value = "scripts/cluster")]
    pub cluster_script: PathBuf,
    /// Faults, in turn: kill:NAME (SIGKILL), term:NAME (SIGTERM), each started again after
    /// --down; stop:postgres, stop:kafka, started again after --outage.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kill:gateway-1,kill:gateway-2,kill:persist-1,kill:persist-2,kill:auth,\
                         term:gateway-1,term:persist-2,stop:postgres,stop:kafka"
    )]
    pub faults: Vec<String>,
    #[arg(long, default_value_t = 6)]
    pub senders: usize,
    #[arg(long, default_value_t = 3)]
    pub readers: usize,
    #[arg(long, default_value_t = 6)]
    pub rooms: usize,
    /// Messages per second, per sender.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Messages a sender has unanswered at most.
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// Steady traffic before the first fault.
    #[arg(long, value_parser = duration, default_value = "10s")]
    pub warmup: Duration,
    /// How long a killed or stopped process stays down.
    #[arg(long, value_parser = duration, default_value = "3s")]
    pub down: Duration,
    /// How long PostgreSQL or Kafka stays stopped.
    #[arg(long, value_parser = duration, default_value = "30s")]
    pub outage: Duration,
    /// Steady traffic after each fault is mended, before the next.
    #[arg(long, value_parser = duration, default_value = "10s")]
    pub settle: Duration,
    /// After writing stops: how long to wait for acks, rows and deliveries.
    #[arg(long, value_parser = duration, default_value = "180s")]
    pub patience: Duration,
    /// Also write the table (markdown) here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct PersistArgs {
    /// The persist workers' health/metrics base URLs, comma-separated.
    #[arg(long)]
    pub persist_urls: String,
    /// Messages to wait for.
    #[arg(long)]
    pub expect: u64,
    #[arg(long, value_parser = duration, default_value = "300s")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// The store: `sqlite://FILE` (created) or `postgres://…` (an empty database, or one this
    /// benchmark loaded before).
    #[arg(long)]
    pub database_url: String,
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: usize,
    #[arg(long, default_value_t = 1_000)]
    pub rooms: usize,
    /// Rooms the searching user is a member of.
    #[arg(long, default_value_t = 50)]
    pub member_of: usize,
    /// Queries of each kind.
    #[arg(long, default_value_t = 500)]
    pub queries: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The directory of JSON summaries (and commands.txt).
    #[arg(long)]
    pub results: PathBuf,
    /// Where README.md, latency.svg and throughput.svg go.
    #[arg(long)]
    pub out: PathBuf,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Members per room (each a connection that reads everything of its room).
    #[arg(long, default_value_t = 100)]
    pub members: usize,
    /// Sends per second over all rooms (one sender per room).
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 200)]
    pub body_bytes: usize,
    /// Sending before measuring starts.
    #[arg(long, value_parser = duration, default_value = "3s")]
    pub warmup: Duration,
    /// Measuring.
    #[arg(long, value_parser = duration, default_value = "20s")]
    pub duration: Duration,
    /// After sending stops, how long deliveries may still come.
    #[arg(long, value_parser = duration, default_value = "10s")]
    pub drain: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// How long they are held once all are open.
    #[arg(long, value_parser = duration, default_value = "30s")]
    pub hold: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct ReconnectArgs {
    #[command(flatten)]
    pub fanout: FanoutArgs,
    /// Reconnects per second over all members.
    #[arg(long, default_value_t = 200.0)]
    pub reconnect_rate: f64,
}

#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub fanout: FanoutArgs,
    /// Logins per second.
    #[arg(long, default_value_t = 10.0)]
    pub login_rate: f64,
}
