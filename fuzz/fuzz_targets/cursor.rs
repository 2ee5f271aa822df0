//! The list cursor clients hand back (`cacheable_cursor`, `cursor`): any text decodes or is
//! refused without panicking, and a decoded position encodes to a cursor that decodes to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::core::cursor;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(position) = cursor::decode(text) {
        let again = cursor::decode(&cursor::encode(position)).expect("our own cursor decodes");
        assert_eq!(position, again);
    }
});
