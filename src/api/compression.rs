//! gzip and deflate on the REST gateway, as Nakama's (NAKAMA-SPEC §1.4): a request body sent
//! with `Content-Encoding: gzip` or `deflate` is inflated before routing, and an answer is
//! compressed when the client's `Accept-Encoding` names gzip or deflate.
//!
//! Nakama does this with gorilla's `CompressHandler` and a decompressing handler around its
//! gateway, so the choices here follow those: the first of `gzip` / `deflate` named in
//! `Accept-Encoding` wins (exact tokens, no q-values), `deflate` is raw DEFLATE (Go's
//! `compress/flate`), every gateway answer carries `Vary: Accept-Encoding`, and a
//! request body that does not start with a gzip header is read as it is. Not the socket
//! upgrade, not `GET /`, not CORS preflights: Nakama serves those outside the handler.
//!
//! Limits: a compressed body may be at most `socket.max_request_size_bytes`, as Nakama caps it
//! before inflating; inflated, it may not pass that size either, so a small body cannot
//! inflate into an unbounded one (the routes then refuse it as they refuse any body that long).
//!
//! Cost (`cargo bench --bench hot_paths -- gzip`, BENCHMARKS.md): preparing the compressor for
//! an answer clears its hash tables, about 13 µs however short the answer, which would have
//! tripled the cost of a typical REST answer for every nakama-js client (Node's fetch asks for
//! gzip). So an answer shorter than [`STORED_BELOW`] bytes, too short for compression to save
//! a network packet, goes in DEFLATE's stored blocks: a valid gzip or deflate body, copied
//! rather than compressed, for well under a microsecond. Longer answers are compressed at level
//! 1 (Nakama uses Go's default, 6) by a compressor each worker thread keeps and resets: a
//! 100-row list page took 39-44 µs there against 152 µs at level 6.

use std::cell::RefCell;
use std::io::Read;

use bytes::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use http::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, TRANSFER_ENCODING,
    VARY,
};
use http::Method;
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use warp::reply::Response;

use super::error::{error_response, ApiError};

/// A request as the routes get it: its body as it came, or inflated.
pub type GatewayRequest = hyper::Request<Either<Incoming, Full<Bytes>>>;

/// Whether the answer to `req` goes through Nakama's compression handler: everything but
/// `GET /` and CORS preflights, which Nakama answers outside it.
pub fn applies(req: &hyper::Request<Incoming>) -> bool {
    let root = req.uri().path() == "/" && matches!(*req.method(), Method::GET | Method::HEAD);
    let preflight = req.method() == Method::OPTIONS
        && req.headers().contains_key("access-control-request-method");
    !root && !preflight
}

/// Inflates a gzip or deflate request body (at most `limit` bytes either way) so the routes
/// read it as if it came plain; any other body passes untouched. A refused body is answered
/// here, in Nakama's error shape.
pub async fn inflate_request(
    req: hyper::Request<Incoming>,
    limit: usize,
) -> Result<GatewayRequest, Response> {
    let Some(encoding) = request_encoding(req.headers()) else {
        return Ok(req.map(Either::Left));
    };
    let (mut parts, body) = req.into_parts();
    let packed = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return Err(error_response(&ApiError::invalid(
                "http: request body too large",
            )))
        }
        Err(e) => {
            return Err(error_response(&ApiError::invalid(format!(
                "reading body: {e}"
            ))))
        }
    };
    match inflate(encoding, &packed, limit) {
        Ok(plain) => {
            mark_inflated(&mut parts.headers, plain.len());
            Ok(hyper::Request::from_parts(
                parts,
                Either::Right(Full::new(Bytes::from(plain))),
            ))
        }
        Err(InflateError::TooLong) => Err(error_response(&ApiError::invalid(
            "http: request body too large",
        ))),
        Err(InflateError::Corrupt(e)) => Err(error_response(&ApiError::invalid(format!(
            "reading body: {e}"
        )))),
    }
}

/// A content coding both sides of the gateway speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gzip,
    Deflate,
}

impl Encoding {
    /// The coding a header token names, when it is one of the two.
    fn from_token(token: &str) -> Option<Encoding> {
        match token.trim() {
            "gzip" => Some(Encoding::Gzip),
            "deflate" => Some(Encoding::Deflate),
            _ => None,
        }
    }

    fn token(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
        }
    }
}

/// The coding to answer in: the first `gzip` or `deflate` token of `Accept-Encoding`.
pub fn accepted(headers: &HeaderMap) -> Option<Encoding> {
    let value = headers.get(ACCEPT_ENCODING)?.to_str().ok()?;
    value.split(',').find_map(Encoding::from_token)
}

