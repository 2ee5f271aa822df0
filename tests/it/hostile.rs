//! The hostile-input matrix: one table of what a client may throw at the REST API and the
//! socket, each row with the answer it must get (status and message, or close code and
//! reason). After every table the server must still serve a normal request.
//!
//! Rows cover oversized, deeply nested, non-UTF-8 and mistyped input, huge and negative
//! numbers, unknown fields, forged and stolen tokens, every way to touch another player's
//! notifications, bad frames of both socket formats, slow-loris headers and thousands of
//! sockets for one player.

use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{
    closed, jwt_claims, next_json, plain_notification, send_text, Server, User, WAIT,
};

enum Auth {
    None,
    ServerKey,
    Bearer(String),
}

/// One REST row: the request, then the status and (if given) the exact error message.
struct Rest {
    name: &'static str,
    method: Method,
    path: String,
    auth: Auth,
    body: Vec<u8>,
    status: u16,
    message: Option<&'static str>,
}

fn row(
    name: &'static str,
    method: Method,
    path: &str,
    auth: Auth,
    body: impl Into<Vec<u8>>,
    status: u16,
    message: Option<&'static str>,
) -> Rest {
    Rest {
        name,
        method,
        path: path.to_string(),
        auth,
        body: body.into(),
        status,
        message,
    }
}

async fn run_rest(s: &Server, rows: Vec<Rest>) {
    let mut failures = Vec::new();
    for r in rows {
        let mut req = s.http.request(r.method.clone(), s.url(&r.path));
        req = match &r.auth {
            Auth::None => req,
            Auth::ServerKey => req.basic_auth("defaultkey", Some("")),
            Auth::Bearer(token) => req.bearer_auth(token),
        };
        let res = req.body(r.body).send().await.expect("request");
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        let message_ok = r.message.is_none_or(|m| body["message"] == m);
        // Every refusal is in Nakama's error shape.
        let shape_ok = status == 200 || body["code"].is_i64() && body["message"].is_string();
        if status != r.status || !message_ok || !shape_ok {
            failures.push(format!(
                "{}: expected {} {:?}, got {status} {body}",
                r.name, r.status, r.message
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn sign(claims: &Value, key: &[u8]) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(key).expect("key");
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), claims, &key).expect("sign")
}

/// Tokens that must not pass, each named.
fn forged_tokens(u: &User) -> Vec<(&'static str, String)> {
    let claims = jwt_claims(&u.token);
    let mut tampered = claims.clone();
    tampered["uid"] = json!(uuid::Uuid::new_v4().to_string());
    let parts: Vec<&str> = u.token.split('.').collect();
    let mut expired = claims.clone();
    expired["exp"] = json!(claims["iat"].as_i64().expect("iat") - 10);
    vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&claims)
            ),
        ),
        (
            "re-signed claims",
            format!("{}.{}.{}", parts[0], b64(&tampered), parts[2]),
        ),
        ("expired", sign(&expired, b"defaultencryptionkey")),
        ("wrong key", sign(&claims, b"not-the-key")),
        (
            "signed with the refresh key",
            sign(&claims, b"defaultrefreshencryptionkey"),
        ),
        ("a refresh token", u.refresh.clone()),
        ("garbage", "garbage".into()),
        ("empty", String::new()),
        ("huge", "a".repeat(100_000)),
    ]
}

