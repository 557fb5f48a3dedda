//! Attachments over HTTP, and the job that removes what is no longer wanted.
//!
//! - `POST /api/v1/uploads?name=` streams the body (raw, or one multipart `file` part) into
//!   the file storage as it arrives, counting: past the size limit or the user's quota it stops
//!   reading and answers 413. The type is sniffed from the first bytes, never taken from the
//!   client; an image gets a thumbnail (see [`crate::images`]). Then the upload is recorded:
//!   it belongs to its uploader alone until a message attaches it.
//! - `GET /api/v1/files/{id}` and `/thumbnail`: to the uploader, and to the members of the
//!   room of the message that carries it (the chat service's rights); 404 to everyone else,
//!   whatever the id looks like. Served so a browser never runs it: `nosniff`,
//!   `Content-Security-Policy: sandbox`, and `attachment` for everything but raster images,
//!   audio and video.
//! - [`sweep`]: the bytes of deleted messages' files (marked by the projection of the delete,
//!   so it holds on Kafka as on `serve`) and of uploads never attached within a day are
//!   removed in batches, then their rows.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use banter_auth::AuthUser;
use banter_core::Attachment;
use banter_files::{Files, Key, PutError};
use banter_http::{ApiError, Envelope};
use banter_store::{DynStore, Upload};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{images, GatewayState};

/// The settings of attachments.
#[derive(Debug, Clone)]
pub struct FilesSettings {
    /// The largest file accepted.
    pub max_upload_bytes: u64,
    /// What one user's files may take in all.
    pub quota_bytes: u64,
    /// An upload not attached within this long is removed (and cannot be attached after
    /// nine tenths of it).
    pub unattached_ttl: Duration,
    /// How often the cleanup looks for what to remove.
    pub sweep_every: Duration,
}

impl Default for FilesSettings {
    fn default() -> Self {
        Self {
            max_upload_bytes: 25 * 1024 * 1024,
            quota_bytes: 2 * 1024 * 1024 * 1024,
            unattached_ttl: Duration::from_secs(24 * 3600),
            sweep_every: Duration::from_secs(600),
        }
    }
}

/// Bytes kept from the start of a body to tell its type.
const SNIFF: usize = 8192;
/// Uploads removed per batch of the cleanup.
const SWEEP_BATCH: u32 = 100;

/// Types a browser may show inline: raster images, audio and video. Never HTML, SVG or XML
/// (sniffing from magic numbers never yields those, and they are not here either).
const INLINE: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/bmp",
    "audio/mpeg",
    "audio/ogg",
    "audio/x-wav",
    "audio/x-flac",
    "audio/m4a",
    "audio/aac",
    "video/mp4",
    "video/webm",
    "video/quicktime",
    "video/x-matroska",
];

fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    ApiError::new(status, code, message).into_response()
}

fn unavailable(cause: impl std::fmt::Display) -> Response {
    tracing::warn!(%cause, "file storage or store unavailable");
    ApiError::unavailable().into_response()
}

/// Why a body stopped.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("over the limit")]
    OverLimit,
    #[error("reading the body: {0}")]
    Client(String),
}

/// Bytes enough to tell a decodable image from its magic number.
const IMAGE_MAGIC: usize = 16;

/// What passed through a metered body: how much, and its first bytes.
#[derive(Debug)]
struct Seen {
    bytes: u64,
    head: Vec<u8>,
    /// The whole body, while it may be an image to draw a thumbnail of: its chunks are shared
    /// with the storage's writer, so keeping them costs no copy, and the thumbnail needs no
    /// second transfer from the storage. Dropped as soon as the first bytes say otherwise.
    image: Option<Vec<Bytes>>,
    /// Whether the first bytes were looked at for that.
    typed: bool,
}

impl Default for Seen {
    fn default() -> Self {
        Self {
            bytes: 0,
            head: Vec::new(),
            image: Some(Vec::new()),
            typed: false,
        }
    }
}

/// The type of a body from its first bytes (`application/octet-stream` when unknown).
fn sniffed(head: &[u8]) -> &'static str {
    infer::get(head).map_or("application/octet-stream", |t| t.mime_type())
}

