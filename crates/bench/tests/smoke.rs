//! A short run of each flowing scenario against a real `banter serve` on port 0: it fails on
//! lost, duplicated or out-of-order deliveries only, never on timings (they belong to
//! `scripts/bench`, not to tests).

use std::time::Duration;

use banter_bench::cli::{Common, FanoutArgs, Protocol, ReconnectArgs};
use banter_bench::report::Summary;
use banter_testkit::{Db, Options, TestApp};

fn common(app: &TestApp) -> Common {
    Common {
        url: app.base_url.clone(),
        auth_url: None,
        protocol: Protocol::Banter,
        source_ips: 4,
        users: 3,
        user_prefix: "smoke".into(),
        server_pid: None,
        json: None,
        token_secret: String::new(),
        connect_concurrency: 32,
    }
}

fn fanout() -> FanoutArgs {
    FanoutArgs {
        rooms: 4,
        members: 10,
        rate: 200.0,
        body_bytes: 200,
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(3),
        drain: Duration::from_secs(10),
    }
}

fn assert_clean(s: &Summary) {
    assert!(s.acked > 0 && s.deliveries > 0, "nothing flowed: {s:?}");
    assert_eq!(
        (s.lost, s.duplicated, s.out_of_order, s.errors),
        (0, 0, 0, 0),
        "{s:?}"
    );
    assert_eq!(s.deliveries, s.acked * 10, "every member got every message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_everything_once_in_order() {
    let app = TestApp::spawn_with(Db::Sqlite, Options::unlimited()).await;
    let summary = banter_bench::scenarios::fanout::run(&common(&app), &fanout())
        .await
        .expect("fanout");
    assert_clean(&summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_storm_loses_and_doubles_nothing() {
    let app = TestApp::spawn_with(Db::Sqlite, Options::unlimited()).await;
    let args = ReconnectArgs {
        fanout: fanout(),
        reconnect_rate: 20.0,
    };
    let summary = banter_bench::scenarios::reconnect::run(&common(&app), &args)
        .await
        .expect("reconnect");
    assert_clean(&summary);
    assert!(summary.reconnects.unwrap_or(0) > 0, "{summary:?}");
}
