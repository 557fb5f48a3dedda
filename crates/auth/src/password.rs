//! Password hashing with argon2id at OWASP's recommended cost (19 MiB, 2 passes, 1 lane).
//!
//! Each hash takes tens of milliseconds of CPU and 19 MiB of memory, so it runs on tokio's
//! blocking threads (never on the async workers, which must keep serving sockets) behind a
//! semaphore: at most `max_concurrent` hashes at once bounds both CPU and memory, and the rest
//! of a login storm queues instead of thrashing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use banter_core::Password;
use rand::rngs::OsRng;
use tokio::sync::Semaphore;

use crate::Error;

/// OWASP Password Storage Cheat Sheet, argon2id: m=19456 KiB, t=2, p=1.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes and verifies passwords on a bounded pool. Share it behind an `Arc`.
#[derive(Debug)]
pub struct Hasher {
    /// Permits = hashes allowed to run at once. A tokio semaphore because waiters are async
    /// tasks that must not block a worker thread while they queue.
    permits: Semaphore,
    /// A hash of a random password, verified against when the user does not exist, so that
    /// "no such user" costs the same time as "wrong password" and does not reveal which.
    dummy_hash: String,
    /// Hashes and verifications run to completion, so tests can see that a login of an
    /// unknown user did the same work as one with a wrong password.
    completed: AtomicU64,
}

impl Hasher {
    /// `max_concurrent` is usually the number of cores.
    pub fn new(max_concurrent: usize) -> Result<Self, Error> {
        let salt = SaltString::generate(&mut OsRng);
        let random = SaltString::generate(&mut OsRng);
        let dummy_hash = argon2()
            .hash_password(random.as_str().as_bytes(), &salt)
            .map_err(|e| Error::Internal(format!("argon2: {e}")))?
            .to_string();
        Ok(Self {
            permits: Semaphore::new(max_concurrent.max(1)),
            dummy_hash,
            completed: AtomicU64::new(0),
        })
    }

    /// How many hashes and verifications this hasher has completed.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) of a new password.
    pub async fn hash(&self, password: Password) -> Result<String, Error> {
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2()
                .hash_password(password.expose().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| Error::Internal(format!("argon2: {e}")))
        })
        .await?
    }

    /// Whether `password` matches `stored`; with no stored hash (unknown user) it verifies
    /// against a dummy hash and answers false, taking the same time.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, Error> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        self.run(move || {
            let Ok(parsed) = PasswordHash::new(&hash) else {
                // A hash we cannot read (e.g. a seed user's, in another scheme) matches nothing.
                tracing::warn!("stored password hash is not a PHC string; refusing login");
                return false;
            };
            // Verify with the parameters stored in the hash, so raising the cost later still
            // verifies old hashes.
            let ok = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            ok && known
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        metrics::gauge!("banter_password_hash_waiting").increment(1.0);
        let permit = self.permits.acquire().await;
        metrics::gauge!("banter_password_hash_waiting").decrement(1.0);
        let _permit = permit.map_err(|_| Error::Internal("hasher closed".into()))?;
        let started = Instant::now();
        let out = tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Internal(format!("hashing task failed: {e}")))?;
        metrics::histogram!("banter_password_hash_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        self.completed.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Password {
        Password::parse(s).expect("valid password")
    }

    #[tokio::test]
    async fn hashes_with_owasp_argon2id_and_verifies() {
        let h = Hasher::new(2).expect("hasher");
        let hash = h.hash(pw("correct horse")).await.expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(h
            .verify("correct horse".into(), Some(hash.clone()))
            .await
            .expect("verify"));
        assert!(!h
            .verify("wrong horse".into(), Some(hash.clone()))
            .await
            .expect("verify"));
        let again = h.hash(pw("correct horse")).await.expect("hash");
        assert_ne!(hash, again, "each hash has its own salt");
    }

    #[tokio::test]
    async fn unknown_users_cost_a_full_verification_and_never_match() {
        let h = Hasher::new(1).expect("hasher");
        let real = h.hash(pw("the password")).await.expect("hash");
        let before = h.completed();
        let wrong = h.verify("wrong password".into(), Some(real)).await;
        let unknown = h.verify("wrong password".into(), None).await;
        assert!(!wrong.expect("verify") && !unknown.expect("verify"));
        assert_eq!(h.completed(), before + 2, "both ran argon2 once");
        let unreadable = h
            .verify("anything".into(), Some("$2a$10$notargon".into()))
            .await;
        assert!(!unreadable.expect("verify"));
    }
}
