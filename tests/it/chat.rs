//! Direct chat and rooms over the socket, history over REST (Nakama's channel pipeline):
//! the -1 notification when the other user is not in the channel, presence events, messages
//! to everyone in the channel, Nakama's error codes and messages, and paged history.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{keys, next_json, send_text, silent, Server, Ws};

/// Reads frames until one has `key` (other frames are returned too, in order).
async fn until_key(ws: &mut Ws, key: &str) -> (Value, Vec<Value>) {
    let mut others = Vec::new();
    for _ in 0..20 {
        let frame = next_json(ws).await;
        if frame.get(key).is_some() {
            return (frame, others);
        }
        others.push(frame);
    }
    panic!("no {key} frame; got {others:?}");
}

async fn request(ws: &mut Ws, body: Value) -> Value {
    send_text(ws, &body.to_string()).await;
    let cid = body["cid"].as_str().unwrap().to_string();
    for _ in 0..20 {
        let frame = next_json(ws).await;
        if frame["cid"] == cid.as_str() {
            return frame;
        }
    }
    panic!("no reply to {body}");
}

fn dm_id(a: Uuid, b: Uuid) -> String {
    let (a, b) = (a.to_string(), b.to_string());
    if a <= b {
        format!("4.{a}.{b}.")
    } else {
        format!("4.{b}.{a}.")
    }
}

