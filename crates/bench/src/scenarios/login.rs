//! A login storm beside a fanout: logins at a steady rate (each a full password check) while
//! the rooms run. The figures are login latency, and the fanout's latency next to a plain
//! fanout's (run it alone with the same settings to compare).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

use crate::cli::{Common, LoginArgs};
use crate::client;
use crate::report::{self, Summary};
use crate::track;

pub async fn run(common: &Common, args: &LoginArgs) -> anyhow::Result<Summary> {
    let http = reqwest::Client::new();
    let auth = common.auth();
    // The accounts that log in (registered up front, outside the measurement).
    let name = format!("{}-login", common.user_prefix);
    client::token(&http, &auth, &name).await?;
    let latency = Mutex::new(track::new_histogram());
    let failures = std::sync::atomic::AtomicU64::new(0);
    let storm = async {
        // Logins start once the fanout's warm-up is over, and last its whole window.
        tokio::time::sleep(args.fanout.warmup).await;
        let mut tick =
            tokio::time::interval(Duration::from_secs_f64(1.0 / args.login_rate.max(0.001)));
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut inflight = futures::stream::FuturesUnordered::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let (http, auth, name) = (&http, &auth, &name);
                    inflight.push(async move {
                        let began = Instant::now();
                        let ok = client::token(http, auth, name).await.is_ok();
                        (ok, began.elapsed())
                    });
                }
                Some((ok, took)) = futures::StreamExt::next(&mut inflight), if !inflight.is_empty() => {
                    if ok {
                        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                        let _ = latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner).record(micros.max(1));
                    } else {
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }
    };
    let (mut summary, _) =
        super::rooms(common, &args.fanout, super::Extras::default(), storm).await?;
    let h = latency
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    summary.scenario = "login".into();
    summary.logins = Some(h.len());
    summary.login_p50_ms = Some(report::ms(&h, 0.5));
    summary.login_p99_ms = Some(report::ms(&h, 0.99));
    summary.errors += failures.load(std::sync::atomic::Ordering::Relaxed);
    Ok(summary)
}
