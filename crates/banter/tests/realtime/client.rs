//! banter-client (the Rust library) against a real `banter serve`: it logs in, sends and
//! receives typed events; across network drops (a TCP proxy that cuts every connection) it
//! resumes without a gap or a double and re-sends what was not acked, stored once; it moves to
//! the next server when one is gone; and a bot written with it (examples/echo.rs's loop)
//! answers `!echo`.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use banter_client::{Client, Event, Session};
use banter_testkit::{token_of, TestApp};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy in front of `target`: `cut(true)` drops every connection and refuses new ones
/// (to a client, the network is gone) until `cut(false)`.
struct Proxy {
    base: String,
    down: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (down, watching) = watch::channel(false);
        let watching = Arc::new(watching);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut cut = (*watching).clone();
                if *cut.borrow() {
                    continue; // dropped: refused
                }
                tokio::spawn(async move {
                    let Ok(mut upstream) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        _ = cut.wait_for(|down| *down) => {}
                    }
                });
            }
        });
        Self { base, down }
    }

    fn cut(&self, down: bool) {
        self.down.send_replace(down);
    }
}

/// The next message event, skipping other events.
async fn next_message(session: &mut Session) -> Box<banter_client::Message> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(20), session.next())
            .await
            .expect("an event within 20 s")
            .expect("the session is open");
        if let Event::Message(m) = event {
            return m;
        }
    }
}

#[tokio::test]
async fn the_client_resumes_across_drops_without_gaps_or_doubles_and_moves_servers() {
    let app = TestApp::spawn(banter_testkit::Db::Sqlite).await;
    app.signup("root").await;
    app.signup("ann").await;
    let bob_token = token_of(&app.signup("bob").await);
    let a = Proxy::start(app.addr).await;
    let b = Proxy::start(app.addr).await;

    let ann = Client::login(vec![a.base.clone(), b.base.clone()], "ann", "password123")
        .await
        .expect("login");
    let mut ann = ann.connect(&["lobby"]).await.expect("connect");
    assert_eq!(ann.username, "ann");
    let mut bob = Client::with_token(vec![app.url("")], bob_token.clone())
        .connect(&["lobby"])
        .await
        .expect("connect");

    let ack = ann.send("lobby", "hello").await.expect("acked");
    assert_eq!(ack.cursor.len(), 24);
    let heard = next_message(&mut bob).await;
    assert_eq!(
        (heard.author.as_str(), heard.body.as_str()),
        ("ann", "hello")
    );
    assert_eq!(next_message(&mut ann).await.body, "hello");

    // The network drops under Ann; meanwhile Bob says three things and Ann one.
    a.cut(true);
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ann.next()).await {
            Ok(Some(Event::Disconnected)) => break,
            Ok(Some(_)) => continue,
            other => panic!("ann should notice the drop: {other:?}"),
        }
    }
    for n in 1..=3 {
        bob.send("lobby", &format!("missed {n}"))
            .await
            .expect("acked");
    }
    // Ann's send waits for the network; it is stored once it is back (at B: A stays down).
    let sending = ann
        .send("lobby", "sent while away")
        .client_id("away-1")
        .into_future();
    let (acked, got) = tokio::join!(sending, async {
        let mut got = Vec::new();
        while got.len() < 4 {
            got.push(next_message(&mut ann).await);
        }
        got
    });
    let acked = acked.expect("acked after the reconnect");
    let bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(
        bodies,
        ["missed 1", "missed 2", "missed 3", "sent while away"],
        "in order, once each, nothing twice"
    );
    assert_eq!(got[3].cursor, acked.cursor);
    assert!(got.windows(2).all(|w| w[0].cursor < w[1].cursor));

    bob.send("lobby", "after the move").await.expect("acked");
    assert_eq!(next_message(&mut ann).await.body, "after the move");
    assert_eq!(
        app.history_bodies("lobby", &bob_token).await,
        [
            "hello",
            "missed 1",
            "missed 2",
            "missed 3",
            "sent while away",
            "after the move"
        ],
        "every message stored once"
    );
    b.cut(true);
}

#[tokio::test]
async fn a_bot_written_with_the_library_answers_in_the_room() {
    let app = TestApp::spawn(banter_testkit::Db::Sqlite).await;
    let root = token_of(&app.signup("root").await);
    let (status, made) = app
        .post(
            "/api/v1/bots",
            &json!({ "name": "echo-bot", "rooms": ["general"] }),
            Some(&root),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{made}");
    let token = made["data"]["token"].as_str().expect("token").to_owned();

    // examples/echo.rs's loop.
    let mut bot = Client::with_token(vec![app.url("")], token)
        .connect(&["general"])
        .await
        .expect("the bot connects");
    assert_eq!(bot.username, "echo-bot");
    let echo = tokio::spawn(async move {
        while let Some(event) = bot.next().await {
            let Event::Message(m) = event else { continue };
            if m.author == bot.username {
                continue;
            }
            if let Some(text) = m.body.strip_prefix("!echo ") {
                bot.send(&m.room, text)
                    .reply_to(&m.id)
                    .await
                    .expect("answered");
            }
        }
    });

    // Listening first, so the answer cannot come before the socket joins.
    let mut listening = Client::with_token(vec![app.url("")], root.clone())
        .connect(&["general"])
        .await
        .expect("connect");
    let mut root_client = Client::with_token(vec![app.url("")], root.clone());
    let posted = root_client
        .post_message("general", "!echo anyone there?", Some("ask-1"))
        .await
        .expect("posted over HTTP");
    let again = root_client
        .post_message("general", "!echo anyone there?", Some("ask-1"))
        .await
        .expect("posted again");
    assert_eq!(posted["id"], again["id"], "one message for one client id");
    assert_eq!(
        next_message(&mut listening).await.body,
        "!echo anyone there?"
    );
    let answer = next_message(&mut listening).await;
    assert_eq!(answer.author, "echo-bot");
    assert_eq!(answer.body, "anyone there?");
    assert!(answer.bot);
    assert_eq!(answer.reply_to.as_deref(), posted["id"].as_str());
    assert_eq!(
        app.history_bodies("general", &root).await,
        ["!echo anyone there?", "anyone there?"]
    );
    echo.abort();
}
