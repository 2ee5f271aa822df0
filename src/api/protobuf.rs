//! The socket's `format=protobuf`: Nakama's binary `nakama.realtime.Envelope` frames, for the
//! `@heroiclabs/nakama-js-protobuf` adapter and the SDKs that speak protobuf.
//!
//! Why a transcoder and not generated message types: the session loop, the chat door and
//! core's cached frames all speak the JSON envelopes (protojson), and proto3's binary form
//! carries the same fields under numbers. So a protobuf session converts each binary frame
//! it reads into the JSON envelope the loop already handles, and each JSON frame it writes
//! into binary, using the field tables below (numbers from Nakama's `realtime.proto` and
//! `api.proto`) for the envelopes Tidings serves. One code path, two encodings; no build
//! step, no generated code to keep in sync.
//!
//! Decoding follows proto3: unknown fields are skipped, absent fields are absent (protojson
//! leaves defaults out too), and of the envelope's `oneof` the last message wins. Malformed
//! input (truncated, wrong wire type, bad UTF-8) is an error, which closes the socket with
//! "received malformed payload" as for bad JSON. Frames are at most
//! `socket.max_message_size_bytes`, and nesting is fixed by the tables, so decoding is bounded.

use serde_json::{Map, Value};

/// How one field is written.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int32,
    Bool,
    Msg(&'static [Field]),
    /// `google.protobuf.Timestamp`; an RFC 3339 string in JSON.
    Timestamp,
    /// `google.protobuf.Int32Value`, `BoolValue`, `StringValue`: the bare value in JSON.
    Int32Value,
    BoolValue,
    StringValue,
    /// `map<string, string>`.
    StrMap,
    /// A message Tidings does not read: decoded as `{}` (the handler answers "not supported").
    Opaque,
}

struct Field {
    num: u32,
    name: &'static str,
    kind: Kind,
    repeated: bool,
}

const fn f(num: u32, name: &'static str, kind: Kind) -> Field {
    Field {
        num,
        name,
        kind,
        repeated: false,
    }
}

const fn list(num: u32, name: &'static str, kind: Kind) -> Field {
    Field {
        num,
        name,
        kind,
        repeated: true,
    }
}

use Kind::*;

const EMPTY: &[Field] = &[];

const USER_PRESENCE: &[Field] = &[
    f(1, "user_id", Str),
    f(2, "session_id", Str),
    f(3, "username", Str),
    f(4, "persistence", Bool),
    f(5, "status", StringValue),
];

const CHANNEL: &[Field] = &[
    f(1, "id", Str),
    list(2, "presences", Msg(USER_PRESENCE)),
    f(3, "self", Msg(USER_PRESENCE)),
    f(4, "room_name", Str),
    f(5, "group_id", Str),
    f(6, "user_id_one", Str),
    f(7, "user_id_two", Str),
];

const CHANNEL_JOIN: &[Field] = &[
    f(1, "target", Str),
    f(2, "type", Int32),
    f(3, "persistence", BoolValue),
    f(4, "hidden", BoolValue),
];

const CHANNEL_LEAVE: &[Field] = &[f(1, "channel_id", Str)];

const CHANNEL_MESSAGE: &[Field] = &[
    f(1, "channel_id", Str),
    f(2, "message_id", Str),
    f(3, "code", Int32Value),
    f(4, "sender_id", Str),
    f(5, "username", Str),
    f(6, "content", Str),
    f(7, "create_time", Timestamp),
    f(8, "update_time", Timestamp),
    f(9, "persistent", BoolValue),
    f(10, "room_name", Str),
    f(11, "group_id", Str),
    f(12, "user_id_one", Str),
    f(13, "user_id_two", Str),
];

const CHANNEL_MESSAGE_ACK: &[Field] = &[
    f(1, "channel_id", Str),
    f(2, "message_id", Str),
    f(3, "code", Int32Value),
    f(4, "username", Str),
    f(5, "create_time", Timestamp),
    f(6, "update_time", Timestamp),
    f(7, "persistent", BoolValue),
    f(8, "room_name", Str),
    f(9, "group_id", Str),
    f(10, "user_id_one", Str),
    f(11, "user_id_two", Str),
];

const CHANNEL_MESSAGE_SEND: &[Field] = &[f(1, "channel_id", Str), f(2, "content", Str)];

