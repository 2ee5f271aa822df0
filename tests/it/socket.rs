use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{
    closed, fixtures, keys, next_json, plain_notification, send_text, Server, WAIT,
};

#[tokio::test]
async fn handshake_rules() {
    let s = Server::start().await;
    let u = s.user("shaker").await;
    assert_eq!(
        s.socket_query("").await.err(),
        Some((401, "Missing or invalid token".into()))
    );
    assert_eq!(
        s.socket_query("token=bad").await.err(),
        Some((401, "Missing or invalid token".into()))
    );
    let bad = s
        .socket_query(&format!("token={}&format=xml", u.token))
        .await
        .err();
    assert_eq!(bad, Some((400, "Invalid format parameter".into())));
    assert!(s
        .socket_query(&format!("token={}&format=protobuf", u.token))
        .await
        .is_ok());
    // The inbox extension's frames have no protobuf form.
    let inbox = s
        .socket_query(&format!(
            "token={}&format=protobuf&tidings_inbox=true",
            u.token
        ))
        .await
        .err();
    assert_eq!(
        inbox,
        Some((
            400,
            "tidings_inbox and tidings_since need format=json".into()
        ))
    );
    assert!(s.socket_header(&u.token).await.is_ok());
    assert!(s
        .socket_query(&format!("token={}&format=json&lang=de", u.token))
        .await
        .is_ok());
}

