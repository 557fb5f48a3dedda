//! Cursors come back from clients (`since`, `before`): decoding never panics, and a decoded
//! cursor prints back to the same text, lower-cased.

#![no_main]

use banter_core::Cursor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cursor) = Cursor::parse("since", text) {
        assert_eq!(cursor.to_string(), text.to_ascii_lowercase());
        assert_eq!(Cursor::parse("since", &cursor.to_string()), Ok(cursor));
    }
});
