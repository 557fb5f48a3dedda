//! Socket.IO (protocol v5) over Engine.IO v4, on a WebSocket opened straight at
//! `/socket.io/?EIO=4&transport=websocket`, as a developer's own room-broadcast chat would
//! serve it.
//!
//! Engine.IO packets are text frames whose first character is their type: `0` open (with the
//! session's JSON), `2` ping (the server's, answered `3`), `4` message. A Socket.IO packet
//! rides in a message: `40` connects the default namespace (`40{…}` with auth), `42[…]` is an
//! event — a name and its arguments as a JSON array — `42<n>[…]` one that wants an ack, and
//! `43<n>[…]` is the ack. Binary attachments are not used here.

use serde_json::Value;

/// What one server frame is.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// Engine.IO open: the session id and how often the server pings.
    Open { sid: String, ping_interval_ms: u64 },
    /// An Engine.IO ping: answer with [`pong`].
    Ping,
    /// The namespace accepted the connection.
    Connected,
    /// The namespace refused it (its middleware's error).
    ConnectError(Value),
    /// An event: its name, arguments, and the ack id the sender wants answered.
    Event {
        name: String,
        args: Vec<Value>,
        ack: Option<u64>,
    },
    /// The answer to an event sent with an ack id.
    Ack { id: u64, args: Vec<Value> },
    /// The server closed the namespace or the session.
    Disconnect,
}

/// The answer to an Engine.IO ping.
pub fn pong() -> &'static str {
    "3"
}

/// Connects the default namespace, with `auth` (e.g. `{"token": …}`) when given.
pub fn connect(auth: Option<&Value>) -> String {
    match auth {
        Some(auth) => format!("40{auth}"),
        None => "40".to_owned(),
    }
}

/// An event `name` with `args`, wanting an ack when `ack` is given.
pub fn event(name: &str, args: &[Value], ack: Option<u64>) -> String {
    let mut array = Vec::with_capacity(args.len() + 1);
    array.push(Value::String(name.to_owned()));
    array.extend_from_slice(args);
    let ack = ack.map(|a| a.to_string()).unwrap_or_default();
    format!("42{ack}{}", Value::Array(array))
}

/// Decodes a server frame.
pub fn decode(frame: &str) -> Result<Packet, String> {
    let mut chars = frame.chars();
    match chars.next() {
        Some('0') => {
            let open: Value = serde_json::from_str(chars.as_str())
                .map_err(|e| format!("an open packet without its session: {e}"))?;
            Ok(Packet::Open {
                sid: open["sid"].as_str().unwrap_or_default().to_owned(),
                ping_interval_ms: open["pingInterval"].as_u64().unwrap_or(25_000),
            })
        }
        Some('1') => Ok(Packet::Disconnect),
        Some('2') => Ok(Packet::Ping),
        Some('4') => decode_socket(chars.as_str()),
        _ => Err(format!("not an Engine.IO packet: {frame:.40}")),
    }
}

/// A Socket.IO packet (what follows Engine.IO's `4`).
fn decode_socket(packet: &str) -> Result<Packet, String> {
    let (kind, rest) = packet.split_at(packet.len().min(1));
    // A namespace other than the default one would come as `/name,`; none is used here.
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (id, payload) = rest.split_at(digits);
    let id = (!id.is_empty())
        .then(|| id.parse::<u64>().map_err(|e| e.to_string()))
        .transpose()?;
    let array = || -> Result<Vec<Value>, String> {
        match serde_json::from_str(payload) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(other) => Err(format!("an event's payload is an array, not {other}")),
            Err(e) => Err(format!("an event's payload is not JSON: {e}")),
        }
    };
    match kind {
        "0" => Ok(Packet::Connected),
        "1" => Ok(Packet::Disconnect),
        "2" => {
            let mut args = array()?;
            if args.is_empty() {
                return Err("an event without a name".into());
            }
            let name = match args.remove(0) {
                Value::String(name) => name,
                other => return Err(format!("an event's name is a string, not {other}")),
            };
            Ok(Packet::Event {
                name,
                args,
                ack: id,
            })
        }
        "3" => Ok(Packet::Ack {
            id: id.ok_or("an ack without its id")?,
            args: array()?,
        }),
        "4" => Ok(Packet::ConnectError(
            serde_json::from_str(payload).unwrap_or(Value::Null),
        )),
        _ => Err(format!("not a Socket.IO packet: {packet:.40}")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn packets_out_are_framed_as_socket_io_expects() {
        assert_eq!(connect(None), "40");
        assert_eq!(connect(Some(&json!({"token": "t"}))), r#"40{"token":"t"}"#);
        assert_eq!(
            event("send", &[json!({"room": "r0", "body": "hi"})], None),
            r#"42["send",{"body":"hi","room":"r0"}]"#
        );
        assert_eq!(
            event("join", &[json!("r0")], Some(12)),
            r#"4212["join","r0"]"#
        );
        assert_eq!(pong(), "3");
    }

    #[test]
    fn packets_in_decode_into_what_they_mean() {
        assert_eq!(
            decode(r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#),
            Ok(Packet::Open {
                sid: "abc".into(),
                ping_interval_ms: 25_000
            })
        );
        assert_eq!(decode("2"), Ok(Packet::Ping));
        assert_eq!(decode(r#"40{"sid":"s1"}"#), Ok(Packet::Connected));
        assert_eq!(
            decode(r#"42["message",{"room":"r0","body":"hi"}]"#),
            Ok(Packet::Event {
                name: "message".into(),
                args: vec![json!({"room": "r0", "body": "hi"})],
                ack: None
            })
        );
        assert_eq!(
            decode(r#"4312[{"ok":true}]"#),
            Ok(Packet::Ack {
                id: 12,
                args: vec![json!({"ok": true})]
            })
        );
        assert!(matches!(
            decode(r#"44{"message":"no"}"#),
            Ok(Packet::ConnectError(_))
        ));
        assert_eq!(decode("41"), Ok(Packet::Disconnect));
    }

    #[test]
    fn what_is_not_a_packet_is_an_error_not_a_panic() {
        for bad in [
            "", "9", "x", "42", "42{", r#"42[1]"#, r#"42"s""#, "43[1]", "0{",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }
}
