//! Access and refresh tokens.
//!
//! Access tokens are HS256 JWTs carrying `sub` (user id), `name` (username), `iat`, `nbf`,
//! `exp` and `jti`. Verification pins HS256: a token signed with anything else, or with
//! `alg: none`, is refused, as is one missing a required claim. They live 15 minutes by
//! default; that short life is what bounds a stolen one. Only a deactivation revokes them
//! early: [`TokenKeys::standings`] lists whose tokens are refused.
//!
//! Refresh tokens are 256 random bits, shown to the client once and stored only as a SHA-256
//! digest: a leaked database does not hand out sessions. Each use rotates them (see
//! `Store::rotate_refresh_token`).

use std::time::Duration;

use banter_core::{UserId, Username};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::standing::Standings;
use crate::Error;

/// The shortest JWT secret accepted: HS256 is only as strong as its key, and a short
/// human-chosen secret can be brute-forced offline from any one token.
pub const MIN_SECRET_BYTES: usize = 32;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id, as a string (RFC 7519 makes `sub` a string).
    pub sub: String,
    /// The username, so that gateways need no database lookup per connection.
    pub name: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// A unique id per token.
    pub jti: String,
}

impl Claims {
    pub fn user_id(&self) -> Result<UserId, Error> {
        self.sub
            .parse()
            .map(UserId)
            .map_err(|_| Error::Unauthorized("the token's subject is not a user id"))
    }
}

/// A freshly signed access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: String,
    pub expires_in: u64,
}

/// Keys and lifetimes for tokens. Build once and share behind an `Arc`.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Accounts whose tokens are refused although their signature is good.
    pub standings: Standings,
    /// Where bot tokens are looked up (see [`crate::bot`]); `None`: they are refused.
    pub(crate) bots: Option<banter_store::DynStore>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("keys", &"[redacted]")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .finish()
    }
}

impl TokenKeys {
    /// Refuses a secret shorter than [`MIN_SECRET_BYTES`].
    pub fn new(
        secret: &SecretString,
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> Result<Self, String> {
        let secret = secret.expose_secret().as_bytes();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the JWT secret must be at least {MIN_SECRET_BYTES} bytes long \
                 (generate one with: openssl rand -base64 48)"
            ));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "nbf", "sub", "jti"]);
        validation.validate_nbf = true;
        // Our own processes share clocks closely enough; a few seconds absorbs skew between
        // machines without stretching a token's life noticeably.
        validation.leeway = 5;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
            refresh_ttl,
            standings: Standings::default(),
            bots: None,
        })
    }

    /// Signs an access token for `user`.
    pub fn issue(&self, id: UserId, name: &Username) -> Result<AccessToken, Error> {
        let now = chrono::Utc::now().timestamp();
        let ttl = self.access_ttl.as_secs();
        let claims = Claims {
            sub: id.to_string(),
            name: name.to_string(),
            iat: now,
            nbf: now,
            exp: now + i64::try_from(ttl).unwrap_or(i64::MAX / 2),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("signing a token: {e}")))?;
        Ok(AccessToken {
            token,
            expires_in: ttl,
        })
    }

    /// Checks signature, algorithm and times, then the account's standing;
    /// `TokenExpired` tells a client to refresh, `AccountDisabled` that it is no use.
    pub fn verify(&self, token: &str) -> Result<Claims, Error> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => Error::TokenExpired,
                ErrorKind::ImmatureSignature => Error::Unauthorized("the token is not valid yet"),
                _ => Error::Unauthorized("the token is not valid"),
            })?;
        match self.standings.refuses(claims.user_id()?, claims.iat) {
            None => Ok(claims),
            Some(true) => Err(Error::AccountDisabled),
            Some(false) => Err(Error::Unauthorized(
                "this session was ended by an admin; log in again",
            )),
        }
    }
}

/// A new refresh token: what the client gets, and the digest the store keeps.
#[derive(Debug)]
pub struct RefreshSecret {
    pub token: String,
    pub digest: Vec<u8>,
}

impl RefreshSecret {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let digest = digest(&token);
        Self { token, digest }
    }
}

