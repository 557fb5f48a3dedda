//! Talking to the server: accounts and tokens over HTTP, WebSocket connections from chosen
//! loopback source addresses, and the frames of the two protocols.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use futures::stream::{self, StreamExt};
use futures::SinkExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::cli::{Common, Protocol};
use crate::peers::centrifugo;
use crate::peers::socketio::{self, Packet};

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

/// Tokens of `common.users` accounts (a few logins at a time: hashing is deliberately slow);
/// empty ones for a server without accounts.
pub async fn tokens(common: &Common) -> anyhow::Result<Vec<String>> {
    if common.protocol == Protocol::Centrifugo {
        return (0..common.users.max(1))
            .map(|i| centrifugo_token(&common.token_secret, &format!("{}{i}", common.user_prefix)))
            .collect();
    }
    if !common.protocol.has_accounts() {
        return Ok(vec![String::new(); common.users.max(1)]);
    }
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

/// A Centrifugo connection token for `user`, valid for a day (HS256 with its HMAC key).
fn centrifugo_token(secret: &str, user: &str) -> anyhow::Result<String> {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 86_400;
    let claims = json!({ "sub": user, "exp": exp });
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
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
        Protocol::SocketIo => format!("{ws}/socket.io/?EIO=4&transport=websocket"),
        Protocol::Centrifugo => format!("{ws}/connection/websocket"),
    }
}

/// The protocol's own opening on a new connection, after the WebSocket handshake: for
/// Socket.IO, Engine.IO's open, the namespace's connect, and (with `room`) a `join` whose
/// ack says the connection is in the room; for Centrifugo, `connect` with the token and
/// (with `room`) `subscribe`, each answered. Nothing for the others (banter and the seed take
/// the room in the URL).
pub async fn open_session(
    protocol: Protocol,
    ws: &mut Ws,
    token: &str,
    room: Option<&str>,
) -> anyhow::Result<()> {
    match protocol {
        Protocol::Banter | Protocol::Seed => Ok(()),
        Protocol::SocketIo => open_socketio(ws, room).await,
        Protocol::Centrifugo => open_centrifugo(ws, token, room).await,
    }
}

/// Centrifugo's opening: `connect` (id 1), then `subscribe` (id 2), each awaited.
async fn open_centrifugo(ws: &mut Ws, token: &str, room: Option<&str>) -> anyhow::Result<()> {
    ws.send(Message::text(centrifugo::connect(1, token)))
        .await?;
    await_reply(ws, 1).await?;
    if let Some(room) = room {
        ws.send(Message::text(centrifugo::subscribe(2, room, None)))
            .await?;
        await_reply(ws, 2).await?;
    }
    Ok(())
}

/// Where a Centrifugo subscription stands in its channel's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    pub epoch: String,
}

/// Centrifugo's opening with recovery (the channel must keep history): `connect`, then
/// `subscribe` to `room`, recovering after `since` when given. Returns the publications
/// recovered (as push lines, for the caller's usual parse) and the stream's position now.
/// A recovery the server could not make (history gone, another epoch) is an error.
pub async fn open_centrifugo_recovering(
    ws: &mut Ws,
    token: &str,
    room: &str,
    since: Option<&Position>,
) -> anyhow::Result<(Vec<String>, Position)> {
    open_centrifugo(ws, token, None).await?;
    let recover = since.map(|p| (p.offset, p.epoch.as_str()));
    ws.send(Message::text(centrifugo::subscribe(2, room, recover)))
        .await?;
    let (result, after) = await_reply(ws, 2).await?;
    let epoch = result["epoch"].as_str().unwrap_or_default().to_owned();
    anyhow::ensure!(
        !epoch.is_empty(),
        "Centrifugo's subscription has no history position: turn history and recovery on"
    );
    if since.is_some() {
        anyhow::ensure!(
            result["recovered"].as_bool() == Some(true),
            "Centrifugo could not recover the subscription: {result}"
        );
    }
    let mut replayed: Vec<String> = result["publications"]
        .as_array()
        .map(|pubs| {
            pubs.iter()
                .map(|p| json!({"push": {"channel": room, "pub": p}}).to_string())
                .collect()
        })
        .unwrap_or_default();
    replayed.extend(after);
    let offset = result["offset"].as_u64().unwrap_or(0);
    Ok((replayed, Position { offset, epoch }))
}

