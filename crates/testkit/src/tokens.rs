//! Tokens for tests: reading them out of a login, and forging them on purpose.

use serde_json::{json, Value};

use crate::TEST_JWT_SECRET;

/// The access token of a login's `data`.
pub fn token_of(login: &Value) -> String {
    login["token"]
        .as_str()
        .expect("a token in the login")
        .to_owned()
}

/// Unix time now, in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
        .try_into()
        .expect("seconds fit in i64")
}

/// The claims banter puts in a token, for the user of a login's `data`, issued `age`
/// seconds ago and expiring `exp_in` seconds from now (negative: already expired).
pub fn claims_for(login: &Value, age: i64, exp_in: i64) -> Value {
    let now = unix_now();
    json!({
        "sub": login["user"]["id"].as_i64().expect("a user id").to_string(),
        "name": login["user"]["username"],
        "iat": now - age,
        "nbf": now - age,
        "exp": now + exp_in,
        "jti": "forged-by-a-test",
    })
}

/// Signs `claims` with `alg` and `secret`.
pub fn sign(claims: &Value, alg: jsonwebtoken::Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign a token")
}

/// A genuine-looking token for the login's user, signed with the test servers' secret.
pub fn forge(login: &Value, age: i64, exp_in: i64) -> String {
    sign(
        &claims_for(login, age, exp_in),
        jsonwebtoken::Algorithm::HS256,
        TEST_JWT_SECRET,
    )
}
