//! Search on `serve`, over HTTP, on both stores: what a user finds (only what they may read,
//! with an HTML-safe highlight), that every odd text is a query, the edges' errors, paging,
//! edits and deletes, and opening a result in its context (`around=`).

use banter_testkit::{token_of as token, Db, Options, TestApp, WsClient};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// `GET /api/v1/search` with these query parameters (encoded by reqwest).
async fn search(app: &TestApp, tok: &str, params: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = app
        .client
        .get(app.url("/api/v1/search"))
        .query(params)
        .bearer_auth(tok)
        .send()
        .await
        .expect("search");
    TestApp::read(resp).await
}

/// The bodies found for `q` (first page); the search must succeed.
async fn bodies(app: &TestApp, tok: &str, q: &str) -> Vec<String> {
    let (status, body) = search(app, tok, &[("q", q)]).await;
    assert_eq!(status, StatusCode::OK, "{q:?}: {body}");
    results(&body)
        .iter()
        .map(|r| r["body"].as_str().expect("body").to_owned())
        .collect()
}

fn results(body: &Value) -> &Vec<Value> {
    body["data"]["results"].as_array().expect("results")
}

async fn private_room(app: &TestApp, owner: &str, name: &str, members: &[&str]) {
    let (status, body) = app
        .post(
            "/api/v1/rooms",
            &json!({"name": name, "kind": "private"}),
            Some(owner),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for m in members {
        let (status, body) = app
            .post(
                &format!("/api/v1/rooms/{name}/members"),
                &json!({"username": m}),
                Some(owner),
            )
            .await;
        assert!(status.is_success(), "{status} {body}");
    }
}

/// Says `body` in `room` and returns its ack.
async fn say(ws: &mut WsClient, room: &str, body: &str, n: &mut u32) -> Value {
    *n += 1;
    ws.say(room, body, &format!("c{n}")).await
}

/// A server without the search limit (these tests search far faster than people type;
/// the limit has its own test in `realtime/rate_limits.rs`).
async fn spawn(db: Db) -> TestApp {
    let mut options = Options::default();
    options.gateway.limits.searches = None;
    TestApp::spawn_with(db, options).await
}

async fn finds_only_what_each_may_read(db: Db) {
    let app = spawn(db).await;
    let ann = token(&app.signup("ann").await);
    let ben = token(&app.signup("ben").await);
    let eve = token(&app.signup("eve").await);
    private_room(&app, &ann, "plans", &["ben"]).await;
    let mut n = 0;
    let mut a = app.ws(&ann, Some("plans")).await;
    say(&mut a, "plans", "The <launch> plan & budget", &mut n).await;
    a.join("dm:ann:ben", None).await;
    say(&mut a, "dm:ann:ben", "launch code is 1234", &mut n).await;
    let mut e = app.ws(&eve, Some("general")).await;
    say(&mut e, "general", "launch party tonight", &mut n).await;

    let (status, body) = search(&app, &ann, &[("q", "LAUNCH")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let found = results(&body);
    assert_eq!(found.len(), 2, "{body}");
    assert_eq!(body["data"]["has_more"], false);
    // Newest first, each a whole message with its highlight beside it.
    assert_eq!(found[0]["room"], "dm:ann:ben");
    assert_eq!(found[0]["author"], "ann");
    assert!(found[0]["cursor"].is_string() && found[0]["created_at"].is_string());
    assert_eq!(found[0]["highlight"], "<mark>launch</mark> code is 1234");
    assert_eq!(
        found[1]["highlight"],
        "The &lt;<mark>launch</mark>&gt; plan &amp; budget"
    );
    assert_eq!(
        bodies(&app, &ben, "launch").await,
        ["launch code is 1234", "The <launch> plan & budget"]
    );
    // Eve finds her own room's message, never theirs, however she asks.
    assert_eq!(bodies(&app, &eve, "launch").await, ["launch party tonight"]);
    for room in ["plans", "dm:ann:ben"] {
        let (status, body) = search(&app, &eve, &[("q", "launch"), ("room", room)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{room}: {body}");
    }
    // A public room is searched by name even by someone not in it; by default it is not.
    let (status, body) = search(&app, &ann, &[("q", "party"), ("room", "general")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(results(&body).len(), 1);
    assert!(bodies(&app, &ann, "party").await.is_empty());

    // Ben is removed from the private room: it is gone from his search at once.
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/v1/rooms/plans/members/ben",
            None,
            Some(&ann),
        )
        .await;
    assert!(status.is_success(), "{status}");
    assert_eq!(bodies(&app, &ben, "launch").await, ["launch code is 1234"]);
    // Filtered by author.
    let (_, body) = search(&app, &ann, &[("q", "launch"), ("from", "@Eve")]).await;
    assert!(results(&body).is_empty(), "ann cannot read eve's room");
    let (_, body) = search(&app, &eve, &[("q", "launch"), ("from", "eve")]).await;
    assert_eq!(results(&body).len(), 1);
    app.stop().await.expect("stop");
}

#[tokio::test]
async fn search_finds_only_what_each_user_may_read_on_sqlite() {
    finds_only_what_each_may_read(Db::Sqlite).await;
}

#[tokio::test]
async fn search_finds_only_what_each_user_may_read_on_postgres() {
    finds_only_what_each_may_read(Db::Postgres).await;
}

#[tokio::test]
async fn every_odd_text_is_a_query_and_bad_parameters_are_named() {
    let app = spawn(Db::Sqlite).await;
    let ann = token(&app.signup("ann").await);
    let mut a = app.ws(&ann, Some("general")).await;
    let mut n = 0;
    say(
        &mut a,
        "general",
        "50% done: see C:\\temp (draft) — 完成了",
        &mut n,
    )
    .await;
    let long = "x".repeat(200);
    for q in [
        "\"",
        "\"\"",
        "\"open",
        "-",
        "-done",
        "a-b",
        "OR",
        "NOT done",
        "done AND",
        "*",
        "do*",
        ":",
        "body:done",
        "\\",
        "C:\\temp",
        "(",
        ")",
        "(draft)",
        "%",
        "_",
        "%_",
        "'",
        "' OR 1=1 --",
        "^",
        "+",
        "!",
        "&|",
        "<->",
        "NEAR(a b)",
        "{}",
        "😀",
        "完成",
        "完成了",
        "   ",
        &long,
    ] {
        let (status, body) = search(&app, &ann, &[("q", q)]).await;
        assert_eq!(status, StatusCode::OK, "{q:?}: {body}");
        assert!(body["data"]["results"].is_array(), "{q:?}: {body}");
    }
    assert_eq!(bodies(&app, &ann, "(draft)").await.len(), 1);
    assert_eq!(bodies(&app, &ann, "完成了").await.len(), 1);

    let too_long = "x".repeat(201);
    for (params, field) in [
        (vec![], "q"),
        (vec![("q", "")], "q"),
        (vec![("q", too_long.as_str())], "q"),
        (vec![("q", "a"), ("limit", "0")], "limit"),
        (vec![("q", "a"), ("limit", "51")], "limit"),
        (vec![("q", "a"), ("limit", "ten")], "limit"),
        (vec![("q", "a"), ("before", "yesterday")], "before"),
        (vec![("q", "a"), ("from", "no such name!")], "from"),
        (vec![("q", "a"), ("room", "bad room name!")], "room"),
    ] {
        let (status, body) = search(&app, &ann, &params).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{params:?}: {body}");
        assert_eq!(body["error"], "validation_failed", "{body}");
        assert_eq!(body["data"]["field"], field, "{params:?}: {body}");
    }
    let anonymous = app
        .client
        .get(app.url("/api/v1/search?q=a"))
        .send()
        .await
        .expect("GET");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    app.stop().await.expect("stop");
}

#[tokio::test]
async fn results_page_edits_replace_deletes_remove_and_a_result_opens_in_context() {
    // Fifty messages from one sender: more than the send rate allows.
    let app = TestApp::spawn_with(Db::Sqlite, Options::unlimited()).await;
    let ann = token(&app.signup("ann").await);
    let mut a = app.ws(&ann, Some("general")).await;
    let mut n = 0;
    let mut acks = Vec::new();
    for i in 0..25 {
        acks.push(say(&mut a, "general", &format!("retro item {i}"), &mut n).await);
        say(&mut a, "general", &format!("filler {i}"), &mut n).await;
    }
    // Three pages of ten, ten, five: newest first, none twice, none missed.
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut params = vec![("q", "retro"), ("limit", "10")];
        if let Some(b) = &before {
            params.push(("before", b.as_str()));
        }
        let (status, body) = search(&app, &ann, &params).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page = results(&body);
        seen.extend(
            page.iter()
                .map(|r| r["id"].as_str().expect("id").to_owned()),
        );
        if body["data"]["has_more"] == false {
            break;
        }
        before = Some(
            page.last().expect("a full page")["cursor"]
                .as_str()
                .expect("c")
                .into(),
        );
    }
    let want: Vec<String> = acks
        .iter()
        .rev()
        .map(|a| a["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(seen, want);

    // The 13th opens in its context: the page around its cursor holds it in the middle.
    let target = &acks[12];
    let (status, page) = app
        .get(
            &format!(
                "/api/v1/rooms/general/messages?around={}&limit=9",
                target["cursor"].as_str().expect("cursor")
            ),
            Some(&ann),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let messages = page["data"]["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 9);
    assert_eq!(messages[4]["id"], target["id"], "{page}");
    assert_eq!(page["data"]["has_more"], true);
    assert_eq!(page["data"]["has_newer"], true);
    // At the newest, nothing newer.
    let last = acks.last().expect("acks")["cursor"]
        .as_str()
        .expect("c")
        .to_owned();
    let (_, page) = app
        .get(
            &format!("/api/v1/rooms/general/messages?around={last}&limit=9"),
            Some(&ann),
        )
        .await;
    let messages = page["data"]["messages"].as_array().expect("messages");
    assert_eq!(page["data"]["has_newer"], false, "{page}");
    assert_eq!(
        messages.len(),
        6,
        "itself, four before it and the filler after it"
    );
    for mixed in [
        format!("around={last}&before={last}"),
        format!("after={last}&before={last}"),
        format!("after={last}&around={last}"),
        "after=nonsense".to_owned(),
    ] {
        let (status, body) = app
            .get(
                &format!("/api/v1/rooms/general/messages?{mixed}"),
                Some(&ann),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{mixed}: {body}");
    }

    // An edit replaces what is found; a delete removes it.
    let id = target["id"].as_str().expect("id");
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/messages/{id}"),
            Some(&json!({"body": "postmortem item"})),
            Some(&ann),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let (_, body) = search(&app, &ann, &[("q", "retro"), ("limit", "50")]).await;
    assert_eq!(results(&body).len(), 24);
    assert_eq!(bodies(&app, &ann, "postmortem").await, ["postmortem item"]);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/messages/{id}"),
            None,
            Some(&ann),
        )
        .await;
    assert!(status.is_success(), "{status}");
    assert!(bodies(&app, &ann, "postmortem").await.is_empty());
    app.stop().await.expect("stop");
}
