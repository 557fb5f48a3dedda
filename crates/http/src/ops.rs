//! Operations endpoints and the middleware every service wraps its router in.
//!
//! `/health` is liveness: it answers as long as the process serves HTTP and checks nothing
//! else, so an orchestrator never restarts a healthy process because its database blinked.
//! `/ready` runs each dependency's check and answers 503 when one fails, so traffic moves
//! away until it recovers. `/metrics` renders the process-wide Prometheus recorder.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::{join_all, BoxFuture};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::{json, Map, Value};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::ApiError;

/// How long `/ready` waits for one dependency before calling it down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The process-wide Prometheus recorder. `metrics` has one global recorder per process, and
/// tests start many servers in one process, so it is installed once and shared.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("duration_seconds".into()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ],
            )
            .and_then(|b| b.install_recorder())
            .unwrap_or_else(|e| {
                // Only reachable if something else installed a recorder first: metrics then
                // go there, and /metrics renders an empty page rather than failing.
                tracing::warn!(error = %e, "could not install the Prometheus recorder");
                PrometheusBuilder::new().build_recorder().handle()
            });
        metrics::gauge!("banter_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// A named readiness check: resolves to `Err(reason)` when the dependency is not usable.
#[derive(Clone)]
pub struct Check {
    pub name: &'static str,
    pub run: Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

/// Something to refresh right before `/metrics` renders (gauges read from pools and queues).
pub type Collector = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
struct OpsState {
    checks: Arc<[Check]>,
    collectors: Arc<[Collector]>,
}

/// `/health`, `/ready` and `/metrics`.
pub fn router(checks: Vec<Check>, collectors: Vec<Collector>) -> Router {
    let _ = prometheus();
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(OpsState {
            checks: checks.into(),
            collectors: collectors.into(),
        })
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "healthy" }))
}

async fn ready(State(state): State<OpsState>) -> Response {
    let results = join_all(state.checks.iter().map(|check| async move {
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, (check.run)()).await {
            Ok(Ok(())) => json!({ "state": "up" }),
            Ok(Err(reason)) => json!({ "state": "down", "reason": reason }),
            Err(_) => json!({ "state": "down", "reason": "timed out" }),
        };
        (check.name, outcome)
    }))
    .await;
    let all_up = results.iter().all(|(_, v)| v["state"] == "up");
    let dependencies: Map<String, Value> = results
        .into_iter()
        .map(|(name, v)| (name.to_owned(), v))
        .collect();
    let status = if all_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if all_up { "ready" } else { "unavailable" },
        "dependencies": dependencies,
    });
    (status, Json(body)).into_response()
}

async fn render_metrics(State(state): State<OpsState>) -> Response {
    for collect in state.collectors.iter() {
        collect();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        prometheus().render(),
    )
        .into_response()
}

/// Marks a response whose cause must be logged: the client sees a bland 500, the log gets
/// this text, in [`log_internal_errors`] and nowhere else.
#[derive(Debug, Clone)]
pub struct InternalCause(pub Arc<str>);

/// The 500 envelope for an internal fault, carrying its cause for the log.
pub fn internal_error(cause: &(dyn std::fmt::Debug + Send + Sync)) -> Response {
    let mut response = ApiError::internal().into_response();
    response
        .extensions_mut()
        .insert(InternalCause(format!("{cause:?}").into()));
    response
}

async fn log_internal_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        tracing::error!(cause = %cause, "internal error");
    }
    response
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    metrics::gauge!("http_requests_in_flight").increment(1.0);
    let response = next.run(req).await;
    metrics::gauge!("http_requests_in_flight").decrement(1.0);
    let status = response.status().as_u16().to_string();
    metrics::histogram!("http_request_duration_seconds", "method" => method.clone(), "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("http_requests_total", "method" => method, "route" => route, "status" => status)
        .increment(1);
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The panic message was already printed by the panic hook; say nothing of it here.
    ApiError::internal().into_response()
}

/// Wraps a service's router: envelopes for unknown routes and methods, request metrics,
/// a trace span per request (path only: query strings may carry tokens), one place that
/// logs internal errors, and panics answered with a 500 envelope instead of a dropped
/// connection.
pub fn finish(router: Router) -> Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(log_internal_errors))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(middleware::from_fn(record_metrics))
        .layer(CatchPanicLayer::custom(panic_response))
}
