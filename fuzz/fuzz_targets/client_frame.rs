//! Any text a client sends on a WebSocket: parsing never panics, a refusal names a code and
//! serializes, and what is accepted obeys the rules the rest of banter relies on.

#![no_main]

use banter_core::frames::{parse, ClientFrame, ServerFrame};
use banter_core::{Emoji, MessageBody, RoomName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Err(e) => {
            assert!(!e.code.is_empty() && !e.message.is_empty());
            let json = ServerFrame::from(&e).to_json();
            assert!(json.starts_with('{'), "{json}");
        }
        Ok(frame) => {
            let room = match &frame {
                ClientFrame::Send { room, body, .. } => {
                    assert_eq!(MessageBody::parse(body.as_str()).as_ref(), Ok(body));
                    Some(room)
                }
                ClientFrame::Join { room, .. }
                | ClientFrame::Leave { room }
                | ClientFrame::Typing { room } => Some(room),
                ClientFrame::Read { room, cursor, .. } => {
                    assert_eq!(
                        cursor.to_string().parse::<banter_core::Cursor>(),
                        Ok(*cursor)
                    );
                    Some(room)
                }
                ClientFrame::Edit { body, .. } => {
                    assert_eq!(MessageBody::parse(body.as_str()).as_ref(), Ok(body));
                    None
                }
                ClientFrame::React { emoji, .. } => {
                    assert_eq!(Emoji::parse(emoji.as_str()).as_ref(), Ok(emoji));
                    None
                }
                ClientFrame::Delete { .. } | ClientFrame::Auth { .. } => None,
            };
            if let Some(room) = room {
                assert_eq!(RoomName::parse(room.as_str()).as_ref(), Ok(room));
            }
        }
    }
});
