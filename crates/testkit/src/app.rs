//! A real banter server on a port-0 listener, and typed helpers to talk to it.

use std::net::SocketAddr;
use std::time::Duration;

use banter::{AuthOptions, ServeOptions};
use banter_gateway::GatewayConfig;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{Db, TestDb};

/// The JWT secret every test server signs with, so tests can forge tokens on purpose.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// A running `banter serve` (API on one port) with its own fresh database.
///
/// Dropping it stops the server and drops the database; [`TestApp::stop`] does the same but
/// waits for a graceful shutdown and reports its outcome.
#[derive(Debug)]
pub struct TestApp {
    pub addr: SocketAddr,
    pub base_url: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    /// Where its attachments are kept.
    pub files: crate::TestFiles,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow_free::Result>>,
}

mod anyhow_free {
    /// The server task's outcome, as text (so this crate needs no anyhow).
    pub type Result = std::result::Result<(), String>;
}

/// Options tests may change before spawning.
#[derive(Debug, Clone)]
pub struct Options {
    pub access_ttl: Duration,
    pub gateway: GatewayConfig,
    /// Login and registration limits: the production defaults unless a test changes them.
    pub auth_limits: banter_auth::AuthLimitSettings,
    /// Where attachments go: a temp directory unless a test asks for S3.
    pub storage: crate::Storage,
    /// Push notifications: off unless a test turns them on.
    pub push: Option<banter::PushOptions>,
}

impl Options {
    /// No rate or connection limits: for load (the benchmark smoke) that a person never makes.
    pub fn unlimited() -> Self {
        let mut options = Self {
            auth_limits: banter_auth::AuthLimitSettings::off(),
            ..Self::default()
        };
        options.gateway.limits = banter_gateway::limits::GatewayLimitSettings::off();
        options
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(900),
            gateway: GatewayConfig::default(),
            auth_limits: banter_auth::AuthLimitSettings::default(),
            storage: crate::Storage::Directory,
            push: None,
        }
    }
}

impl TestApp {
    pub async fn spawn(db: Db) -> Self {
        Self::spawn_with(db, Options::default()).await
    }

    pub async fn spawn_with(db: Db, options: Options) -> Self {
        let db = TestDb::new(db).await;
        let store = db.store().await;
        let files = crate::TestFiles::new(options.storage);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let serve = ServeOptions {
            auth: AuthOptions {
                jwt_secret: SecretString::from(TEST_JWT_SECRET),
                access_ttl: options.access_ttl,
                refresh_ttl: Duration::from_secs(30 * 24 * 3600),
                hash_concurrency: 2,
                limits: options.auth_limits,
                // As in `banter serve`: the gateway's admin API and auth share the policy.
                registration: options.gateway.admin.registration,
            },
            gateway: options.gateway,
            files: Some(files.files.clone()),
            kafka: None,
            push: options.push,
        };
        let server = tokio::spawn(async move {
            banter::launch_serve(store, serve, listener, async {
                let _ = rx.await;
            })
            .await
            .map_err(|e| format!("{e:#}"))
        });
        // The listener is bound before launch, so the server accepts from here on; no wait.
        Self {
            addr,
            base_url: format!("http://{addr}"),
            client: reqwest::Client::new(),
            db,
            files,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// The WebSocket URL for `token`, joining `room` (or `general` with `None`).
    pub fn ws_url(&self, token: &str, room: Option<&str>) -> String {
        let mut url = format!("ws://{}/ws?token={token}", self.addr);
        if let Some(room) = room {
            url.push_str("&room=");
            url.push_str(room);
        }
        url
    }

    /// Connects a WebSocket client and reads through its first `joined`.
    pub async fn ws(&self, token: &str, room: Option<&str>) -> crate::WsClient {
        let mut client = crate::WsClient::connect(&self.ws_url(token, room))
            .await
            .unwrap_or_else(|r| panic!("refused: {} {}", r.status, r.body));
        client.recv_until("joined").await;
        client
    }

    /// POSTs JSON; returns the status and the parsed body (Null when it is not JSON).
    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::read(req.send().await.expect("POST")).await
    }

    /// Any method, with a JSON body or none; returns the status and the parsed body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::read(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::read(req.send().await.expect("GET")).await
    }

    /// The bodies of the newest page of `room`'s history (up to 100), oldest first, as
    /// `token`'s user reads them; the request must succeed.
    pub async fn history_bodies(&self, room: &str, token: &str) -> Vec<String> {
        let (status, page) = self
            .get(
                &format!("/api/v1/rooms/{room}/messages?limit=100"),
                Some(token),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "history of {room}: {page}");
        page["data"]["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["body"].as_str().expect("body").to_owned())
            .collect()
    }

    pub async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn register(&self, username: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/api/v1/register",
            &json!({ "username": username, "password": password }),
            None,
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/api/v1/login",
            &json!({ "username": username, "password": password }),
            None,
        )
        .await
    }

    /// Registers and logs in; returns the login's `data` (token, refresh_token, ...).
    pub async fn signup(&self, username: &str) -> Value {
        let (status, body) = self.register(username, "password123").await;
        assert_eq!(status, StatusCode::CREATED, "register {username}: {body}");
        let (status, body) = self.login(username, "password123").await;
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        body["data"].clone()
    }

    /// Stops the server gracefully and returns how its task ended.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(handle) => handle.await.map_err(|e| e.to_string())?,
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.server.take() {
            handle.abort();
        }
    }
}
