//! The room timeline over real WebSockets on `banter serve`: edits, deletes, reactions and
//! replies are events of the room's log, heard by everyone in order, refused with the right
//! code, replayed by a resume, and the same over HTTP.

use banter_testkit::token_of as token;
use banter_testkit::{Db, TestApp, WsClient};
use serde_json::{json, Value};

/// The next frame of `room` that is about its messages (not presence, typing, members, nor
/// who joined).
async fn next_event(ws: &mut WsClient, room: &str) -> Value {
    loop {
        let f = ws.recv().await;
        let kind = f["type"].as_str().unwrap_or_default();
        if f["room"] == room
            && !matches!(
                kind,
                "presence" | "typing" | "members" | "ack" | "member" | "created"
            )
        {
            return f;
        }
    }
}

fn cursor(v: &Value) -> String {
    v["cursor"].as_str().expect("a cursor").to_owned()
}

async fn ok_ack(ws: &mut WsClient, frame: Value) -> Value {
    let answer = ws.act(frame.clone()).await;
    assert_eq!(answer["type"], "ack", "{frame} was answered {answer}");
    answer
}

#[tokio::test]
async fn edits_reactions_replies_and_deletes_reach_everyone_in_the_rooms_order() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let alice = token(&app.signup("alice").await);
    let bob = token(&app.signup("bob").await);
    let carol = token(&app.signup("carol").await);
    let mut a = app.ws(&alice, Some("t")).await;
    let mut b = app.ws(&bob, Some("t")).await;
    let mut c = app.ws(&carol, Some("t")).await;
    // Dave only listens: what he hears is what the room heard.
    let dave = token(&app.signup("dave").await);
    let mut d = app.ws(&dave, Some("t")).await;

    let root = a.say("t", "lunch at noon?", "a1").await;
    let root_id = root["id"].as_str().expect("id").to_owned();
    for ws in [&mut b, &mut c] {
        assert_eq!(next_event(ws, "t").await["id"], root_id.as_str());
    }
    // A reply, and a reply to the reply: both in the first message's thread.
    let r1 = ok_ack(
        &mut b,
        json!({"type":"send","room":"t","body":"yes","client_id":"b1","reply_to":root_id}),
    )
    .await;
    let heard = next_event(&mut c, "t").await;
    assert_eq!(
        (heard["reply_to"].as_str(), heard["thread_root"].as_str()),
        (Some(root_id.as_str()), Some(root_id.as_str()))
    );
    let r1_id = r1["id"].as_str().expect("id").to_owned();
    ok_ack(
        &mut c,
        json!({"type":"send","room":"t","body":"me too","client_id":"c1","reply_to":r1_id}),
    )
    .await;
    // (An ack may come before the sender's own copy of its message: skip to the last.)
    let heard = loop {
        let f = next_event(&mut a, "t").await;
        if f["body"] == "me too" {
            break f;
        }
    };
    assert_eq!(
        (heard["reply_to"].as_str(), heard["thread_root"].as_str()),
        (Some(r1_id.as_str()), Some(root_id.as_str()))
    );

    // The author edits: everyone hears `edited`, after what came before.
    let edit = ok_ack(
        &mut a,
        json!({"type":"edit","id":root_id,"body":"lunch at one?","client_id":"a2"}),
    )
    .await;
    assert_eq!(edit["id"], root_id.as_str());
    assert!(cursor(&edit) > cursor(&root));
    for ws in [&mut b, &mut c] {
        let mut f = next_event(ws, "t").await;
        while f["type"] == "message" {
            f = next_event(ws, "t").await;
        }
        assert_eq!(f["type"], "edited", "{f}");
        assert_eq!(
            (f["id"].as_str(), f["body"].as_str()),
            (Some(root_id.as_str()), Some("lunch at one?"))
        );
        assert_eq!(cursor(&f), cursor(&edit));
        assert!(f["edited_at"].is_string());
    }
    // Reactions are a set: the second 👍 of bob is acked and changes nothing.
    let like = ok_ack(
        &mut b,
        json!({"type":"react","id":root_id,"emoji":"👍","client_id":"b2"}),
    )
    .await;
    ok_ack(
        &mut c,
        json!({"type":"react","id":root_id,"emoji":"👍","client_id":"c2"}),
    )
    .await;
    ok_ack(
        &mut b,
        json!({"type":"react","id":root_id,"emoji":"👍","client_id":"b3"}),
    )
    .await;
    ok_ack(
        &mut c,
        json!({"type":"unreact","id":root_id,"emoji":"👍","client_id":"c3"}),
    )
    .await;
    // Removing one that is not there is acked too, and says nothing to anyone.
    ok_ack(
        &mut c,
        json!({"type":"unreact","id":root_id,"emoji":"🎉","client_id":"c4"}),
    )
    .await;
    let marker = a.say("t", "marker", "a3").await;
    let mut heard = Vec::new();
    loop {
        let f = next_event(&mut d, "t").await;
        if f["type"] == "message" && f["body"] == "marker" {
            break;
        }
        // What came before the reactions (the messages, the edit) was checked above.
        if f["type"] == "reaction" {
            heard.push(f);
        }
    }
    let ops: Vec<(String, String, String)> = heard
        .iter()
        .map(|f| {
            assert_eq!(f["type"], "reaction", "{f}");
            (
                f["user"].as_str().unwrap().into(),
                f["emoji"].as_str().unwrap().into(),
                f["op"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("bob".into(), "👍".into(), "add".into()),
            ("carol".into(), "👍".into(), "add".into()),
            ("carol".into(), "👍".into(), "remove".into()),
        ]
    );
    assert_eq!(cursor(&heard[0]), cursor(&like));
    assert!(heard.windows(2).all(|w| cursor(&w[0]) < cursor(&w[1])));
    assert!(cursor(&heard[2]) < cursor(&marker));

    // History says the same, in its current state.
    let (_, page) = app.get("/api/v1/rooms/t/messages", Some(&carol)).await;
    let messages = page["data"]["messages"].as_array().expect("messages");
    let first = &messages[0];
    assert_eq!(first["body"], "lunch at one?");
    assert!(first["edited_at"].is_string());
    assert_eq!(
        first["reactions"],
        json!([{"emoji":"👍","count":1,"users":["bob"]}])
    );
    assert_eq!(first["reply_count"], 2);
    assert_eq!(first["reply_to"], Value::Null);
    assert_eq!(messages[1]["thread_root"], root_id.as_str());
    assert_eq!(messages[3]["body"], "marker");
    // The thread, and the earlier bodies.
    let (status, thread) = app
        .get(&format!("/api/v1/messages/{r1_id}/replies"), Some(&alice))
        .await;
    assert_eq!(status, 200, "{thread}");
    assert_eq!(thread["data"]["root"]["id"], root_id.as_str());
    let replies: Vec<&str> = thread["data"]["messages"]
        .as_array()
        .expect("replies")
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    assert_eq!(replies, ["yes", "me too"]);
    assert_eq!(thread["data"]["has_more"], false);
    let (status, edits) = app
        .get(&format!("/api/v1/messages/{root_id}/edits"), Some(&bob))
        .await;
    assert_eq!(status, 200, "{edits}");
    assert_eq!(edits["data"]["edits"][0]["body"], "lunch at noon?");
    assert_eq!(edits["data"]["edits"].as_array().expect("edits").len(), 1);

    // The author deletes: it leaves history, and its thread's count.
    let gone = ok_ack(&mut b, json!({"type":"delete","id":r1_id,"client_id":"b9"})).await;
    assert_eq!(gone["type"], "ack");
    let mut f = next_event(&mut b, "t").await;
    while f["type"] != "deleted" {
        f = next_event(&mut b, "t").await;
    }
    assert_eq!(
        f,
        json!({"type":"deleted","room":"t","id":r1_id,"cursor":cursor(&gone)})
    );
    let (_, page) = app.get("/api/v1/rooms/t/messages", Some(&carol)).await;
    let bodies: Vec<&str> = page["data"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    assert_eq!(bodies, ["lunch at one?", "me too", "marker"]);
    assert_eq!(page["data"]["messages"][0]["reply_count"], 1);
}

#[tokio::test]
async fn every_right_is_refused_with_its_code() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let alice = token(&app.signup("alice").await);
    let bob = token(&app.signup("bob").await);
    let eve = token(&app.signup("eve").await);
    let mut a = app.ws(&alice, Some("r")).await;
    let mut b = app.ws(&bob, Some("r")).await;
    let mut e = app.ws(&eve, Some("r")).await;
    let public = a.say("r", "mine", "a1").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let private = a.say("dm:alice:bob", "just us", "a2").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let elsewhere = a.say("other", "other room", "a3").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let nobody = uuid::Uuid::now_v7().to_string();

    let code = |answer: Value| answer["code"].as_str().unwrap_or("(an ack)").to_owned();
    // Only the author edits; the author or an admin deletes.
    assert_eq!(
        code(
            b.act(json!({"type":"edit","id":public,"body":"hacked","client_id":"b1"}))
                .await
        ),
        "forbidden"
    );
    assert_eq!(
        code(
            b.act(json!({"type":"delete","id":public,"client_id":"b2"}))
                .await
        ),
        "forbidden"
    );
    // Unknown, and unreadable (a DM of others): both simply not found, to everyone.
    for (ws, id) in [(&mut b, &nobody), (&mut e, &private)] {
        for (i, frame) in [
            json!({"type":"edit","id":id,"body":"x"}),
            json!({"type":"delete","id":id}),
            json!({"type":"react","id":id,"emoji":"👍"}),
            json!({"type":"unreact","id":id,"emoji":"👍"}),
            json!({"type":"send","room":"r","body":"re","reply_to":id}),
        ]
        .into_iter()
        .enumerate()
        {
            let mut frame = frame;
            frame["client_id"] = format!("nf-{i}").into();
            assert_eq!(code(ws.act(frame.clone()).await), "not_found", "{frame}");
        }
    }
    // A reply lives in its parent's room.
    assert_eq!(
        code(
            b.act(
                json!({"type":"send","room":"r","body":"re","reply_to":elsewhere,"client_id":"b3"})
            )
            .await
        ),
        "not_found"
    );
    // Bad input: a clear validation error naming the field, echoing the client id.
    let bad = b
        .act(json!({"type":"react","id":public,"emoji":"two words","client_id":"b4"}))
        .await;
    assert_eq!(code(bad.clone()), "validation_failed");
    assert!(
        bad["message"]
            .as_str()
            .expect("message")
            .starts_with("emoji"),
        "{bad}"
    );
    assert_eq!(
        code(
            b.act(json!({"type":"edit","id":"nope","body":"x","client_id":"b5"}))
                .await
        ),
        "validation_failed"
    );
    assert_eq!(
        code(
            a.act(json!({"type":"edit","id":public,"body":"","client_id":"a4"}))
                .await
        ),
        "validation_failed"
    );
    // The member of a DM may react and reply there.
    assert_eq!(
        code(
            b.act(json!({"type":"react","id":private,"emoji":"👍","client_id":"b6"}))
                .await
        ),
        "(an ack)"
    );
    // Over HTTP the same rules, the same codes.
    let patch = |who: &str, id: &str, body: Value| {
        let (app, who, id) = (&app, who.to_owned(), id.to_owned());
        async move {
            let resp = app
                .client
                .patch(app.url(&format!("/api/v1/messages/{id}")))
                .bearer_auth(who)
                .json(&body)
                .send()
                .await
                .expect("patch");
            TestApp::read(resp).await
        }
    };
    let (status, body) = patch(&bob, &public, json!({"body":"hacked"})).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, body) = patch(&eve, &private, json!({"body":"x"})).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = patch(&alice, &public, json!({"body": 5})).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("validation_failed")),
        "{body}"
    );
    for path in [
        format!("/api/v1/messages/{private}/replies"),
        format!("/api/v1/messages/{private}/edits"),
    ] {
        let (status, body) = app.get(&path, Some(&eve)).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    // What the author may do goes through, over HTTP too, and the room hears it.
    let (status, body) = patch(&alice, &public, json!({"body":"mine, edited"})).await;
    assert_eq!(status, 200, "{body}");
    let heard = loop {
        let f = b.recv().await;
        if f["type"] == "edited" {
            break f;
        }
    };
    assert_eq!(heard["cursor"], body["data"]["cursor"]);
    assert_eq!(heard["body"], "mine, edited");
}