const CHANNEL_PRESENCE_EVENT: &[Field] = &[
    f(1, "channel_id", Str),
    list(2, "joins", Msg(USER_PRESENCE)),
    list(3, "leaves", Msg(USER_PRESENCE)),
    f(4, "room_name", Str),
    f(5, "group_id", Str),
    f(6, "user_id_one", Str),
    f(7, "user_id_two", Str),
];

const ERROR: &[Field] = &[
    f(1, "code", Int32),
    f(2, "message", Str),
    f(3, "context", StrMap),
];

const NOTIFICATION: &[Field] = &[
    f(1, "id", Str),
    f(2, "subject", Str),
    f(3, "content", Str),
    f(4, "code", Int32),
    f(5, "sender_id", Str),
    f(6, "create_time", Timestamp),
    f(7, "persistent", Bool),
];

const NOTIFICATIONS: &[Field] = &[list(1, "notifications", Msg(NOTIFICATION))];

const RPC: &[Field] = &[f(1, "id", Str), f(2, "payload", Str), f(3, "http_key", Str)];

const STATUS_PRESENCE_EVENT: &[Field] = &[
    list(2, "joins", Msg(USER_PRESENCE)),
    list(3, "leaves", Msg(USER_PRESENCE)),
];

/// `nakama.realtime.Envelope`: `cid`, then a oneof of every message (2..=50).
const ENVELOPE: &[Field] = &[
    f(1, "cid", Str),
    f(2, "channel", Msg(CHANNEL)),
    f(3, "channel_join", Msg(CHANNEL_JOIN)),
    f(4, "channel_leave", Msg(CHANNEL_LEAVE)),
    f(5, "channel_message", Msg(CHANNEL_MESSAGE)),
    f(6, "channel_message_ack", Msg(CHANNEL_MESSAGE_ACK)),
    f(7, "channel_message_send", Msg(CHANNEL_MESSAGE_SEND)),
    f(8, "channel_message_update", Opaque),
    f(9, "channel_message_remove", Opaque),
    f(10, "channel_presence_event", Msg(CHANNEL_PRESENCE_EVENT)),
    f(11, "error", Msg(ERROR)),
    f(12, "match", Opaque),
    f(13, "match_create", Opaque),
    f(14, "match_data", Opaque),
    f(15, "match_data_send", Opaque),
    f(16, "match_join", Opaque),
    f(17, "match_leave", Opaque),
    f(18, "match_presence_event", Opaque),
    f(19, "matchmaker_add", Opaque),
    f(20, "matchmaker_matched", Opaque),
    f(21, "matchmaker_remove", Opaque),
    f(22, "matchmaker_ticket", Opaque),
    f(23, "notifications", Msg(NOTIFICATIONS)),
    f(24, "rpc", Msg(RPC)),
    f(25, "status", Opaque),
    f(26, "status_follow", Opaque),
    f(27, "status_presence_event", Msg(STATUS_PRESENCE_EVENT)),
    f(28, "status_unfollow", Opaque),
    f(29, "status_update", Opaque),
    f(30, "stream_data", Opaque),
    f(31, "stream_presence_event", Opaque),
    f(32, "ping", Msg(EMPTY)),
    f(33, "pong", Msg(EMPTY)),
    f(34, "party", Opaque),
    f(35, "party_create", Opaque),
    f(36, "party_join", Opaque),
    f(37, "party_leave", Opaque),
    f(38, "party_promote", Opaque),
    f(39, "party_leader", Opaque),
    f(40, "party_accept", Opaque),
    f(41, "party_remove", Opaque),
    f(42, "party_close", Opaque),
    f(43, "party_join_request_list", Opaque),
    f(44, "party_join_request", Opaque),
    f(45, "party_matchmaker_add", Opaque),
    f(46, "party_matchmaker_remove", Opaque),
    f(47, "party_matchmaker_ticket", Opaque),
    f(48, "party_data", Opaque),
    f(49, "party_data_send", Opaque),
    f(50, "party_presence_event", Opaque),
];

const VARINT: u32 = 0;
const I64: u32 = 1;
const LEN: u32 = 2;
const I32: u32 = 5;

/// A JSON envelope (as the session loop writes it) as a binary frame. Fails on a key or
/// value the tables do not cover: a frame Tidings writes that protobuf clients cannot get.
pub fn encode_envelope(json: &str) -> Result<Vec<u8>, String> {
    let value: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let Value::Object(map) = value else {
        return Err("an envelope is a JSON object".into());
    };
    let mut out = Vec::with_capacity(json.len());
    encode_message(ENVELOPE, &map, &mut out)?;
    Ok(out)
}

