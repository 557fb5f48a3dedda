//! Attachments on `serve`: upload, attach, download by whoever may read the room and nobody
//! else, the size limit and the quota, what a browser is told about a file, thumbnails within
//! decoding limits, and the cleanup of what no message carries.

use std::io::Cursor;
use std::time::Duration;

use banter_files::Key;
use banter_gateway::files::FilesSettings;
use banter_testkit::{token_of as token, Db, Options, Storage, TestApp};
use reqwest::header;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

fn settings(f: impl FnOnce(&mut FilesSettings)) -> Options {
    let mut options = Options::default();
    f(&mut options.gateway.files);
    options
}

/// POSTs `bytes` as a raw upload named `name`.
async fn upload(app: &TestApp, token: &str, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/uploads?name={name}")))
        .bearer_auth(token)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(bytes)
        .send()
        .await
        .expect("upload");
    TestApp::read(resp).await
}

/// Uploads and returns the upload's id; the upload must succeed.
async fn uploaded(app: &TestApp, token: &str, name: &str, bytes: Vec<u8>) -> Value {
    let (status, body) = upload(app, token, name, bytes).await;
    assert_eq!(status, StatusCode::CREATED, "upload {name}: {body}");
    body["data"].clone()
}

async fn fetch(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET")
}

/// The status `token`'s user gets for `path`.
async fn status_of(app: &TestApp, path: &str, token: &str) -> StatusCode {
    fetch(app, path, token).await.status()
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encode");
    out
}