#[tokio::test]
async fn the_rest_api_refuses_hostile_input_cleanly() {
    let s = Server::start_with(&[("socket.max_request_size_bytes", "65536")]).await;
    let owner = s.user("hostile_owner").await;
    let thief = s.user("hostile_thief").await;
    let banned = s.user("hostile_banned").await;
    s.core.accounts.ban(&[banned.id]).await.expect("ban");

    // The owner's stored notification that the thief will try to reach.
    let sent = s
        .core
        .notifications
        .send(vec![plain_notification(owner.id, "mine", true)])
        .await
        .expect("send");
    let id = sent[0].id;
    let t = || Auth::Bearer(thief.token.clone());
    let auth = "/v2/account/authenticate/device";
    let big = format!(r#"{{"id":"{}"}}"#, "a".repeat(70_000));
    let mut rows = vec![
        // Bodies.
        row(
            "oversized body",
            Method::POST,
            auth,
            Auth::ServerKey,
            big,
            400,
            Some("http: request body too large"),
        ),
        row(
            "deeply nested JSON",
            Method::POST,
            auth,
            Auth::ServerKey,
            "[".repeat(50_000),
            400,
            None,
        ),
        row(
            "invalid UTF-8",
            Method::POST,
            auth,
            Auth::ServerKey,
            b"{\"id\":\"\xff\xfe\xfd-device\"}".to_vec(),
            400,
            None,
        ),
        row(
            "wrong type",
            Method::POST,
            auth,
            Auth::ServerKey,
            r#"{"id":12345678}"#,
            400,
            None,
        ),
        row(
            "number too large",
            Method::POST,
            auth,
            Auth::ServerKey,
            r#"{"id":"device-aaaaaaaaaa","vars":{"a":1e999}}"#,
            400,
            None,
        ),
        row(
            "truncated JSON",
            Method::POST,
            auth,
            Auth::ServerKey,
            r#"{"id":"device-aaaa"#,
            400,
            None,
        ),
        row(
            "unknown fields are dropped, as Nakama does",
            Method::POST,
            auth,
            Auth::ServerKey,
            r#"{"id":"device-unknown-fields","extra":{"x":[1,2]}}"#,
            200,
            None,
        ),
        // Numbers in the query.
        row(
            "huge limit",
            Method::GET,
            "/v2/notification?limit=99999999999999999999",
            t(),
            "",
            400,
            None,
        ),
        row(
            "negative limit",
            Method::GET,
            "/v2/notification?limit=-1",
            t(),
            "",
            400,
            None,
        ),
        row(
            "limit not a number",
            Method::GET,
            "/v2/tidings/inbox?limit=ten",
            t(),
            "",
            400,
            None,
        ),
        row(
            "huge since",
            Method::GET,
            "/v2/tidings/inbox/changes?since=99999999999999999999999",
            t(),
            "",
            400,
            None,
        ),
        row(
            "garbage cursor",
            Method::GET,
            "/v2/notification?limit=10&cacheable_cursor=%00%ff",
            t(),
            "",
            400,
            None,
        ),
        // Tokens.
        row(
            "no token",
            Method::GET,
            "/v2/account",
            Auth::None,
            "",
            401,
            Some("Auth token required"),
        ),
        row(
            "banned player's token",
            Method::GET,
            "/v2/account",
            Auth::Bearer(banned.token.clone()),
            "",
            401,
            Some("Auth token invalid"),
        ),
        row(
            "?token= on REST",
            Method::GET,
            &format!("/v2/account?token={}", owner.token),
            Auth::None,
            "",
            401,
            Some("Auth token required"),
        ),
    ];
    for (_name, token) in forged_tokens(&owner) {
        rows.push(row(
            "forged token",
            Method::GET,
            "/v2/account",
            Auth::Bearer(token),
            "",
            401,
            None,
        ));
    }
    // Another player's notification: nothing read, deleted or marked.
    let ids = json!({ "ids": [id.to_string()] }).to_string();
    rows.extend([
        row(
            "delete another's notification",
            Method::DELETE,
            &format!("/v2/notification?ids={id}"),
            t(),
            "",
            200,
            None,
        ),
        row(
            "mark another's read",
            Method::POST,
            "/v2/tidings/inbox/read",
            t(),
            ids.clone(),
            200,
            None,
        ),
        row(
            "mark another's unread",
            Method::POST,
            "/v2/tidings/inbox/unread",
            t(),
            ids.clone(),
            200,
            None,
        ),
        row(
            "mark another's seen",
            Method::POST,
            "/v2/tidings/inbox/seen",
            t(),
            ids,
            200,
            None,
        ),
    ]);
    run_rest(&s, rows).await;

    // What the thief's calls changed: nothing. The owner still has it, unread and unseen,
    // and the thief's lists never show it.
    let (_, mine) = s.get("/v2/tidings/inbox", &owner.token).await;
    assert_eq!(mine["notifications"][0]["id"], id.to_string());
    assert_eq!(mine["notifications"][0]["read"], false);
    assert_eq!(mine["notifications"][0]["seen"], false);
    for path in ["/v2/tidings/inbox", "/v2/notification?limit=100"] {
        let (status, theirs) = s.get(path, &thief.token).await;
        assert_eq!(status, 200);
        assert!(!theirs.to_string().contains(&id.to_string()), "{path}");
    }
    let (_, counts) = s.get("/v2/tidings/inbox/count", &thief.token).await;
    assert!(counts.get("unread").is_none_or(|n| n == 0), "{counts}");
    // The lowercase scheme is not Bearer.
    let res = s
        .http
        .get(s.url("/v2/account"))
        .header("authorization", format!("bearer {}", owner.token))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 401);
    // Still serving.
    let (status, _) = s.get("/v2/account", &owner.token).await;
    assert_eq!(status, 200);
}

