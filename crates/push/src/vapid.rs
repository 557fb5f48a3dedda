//! VAPID (RFC 8292): the key that identifies this server to push services, and the signed
//! token each push carries.
//!
//! Browsers bind a subscription to the public key the page subscribed with; a push signed
//! with another key is refused (403). So the key is made once and kept: `banter serve` keeps
//! it in its data directory, the other commands take it from `BANTER_VAPID_PRIVATE_KEY`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair,
};
use web_push_native::jwt_simple::claims::Claims;

/// How long a push's token is valid. RFC 8292 allows at most 24 hours; push services refuse
/// longer ones.
pub const TOKEN_VALIDITY: Duration = Duration::from_secs(12 * 60 * 60);

/// The server's P-256 key pair. Cloning shares it.
#[derive(Clone)]
pub struct VapidKey {
    pair: Arc<ES256KeyPair>,
    /// The public key as browsers take it: uncompressed point, base64url without padding.
    public: String,
}

/// A private key that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("the VAPID private key must be a P-256 private key, 32 bytes in base64url: {0}")]
pub struct BadKey(String);

impl fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VapidKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl VapidKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self::of(ES256KeyPair::generate())
    }

    fn of(pair: ES256KeyPair) -> Self {
        let public = URL_SAFE_NO_PAD.encode(pair.public_key().public_key().to_bytes_uncompressed());
        Self {
            pair: Arc::new(pair),
            public,
        }
    }

    /// The key a [`VapidKey::private_base64`] wrote (padding and surrounding space tolerated).
    pub fn from_private_base64(text: &str) -> Result<Self, BadKey> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim().trim_end_matches('='))
            .map_err(|e| BadKey(e.to_string()))?;
        if bytes.len() != 32 {
            return Err(BadKey(format!("{} bytes", bytes.len())));
        }
        ES256KeyPair::from_bytes(&bytes)
            .map(Self::of)
            .map_err(|e| BadKey(e.to_string()))
    }

    /// The private scalar, base64url: what the key file and `BANTER_VAPID_PRIVATE_KEY` hold.
    pub fn private_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.to_bytes())
    }

    /// The public key, base64url of the uncompressed point: `applicationServerKey` for
    /// `pushManager.subscribe` and `GET /api/v1/push/key`.
    pub fn public_base64(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header of a push to a push service at `origin` (scheme, host and
    /// port of the endpoint: the token's audience), naming `subject` (a `mailto:` or
    /// `https:` contact) as who to reach about this server.
    pub fn authorization(&self, origin: &str, subject: &str) -> Result<String, BadKey> {
        let claims = Claims::create(TOKEN_VALIDITY.into())
            .with_audience(origin)
            .with_subject(subject);
        let token = self.pair.sign(claims).map_err(|e| BadKey(e.to_string()))?;
        Ok(format!("vapid t={token}, k={}", self.public))
    }
}

/// Checks a public key as `GET /api/v1/push/key` hands it out (`BANTER_VAPID_PUBLIC_KEY` of
/// a gateway): an uncompressed P-256 point in base64url. Returns it without padding.
pub fn check_public_base64(text: &str) -> Result<String, BadKey> {
    let text = text.trim().trim_end_matches('=');
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| BadKey(e.to_string()))?;
    if bytes.len() != 65 || web_push_native::p256::PublicKey::from_sec1_bytes(&bytes).is_err() {
        return Err(BadKey("not an uncompressed P-256 public key".into()));
    }
    Ok(text.to_owned())
}

/// The origin of a URL as RFC 8292 wants it for `aud`: scheme, host, and the port when it is
/// not the scheme's default.
pub fn origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    use super::*;
    use web_push_native::jwt_simple::algorithms::ES256PublicKey;
    use web_push_native::jwt_simple::claims::NoCustomClaims;
    use web_push_native::jwt_simple::common::VerificationOptions;

    #[test]
    fn the_key_round_trips_through_its_text() {
        let key = VapidKey::generate();
        let again = VapidKey::from_private_base64(&key.private_base64()).expect("parses");
        assert_eq!(key.public_base64(), again.public_base64());
        let public = URL_SAFE_NO_PAD.decode(key.public_base64()).expect("b64");
        assert_eq!(public.len(), 65, "an uncompressed P-256 point");
        assert_eq!(public[0], 4);
        for bad in [
            "",
            "not base64!",
            "AAAA",
            &URL_SAFE_NO_PAD.encode([0u8; 32]),
        ] {
            assert!(VapidKey::from_private_base64(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_token_names_the_push_service_origin_expires_within_a_day_and_says_who_we_are() {
        let key = VapidKey::generate();
        let endpoint = url::Url::parse("http://127.0.0.1:8443/push/abc?x=1").expect("url");
        assert_eq!(origin(&endpoint), "http://127.0.0.1:8443");
        let header = key
            .authorization(&origin(&endpoint), "mailto:ops@example.com")
            .expect("signs");
        let (token, k) = header
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split_once(", k="))
            .expect("vapid t=…, k=…");
        assert_eq!(k, key.public_base64());
        let public = ES256PublicKey::from_bytes(&URL_SAFE_NO_PAD.decode(k).expect("b64"))
            .expect("public key");
        let options = VerificationOptions {
            allowed_audiences: Some(["http://127.0.0.1:8443".to_owned()].into()),
            ..VerificationOptions::default()
        };
        let claims = public
            .verify_token::<NoCustomClaims>(token, Some(options))
            .expect("verifies with the public key, for that audience");
        assert_eq!(claims.subject.as_deref(), Some("mailto:ops@example.com"));
        let now = web_push_native::jwt_simple::prelude::Clock::now_since_epoch();
        let exp = claims.expires_at.expect("exp");
        assert!(exp > now, "not expired");
        assert!(exp - now <= web_push_native::jwt_simple::prelude::Duration::from_hours(24));
        // Another key's token does not verify.
        let other = VapidKey::generate()
            .authorization("http://127.0.0.1:8443", "mailto:ops@example.com")
            .expect("signs");
        let other_token = other
            .strip_prefix("vapid t=")
            .and_then(|r| r.split_once(", k="))
            .expect("shape")
            .0;
        assert!(public
            .verify_token::<NoCustomClaims>(other_token, None)
            .is_err());
        // Nor does this token for another audience.
        let elsewhere = VerificationOptions {
            allowed_audiences: Some(["https://push.example.com".to_owned()].into()),
            ..VerificationOptions::default()
        };
        assert!(public
            .verify_token::<NoCustomClaims>(token, Some(elsewhere))
            .is_err());
    }
}
