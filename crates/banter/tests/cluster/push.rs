//! Push notifications across processes: a user's connection on one gateway is known to the
//! notifiers (no push for a DM sent on the other), and a notifier killed with SIGKILL
//! mid-stream loses no DM's push, repeating only what the retry contract allows (pushes sent
//! after its last commit, by the notifier that takes its partitions over).

use std::collections::HashMap;

use banter_testkit::{Device, PushService};
use serde_json::{json, Value};

use super::{api, begin, Cluster, Person, PATIENCE};

/// A user whose browser is subscribed (through `gateway`) and who has no connection.
async fn away(
    cluster: &Cluster,
    push: &PushService,
    gateway: &str,
    prefix: &str,
) -> (String, String, Device) {
    let (name, token) = cluster.user(prefix).await;
    let device = push.device();
    let (status, body) = api(
        gateway,
        reqwest::Method::POST,
        "/api/v1/push/subscriptions",
        Some(device.subscription()),
        &token,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (name, token, device)
}

fn dm(a: &str, b: &str) -> String {
    let (x, y) = if a.to_ascii_lowercase() <= b.to_ascii_lowercase() {
        (a, b)
    } else {
        (b, a)
    };
    format!("dm:{x}:{y}")
}

async fn say(person: &mut Person, room: &str, body: &str, n: &mut u32) -> Value {
    *n += 1;
    person
        .act(json!({"type": "send", "room": room, "body": body, "client_id": format!("p{n}")}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_connected_on_one_gateway_gets_no_push_for_a_dm_sent_on_the_other() {
    let (_turn, cluster, _db) = begin().await;
    let push = PushService::start_on(&cluster.push_service, &cluster.vapid_public_key).await;
    let (a, b) = (&cluster.gateways[0], &cluster.gateways[1]);
    let (ann, ann_token) = cluster.user("ann").await;
    let (bob, bob_token, bob_device) = away(&cluster, &push, a, "bob").await;
    let (carol, _, carol_device) = away(&cluster, &push, b, "carol").await;
    // Bob has the app open on gateway B only.
    let _bob = Person::on(b, &bob_token).await;
    let mut ann_ws = Person::on(a, &ann_token).await;
    let mut n = 0;
    say(&mut ann_ws, &dm(&ann, &bob), "on A, to bob on B", &mut n).await;
    // The marker: a DM sent after it, to carol, who is away, arrives; bob's came first.
    let to_carol = say(&mut ann_ws, &dm(&ann, &carol), "to carol, away", &mut n).await;
    let got = push.wait_for(&carol_device, 1, PATIENCE).await;
    assert_eq!(got[0].payload["id"], to_carol["id"]);
    assert_eq!(got[0].payload["author"], ann.as_str());
    assert_eq!(
        push.requests(&bob_device),
        0,
        "bob is connected on gateway B"
    );
    assert!(push.faults().is_empty(), "{:?}", push.faults());
}

/// The sum of a notifier's metric lines that start with `prefix` and contain `with`.
async fn metric(notifier: &str, prefix: &str, with: &str) -> u64 {
    let text = reqwest::get(format!("{notifier}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| l.starts_with(prefix) && l.contains(with))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// How many pushes a notifier has sent.
async fn pushes_sent(notifier: &str) -> u64 {
    metric(notifier, "banter_push_total", "outcome=\"sent\"").await
}

/// Waits until the notifiers' group has settled: each notifier holds partitions (a notifier
/// restarted by `begin` has rejoined, and the rebalance is over).
async fn settled(cluster: &Cluster) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let held = futures::future::join_all(
            cluster
                .notifiers
                .iter()
                .map(|u| metric(u, "banter_notify_partitions", "")),
        )
        .await;
        if held.iter().all(|n| *n > 0) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the notifiers' group did not settle: {held:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_notifier_mid_stream_loses_no_push_and_repeats_only_since_its_last_commit() {
    let (_turn, cluster, _db) = begin().await;
    settled(&cluster).await;
    let push = PushService::start_on(&cluster.push_service, &cluster.vapid_public_key).await;
    let gateway = &cluster.gateways[0];
    let (ann, ann_token) = cluster.user("ann").await;
    let (dave, _, device) = away(&cluster, &push, gateway, "dave").await;
    let room = dm(&ann, &dave);
    let mut ws = Person::on(gateway, &ann_token).await;
    let mut n = 0;
    let mut ids: Vec<Value> = Vec::new();
    // Which notifier owns the room's partition: the one whose pushes went up.
    let before: Vec<u64> =
        futures::future::join_all(cluster.notifiers.iter().map(|u| pushes_sent(u))).await;
    for i in 0..10 {
        ids.push(say(&mut ws, &room, &format!("before {i}"), &mut n).await["id"].clone());
    }
    push.wait_for(&device, 10, PATIENCE).await;
    let after: Vec<u64> =
        futures::future::join_all(cluster.notifiers.iter().map(|u| pushes_sent(u))).await;
    let owner = (0..2)
        .find(|i| after[*i] >= before[*i] + 10)
        .unwrap_or_else(|| panic!("no notifier sent the ten: {before:?} -> {after:?}"));
    // Two commit rounds later, the ten are committed: none of them may be pushed again.
    const ROUNDS: &str = "banter_notify_commit_rounds_total";
    let owner_url = &cluster.notifiers[owner];
    let r0 = metric(owner_url, ROUNDS, "").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(owner_url, ROUNDS, "").await < r0 + 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the notifier commits no more"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Ten more pushed, then the owner dies without a word, before or after committing them.
    for i in 0..10 {
        ids.push(say(&mut ws, &room, &format!("around {i}"), &mut n).await["id"].clone());
    }
    push.wait_for(&device, 20, PATIENCE).await;
    cluster
        .script(&["kill", &format!("notify-{}", owner + 1)])
        .await;
    let killed_at = ids.len();
    for i in 0..20 {
        ids.push(say(&mut ws, &room, &format!("after {i}"), &mut n).await["id"].clone());
    }
    // The other notifier takes the partition over (after the group's session timeout) and
    // pushes what the dead one had not committed.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for p in push.received(&device) {
            *counts.entry(p.payload["id"].to_string()).or_default() += 1;
        }
        if ids.iter().all(|id| counts.contains_key(&id.to_string())) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every DM was pushed: {} of {}",
            ids.iter()
                .filter(|id| counts.contains_key(&id.to_string()))
                .count(),
            ids.len()
        );
        push.wait_for(&device, push.received(&device).len() + 1, PATIENCE)
            .await;
    }
    // The marker: a last DM, pushed after whatever was read again before it.
    let marker = say(&mut ws, &room, "the last one", &mut n).await["id"].clone();
    while !push
        .received(&device)
        .iter()
        .any(|p| p.payload["id"] == marker)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the marker was not pushed"
        );
        push.wait_for(&device, push.received(&device).len() + 1, PATIENCE)
            .await;
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for p in push.received(&device) {
        *counts.entry(p.payload["id"].to_string()).or_default() += 1;
    }
    let repeated: Vec<usize> = (0..ids.len())
        .filter(|i| counts[&ids[*i].to_string()] > 1)
        .collect();
    eprintln!(
        "{} of {} DMs pushed twice after the kill (those since the last commit): {repeated:?}",
        repeated.len(),
        ids.len()
    );
    for i in &repeated {
        assert_eq!(
            counts[&ids[*i].to_string()],
            2,
            "pushed more than twice: {i}"
        );
        assert!(
            *i < killed_at,
            "a DM sent after the kill was pushed twice: {i}"
        );
        assert!(
            *i >= 10,
            "a DM whose push was committed before was pushed again: {i}"
        );
    }
    assert!(push.faults().is_empty(), "{:?}", push.faults());
    drop(ws);
}