/// A raw text frame whose payload is not UTF-8 (tungstenite's `Message::Text` cannot hold
/// one).
fn invalid_utf8_text() -> Message {
    Message::Frame(Frame::message(
        vec![b'{', 0xff, 0xfe, b'}'],
        OpCode::Data(Data::Text),
        true,
    ))
}

#[tokio::test]
async fn the_socket_closes_on_hostile_frames_with_nakamas_reasons() {
    let s = Server::start().await;
    let u = s.user("hostile_socket").await;
    let malformed = "received malformed payload";
    let wrong_type = "received unexpected WebSocket message type";
    // Deeper than the JSON parser allows, yet under the 4 KiB frame limit.
    let nested = format!("{}{}", "[".repeat(2000), "]".repeat(2000));
    // (name, format, frame, close reason)
    let rows: Vec<(&str, &str, Message, &str)> = vec![
        (
            "unknown envelope key",
            "json",
            Message::text(r#"{"cid":"15","bogus":{}}"#),
            malformed,
        ),
        (
            "unknown field beside the message",
            "json",
            Message::text(r#"{"cid":"1","ping":{},"x":1}"#),
            malformed,
        ),
        ("not JSON", "json", Message::text("{not json"), malformed),
        (
            "truncated JSON",
            "json",
            Message::text(r#"{"cid":"1","ping":"#),
            malformed,
        ),
        (
            "deeply nested JSON",
            "json",
            Message::text(nested),
            malformed,
        ),
        (
            "cid of the wrong type",
            "json",
            Message::text(r#"{"cid":1,"ping":{}}"#),
            malformed,
        ),
        (
            "message of the wrong type",
            "json",
            Message::text(r#"{"cid":"1","rpc":[]}"#),
            malformed,
        ),
        (
            "unknown field inside ping",
            "json",
            Message::text(r#"{"cid":"1","ping":{"x":1}}"#),
            malformed,
        ),
        (
            "unknown field inside rpc",
            "json",
            Message::text(r#"{"cid":"1","rpc":{"id":"x","bogus":1}}"#),
            malformed,
        ),
        (
            "rpc id of the wrong type",
            "json",
            Message::text(r#"{"cid":"1","rpc":{"id":5}}"#),
            malformed,
        ),
        (
            "two messages",
            "json",
            Message::text(r#"{"ping":{},"pong":{}}"#),
            malformed,
        ),
        (
            "text that is not UTF-8",
            "json",
            invalid_utf8_text(),
            malformed,
        ),
        (
            "binary frame on a JSON socket",
            "json",
            Message::binary(vec![1u8, 2, 3]),
            wrong_type,
        ),
        (
            "text frame on a protobuf socket",
            "protobuf",
            Message::text(r#"{"ping":{}}"#),
            wrong_type,
        ),
        (
            "truncated protobuf",
            "protobuf",
            Message::binary(vec![0x0a, 0x09, b'x']),
            malformed,
        ),
        (
            "protobuf varint that never ends",
            "protobuf",
            Message::binary(vec![0xff; 11]),
            malformed,
        ),
        (
            "protobuf group wire type",
            "protobuf",
            Message::binary(vec![0x0b, 0x0c]),
            malformed,
        ),
    ];
    let mut failures = Vec::new();
    for (name, format, frame, reason) in rows {
        let mut ws = s
            .socket_query(&format!("token={}&format={format}", u.token))
            .await
            .expect("socket");
        ws.send(frame).await.expect("send");
        let got = closed(&mut ws).await;
        if got != (1000, reason.to_string()) {
            failures.push(format!("{name}: expected 1000 {reason:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Replies, not closes: huge and negative numbers, an envelope without a message.
    let mut ws = s.socket(&u.token).await;
    send_text(
        &mut ws,
        r#"{"cid":"1","channel_join":{"target":"room","type":99999999999}}"#,
    )
    .await;
    let (code, _) = closed(&mut ws).await;
    assert_eq!(code, 1000, "an out-of-range int32 is malformed input");
    let mut ws = s.socket(&u.token).await;
    send_text(
        &mut ws,
        r#"{"cid":"2","channel_join":{"target":"room","type":-5}}"#,
    )
    .await;
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["cid"], "2");
    assert_eq!(reply["error"]["code"], 3, "{reply}");
    // protojson reads null as "not set": no cid; an RPC with null fields beside its id (and
    // the http_key a socket call does not need) runs; a null message is no message.
    send_text(&mut ws, r#"{"cid":null,"ping":{}}"#).await;
    assert_eq!(next_json(&mut ws).await, json!({"pong": {}}));
    send_text(
        &mut ws,
        r#"{"cid":"r","rpc":{"id":"nope","payload":null,"http_key":"k"}}"#,
    )
    .await;
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["cid"], "r");
    assert_eq!(
        reply["error"]["message"], "RPC function not found",
        "{reply}"
    );
    send_text(&mut ws, r#"{"cid":"3","ping":null}"#).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"cid": "3", "error": {"code": 2, "message": "Missing message."}})
    );
    assert_eq!(
        closed(&mut ws).await,
        (1000, "error processing message".into())
    );

    // Over socket.max_message_size_bytes (4096): closed 1009 with no reason, whatever the
    // format, as Nakama's WebSocket library (gorilla) closes on its read limit.
    for format in ["json", "protobuf"] {
        let mut ws = s
            .socket_query(&format!("token={}&format={format}", u.token))
            .await
            .expect("socket");
        let big = format!(r#"{{"cid":"1","ping":{{}},"pad":"{}"}}"#, "x".repeat(5000));
        let frame = match format {
            "json" => Message::text(big),
            _ => Message::binary(big.into_bytes()),
        };
        let _ = ws.send(frame).await;
        assert_eq!(closed(&mut ws).await, (1009, String::new()), "{format}");
    }

    // Forged tokens cannot open a socket either (sent as the header: some are too long for
    // a URL).
    for (name, token) in forged_tokens(&u) {
        let refused = s.socket_header(&token).await.err();
        assert_eq!(
            refused,
            Some((401, "Missing or invalid token".into())),
            "{name}"
        );
    }

    // Still serving.
    let mut ws = s.socket(&u.token).await;
    send_text(&mut ws, r#"{"cid":"9","ping":{}}"#).await;
    assert_eq!(next_json(&mut ws).await, json!({"cid": "9", "pong": {}}));
}

/// A client that sends its headers a byte at a time never holds a connection longer than
/// `socket.read_timeout_ms`, and does not slow anyone else.
#[tokio::test]
async fn slow_loris_headers_are_cut_off() {
    let s = Server::start_with(&[("socket.read_timeout_ms", "300")]).await;
    let mut lorises = Vec::new();
    for _ in 0..20 {
        let mut conn = tokio::net::TcpStream::connect(s.addr)
            .await
            .expect("connect");
        conn.write_all(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        lorises.push(conn);
    }
    let started = Instant::now();
    // Meanwhile everyone else is served at once.
    let (status, _) = s.call(Method::GET, "/healthcheck", None, None).await;
    assert_eq!(status, 200);
    for mut conn in lorises {
        // Trickle a header byte now and then; the server must hang up anyway.
        let mut buf = [0u8; 256];
        let closed_at = loop {
            let _ = conn.write_all(b"X").await;
            match tokio::time::timeout(Duration::from_millis(100), conn.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
                // hyper may answer 408 before closing.
                Ok(Ok(_)) => continue,
                Err(_) => {}
            }
            assert!(
                started.elapsed() < WAIT,
                "a slow-loris connection stayed open"
            );
        };
        assert!(closed_at < Duration::from_secs(3), "{closed_at:?}");
    }
}

/// Thousands of sockets for one player: all accepted, every one gets the player's
/// notification, and another player's socket is still answered at once.
#[tokio::test]
async fn thousands_of_sockets_for_one_player() {
    const SOCKETS: usize = 2000;
    let s = Server::start_with(&[("socket.outgoing_queue_size", "16")]).await;
    let u = s.user("many_sockets").await;
    let other = s.user("many_sockets_other").await;
    let mut sockets = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        sockets.push(s.socket(&u.token).await);
    }
    // Each socket answers a ping, so every one is registered before the send.
    for ws in sockets.iter_mut() {
        send_text(ws, r#"{"cid":"1","ping":{}}"#).await;
    }
    for ws in sockets.iter_mut() {
        assert_eq!(next_json(ws).await["cid"], "1");
    }
    assert_eq!(s.core.presence.session_count(), SOCKETS);
    s.core
        .notifications
        .send(vec![plain_notification(u.id, "to every socket", false)])
        .await
        .expect("send");
    let mut ws_other = s.socket(&other.token).await;
    let started = Instant::now();
    send_text(&mut ws_other, r#"{"cid":"2","ping":{}}"#).await;
    assert_eq!(next_json(&mut ws_other).await["cid"], "2");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    for ws in sockets.iter_mut() {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("frame in time")
            .expect("open")
            .expect("frame");
        let frame: Value = serde_json::from_str(frame.to_text().expect("text")).expect("json");
        assert_eq!(
            frame["notifications"]["notifications"][0]["subject"],
            "to every socket"
        );
    }
}