/// Nakama's protobuf envelopes, written out by hand from realtime.proto's field numbers.
#[tokio::test]
async fn protobuf_sockets_speak_binary_envelopes() {
    let s = Server::start().await;
    let u = s.user("pb_user").await;
    let mut ws = s
        .socket_query(&format!("token={}&format=protobuf", u.token))
        .await
        .expect("protobuf socket");
    // Sends a binary frame and returns the reply frame.
    async fn exchange(ws: &mut crate::support::Ws, frame: Vec<u8>) -> Message {
        ws.send(Message::binary(frame)).await.expect("send");
        tokio::time::timeout(WAIT, futures_util::StreamExt::next(ws))
            .await
            .expect("a reply")
            .expect("open")
            .expect("frame")
    }
    // cid "7" (field 1) + ping {} (field 32) -> cid "7" + pong {} (field 33).
    let reply = exchange(&mut ws, vec![0x0a, 0x01, b'7', 0x82, 0x02, 0x00]).await;
    assert_eq!(
        reply,
        Message::binary(vec![0x0a, 0x01, b'7', 0x8a, 0x02, 0x00])
    );
    // rpc (field 24) with an empty id: error (field 11) {code 3, "RPC ID must be set"}.
    let reply = exchange(&mut ws, vec![0x0a, 0x01, b'8', 0xc2, 0x01, 0x00]).await;
    let message = b"RPC ID must be set";
    let mut error = vec![0x08, 0x03, 0x12, message.len() as u8];
    error.extend_from_slice(message);
    let mut expected = vec![0x0a, 0x01, b'8', 0x5a, error.len() as u8];
    expected.extend_from_slice(&error);
    assert_eq!(reply, Message::binary(expected));
    // Garbage bytes close it as bad JSON does; a text frame is the wrong type.
    ws.send(Message::binary(vec![0x0a, 0x09, b'x']))
        .await
        .expect("send");
    assert_eq!(
        closed(&mut ws).await,
        (1000, "received malformed payload".into())
    );
    let mut ws = s
        .socket_query(&format!("token={}&format=protobuf", u.token))
        .await
        .expect("protobuf socket");
    send_text(&mut ws, r#"{"cid":"1","ping":{}}"#).await;
    assert_eq!(
        closed(&mut ws).await,
        (1000, "received unexpected WebSocket message type".into())
    );
}

#[tokio::test]
async fn ping_pong_and_status_event() {
    let s = Server::start().await;
    let u = s.user("pinger").await;
    let mut ws = s
        .socket_query(&format!("token={}&status=true", u.token))
        .await
        .unwrap();
    let event = next_json(&mut ws).await;
    let join = &event["status_presence_event"]["joins"][0];
    assert_eq!(join["user_id"], u.id.to_string());
    assert_eq!(join["username"], "pinger");
    assert_eq!(keys(join), ["user_id", "session_id", "username", "status"]);
    send_text(&mut ws, r#"{"cid":"7","ping":{}}"#).await;
    assert_eq!(next_json(&mut ws).await, json!({"cid": "7", "pong": {}}));
    send_text(&mut ws, r#"{"ping":{}}"#).await;
    assert_eq!(next_json(&mut ws).await, json!({"pong": {}}));
    send_text(&mut ws, r#"{"cid":"8","rpc":{"id":"nothing_here"}}"#).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"cid": "8", "error": {"code": 6, "message": "RPC function not found"}})
    );
}

#[tokio::test]
async fn single_socket_kicks_the_older_socket_with_code_minus_7() {
    let s = Server::start_with(&[("session.single_socket", "true")]).await;
    let u = s.user("solo").await;
    let mut old = s.socket(&u.token).await;
    let mut new = s.socket(&u.token).await;
    let frame = next_json(&mut old).await;
    let n = &frame["notifications"]["notifications"][0];
    assert_eq!(n["code"], -7);
    assert_eq!(n["subject"], "single_socket");
    assert_eq!(n["content"], "{}");
    assert!(n.get("sender_id").is_none());
    assert!(n.get("persistent").is_none());
    assert_eq!(
        closed(&mut old).await,
        (1000, "server-side session disconnect".into())
    );
    send_text(&mut new, r#"{"cid":"1","ping":{}}"#).await;
    assert_eq!(next_json(&mut new).await, json!({"cid": "1", "pong": {}}));
}

#[tokio::test]
async fn silent_clients_are_dropped_after_pong_wait() {
    let s = Server::start_with(&[
        ("socket.ping_period_ms", "150"),
        ("socket.pong_wait_ms", "600"),
    ])
    .await;
    let u = s.user("sleepy").await;
    // A client that completes the handshake and then never reads, so never answers pings
    // (tokio-tungstenite answers them only while it is polled).
    let mut ws = s.socket(&u.token).await;
    let opened = tokio::time::Instant::now();
    while !s.core.presence.sessions_of(u.id).is_empty() {
        assert!(
            opened.elapsed() < WAIT,
            "the silent session was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        opened.elapsed() >= Duration::from_millis(500),
        "dropped before pong_wait: {:?}",
        opened.elapsed()
    );
    let _ = closed(&mut ws).await;
    // A client that keeps reading stays connected across several ping periods.
    let mut ws = s.socket(&u.token).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < deadline {
        let _ = tokio::time::timeout(
            Duration::from_millis(50),
            futures_util::StreamExt::next(&mut ws),
        )
        .await;
    }
    assert_eq!(s.core.presence.sessions_of(u.id).len(), 1);
    let batch = vec![plain_notification(u.id, "still here", false)];
    s.core.notifications.send(batch).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await["notifications"]["notifications"][0]["subject"],
        "still here"
    );
}

/// The server reads a socket 2 KiB at a time (`READ_BUFFER`, kept small for idle sockets'
/// memory): frames up to the 4 KiB message limit still arrive whole, and a burst of frames
/// of mixed sizes written at once is answered in order, each intact.
#[tokio::test]
async fn frames_longer_than_one_read_arrive_whole() {
    let modules = fixtures("good");
    let s = Server::start_with(&[("runtime.path", modules.as_str())]).await;
    let u = s.user("long_frames").await;
    let mut ws = s.socket(&u.token).await;
    let rpc = |cid: usize, payload: &str| {
        json!({"cid": cid.to_string(), "rpc": {"id": "test.echo", "payload": payload}}).to_string()
    };
    // One frame of nearly the limit: two reads and a part.
    let long = "l".repeat(3_900);
    send_text(&mut ws, &rpc(1, &long)).await;
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["cid"], "1", "{reply}");
    assert_eq!(reply["rpc"]["payload"], long.as_str());
    // A burst: short and long frames queued and flushed together, so reads end mid-frame.
    let payloads: Vec<String> = (0..24)
        .map(|i| {
            format!(
                "{i}:{}",
                "b".repeat(if i % 3 == 0 { 3_000 } else { 40 + i * 50 })
            )
        })
        .collect();
    for (i, p) in payloads.iter().enumerate() {
        ws.feed(Message::text(rpc(i + 10, p))).await.expect("feed");
    }
    ws.flush().await.expect("flush");
    for (i, p) in payloads.iter().enumerate() {
        let reply = next_json(&mut ws).await;
        assert_eq!(reply["cid"], (i + 10).to_string(), "{reply}");
        assert_eq!(reply["rpc"]["payload"], p.as_str(), "frame {i}");
    }
}
