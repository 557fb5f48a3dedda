//! A bot that answers `!echo <text>` with <text>, as a reply, in the rooms it follows. It
//! reconnects by itself (to the next of BANTER_URL's servers when one is down) and misses
//! nothing while away: the session resumes each room from its cursor.
//!
//!   BANTER_URL=http://localhost:8080 BANTER_TOKEN=bnt_… BANTER_ROOMS=general \
//!     cargo run -p banter-client --example echo

use banter_client::{Client, Event};

#[tokio::main]
async fn main() -> Result<(), banter_client::Error> {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let servers = var("BANTER_URL", "http://localhost:8080")
        .split(',')
        .map(str::to_owned)
        .collect();
    let token = var("BANTER_TOKEN", "");
    let rooms = var("BANTER_ROOMS", "general");
    let rooms: Vec<&str> = rooms.split(',').collect();

    let mut session = Client::with_token(servers, token).connect(&rooms).await?;
    println!("echo bot is listening as {}", session.username);
    while let Some(event) = session.next().await {
        let Event::Message(m) = event else { continue };
        if m.author == session.username {
            continue;
        }
        if let Some(text) = m.body.strip_prefix("!echo ") {
            if let Err(e) = session.send(&m.room, text).reply_to(&m.id).await {
                eprintln!("could not answer in {}: {e}", m.room);
            }
        }
    }
    Ok(())
}
