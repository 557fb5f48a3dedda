//! Centrifugo's bidirectional JSON protocol (client protocol v2, as Centrifugo v6 speaks it
//! on `/connection/websocket`).
//!
//! A client sends commands, each with an `id` that its reply repeats: `connect` (with a JWT),
//! `subscribe` to a channel, `publish` to one. The server answers each, and pushes what is
//! published to a channel's subscribers as `{"push":{"channel","pub":{"data",…}}}`. Several
//! replies and pushes may share one WebSocket frame, one JSON object per line. A server ping
//! is an empty object `{}`, answered by an empty object when the connect reply asked for
//! pongs.

use serde_json::{json, Value};

/// What one line of a server frame is.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// The answer to the command `id`: `Ok` with its result object, or the server's error.
    Reply {
        id: u64,
        result: Result<Value, CommandError>,
    },
    /// A publication pushed to a subscriber of `channel`. `offset` is its place in the
    /// channel's history, when the channel keeps one.
    Publication {
        channel: String,
        data: Value,
        offset: Option<u64>,
    },
    /// A server ping: answer with [`pong`] if the connect reply had `"pong": true`.
    Ping,
    /// Another push (join, leave, unsubscribe, disconnect…), kept whole.
    Other(Value),
}

/// An error a command was answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub code: u64,
    pub message: String,
}

/// `connect` with a connection token.
pub fn connect(id: u64, token: &str) -> String {
    json!({"id": id, "connect": {"token": token, "name": "banter-bench"}}).to_string()
}

/// `subscribe` to `channel`; with `recover_since` (offset, epoch), asks for what was missed.
pub fn subscribe(id: u64, channel: &str, recover_since: Option<(u64, &str)>) -> String {
    let mut sub = json!({"channel": channel});
    if let Some((offset, epoch)) = recover_since {
        sub["recover"] = true.into();
        sub["offset"] = offset.into();
        sub["epoch"] = epoch.into();
    }
    json!({"id": id, "subscribe": sub}).to_string()
}

/// `publish` `data` to `channel`.
pub fn publish(id: u64, channel: &str, data: &Value) -> String {
    json!({"id": id, "publish": {"channel": channel, "data": data}}).to_string()
}

/// The answer to a server ping.
pub fn pong() -> &'static str {
    "{}"
}

/// Decodes a server frame: every line of it, in order. A line that is not JSON is an error
/// (the generator counts it), never a panic.
pub fn decode(frame: &str) -> Vec<Result<Incoming, String>> {
    frame
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(decode_line)
        .collect()
}

fn decode_line(line: &str) -> Result<Incoming, String> {
    let v: Value =
        serde_json::from_str(line).map_err(|e| format!("not a Centrifugo message: {e}"))?;
    let Some(object) = v.as_object() else {
        return Err(format!("not a JSON object: {line}"));
    };
    if object.is_empty() {
        return Ok(Incoming::Ping);
    }
    if let Some(id) = object.get("id").and_then(Value::as_u64) {
        if let Some(error) = object.get("error") {
            return Ok(Incoming::Reply {
                id,
                result: Err(CommandError {
                    code: error["code"].as_u64().unwrap_or(0),
                    message: error["message"].as_str().unwrap_or_default().to_owned(),
                }),
            });
        }
        // The result sits under the command's name (`connect`, `subscribe`, `publish`…).
        let result = object
            .iter()
            .find(|(k, _)| k.as_str() != "id")
            .map_or(Value::Object(Default::default()), |(_, v)| v.clone());
        return Ok(Incoming::Reply {
            id,
            result: Ok(result),
        });
    }
    if let Some(push) = object.get("push") {
        if let Some(publication) = push.get("pub") {
            return Ok(Incoming::Publication {
                channel: push["channel"].as_str().unwrap_or_default().to_owned(),
                data: publication.get("data").cloned().unwrap_or(Value::Null),
                offset: publication.get("offset").and_then(Value::as_u64),
            });
        }
    }
    Ok(Incoming::Other(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_carry_their_id_and_parameters() {
        let v: Value = serde_json::from_str(&connect(1, "jwt")).expect("json");
        assert_eq!(
            (v["id"].as_u64(), v["connect"]["token"].as_str()),
            (Some(1), Some("jwt"))
        );
        let v: Value = serde_json::from_str(&subscribe(2, "r0", None)).expect("json");
        assert_eq!(v, json!({"id": 2, "subscribe": {"channel": "r0"}}));
        let v: Value = serde_json::from_str(&subscribe(3, "r0", Some((41, "ab")))).expect("json");
        assert_eq!(
            v["subscribe"],
            json!({"channel": "r0", "recover": true, "offset": 41, "epoch": "ab"})
        );
        let v: Value = serde_json::from_str(&publish(4, "r0", &json!({"b": "x"}))).expect("json");
        assert_eq!(v["publish"], json!({"channel": "r0", "data": {"b": "x"}}));
    }

    #[test]
    fn a_frame_of_several_lines_decodes_in_order() {
        let frame = concat!(
            r#"{"id":1,"connect":{"client":"c1","version":"6.9.1","ping":25,"pong":true}}"#,
            "\n",
            r#"{"push":{"channel":"r0","pub":{"data":{"body":"hi"},"offset":7}}}"#,
            "\n",
            "{}\n",
            r#"{"id":3,"error":{"code":103,"message":"permission denied"}}"#,
            "\n",
            r#"{"id":2,"subscribe":{}}"#,
            "\n",
            r#"{"push":{"channel":"r0","join":{"info":{"user":"u"}}}}"#,
        );
        let got: Vec<Incoming> = decode(frame)
            .into_iter()
            .map(|r| r.expect("decodes"))
            .collect();
        assert!(matches!(&got[0], Incoming::Reply { id: 1, result: Ok(r) } if r["pong"] == true));
        assert_eq!(
            got[1],
            Incoming::Publication {
                channel: "r0".into(),
                data: json!({"body": "hi"}),
                offset: Some(7),
            }
        );
        assert_eq!(got[2], Incoming::Ping);
        assert_eq!(
            got[3],
            Incoming::Reply {
                id: 3,
                result: Err(CommandError {
                    code: 103,
                    message: "permission denied".into()
                })
            }
        );
        assert!(matches!(
            &got[4],
            Incoming::Reply {
                id: 2,
                result: Ok(_)
            }
        ));
        assert!(matches!(&got[5], Incoming::Other(_)));
    }

    #[test]
    fn what_is_not_a_message_is_an_error_not_a_panic() {
        for bad in ["nope", "[1,2]", "\"s\""] {
            assert!(decode(bad)[0].is_err(), "{bad}");
        }
        assert!(decode("").is_empty());
    }
}
