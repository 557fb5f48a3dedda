//! Which web pages may open a WebSocket to this gateway.
//!
//! Browsers send the page's `Origin` with every WebSocket upgrade, and unlike `fetch` they
//! apply no same-origin rule to WebSockets: without a check, any site a user visits could
//! open a connection in their name if it got hold of a token. By default only pages of this
//! gateway's own origin (the `Origin`'s host and port equal the request's `Host`) may;
//! `BANTER_WS_ORIGINS` adds others, and `*` allows every page. Clients that are not browsers
//! send no `Origin` and are not affected.

use axum::http::{HeaderMap, Uri};

/// The allowed origins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WsOrigins {
    /// Any page may connect (`*`).
    pub any: bool,
    /// Origins allowed besides the gateway's own, as `scheme://host[:port]`, lower case.
    pub allowed: Vec<String>,
}

impl WsOrigins {
    /// Parses a list of origins (`https://chat.example.com`) or `*`.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        let mut origins = Self::default();
        for item in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            if item == "*" {
                origins.any = true;
                continue;
            }
            let uri: Uri = item
                .parse()
                .map_err(|e| format!("not an origin ({item}): {e}"))?;
            match (uri.scheme_str(), uri.authority(), uri.path()) {
                (Some(scheme @ ("http" | "https")), Some(authority), "" | "/") => origins
                    .allowed
                    .push(format!("{scheme}://{authority}").to_ascii_lowercase()),
                _ => return Err(format!("an origin is scheme://host[:port], not {item}")),
            }
        }
        Ok(origins)
    }

    /// Whether the request's page (if it came from one) may connect.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
            return true;
        };
        if self.any {
            return true;
        }
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.trim().to_ascii_lowercase();
        if self.allowed.contains(&origin) {
            return true;
        }
        // Same origin: the page was served by this host. The scheme is not compared, as a
        // proxy in front may have ended TLS; host and port are.
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_ascii_lowercase);
        let page_authority = origin
            .parse::<Uri>()
            .ok()
            .and_then(|u| u.authority().map(|a| a.as_str().to_owned()));
        matches!((host, page_authority), (Some(h), Some(p)) if h == p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", host.parse().unwrap());
        if let Some(o) = origin {
            h.insert("origin", o.parse().unwrap());
        }
        h
    }

    #[test]
    fn own_pages_and_listed_ones_may_connect_others_not() {
        let origins = WsOrigins::parse(&["https://Chat.Example.com".into()]).unwrap();
        assert!(
            origins.admits(&headers(None, "gw:8081")),
            "no Origin: not a browser"
        );
        assert!(origins.admits(&headers(Some("http://gw:8081"), "gw:8081")));
        assert!(origins.admits(&headers(Some("https://GW:8081"), "gw:8081")));
        assert!(origins.admits(&headers(Some("https://chat.example.com"), "gw:8081")));
        assert!(!origins.admits(&headers(Some("https://evil.example"), "gw:8081")));
        assert!(!origins.admits(&headers(Some("http://gw:9999"), "gw:8081")));
        assert!(!origins.admits(&headers(Some("null"), "gw:8081")));
        let any = WsOrigins::parse(&["*".into()]).unwrap();
        assert!(any.admits(&headers(Some("https://evil.example"), "gw:8081")));
    }

    #[test]
    fn a_list_item_must_be_an_origin() {
        for bad in ["chat.example.com", "ftp://x", "https://x/path"] {
            assert!(WsOrigins::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
