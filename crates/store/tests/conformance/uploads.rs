//! Uploads: recorded by the gateway, attached by the projection of the message that carries
//! them, marked for removal by the projection of its delete, and forgotten once their bytes
//! are gone. The same on both engines, on `serve`'s log and on an external one.

use banter_core::{Attachment, Change, Cursor, NewMessage, RoomEvent, User};
use banter_store::{now, DynStore, Upload};
use chrono::Duration;
use uuid::Uuid;

use super::{change, new_message, room, user};

fn upload_of(uploader: &User, size: u64) -> Upload {
    Upload {
        uploader: uploader.id,
        file: Attachment {
            id: Uuid::new_v4(),
            name: "photo of the whiteboard.png".into(),
            size,
            content_type: "image/png".into(),
            width: Some(1600),
            height: Some(1200),
            thumbnail: true,
        },
        created_at: now(),
        message: None,
        removing: false,
    }
}

fn carrying(author: &User, in_room: &str, files: &[&Upload]) -> NewMessage {
    NewMessage {
        attachments: files.iter().map(|u| u.file.clone()).collect(),
        ..new_message(author, in_room, "", None)
    }
}

pub async fn an_upload_is_recorded_and_counted_for_its_uploader(store: DynStore) {
    let ada = user(&store, "ada").await;
    let bo = user(&store, "bob").await;
    assert_eq!(store.uploaded_bytes(ada.id).await.expect("bytes"), 0);
    let a = upload_of(&ada, 1000);
    let b = upload_of(&ada, 234);
    store.insert_upload(&a).await.expect("insert");
    store.insert_upload(&b).await.expect("insert");
    assert_eq!(store.upload(a.file.id).await.expect("get"), Some(a.clone()));
    assert_eq!(store.uploaded_bytes(ada.id).await.expect("bytes"), 1234);
    assert_eq!(store.uploaded_bytes(bo.id).await.expect("bytes"), 0);
    assert_eq!(store.upload(Uuid::new_v4()).await.expect("get"), None);
    // An id is one upload.
    assert!(store.insert_upload(&a).await.is_err());
}

pub async fn the_message_that_carries_an_upload_takes_it_and_shows_it(store: DynStore) {
    let ada = user(&store, "ada").await;
    let bo = user(&store, "bob").await;
    let mine = upload_of(&ada, 10);
    let hers = upload_of(&bo, 20);
    store.insert_upload(&mine).await.expect("insert");
    store.insert_upload(&hers).await.expect("insert");
    // Ada's message carries her upload and (wrongly) Bo's: only her own becomes hers.
    let m = carrying(&ada, "design", &[&mine, &hers]);
    store
        .append_events(&[RoomEvent::Message(m.clone())])
        .await
        .expect("append");
    let got = store
        .upload(mine.file.id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(got.message, Some((m.id, room("design"))));
    let other = store
        .upload(hers.file.id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(other.message, None, "someone else's upload is not taken");
    // A second message carrying it does not take it either: the first keeps it.
    let again = carrying(&ada, "elsewhere", &[&mine]);
    store
        .append_events(&[RoomEvent::Message(again)])
        .await
        .expect("append");
    let still = store
        .upload(mine.file.id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(still.message, Some((m.id, room("design"))));
    // History, the stored message and a resume carry the attachments as sent.
    let history = store
        .messages_before(&room("design"), None, 10)
        .await
        .expect("history");
    assert_eq!(history[0].attachments, m.attachments);
    let replay = store
        .events_after(&room("design"), None, 10)
        .await
        .expect("replay");
    let message = replay
        .iter()
        .find_map(|e| e.message())
        .expect("the message");
    assert_eq!(message.attachments, m.attachments);
    assert_eq!(
        store
            .message(m.id)
            .await
            .expect("get")
            .expect("some")
            .attachments,
        m.attachments
    );
}

pub async fn an_external_log_attaches_uploads_once(store: DynStore) {
    let ada = user(&store, "ada").await;
    let up = upload_of(&ada, 10);
    store.insert_upload(&up).await.expect("insert");
    let m = carrying(&ada, "kafka", &[&up]);
    let logged = RoomEvent::Message(m.clone()).at_cursor(Cursor::new(3, 41));
    for _ in 0..2 {
        store
            .apply_logged(std::slice::from_ref(&logged))
            .await
            .expect("apply");
    }
    let got = store.upload(up.file.id).await.expect("get").expect("some");
    assert_eq!(got.message, Some((m.id, room("kafka"))));
}

pub async fn a_deleted_message_leaves_its_files_to_be_removed(store: DynStore) {
    let ada = user(&store, "ada").await;
    let kept = upload_of(&ada, 100);
    let gone = upload_of(&ada, 50);
    let fresh = upload_of(&ada, 7);
    let old = Upload {
        created_at: now() - Duration::hours(30),
        ..upload_of(&ada, 3)
    };
    for u in [&kept, &gone, &fresh, &old] {
        store.insert_upload(u).await.expect("insert");
    }
    let stays = carrying(&ada, "r", &[&kept]);
    let deleted = carrying(&ada, "r", &[&gone]);
    store
        .append_events(&[
            RoomEvent::Message(stays.clone()),
            RoomEvent::Message(deleted.clone()),
        ])
        .await
        .expect("append");
    store
        .append_events(&[change(&ada, &room("r"), deleted.id, None, Change::Delete)])
        .await
        .expect("delete");
    let marked = store
        .upload(gone.file.id)
        .await
        .expect("get")
        .expect("some");
    assert!(marked.removing);
    // What is being removed no longer counts against the quota.
    assert_eq!(store.uploaded_bytes(ada.id).await.expect("bytes"), 110);
    // Due: the deleted message's file, and the upload never attached for over a day.
    let cutoff = now() - Duration::hours(24);
    let mut due = store.uploads_to_remove(cutoff, 100).await.expect("due");
    due.sort();
    let mut want = vec![gone.file.id, old.file.id];
    want.sort();
    assert_eq!(due, want);
    assert_eq!(
        store.uploads_to_remove(cutoff, 1).await.expect("due").len(),
        1
    );
    // Forgetting takes only what is still due: a kept or fresh upload named by mistake stays.
    let forgotten = store
        .forget_uploads(
            &[gone.file.id, old.file.id, kept.file.id, fresh.file.id],
            cutoff,
        )
        .await
        .expect("forget");
    assert_eq!(forgotten, 2);
    assert_eq!(store.upload(gone.file.id).await.expect("get"), None);
    assert!(store.upload(kept.file.id).await.expect("get").is_some());
    assert!(store.upload(fresh.file.id).await.expect("get").is_some());
    assert!(store
        .uploads_to_remove(cutoff, 100)
        .await
        .expect("due")
        .is_empty());
    // The deleted message shows nothing of its files any more.
    let replay = store
        .events_after(&room("r"), None, 10)
        .await
        .expect("replay");
    assert!(replay
        .iter()
        .filter_map(|e| e.message())
        .all(|m| m.id != deleted.id));
}
