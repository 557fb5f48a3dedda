//! Persist throughput: how fast the persist workers write what is waiting in Kafka into
//! PostgreSQL. Run it with the workers stopped while messages are sent (so a backlog builds),
//! then started: it watches their `banter_persist_messages_total` counters (fresh processes
//! count from zero) until `expect` messages are stored, and reports rows per second from the
//! first stored row to the last.

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::PersistArgs;
use crate::report::Summary;

/// The sum of the persist counters of every worker; a worker not answering counts 0.
async fn stored(http: &reqwest::Client, urls: &[String]) -> u64 {
    let mut total = 0;
    for url in urls {
        let Ok(r) = http.get(format!("{url}/metrics")).send().await else {
            continue;
        };
        let Ok(text) = r.text().await else { continue };
        total += text
            .lines()
            .filter(|l| l.starts_with("banter_persist_messages_total"))
            .filter_map(|l| l.split_whitespace().last())
            .filter_map(|v| v.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum::<u64>();
    }
    total
}

pub async fn run(args: &PersistArgs) -> anyhow::Result<Summary> {
    let urls: Vec<String> = args
        .persist_urls
        .split(',')
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    anyhow::ensure!(!urls.is_empty(), "--persist-urls is empty");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .context("HTTP client")?;
    let deadline = Instant::now() + args.timeout;
    let mut first: Option<(Instant, u64)> = None;
    let mut peak = 0.0_f64;
    let mut last = (Instant::now(), 0u64);
    loop {
        let now = Instant::now();
        let n = stored(&http, &urls).await;
        if n > 0 && first.is_none() {
            first = Some((now, n));
        }
        let dt = now.duration_since(last.0).as_secs_f64();
        if dt >= 1.0 {
            peak = peak.max((n.saturating_sub(last.1)) as f64 / dt);
            eprintln!(
                "stored {n} of {} (best second so far: {peak:.0} rows/s)",
                args.expect
            );
            last = (now, n);
        }
        if n >= args.expect {
            let (t0, n0) = first.unwrap_or((now, 0));
            let secs = now.duration_since(t0).as_secs_f64().max(0.001);
            let rate = (n - n0) as f64 / secs;
            return Ok(Summary {
                scenario: "persist".into(),
                protocol: "banter".into(),
                duration_s: secs,
                deliveries: n,
                // For this scenario, "deliveries" are rows written: the average rate from the
                // first row to the last (the best one-second rate is printed as it goes).
                deliveries_per_sec: rate,
                ..Summary::default()
            });
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {n} of {} messages stored within {:?}",
            args.expect,
            args.timeout
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
