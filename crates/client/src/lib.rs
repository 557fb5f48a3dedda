//! banter's client library, written once. What a careful client of the protocol does
//! (docs/protocol.md), as plain state that any socket loop drives — the cluster suite, the
//! chaos run and the benchmarks all use it instead of each keeping a copy:
//!
//! - [`Outbox`]: what a client sends and has not had answered. At most a window of frames
//!   in flight; an `ack` settles one; `unavailable` and `rate_limited` put it back, to go
//!   again with the same `client_id` (so it is stored once) after a pause (and, after
//!   `rate_limited`, at a slower pace); a lost connection puts everything unanswered back, in
//!   order, for the next connection.
//! - [`Resume`]: per room, the last cursor heard (of any room event) and the `join` that
//!   resumes after it, so a reconnect misses nothing and doubles nothing.
//! - [`Gateways`]: which gateway to (re)connect to: the next one after a failure.
//! - frame builders ([`send_frame`], [`join_frame`], [`change_frame`]).
//!
//! These have no I/O: the caller owns the socket and the clock (`now` is passed in), so every
//! rule is unit-tested without a server. [`Client`] and [`Session`] put them together with
//! the I/O (reqwest, tokio-tungstenite): log in (or take a bot's token), connect, and read
//! typed [`Event`]s while sends are re-sent until acked and rooms resume across reconnects
//! and gateways. `examples/echo.rs` is a bot with it.

mod outbox;
mod resume;
mod session;

pub use outbox::{Answer, Outbox};
/// The HTTP method of [`Client::api`].
pub use reqwest::Method;
pub use resume::Resume;
pub use session::{Ack, Client, Error, Event, Message, Send, Session};

use serde_json::{json, Value};

/// The cursor before every event of every room (protocol.md, "Cursors").
pub const ZERO_CURSOR: &str = "000000000000000000000000";

/// A `send` frame.
pub fn send_frame(room: &str, body: &str, client_id: &str) -> String {
    json!({"type": "send", "room": room, "body": body, "client_id": client_id}).to_string()
}

/// A `join` frame resuming after `since` (a plain join without it).
pub fn join_frame(room: &str, since: Option<&str>) -> String {
    match since {
        Some(cursor) => json!({"type": "join", "room": room, "since": cursor}).to_string(),
        None => json!({"type": "join", "room": room}).to_string(),
    }
}

/// An `edit`, `delete`, `react` or `unreact` frame of message `id`: `extra` holds the kind's
/// own field (`{"body": …}` or `{"emoji": …}`, nothing for a delete).
pub fn change_frame(kind: &str, id: &str, client_id: &str, extra: Value) -> String {
    let mut frame = json!({"type": kind, "id": id, "client_id": client_id});
    if let (Some(frame), Value::Object(extra)) = (frame.as_object_mut(), extra) {
        frame.extend(extra);
    }
    frame.to_string()
}

/// `ws://…/ws?token=…` of a gateway's `http://…` base URL.
pub fn ws_url(gateway: &str, token: &str) -> String {
    format!("{}/ws?token={token}", gateway.replacen("http", "ws", 1))
}

/// The gateways a client may use, and which one is next.
#[derive(Debug, Clone)]
pub struct Gateways {
    urls: Vec<String>,
    at: usize,
}

impl Gateways {
    /// Starts at `first` (any number: it wraps).
    pub fn new(urls: Vec<String>, first: usize) -> Self {
        assert!(!urls.is_empty(), "a client needs a gateway");
        let at = first % urls.len();
        Self { urls, at }
    }

    /// The one to connect to now.
    pub fn current(&self) -> &str {
        &self.urls[self.at]
    }

    /// Moves on: after a failed connection or a lost one, the client tries the next gateway
    /// (a load balancer would; and the one that failed may be gone for good).
    pub fn move_on(&mut self) -> &str {
        self.at = (self.at + 1) % self.urls.len();
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_say_what_the_protocol_says() {
        let v: Value = serde_json::from_str(&send_frame("r", "hi", "c1")).expect("json");
        assert_eq!(
            v,
            json!({"type":"send","room":"r","body":"hi","client_id":"c1"})
        );
        let v: Value = serde_json::from_str(&join_frame("r", Some("c"))).expect("json");
        assert_eq!(v, json!({"type":"join","room":"r","since":"c"}));
        let v: Value =
            serde_json::from_str(&change_frame("react", "m", "c2", json!({"emoji":"👍"})))
                .expect("json");
        assert_eq!(
            v,
            json!({"type":"react","id":"m","client_id":"c2","emoji":"👍"})
        );
        let v: Value =
            serde_json::from_str(&change_frame("delete", "m", "c3", Value::Null)).expect("json");
        assert_eq!(v, json!({"type":"delete","id":"m","client_id":"c3"}));
        assert_eq!(ws_url("http://h:1", "t"), "ws://h:1/ws?token=t");
    }

    #[test]
    fn gateways_wrap_around() {
        let mut g = Gateways::new(vec!["a".into(), "b".into()], 3);
        assert_eq!(g.current(), "b");
        assert_eq!(g.move_on(), "a");
        assert_eq!(g.move_on(), "b");
    }
}
