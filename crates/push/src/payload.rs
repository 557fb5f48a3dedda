//! What a push says, before it is encrypted to the subscription's keys (RFC 8291,
//! `aes128gcm`, by `web-push-native`), and the `Topic` that collapses a room's pushes.

use banter_core::Message;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Characters of a body a push carries at most: enough for a lock screen, and the whole
/// payload stays well under the 4 KB every push service takes.
pub const PREVIEW_CHARS: usize = 200;

/// Why a user is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A direct message to them.
    Dm,
    /// They were mentioned (`@name`).
    Mention,
}

/// The JSON a push decrypts to: what the service worker shows and where a click goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// Whom it is for: a browser shared by several accounts shows it in that one's window.
    pub user: String,
    pub room: String,
    pub author: String,
    /// The message's id.
    pub id: uuid::Uuid,
    pub cursor: String,
    pub reason: Reason,
    pub created_at: String,
    /// The start of the body; left out with `BANTER_PUSH_PREVIEW=off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The page that opens the room.
    pub url: String,
}

impl Payload {
    pub fn of(message: &Message, user: &str, reason: Reason, preview: bool) -> Self {
        let body = preview.then(|| preview_of(message));
        Self {
            user: user.to_owned(),
            room: message.room.as_str().to_owned(),
            author: message.author.as_str().to_owned(),
            id: message.id,
            cursor: message.cursor.to_string(),
            reason,
            created_at: message
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            body,
            url: format!("/chat?room={}", message.room.as_str()),
        }
    }
}

/// The body cut to [`PREVIEW_CHARS`], or what a message of files only carries.
fn preview_of(message: &Message) -> String {
    let body = message.body.trim();
    if body.is_empty() {
        return match message.attachments.as_slice() {
            [] => String::new(),
            [one] => format!("sent {}", one.name),
            many => format!("sent {} files", many.len()),
        };
    }
    let mut chars = body.chars();
    let cut: String = chars.by_ref().take(PREVIEW_CHARS).collect();
    if chars.next().is_some() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// The push's `Topic` (RFC 8030 §5.4): the same for every push of a room, so a push service
/// holding several for an offline device keeps only the newest. At most 32 characters of the
/// base64url alphabet, which room names are not: a digest of the name.
pub fn topic(room: &str) -> String {
    let digest = Sha256::digest(room.as_bytes());
    let mut text = URL_SAFE_NO_PAD.encode(digest);
    text.truncate(32);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use web_push_native::p256::SecretKey;
    use web_push_native::Auth;

    fn b64(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).expect("base64url")
    }

    /// RFC 8291 §5: the user agent's keys decrypt the example message to its plaintext.
    #[test]
    fn the_rfc_8291_example_decrypts() {
        let ua_private = SecretKey::from_slice(&b64("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"))
            .expect("key");
        let ua_public = b64(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        );
        use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;
        assert_eq!(
            ua_private.public_key().to_encoded_point(false).as_bytes(),
            ua_public.as_slice()
        );
        let auth = Auth::clone_from_slice(&b64("BTBZMqHH6r4Tts7J_aSIgg"));
        let body = b64(
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLoc\
             InmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyou\
             BWLVWGNWQexSgSxsj_Qulcy4a-fN",
        );
        let plain = web_push_native::decrypt(body, &ua_private, &auth).expect("decrypts");
        assert_eq!(plain, b"When I grow up, I want to be a watermelon");
    }

    /// What banter encrypts, the subscription's keys decrypt; each push is encrypted afresh.
    #[test]
    fn a_payload_round_trips_and_no_two_pushes_look_alike() {
        let ua = SecretKey::random(&mut web_push_native::p256::elliptic_curve::rand_core::OsRng);
        let auth = Auth::clone_from_slice(&[9u8; 16]);
        let text = br#"{"room":"dm:ann:bob","author":"ann"}"#.to_vec();
        let one = web_push_native::encrypt(text.clone(), &ua.public_key(), &auth).expect("enc");
        let two = web_push_native::encrypt(text.clone(), &ua.public_key(), &auth).expect("enc");
        assert_ne!(one, two, "a new salt and key each time");
        assert_eq!(
            web_push_native::decrypt(one, &ua, &auth).expect("dec"),
            text
        );
        let wrong = Auth::clone_from_slice(&[8u8; 16]);
        assert!(web_push_native::decrypt(two, &ua, &wrong).is_err());
    }

    #[test]
    fn topics_are_short_url_safe_and_per_room() {
        let a = topic("dm:ann:bob");
        assert_eq!(a.len(), 32);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(a, topic("dm:ann:bob"));
        assert_ne!(a, topic("general"));
    }
}