/// A binary frame from a client as the JSON envelope the session loop handles.
pub fn decode_envelope(bytes: &[u8]) -> Result<String, String> {
    let map = decode_message(ENVELOPE, bytes, true)?;
    Ok(Value::Object(map).to_string())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, num: u32, wire: u32) {
    put_varint(out, u64::from(num << 3 | wire));
}

fn put_bytes(out: &mut Vec<u8>, num: u32, bytes: &[u8]) {
    put_tag(out, num, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_message(
    out: &mut Vec<u8>,
    num: u32,
    fill: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    let mut inner = Vec::new();
    fill(&mut inner)?;
    put_bytes(out, num, &inner);
    Ok(())
}

fn int32_of(name: &str, v: &Value) -> Result<i64, String> {
    v.as_i64()
        .filter(|n| i32::try_from(*n).is_ok())
        .ok_or_else(|| format!("{name}: {v} is not an int32"))
}

fn str_of<'a>(name: &str, v: &'a Value) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("{name}: {v} is not a string"))
}

fn bool_of(name: &str, v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("{name}: {v} is not a boolean"))
}

/// Writes the fields of `map` in field-number order (proto's canonical order); a key with
/// no field is an error.
fn encode_message(
    schema: &[Field],
    map: &Map<String, Value>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut written = 0;
    for field in schema {
        let Some(value) = map.get(field.name) else {
            continue;
        };
        written += 1;
        if field.repeated {
            let items = value
                .as_array()
                .ok_or_else(|| format!("{}: a list was expected", field.name))?;
            for item in items {
                encode_field(field, item, out)?;
            }
        } else {
            encode_field(field, value, out)?;
        }
    }
    if written < map.len() {
        let unknown = map
            .keys()
            .find(|k| schema.iter().all(|f| f.name != k.as_str()));
        return Err(format!("{unknown:?} has no protobuf field here"));
    }
    Ok(())
}

fn encode_field(field: &Field, v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let (num, name) = (field.num, field.name);
    match field.kind {
        Str => {
            let s = str_of(name, v)?;
            if !s.is_empty() {
                put_bytes(out, num, s.as_bytes());
            }
        }
        Int32 => {
            let n = int32_of(name, v)?;
            if n != 0 {
                put_tag(out, num, VARINT);
                // Negative int32 values are sign-extended to 64 bits on the wire.
                put_varint(out, n as u64);
            }
        }
        Bool => {
            if bool_of(name, v)? {
                put_tag(out, num, VARINT);
                put_varint(out, 1);
            }
        }
        Msg(schema) => {
            let map = v
                .as_object()
                .ok_or_else(|| format!("{name}: an object was expected"))?;
            put_message(out, num, |inner| encode_message(schema, map, inner))?;
        }
        Timestamp => {
            let text = str_of(name, v)?;
            let at = humantime::parse_rfc3339(text).map_err(|e| format!("{name}: {e}"))?;
            let since = at
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| format!("{name}: before 1970"))?;
            put_message(out, num, |inner| {
                if since.as_secs() != 0 {
                    put_tag(inner, 1, VARINT);
                    put_varint(inner, since.as_secs());
                }
                if since.subsec_nanos() != 0 {
                    put_tag(inner, 2, VARINT);
                    put_varint(inner, u64::from(since.subsec_nanos()));
                }
                Ok(())
            })?;
        }
        Int32Value => {
            let n = int32_of(name, v)?;
            put_message(out, num, |inner| {
                if n != 0 {
                    put_tag(inner, 1, VARINT);
                    put_varint(inner, n as u64);
                }
                Ok(())
            })?;
        }
        BoolValue => {
            let b = bool_of(name, v)?;
            put_message(out, num, |inner| {
                if b {
                    put_tag(inner, 1, VARINT);
                    put_varint(inner, 1);
                }
                Ok(())
            })?;
        }
        StringValue => {
            let s = str_of(name, v)?;
            put_message(out, num, |inner| {
                if !s.is_empty() {
                    put_bytes(inner, 1, s.as_bytes());
                }
                Ok(())
            })?;
        }
        StrMap => {
            let map = v
                .as_object()
                .ok_or_else(|| format!("{name}: an object was expected"))?;
            for (k, val) in map {
                let val = str_of(name, val)?;
                put_message(out, num, |inner| {
                    put_bytes(inner, 1, k.as_bytes());
                    put_bytes(inner, 2, val.as_bytes());
                    Ok(())
                })?;
            }
        }
        Opaque => return Err(format!("{name} is never sent by Tidings")),
    }
    Ok(())
}

