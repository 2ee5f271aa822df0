//! Encodings, hashes and random bytes, as Nakama's Lua runtime offers them
//! (`server/runtime_lua_nakama.go`): what scripts use to sign webhooks, check passwords and
//! turn ids into bytes and back. Lua strings are byte strings, so inputs are taken as bytes
//! and binary outputs (a MAC, decoded base16) are returned as such, never as lossy text.
//! Like Nakama, an empty input is an argument error everywhere.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use mlua::{Lua, MultiValue};
use rand::RngCore;
use sha2::Digest;
use uuid::Uuid;

use super::{ret, Args, NkError, NkResult, Raw};

pub const FUNCTIONS: &[(&str, Raw)] = &[
    ("base16_encode", base16_encode),
    ("base16_decode", base16_decode),
    ("base64_encode", base64_encode),
    ("base64_decode", base64_decode),
    ("base64url_encode", base64url_encode),
    ("base64url_decode", base64url_decode),
    ("md5_hash", md5_hash),
    ("sha256_hash", sha256_hash),
    ("hmac_sha256_hash", hmac_sha256_hash),
    ("bcrypt_hash", bcrypt_hash),
    ("bcrypt_compare", bcrypt_compare),
    ("uuid_bytes_to_string", uuid_bytes_to_string),
    ("uuid_string_to_bytes", uuid_string_to_bytes),
    ("secure_random_bytes", secure_random_bytes),
];

/// Nakama's bcrypt cost for scripts and passwords alike: max(DefaultCost, 13).
const BCRYPT_COST: u32 = 13;

/// Argument `n` as bytes, refused when empty with `msg`.
fn bytes(args: &Args, n: usize, msg: &str) -> NkResult<Vec<u8>> {
    let b = args.check_bytes(n)?;
    if b.is_empty() {
        return Err(args.error(n, msg));
    }
    Ok(b)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `nk.base16_encode(input)`: lowercase hex.
fn base16_encode(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    ret(lua, hex(&bytes(args, 1, "expects string")?))
}

/// `nk.base16_decode(input)`: either case; an odd length or a non-hex digit is an error.
fn base16_decode(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let input = bytes(args, 1, "expects string")?;
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    if input.len() % 2 == 1 {
        return Err(NkError(
            "not a valid base16 string: encoding/hex: odd length hex string".into(),
        ));
    }
    let mut out = Vec::with_capacity(input.len() / 2);
    for pair in input.chunks(2) {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
            (None, _) | (_, None) => {
                let bad = if digit(pair[0]).is_none() {
                    pair[0]
                } else {
                    pair[1]
                };
                return Err(NkError(format!(
                    "not a valid base16 string: encoding/hex: invalid byte: U+{:04X} {:?}",
                    bad, bad as char
                )));
            }
        }
    }
    ret(lua, lua.create_string(&out)?)
}

/// `nk.base64_encode(input, padding = true)`.
fn base64_encode(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    encode_base64(lua, args, [&STANDARD, &STANDARD_NO_PAD])
}

/// `nk.base64_decode(input, padding = true)`: with padding, a short input is padded first
/// (so padding is optional); without, the input must carry its own.
fn base64_decode(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let pad_first = args.opt_bool(2, true)?;
    decode_base64(lua, args, pad_first, &STANDARD, "base64")
}

/// `nk.base64url_encode(input, padding = true)`.
fn base64url_encode(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    encode_base64(lua, args, [&URL_SAFE, &URL_SAFE_NO_PAD])
}

/// `nk.base64url_decode(input, padding = false)`: Nakama's flag reads the other way round
/// here: false (the default) pads a short input first, true requires the input's own.
fn base64url_decode(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let pad_first = !args.opt_bool(2, false)?;
    decode_base64(lua, args, pad_first, &URL_SAFE, "base64 url")
}

type Base64 = base64::engine::GeneralPurpose;

/// Encodes argument 1 with the padded engine, or the raw one when argument 2 is false.
fn encode_base64(lua: &Lua, args: &Args, [padded, raw]: [&Base64; 2]) -> NkResult<MultiValue> {
    let input = bytes(args, 1, "expects string")?;
    let engine = if args.opt_bool(2, true)? { padded } else { raw };
    ret(lua, engine.encode(input))
}

