//! A browser's push subscription, checked at the edge: where to POST (its push service's
//! endpoint) and the keys its payloads are encrypted to.

use std::net::IpAddr;

use banter_core::ValidationError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use url::Url;
use web_push_native::p256::PublicKey;

/// Endpoints longer than this are refused (real ones are a few hundred characters).
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// A `PushSubscription` as a browser's `toJSON()` gives it.
#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionJson {
    pub endpoint: String,
    pub keys: KeysJson,
    /// Browsers send it (mostly `null`); banter does not use it.
    #[serde(default, rename = "expirationTime")]
    pub expiration_time: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeysJson {
    pub p256dh: String,
    pub auth: String,
}

/// Origins (`http://host:port`) whose plain-HTTP endpoints are accepted: a push service
/// stand-in on loopback in tests. Everything else must be `https://`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsecureOrigins(Vec<String>);

impl InsecureOrigins {
    /// Parses the comma list of `BANTER_PUSH_INSECURE_ORIGINS`.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut origins = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let url = Url::parse(item).map_err(|e| format!("{item:?}: {e}"))?;
            if url.scheme() != "http" || url.host_str().is_none() {
                return Err(format!("{item:?}: must be http://host:port"));
            }
            origins.push(url.origin().ascii_serialization());
        }
        Ok(Self(origins))
    }

    pub(crate) fn allows(&self, url: &Url) -> bool {
        let origin = url.origin().ascii_serialization();
        self.0.contains(&origin)
    }
}

/// A subscription that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub endpoint: Url,
    /// The browser's P-256 key, uncompressed, as base64url (what it sent, normalized).
    pub p256dh: String,
    /// Its 16-byte authentication secret, as base64url.
    pub auth: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ValidationError {
    ValidationError::new(field, message)
}

fn decode(field: &'static str, text: &str) -> Result<Vec<u8>, ValidationError> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| invalid(field, "must be base64url"))
}

impl Subscription {
    /// Checks a subscription: an `https://` endpoint (or one on an allowed insecure origin)
    /// that is not an address on this machine or its private network, a P-256 public key,
    /// and a 16-byte secret.
    pub fn parse(
        json: &SubscriptionJson,
        insecure: &InsecureOrigins,
    ) -> Result<Self, ValidationError> {
        Ok(Self {
            endpoint: Self::endpoint(&json.endpoint, insecure)?,
            p256dh: Self::p256dh(&json.keys.p256dh)?,
            auth: Self::auth(&json.keys.auth)?,
        })
    }