/// Reads protobuf's wire format from a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.bytes.split_first().ok_or("truncated varint")?;
            self.bytes = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.bytes.len() {
            return Err("truncated field".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn len_delimited(&mut self) -> Result<&'a [u8], String> {
        let n = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
        self.take(n)
    }

    fn skip(&mut self, wire: u32) -> Result<(), String> {
        match wire {
            VARINT => self.varint().map(|_| ()),
            I64 => self.take(8).map(|_| ()),
            LEN => self.len_delimited().map(|_| ()),
            I32 => self.take(4).map(|_| ()),
            other => Err(format!("unsupported wire type {other}")),
        }
    }
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "a string field is not UTF-8".to_string())
}

/// Decodes one message; with `oneof`, every field but the first (`cid`) is one oneof.
fn decode_message(
    schema: &[Field],
    bytes: &[u8],
    oneof: bool,
) -> Result<Map<String, Value>, String> {
    let mut r = Reader { bytes };
    let mut map = Map::new();
    while !r.bytes.is_empty() {
        let tag = r.varint()?;
        let (num, wire) = ((tag >> 3) as u32, (tag & 7) as u32);
        let Some(field) = schema.iter().find(|f| f.num == num) else {
            r.skip(wire)?;
            continue;
        };
        let value = decode_field(field, wire, &mut r)?;
        // proto3: a scalar equal to its default is absent (protojson omits it too), so an
        // explicit empty `cid` is no cid, as in Nakama.
        let default = match field.kind {
            Str => value == "",
            Int32 => value == 0,
            Bool => value == false,
            _ => false,
        };
        if default && !field.repeated {
            continue;
        }
        if oneof && num != 1 {
            // Of a oneof, the last one on the wire wins (as Go's proto.Unmarshal does).
            map.retain(|k, _| k == "cid");
        }
        if field.repeated {
            match map
                .entry(field.name)
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                Value::Array(items) => items.push(value),
                _ => return Err("repeated field mixed with a single value".into()),
            }
        } else if let (StrMap, Some(Value::Object(existing)), Value::Object(entry)) =
            (field.kind, map.get_mut(field.name), &value)
        {
            existing.extend(entry.clone());
        } else {
            map.insert(field.name.to_string(), value);
        }
    }
    Ok(map)
}

fn expect(wire: u32, want: u32, name: &str) -> Result<(), String> {
    if wire == want {
        Ok(())
    } else {
        Err(format!("{name}: wire type {wire}, expected {want}"))
    }
}

fn decode_field(field: &Field, wire: u32, r: &mut Reader) -> Result<Value, String> {
    let name = field.name;
    let want = match field.kind {
        Int32 | Bool => VARINT,
        _ => LEN,
    };
    expect(wire, want, name)?;
    Ok(match field.kind {
        Str => Value::from(utf8(r.len_delimited()?)?),
        Int32 => Value::from(r.varint()? as i32),
        Bool => Value::from(r.varint()? != 0),
        Msg(schema) => Value::Object(decode_message(schema, r.len_delimited()?, false)?),
        Opaque => {
            r.len_delimited()?;
            Value::Object(Map::new())
        }
        Timestamp => timestamp(Reader {
            bytes: r.len_delimited()?,
        })?,
        Int32Value | BoolValue | StringValue => {
            let inner = Reader {
                bytes: r.len_delimited()?,
            };
            wrapper(field.kind, inner, name)?
        }
        StrMap => {
            let entry = decode_message(
                &[f(1, "key", Str), f(2, "value", Str)],
                r.len_delimited()?,
                false,
            )?;
            let key = entry.get("key").and_then(Value::as_str).unwrap_or("");
            let value = entry.get("value").cloned().unwrap_or(Value::from(""));
            let mut map = Map::new();
            map.insert(key.to_string(), value);
            Value::Object(map)
        }
    })
}

