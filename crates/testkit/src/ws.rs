//! A WebSocket client for tests: JSON frames in and out, every wait bounded.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait for a frame may take before the test fails.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(15);

/// A connected test client.
#[derive(Debug)]
pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection attempt was refused before the upgrade.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: Value,
}

impl WsClient {
    /// Connects to `url` (`ws://host:port/ws?token=...`).
    pub async fn connect(url: &str) -> Result<Self, Refused> {
        let request = url.into_client_request().expect("a WebSocket URL");
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(Self { socket }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
                let body = resp
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                Err(Refused { status, body })
            }
            Err(e) => panic!("WebSocket connect to {url} failed: {e}"),
        }
    }

    pub async fn send(&mut self, frame: &Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::text(text))
            .await
            .expect("send a frame");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.expect("send a frame");
    }

    /// The next JSON frame; fails the test on close, timeout or a non-JSON frame.
    pub async fn recv(&mut self) -> Value {
        loop {
            let next = tokio::time::timeout(FRAME_TIMEOUT, self.socket.next())
                .await
                .expect("a frame within the timeout");
            match next {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str()).expect("a JSON frame")
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    /// The next frame of type `kind`, skipping others.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Frames until (and including) the first of type `kind`.
    pub async fn recv_until(&mut self, kind: &str) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.recv().await;
            let done = frame["type"] == kind;
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }

    /// The next `message` frames of `room`, `n` of them, skipping other frames.
    pub async fn recv_messages(&mut self, room: &str, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let frame = self.recv().await;
            if frame["type"] == "message" && frame["room"] == room {
                out.push(frame);
            }
        }
        out
    }

    /// The next raw WebSocket message (pings included), or `None` at the end.
    pub async fn next_raw(&mut self) -> Option<Message> {
        match self.socket.next().await {
            Some(Ok(m)) => Some(m),
            _ => None,
        }
    }

    /// Waits for the server to close the connection; returns the close code it sent.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            let next = tokio::time::timeout(FRAME_TIMEOUT, self.socket.next())
                .await
                .expect("the connection to close within the timeout");
            match next {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|f| u16::from(f.code));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Sends `join` and returns the frames up to and including `joined`.
    pub async fn join(&mut self, room: &str, since: Option<&str>) -> Vec<Value> {
        let mut frame = serde_json::json!({ "type": "join", "room": room });
        if let Some(since) = since {
            frame["since"] = since.into();
        }
        self.send(&frame).await;
        self.recv_until("joined").await
    }

    /// Sends a message with a client id and waits for its ack; returns the ack.
    pub async fn say(&mut self, room: &str, body: &str, client_id: &str) -> Value {
        self.send(&serde_json::json!({
            "type": "send", "room": room, "body": body, "client_id": client_id,
        }))
        .await;
        loop {
            let frame = self.recv().await;
            if frame["type"] == "ack" && frame["client_id"] == client_id {
                return frame;
            }
            assert_ne!(frame["type"], "error", "send failed: {frame}");
        }
    }

    /// Sends a frame that carries `client_id` and returns what answers it: its `ack`, or its
    /// `error` (frames of other kinds meanwhile are skipped).
    pub async fn act(&mut self, frame: serde_json::Value) -> Value {
        let client_id = frame["client_id"].clone();
        assert!(client_id.is_string(), "act needs a client_id: {frame}");
        self.send(&frame).await;
        loop {
            let answer = self.recv().await;
            if (answer["type"] == "ack" || answer["type"] == "error")
                && answer["client_id"] == client_id
            {
                return answer;
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .socket
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await;
    }
}
