//! The realtime socket, `GET /ws` (NAKAMA-SPEC §4).
//!
//! One task per connection owns both halves of the WebSocket and `select!`s over: frames from
//! the client, events queued for it by core (bounded; see `core::presence`), the transport ping
//! timer, the read deadline, and a close request. Envelopes are handled in order, as Nakama's
//! pipeline does. A close request first flushes what is already queued (so a final
//! notification such as the single-socket -7 arrives before the close frame).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::time::{sleep_until, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use super::error::{error_response, ApiError};
use super::inbox::SyncFollow;
use super::wire::encode_event;
use super::{chat, query_get, Ctx};
use crate::core::metrics::Metrics;
use crate::core::presence::{Event, Outbound, SessionHandle, CODE_SINGLE_SOCKET};
use crate::core::sessions::SessionUser;
use crate::core::time::now_micros;
use crate::core::Code;
use crate::runtime::CallContext;

/// Realtime message keys Nakama understands but Tidings does not serve yet; they get an error
/// reply instead of closing the socket as an unknown key does.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "channel",
    "channel_message_update",
    "channel_message_remove",
    "match_create",
    "match_data_send",
    "match_join",
    "match_leave",
    "matchmaker_add",
    "matchmaker_remove",
    "party_create",
    "party_join",
    "party_leave",
    "party_promote",
    "party_accept",
    "party_remove",
    "party_close",
    "party_join_request_list",
    "party_matchmaker_add",
    "party_matchmaker_remove",
    "party_data_send",
    "status_follow",
    "status_unfollow",
    "status_update",
];

/// How long to wait for the client's close acknowledgement.
const CLOSE_ACK_WAIT: Duration = Duration::from_secs(2);

/// How much tungstenite reads from the socket at once (its default is 128 KiB per
/// connection). Each read zero-fills that much of the socket's read buffer first, so every
/// socket that has read once keeps all of it resident, idle or not: at 4 KiB an idle socket
/// cost 10.1 KiB of server RSS at 5,000 sockets, at 2 KiB 7.8-7.9, at 1 KiB 7.0-7.3
/// (`loadgen memory`, BENCHMARKS.md, eleventh session). Client envelopes are mostly a few
/// hundred bytes; a longer frame (up to `socket.max_message_size_bytes`) grows that socket's
/// buffer to fit and arrives in 2 KiB reads.
const READ_BUFFER: usize = 2048;

fn plain(status: StatusCode, text: &'static str) -> Response {
    warp::reply::with_status(text, status).into_response()
}

