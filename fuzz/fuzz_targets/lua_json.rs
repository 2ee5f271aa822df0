//! JSON <-> Lua as scripts use it (`nk.json_decode`, payloads, notification content): any
//! text decodes into Lua or is refused; a decoded value encodes back to JSON that parses;
//! nothing panics, however deep or large.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::runtime::convert;

thread_local! {
    static LUA: mlua::Lua = mlua::Lua::new();
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    LUA.with(|lua| {
        if let Ok(value) = convert::decode(lua, text) {
            if let Ok(json) = convert::to_json(&value) {
                serde_json::from_str::<serde_json::Value>(&json).expect("the encoder writes JSON");
            }
        }
    });
});