/// `body`, counted and cut off past `limit`, its first [`SNIFF`] bytes kept in `seen` (and
/// all of it while it may be an image).
fn metered<S, E>(
    body: S,
    limit: u64,
    seen: Arc<Mutex<Seen>>,
) -> impl Stream<Item = Result<Bytes, BodyError>> + Unpin + Send
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: std::fmt::Display,
{
    body.map(move |chunk| {
        let chunk = chunk.map_err(|e| BodyError::Client(e.to_string()))?;
        let mut seen = seen.lock().expect("meter");
        seen.bytes += chunk.len() as u64;
        if seen.bytes > limit {
            return Err(BodyError::OverLimit);
        }
        if seen.head.len() < SNIFF {
            let take = (SNIFF - seen.head.len()).min(chunk.len());
            seen.head.extend_from_slice(&chunk[..take]);
        }
        if let Some(image) = &mut seen.image {
            image.push(chunk.clone());
        }
        if !seen.typed && seen.head.len() >= IMAGE_MAGIC {
            seen.typed = true;
            if !images::decodable(sniffed(&seen.head)) {
                seen.image = None;
            }
        }
        Ok(chunk)
    })
}

/// A file's name as a label: its last path segment, without control characters, at most
/// 255 characters; `file` when nothing is left.
fn file_name(raw: Option<&str>) -> String {
    let raw = raw.unwrap_or_default();
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = last.chars().filter(|c| !c.is_control()).take(255).collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        "file".to_owned()
    } else {
        clean.to_owned()
    }
}

/// `POST /api/v1/uploads?name=`.
pub async fn upload(
    State(state): State<GatewayState>,
    user: AuthUser,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    match store_upload(&state, &user, &query, request).await {
        Ok(file) => Envelope::created("uploaded", file).into_response(),
        Err(refusal) => refusal,
    }
}

async fn store_upload(
    state: &GatewayState,
    user: &AuthUser,
    query: &HashMap<String, String>,
    request: Request,
) -> Result<Attachment, Response> {
    let Some(files) = state.files.clone() else {
        return Err(refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this server keeps no files (its operator has not set BANTER_FILES)",
        ));
    };
    state
        .limits
        .uploads
        .check(&user.id)
        .map_err(|r| r.into_api_error("uploads").into_response())?;
    let settings = &state.config.files;
    let used = state
        .store
        .uploaded_bytes(user.id)
        .await
        .map_err(unavailable)?;
    let room_left = settings.quota_bytes.saturating_sub(used);
    let quota_binds = room_left < settings.max_upload_bytes;
    let limit = settings.max_upload_bytes.min(room_left);
    let over = |declared: Option<u64>| {
        if quota_binds {
            refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                "quota_exceeded",
                format!(
                    "your files take {used} of your {} bytes; delete some messages with files first",
                    settings.quota_bytes
                ),
            )
        } else {
            let what = declared.map_or("the file".to_owned(), |n| format!("the file ({n} bytes)"));
            refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("{what} is larger than {} bytes", settings.max_upload_bytes),
            )
        }
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) || limit == 0 {
        // Answered before a byte of the body is read.
        return Err(over(declared));
    }
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let id = Uuid::new_v4();
    let key = Key::upload(id);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (name, put) = if multipart {
        let mut form = Multipart::from_request(request, &())
            .await
            .map_err(IntoResponse::into_response)?;
        let field = loop {
            match form.next_field().await {
                Ok(Some(field)) if field.name() == Some("file") => break field,
                Ok(Some(_)) => continue,
                Ok(None) => {
                    return Err(ApiError::validation(
                        "file",
                        "a multipart upload needs a part named file",
                    )
                    .into_response())
                }
                Err(e) => return Err(ApiError::validation("file", e.body_text()).into_response()),
            }
        };
        let name = file_name(query.get("name").map(String::as_str).or(field.file_name()));
        let put = files.put(&key, metered(field, limit, seen.clone())).await;
        (name, put)
    } else {
        let name = file_name(query.get("name").map(String::as_str));
        let body = request.into_body().into_data_stream();
        (
            name,
            files.put(&key, metered(body, limit, seen.clone())).await,
        )
    };
    let size = match put {
        Ok(size) => size,
        Err(PutError::Body(BodyError::OverLimit)) => return Err(over(None)),
        Err(PutError::Body(BodyError::Client(why))) => {
            return Err(ApiError::validation("file", why).into_response())
        }
        Err(PutError::Files(e)) => return Err(unavailable(e)),
    };
    let (content_type, image) = {
        let mut seen = seen.lock().expect("meter");
        (sniffed(&seen.head), seen.image.take())
    };
    let mut file = Attachment {
        id,
        name,
        size,
        content_type: content_type.to_owned(),
        width: None,
        height: None,
        thumbnail: false,
    };
    if let Some(chunks) = image.filter(|_| images::decodable(content_type)) {
        if let Err(refusal) = make_thumbnail(&files, &mut file, chunks.concat()).await {
            let _ = files.delete(&key).await;
            return Err(refusal);
        }
    }
    let upload = Upload {
        uploader: user.id,
        file: file.clone(),
        created_at: banter_store::now(),
        message: None,
        removing: false,
    };
    if let Err(e) = state.store.insert_upload(&upload).await {
        let _ = files.delete(&key).await;
        let _ = files.delete(&Key::thumbnail(id)).await;
        return Err(unavailable(e));
    }
    metrics::counter!("banter_uploads_total").increment(1);
    metrics::counter!("banter_upload_bytes_total").increment(size);
    Ok(file)
}

