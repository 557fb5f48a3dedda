//! Talking to the server: accounts and tokens over HTTP, WebSocket connections from chosen
//! loopback source addresses, and the frames of the two protocols.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use futures::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;

use crate::cli::{Common, Protocol};

pub type Ws = WebSocketStream<TcpStream>;

pub const PASSWORD: &str = "bench-password-1";

/// What a refusal for a rate limit tells the person running the benchmark.
const NO_LIMITS: &str = "a benchmark needs the server without its limits (start it after \
     `set -a; . scripts/no-limits.env; set +a`)";

/// How long, in all, a run waits out a server's `429 rate_limited` answers to its logins
/// before it gives up saying how to run the server for a benchmark.
const RATE_LIMIT_PATIENCE: Duration = Duration::from_secs(120);

/// POSTs `body` to `url`, waiting out `429` answers (their `Retry-After`, a second when it
/// has none) for up to [`RATE_LIMIT_PATIENCE`] in all.
async fn post_patiently(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> anyhow::Result<reqwest::Response> {
    let deadline = tokio::time::Instant::now() + RATE_LIMIT_PATIENCE;
    loop {
        let r = http
            .post(url)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        if r.status() != reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Ok(r);
        }
        let wait = r
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(Duration::from_secs(1), Duration::from_secs)
            .min(Duration::from_secs(10));
        if tokio::time::Instant::now() + wait > deadline {
            anyhow::bail!("the server keeps refusing logins with 429 rate_limited: {NO_LIMITS}");
        }
        tokio::time::sleep(wait).await;
    }
}

/// Logs in as `name`, registering it first when it does not exist; returns the access token.
pub async fn token(http: &reqwest::Client, auth: &str, name: &str) -> anyhow::Result<String> {
    let creds = json!({ "username": name, "password": PASSWORD });
    let login_url = format!("{auth}/api/v1/login");
    let mut r = post_patiently(http, &login_url, &creds).await?;
    if r.status() == 401 {
        let reg = post_patiently(http, &format!("{auth}/api/v1/register"), &creds).await?;
        anyhow::ensure!(
            reg.status().is_success() || reg.status() == 409,
            "registering {name}: {}",
            reg.status()
        );
        r = post_patiently(http, &login_url, &creds).await?;
    }
    anyhow::ensure!(r.status().is_success(), "logging in {name}: {}", r.status());
    let body: serde_json::Value = r.json().await.context("login answer")?;
    body["data"]["token"]
        .as_str()
        .map(str::to_owned)
        .context("no token in the login answer")
}

/// Tokens of `common.users` accounts (a few logins at a time: hashing is deliberately slow).
pub async fn tokens(common: &Common) -> anyhow::Result<Vec<String>> {
    let http = reqwest::Client::new();
    let auth = common.auth();
    let names: Vec<String> = (0..common.users.max(1))
        .map(|i| format!("{}{i}", common.user_prefix))
        .collect();
    stream::iter(names)
        .map(|name| {
            let (http, auth) = (http.clone(), auth.clone());
            async move { token(&http, &auth, &name).await }
        })
        .buffered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// The loopback address the `n`th connection comes from.
pub fn source(common: &Common, n: usize) -> IpAddr {
    if common.source_ips == 0 {
        return IpAddr::V4(Ipv4Addr::LOCALHOST);
    }
    let host = 2 + (n % usize::from(common.source_ips));
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, u8::try_from(host).unwrap_or(2)))
}

/// The WebSocket URL of `base` for `token`, in `room` from the start. Both protocols take
/// the room in the URL; the seed's page connects so, one room per connection (its room
/// switch on a send to another room is the path its gateway crashes on under load).
pub fn ws_url(protocol: Protocol, base: &str, token: &str, room: &str) -> String {
    let ws = base.replacen("http", "ws", 1);
    match protocol {
        Protocol::Banter | Protocol::Seed => format!("{ws}/ws?token={token}&room={room}"),
    }
}

/// Opens a WebSocket to `url` from `from`.
pub async fn connect(url: &str, from: IpAddr) -> anyhow::Result<Ws> {
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .context("a URL with a host")?;
    let addr: SocketAddr = tokio::net::lookup_host(authority)
        .await?
        .next()
        .context("the host resolves")?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let stream = socket.connect(addr).await.context("TCP connect")?;
    stream.set_nodelay(true)?;
    // Small read buffers, like the server's: the default 128 KiB one is zero-filled on each
    // read, which made memset the generator's top cost (a quarter of its CPU, taken from the
    // server on a shared machine).
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024);
    let (ws, _) = match tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await
    {
        Ok(done) => done,
        Err(tokio_tungstenite::tungstenite::Error::Http(r))
            if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS.as_u16() =>
        {
            anyhow::bail!("the server refused a connection with 429 rate_limited: {NO_LIMITS}")
        }
        Err(e) => return Err(anyhow::Error::new(e).context("WebSocket handshake")),
    };
    Ok(ws)
}

/// A send frame: banter's (banter-client's), or the seed's bare one.
pub fn send_frame(protocol: Protocol, room: &str, body: &str, client_id: &str) -> String {
    match protocol {
        Protocol::Banter => banter_client::send_frame(room, body, client_id),
        Protocol::Seed => json!({"room": room, "body": body}).to_string(),
    }
}

/// A join frame resuming after `since`.
pub use banter_client::join_frame;

/// What the generator looks at in a frame from the server.
#[derive(Debug, Deserialize)]
pub struct Incoming {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub room: Option<String>,
    pub body: Option<String>,
    pub cursor: Option<String>,
    pub code: Option<String>,
}

impl Incoming {
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// A chat message (banter's `message` frame, or the seed's bare message object).
    pub fn is_message(&self) -> bool {
        self.body.is_some() && matches!(self.kind.as_deref(), None | Some("message"))
    }

    pub fn is(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }
}
