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

/// A purge runs beside the fan-out: its deletes go through the same log in batches, and the
/// chat's sends and deliveries go on, none lost, doubled or out of order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_beside_the_fanout_loses_and_stalls_nothing() {
    use banter_core::{NewMessage, RoomEvent, RoomName};

    let app = TestApp::spawn_with(Db::Sqlite, Options::unlimited()).await;
    let root = banter_testkit::token_of(&app.signup("root").await);
    let spammer = app.signup("spammer").await;
    let spammer_id = banter_core::UserId(spammer["user"]["id"].as_i64().expect("id"));
    // A history to purge, written as the serve log writes it (it is not news to anyone).
    let store = app.db.store().await;
    let room = RoomName::parse("spam").expect("room");
    let author = banter_core::Username::parse("spammer").expect("name");
    for batch in 0..25 {
        let events: Vec<RoomEvent> = (0..200)
            .map(|i| {
                RoomEvent::Message(NewMessage {
                    id: uuid::Uuid::now_v7(),
                    room: room.clone(),
                    author_id: spammer_id,
                    author: author.clone(),
                    body: format!("spam {batch}-{i}"),
                    created_at: banter_store::now(),
                    client_id: None,
                    reply_to: None,
                    thread_root: None,
                    mentions: Vec::new(),
                    attachments: Vec::new(),
                    bot: None,
                })
            })
            .collect();
        store.append_events(&events).await.expect("history");
    }
    store.close().await;

    let purge = async {
        // Once the fan-out's messages flow (the admin page's figure says so), not before.
        loop {
            let (_, figures) = app.get("/api/v1/admin/stats", Some(&root)).await;
            if figures["data"]["messages_per_second"]
                .as_f64()
                .unwrap_or(0.0)
                > 0.0
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (status, started) = app
            .post(
                "/api/v1/admin/users/spammer/purge",
                &serde_json::json!({ "dry_run": false }),
                Some(&root),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{started}");
        assert_eq!(started["data"]["messages"], 5000);
    };
    let (common, fanout) = (common(&app), fanout());
    let (summary, ()) = tokio::join!(
        banter_bench::scenarios::fanout::run(&common, &fanout),
        purge
    );
    assert_clean(&summary.expect("fanout"));
    // And the purge finished: nothing of the spammer's is left.
    let mut left = u64::MAX;
    for _ in 0..200 {
        let (_, dry) = app
            .post(
                "/api/v1/admin/users/spammer/purge",
                &serde_json::json!({ "dry_run": true }),
                Some(&root),
            )
            .await;
        left = dry["data"]["messages"].as_u64().expect("count");
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0);
}
