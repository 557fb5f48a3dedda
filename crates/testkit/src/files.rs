//! Throwaway attachment storage: a directory in a temp dir, or a prefix of its own in the S3
//! server of `scripts/services` (s3s-fs, which keeps objects as files under its root: the
//! prefix's directory is removed on drop, also when the test panics).

use std::collections::HashMap;
use std::path::PathBuf;

use banter_files::Files;

use crate::db::required;

/// Which storage a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Directory,
    S3,
}

/// Storage that exists for one test.
#[derive(Debug)]
pub struct TestFiles {
    /// What `BANTER_FILES` would say.
    pub url: String,
    /// The AWS variables the storage is opened with (empty for a directory).
    pub env: HashMap<String, String>,
    pub files: Files,
    _dir: Option<tempfile::TempDir>,
    /// The prefix's directory in the S3 server's root.
    s3_dir: Option<PathBuf>,
}

impl TestFiles {
    pub fn new(kind: Storage) -> Self {
        match kind {
            Storage::Directory => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("file://{}", dir.path().join("files").display());
                let files = Files::open(&url, &|_| None).expect("a directory store");
                Self {
                    url,
                    env: HashMap::new(),
                    files,
                    _dir: Some(dir),
                    s3_dir: None,
                }
            }
            Storage::S3 => {
                let base = required("BANTER_TEST_S3_URL", "an S3-compatible server");
                let root = required("BANTER_TEST_S3_ROOT", "an S3-compatible server");
                let env = HashMap::from([
                    (
                        "AWS_ACCESS_KEY_ID".to_owned(),
                        required("BANTER_TEST_S3_ACCESS_KEY_ID", "the S3 server's key"),
                    ),
                    (
                        "AWS_SECRET_ACCESS_KEY".to_owned(),
                        required("BANTER_TEST_S3_SECRET_ACCESS_KEY", "the S3 server's key"),
                    ),
                ]);
                let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
                let (bucket_part, query) = base.split_once('?').unwrap_or((&base, ""));
                let bucket = bucket_part
                    .trim_start_matches("s3://")
                    .trim_end_matches('/');
                let url = format!("s3://{bucket}/{prefix}?{query}");
                let files = Files::open(&url, &|k| env.get(k).cloned()).expect("an S3 store");
                Self {
                    url,
                    env,
                    files,
                    _dir: None,
                    s3_dir: Some(PathBuf::from(root).join(bucket).join(prefix)),
                }
            }
        }
    }
}

impl Drop for TestFiles {
    fn drop(&mut self) {
        if let Some(dir) = &self.s3_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
