//! Access tokens come from anyone: verifying one never panics, and nothing the fuzzer makes
//! without the key passes (a pass would be a forgery).

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use banter_auth::TokenKeys;
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static TokenKeys {
    static KEYS: OnceLock<TokenKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let secret = secrecy::SecretString::from("a-fuzzing-secret-that-is-long-enough-0123");
        TokenKeys::new(&secret, Duration::from_secs(900), Duration::from_secs(3600)).expect("keys")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert!(
        keys().verify(text).is_err(),
        "a token forged without the key passed"
    );
});
