//! TLS on a listener, with the binary run as a user would: `banter serve --tls-cert
//! --tls-key` with a certificate from a CA made for the test speaks HTTPS and WSS and
//! nothing else, and reloads its certificate on SIGHUP without dropping a connection.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

#[path = "support/running.rs"]
mod running;
use running::Running;

/// A certificate authority of the test's own.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "banter test CA");
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA");
        Self { cert, key }
    }

    /// A server certificate for 127.0.0.1 and localhost, and its key, as PEM.
    fn issue(&self) -> (rcgen::Certificate, String) {
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("params");
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed");
        (cert, key.serialize_pem())
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

fn write_pair(dir: &Path, cert: &rcgen::Certificate, key: &str) {
    std::fs::write(dir.join("cert.pem"), cert.pem()).expect("cert");
    std::fs::write(dir.join("key.pem"), key).expect("key");
}

fn addr_of(base: &str) -> SocketAddr {
    base.trim_start_matches("https://")
        .parse()
        .expect("an address")
}

/// A TLS connection to the server, trusting only the test's CA; and the certificate it was
/// served.
async fn connect(
    ca: &Ca,
    addr: SocketAddr,
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    CertificateDer<'static>,
) {
    let tcp = TcpStream::connect(addr).await.expect("tcp");
    let tls = TlsConnector::from(ca.client_config())
        .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
        .await
        .expect("a TLS handshake the test's CA vouches for");
    let served = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("a certificate")
        .clone()
        .into_owned();
    (tls, served)
}

async fn json_post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = client.post(url).json(&body).send().await.expect("HTTPS");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn hang_up(server: &Running) {
    let status = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
}

#[tokio::test]
async fn https_and_wss_only_and_a_new_certificate_on_sighup_keeps_open_connections() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new();
    let (first, first_key) = ca.issue();
    write_pair(tmp.path(), &first, &first_key);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_banter"));
    for var in [
        "DATABASE_URL",
        "DB_HOST",
        "JWT_SECRET",
        "BANTER_LISTEN",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .arg("--tls-cert")
        .arg(tmp.path().join("cert.pem"))
        .arg("--tls-key")
        .arg(tmp.path().join("key.pem"));
    let mut server = Running::start(cmd);
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let addr = addr_of(&server.base);

    // HTTPS, trusting the test's CA.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert.pem().as_bytes()).expect("CA"))
        .build()
        .expect("client");
    let health = client
        .get(format!("{}/health", server.base))
        .send()
        .await
        .expect("HTTPS /health");
    assert_eq!(health.status(), 200);
    let creds = json!({"username": "tessa", "password": "password123"});
    let (status, _) = json_post(
        &client,
        format!("{}/api/v1/register", server.base),
        creds.clone(),
    )
    .await;
    assert_eq!(status, 201);
    let (status, login) = json_post(&client, format!("{}/api/v1/login", server.base), creds).await;
    assert_eq!(status, 200);
    let token = login["data"]["token"].as_str().expect("token").to_owned();

    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/health"))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "a plain-HTTP request was answered: {plain:?}"
    );

    // A WebSocket over TLS (wss), kept open through the reload below.
    let (tls, served) = connect(&ca, addr).await;
    assert_eq!(served.as_ref(), first.der().as_ref());
    let (mut ws, _) = tokio_tungstenite::client_async(
        format!(
            "wss://127.0.0.1:{}/ws?token={token}&room=general",
            addr.port()
        ),
        tls,
    )
    .await
    .expect("WSS upgrade");
    let say = |n: u32| {
        let frame = json!({"type": "send", "room": "general", "body": format!("hello {n}"), "client_id": format!("c{n}")});
        Message::text(frame.to_string())
    };
    async fn acked(
        ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
        n: u32,
    ) {
        loop {
            let frame = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
                .await
                .expect("a frame")
                .expect("open")
                .expect("a frame");
            if let Message::Text(t) = frame {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                if v["type"] == "ack" && v["client_id"] == format!("c{n}") {
                    return;
                }
                assert_ne!(v["type"], "error", "{v}");
            }
        }
    }
    ws.send(say(1)).await.expect("send");
    acked(&mut ws, 1).await;

    // A renewed certificate, then SIGHUP: new handshakes get it.
    let (second, second_key) = ca.issue();
    write_pair(tmp.path(), &second, &second_key);
    hang_up(&server);
    server.wait_for("TLS certificate reloaded");
    let (_, served) = connect(&ca, addr).await;
    assert_eq!(
        served.as_ref(),
        second.der().as_ref(),
        "the new certificate"
    );
    // The connection opened before is still there.
    ws.send(say(2)).await.expect("send after the reload");
    acked(&mut ws, 2).await;

    // A broken pair (a renewal half written) is refused; the last good one stays.
    std::fs::write(tmp.path().join("cert.pem"), "not a certificate").expect("write");
    hang_up(&server);
    server.wait_for("TLS certificate not reloaded");
    let (_, served) = connect(&ca, addr).await;
    assert_eq!(
        served.as_ref(),
        second.der().as_ref(),
        "still the last good one"
    );
    ws.send(say(3)).await.expect("send");
    acked(&mut ws, 3).await;
}

#[test]
fn a_certificate_without_its_key_or_a_key_that_is_not_its_own_is_refused_at_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new();
    let (cert, _) = ca.issue();
    let (_, other_key) = ca.issue();
    write_pair(tmp.path(), &cert, &other_key);
    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_banter"));
        cmd.env_remove("BANTER_LISTEN")
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(tmp.path().join("data"))
            .args(args);
        cmd.output().expect("run")
    };
    let cert_path = tmp.path().join("cert.pem");
    let key_path = tmp.path().join("key.pem");
    let (cert_arg, key_arg) = (
        cert_path.to_str().expect("utf-8"),
        key_path.to_str().expect("utf-8"),
    );
    let alone = run(&["--tls-cert", cert_arg]);
    assert!(!alone.status.success());
    assert!(
        String::from_utf8_lossy(&alone.stderr).contains("--tls-key"),
        "{alone:?}"
    );
    let mismatched = run(&["--tls-cert", cert_arg, "--tls-key", key_arg]);
    assert!(!mismatched.status.success());
    let said = String::from_utf8_lossy(&mismatched.stderr);
    assert!(said.contains("is not the key of"), "{said}");
}