/// The coding a request body was sent in, when it is one this gateway inflates.
pub fn request_encoding(headers: &HeaderMap) -> Option<Encoding> {
    Encoding::from_token(headers.get(CONTENT_ENCODING)?.to_str().ok()?)
}

/// Why a compressed request body was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum InflateError {
    /// Compressed or inflated, the body is longer than the limit.
    TooLong,
    /// The compressed stream is broken.
    Corrupt(String),
}

/// Inflates a request body of `limit` bytes at most into at most `limit` bytes. A body that
/// does not start with a gzip header is returned as it is (Nakama then reads it uncompressed).
pub fn inflate(encoding: Encoding, body: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    if body.len() > limit {
        return Err(InflateError::TooLong);
    }
    let mut out = Vec::new();
    // One byte more than the limit tells "exactly the limit" from "longer".
    let cap = limit as u64 + 1;
    let read = match encoding {
        Encoding::Gzip => {
            if !body.starts_with(&[0x1f, 0x8b]) {
                return Ok(body.to_vec());
            }
            flate2::read::MultiGzDecoder::new(body)
                .take(cap)
                .read_to_end(&mut out)
        }
        Encoding::Deflate => flate2::read::DeflateDecoder::new(body)
            .take(cap)
            .read_to_end(&mut out),
    };
    match read {
        Ok(_) if out.len() > limit => Err(InflateError::TooLong),
        Ok(_) => Ok(out),
        Err(e) => Err(InflateError::Corrupt(e.to_string())),
    }
}

/// The request's headers once its body was inflated to `len` bytes.
fn mark_inflated(headers: &mut HeaderMap, len: usize) {
    headers.remove(CONTENT_ENCODING);
    headers.remove(TRANSFER_ENCODING);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
}

/// Adds `Vary: Accept-Encoding`, and compresses the answer in `encoding` when there is one
/// and the answer is not already encoded.
pub async fn answer(res: Response, encoding: Option<Encoding>) -> Response {
    let (mut parts, body) = res.into_parts();
    parts
        .headers
        .append(VARY, HeaderValue::from_static("Accept-Encoding"));
    let Some(encoding) = encoding.filter(|_| !parts.headers.contains_key(CONTENT_ENCODING)) else {
        return Response::from_parts(parts, body);
    };
    let plain: Bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            // The answer is built in memory; a body that fails here is a server bug.
            tracing::error!(error = %e, "could not read an answer to compress it");
            return Response::from_parts(parts, Vec::<u8>::new().into());
        }
    };
    let packed = compress(encoding, &plain);
    parts
        .headers
        .insert(CONTENT_ENCODING, HeaderValue::from_static(encoding.token()));
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, packed.into())
}

/// Answers shorter than this are sent in stored (uncompressed) DEFLATE blocks: about one
/// TCP segment, so compressing them could not save a packet.
pub const STORED_BELOW: usize = 1400;

thread_local! {
    /// This thread's raw DEFLATE compressor at level 1, reset before each use.
    static DEFLATER: RefCell<Compress> = RefCell::new(Compress::new(Compression::new(1), false));
}

/// gzip's fixed header as Go writes it: no name, no time, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// `data` compressed: raw DEFLATE, or wrapped in gzip's header and trailer.
pub fn compress(encoding: Encoding, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    if encoding == Encoding::Gzip {
        out.extend_from_slice(&GZIP_HEADER);
    }
    if data.len() < STORED_BELOW {
        stored_blocks(data, &mut out);
    } else {
        let start = out.len();
        let done = DEFLATER.with(|d| {
            let mut d = d.borrow_mut();
            d.reset();
            deflate_all(&mut d, data, &mut out)
        });
        if !done {
            // Never seen; still a valid body rather than a broken one.
            out.truncate(start);
            stored_blocks(data, &mut out);
        }
    }
    if encoding == Encoding::Gzip {
        let mut crc = Crc::new();
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&crc.amount().to_le_bytes());
    }
    out
}