fn header<'a>(req: &'a hyper::Request<Incoming>, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// GET /ws?token=&format=&status=&lang= — checks the request, answers 101 and runs the
/// session on the upgraded connection (called by `api::server` for every `/ws` request).
pub fn upgrade(
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    live: Arc<super::server::Live>,
) -> Response {
    if req.method() != hyper::Method::GET {
        return error_response(&ApiError::new(Code::Unimplemented, "Method Not Allowed"));
    }
    let query: Vec<(String, String)> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let format = match query_get(&query, "format").unwrap_or("") {
        "" | "json" => Format::Json,
        "protobuf" => Format::Protobuf,
        _ => return plain(StatusCode::BAD_REQUEST, "Invalid format parameter"),
    };
    let token = header(&req, "authorization")
        .strip_prefix("Bearer ")
        .or_else(|| query_get(&query, "token"))
        .unwrap_or("");
    let Ok(user) = ctx.core.sessions.verify(token) else {
        return plain(StatusCode::UNAUTHORIZED, "Missing or invalid token");
    };
    let is_upgrade = header(&req, "connection")
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        && header(&req, "upgrade").eq_ignore_ascii_case("websocket")
        && header(&req, "sec-websocket-version") == "13";
    let key = header(&req, "sec-websocket-key");
    if !is_upgrade || key.is_empty() {
        return error_response(&ApiError::invalid("WebSocket upgrade required"));
    }
    let accept = derive_accept_key(key.as_bytes());
    let status = matches!(
        query_get(&query, "status").unwrap_or(""),
        "1" | "t" | "T" | "TRUE" | "true" | "True"
    );
    let lang = query_get(&query, "lang")
        .filter(|l| !l.is_empty())
        .map(str::to_string);
    let since = match query_get(&query, "tidings_since").filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => match super::inbox::parse_since(raw) {
            Ok(since) => Some(since),
            Err(_) => return plain(StatusCode::BAD_REQUEST, "Invalid tidings_since parameter"),
        },
    };
    // Following the inbox needs its events, so `tidings_since` implies `tidings_inbox`.
    let inbox = since.is_some() || matches!(query_get(&query, "tidings_inbox"), Some("true" | "1"));
    if inbox && format == Format::Protobuf {
        // Their frames are Tidings' own, with no field in Nakama's protobuf envelope.
        return plain(
            StatusCode::BAD_REQUEST,
            "tidings_inbox and tidings_since need format=json",
        );
    }
    // Boxed: the socket task is a large part of an idle socket's memory (see `run_session`).
    let session = Box::new(Session {
        user,
        format,
        status,
        inbox,
        since,
        lang,
        peer: Some(peer),
    });
    let max = ctx.config.socket.max_message_size_bytes;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let on_upgrade = hyper::upgrade::on(req);
    let running = live.enter();
    tokio::spawn(async move {
        let _running = running;
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                // The socket's lines (and its RPCs' script lines) carry this span.
                let span = tracing::info_span!(
                    "socket",
                    id = %uuid::Uuid::new_v4().simple(),
                    user = %session.user.user_id,
                );
                let (tx, rx) = ws.split();
                run_session(tx, rx, session, ctx).instrument(span).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    let mut res = warp::reply().into_response();
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = res.headers_mut();
    headers.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

/// What to do after handling one client frame.
enum Step {
    Continue,
    Reply(String),
    /// Call an RPC, then reply with its result.
    Rpc {
        cid: Option<String>,
        id: String,
        payload: String,
    },
    /// A chat request; its reply frame follows.
    Chat {
        cid: Option<String>,
        request: chat::ChatRequest,
    },
    /// Send the frame (if any), then close with the reason.
    Close(Option<String>, &'static str),
}

/// A reply `{"cid": …, key: body}` (no `cid` when the request had none).
pub(super) fn envelope(cid: Option<&str>, key: &str, body: Value) -> String {
    let mut map = Map::new();
    if let Some(cid) = cid {
        map.insert("cid".into(), cid.into());
    }
    map.insert(key.into(), body);
    Value::Object(map).to_string()
}

fn error_envelope(cid: Option<&str>, code: i32, message: &str) -> String {
    envelope(cid, "error", json!({ "code": code, "message": message }))
}

/// What the envelope parser makes of `text`, named (for the fuzz target, which reaches the
/// private parser through this).
#[doc(hidden)]
pub fn envelope_outcome(text: &str) -> &'static str {
    match handle_text(text) {
        Step::Continue => "continue",
        Step::Reply(_) => "reply",
        Step::Rpc { .. } => "rpc",
        Step::Chat { .. } => "chat",
        Step::Close(..) => "close",
    }
}

/// Handles one JSON envelope (NAKAMA-SPEC §4.2, §4.6).
fn handle_text(text: &str) -> Step {
    const MALFORMED: Step = Step::Close(None, "received malformed payload");
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return MALFORMED;
    };
    // protojson reads `null` as "not set" for a field it knows (an unknown key is an error
    // whatever its value).
    let cid = match map.get("cid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return MALFORMED,
    };
    let known = |k: &str| {
        ["ping", "pong", "rpc"].contains(&k)
            || chat::is_message(k)
            || KNOWN_UNSUPPORTED.contains(&k)
    };
    let mut messages = map
        .iter()
        .filter(|(k, v)| *k != "cid" && !(v.is_null() && known(k)));
    let Some((key, body)) = messages.next() else {
        return Step::Close(
            Some(error_envelope(cid, 2, "Missing message.")),
            "error processing message",
        );
    };
    let Some(fields) = body.as_object() else {
        return MALFORMED;
    };
    if messages.next().is_some() {
        return MALFORMED;
    }
    match key.as_str() {
        // Ping and Pong have no fields: any key is an unknown field.
        "ping" | "pong" if !fields.is_empty() => MALFORMED,
        "ping" => Step::Reply(envelope(cid, "pong", json!({}))),
        "pong" => Step::Continue,
        "rpc" => {
            let Some(rpc) = rpc_fields(fields) else {
                return MALFORMED;
            };
            let (id, payload) = (rpc.id.unwrap_or(""), rpc.payload.unwrap_or(""));
            if id.is_empty() {
                Step::Reply(error_envelope(cid, 3, "RPC ID must be set"))
            } else {
                Step::Rpc {
                    cid: cid.map(str::to_string),
                    id: id.to_string(),
                    payload: payload.to_string(),
                }
            }
        }
        "channel_join" | "channel_leave" | "channel_message_send" => {
            match body.as_object().and_then(|b| chat::parse(key, b)) {
                Some(request) => Step::Chat {
                    cid: cid.map(str::to_string),
                    request,
                },
                None => MALFORMED,
            }
        }
        k if KNOWN_UNSUPPORTED.contains(&k) => Step::Reply(error_envelope(
            cid,
            3,
            &format!("{k} is not supported by this server"),
        )),
        _ => MALFORMED,
    }
}

/// The string fields of a socket `Rpc` message (`id`, `payload`, `http_key`, which a socket
/// call does not need), each under its proto or its JSON name as protojson accepts them.
#[derive(Default)]
struct RpcFields<'a> {
    id: Option<&'a str>,
    payload: Option<&'a str>,
}

