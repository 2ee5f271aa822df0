//! The notification list cursor: a position `(create_time, id)` in a user's inbox.
//!
//! Clients cache it across restarts, so its format is fixed. We emit exactly the bytes Nakama
//! emits (a Go `gob` of `{NotificationID []byte, CreateTime int64}`, base64url without padding;
//! NAKAMA-SPEC §3.1), so a cursor taken from Nakama keeps working after a studio migrates, and
//! decode only that layout. Anything else is "malformed".

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

/// The gob type definition Go writes before the first value of `notificationCacheableCursor`.
const PREFIX: [u8; 75] = [
    0x4a, 0x7f, 0x03, 0x01, 0x01, 0x1b, 0x6e, 0x6f, 0x74, 0x69, 0x66, 0x69, 0x63, 0x61, 0x74, 0x69,
    0x6f, 0x6e, 0x43, 0x61, 0x63, 0x68, 0x65, 0x61, 0x62, 0x6c, 0x65, 0x43, 0x75, 0x72, 0x73, 0x6f,
    0x72, 0x01, 0xff, 0x80, 0x00, 0x01, 0x02, 0x01, 0x0e, 0x4e, 0x6f, 0x74, 0x69, 0x66, 0x69, 0x63,
    0x61, 0x74, 0x69, 0x6f, 0x6e, 0x49, 0x44, 0x01, 0x0a, 0x00, 0x01, 0x0a, 0x43, 0x72, 0x65, 0x61,
    0x74, 0x65, 0x54, 0x69, 0x6d, 0x65, 0x01, 0x04, 0x00, 0x00, 0x00,
];
/// The gob type id of the struct (64, encoded as a gob int).
const TYPE_ID: [u8; 2] = [0xff, 0x80];
/// Longest cursor text we try to decode; a real one is about 150 characters.
const MAX_TEXT: usize = 512;

/// A position in an inbox. `None` id is the "empty" cursor: the very beginning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Unix microseconds of the row.
    pub create_time: i64,
    pub id: Uuid,
}

/// The cursor text is not one this server (or Nakama) produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Encodes a position, or the "empty" cursor for `None`.
pub fn encode(pos: Option<Position>) -> String {
    let mut out = PREFIX.to_vec();
    let mut value = Vec::with_capacity(40);
    value.extend_from_slice(&TYPE_ID);
    if let Some(pos) = pos {
        // Field 0: NotificationID, a byte slice.
        value.push(0x01);
        push_uint(&mut value, 16);
        value.extend_from_slice(pos.id.as_bytes());
        // Field 1: CreateTime in nanoseconds, a gob int (zig-zag into an uint).
        let nanos = pos.create_time.saturating_mul(1000);
        if nanos != 0 {
            value.push(0x01);
            push_uint(&mut value, zigzag(nanos));
        }
    }
    value.push(0x00);
    out.push(value.len() as u8);
    out.extend_from_slice(&value);
    URL_SAFE_NO_PAD.encode(out)
}

/// Decodes a cursor. `Ok(None)` is the empty cursor; `Err` means malformed.
pub fn decode(text: &str) -> Result<Option<Position>, Malformed> {
    if text.len() > MAX_TEXT {
        return Err(Malformed);
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| Malformed)?;
    let rest = bytes.strip_prefix(&PREFIX[..]).ok_or(Malformed)?;
    let (&len, body) = rest.split_first().ok_or(Malformed)?;
    if len as usize != body.len() {
        return Err(Malformed);
    }
    let mut r = Reader { buf: body };
    if r.take(2)? != TYPE_ID {
        return Err(Malformed);
    }
    let mut field: i64 = -1;
    let mut id: Option<Uuid> = None;
    let mut nanos: i64 = 0;
    loop {
        let delta = r.uint()?;
        if delta == 0 {
            break;
        }
        field += delta as i64;
        match field {
            0 => {
                let n = r.uint()?;
                if n != 16 {
                    return Err(Malformed);
                }
                id = Some(Uuid::from_slice(r.take(16)?).map_err(|_| Malformed)?);
            }
            1 => nanos = unzigzag(r.uint()?),
            _ => return Err(Malformed),
        }
    }
    if !r.buf.is_empty() {
        return Err(Malformed);
    }
    Ok(id.map(|id| Position {
        create_time: nanos.div_euclid(1000),
        id,
    }))
}

fn zigzag(n: i64) -> u64 {
    if n < 0 {
        (!(n as u64) << 1) | 1
    } else {
        (n as u64) << 1
    }
}

fn unzigzag(u: u64) -> i64 {
    if u & 1 == 1 {
        !(u >> 1) as i64
    } else {
        (u >> 1) as i64
    }
}

fn push_uint(out: &mut Vec<u8>, v: u64) {
    if v < 128 {
        out.push(v as u8);
        return;
    }
    let be = v.to_be_bytes();
    let skip = be.iter().take_while(|b| **b == 0).count();
    out.push((256 - (8 - skip)) as u8);
    out.extend_from_slice(&be[skip..]);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.buf.len() < n {
            return Err(Malformed);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn uint(&mut self) -> Result<u64, Malformed> {
        let first = self.take(1)?[0];
        if first < 128 {
            return Ok(first as u64);
        }
        let n = 256 - first as usize;
        if n > 8 {
            return Err(Malformed);
        }
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | *b as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_cursor_matches_nakama() {
        assert_eq!(
            encode(None),
            "Sn8DAQEbbm90aWZpY2F0aW9uQ2FjaGVhYmxlQ3Vyc29yAf-AAAECAQ5Ob3RpZmljYXRpb25JRAEKAAEKQ3JlYXRlVGltZQEEAAAAA_-AAA"
        );
        assert_eq!(decode(&encode(None)), Ok(None));
    }

    #[test]
    fn round_trips_and_has_nakama_layout() {
        let pos = Position {
            create_time: 1_795_906_487_123_456,
            id: Uuid::parse_str("27788cfc-04dc-4e66-a64f-aaec460a1df2").unwrap(),
        };
        let text = encode(Some(pos));
        assert_eq!(decode(&text), Ok(Some(pos)));
        let raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
        // Length byte 0x1f for 8 time bytes, as NAKAMA-SPEC §3.1 says.
        assert_eq!(raw[75], 0x1f);
        assert_eq!(&raw[76..80], &[0xff, 0x80, 0x01, 0x10]);
        assert_eq!(raw[96], 0x01);
        assert_eq!(raw[97], 0xf8);
        assert_eq!(*raw.last().unwrap(), 0x00);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["notbase64!!", "AAAA", "", "Sn8D", &"A".repeat(600)] {
            assert_eq!(decode(bad), Err(Malformed), "{bad}");
        }
        let mut raw = URL_SAFE_NO_PAD.decode(encode(None)).unwrap();
        raw.push(0);
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode(raw)), Err(Malformed));
    }
}