/// `data` as a DEFLATE stream of stored blocks (RFC 1951 §3.2.4): each a header byte (the
/// last one marked final), its length and the length's complement, then the bytes as they are.
fn stored_blocks(data: &[u8], out: &mut Vec<u8>) {
    let mut chunks = data.chunks(u16::MAX as usize).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
        return;
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let len = chunk.len() as u16;
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

/// Runs `d` over all of `data` and finishes the stream into `out`; false if the compressor
/// failed. Each round either consumes input or writes output into room it was given, so the
/// loop ends; its bound guards anyway.
fn deflate_all(d: &mut Compress, data: &[u8], out: &mut Vec<u8>) -> bool {
    let mut input = data;
    // Far more rounds than any answer needs: each gets at least 1 KiB of fresh room.
    for _ in 0..(data.len() / 256 + 64) {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.len().max(1024));
        }
        let before_in = d.total_in();
        let status = d.compress_vec(input, out, FlushCompress::Finish);
        let consumed = (d.total_in() - before_in) as usize;
        input = &input[consumed..];
        match status {
            Ok(Status::StreamEnd) => return true,
            Ok(_) => continue,
            Err(e) => {
                tracing::error!(error = %e, "deflate failed");
                return false;
            }
        }
    }
    tracing::error!("deflate did not finish within its round bound");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: http::header::HeaderName, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn the_first_known_token_wins() {
        let pick = |v| accepted(&headers(ACCEPT_ENCODING, v));
        assert_eq!(pick("gzip, deflate, br"), Some(Encoding::Gzip));
        assert_eq!(pick("br, deflate ,gzip"), Some(Encoding::Deflate));
        assert_eq!(pick("br"), None);
        // Exact tokens, as gorilla's handler compares them.
        assert_eq!(pick("gzip;q=1.0"), None);
        assert_eq!(accepted(&HeaderMap::new()), None);
    }

    #[test]
    fn compressed_answers_inflate_back() {
        let text = br#"{"notifications":[{"id":"x","subject":"s","content":"{}"}]}"#.repeat(40);
        for enc in [Encoding::Gzip, Encoding::Deflate] {
            let packed = compress(enc, &text);
            assert!(packed.len() < text.len() / 4, "{enc:?}: {}", packed.len());
            let mut back = Vec::new();
            match enc {
                Encoding::Gzip => flate2::read::GzDecoder::new(&packed[..])
                    .read_to_end(&mut back)
                    .unwrap(),
                Encoding::Deflate => flate2::read::DeflateDecoder::new(&packed[..])
                    .read_to_end(&mut back)
                    .unwrap(),
            };
            assert_eq!(back, text);
            // The thread's compressor is reset between answers: an empty one is whole too.
            let empty = compress(enc, b"");
            assert_eq!(inflate(enc, &empty, 100).unwrap(), b"");
        }
    }

    #[test]
    fn short_answers_go_in_stored_blocks_that_any_inflater_reads() {
        for data in [&b""[..], b"{}", &[b'x'; STORED_BELOW - 1]] {
            for enc in [Encoding::Gzip, Encoding::Deflate] {
                let packed = compress(enc, data);
                let overhead = if enc == Encoding::Gzip { 18 + 5 } else { 5 };
                assert_eq!(
                    packed.len(),
                    data.len() + overhead,
                    "{enc:?} {}",
                    data.len()
                );
                assert_eq!(inflate(enc, &packed, 4096).unwrap(), data);
            }
        }
        // Stored blocks hold at most 65,535 bytes each; a longer stream chains them.
        let mut long = Vec::new();
        let data = vec![7u8; 150_000];
        stored_blocks(&data, &mut long);
        let mut back = Vec::new();
        flate2::read::DeflateDecoder::new(&long[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        assert_eq!(long.len(), data.len() + 3 * 5);
    }

    #[test]
    fn an_answer_larger_than_a_round_still_finishes() {
        // Incompressible bytes: the output outgrows every reservation.
        let mut x: u32 = 1;
        let data: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let packed = compress(Encoding::Gzip, &data);
        assert!(packed.len() > data.len());
        assert_eq!(
            inflate(Encoding::Gzip, &packed, packed.len()).unwrap(),
            data
        );
    }

    #[test]
    fn inflating_is_bounded_both_ways() {
        let body = vec![b'a'; 10_000];
        let packed = compress(Encoding::Gzip, &body);
        assert_eq!(inflate(Encoding::Gzip, &packed, 10_000).unwrap(), body);
        assert_eq!(
            inflate(Encoding::Gzip, &packed, 9_999),
            Err(InflateError::TooLong)
        );
        assert_eq!(
            inflate(Encoding::Gzip, &packed, packed.len() - 1),
            Err(InflateError::TooLong)
        );
    }

    #[test]
    fn a_body_without_a_gzip_header_is_read_as_it_is() {
        assert_eq!(
            inflate(Encoding::Gzip, b"{\"a\":1}", 100).unwrap(),
            b"{\"a\":1}"
        );
        let mut broken = compress(Encoding::Gzip, b"hello hello hello");
        broken.truncate(broken.len() - 12);
        assert!(matches!(
            inflate(Encoding::Gzip, &broken, 100),
            Err(InflateError::Corrupt(_))
        ));
        assert!(matches!(
            inflate(Encoding::Deflate, b"\xff\xff\xff", 100),
            Err(InflateError::Corrupt(_))
        ));
    }
}