/// A JPEG of `width` × `height` whose EXIF says to turn it a quarter (orientation 6) and
/// holds a GPS position: a phone's photo, held sideways.
fn sideways_photo(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, _| image::Rgb([(x % 256) as u8, 0, 0]));
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .expect("encode");
    // TIFF (big-endian), one IFD: Orientation = 6, and a GPSInfo pointer to an IFD with a
    // latitude reference, enough for anyone reading it to see there is a position.
    let mut tiff: Vec<u8> = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&2u16.to_be_bytes());
    // Orientation: tag 0x0112, SHORT, 1, value 6.
    tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0]);
    // GPSInfo: tag 0x8825, LONG, 1, offset of the GPS IFD (8 + 2 + 24 + 4 = 38).
    tiff.extend_from_slice(&[0x88, 0x25, 0, 4, 0, 0, 0, 1, 0, 0, 0, 38]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    // GPS IFD: GPSLatitudeRef "N".
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&[0, 1, 0, 2, 0, 0, 0, 2, b'N', 0, 0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&u16::try_from(app1.len() + 2).expect("short").to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A PNG whose header claims `side` × `side` pixels and holds none of them.
fn png_bomb(side: u32) -> Vec<u8> {
    let mut bomb = png(1, 1);
    bomb[16..20].copy_from_slice(&side.to_be_bytes());
    bomb[20..24].copy_from_slice(&side.to_be_bytes());
    let crc = crc32fast::hash(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    bomb
}

/// Polls until `f` holds (what a background job does has no event to wait on), failing after
/// ten seconds.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within 10 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_file_sent_to_a_room_reaches_its_members_and_nobody_else() {
    for storage in [Storage::Directory, Storage::S3] {
        let app = TestApp::spawn_with(
            Db::Sqlite,
            Options {
                storage,
                ..Options::default()
            },
        )
        .await;
        let ann = token(&app.signup("ann").await);
        let ben = token(&app.signup("ben").await);
        let eve = token(&app.signup("eve").await);
        let (status, _) = app
            .post(
                "/api/v1/rooms",
                &json!({"name": "plans", "kind": "private"}),
                Some(&ann),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = app
            .post(
                "/api/v1/rooms/plans/members",
                &json!({"username": "ben"}),
                Some(&ann),
            )
            .await;
        assert!(status.is_success(), "{status}");

        let pdf = b"%PDF-1.4\n% the plan\n".repeat(100);
        let file = uploaded(&app, &ann, "plan.pdf", pdf.clone()).await;
        assert_eq!(file["name"], "plan.pdf");
        assert_eq!(file["size"], pdf.len());
        assert_eq!(
            file["content_type"], "application/pdf",
            "sniffed, not the header's"
        );
        let id = file["id"].as_str().expect("id").to_owned();
        let url = format!("/api/v1/files/{id}");
        assert_eq!(file["url"], url);
        // Before it is sent, only its uploader may fetch it.
        assert_eq!(status_of(&app, &url, &ann).await, StatusCode::OK);
        assert_eq!(status_of(&app, &url, &ben).await, StatusCode::NOT_FOUND);

        let mut b = app.ws(&ben, Some("plans")).await;
        let mut a = app.ws(&ann, Some("plans")).await;
        let ack = a
            .act(json!({"type":"send","room":"plans","attachments":[id],"client_id":"f1"}))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        let m = b.recv_type("message").await;
        assert_eq!(m["body"], "");
        assert_eq!(m["attachments"][0]["id"], id.as_str());
        assert_eq!(m["attachments"][0]["name"], "plan.pdf");
        assert_eq!(m["attachments"][0]["url"], url);

        let got = fetch(&app, &url, &ben).await;
        assert_eq!(got.status(), StatusCode::OK);
        let h = got.headers().clone();
        assert_eq!(h[header::CONTENT_TYPE], "application/pdf");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], "sandbox");
        assert!(h[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("ascii")
            .starts_with("attachment;"));
        assert!(h[header::CACHE_CONTROL]
            .to_str()
            .expect("ascii")
            .contains("private"));
        assert_eq!(got.bytes().await.expect("bytes").as_ref(), &pdf[..]);
        // History carries it too.
        let (_, page) = app.get("/api/v1/rooms/plans/messages", Some(&ben)).await;
        assert_eq!(
            page["data"]["messages"][0]["attachments"][0]["id"],
            id.as_str()
        );

        // Eve is not in the room: 404, as for an id that does not exist, whatever its shape.
        for path in [
            url.clone(),
            format!("/api/v1/files/{}", Uuid::new_v4()),
            "/api/v1/files/not-an-id".to_owned(),
            "/api/v1/files/..%2F..%2Fbanter.db".to_owned(),
            format!("{url}/thumbnail"),
        ] {
            let r = fetch(&app, &path, &eve).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        }
        let anonymous = app.client.get(app.url(&url)).send().await.expect("GET");
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

        // Nobody else may attach Ann's upload, nor may she attach it twice.
        let mut e = app.ws(&eve, None).await;
        let refused = e
            .act(json!({"type":"send","room":"general","attachments":[id],"client_id":"e1"}))
            .await;
        assert_eq!(refused["code"], "not_found", "{refused}");
        let refused = a
            .act(json!({"type":"send","room":"plans","attachments":[id],"client_id":"f2"}))
            .await;
        assert_eq!(refused["code"], "not_found", "{refused}");
    }
}

#[tokio::test]
async fn a_file_in_a_dm_is_for_its_two_users_only() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let ann = token(&app.signup("ann").await);
    let ben = token(&app.signup("ben").await);
    let eve = token(&app.signup("eve").await);
    let file = uploaded(&app, &ann, "note.txt", b"just between us".to_vec()).await;
    let id = file["id"].as_str().expect("id").to_owned();
    let mut a = app.ws(&ann, Some("dm:ann:ben")).await;
    let ack = a
        .act(json!({"type":"send","room":"dm:ann:ben","body":"here","attachments":[id],"client_id":"d1"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let url = format!("/api/v1/files/{id}");
    assert_eq!(status_of(&app, &url, &ben).await, StatusCode::OK);
    assert_eq!(status_of(&app, &url, &eve).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_file_in_a_public_room_is_for_its_members() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let ann = token(&app.signup("ann").await);
    let eve = token(&app.signup("eve").await);
    let id = uploaded(&app, &ann, "open.txt", b"for the room".to_vec()).await["id"].clone();
    let mut a = app.ws(&ann, Some("lobby")).await;
    let ack = a
        .act(json!({"type":"send","room":"lobby","attachments":[id],"client_id":"p1"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let url = format!("/api/v1/files/{}", id.as_str().expect("id"));
    // Eve may read the public room's history, but its files are for those in it.
    let (status, _) = app.get("/api/v1/rooms/lobby/messages", Some(&eve)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(status_of(&app, &url, &eve).await, StatusCode::NOT_FOUND);
    // Joining the room (connecting to it makes her a member) gives them.
    let e = app.ws(&eve, Some("lobby")).await;
    assert_eq!(status_of(&app, &url, &eve).await, StatusCode::OK);
    e.close().await;
    // Leaving the room takes them away again.
    let (status, body) = app
        .call(
            reqwest::Method::DELETE,
            "/api/v1/rooms/lobby/members/eve",
            None,
            Some(&eve),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(status_of(&app, &url, &eve).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_re_sent_message_with_files_is_stored_once() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let ann = token(&app.signup("ann").await);
    let id = uploaded(&app, &ann, "a.txt", b"hello".to_vec()).await["id"].clone();
    let mut a = app.ws(&ann, Some("general")).await;
    let frame =
        json!({"type":"send","room":"general","body":"see","attachments":[id],"client_id":"same"});
    let first = a.act(frame.clone()).await;
    assert_eq!(first["type"], "ack", "{first}");
    // The ack was lost: the client sends it again, and the server answers with the first.
    let second = a.act(frame).await;
    assert_eq!(second["type"], "ack", "{second}");
    assert_eq!(second["id"], first["id"]);
    assert_eq!(app.history_bodies("general", &ann).await, ["see"]);
}

#[tokio::test]
async fn too_large_is_answered_before_the_body_is_read_and_the_quota_holds() {
    let app = TestApp::spawn_with(
        Db::Sqlite,
        settings(|f| {
            f.max_upload_bytes = 1000;
            f.quota_bytes = 1500;
        }),
    )
    .await;
    let ann = token(&app.signup("ann").await);
    // A body that announces 50 MB and then never comes: the answer cannot wait for it.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    tx.send(Ok(vec![b'x'; 100])).await.expect("first chunk");
    let body = reqwest::Body::wrap_stream(tokio_stream_of(rx));
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        app.client
            .post(app.url("/api/v1/uploads?name=big.bin"))
            .bearer_auth(&ann)
            .header(header::CONTENT_LENGTH, 50_000_000)
            .body(body)
            .send(),
    )
    .await
    .expect("answered without the body")
    .expect("response");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (_, body) = TestApp::read(resp).await;
    assert_eq!(body["error"], "too_large");
    drop(tx);
    // Without a length: cut off once the limit is crossed.
    let (status, body) = upload(&app, &ann, "big.bin", vec![b'y'; 1001]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
    );
    // 1,000 fit; then only 500 are left of the quota.
    uploaded(&app, &ann, "a.bin", vec![b'z'; 1000]).await;
    let (status, body) = upload(&app, &ann, "b.bin", vec![b'z'; 600]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "quota_exceeded", "{body}");
    uploaded(&app, &ann, "c.bin", vec![b'z'; 500]).await;
}

/// A stream of what `rx` receives (reqwest wants a `Stream`).
fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn html_and_svg_are_served_as_downloads_and_images_inline() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let ann = token(&app.signup("ann").await);
    for (name, bytes) in [
        (
            "page.html",
            b"<!DOCTYPE html><html><script>alert(1)</script></html>".to_vec(),
        ),
        (
            "logo.svg",
            br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>"#.to_vec(),
        ),
        ("data.xml", br#"<?xml version="1.0"?><a>1</a>"#.to_vec()),
    ] {
        let file = uploaded(&app, &ann, name, bytes).await;
        let ct = file["content_type"].as_str().expect("type");
        assert!(!ct.contains("svg"), "{name}: {ct}");
        let got = fetch(&app, file["url"].as_str().expect("url"), &ann).await;
        let h = got.headers();
        let disposition = h[header::CONTENT_DISPOSITION].to_str().expect("ascii");
        assert!(
            disposition.starts_with("attachment;"),
            "{name}: {disposition}"
        );
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], "sandbox");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    let image = uploaded(&app, &ann, "cat.png", png(64, 48)).await;
    assert_eq!(image["content_type"], "image/png");
    let got = fetch(&app, image["url"].as_str().expect("url"), &ann).await;
    let disposition = got.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(disposition.starts_with("inline;"), "{disposition}");
}

#[tokio::test]
async fn images_get_an_upright_thumbnail_without_their_metadata_and_bombs_are_refused() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let ann = token(&app.signup("ann").await);
    let wide = uploaded(&app, &ann, "wide.png", png(800, 200)).await;
    assert_eq!(
        (wide["width"].as_u64(), wide["height"].as_u64()),
        (Some(800), Some(200))
    );
    let thumb_url = wide["thumbnail_url"]
        .as_str()
        .expect("a thumbnail")
        .to_owned();
    let got = fetch(&app, &thumb_url, &ann).await;
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.headers()[header::CONTENT_TYPE], "image/png");
    let thumb = image::load_from_memory(&got.bytes().await.expect("bytes")).expect("a PNG");
    assert_eq!((thumb.width(), thumb.height()), (400, 100));

    // Held sideways: 300 wide as stored, 200 wide once turned as its EXIF says.
    let photo = sideways_photo(300, 200);
    let file = uploaded(&app, &ann, "photo.jpg", photo.clone()).await;
    assert_eq!(file["content_type"], "image/jpeg");
    assert_eq!(
        (file["width"].as_u64(), file["height"].as_u64()),
        (Some(200), Some(300))
    );
    let got = fetch(&app, file["thumbnail_url"].as_str().expect("thumb"), &ann).await;
    let bytes = got.bytes().await.expect("bytes");
    let thumb = image::load_from_memory(&bytes).expect("a PNG");
    assert_eq!((thumb.width(), thumb.height()), (200, 300));
    assert!(
        !bytes.windows(4).any(|w| w == b"Exif") && !bytes.windows(2).any(|w| w == b"MM\0"),
        "the thumbnail carries no EXIF"
    );
    // The original is served as uploaded (its owner's file), the thumbnail is what is shown.
    let original = fetch(&app, file["url"].as_str().expect("url"), &ann).await;
    assert_eq!(original.bytes().await.expect("bytes").len(), photo.len());

    for side in [100_000, 16_000] {
        let (status, body) = upload(&app, &ann, "bomb.png", png_bomb(side)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "validation_failed");
    }
    // An image the decoder cannot read is still a file, without a thumbnail.
    let mut cut = png(100, 100);
    cut.truncate(cut.len() / 2);
    let file = uploaded(&app, &ann, "cut.png", cut).await;
    assert!(file.get("thumbnail_url").is_none(), "{file}");
}

#[tokio::test]
async fn audio_and_video_are_served_by_range() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let ann = token(&app.signup("ann").await);
    // An MP3 frame header, then bytes that differ from place to place.
    let mut mp3 = b"ID3\x03\0\0\0\0\0\0".to_vec();
    mp3.extend((0..5000u32).map(|i| (i % 251) as u8));
    let file = uploaded(&app, &ann, "song.mp3", mp3.clone()).await;
    assert_eq!(file["content_type"], "audio/mpeg");
    let url = file["url"].as_str().expect("url");
    let ranged = |range: &'static str| {
        app.client
            .get(app.url(url))
            .bearer_auth(&ann)
            .header(header::RANGE, range)
            .send()
    };
    let part = ranged("bytes=100-199").await.expect("GET");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()[header::CONTENT_RANGE],
        format!("bytes 100-199/{}", mp3.len()).as_str()
    );
    assert_eq!(part.bytes().await.expect("bytes").as_ref(), &mp3[100..200]);
    let past = ranged("bytes=999999-").await.expect("GET");
    assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);
}

#[tokio::test]
async fn files_nobody_attached_and_files_of_deleted_messages_are_removed() {
    for storage in [Storage::Directory, Storage::S3] {
        let app = TestApp::spawn_with(
            Db::Sqlite,
            Options {
                storage,
                ..settings(|f| {
                    f.unattached_ttl = Duration::from_secs(2);
                    f.sweep_every = Duration::from_millis(100);
                })
            },
        )
        .await;
        let ann = token(&app.signup("ann").await);
        let kept = uploaded(&app, &ann, "kept.png", png(20, 20)).await;
        let sent = uploaded(&app, &ann, "sent.png", png(20, 20)).await;
        let orphan = uploaded(&app, &ann, "orphan.txt", b"never sent".to_vec()).await;
        let id = |v: &Value| Uuid::parse_str(v["id"].as_str().expect("id")).expect("uuid");
        let mut a = app.ws(&ann, Some("general")).await;
        let keep_ack = a
            .act(json!({"type":"send","room":"general","attachments":[kept["id"]],"client_id":"k"}))
            .await;
        assert_eq!(keep_ack["type"], "ack");
        let ack = a
            .act(json!({"type":"send","room":"general","attachments":[sent["id"]],"client_id":"s"}))
            .await;
        assert_eq!(ack["type"], "ack");
        let del = a
            .act(json!({"type":"delete","id":ack["id"],"client_id":"del"}))
            .await;
        assert_eq!(del["type"], "ack", "{del}");

        let files = app.files.files.clone();
        for (what, gone) in [
            ("a deleted message's file", id(&sent)),
            ("an orphan", id(&orphan)),
        ] {
            eventually(what, || {
                let files = files.clone();
                async move {
                    files
                        .size(&Key::upload(gone))
                        .await
                        .expect("size")
                        .is_none()
                }
            })
            .await;
            let r = fetch(&app, &format!("/api/v1/files/{gone}"), &ann).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{what}");
        }
        assert!(files
            .size(&Key::thumbnail(id(&sent)))
            .await
            .expect("size")
            .is_none());
        // What a message still carries stays, past the orphans' age.
        assert!(files
            .size(&Key::upload(id(&kept)))
            .await
            .expect("size")
            .is_some());
        assert!(files
            .size(&Key::thumbnail(id(&kept)))
            .await
            .expect("size")
            .is_some());
        let r = fetch(&app, kept["url"].as_str().expect("url"), &ann).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn uploads_in_one_multipart_part_are_accepted() {
    let app = TestApp::spawn(Db::Postgres).await;
    let ann = token(&app.signup("ann").await);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(png(10, 10)).file_name("../dir/pic.png"),
    );
    let resp = app
        .client
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(&ann)
        .multipart(form)
        .send()
        .await
        .expect("POST");
    let (status, body) = TestApp::read(resp).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["data"]["name"], "pic.png");
    assert_eq!(body["data"]["content_type"], "image/png");
    let form = reqwest::multipart::Form::new().text("other", "x");
    let resp = app
        .client
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(&ann)
        .multipart(form)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}