/// `None` when a key is not a field of `Rpc` or a value is not a string (or null).
fn rpc_fields(fields: &serde_json::Map<String, Value>) -> Option<RpcFields<'_>> {
    let mut rpc = RpcFields::default();
    for (key, value) in fields {
        let value = match value {
            Value::Null => None,
            Value::String(s) => Some(s.as_str()),
            _ => return None,
        };
        match key.as_str() {
            "id" => rpc.id = value,
            "payload" => rpc.payload = value,
            "http_key" | "httpKey" => {}
            _ => return None,
        }
    }
    Some(rpc)
}

/// Runs an RPC for the socket and returns the reply frame (NAKAMA-SPEC §4.4).
async fn call_rpc(
    ctx: Arc<Ctx>,
    cid: Option<String>,
    id: String,
    payload: String,
    call: CallContext,
) -> String {
    let cid = cid.as_deref();
    if !ctx.runtime.has_rpc(&id) {
        return error_envelope(cid, 6, "RPC function not found");
    }
    match ctx.runtime.rpc(&id, call, payload).await {
        Ok(result) => {
            let mut body = Map::new();
            body.insert("id".into(), id.into());
            // protojson omits an empty string, so "" and nil look the same on the wire.
            if let Some(result) = result.filter(|r| !r.is_empty()) {
                body.insert("payload".into(), result.into());
            }
            envelope(cid, "rpc", Value::Object(body))
        }
        Err(e) if e.code == Code::NotFound && e.message == "RPC function not found" => {
            error_envelope(cid, 6, &e.message)
        }
        Err(e) => error_envelope(cid, 7, &e.message),
    }
}

/// The socket's wire format (`format=`): JSON text frames, or Nakama's protobuf envelopes
/// in binary frames (see `api::protobuf`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Protobuf,
}

impl Format {
    /// A frame the session writes (a JSON envelope) in this format.
    fn frame(self, text: String) -> Message {
        match self {
            Format::Json => Message::text(text),
            Format::Protobuf => Message::binary(Self::binary(&text)),
        }
    }