/// The digest under which a refresh token is stored.
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn keys() -> TokenKeys {
        TokenKeys::new(
            &SecretString::from(SECRET),
            Duration::from_secs(900),
            Duration::from_secs(86400),
        )
        .expect("keys")
    }

    fn alice() -> Username {
        Username::parse("alice").expect("valid")
    }

    fn claims(exp_offset: i64, nbf_offset: i64) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            sub: "1".into(),
            name: "alice".into(),
            iat: now,
            nbf: now + nbf_offset,
            exp: now + exp_offset,
            jti: "j".into(),
        }
    }

    #[test]
    fn round_trips_and_carries_the_required_claims() {
        let k = keys();
        let t = k.issue(UserId(7), &alice()).expect("issue");
        assert_eq!(t.expires_in, 900);
        let c = k.verify(&t.token).expect("verify");
        assert_eq!(c.user_id().expect("id"), UserId(7));
        assert_eq!(c.name, "alice");
        assert_eq!(c.exp - c.iat, 900);
        assert!(!c.jti.is_empty());
    }

    #[test]
    fn refuses_the_tokens_of_a_deactivated_account_and_those_it_had_then() {
        let k = keys();
        let old = k.issue(UserId(7), &alice()).expect("issue").token;
        let at = chrono::Utc::now();
        k.standings.heard(banter_core::Standing {
            user: UserId(7),
            username: alice(),
            deactivated: true,
            revoked_before: Some(at),
        });
        assert!(matches!(k.verify(&old), Err(Error::AccountDisabled)));
        k.standings.heard(banter_core::Standing {
            user: UserId(7),
            username: alice(),
            deactivated: false,
            revoked_before: Some(at - chrono::Duration::seconds(5)),
        });
        let old = k.issue(UserId(7), &alice()).expect("issue").token;
        assert!(k.verify(&old).is_ok(), "issued after the revocation");
        let before = encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                iat: (at - chrono::Duration::seconds(60)).timestamp(),
                nbf: (at - chrono::Duration::seconds(60)).timestamp(),
                sub: "7".into(),
                ..claims(600, 0)
            },
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encode");
        assert!(matches!(k.verify(&before), Err(Error::Unauthorized(_))));
        assert!(k
            .issue(UserId(8), &alice())
            .is_ok_and(|t| k.verify(&t.token).is_ok()));
    }

    #[test]
    fn refuses_short_secrets() {
        let short = SecretString::from("too-short");
        assert!(TokenKeys::new(&short, Duration::from_secs(1), Duration::from_secs(1)).is_err());
    }

    #[test]
    fn refuses_other_algorithms_and_alg_none() {
        let k = keys();
        // Same secret, but HS512: the algorithm is pinned.
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &claims(600, 0),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encode");
        assert!(matches!(k.verify(&hs512), Err(Error::Unauthorized(_))));
        // alg none, built by hand since no library signs it.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(600, 0)).expect("json"));
        let none = format!("{header}.{payload}.");
        assert!(matches!(k.verify(&none), Err(Error::Unauthorized(_))));
    }

    #[test]
    fn refuses_tampered_expired_immature_and_foreign_tokens() {
        let k = keys();
        let good = k.issue(UserId(1), &alice()).expect("issue").token;
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut forged = claims(600, 0);
        forged.sub = "2".into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        assert!(matches!(
            k.verify(&parts.join(".")),
            Err(Error::Unauthorized(_))
        ));

        let key = EncodingKey::from_secret(SECRET.as_bytes());
        let header = Header::new(Algorithm::HS256);
        let expired = encode(&header, &claims(-60, -120), &key).expect("encode");
        assert!(matches!(k.verify(&expired), Err(Error::TokenExpired)));
        let immature = encode(&header, &claims(600, 300), &key).expect("encode");
        assert!(matches!(k.verify(&immature), Err(Error::Unauthorized(_))));

        let other = EncodingKey::from_secret(b"another-secret-another-secret-xx");
        let foreign = encode(&header, &claims(600, 0), &other).expect("encode");
        assert!(matches!(k.verify(&foreign), Err(Error::Unauthorized(_))));

        assert!(k.verify("not a jwt").is_err());
        assert!(k.verify("").is_err());
    }

    #[test]
    fn refuses_tokens_missing_required_claims() {
        #[derive(Serialize)]
        struct NoJti {
            sub: String,
            iat: i64,
            nbf: i64,
            exp: i64,
            name: String,
        }
        let now = chrono::Utc::now().timestamp();
        let t = encode(
            &Header::new(Algorithm::HS256),
            &NoJti {
                sub: "1".into(),
                iat: now,
                nbf: now,
                exp: now + 60,
                name: "alice".into(),
            },
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encode");
        assert!(keys().verify(&t).is_err());
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_as_digests() {
        let a = RefreshSecret::generate();
        let b = RefreshSecret::generate();
        assert_ne!(a.token, b.token);
        assert_eq!(a.digest, digest(&a.token));
        assert_eq!(a.digest.len(), 32);
        assert_eq!(a.token.len(), 43);
    }
}