/// Waits for the reply to command `id`, and returns its result and the lines that came after
/// it in the same frame (Centrifugo packs pushes behind a reply: a subscription's first
/// publications may be there); pings are answered on the way.
async fn await_reply(ws: &mut Ws, id: u64) -> anyhow::Result<(Value, Vec<String>)> {
    loop {
        let t = next_text(ws).await?;
        let mut lines = t.as_str().lines().filter(|l| !l.trim().is_empty());
        while let Some(line) = lines.next() {
            for decoded in centrifugo::decode(line) {
                match decoded.map_err(anyhow::Error::msg)? {
                    centrifugo::Incoming::Ping => {
                        ws.send(Message::text(centrifugo::pong())).await?;
                    }
                    centrifugo::Incoming::Reply { id: got, result } if got == id => {
                        let result = result.map_err(|e| {
                            anyhow::anyhow!("Centrifugo refused: {} {}", e.code, e.message)
                        })?;
                        return Ok((result, lines.map(str::to_owned).collect()));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The next text frame while opening a session (30 s at most).
async fn next_text(ws: &mut Ws) -> anyhow::Result<tokio_tungstenite::tungstenite::Utf8Bytes> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .context("no answer within 30 s")?
            .context("closed while opening")??;
        if let Message::Text(t) = frame {
            return Ok(t);
        }
    }
}

/// Socket.IO's opening.
async fn open_socketio(ws: &mut Ws, room: Option<&str>) -> anyhow::Result<()> {
    anyhow::ensure!(
        matches!(next_socketio(ws).await?, Packet::Open { .. }),
        "the server did not open an Engine.IO session"
    );
    ws.send(Message::text(socketio::connect(None))).await?;
    loop {
        match next_socketio(ws).await? {
            Packet::Connected => break,
            Packet::ConnectError(e) => anyhow::bail!("the namespace refused the connection: {e}"),
            _ => {}
        }
    }
    if let Some(room) = room {
        let join = socketio::event("join", &[Value::String(room.to_owned())], Some(1));
        ws.send(Message::text(join)).await?;
        while !matches!(next_socketio(ws).await?, Packet::Ack { id: 1, .. }) {}
    }
    Ok(())
}

/// The next Socket.IO packet while opening a session; pings are answered on the way.
async fn next_socketio(ws: &mut Ws) -> anyhow::Result<Packet> {
    loop {
        let t = next_text(ws).await?;
        match socketio::decode(t.as_str()).map_err(anyhow::Error::msg)? {
            Packet::Ping => ws.send(Message::text(socketio::pong())).await?,
            packet => return Ok(packet),
        }
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

/// A send frame: banter's (banter-client's), the seed's bare one, a Socket.IO `send`, or a
/// Centrifugo `publish` (its command id `seq`, past the opening's).
pub fn send_frame(protocol: Protocol, room: &str, body: &str, client_id: &str, seq: u64) -> String {
    match protocol {
        Protocol::Centrifugo => {
            centrifugo::publish(seq + 3, room, &json!({"room": room, "body": body}))
        }
        Protocol::Banter => banter_client::send_frame(room, body, client_id),
        Protocol::Seed => json!({"room": room, "body": body}).to_string(),
        Protocol::SocketIo => socketio::event("send", &[json!({"room": room, "body": body})], None),
    }
}

/// What the client must answer to a frame at once (a protocol's ping), if anything.
pub fn answer(protocol: Protocol, text: &str) -> Option<&'static str> {
    match protocol {
        Protocol::SocketIo => (text == "2").then(socketio::pong),
        Protocol::Centrifugo => text
            .lines()
            .any(|line| line.trim() == "{}")
            .then(centrifugo::pong),
        Protocol::Banter | Protocol::Seed => None,
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

    /// Everything a frame in `protocol`'s framing says: one thing, except Centrifugo's
    /// frames, which may hold several pushes and replies (a refused command is an `error`).
    pub fn parse_all(protocol: Protocol, text: &str) -> Vec<Self> {
        if protocol != Protocol::Centrifugo {
            return Self::parse_as(protocol, text).into_iter().collect();
        }
        centrifugo::decode(text)
            .into_iter()
            .filter_map(|line| match line.ok()? {
                centrifugo::Incoming::Publication { data, offset, .. } => {
                    let mut f: Self = serde_json::from_value(data).ok()?;
                    f.kind = Some("message".into());
                    // Its place in the channel's history, when there is one: a resume's.
                    f.cursor = offset.map(|o| o.to_string());
                    Some(f)
                }
                centrifugo::Incoming::Reply { result: Err(e), .. } => Some(Self {
                    kind: Some("error".into()),
                    room: None,
                    body: None,
                    cursor: None,
                    code: Some(format!("{} {}", e.code, e.message)),
                }),
                _ => None,
            })
            .collect()
    }

    /// [`Incoming::parse`] of a frame in `protocol`'s framing: a Socket.IO `message` event
    /// is a message. (Centrifugo's frames: [`Incoming::parse_all`].)
    pub fn parse_as(protocol: Protocol, text: &str) -> Option<Self> {
        match protocol {
            Protocol::Banter | Protocol::Seed => Self::parse(text),
            Protocol::Centrifugo => Self::parse_all(protocol, text).into_iter().next(),
            Protocol::SocketIo => match socketio::decode(text).ok()? {
                Packet::Event { name, mut args, .. } if name == "message" && !args.is_empty() => {
                    let mut f: Self = serde_json::from_value(args.swap_remove(0)).ok()?;
                    f.kind = Some("message".into());
                    Some(f)
                }
                _ => None,
            },
        }
    }

    /// A chat message (banter's `message` frame, or the seed's bare message object).
    pub fn is_message(&self) -> bool {
        self.body.is_some() && matches!(self.kind.as_deref(), None | Some("message"))
    }

    pub fn is(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_frames_a_send_and_reads_a_message_its_way() {
        for protocol in [
            Protocol::Banter,
            Protocol::Seed,
            Protocol::SocketIo,
            Protocol::Centrifugo,
        ] {
            let frame = send_frame(protocol, "r0", "hello", "c1", 0);
            let echoed = match protocol {
                // What each server sends back for that send.
                Protocol::Banter => {
                    r#"{"type":"message","room":"r0","body":"hello","cursor":"01"}"#.to_owned()
                }
                Protocol::Seed => r#"{"room":"r0","body":"hello"}"#.to_owned(),
                Protocol::SocketIo => r#"42["message",{"room":"r0","body":"hello"}]"#.to_owned(),
                Protocol::Centrifugo => {
                    r#"{"push":{"channel":"r0","pub":{"data":{"room":"r0","body":"hello"}}}}"#
                        .to_owned()
                }
            };
            assert!(frame.contains("hello"), "{frame}");
            let got = Incoming::parse_as(protocol, &echoed).expect("a message");
            assert!(got.is_message(), "{protocol:?}");
            assert_eq!(
                (got.room.as_deref(), got.body.as_deref()),
                (Some("r0"), Some("hello"))
            );
        }
        // Socket.IO's other events and packets are not messages.
        assert!(Incoming::parse_as(Protocol::SocketIo, r#"42["typing",{"room":"r0"}]"#).is_none());
        assert!(Incoming::parse_as(Protocol::SocketIo, "2").is_none());
    }

    #[test]
    fn socket_io_and_centrifugo_pings_need_an_answer_from_the_client() {
        assert_eq!(answer(Protocol::SocketIo, "2"), Some("3"));
        assert_eq!(answer(Protocol::SocketIo, r#"42["message",{}]"#), None);
        assert_eq!(answer(Protocol::Banter, "2"), None);
        // Centrifugo's ping is an empty object, alone or among pushes in one frame.
        assert_eq!(answer(Protocol::Centrifugo, "{}"), Some("{}"));
        assert_eq!(
            answer(
                Protocol::Centrifugo,
                "{\"push\":{\"channel\":\"r0\",\"pub\":{}}}\n{}"
            ),
            Some("{}")
        );
        assert_eq!(
            answer(Protocol::Centrifugo, r#"{"id":3,"publish":{}}"#),
            None
        );
    }

    #[test]
    fn a_centrifugo_frame_of_several_pushes_is_several_messages() {
        let frame = concat!(
            r#"{"push":{"channel":"r0","pub":{"data":{"room":"r0","body":"a"}}}}"#,
            "\n",
            r#"{"id":7,"publish":{}}"#,
            "\n",
            r#"{"push":{"channel":"r0","pub":{"data":{"room":"r0","body":"b"}}}}"#,
            "\n",
            r#"{"id":8,"error":{"code":103,"message":"permission denied"}}"#,
        );
        let got = Incoming::parse_all(Protocol::Centrifugo, frame);
        let bodies: Vec<Option<&str>> = got
            .iter()
            .filter(|f| f.is_message())
            .map(|f| f.body.as_deref())
            .collect();
        assert_eq!(bodies, [Some("a"), Some("b")]);
        assert!(
            got.iter().any(|f| f.is("error")),
            "a refused publish counts: {got:?}"
        );
        let v: Value = serde_json::from_str(&send_frame(Protocol::Centrifugo, "r0", "x", "c", 4))
            .expect("json");
        assert_eq!(v["id"], 7, "past the opening's connect and subscribe");
        assert_eq!(v["publish"]["data"], json!({"room": "r0", "body": "x"}));
    }

    #[test]
    fn a_centrifugo_publication_with_history_carries_its_offset_as_the_cursor() {
        let frame = concat!(
            r#"{"push":{"channel":"r0","pub":{"data":{"room":"r0","body":"a"},"offset":41}}}"#,
            "\n",
            r#"{"push":{"channel":"r0","pub":{"data":{"room":"r0","body":"b"}}}}"#,
        );
        let cursors: Vec<Option<String>> = Incoming::parse_all(Protocol::Centrifugo, frame)
            .into_iter()
            .map(|f| f.cursor)
            .collect();
        // A reconnect recovers after the offset last heard; without history there is none.
        assert_eq!(cursors, [Some("41".to_owned()), None]);
    }

    #[test]
    fn centrifugo_tokens_are_signed_with_its_key() {
        let token = centrifugo_token("k", "bench3").expect("token");
        let mut check = jsonwebtoken::Validation::default();
        check.required_spec_claims = ["exp", "sub"].iter().map(|s| (*s).to_owned()).collect();
        let data = jsonwebtoken::decode::<Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"k"),
            &check,
        )
        .expect("valid with the key");
        assert_eq!(data.claims["sub"], "bench3");
        assert!(jsonwebtoken::decode::<Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"other"),
            &check
        )
        .is_err());
    }

    #[test]
    fn each_peer_connects_to_its_own_endpoint() {
        assert_eq!(
            ws_url(Protocol::SocketIo, "http://127.0.0.1:9", "", "r0"),
            "ws://127.0.0.1:9/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            ws_url(Protocol::Seed, "http://127.0.0.1:9", "t", "r0"),
            "ws://127.0.0.1:9/ws?token=t&room=r0"
        );
        assert_eq!(
            ws_url(Protocol::Centrifugo, "http://127.0.0.1:9", "t", "r0"),
            "ws://127.0.0.1:9/connection/websocket"
        );
    }
}