#[tokio::test]
async fn a_client_away_resumes_with_exactly_the_events_it_missed() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let alice = token(&app.signup("alice").await);
    let bob = token(&app.signup("bob").await);
    let carol = token(&app.signup("carol").await);
    let mut a = app.ws(&alice, Some("away")).await;
    let mut b = app.ws(&bob, Some("away")).await;
    let mut c = app.ws(&carol, Some("away")).await;
    let m1 = a.say("away", "one", "a1").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let m2 = a.say("away", "two", "a2").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let last_seen = c.recv_messages("away", 2).await[1]["cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    c.close().await;

    let acks = [
        ok_ack(
            &mut a,
            json!({"type":"edit","id":m1,"body":"one, edited","client_id":"a3"}),
        )
        .await,
        ok_ack(
            &mut b,
            json!({"type":"react","id":m1,"emoji":"👍","client_id":"b1"}),
        )
        .await,
        ok_ack(
            &mut b,
            json!({"type":"react","id":m1,"emoji":"🎉","client_id":"b2"}),
        )
        .await,
        ok_ack(
            &mut b,
            json!({"type":"unreact","id":m1,"emoji":"🎉","client_id":"b3"}),
        )
        .await,
        ok_ack(&mut a, json!({"type":"delete","id":m2,"client_id":"a4"})).await,
    ];
    let mut c = app.ws(&carol, Some("elsewhere")).await;
    let frames = c.join("away", Some(&last_seen)).await;
    let events: Vec<&Value> = frames
        .iter()
        .filter(|f| f["room"] == "away" && f["type"] != "members" && f["type"] != "joined")
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|f| f["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        kinds,
        ["edited", "reaction", "reaction", "reaction", "deleted"],
        "{frames:?}"
    );
    let cursors: Vec<String> = events.iter().map(|f| cursor(f)).collect();
    let acked: Vec<String> = acks.iter().map(cursor).collect();
    assert_eq!(cursors, acked, "exactly those events, in cursor order");
    assert_eq!(events[3]["op"], "remove");
    assert_eq!(
        frames.last().expect("joined")["cursor"].as_str(),
        Some(acked[4].as_str())
    );
    // History agrees with what the replay built.
    let (_, page) = app.get("/api/v1/rooms/away/messages", Some(&carol)).await;
    let messages = page["data"]["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["body"], "one, edited");
    assert_eq!(
        messages[0]["reactions"],
        json!([{"emoji":"👍","count":1,"users":["bob"]}])
    );
    // Live events follow with no gap.
    ok_ack(
        &mut b,
        json!({"type":"react","id":m1,"emoji":"👀","client_id":"b4"}),
    )
    .await;
    assert_eq!(next_event(&mut c, "away").await["emoji"], "👀");
}

#[tokio::test]
async fn a_resent_client_id_of_an_edit_or_a_reaction_changes_nothing() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let alice = token(&app.signup("alice").await);
    let bob = token(&app.signup("bob").await);
    let carol = token(&app.signup("carol").await);
    let mut a = app.ws(&alice, Some("re")).await;
    let mut b = app.ws(&bob, Some("re")).await;
    // Carol only listens: what she hears is what the room heard.
    let mut c = app.ws(&carol, Some("re")).await;
    let m = a.say("re", "hello", "a1").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    next_event(&mut c, "re").await;
    let edit = json!({"type":"edit","id":m,"body":"hello!","client_id":"a2"});
    let first = ok_ack(&mut a, edit).await;
    // The same client id again (a lost ack), even with another body: the first answer.
    let again = ok_ack(
        &mut a,
        json!({"type":"edit","id":m,"body":"hello!!","client_id":"a2"}),
    )
    .await;
    assert_eq!(
        (cursor(&again), &again["id"]),
        (cursor(&first), &first["id"])
    );
    let react = json!({"type":"react","id":m,"emoji":"👍","client_id":"b1"});
    let liked = ok_ack(&mut b, react.clone()).await;
    // Re-sent while the reaction is there: the first answer too.
    assert_eq!(cursor(&ok_ack(&mut b, react.clone()).await), cursor(&liked));
    let unliked = ok_ack(
        &mut b,
        json!({"type":"unreact","id":m,"emoji":"👍","client_id":"b2"}),
    )
    .await;
    // Re-sending the first react after the unreact must not bring the reaction back.
    assert_eq!(cursor(&ok_ack(&mut b, react).await), cursor(&liked));
    a.say("re", "marker", "a3").await;
    let mut heard = Vec::new();
    loop {
        let f = next_event(&mut c, "re").await;
        if f["body"] == "marker" {
            break;
        }
        heard.push((f["type"].as_str().expect("type").to_owned(), cursor(&f)));
    }
    assert_eq!(
        heard,
        [
            ("edited".to_owned(), cursor(&first)),
            ("reaction".to_owned(), cursor(&liked)),
            ("reaction".to_owned(), cursor(&unliked)),
        ],
        "one event each, nothing re-sent fanned out again"
    );
    let (_, page) = app.get("/api/v1/rooms/re/messages", Some(&bob)).await;
    assert_eq!(page["data"]["messages"][0]["body"], "hello!");
    assert_eq!(page["data"]["messages"][0]["reactions"], json!([]));

    // A re-send is answered as the first time even when what it acted on is gone since.
    let eyes = json!({"type":"react","id":m,"emoji":"👀","client_id":"b3"});
    let looked = ok_ack(&mut b, eyes.clone()).await;
    ok_ack(&mut a, json!({"type":"delete","id":m,"client_id":"a4"})).await;
    assert_eq!(cursor(&ok_ack(&mut b, eyes).await), cursor(&looked));
    let again = b
        .act(json!({"type":"react","id":m,"emoji":"👀","client_id":"b4"}))
        .await;
    assert_eq!(again["code"], "not_found", "a new one is checked: {again}");
}