    /// Checks an endpoint on its own (what `DELETE` names).
    pub fn endpoint(text: &str, insecure: &InsecureOrigins) -> Result<Url, ValidationError> {
        const FIELD: &str = "endpoint";
        if text.is_empty() || text.len() > MAX_ENDPOINT_LEN {
            return Err(invalid(
                FIELD,
                format!("must be a URL of 1 to {MAX_ENDPOINT_LEN} characters"),
            ));
        }
        let url = Url::parse(text).map_err(|_| invalid(FIELD, "must be a URL"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(FIELD, "may not carry a user name or password"));
        }
        let Some(host) = url.host() else {
            return Err(invalid(FIELD, "must name a host"));
        };
        if insecure.allows(&url) {
            return Ok(url);
        }
        if url.scheme() != "https" {
            return Err(invalid(FIELD, "must be an https:// URL"));
        }
        // The server POSTs to whatever is registered: not to itself or its own network.
        let ip = match host {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    return Err(invalid(FIELD, "must be a push service, not this machine"));
                }
                None
            }
        };
        if ip.is_some_and(|ip| !is_public(ip)) {
            return Err(invalid(
                FIELD,
                "must be a push service, not a private address",
            ));
        }
        Ok(url)
    }

    fn p256dh(text: &str) -> Result<String, ValidationError> {
        const FIELD: &str = "keys.p256dh";
        let bytes = decode(FIELD, text)?;
        if bytes.len() != 65 || PublicKey::from_sec1_bytes(&bytes).is_err() {
            return Err(invalid(
                FIELD,
                "must be an uncompressed P-256 public key (65 bytes)",
            ));
        }
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    fn auth(text: &str) -> Result<String, ValidationError> {
        const FIELD: &str = "keys.auth";
        let bytes = decode(FIELD, text)?;
        if bytes.len() != 16 {
            return Err(invalid(FIELD, "must be 16 bytes"));
        }
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| !is_public(IpAddr::V4(v4))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;
    use web_push_native::p256::SecretKey;

    fn keys() -> (String, String) {
        let secret =
            SecretKey::random(&mut web_push_native::p256::elliptic_curve::rand_core::OsRng);
        let public = secret.public_key().to_encoded_point(false);
        (
            URL_SAFE_NO_PAD.encode(public.as_bytes()),
            URL_SAFE_NO_PAD.encode([7u8; 16]),
        )
    }

    fn json(endpoint: &str, p256dh: &str, auth: &str) -> SubscriptionJson {
        SubscriptionJson {
            endpoint: endpoint.into(),
            keys: KeysJson {
                p256dh: p256dh.into(),
                auth: auth.into(),
            },
            expiration_time: None,
        }
    }

    #[test]
    fn a_browser_subscription_passes_and_bad_parts_say_which() {
        let (p, a) = keys();
        let none = InsecureOrigins::default();
        let ok = Subscription::parse(
            &json("https://fcm.googleapis.com/fcm/send/abc:def", &p, &a),
            &none,
        )
        .expect("valid");
        assert_eq!(ok.endpoint.host_str(), Some("fcm.googleapis.com"));
        // Padded base64 is normalized.
        let padded = format!("{a}==");
        assert_eq!(
            Subscription::parse(&json("https://push.example/x", &p, &padded), &none)
                .expect("padded")
                .auth,
            a
        );
        let long = format!("https://push.example/{}", "x".repeat(MAX_ENDPOINT_LEN));
        let cases: Vec<(SubscriptionJson, &str)> = vec![
            (json("", &p, &a), "endpoint"),
            (json("not a url", &p, &a), "endpoint"),
            (json(&long, &p, &a), "endpoint"),
            (json("http://push.example/x", &p, &a), "endpoint"),
            (json("ftp://push.example/x", &p, &a), "endpoint"),
            (json("https://user:pw@push.example/x", &p, &a), "endpoint"),
            (json("https://127.0.0.1/x", &p, &a), "endpoint"),
            (json("https://10.1.2.3/x", &p, &a), "endpoint"),
            (json("https://192.168.0.1/x", &p, &a), "endpoint"),
            (json("https://169.254.169.254/latest", &p, &a), "endpoint"),
            (json("https://[::1]/x", &p, &a), "endpoint"),
            (json("https://[::ffff:127.0.0.1]/x", &p, &a), "endpoint"),
            (json("https://localhost/x", &p, &a), "endpoint"),
            (json("https://push.example/x", "AAAA", &a), "keys.p256dh"),
            (json("https://push.example/x", "!!", &a), "keys.p256dh"),
            (
                json(
                    "https://push.example/x",
                    &URL_SAFE_NO_PAD.encode([4u8; 65]),
                    &a,
                ),
                "keys.p256dh",
            ),
            (json("https://push.example/x", &p, "AAAA"), "keys.auth"),
            (json("https://push.example/x", &p, ""), "keys.auth"),
        ];
        for (bad, field) in cases {
            let e = Subscription::parse(&bad, &none).expect_err(&bad.endpoint);
            assert_eq!(e.field, field, "{bad:?}");
        }
    }

    #[test]
    fn plain_http_only_on_an_allowed_origin() {
        let (p, a) = keys();
        let allowed = InsecureOrigins::parse("http://127.0.0.1:9999, http://localhost:1234")
            .expect("origins");
        for good in ["http://127.0.0.1:9999/push/1", "http://localhost:1234/p"] {
            assert!(
                Subscription::parse(&json(good, &p, &a), &allowed).is_ok(),
                "{good}"
            );
        }
        for bad in ["http://127.0.0.1:9998/push/1", "http://127.0.0.2:9999/push"] {
            assert!(
                Subscription::parse(&json(bad, &p, &a), &allowed).is_err(),
                "{bad}"
            );
        }
        assert!(InsecureOrigins::parse("https://x:1").is_err());
        assert!(InsecureOrigins::parse("nonsense").is_err());
        assert_eq!(
            InsecureOrigins::parse("").expect("empty"),
            InsecureOrigins::default()
        );
    }
}
