//! The load generator's HTTP client: HTTP/1.1 on pooled keep-alive connections, each request
//! written with one call and each answer parsed by hand (httparse for the head).
//!
//! Why not reqwest: the generator runs on the cores it measures, so every microsecond it
//! spends is taken from the server. During `send_online` over REST reqwest's stack (hyper's
//! client, its pool, timers and vectored writes) cost about 28 us of CPU per request against
//! 7.3 us for `floor http_ws`'s hand-written client, which is the rate cap the issue's
//! building-block figures assume. This client does what those loops need and nothing more:
//! no TLS, no redirects, no proxies, no compression; answers with `Content-Length` or chunked.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The largest answer head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The largest answer body accepted (a list page of 100 is tens of KiB).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Room made in a connection's buffer before each read.
const READ_CHUNK: usize = 16 * 1024;
/// Headers parsed per answer.
const MAX_HEADERS: usize = 64;
/// Idle connections kept per authority.
const MAX_IDLE: usize = 256;
/// A connection idle longer than this is checked for a close by the server before reuse.
const STALE_AFTER: Duration = Duration::from_secs(1);

/// How a request proves who sends it.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    /// HTTP basic with this user and an empty password (Nakama's server key).
    Basic(&'a str),
}

/// One keep-alive connection and the bytes read from it but not yet used.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    idle_since: Instant,
}