/// Draws the thumbnail of the image `bytes` on a blocking thread, and stores it. A bomb is
/// refused (400); an image the decoder cannot read stays a plain file.
async fn make_thumbnail(
    files: &Files,
    file: &mut Attachment,
    bytes: Vec<u8>,
) -> Result<(), Response> {
    let outcome = tokio::task::spawn_blocking(move || images::thumbnail(&bytes))
        .await
        .map_err(unavailable)?;
    match outcome {
        images::Outcome::Thumbnail { width, height, png } => {
            files
                .put_bytes(&Key::thumbnail(file.id), png.into())
                .await
                .map_err(unavailable)?;
            file.width = Some(width);
            file.height = Some(height);
            file.thumbnail = true;
            Ok(())
        }
        images::Outcome::TooLarge => Err(ApiError::validation(
            "file",
            format!(
                "the image is too large to show (at most {} pixels a side and {} megapixels)",
                images::MAX_SIDE,
                images::MAX_PIXELS / 1_000_000
            ),
        )
        .into_response()),
        images::Outcome::Unreadable => Ok(()),
    }
}

/// The upload `raw` names, if `user` may fetch it.
async fn readable(state: &GatewayState, user: &AuthUser, raw: &str) -> Result<Upload, Response> {
    const NO_FILE: &str = "no such file";
    let Ok(id) = Uuid::parse_str(raw) else {
        return Err(ApiError::not_found(NO_FILE).into_response());
    };
    let upload = match state.store.upload(id).await {
        Ok(Some(upload)) if !upload.removing => upload,
        Ok(_) => return Err(ApiError::not_found(NO_FILE).into_response()),
        Err(e) => return Err(unavailable(e)),
    };
    // Its room: the store's, or, on Kafka before persist has stored the message that carries
    // it, that of the message this gateway heard. A message deleted lately takes its files
    // along at once, before persist marks them.
    let room = match &upload.message {
        Some((message, _)) if state.recent.deleted(*message) => {
            return Err(ApiError::not_found(NO_FILE).into_response())
        }
        Some((_, room)) => Some(room.clone()),
        None => state
            .recent
            .carrier(id)
            .filter(|m| m.event.actor_id() == upload.uploader)
            .map(|m| m.room().clone()),
    };
    let actor = crate::api::actor(user);
    if upload.uploader == user.id {
        // Even its uploader's: a deleted room's files go with it at once (the sweep removes
        // them later), as everything else of it does.
        if let Some(room) = &room {
            if let Err(crate::chat::ChatError::NotFound(_)) =
                state.chat.reader(&actor, room.clone()).await
            {
                return Err(ApiError::not_found(NO_FILE).into_response());
            }
        }
        return Ok(upload);
    }
    // Its room's members (the contract's rule): a public room's history is open to anyone,
    // but its files are for those in it, and go with leaving it.
    match room {
        Some(room)
            if state
                .chat
                .reader(&actor, room.clone())
                .await
                .is_ok_and(|r| r.is_member()) =>
        {
            Ok(upload)
        }
        _ => Err(ApiError::not_found(NO_FILE).into_response()),
    }
}

