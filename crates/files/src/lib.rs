//! Where attachments' bytes live, behind one narrow interface ([`Files`]): a directory on this
//! machine (the default of `banter serve`, under its data dir) or S3-compatible object storage
//! that several gateways share. `BANTER_FILES` names it as a URL (see [`Files::open`]).
//!
//! Both are `object_store`'s implementations (its local file system and its S3 client), so
//! the two paths differ only in where the bytes go: a write streams through in parts and
//! becomes visible whole or not at all, a read streams and can take a byte range.
//!
//! Objects are named by [`Key`]: a kind and an id banter made, never a name a user gave, so no
//! input can reach outside the store's directory or bucket prefix.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{GetOptions, GetRange, ObjectStore, WriteMultipart};
use uuid::Uuid;

/// What went wrong with the storage.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("no such object")]
    NotFound,
    /// `BANTER_FILES` names no storage banter can use.
    #[error("BANTER_FILES: {0}")]
    Config(String),
    #[error("file storage: {0}")]
    Storage(#[from] object_store::Error),
}

impl FilesError {
    fn of(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => Self::NotFound,
            e => Self::Storage(e),
        }
    }
}

/// Why a write did not complete: the body's own error (the client went away, the size limit
/// was crossed), or the storage's. Either way nothing was left behind under the key.
#[derive(Debug, thiserror::Error)]
pub enum PutError<E> {
    #[error("{0}")]
    Body(E),
    #[error(transparent)]
    Files(#[from] FilesError),
}

/// The name of an object: what it is and the id of its upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub kind: Kind,
    pub id: Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The bytes as uploaded.
    Upload,
    /// The thumbnail banter made of an image.
    Thumbnail,
}

impl Key {
    pub fn upload(id: Uuid) -> Self {
        Self {
            kind: Kind::Upload,
            id,
        }
    }

    pub fn thumbnail(id: Uuid) -> Self {
        Self {
            kind: Kind::Thumbnail,
            id,
        }
    }

    fn path(&self) -> Path {
        Path::from(self.to_string())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = match self.kind {
            Kind::Upload => "uploads",
            Kind::Thumbnail => "thumbnails",
        };
        write!(f, "{dir}/{}", self.id.simple())
    }
}

/// An object being read: its whole size, the range of it `body` holds, and the bytes.
pub struct Object {
    pub size: u64,
    pub range: Range<u64>,
    pub body: BoxStream<'static, Result<Bytes, FilesError>>,
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// The storage of attachments. Cloning shares it.
#[derive(Clone)]
pub struct Files {
    store: Arc<dyn ObjectStore>,
    /// Where it is, for logs and `/ready` (without credentials).
    place: String,
}

impl fmt::Debug for Files {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Files").field("place", &self.place).finish()
    }
}