/// A `google.protobuf.Timestamp` as RFC 3339 (what protojson writes).
fn timestamp(mut r: Reader) -> Result<Value, String> {
    let (mut seconds, mut nanos) = (0u64, 0u64);
    while !r.bytes.is_empty() {
        let tag = r.varint()?;
        match ((tag >> 3) as u32, (tag & 7) as u32) {
            (1, VARINT) => seconds = r.varint()?,
            (2, VARINT) => nanos = r.varint()?,
            (_, wire) => r.skip(wire)?,
        }
    }
    // protobuf's valid range ends at 9999-12-31T23:59:59Z; later years do not format (found
    // by the envelope fuzz target: the formatter panicked).
    const LAST_SECOND: u64 = 253_402_300_799;
    if seconds > LAST_SECOND {
        return Err("timestamp out of range".into());
    }
    let seconds = i64::try_from(seconds).map_err(|_| "timestamp before 1970")?;
    let nanos = u32::try_from(nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or("timestamp nanos out of range")?;
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds.unsigned_abs());
    // protojson: 0, 3, 6 or 9 fractional digits.
    let whole = humantime::format_rfc3339_seconds(at).to_string();
    let fraction = match nanos {
        0 => String::new(),
        n if n % 1_000_000 == 0 => format!(".{:03}", n / 1_000_000),
        n if n % 1_000 == 0 => format!(".{:06}", n / 1_000),
        n => format!(".{n:09}"),
    };
    Ok(Value::from(format!(
        "{}{fraction}Z",
        whole.trim_end_matches('Z')
    )))
}

