//! The web app at `/` and `/chat` (and `/join/<code>`, an invite link), and the admin page at
//! `/admin`: static files embedded in the binary (or, for working on the app, read from a
//! directory at each request), sent with a strict Content-Security-Policy (no inline script
//! can run, even if some text slipped through), and `/config.json`, which tells the app where
//! the auth API is when it is not on this origin (split deployments).

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../../../web/index.html");
const APP_JS: &str = include_str!("../../../web/app.js");
const CLIENT_JS: &str = include_str!("../../../web/client.js");
const SESSION_JS: &str = include_str!("../../../web/session.js");
const STYLE: &str = include_str!("../../../web/style.css");
const SERVICE_WORKER: &str = include_str!("../../../web/sw.js");
const ADMIN: &str = include_str!("../../../web/admin.html");
const ADMIN_JS: &str = include_str!("../../../web/admin.js");

/// Where the app comes from and what it is told.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// Serve `index.html`, `app.js` and `style.css` from this directory, read at each request,
    /// instead of the copies built into the binary (for working on the app without rebuilds).
    pub dir: Option<PathBuf>,
    /// The auth API's origin as browsers reach it, when it is not this one (e.g.
    /// `https://auth.example.com`); `None`: the same origin as the page.
    pub auth_origin: Option<String>,
}

impl WebConfig {
    /// Checks that `url` is an absolute http(s) origin and keeps just the origin.
    pub fn parse_auth_origin(url: &str) -> Result<String, String> {
        let uri: Uri = url.parse().map_err(|e| format!("not a URL ({url}): {e}"))?;
        match (uri.scheme_str(), uri.authority()) {
            (Some(scheme @ ("http" | "https")), Some(authority)) => {
                Ok(format!("{scheme}://{authority}"))
            }
            _ => Err(format!("must be an http(s) URL with a host: {url}")),
        }
    }

    fn csp(&self) -> String {
        let auth = self
            .auth_origin
            .as_deref()
            .map(|o| format!(" {o}"))
            .unwrap_or_default();
        format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; \
             connect-src 'self' ws: wss:{auth}; img-src 'self' data: blob:; object-src 'none'; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )
    }
}

struct Web {
    config: WebConfig,
    csp: HeaderValue,
    config_json: String,
}

impl Web {
    async fn asset(
        &self,
        name: &str,
        built_in: &'static str,
        content_type: &'static str,
    ) -> Response {
        let body = match &self.config.dir {
            None => built_in.to_owned(),
            Some(dir) => match tokio::fs::read_to_string(dir.join(name)).await {
                Ok(body) => body,
                Err(e) => {
                    tracing::warn!(error = %e, file = name, "web asset not readable");
                    return StatusCode::NOT_FOUND.into_response();
                }
            },
        };
        self.respond(content_type, body)
    }

    fn respond(&self, content_type: &'static str, body: String) -> Response {
        (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CONTENT_SECURITY_POLICY, self.csp.clone()),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
                (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
                (
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            body,
        )
            .into_response()
    }
}

/// A GET handler for one of the app's files.
fn handler(
    web: &Arc<Web>,
    name: &'static str,
    built_in: &'static str,
    content_type: &'static str,
) -> impl Fn() -> futures::future::BoxFuture<'static, Response> + Clone + Send + Sync + 'static {
    let web = web.clone();
    move || {
        let web = web.clone();
        Box::pin(async move { web.asset(name, built_in, content_type).await })
    }
}

/// `/`, `/chat`, `/join/<code>`, `/admin`, their scripts (and `/session.js`), `/style.css`,
/// `/sw.js`, `/config.json`.
pub fn router<S: Clone + Send + Sync + 'static>(config: WebConfig) -> Router<S> {
    let csp = HeaderValue::from_str(&config.csp()).unwrap_or_else(|_| {
        // Only an origin with odd characters could get here; the strict default stands.
        HeaderValue::from_static("default-src 'self'")
    });
    let config_json = serde_json::json!({
        "auth_url": config.auth_origin.clone().unwrap_or_default(),
    })
    .to_string();
    let web = Arc::new(Web {
        config,
        csp,
        config_json,
    });
    let page = handler(&web, "index.html", INDEX, "text/html; charset=utf-8");
    let script = handler(&web, "app.js", APP_JS, "text/javascript; charset=utf-8");
    // The app's reliable client (no DOM), an ES module app.js imports.
    let client = handler(
        &web,
        "client.js",
        CLIENT_JS,
        "text/javascript; charset=utf-8",
    );
    // This browser's sessions (tokens, refresh), an ES module both pages import.
    let session = handler(
        &web,
        "session.js",
        SESSION_JS,
        "text/javascript; charset=utf-8",
    );
    let style = handler(&web, "style.css", STYLE, "text/css; charset=utf-8");
    // At the root, so its scope is the whole app (push notifications open any room).
    let worker = handler(
        &web,
        "sw.js",
        SERVICE_WORKER,
        "text/javascript; charset=utf-8",
    );
    let admin = handler(&web, "admin.html", ADMIN, "text/html; charset=utf-8");
    let admin_js = handler(&web, "admin.js", ADMIN_JS, "text/javascript; charset=utf-8");
    let settings = move || {
        let web = web.clone();
        async move { web.respond("application/json", web.config_json.clone()) }
    };
    Router::new()
        .route("/", get(page.clone()))
        .route("/chat", get(page.clone()))
        // An invite link: the app reads the code from the path.
        .route("/join/{code}", get(page))
        .route("/admin", get(admin))
        .route("/admin.js", get(admin_js))
        .route("/app.js", get(script))
        .route("/client.js", get(client))
        .route("/session.js", get(session))
        .route("/style.css", get(style))
        .route("/sw.js", get(worker))
        .route("/config.json", get(settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auth_origin_is_an_http_origin() {
        assert_eq!(
            WebConfig::parse_auth_origin("https://auth.example.com/api/v1").unwrap(),
            "https://auth.example.com"
        );
        assert_eq!(
            WebConfig::parse_auth_origin("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(WebConfig::parse_auth_origin("auth.example.com").is_err());
        assert!(WebConfig::parse_auth_origin("ftp://x").is_err());
        assert!(WebConfig::parse_auth_origin("https://a b").is_err());
    }

    #[test]
    fn the_policy_lets_the_app_reach_the_auth_origin_and_nothing_else() {
        let config = WebConfig {
            dir: None,
            auth_origin: Some("https://auth.example.com".into()),
        };
        let csp = config.csp();
        assert!(csp.contains("connect-src 'self' ws: wss: https://auth.example.com;"));
        assert!(csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe"));
    }
}