#[tokio::test]
async fn direct_chat_notifies_delivers_and_keeps_history() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let mut wa = s.socket(&alice.token).await;
    let mut wb = s.socket(&bob.token).await;
    let id = dm_id(alice.id, bob.id);
    let (one, two) = {
        let (a, b) = (alice.id.to_string(), bob.id.to_string());
        if a <= b {
            (a, b)
        } else {
            (b, a)
        }
    };

    // Alice joins while Bob is not in the channel: Bob gets -1, stored.
    let reply = request(
        &mut wa,
        json!({"cid":"1","channel_join":{"target": bob.id.to_string(), "type": 2, "persistence": true, "hidden": false}}),
    )
    .await;
    let channel = &reply["channel"];
    assert_eq!(
        keys(&reply),
        ["cid", "channel"],
        "cid first, as protojson writes it"
    );
    assert_eq!(
        keys(&channel["self"]),
        ["user_id", "session_id", "username", "persistence"]
    );
    assert_eq!(channel["id"], id.as_str());
    assert_eq!(channel["self"]["user_id"], alice.id.to_string());
    assert_eq!(channel["self"]["username"], "alice");
    assert_eq!(channel["self"]["persistence"], true);
    assert!(channel.get("presences").is_none(), "{reply}");
    assert_eq!(
        (
            channel["user_id_one"].as_str(),
            channel["user_id_two"].as_str()
        ),
        (Some(&*one), Some(&*two))
    );
    let (frame, _) = until_key(&mut wb, "notifications").await;
    let n = &frame["notifications"]["notifications"][0];
    assert_eq!(n["code"], -1);
    assert_eq!(n["subject"], "alice wants to chat");
    assert_eq!(n["content"], r#"{"username":"alice"}"#);
    assert_eq!(n["sender_id"], alice.id.to_string());
    assert_eq!(n["persistent"], true);
    let (_, inbox) = s.get("/v2/notification?limit=5", &bob.token).await;
    assert_eq!(inbox["notifications"][0]["code"], -1);

    // Bob joins: Alice is there, so no -1 for her; both see Bob's join.
    let reply = request(
        &mut wb,
        json!({"cid":"1","channel_join":{"target": alice.id.to_string(), "type": 2}}),
    )
    .await;
    assert_eq!(reply["channel"]["id"], id.as_str());
    assert_eq!(
        reply["channel"]["presences"][0]["user_id"],
        alice.id.to_string()
    );
    let (event, skipped) = until_key(&mut wa, "channel_presence_event").await;
    assert!(
        skipped.iter().all(|f| f.get("notifications").is_none()),
        "{skipped:?}"
    );
    let event = if event["channel_presence_event"]["joins"][0]["user_id"] == alice.id.to_string() {
        until_key(&mut wa, "channel_presence_event").await.0
    } else {
        event
    };
    assert_eq!(
        event["channel_presence_event"]["joins"][0]["user_id"],
        bob.id.to_string()
    );
    assert_eq!(event["channel_presence_event"]["channel_id"], id.as_str());

    // A message reaches both, the sender first as an event, then the ack.
    let send = json!({"cid":"2","channel_message_send":{"channel_id": id, "content": "{\"text\":\"hi bob\"}"}});
    send_text(&mut wa, &send.to_string()).await;
    let (event, _) = until_key(&mut wa, "channel_message").await;
    let (ack, _) = until_key(&mut wa, "channel_message_ack").await;
    assert_eq!(ack["cid"], "2");
    let ack = &ack["channel_message_ack"];
    let m = &event["channel_message"];
    assert_eq!(ack["message_id"], m["message_id"]);
    assert_eq!(ack["code"], 0);
    assert_eq!(ack["persistent"], true);
    assert_eq!(ack["username"], "alice");
    assert!(ack.get("content").is_none() && ack.get("sender_id").is_none());
    assert_eq!(m["content"], "{\"text\":\"hi bob\"}");
    assert_eq!(m["sender_id"], alice.id.to_string());
    assert_eq!(m["user_id_one"], one.as_str());
    let (received, _) = until_key(&mut wb, "channel_message").await;
    assert_eq!(received["channel_message"]["message_id"], m["message_id"]);

    // History: the two users read it, oldest first; anyone else is told it does not exist.
    for i in 0..4 {
        let send = json!({"cid": format!("m{i}"), "channel_message_send":{"channel_id": id, "content": format!("{{\"n\":{i}}}")}});
        let reply = request(&mut wb, send).await;
        assert!(reply.get("channel_message_ack").is_some(), "{reply}");
    }
    let path = format!("/v2/channel/{}", id.replace('.', "%2E"));
    let (status, page) = s.get(&format!("{path}?limit=2"), &bob.token).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["messages"][0]["content"], "{\"text\":\"hi bob\"}");
    assert_eq!(page["messages"][1]["content"], "{\"n\":0}");
    let next = page["next_cursor"].as_str().expect("more pages");
    let (_, rest) = s
        .get(&format!("{path}?limit=10&cursor={next}"), &alice.token)
        .await;
    let contents: Vec<&str> = rest["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"]);
    assert!(rest.get("next_cursor").is_none());
    let (_, newest) = s
        .get(&format!("{path}?limit=1&forward=false"), &alice.token)
        .await;
    assert_eq!(newest["messages"][0]["content"], "{\"n\":3}");
    let (status, body) = s.get(&format!("{path}?limit=2"), &carol.token).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Channel not found."))
    );
    let (status, body) = s.get("/v2/channel/nope", &bob.token).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Invalid channel ID."))
    );
    let (status, body) = s.get(&format!("{path}?limit=101"), &bob.token).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            400,
            Some("Invalid limit - limit must be between 1 and 100.")
        )
    );

    // Leaving answers an empty envelope and tells the other side.
    let reply = request(
        &mut wb,
        json!({"cid":"9","channel_leave":{"channel_id": id}}),
    )
    .await;
    assert_eq!(reply, json!({"cid":"9"}));
    let (event, _) = until_key(&mut wa, "channel_presence_event").await;
    assert_eq!(
        event["channel_presence_event"]["leaves"][0]["user_id"],
        bob.id.to_string()
    );
}

