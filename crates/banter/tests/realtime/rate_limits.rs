//! Rate and connection limits: what goes over is refused with `rate_limited` and a wait
//! (`Retry-After` over HTTP, `retry_after_ms` on the socket), before any work is done, and
//! nothing refused is stored or lost: the client sends it again after the wait.

use banter_auth::AuthLimitSettings;
use banter_gateway::limits::GatewayLimitSettings;
use banter_testkit::{token_of as token, Db, Options, TestApp, WsClient};
use serde_json::{json, Value};

fn options(auth: AuthLimitSettings, gateway: GatewayLimitSettings) -> Options {
    let mut options = Options {
        auth_limits: auth,
        ..Options::default()
    };
    options.gateway.limits = gateway;
    options
}

/// A server with these login and registration limits, and the default gateway limits.
async fn with_auth_limits(auth: AuthLimitSettings) -> TestApp {
    TestApp::spawn_with(Db::Sqlite, options(auth, GatewayLimitSettings::default())).await
}

/// A server with these gateway limits and no login or registration limits.
async fn with_gateway_limits(gateway: GatewayLimitSettings) -> TestApp {
    TestApp::spawn_with(Db::Sqlite, options(AuthLimitSettings::off(), gateway)).await
}

/// A JSON POST whose `Retry-After` header is kept.
async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Option<u64>, Value) {
    let resp = reqwest::Client::new()
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, retry_after, resp.json().await.expect("a JSON body"))
}

fn assert_limited(status: u16, retry_after: Option<u64>, body: &Value) {
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert_eq!(body["success"], false);
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("try again")));
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After: {retry_after:?}"
    );
}

