//! `banter serve`'s data directory: the SQLite file, and the JWT secret and VAPID key it
//! generated.
//!
//! Secrets are generated on first start and kept, so tokens and push subscriptions survive a
//! restart; their files are readable by their owner only.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use rand::RngCore;
use secrecy::SecretString;

#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// Creates the directory if needed.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(path)
            .with_context(|| format!("creating the data directory {}", path.display()))?;
        let path = path
            .canonicalize()
            .with_context(|| format!("resolving {}", path.display()))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.path.join("banter.db").display())
    }

    /// The JWT secret kept in `jwt-secret`, generated (384 random bits) on first use.
    pub fn jwt_secret(&self) -> anyhow::Result<SecretString> {
        let file = self.path.join("jwt-secret");
        match fs::read_to_string(&file) {
            Ok(s) if !s.trim().is_empty() => return Ok(SecretString::from(s.trim().to_owned())),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        }
        let mut bytes = [0u8; 48];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = base64::engine::general_purpose::STANDARD.encode(bytes);
        write_private(&file, &secret)?;
        tracing::info!(path = %file.display(), "generated a new JWT secret");
        Ok(SecretString::from(secret))
    }
}

impl DataDir {
    /// The VAPID key kept in `vapid-key`, made on first use: browsers' push subscriptions are
    /// bound to it, so it must outlive restarts like the JWT secret.
    pub fn vapid_key(&self) -> anyhow::Result<banter_push::VapidKey> {
        let file = self.path.join("vapid-key");
        match fs::read_to_string(&file) {
            Ok(s) if !s.trim().is_empty() => {
                return banter_push::VapidKey::from_private_base64(&s)
                    .with_context(|| format!("reading {}", file.display()));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        }
        let key = banter_push::VapidKey::generate();
        write_private(&file, &key.private_base64())?;
        tracing::info!(path = %file.display(), "generated a new VAPID key for push notifications");
        Ok(key)
    }
}

/// Writes a secret to a file only its owner may read, durably.
fn write_private(file: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(file)
        .with_context(|| format!("writing {}", file.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn generates_the_secret_once_and_keeps_it_private() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::open(&tmp.path().join("data")).expect("open");
        let first = dir.jwt_secret().expect("secret");
        let again = dir.jwt_secret().expect("secret");
        assert_eq!(first.expose_secret(), again.expose_secret());
        assert!(first.expose_secret().len() >= 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("jwt-secret"))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(dir.sqlite_url().starts_with("sqlite:///"));
    }

    #[test]
    fn makes_the_vapid_key_once_and_keeps_it_private() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::open(tmp.path()).expect("open");
        let first = dir.vapid_key().expect("key");
        let again = dir.vapid_key().expect("key");
        assert_eq!(first.public_base64(), again.public_base64());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("vapid-key"))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::write(dir.path().join("vapid-key"), "garbage").expect("write");
        assert!(
            dir.vapid_key().is_err(),
            "a broken key is an error, not replaced"
        );
    }
}
