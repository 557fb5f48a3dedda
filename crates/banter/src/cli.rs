//! The client commands for scripts: `banter send` and `banter bots`, over banter's HTTP API
//! with banter-client (the same library bots use), so they work against any deployment.

use std::io::Read;

use anyhow::Context;
use banter_client::Client;
use serde_json::{json, Value};

use crate::config::{BotsAction, BotsArgs, SendArgs, ServerArgs};

fn client(server: &ServerArgs) -> anyhow::Result<Client> {
    let token = server
        .token
        .as_ref()
        .context("a token is needed: --token or BANTER_TOKEN (a bot's, or a user's)")?;
    Ok(Client::with_token(server.server.clone(), token.expose()))
}

/// `banter send --room R [--client-id C] TEXT`: prints the stored message's id and cursor.
pub async fn send(args: SendArgs) -> anyhow::Result<()> {
    let body = if args.body == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the message from standard input")?;
        text.trim_end_matches('\n').to_owned()
    } else {
        args.body
    };
    let mut client = client(&args.server)?;
    let message = client
        .post_message(&args.room, &body, args.client_id.as_deref())
        .await
        .context("sending")?;
    println!(
        "{} {}",
        message["id"].as_str().unwrap_or_default(),
        message["cursor"].as_str().unwrap_or_default()
    );
    Ok(())
}

/// `banter bots create|list|revoke`, as an admin.
pub async fn bots(args: BotsArgs) -> anyhow::Result<()> {
    let mut client = client(&args.server)?;
    match args.action {
        BotsAction::Create { name, rooms } => {
            let mut input = json!({ "name": name });
            if !rooms.is_empty() {
                input["rooms"] = json!(rooms);
            }
            let made = client
                .api(banter_client::Method::POST, "/api/v1/bots", Some(input))
                .await
                .context("making the bot")?;
            eprintln!("bot {name} made; its token (shown this once):");
            println!("{}", made["token"].as_str().unwrap_or_default());
        }
        BotsAction::List => {
            let listed = client
                .api(banter_client::Method::GET, "/api/v1/bots", None)
                .await
                .context("listing the bots")?;
            for bot in listed["bots"].as_array().into_iter().flatten() {
                println!("{}", line(bot));
            }
        }
        BotsAction::Revoke { name } => {
            client
                .api(
                    banter_client::Method::DELETE,
                    &format!("/api/v1/bots/{name}"),
                    None,
                )
                .await
                .context("revoking the bot")?;
            eprintln!("bot {name} revoked");
        }
    }
    Ok(())
}

/// One bot as a line: name, rooms (or `*`), made by, when, revoked.
fn line(bot: &Value) -> String {
    let rooms = match bot["rooms"].as_array() {
        Some(rooms) => rooms
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        None => "*".to_owned(),
    };
    format!(
        "{}\trooms={}\tby={}\t{}{}",
        bot["name"].as_str().unwrap_or_default(),
        rooms,
        bot["created_by"].as_str().unwrap_or_default(),
        bot["created_at"].as_str().unwrap_or_default(),
        if bot["revoked"] == true {
            "\trevoked"
        } else {
            ""
        }
    )
}