#[tokio::test]
async fn logins_are_limited_per_username_and_per_address() {
    let app = with_auth_limits(AuthLimitSettings {
        login_per_ip: "6/min".parse().ok(),
        login_per_user: "3/min".parse().ok(),
        ..AuthLimitSettings::off()
    })
    .await;
    for name in ["lee", "max"] {
        assert_eq!(app.register(name, "password123").await.0, 201);
    }
    // Three wrong guesses at lee's password, then even the right one waits: the limit is
    // on attempts, and `LEE` is the same user.
    for _ in 0..3 {
        let (status, _, body) = post(
            &app,
            "/api/v1/login",
            json!({"username": "lee", "password": "wrong-guess"}),
        )
        .await;
        assert_eq!(status, 401, "{body}");
    }
    let (status, retry_after, body) = post(
        &app,
        "/api/v1/login",
        json!({"username": "LEE", "password": "password123"}),
    )
    .await;
    assert_limited(status, retry_after, &body);
    assert!(body["message"].as_str().unwrap().contains("this user"));
    // Another user from the same address still gets in, until the address's six are spent.
    let (status, _, body) = post(
        &app,
        "/api/v1/login",
        json!({"username": "max", "password": "password123"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.login("max", "password123").await.0, 200);
    let (status, retry_after, body) = post(
        &app,
        "/api/v1/login",
        json!({"username": "max", "password": "password123"}),
    )
    .await;
    assert_limited(status, retry_after, &body);
    assert!(body["message"].as_str().unwrap().contains("this address"));
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let app = with_auth_limits(AuthLimitSettings {
        register_per_ip: "2/h".parse().ok(),
        ..AuthLimitSettings::off()
    })
    .await;
    assert_eq!(app.register("ann", "password123").await.0, 201);
    assert_eq!(app.register("bob", "password123").await.0, 201);
    let (status, retry_after, body) = post(
        &app,
        "/api/v1/register",
        json!({"username": "cyd", "password": "password123"}),
    )
    .await;
    assert_limited(status, retry_after, &body);
    // Half an hour per registration at 2/h.
    assert!(retry_after.unwrap() > 1700, "{retry_after:?}");
    // Refused means not created.
    assert_eq!(app.login("cyd", "password123").await.0, 401);
}

#[tokio::test]
async fn registrations_are_limited_per_username_after_validation() {
    let app = with_auth_limits(AuthLimitSettings {
        register_per_user: "1/h".parse().ok(),
        ..AuthLimitSettings::off()
    })
    .await;
    // Invalid forms spend nothing.
    for _ in 0..3 {
        assert_eq!(app.register("ann", "short").await.0, 400);
    }
    assert_eq!(app.register("ann", "password123").await.0, 201);
    // The same name again, in any case, is refused before anything else (even "taken").
    let (status, retry_after, body) = post(
        &app,
        "/api/v1/register",
        json!({"username": "ANN", "password": "password123"}),
    )
    .await;
    assert_limited(status, retry_after, &body);
    assert!(body["message"].as_str().unwrap().contains("this username"));
    // Other names are not touched.
    assert_eq!(app.register("bob", "password123").await.0, 201);
}

#[tokio::test]
async fn sends_over_the_limit_are_refused_with_their_client_id_and_none_is_lost() {
    let app = with_gateway_limits(GatewayLimitSettings {
        sends: "3/s".parse().ok(),
        ..GatewayLimitSettings::off()
    })
    .await;
    let ann = token(&app.signup("ann").await);
    let mut ws = app.ws(&ann, Some("quick")).await;
    for i in 0..5 {
        ws.send(&json!({"type":"send","room":"quick","body":format!("m{i}"),"client_id":format!("c{i}")}))
            .await;
    }
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    while acked.len() + refused.len() < 5 {
        let frame = ws.recv().await;
        match frame["type"].as_str() {
            Some("ack") => acked.push(frame["client_id"].as_str().unwrap().to_owned()),
            Some("error") => {
                assert_eq!(frame["code"], "rate_limited", "{frame}");
                let wait = frame["retry_after_ms"].as_u64().expect("retry_after_ms");
                assert!((1..=1000).contains(&wait), "{frame}");
                refused.push(frame["client_id"].as_str().unwrap().to_owned());
            }
            _ => {}
        }
    }
    assert_eq!(acked, ["c0", "c1", "c2"]);
    assert_eq!(refused, ["c3", "c4"]);
    // After the wait the refused ones go through, once, under the same client ids.
    for id in &refused {
        loop {
            let i = &id[1..];
            ws.send(&json!({"type":"send","room":"quick","body":format!("m{i}"),"client_id":id}))
                .await;
            let answer = loop {
                let f = ws.recv().await;
                if f["type"] == "ack" || f["type"] == "error" {
                    break f;
                }
            };
            if answer["type"] == "ack" {
                break;
            }
            let wait = answer["retry_after_ms"].as_u64().unwrap_or(100);
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        }
    }
    assert_eq!(
        app.history_bodies("quick", &ann).await,
        ["m0", "m1", "m2", "m3", "m4"]
    );
}

#[tokio::test]
async fn connections_are_limited_per_address_and_per_user_before_the_upgrade() {
    let app = with_gateway_limits(GatewayLimitSettings {
        connections_per_user: Some(2),
        ..GatewayLimitSettings::off()
    })
    .await;
    let ann = token(&app.signup("ann").await);
    let bob = token(&app.signup("bob").await);
    let first = app.ws(&ann, None).await;
    let _second = app.ws(&ann, None).await;
    let refused = WsClient::connect(&app.ws_url(&ann, None))
        .await
        .expect_err("a third connection of ann");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["error"], "rate_limited", "{}", refused.body);
    // Others are not touched, and a closed connection gives its slot back.
    let _bob = app.ws(&bob, None).await;
    drop(first);
    let mut again = None;
    for _ in 0..100 {
        match WsClient::connect(&app.ws_url(&ann, None)).await {
            Ok(ws) => {
                again = Some(ws);
                break;
            }
            // The server notices the close when it reads it: poll until then.
            Err(r) if r.status == 429 => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(r) => panic!("unexpected refusal {}: {}", r.status, r.body),
        }
    }
    assert!(
        again.is_some(),
        "ann's slot came back after closing a connection"
    );

    let app = with_gateway_limits(GatewayLimitSettings {
        connects_per_ip: "2/min".parse().ok(),
        ..GatewayLimitSettings::off()
    })
    .await;
    let cyd = token(&app.signup("cyd").await);
    let _a = app.ws(&cyd, None).await;
    let _b = app.ws(&cyd, None).await;
    let refused = WsClient::connect(&app.ws_url(&cyd, None))
        .await
        .expect_err("a third connection from this address within the minute");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["error"], "rate_limited", "{}", refused.body);
    assert!(refused.body["message"]
        .as_str()
        .is_some_and(|m| m.contains("this address")));
}

#[tokio::test]
async fn searches_over_the_limit_are_refused_with_the_wait() {
    let app = with_gateway_limits(GatewayLimitSettings {
        searches: "2/min".parse().ok(),
        ..GatewayLimitSettings::off()
    })
    .await;
    let ann = token(&app.signup("ann").await);
    let bob = token(&app.signup("bob").await);
    let search = |tok: String| {
        let url = app.url("/api/v1/search?q=hello");
        async move {
            let resp = reqwest::Client::new()
                .get(url)
                .bearer_auth(tok)
                .send()
                .await
                .expect("search");
            let status = resp.status().as_u16();
            let wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            let body: Value = resp.json().await.expect("json");
            (status, wait, body)
        }
    };
    assert_eq!(search(ann.clone()).await.0, 200);
    assert_eq!(search(ann.clone()).await.0, 200);
    let (status, wait, body) = search(ann.clone()).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert!(wait.is_some_and(|s| (1..=60).contains(&s)), "{wait:?}");
    // Another user is not touched.
    assert_eq!(search(bob).await.0, 200);
}