/// `GET /api/v1/files/{id}`: the bytes, or the bytes of one `Range`.
pub async fn download(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Response {
    let upload = match readable(&state, &user, &raw).await {
        Ok(upload) => upload,
        Err(refusal) => return refusal,
    };
    let Some(files) = state.files.clone() else {
        return ApiError::not_found("no such file").into_response();
    };
    let size = upload.file.size;
    let range = match headers.get(header::RANGE).map(|v| byte_range(v, size)) {
        None | Some(RangeAsked::Ignored) => None,
        Some(RangeAsked::Bytes(r)) => Some(r),
        Some(RangeAsked::Unsatisfiable) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return response;
        }
    };
    let object = match files.get(&Key::upload(upload.file.id), range.clone()).await {
        Ok(object) => object,
        Err(banter_files::FilesError::NotFound) => {
            return ApiError::not_found("no such file").into_response()
        }
        Err(e) => return unavailable(e),
    };
    let inline = INLINE.contains(&upload.file.content_type.as_str());
    let content_range = format!(
        "bytes {}-{}/{}",
        object.range.start,
        object.range.end.saturating_sub(1),
        object.size
    );
    let mut response = served(
        object,
        &upload.file.content_type,
        &disposition(inline, &upload.file.name),
    );
    let h = response.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if range.is_some() {
        if let Ok(v) = HeaderValue::from_str(&content_range) {
            h.insert(header::CONTENT_RANGE, v);
        }
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    response
}

/// `GET /api/v1/files/{id}/thumbnail`: an image's thumbnail (PNG).
pub async fn thumbnail(
    State(state): State<GatewayState>,
    user: AuthUser,
    Path(raw): Path<String>,
) -> Response {
    let upload = match readable(&state, &user, &raw).await {
        Ok(upload) if upload.file.thumbnail => upload,
        Ok(_) => return ApiError::not_found("no thumbnail of that file").into_response(),
        Err(refusal) => return refusal,
    };
    let Some(files) = state.files.clone() else {
        return ApiError::not_found("no such file").into_response();
    };
    match files.get(&Key::thumbnail(upload.file.id), None).await {
        Ok(object) => served(object, "image/png", "inline"),
        Err(banter_files::FilesError::NotFound) => {
            ApiError::not_found("no thumbnail of that file").into_response()
        }
        Err(e) => unavailable(e),
    }
}

/// The bytes of `object` (the part of it that was asked for), with the headers every served
/// file carries (see [`guard`]).
fn served(object: banter_files::Object, content_type: &str, disposition: &str) -> Response {
    let length = object.range.end - object.range.start;
    let mut response = Response::new(Body::from_stream(object.body));
    let h = response.headers_mut();
    guard(h, content_type);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(v) = HeaderValue::from_str(disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// The headers every served file carries: its sniffed type, and what keeps a browser from
/// running it or guessing otherwise. Cached by the user's browser only, and briefly: the
/// bytes under an id never change, but who may read them can.
fn guard(h: &mut HeaderMap, content_type: &str) {
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
}

/// `Content-Disposition` with the name twice: plain ASCII for old clients, and exact in
/// `filename*` (RFC 6266, RFC 8187).
fn disposition(inline: bool, name: &str) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut exact = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            exact.push(char::from(b));
        } else {
            exact.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{exact}")
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum RangeAsked {
    Bytes(Range<u64>),
    /// A range that starts past the end: 416.
    Unsatisfiable,
    /// Not one byte range banter understands (several ranges, other units, nonsense): the
    /// whole file, as RFC 9110 allows.
    Ignored,
}

fn byte_range(value: &HeaderValue, size: u64) -> RangeAsked {
    let Some(spec) = value.to_str().ok().and_then(|v| v.strip_prefix("bytes=")) else {
        return RangeAsked::Ignored;
    };
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsked::Ignored;
    };
    if spec.contains(',') {
        return RangeAsked::Ignored;
    }
    let (first, last) = (first.trim(), last.trim());
    let range = match (first.parse::<u64>(), last.parse::<u64>()) {
        // `bytes=-N`: the last N bytes.
        (Err(_), Ok(n)) if first.is_empty() => {
            if n == 0 {
                return RangeAsked::Unsatisfiable;
            }
            size.saturating_sub(n)..size
        }
        (Ok(a), Err(_)) if last.is_empty() => a..size,
        (Ok(a), Ok(b)) if a <= b => a..(b.saturating_add(1)).min(size),
        _ => return RangeAsked::Ignored,
    };
    if range.start >= size {
        RangeAsked::Unsatisfiable
    } else {
        RangeAsked::Bytes(range)
    }
}

/// Every `every`, until `shutdown`: removes the bytes of uploads that are due to go (see
/// [`sweep_once`]). Each gateway runs one; removing twice is harmless.
pub async fn sweep(
    store: DynStore,
    files: Files,
    settings: FilesSettings,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(settings.sweep_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match sweep_once(&store, &files, settings.unattached_ttl).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed files no message carries"),
            Err(e) => tracing::warn!(error = %e, "removing files failed; trying again later"),
        }
    }
}

/// One pass of the cleanup: batch by batch, the objects first (so a crash between leaves a
/// row to try again, never a row without its bytes), then the rows. Returns how many uploads
/// were removed.
pub async fn sweep_once(
    store: &DynStore,
    files: &Files,
    unattached_ttl: Duration,
) -> Result<u64, SweepError> {
    let cutoff = banter_store::now()
        - chrono::Duration::from_std(unattached_ttl).unwrap_or(chrono::Duration::MAX);
    let mut removed = 0;
    loop {
        let due = store.uploads_to_remove(cutoff, SWEEP_BATCH).await?;
        for id in &due {
            files.delete(&Key::upload(*id)).await?;
            files.delete(&Key::thumbnail(*id)).await?;
        }
        removed += store.forget_uploads(&due, cutoff).await?;
        if due.len() < SWEEP_BATCH as usize {
            metrics::counter!("banter_files_removed_total").increment(removed);
            return Ok(removed);
        }
    }
}

/// Why a pass of the cleanup stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] banter_store::StoreError),
    #[error(transparent)]
    Files(#[from] banter_files::FilesError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(v: &str, size: u64) -> RangeAsked {
        byte_range(&HeaderValue::from_str(v).expect("header"), size)
    }

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(asked("bytes=0-9", 100), RangeAsked::Bytes(0..10));
        assert_eq!(asked("bytes=90-", 100), RangeAsked::Bytes(90..100));
        assert_eq!(asked("bytes=-10", 100), RangeAsked::Bytes(90..100));
        assert_eq!(asked("bytes=-500", 100), RangeAsked::Bytes(0..100));
        assert_eq!(asked("bytes=50-500", 100), RangeAsked::Bytes(50..100));
        assert_eq!(asked("bytes=100-", 100), RangeAsked::Unsatisfiable);
        assert_eq!(asked("bytes=-0", 100), RangeAsked::Unsatisfiable);
        for ignored in [
            "bytes=5-1",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=x-y",
            "bytes=",
        ] {
            assert_eq!(asked(ignored, 100), RangeAsked::Ignored, "{ignored}");
        }
    }

    #[test]
    fn names_are_labels_never_paths() {
        assert_eq!(file_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(file_name(Some("C:\\Users\\me\\cat.png")), "cat.png");
        assert_eq!(file_name(Some("a\u{0}b\nc.txt")), "abc.txt");
        assert_eq!(file_name(Some("..")), "file");
        assert_eq!(file_name(None), "file");
        assert_eq!(file_name(Some(&"x".repeat(300))).chars().count(), 255);
    }

    #[test]
    fn dispositions_keep_the_exact_name_and_a_safe_fallback() {
        assert_eq!(
            disposition(false, "report \"final\".pdf"),
            "attachment; filename=\"report _final_.pdf\"; filename*=UTF-8''report%20%22final%22.pdf"
        );
        assert_eq!(
            disposition(true, "café.png"),
            "inline; filename=\"caf_.png\"; filename*=UTF-8''caf%C3%A9.png"
        );
    }
}