    /// An event core queued, encoded at most once per format however many sockets get it.
    fn event(self, msg: &Outbound) -> Message {
        match self {
            Format::Json => Message::text(&*msg.encoded(encode_event)),
            Format::Protobuf => Message::binary(
                msg.encoded_binary(|event| Self::binary(&encode_event(event)))
                    .to_vec(),
            ),
        }
    }

    /// The protobuf form of a JSON envelope. A frame the tables cannot express is a server
    /// bug: logged, and the client gets an error envelope instead of silence.
    fn binary(text: &str) -> Vec<u8> {
        super::protobuf::encode_envelope(text).unwrap_or_else(|e| {
            tracing::error!(error = %e, "a frame has no protobuf form");
            let fallback = error_envelope(None, 0, "frame not available in protobuf");
            super::protobuf::encode_envelope(&fallback).unwrap_or_default()
        })
    }
}

/// Who opened a socket, and how.
struct Session {
    user: SessionUser,
    format: Format,
    status: bool,
    /// Inbox extension frames requested (`tidings_inbox=true`).
    inbox: bool,
    /// Gap-free sync from this sequence requested (`tidings_since=S`).
    since: Option<i64>,
    lang: Option<String>,
    peer: Option<SocketAddr>,
}

/// The socket after the upgrade.
type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// Runs one socket until it closes. Its task is a large part of an idle socket's memory, so
/// the socket comes already split, the session boxed, and the arguments are used where they
/// lie rather than moved into locals (a moved-from argument keeps its room in the future):
/// the spawned future went from 2,328 to 1,480 bytes, into a smaller allocator size class.
async fn run_session(
    mut tx: SplitSink<Socket, Message>,
    mut rx: SplitStream<Socket>,
    session: Box<Session>,
    ctx: Arc<Ctx>,
) {
    let user = &session.user;
    let format = session.format;
    let cfg = &ctx.config.socket;
    let presence = ctx.core.presence.clone();
    let metrics = &*ctx.core.metrics;
    if ctx.config.session.single_socket {
        ctx.core
            .notifications
            .disconnect(user.user_id, CODE_SINGLE_SOCKET, "single_socket", None);
    }
    let (handle, mut queue) = presence.register(
        user.user_id,
        &user.username,
        cfg.outgoing_queue_size,
        session.inbox,
    );
    tracing::debug!(session = %handle.session_id, user = %user.user_id, "socket opened");
    // Registered first, so a change after the catch-up query began still wakes it again.
    let mut follow = session
        .since
        .map(|s| SyncFollow::start(ctx.core.inbox.clone(), user.user_id, s));
    let write_wait = Duration::from_millis(cfg.write_wait_ms);
    let pong_wait = Duration::from_millis(cfg.pong_wait_ms);

    let mut send_ok = true;
    if session.status {
        let event = json!({"status_presence_event": {"joins": [{
            "user_id": user.user_id.to_string(),
            "session_id": handle.session_id.to_string(),
            "username": user.username,
            "status": "",
        }]}});
        send_ok = send(&mut tx, format.frame(event.to_string()), write_wait).await;
    }

    let mut ping = tokio::time::interval(Duration::from_millis(cfg.ping_period_ms));
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ping.tick().await;
    let mut deadline = Instant::now() + pong_wait;
    // An RPC in progress: frames from the client wait (envelopes are handled in order) while
    // pushes and pings keep flowing.
    let mut pending: Option<Pin<Box<dyn Future<Output = String> + Send>>> = None;
    let lang = session.lang.as_deref().unwrap_or("en");

    // Normal (1000) with a reason, but for a frame over the size limit: 1009 with no reason,
    // the close Nakama's WebSocket library sends itself.
    let mut close_code = CloseCode::Normal;
    // The close request and the inactivity timer live across the loop's turns: made afresh in
    // each turn, every delivered frame registered a timer in tokio's wheel and a waiter on the
    // close signal, then took both out again (the wheel's insert and removal alone were 1.65 %
    // of the server's samples in a fan-out to 5,000 sockets). The timer is set for the
    // deadline it was made with; when it fires after later activity moved `deadline`, it is
    // set again for the rest.
    let closed = handle.close.closed();
    tokio::pin!(closed);
    let idle = sleep_until(deadline);
    tokio::pin!(idle);
    let close_reason: Option<String> = loop {
        if !send_ok {
            break None;
        }
        tokio::select! {
            // A close request waits for the socket's own RPC to answer (at shutdown, or a
            // kick), so a call the client made is never cut off.
            reason = &mut closed, if pending.is_none() => {
                // Flush what was queued before the close request, then close.
                while let Ok(msg) = queue.try_recv() {
                    if !deliver(&mut tx, &mut follow, &msg, format, write_wait, metrics).await {
                        break;
                    }
                }
                break Some(reason);
            }
            msg = queue.recv() => {
                let Some(msg) = msg else { break None };
                send_ok = deliver(&mut tx, &mut follow, &msg, format, write_wait, metrics).await;
            }
            frame = async { follow.as_mut().expect("guarded").next_frame().await }, if follow.is_some() => {
                send_ok = send(&mut tx, format.frame(frame), write_wait).await;
            }
            _ = ping.tick() => {
                send_ok = send(&mut tx, Message::Ping(Default::default()), write_wait).await;
            }
            frame = async { pending.as_mut().expect("guarded").await }, if pending.is_some() => {
                pending = None;
                deadline = Instant::now() + pong_wait;
                // What the request queued for this session goes first (Nakama sends a chat
                // message to the channel before the sender's ack).
                while send_ok {
                    let Ok(msg) = queue.try_recv() else { break };
                    send_ok = deliver(&mut tx, &mut follow, &msg, format, write_wait, metrics).await;
                }
                if send_ok {
                    send_ok = send(&mut tx, format.frame(frame), write_wait).await;
                }
            }
            _ = &mut idle, if pending.is_none() => {
                if deadline > Instant::now() {
                    idle.as_mut().reset(deadline);
                    continue;
                }
                tracing::debug!(session = %handle.session_id, "no activity within pong wait");
                break None;
            }
            incoming = rx.next(), if pending.is_none() => {
                let msg = match incoming {
                    None => break None,
                    Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(e))) => {
                        tracing::debug!(session = %handle.session_id, error = %e, "frame over the size limit");
                        close_code = CloseCode::Size;
                        break Some(String::new());
                    }
                    Some(Err(e)) => {
                        tracing::debug!(session = %handle.session_id, error = %e, "socket read error");
                        break Some("received malformed payload".into());
                    }
                    Some(Ok(m)) => m,
                };
                deadline = Instant::now() + pong_wait;
                if msg.is_close() {
                    break None;
                }
                // The envelope as JSON text, whatever the socket's format.
                let decoded: String;
                let text: &str = match (format, &msg) {
                    (Format::Json, Message::Text(text)) => text.as_str(),
                    (Format::Protobuf, Message::Binary(bytes)) => {
                        match super::protobuf::decode_envelope(bytes) {
                            Ok(text) => {
                                decoded = text;
                                &decoded
                            }
                            Err(e) => {
                                tracing::debug!(session = %handle.session_id, error = %e, "bad protobuf envelope");
                                break Some("received malformed payload".into());
                            }
                        }
                    }
                    (_, Message::Text(_) | Message::Binary(_)) => {
                        break Some("received unexpected WebSocket message type".into());
                    }
                    _ => continue, // ping/pong frames: tungstenite answers pings itself
                };
                match handle_text(text) {
                    Step::Continue => {}
                    Step::Reply(frame) => {
                        send_ok = send(&mut tx, format.frame(frame), write_wait).await;
                    }
                    Step::Rpc { cid, id, payload } => {
                        let call = CallContext {
                            user_id: Some(user.user_id),
                            username: Some(user.username.clone()),
                            vars: user.vars.clone(),
                            session_exp: Some(user.expires_at),
                            session_id: Some(handle.session_id.to_string()),
                            lang: Some(lang.to_string()),
                            client_ip: session.peer.map(|a| a.ip().to_string()),
                            client_port: session.peer.map(|a| a.port().to_string()),
                            ..CallContext::default()
                        };
                        pending = Some(Box::pin(call_rpc(ctx.clone(), cid, id, payload, call)));
                    }
                    Step::Chat { cid, request } => {
                        pending = Some(Box::pin(chat::run(ctx.clone(), handle.clone(), cid, request)));
                    }
                    Step::Close(frame, reason) => {
                        if let Some(frame) = frame {
                            send(&mut tx, format.frame(frame), write_wait).await;
                        }
                        break Some(reason.into());
                    }
                }
            }
        }
    };
    ctx.core.channels.leave_all(handle.session_id);
    presence.unregister(&handle);
    finish(&handle, tx, rx, close_code, close_reason).await;
}