impl Files {
    /// Opens the storage `url` names:
    ///
    /// - `file:///absolute/path`: a directory (made when missing);
    /// - `s3://bucket[/prefix]?endpoint=http://host:port&region=us-east-1`: a bucket of
    ///   S3-compatible storage, path-style, credentials from the usual AWS variables
    ///   (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, and
    ///   `AWS_REGION` when the URL has no `region`); without `endpoint`, Amazon S3 itself.
    ///   Plain `http://` endpoints are allowed (a server on the same machine or network).
    ///
    /// `env` looks those variables up (the process's environment, or a test's own).
    pub fn open(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, FilesError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| FilesError::Config(format!("{url:?} is not a URL: {e}")))?;
        match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| FilesError::Config(format!("{url:?} is not a local path")))?;
                Self::directory(&dir)
            }
            "s3" => Self::s3(&parsed, env),
            other => Err(FilesError::Config(format!(
                "unknown scheme {other:?}: use file:///path or s3://bucket?endpoint=..."
            ))),
        }
    }

    /// A directory on this machine, made when missing.
    pub fn directory(dir: &std::path::Path) -> Result<Self, FilesError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            FilesError::Config(format!("cannot make the directory {}: {e}", dir.display()))
        })?;
        let store = LocalFileSystem::new_with_prefix(dir).map_err(FilesError::Storage)?;
        Ok(Self {
            store: Arc::new(store),
            place: format!("file://{}", dir.display()),
        })
    }

    fn s3(url: &url::Url, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, FilesError> {
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| FilesError::Config("s3:// needs a bucket: s3://bucket?...".into()))?;
        let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
        if let Some(region) = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")) {
            builder = builder.with_region(region);
        }
        if let Some(key) = env("AWS_ACCESS_KEY_ID") {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = env("AWS_SECRET_ACCESS_KEY") {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = env("AWS_SESSION_TOKEN") {
            builder = builder.with_token(token);
        }
        let mut endpoint = None;
        for (name, value) in url.query_pairs() {
            match name.as_ref() {
                "endpoint" => {
                    builder = builder
                        .with_endpoint(value.as_ref())
                        .with_allow_http(value.starts_with("http://"));
                    endpoint = Some(value.into_owned());
                }
                "region" => builder = builder.with_region(value.as_ref()),
                other => {
                    return Err(FilesError::Config(format!(
                        "unknown setting {other:?} in the s3:// URL (endpoint, region)"
                    )))
                }
            }
        }
        let store = builder.build().map_err(FilesError::Storage)?;
        let prefix = url.path().trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        let place = match endpoint {
            Some(e) => format!("s3://{bucket}/{prefix} at {e}"),
            None => format!("s3://{bucket}/{prefix}"),
        };
        Ok(Self { store, place })
    }

    /// Where the storage is, without credentials.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// Writes `body` under `key` as it arrives, in parts (at most one part, 5 MiB, held at a
    /// time), and returns how many bytes it had. The object appears only once the body has
    /// ended without error; on any error, what was written so far is removed.
    pub async fn put<S, E>(&self, key: &Key, mut body: S) -> Result<u64, PutError<E>>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    {
        let upload = self
            .store
            .put_multipart(&key.path())
            .await
            .map_err(FilesError::of)?;
        let mut writer = WriteMultipart::new(upload);
        let mut size = 0u64;
        loop {
            let chunk = match body.next().await {
                None => break,
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    let _ = writer.abort().await;
                    return Err(PutError::Body(e));
                }
            };
            size += chunk.len() as u64;
            // Back-pressure: no more than a couple of parts in flight to the storage.
            if let Err(e) = writer.wait_for_capacity(2).await {
                let _ = writer.abort().await;
                return Err(FilesError::of(e).into());
            }
            writer.put(chunk);
        }
        writer.finish().await.map_err(FilesError::of)?;
        Ok(size)
    }

    /// Writes a small object at once (a thumbnail).
    pub async fn put_bytes(&self, key: &Key, bytes: Bytes) -> Result<(), FilesError> {
        self.store
            .put(&key.path(), bytes.into())
            .await
            .map_err(FilesError::of)?;
        Ok(())
    }

    /// Reads `key`, all of it or the bytes of `range` (clipped to its end; a range that
    /// starts past the end is the storage's error).
    pub async fn get(&self, key: &Key, range: Option<Range<u64>>) -> Result<Object, FilesError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let got = self
            .store
            .get_opts(&key.path(), options)
            .await
            .map_err(FilesError::of)?;
        let size = got.meta.size;
        let range = got.range.clone();
        let body = got.into_stream().map_err(FilesError::of).boxed();
        Ok(Object { size, range, body })
    }

    /// The size of `key`, or `None` when there is no such object.
    pub async fn size(&self, key: &Key) -> Result<Option<u64>, FilesError> {
        match self.store.head(&key.path()).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(FilesError::Storage(e)),
        }
    }

    /// Removes `key`; removing what is not there is not an error (a cleanup may run twice).
    pub async fn delete(&self, key: &Key) -> Result<(), FilesError> {
        match self.store.delete(&key.path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(FilesError::Storage(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_of_ids_only() {
        let id = Uuid::nil();
        assert_eq!(
            Key::upload(id).to_string(),
            "uploads/00000000000000000000000000000000"
        );
        assert_eq!(
            Key::thumbnail(id).to_string(),
            "thumbnails/00000000000000000000000000000000"
        );
    }

    #[test]
    fn urls_other_than_file_and_s3_are_refused_with_a_reason() {
        for bad in [
            "",
            "/var/lib/banter",
            "ftp://host/x",
            "s3://",
            "s3://bucket?colour=blue",
        ] {
            let e = Files::open(bad, &|_| None).expect_err(bad);
            assert!(matches!(e, FilesError::Config(_)), "{bad}: {e}");
        }
    }
}
