//! `banter serve`'s data directory: the SQLite file and the JWT secret it generated.
//!
//! The secret is generated on first start and kept, so tokens survive a restart; the file is
//! readable by its owner only.

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
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options
            .open(&file)
            .with_context(|| format!("writing {}", file.display()))?;
        f.write_all(secret.as_bytes())?;
        f.sync_all()?;
        tracing::info!(path = %file.display(), "generated a new JWT secret");
        Ok(SecretString::from(secret))
    }
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
}