/// Decodes argument 1 as Go's padded `StdEncoding`/`URLEncoding` do, after padding a short
/// input when `pad_first` (which makes the padding optional; without, it is required).
fn decode_base64(
    lua: &Lua,
    args: &Args,
    pad_first: bool,
    engine: &Base64,
    what: &str,
) -> NkResult<MultiValue> {
    let mut input = bytes(args, 1, "expects string")?;
    if pad_first {
        while input.len() % 4 != 0 {
            input.push(b'=');
        }
    }
    let decoded = engine
        .decode(&input)
        .map_err(|e| NkError(format!("not a valid {what} string: {e}")))?;
    ret(lua, lua.create_string(&decoded)?)
}

/// `nk.md5_hash(input)`: lowercase hex.
fn md5_hash(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let input = bytes(args, 1, "expects input string")?;
    ret(lua, hex(&md5::Md5::digest(&input)))
}

/// `nk.sha256_hash(input)`: lowercase hex.
fn sha256_hash(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let input = bytes(args, 1, "expects input string")?;
    ret(lua, hex(&sha2::Sha256::digest(&input)))
}

/// `nk.hmac_sha256_hash(input, key)`: the raw 32-byte MAC, as Nakama returns it (hex it with
/// `nk.base16_encode`).
fn hmac_sha256_hash(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let input = bytes(args, 1, "expects input string")?;
    let key = bytes(args, 2, "expects key string")?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key)
        .map_err(|e| NkError(format!("error creating hash: {e}")))?;
    mac.update(&input);
    ret(lua, lua.create_string(mac.finalize().into_bytes())?)
}

/// `nk.bcrypt_hash(input)`: a `$2a$13$...` hash; bcrypt reads at most 72 bytes.
fn bcrypt_hash(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let input = bytes(args, 1, "expects string")?;
    if input.len() > 72 {
        return Err(NkError(
            "error hashing input: bcrypt: password length exceeds 72 bytes".into(),
        ));
    }
    let hash = off_the_worker(lua, move || bcrypt::hash_with_result(&input, BCRYPT_COST))?
        .map_err(|e| NkError(format!("error hashing input: {e}")))?;
    ret(lua, hash.format_for_version(bcrypt::Version::TwoA))
}

/// `nk.bcrypt_compare(hash, plaintext)`: true on a match, false on a mismatch or a hash too
/// short to be one; a malformed hash is an error.
fn bcrypt_compare(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let hash = bytes(args, 1, "expects string")?;
    let plain = bytes(args, 2, "expects string")?;
    let hash = String::from_utf8_lossy(&hash).into_owned();
    if hash.len() < 59 {
        return ret(lua, false);
    }
    match off_the_worker(lua, move || bcrypt::verify(&plain, &hash))? {
        Ok(matched) => ret(lua, matched),
        Err(e) => Err(NkError(format!("error comparing hash and plaintext: {e}"))),
    }
}

/// Runs `f` (a bcrypt round: a quarter of a second of CPU) on tokio's blocking threads, so an
/// inline call hands its worker's other tasks away while it waits, as for any core call.
fn off_the_worker<T: Send + 'static>(
    lua: &Lua,
    f: impl FnOnce() -> T + Send + 'static,
) -> NkResult<T> {
    let rt = super::shared(lua)?;
    let task = rt.handle.spawn_blocking(f);
    rt.wait(task).map_err(|e| NkError(e.to_string()))
}

/// `nk.uuid_bytes_to_string(bytes)`: 16 bytes to the canonical lowercase form.
fn uuid_bytes_to_string(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let input = bytes(args, 1, "expects a UUID byte string")?;
    let id = Uuid::from_slice(&input).map_err(|_| args.error(1, "not a valid UUID byte string"))?;
    ret(lua, id.to_string())
}

/// `nk.uuid_string_to_bytes(id)`: any spelling Nakama's parser takes (dashed, plain hex,
/// braced, `urn:uuid:`) to 16 bytes.
fn uuid_string_to_bytes(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let input = args.check_string(1)?;
    if input.is_empty() {
        return Err(args.error(1, "expects a UUID string"));
    }
    let id = Uuid::try_parse(&input).map_err(|_| args.error(1, "not a valid UUID string"))?;
    ret(lua, lua.create_string(id.as_bytes())?)
}

/// `nk.secure_random_bytes(count)`: 1 to 1,000 bytes from rand's thread generator (a CSPRNG
/// seeded and reseeded from the operating system).
fn secure_random_bytes(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let count = args.check_int(1)?;
    if !(1..=1000).contains(&count) {
        return Err(args.error(1, "count must be 1-1000"));
    }
    let mut out = vec![0u8; count as usize];
    rand::rng().fill_bytes(&mut out);
    ret(lua, lua.create_string(&out)?)
}