/// Writes an event core queued for this socket: wakes the sync follower on an inbox change
/// and counts the notifications it carries as delivered. False when the write failed.
async fn deliver(
    tx: &mut SplitSink<Socket, Message>,
    follow: &mut Option<SyncFollow>,
    msg: &Outbound,
    format: Format,
    write_wait: Duration,
    metrics: &Metrics,
) -> bool {
    if let (Some(f), Event::Inbox(_)) = (follow.as_mut(), &msg.event) {
        f.wake();
    }
    let sent = send(tx, format.event(msg), write_wait).await;
    if sent {
        metrics.delivered(&msg.event, now_micros());
    }
    sent
}

/// Sends the close frame (`code` with the reason) and waits briefly for the client's
/// acknowledgement.
async fn finish(
    handle: &SessionHandle,
    mut tx: SplitSink<Socket, Message>,
    mut rx: SplitStream<Socket>,
    code: CloseCode,
    reason: Option<String>,
) {
    if let Some(reason) = reason {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        if tx.send(Message::Close(Some(frame))).await.is_ok() {
            let _ = timeout(CLOSE_ACK_WAIT, async {
                while let Some(Ok(m)) = rx.next().await {
                    if m.is_close() {
                        break;
                    }
                }
            })
            .await;
        }
    }
    let _ = tx.close().await;
    tracing::debug!(session = %handle.session_id, "socket closed");
}