impl Conn {
    /// False when the server closed the connection (or sent something unasked) while it
    /// was idle. Only checked after `STALE_AFTER`: the closed loops reuse a connection at
    /// once, and the check is a system call.
    fn usable(&self) -> bool {
        if self.idle_since.elapsed() < STALE_AFTER {
            return true;
        }
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// Keep-alive connections by authority (`host:port`), shared by every task of the run.
#[derive(Default)]
pub struct Http {
    idle: Mutex<HashMap<String, Vec<Conn>>>,
}

/// `http://host:port/path?query` -> (`host:port`, `/path?query`).
fn split_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs"))?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

impl Http {
    /// Sends one request and reads its whole answer within `limit`: (status, body).
    pub async fn call(
        &self,
        method: &str,
        url: &str,
        auth: Auth<'_>,
        body: Option<&str>,
        limit: Duration,
    ) -> Result<(u16, String), String> {
        let (authority, target) = split_url(url)?;
        let mut conn = match self.take(authority) {
            Some(c) => c,
            None => {
                let connecting = timeout(limit, TcpStream::connect(authority));
                let stream = match connecting.await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return Err(format!("connect {authority}: {e}")),
                    Err(_) => return Err(format!("connect {authority}: no answer in {limit:?}")),
                };
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                Conn {
                    stream,
                    buf: Vec::with_capacity(4096),
                    idle_since: Instant::now(),
                }
            }
        };
        let request = request_text(method, authority, target, auth, body);
        let exchange = async {
            conn.stream
                .write_all(&request)
                .await
                .map_err(|e| format!("{method} {target}: {e}"))?;
            read_answer(&mut conn).await
        };
        // On any error or timeout the connection is dropped: its state is unknown.
        let (status, body, keep) = match timeout(limit, exchange).await {
            Ok(r) => r.map_err(|e| format!("{method} {target}: {e}"))?,
            Err(_) => return Err(format!("{method} {target}: no answer within {limit:?}")),
        };
        if keep && conn.buf.is_empty() {
            conn.idle_since = Instant::now();
            self.put(authority, conn);
        }
        Ok((status, body))
    }

    fn take(&self, authority: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(authority)?;
        while let Some(conn) = list.pop() {
            if conn.usable() {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, authority: &str, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(authority.to_string()).or_default();
        if list.len() < MAX_IDLE {
            list.push(conn);
        }
    }
}

fn request_text(
    method: &str,
    authority: &str,
    target: &str,
    auth: Auth<'_>,
    body: Option<&str>,
) -> Vec<u8> {
    let body = body.unwrap_or("");
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(
        format!("{method} {target} HTTP/1.1\r\nHost: {authority}\r\n").as_bytes(),
    );
    match auth {
        Auth::None => {}
        Auth::Bearer(token) => {
            out.extend_from_slice(format!("Authorization: Bearer {token}\r\n").as_bytes())
        }
        Auth::Basic(user) => {
            let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:"));
            out.extend_from_slice(format!("Authorization: Basic {pair}\r\n").as_bytes());
        }
    }
    if !body.is_empty() {
        out.extend_from_slice(b"Content-Type: application/json\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body.as_bytes());
    out
}

/// Reads more bytes into the connection's buffer; an error at end of stream. Reads straight
/// into the buffer's spare room: a buffer on the stack would live in the request's future,
/// which `timeout` moves, and was copied with it (5 % of the generator's samples).
async fn fill(conn: &mut Conn) -> Result<(), String> {
    conn.buf.reserve(READ_CHUNK);
    let n = conn
        .stream
        .read_buf(&mut conn.buf)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("connection closed before the answer ended".into());
    }
    Ok(())
}

/// Reads one answer: (status, body, whether the connection may be used again).
async fn read_answer(conn: &mut Conn) -> Result<(u16, String, bool), String> {
    let (head_len, status, length, chunked, close) = loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut headers);
        match res.parse(&conn.buf) {
            Ok(httparse::Status::Complete(n)) => {
                let header = |name: &str| {
                    res.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                };
                let length = match header("content-length") {
                    Some(v) => Some(
                        v.trim()
                            .parse::<usize>()
                            .map_err(|_| format!("bad Content-Length {v:?}"))?,
                    ),
                    None => None,
                };
                let chunked = header("transfer-encoding")
                    .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
                let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                break (n, res.code.unwrap_or(0), length, chunked, close);
            }
            Ok(httparse::Status::Partial) if conn.buf.len() < MAX_HEAD => fill(conn).await?,
            Ok(httparse::Status::Partial) => return Err("answer head too long".into()),
            Err(e) => return Err(format!("bad answer head: {e}")),
        }
    };
    conn.buf.drain(..head_len);
    let body = if chunked {
        read_chunked(conn).await?
    } else {
        let Some(length) = length else {
            return Err("answer without Content-Length or chunked body".into());
        };
        if length > MAX_BODY {
            return Err(format!("answer body of {length} bytes"));
        }
        while conn.buf.len() < length {
            fill(conn).await?;
        }
        conn.buf.drain(..length).collect()
    };
    let body = String::from_utf8(body).map_err(|_| "answer body is not UTF-8".to_string())?;
    Ok((status, body, !close))
}

/// Reads a chunked body (chunk extensions and trailers are skipped).
async fn read_chunked(conn: &mut Conn) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = conn.buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            if conn.buf.len() > MAX_HEAD {
                return Err("chunk size line too long".into());
            }
            fill(conn).await?;
        };
        let line = std::str::from_utf8(&conn.buf[..line_end]).unwrap_or("");
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        conn.buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                if let Some(i) = conn.buf.windows(2).position(|w| w == b"\r\n") {
                    conn.buf.drain(..i + 2);
                    if i == 0 {
                        return Ok(body);
                    }
                } else if conn.buf.len() > MAX_HEAD {
                    return Err("trailers too long".into());
                } else {
                    fill(conn).await?;
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err("chunked answer body too long".into());
        }
        while conn.buf.len() < size + 2 {
            fill(conn).await?;
        }
        body.extend_from_slice(&conn.buf[..size]);
        conn.buf.drain(..size + 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Serves `answers` in turn on one accepted connection, each after reading a request head.
    async fn server(answers: Vec<&'static str>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for answer in answers {
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut b = [0u8; 1024];
                    let n = s.read(&mut b).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&b[..n]);
                }
                s.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn reads_length_and_chunked_answers_on_one_connection() {
        let base = server(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n",
        ])
        .await;
        let http = Http::default();
        let limit = Duration::from_secs(5);
        let (a, b) = (format!("{base}/a"), format!("{base}/b"));
        let first = http.call("GET", &a, Auth::None, None, limit).await;
        assert_eq!(first.unwrap(), (200, "hello".to_string()));
        // The second request reuses the pooled connection: the server accepts only one.
        let second = http
            .call("POST", &b, Auth::Bearer("t"), Some("{}"), limit)
            .await;
        assert_eq!(second.unwrap(), (404, "abcde".to_string()));
    }

    #[tokio::test]
    async fn refuses_an_answer_without_a_length() {
        let base = server(vec!["HTTP/1.1 200 OK\r\n\r\nbody"]).await;
        let err = Http::default()
            .call("GET", &base, Auth::None, None, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.contains("without Content-Length"), "{err}");
    }
}
