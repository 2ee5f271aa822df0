//! Session tokens as clients send them: any text is verified or refused without panicking,
//! and nothing but a token signed with the key passes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::core::sessions;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    // The fuzzer cannot sign with this key, so nothing it makes may pass.
    assert!(sessions::parse_token(token, "fuzz-key-the-fuzzer-does-not-know").is_none());
});