/// The value of a wrapper message (`google.protobuf.*Value`): field 1, or its default.
fn wrapper(kind: Kind, mut r: Reader, name: &str) -> Result<Value, String> {
    let mut value = match kind {
        Int32Value => Value::from(0),
        BoolValue => Value::from(false),
        _ => Value::from(""),
    };
    while !r.bytes.is_empty() {
        let tag = r.varint()?;
        let (num, wire) = ((tag >> 3) as u32, (tag & 7) as u32);
        if num != 1 {
            r.skip(wire)?;
            continue;
        }
        value = match kind {
            Int32Value => {
                expect(wire, VARINT, name)?;
                Value::from(r.varint()? as i32)
            }
            BoolValue => {
                expect(wire, VARINT, name)?;
                Value::from(r.varint()? != 0)
            }
            _ => {
                expect(wire, LEN, name)?;
                Value::from(utf8(r.len_delimited()?)?)
            }
        };
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        serde_json::from_str(text).expect("json")
    }

    #[test]
    fn a_ping_with_cid_decodes_and_its_pong_encodes_byte_for_byte() {
        // cid "7" (field 1), ping {} (field 32: tag 0x82 0x02, length 0).
        let ping = [0x0a, 0x01, b'7', 0x82, 0x02, 0x00];
        assert_eq!(
            json(&decode_envelope(&ping).expect("decodes")),
            json(r#"{"cid":"7","ping":{}}"#)
        );
        // pong is field 33: tag 0x8a 0x02.
        assert_eq!(
            encode_envelope(r#"{"cid":"7","pong":{}}"#).expect("encodes"),
            [0x0a, 0x01, b'7', 0x8a, 0x02, 0x00]
        );
    }

    #[test]
    fn a_notification_uses_nakamas_field_numbers_and_wrappers() {
        let frame = r#"{"notifications":{"notifications":[{"id":"a","code":-2,
            "create_time":"1970-01-01T00:00:01Z","persistent":true}]}}"#;
        let notification = [
            0x0a, 0x01, b'a', // id = 1
            0x20, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // code = 4, -2
            0x32, 0x02, 0x08, 0x01, // create_time = 6: Timestamp{seconds: 1}
            0x38, 0x01, // persistent = 7
        ];
        let mut expected = vec![0xba, 0x01, notification.len() as u8 + 2, 0x0a];
        expected.push(notification.len() as u8);
        expected.extend_from_slice(&notification);
        assert_eq!(encode_envelope(frame).expect("encodes"), expected);
    }

    #[test]
    fn an_rpc_request_decodes_and_unknown_fields_are_skipped() {
        // rpc (field 24, tag 0xc2 0x01) {id "e", payload "p", field 9 varint 5 (unknown)}.
        let bytes = [
            0xc2, 0x01, 0x08, 0x0a, 0x01, b'e', 0x12, 0x01, b'p', 0x48, 0x05,
        ];
        assert_eq!(
            json(&decode_envelope(&bytes).expect("decodes")),
            json(r#"{"rpc":{"id":"e","payload":"p"}}"#)
        );
    }

    /// Found by the envelope fuzz target: an explicit empty cid decoded to `"cid":""`, which
    /// then did not survive a round trip (and would have been echoed as a cid).
    #[test]
    fn scalars_at_their_default_decode_as_absent() {
        // cid "" (field 1, length 0), then ping {}.
        let bytes = [0x0a, 0x00, 0x82, 0x02, 0x00];
        assert_eq!(
            json(&decode_envelope(&bytes).expect("decodes")),
            json(r#"{"ping":{}}"#)
        );
        // error {code 0, message ""} keeps only the message object itself.
        let bytes = [0x5a, 0x04, 0x08, 0x00, 0x12, 0x00];
        assert_eq!(
            json(&decode_envelope(&bytes).expect("decodes")),
            json(r#"{"error":{}}"#)
        );
    }

    /// Found by the envelope fuzz target: a Timestamp past year 9999 made the formatter panic.
    #[test]
    fn a_timestamp_past_year_9999_is_refused_not_a_panic() {
        // channel_message (field 5) { create_time (field 7) { seconds: 2^40 } }.
        let mut ts = vec![0x08];
        put_varint(&mut ts, 1 << 40);
        let mut msg = vec![0x3a, ts.len() as u8];
        msg.extend_from_slice(&ts);
        let mut bytes = vec![0x2a, msg.len() as u8];
        bytes.extend_from_slice(&msg);
        assert!(decode_envelope(&bytes).is_err());
        // The last valid second still decodes.
        let mut ts = vec![0x08];
        put_varint(&mut ts, 253_402_300_799);
        let mut msg = vec![0x3a, ts.len() as u8];
        msg.extend_from_slice(&ts);
        let mut bytes = vec![0x2a, msg.len() as u8];
        bytes.extend_from_slice(&msg);
        assert_eq!(
            json(&decode_envelope(&bytes).expect("decodes")),
            json(r#"{"channel_message":{"create_time":"9999-12-31T23:59:59Z"}}"#)
        );
    }

    #[test]
    fn of_the_oneof_the_last_message_wins() {
        let bytes = [0x82, 0x02, 0x00, 0x8a, 0x02, 0x00];
        assert_eq!(
            json(&decode_envelope(&bytes).expect("decodes")),
            json(r#"{"pong":{}}"#)
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            &[0x0a, 0x05, b'x'][..],             // length past the end
            &[0x82][..],                         // truncated tag
            &[0x0a, 0x02, 0xff, 0xfe][..],       // cid not UTF-8
            &[0x08, 0x01][..],                   // cid with a varint wire type
            &[0xc2, 0x01, 0x02, 0x0b, 0x00][..], // wire type 3 (groups) inside rpc
            &[0xff; 12][..],                     // a varint longer than 10 bytes
        ] {
            assert!(decode_envelope(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_field_kind_round_trips() {
        let frames = [
            r#"{"cid":"3","channel":{"id":"2...room","presences":[{"user_id":"u","session_id":"s",
               "username":"n","persistence":true,"status":""}],"self":{"user_id":"u"},"room_name":"room"}}"#,
            r#"{"channel_message":{"channel_id":"c","message_id":"m","code":0,"sender_id":"s",
               "username":"n","content":"{}","create_time":"2026-11-29T10:00:00.123456Z",
               "update_time":"2026-11-29T10:00:00Z","persistent":false,"user_id_one":"a","user_id_two":"b"}}"#,
            r#"{"cid":"1","error":{"code":3,"message":"bad","context":{"k":"v","x":"y"}}}"#,
            r#"{"status_presence_event":{"joins":[{"user_id":"u","session_id":"s","username":"n","status":"on"}]}}"#,
            r#"{"cid":"9","channel_join":{"target":"room","type":1,"persistence":true,"hidden":false}}"#,
        ];
        for frame in frames {
            let bytes = encode_envelope(frame).expect("encodes");
            assert_eq!(
                json(&decode_envelope(&bytes).expect("decodes")),
                json(frame),
                "{frame}"
            );
        }
    }

    #[test]
    fn a_frame_the_tables_do_not_cover_is_refused() {
        assert!(encode_envelope(r#"{"tidings_inbox":{"unread":1}}"#).is_err());
        assert!(encode_envelope(r#"{"notifications":{"notifications":[{"code":"x"}]}}"#).is_err());
    }
}
