//! Idle connections: N WebSockets opened and held, each answering the server's pings. The
//! figures are drops (connections the server closed) and the server's resident memory per
//! connection (with --server-pid).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::watch;

use crate::cli::{Common, IdleArgs, Protocol};
use crate::client;
use crate::report::{self, Summary};

pub async fn run(common: &Common, args: &IdleArgs) -> anyhow::Result<Summary> {
    let urls = common.urls();
    anyhow::ensure!(!urls.is_empty(), "--url is empty");
    let tokens = client::tokens(common).await?;
    let room = format!(
        "bench-idle-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let drops = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop) = watch::channel(false);
    eprintln!("opening {} connections", args.connections);
    // In two halves, with the server's memory read after each (once it settled): the second
    // half's cost is what a connection adds. A baseline taken before the first would also
    // count what the allocator still held from the logins' password hashes, or gave back
    // meanwhile, and one-time growth (maps, pools) of the first connections.
    let half = args.connections / 2;
    let mut handles = Vec::new();
    let mut failed = 0u64;
    let mut rss_half = None;
    let mut opened_in_second_half = 0;
    for part in [0..half, half..args.connections] {
        let first_part = part.start == 0;
        for ws in open(common, &urls, &tokens, &room, part).await {
            match ws {
                Ok(ws) => {
                    handles.push(tokio::spawn(hold(
                        common.protocol,
                        ws,
                        stop.clone(),
                        drops.clone(),
                    )));
                    opened_in_second_half += usize::from(!first_part);
                }
                Err(e) => {
                    failed += 1;
                    if failed == 1 {
                        eprintln!("a connection failed: {e:#}");
                    }
                }
            }
        }
        // Let the server settle (joins, presence) before reading its memory.
        tokio::time::sleep(Duration::from_secs(3)).await;
        if first_part {
            rss_half = common.server_pid.and_then(report::rss_bytes);
        }
    }
    eprintln!(
        "{} open ({failed} failed); holding for {:?}",
        handles.len(),
        args.hold
    );
    let rss_open = common.server_pid.and_then(report::rss_bytes);
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let until = tokio::time::Instant::now() + args.hold;
    while tokio::time::Instant::now() < until {
        tick.tick().await;
        eprintln!(
            "holding {} connections, {} dropped{}",
            handles.len(),
            drops.load(Ordering::Relaxed),
            common
                .server_pid
                .and_then(report::rss_bytes)
                .map(|b| format!(", server RSS {} MiB", b / (1 << 20)))
                .unwrap_or_default()
        );
    }
    let rss_end = common.server_pid.and_then(report::rss_bytes);
    let _ = stop_tx.send(true);
    let open = handles.len() as u64;
    for h in handles {
        let _ = h.await;
    }
    let per_connection = match (rss_half, rss_open) {
        (Some(before), Some(after)) if opened_in_second_half > 0 => {
            Some(after.saturating_sub(before) as f64 / opened_in_second_half as f64)
        }
        _ => None,
    };
    Ok(Summary {
        scenario: "idle".into(),
        protocol: format!("{:?}", common.protocol).to_lowercase(),
        connections: open,
        duration_s: args.hold.as_secs_f64(),
        errors: failed,
        drops: drops.load(Ordering::Relaxed),
        server_rss_bytes: rss_end,
        server_rss_per_connection_bytes: per_connection,
        ..Summary::default()
    })
}

/// Reads (which answers WebSocket pings, and the protocol's own) until the run ends; a close
/// before that is a drop.
async fn hold(
    protocol: Protocol,
    mut ws: client::Ws,
    mut stop: watch::Receiver<bool>,
    drops: Arc<AtomicU64>,
) {
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                None | Some(Err(_)) => {
                    drops.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                    if let Some(reply) = client::answer(protocol, &t) {
                        let _ = ws.send(tokio_tungstenite::tungstenite::Message::text(reply)).await;
                    }
                }
                Some(Ok(_)) => {}
            },
            _ = stop.changed() => {
                let _ = ws.close(None).await;
                return;
            }
        }
    }
}

/// Opens connections number `part` (each from its source address, with its token).
async fn open(
    common: &Common,
    urls: &[String],
    tokens: &[String],
    room: &str,
    part: std::ops::Range<usize>,
) -> Vec<anyhow::Result<client::Ws>> {
    futures::stream::iter(part)
        .map(|n| {
            let url = client::ws_url(
                common.protocol,
                &urls[n % urls.len()],
                &tokens[n % tokens.len()],
                room,
            );
            let from = client::source(common, n);
            let protocol = common.protocol;
            let token = tokens[n % tokens.len()].clone();
            async move {
                let mut ws = client::connect(&url, from).await?;
                client::open_session(protocol, &mut ws, &token, Some(room)).await?;
                Ok(ws)
            }
        })
        .buffer_unordered(common.connect_concurrency.max(1))
        .collect::<Vec<_>>()
        .await
}