async fn send(tx: &mut SplitSink<Socket, Message>, msg: Message, write_wait: Duration) -> bool {
    matches!(timeout(write_wait, tx.send(msg)).await, Ok(Ok(())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str) -> String {
        match handle_text(text) {
            Step::Reply(s) => s,
            Step::Continue => "continue".into(),
            Step::Rpc { cid, id, payload } => format!("rpc {cid:?} {id} {payload}"),
            Step::Chat { cid, request } => format!("chat {cid:?} {request:?}"),
            Step::Close(f, r) => format!("close {r} {f:?}"),
        }
    }

    #[test]
    fn envelopes() {
        assert_eq!(
            reply(r#"{"cid":"7","ping":{}}"#),
            r#"{"cid":"7","pong":{}}"#
        );
        assert_eq!(reply(r#"{"ping":{}}"#), r#"{"pong":{}}"#);
        assert_eq!(reply(r#"{"pong":{}}"#), "continue");
        assert_eq!(
            reply(r#"{"cid":"15","bogus":{}}"#),
            "close received malformed payload None"
        );
        assert_eq!(reply("not json"), "close received malformed payload None");
        assert_eq!(
            reply(r#"{"cid":5,"ping":{}}"#),
            "close received malformed payload None"
        );
        assert_eq!(
            reply(r#"{"ping":{},"pong":{}}"#),
            "close received malformed payload None"
        );
        assert_eq!(
            reply(r#"{"cid":"1"}"#),
            r#"close error processing message Some("{\"cid\":\"1\",\"error\":{\"code\":2,\"message\":\"Missing message.\"}}")"#
        );
        assert_eq!(
            reply(r#"{"cid":"8","rpc":{"id":""}}"#),
            r#"{"cid":"8","error":{"code":3,"message":"RPC ID must be set"}}"#
        );
    }
}
