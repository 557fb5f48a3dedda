//! One suite over both storages: a directory, and the real S3 server of `scripts/services`.
//! Each case runs on each; a storage that is missing fails the test.

use banter_files::{FilesError, Key, PutError};
use banter_testkit::{Storage, TestFiles};
use bytes::Bytes;
use futures::{stream, StreamExt};
use uuid::Uuid;

const BOTH: [Storage; 2] = [Storage::Directory, Storage::S3];

/// `n` bytes that differ from place to place, so a wrong range shows.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// `data` as a body of chunks of `chunk` bytes, as an HTTP request arrives.
fn chunked(
    data: &[u8],
    chunk: usize,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send {
    let chunks: Vec<_> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(chunks)
}

async fn read_all(files: &banter_files::Files, key: &Key) -> Vec<u8> {
    let mut object = files.get(key, None).await.expect("get");
    let mut out = Vec::new();
    while let Some(chunk) = object.body.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    out
}

#[tokio::test]
async fn what_is_put_in_parts_is_read_back_whole_and_by_range() {
    for kind in BOTH {
        let t = TestFiles::new(kind);
        let key = Key::upload(Uuid::new_v4());
        // Larger than one part (5 MiB), in small chunks: the write is streamed.
        let data = pattern(6 * 1024 * 1024 + 123);
        let size = t
            .files
            .put(&key, chunked(&data, 64 * 1024))
            .await
            .expect("put");
        assert_eq!(size, data.len() as u64, "{kind:?}");
        assert_eq!(t.files.size(&key).await.expect("size"), Some(size));
        assert!(
            read_all(&t.files, &key).await == data,
            "{kind:?}: bytes differ"
        );

        let mut part = t.files.get(&key, Some(1000..1010)).await.expect("range");
        assert_eq!(part.size, size, "{kind:?}");
        assert_eq!(part.range, 1000..1010, "{kind:?}");
        let mut got = Vec::new();
        while let Some(chunk) = part.body.next().await {
            got.extend_from_slice(&chunk.expect("chunk"));
        }
        assert_eq!(got, &data[1000..1010], "{kind:?}");

        t.files.delete(&key).await.expect("delete");
        assert_eq!(t.files.size(&key).await.expect("size"), None, "{kind:?}");
    }
}

#[tokio::test]
async fn a_missing_object_is_not_found_and_deleting_it_is_no_error() {
    for kind in BOTH {
        let t = TestFiles::new(kind);
        let key = Key::upload(Uuid::new_v4());
        assert!(
            matches!(t.files.get(&key, None).await, Err(FilesError::NotFound)),
            "{kind:?}"
        );
        assert_eq!(t.files.size(&key).await.expect("size"), None);
        t.files.delete(&key).await.expect("delete of nothing");
    }
}

#[tokio::test]
async fn a_body_that_fails_midway_leaves_nothing_behind() {
    for kind in BOTH {
        let t = TestFiles::new(kind);
        let key = Key::upload(Uuid::new_v4());
        let good = pattern(100_000);
        let body = chunked(&good, 10_000).chain(stream::iter(vec![Err(std::io::Error::other(
            "the client went away",
        ))]));
        let err = t.files.put(&key, body).await.expect_err("a failed body");
        assert!(matches!(err, PutError::Body(_)), "{kind:?}: {err}");
        assert_eq!(t.files.size(&key).await.expect("size"), None, "{kind:?}");
    }
}

#[tokio::test]
async fn small_objects_are_written_at_once_and_read_back() {
    for kind in BOTH {
        let t = TestFiles::new(kind);
        let key = Key::thumbnail(Uuid::new_v4());
        let data = pattern(5000);
        t.files
            .put_bytes(&key, Bytes::from(data.clone()))
            .await
            .expect("put");
        assert!(
            read_all(&t.files, &key).await == data,
            "{kind:?}: bytes differ"
        );
        // An empty object is an object.
        let empty = Key::upload(Uuid::new_v4());
        let size = t
            .files
            .put(&empty, chunked(&[], 1))
            .await
            .expect("empty put");
        assert_eq!(size, 0);
        assert_eq!(
            t.files.size(&empty).await.expect("size"),
            Some(0),
            "{kind:?}"
        );
    }
}