#[tokio::test]
async fn chat_errors_are_nakamas_and_blocks_hold() {
    let s = Server::start().await;
    let dan = s.user("dan").await;
    let eve = s.user("eve").await;
    let mut wd = s.socket(&dan.token).await;
    let mut we = s.socket(&eve.token).await;
    let cases = [
        (
            json!({"target": "", "type": 2}),
            json!({"code": 3, "message": "Invalid channel target"}),
        ),
        (
            json!({"target": "zz", "type": 2}),
            json!({"code": 3, "message": "Invalid user ID in direct message join: Invalid channel target"}),
        ),
        (
            json!({"target": Uuid::new_v4().to_string(), "type": 2}),
            json!({"code": 3, "message": "User ID not found: Invalid channel target"}),
        ),
        (
            json!({"target": "lobby", "type": 9}),
            json!({"code": 3, "message": "Invalid channel type"}),
        ),
        (
            json!({"target": "x".repeat(65), "type": 1}),
            json!({"code": 3, "message": "Channel name is required and must be 1-64 chars: Invalid channel target"}),
        ),
    ];
    for (i, (join, error)) in cases.into_iter().enumerate() {
        let reply = request(&mut wd, json!({"cid": i.to_string(), "channel_join": join})).await;
        assert_eq!(reply["error"], error, "{join}");
    }
    // Eve blocks Dan: Dan cannot open a direct chat with her, and she hears nothing.
    let (status, _) = s
        .call(
            Method::POST,
            &format!("/v2/friend/block?ids={}", dan.id),
            Some(&eve.token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let reply = request(
        &mut wd,
        json!({"cid":"b","channel_join":{"target": eve.id.to_string(), "type": 2}}),
    )
    .await;
    assert_eq!(
        reply["error"]["message"],
        "User ID not found: Invalid channel target"
    );
    assert!(silent(&mut we, Duration::from_millis(150)).await);

    // Sending needs a joined channel and a JSON object.
    let id = dm_id(dan.id, eve.id);
    let reply = request(
        &mut wd,
        json!({"cid":"s1","channel_message_send":{"channel_id": id, "content": "{}"}}),
    )
    .await;
    assert_eq!(
        reply["error"],
        json!({"code": 3, "message": "Must join channel before sending messages"})
    );
    let reply = request(
        &mut wd,
        json!({"cid":"s2","channel_message_send":{"channel_id": "bad", "content": "{}"}}),
    )
    .await;
    assert_eq!(
        reply["error"],
        json!({"code": 3, "message": "Invalid channel identifier"})
    );
    let reply = request(
        &mut wd,
        json!({"cid":"r","channel_join":{"target": "lobby", "type": 1}}),
    )
    .await;
    assert_eq!(reply["channel"]["id"], "2...lobby");
    assert_eq!(reply["channel"]["room_name"], "lobby");
    let reply = request(
        &mut wd,
        json!({"cid":"s3","channel_message_send":{"channel_id": "2...lobby", "content": "[1]"}}),
    )
    .await;
    assert_eq!(
        reply["error"],
        json!({"code": 3, "message": "Message content must be a valid JSON object"})
    );
    // Leaving a channel one is not in is fine; a bad id is not.
    let reply = request(
        &mut wd,
        json!({"cid":"l1","channel_leave":{"channel_id": id}}),
    )
    .await;
    assert_eq!(reply, json!({"cid":"l1"}));
    let reply = request(
        &mut wd,
        json!({"cid":"l2","channel_leave":{"channel_id": "x"}}),
    )
    .await;
    assert_eq!(reply["error"]["message"], "Invalid channel identifier");
    // Unknown fields close the socket, as Nakama's strict decoder does.
    send_text(
        &mut wd,
        r#"{"cid":"u","channel_join":{"target":"lobby","type":1,"bogus":1}}"#,
    )
    .await;
    assert_eq!(
        crate::support::closed(&mut wd).await.1,
        "received malformed payload"
    );
}

#[tokio::test]
async fn a_closed_socket_leaves_its_channels() {
    let s = Server::start().await;
    let fay = s.user("fay").await;
    let gus = s.user("gus").await;
    let mut wf = s.socket(&fay.token).await;
    let mut wg = s.socket(&gus.token).await;
    for (ws, cid) in [(&mut wf, "1"), (&mut wg, "2")] {
        let reply = request(
            ws,
            json!({"cid": cid, "channel_join":{"target": "tavern", "type": 1}}),
        )
        .await;
        assert!(reply.get("channel").is_some(), "{reply}");
    }
    drop(wg);
    loop {
        let (event, _) = until_key(&mut wf, "channel_presence_event").await;
        if let Some(leaves) = event["channel_presence_event"]["leaves"].as_array() {
            assert_eq!(leaves[0]["user_id"], gus.id.to_string());
            break;
        }
    }
}
