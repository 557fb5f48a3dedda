//! The OpenAPI document: served at /api/v1/openapi.json, and true to the routers. Every
//! `.route(…)` in the routers' source is in it with each of its methods, and everything in
//! it is served (a request to it reaches a handler, not the "no such endpoint" fallback).
//! CI validates the document itself with openapi-spec-validator (scripts/openapi-check).

use std::collections::BTreeSet;
use std::path::Path;

use banter_testkit::{Db, TestApp};
use reqwest::{Method, StatusCode};

/// (method, path) of every route the routers' source registers.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = BTreeSet::new();
    for file in [
        "auth/src/routes.rs",
        "gateway/src/lib.rs",
        "gateway/src/web.rs",
        "http/src/ops.rs",
    ] {
        let text = std::fs::read_to_string(crates.join(file)).expect(file);
        let starts: Vec<usize> = text.match_indices(".route(").map(|(i, _)| i).collect();
        for (n, &at) in starts.iter().enumerate() {
            let rest = text[at + ".route(".len()..].trim_start();
            let path = rest
                .strip_prefix('"')
                .and_then(|r| r.split('"').next())
                .unwrap_or_else(|| panic!("a .route( without a literal path in {file}"));
            // This route's methods: up to the next route, or the end of the function.
            let end = starts
                .get(n + 1)
                .copied()
                .unwrap_or_else(|| at + text[at..].find("\n}").unwrap_or(text.len() - at));
            let segment = &text[at..end];
            let mut methods = 0;
            for method in ["get", "post", "put", "patch", "delete"] {
                let call = format!("{method}(");
                let named = segment.match_indices(&call).any(|(i, _)| {
                    i == 0
                        || !segment.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && segment.as_bytes()[i - 1] != b'_'
                });
                if named {
                    found.insert((method.to_owned(), path.to_owned()));
                    methods += 1;
                }
            }
            assert!(methods > 0, "no method found for {path} in {file}");
        }
    }
    found
}

#[tokio::test]
async fn the_document_lists_every_route_served_and_only_those() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let (status, served) = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served, banter_gateway::openapi::document());
    assert_eq!(served["openapi"], "3.1.0");

    let mut documented = BTreeSet::new();
    for (path, item) in served["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let in_source = routes_in_source();
    let missing: Vec<_> = in_source.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&in_source).collect();
    assert!(
        missing.is_empty(),
        "served but not in the document: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "in the document but not in the routers: {extra:?}"
    );
    assert!(
        in_source.len() > 60,
        "the scan found {} routes",
        in_source.len()
    );

    // And each is answered by a handler: never the fallback's 404 or a 405.
    for (method, path) in &documented {
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let (status, body) = app.call(method.clone(), &concrete, None, None).await;
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}"
        );
        assert!(
            !(status == StatusCode::NOT_FOUND && body["message"] == "no such endpoint"),
            "{method} {concrete} is not served"
        );
    }
}
