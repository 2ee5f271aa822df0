//! The socket's envelope decoders: protobuf bytes (`format=protobuf`) and JSON text, as a
//! client can send them. Neither may panic; a decoded protobuf frame is valid JSON that the
//! JSON parser accepts or refuses cleanly, and whatever the encoder writes decodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::api::{protobuf, socket};

fuzz_target!(|data: &[u8]| {
    if let Ok(json) = protobuf::decode_envelope(data) {
        let value: serde_json::Value = serde_json::from_str(&json).expect("decoder writes JSON");
        let _ = socket::envelope_outcome(&json);
        // What the server could write back decodes to the same envelope.
        if let Ok(bytes) = protobuf::encode_envelope(&json) {
            let again = protobuf::decode_envelope(&bytes).expect("our own bytes decode");
            let again: serde_json::Value = serde_json::from_str(&again).expect("JSON");
            assert_eq!(value, again);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = socket::envelope_outcome(text);
    }
});
