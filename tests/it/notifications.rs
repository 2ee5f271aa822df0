use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use tidings::core::notifications::NewNotification;

use crate::support::{next_json, silent, Server};

fn note(user: Uuid, subject: &str, code: i32, persistent: bool) -> NewNotification {
    NewNotification {
        user_id: user,
        subject: subject.into(),
        content: format!("{{\"s\":\"{subject}\"}}"),
        code,
        sender_id: Some(Uuid::nil()),
        persistent,
        expire_time: None,
        keys: Default::default(),
    }
}

async fn send(s: &Server, batch: Vec<NewNotification>) {
    s.core.notifications.send(batch).await.expect("send");
}

fn list_items(body: &Value) -> Vec<Value> {
    body.get("notifications")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn persistent_send_reaches_two_sockets_then_lists_and_deletes() {
    let s = Server::start().await;
    let u = s.user("alice").await;
    let sender = s.user("bob").await;
    let mut first = s.socket(&u.token).await;
    let mut second = s.socket(&u.token).await;

    let batch = vec![
        NewNotification {
            sender_id: Some(sender.id),
            ..note(u.id, "hello", 5, true)
        },
        note(u.id, "live", 6, false),
    ];
    send(&s, batch).await;

    for ws in [&mut first, &mut second] {
        let frame = next_json(ws).await;
        assert!(frame.get("cid").is_none());
        let items = frame["notifications"]["notifications"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(items.len(), 2, "one frame with the whole call: {frame}");
        assert_eq!(items[0]["subject"], "hello");
        assert_eq!(items[0]["content"], "{\"s\":\"hello\"}");
        assert_eq!(items[0]["code"], 5);
        assert_eq!(items[0]["sender_id"], sender.id.to_string());
        assert_eq!(items[0]["persistent"], true);
        assert!(items[0]["create_time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(items[1]["subject"], "live");
        assert_eq!(
            items[1]["sender_id"],
            "00000000-0000-0000-0000-000000000000"
        );
        assert!(
            items[1].get("persistent").is_none(),
            "false is omitted: {frame}"
        );
    }

    let (status, body) = s.get("/v2/notification?limit=10", &u.token).await;
    assert_eq!(status, 200);
    let items = list_items(&body);
    assert_eq!(items.len(), 1, "only the persistent one is stored: {body}");
    let id = items[0]["id"].as_str().unwrap().to_string();
    assert_eq!(items[0]["sender_id"], sender.id.to_string());
    assert_eq!(items[0]["persistent"], true);

    // Another user cannot delete it.
    let (status, body) = s
        .delete(&format!("/v2/notification?ids={id}"), &sender.token)
        .await;
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(
        list_items(&s.get("/v2/notification?limit=10", &u.token).await.1).len(),
        1
    );

    let (status, body) = s
        .delete(
            &format!("/v2/notification?ids={id}&ids={}", Uuid::new_v4()),
            &u.token,
        )
        .await;
    assert_eq!((status, body), (200, json!({})));
    assert!(list_items(&s.get("/v2/notification?limit=10", &u.token).await.1).is_empty());
}

#[tokio::test]
async fn system_sender_is_omitted_in_lists_and_zero_fields_are_absent() {
    let s = Server::start().await;
    let u = s.user("carol").await;
    send(&s, vec![note(u.id, "sys", 1, true)]).await;
    let (_, body) = s.get("/v2/notification", &u.token).await;
    let item = &list_items(&body)[0];
    let mut keys: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "code",
            "content",
            "create_time",
            "id",
            "persistent",
            "subject"
        ]
    );
}

#[tokio::test]
async fn default_limit_is_one_and_cursor_pages_oldest_first() {
    let s = Server::start().await;
    let u = s.user("pager").await;
    // One batch: list order is send order (deviation 6).
    send(
        &s,
        (0..5)
            .map(|i| note(u.id, &format!("n{i}"), i + 1, true))
            .collect(),
    )
    .await;

    let (_, body) = s.get("/v2/notification", &u.token).await;
    assert_eq!(list_items(&body).len(), 1);
    assert_eq!(list_items(&body)[0]["subject"], "n0");

    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, body) = s
            .get(
                &format!("/v2/notification?limit=2&cacheable_cursor={cursor}"),
                &u.token,
            )
            .await;
        assert_eq!(status, 200);
        let items = list_items(&body);
        let next = body["cacheable_cursor"]
            .as_str()
            .expect("cursor on every page")
            .to_string();
        if items.is_empty() {
            assert_eq!(next, cursor, "an empty page echoes the cursor");
            break;
        }
        seen.extend(
            items
                .iter()
                .map(|n| n["subject"].as_str().unwrap().to_string()),
        );
        cursor = next;
    }
    assert_eq!(seen, ["n0", "n1", "n2", "n3", "n4"]);

    // The cursor is a position, not a reference: deleting the row it points at (n4, here by
    // its braced spelling, which Nakama's PostgreSQL accepts) does not break it (§2.4, §3.2).
    let (_, all) = s.get("/v2/notification?limit=100", &u.token).await;
    let last = list_items(&all)[4]["id"].as_str().unwrap().to_string();
    assert_eq!(
        s.delete(&format!("/v2/notification?ids=%7B{last}%7D"), &u.token)
            .await,
        (200, json!({}))
    );
    assert_eq!(
        list_items(&s.get("/v2/notification?limit=100", &u.token).await.1).len(),
        4
    );

    // A cached cursor later yields only what is newer.
    send(&s, vec![note(u.id, "n5", 9, true)]).await;
    let (_, body) = s
        .get(
            &format!("/v2/notification?limit=100&cacheable_cursor={cursor}"),
            &u.token,
        )
        .await;
    let items = list_items(&body);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["subject"], "n5");
}

#[tokio::test]
async fn empty_inbox_returns_the_empty_cursor() {
    let s = Server::start().await;
    let u = s.user("empty").await;
    let (status, body) = s.get("/v2/notification?limit=100", &u.token).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"cacheable_cursor": "Sn8DAQEbbm90aWZpY2F0aW9uQ2FjaGVhYmxlQ3Vyc29yAf-AAAECAQ5Ob3RpZmljYXRpb25JRAEKAAEKQ3JlYXRlVGltZQEEAAAAA_-AAA"})
    );
}

#[tokio::test]
async fn list_and_delete_refuse_bad_input() {
    let s = Server::start().await;
    let u = s.user("strict").await;
    send(&s, vec![note(u.id, "keep", 1, true)]).await;
    let bad_limit =
        json!({"code": 3, "message": "Invalid limit - limit must be between 1 and 100."});
    for limit in ["0", "-1", "101"] {
        assert_eq!(
            s.get(&format!("/v2/notification?limit={limit}"), &u.token)
                .await,
            (400, bad_limit.clone())
        );
    }
    assert_eq!(
        s.get("/v2/notification?limit=abc", &u.token).await,
        (
            400,
            json!({"code": 3, "message": "parsing field \"limit\": strconv.ParseInt: parsing \"abc\": invalid syntax"})
        )
    );
    for cursor in ["notbase64!!", "AAAA"] {
        assert_eq!(
            s.get(
                &format!("/v2/notification?cacheable_cursor={cursor}"),
                &u.token
            )
            .await,
            (
                400,
                json!({"code": 3, "message": "Malformed cursor was used."})
            )
        );
    }
    // A bad id anywhere in the list deletes nothing (deviation 2).
    let (_, body) = s.get("/v2/notification", &u.token).await;
    let id = list_items(&body)[0]["id"].as_str().unwrap().to_string();
    for query in [
        format!("ids={id}&ids=nope"),
        "ids=".to_string(),
        format!("ids={id},{id}"),
    ] {
        let (status, body) = s
            .delete(&format!("/v2/notification?{query}"), &u.token)
            .await;
        assert_eq!(
            (status, body["code"].clone()),
            (400, json!(3)),
            "{query}: {body}"
        );
    }
    assert_eq!(
        list_items(&s.get("/v2/notification", &u.token).await.1).len(),
        1
    );
    // No ids at all is a no-op, and ids in a body are ignored (§2.4).
    assert_eq!(
        s.delete("/v2/notification?", &u.token).await,
        (200, json!({}))
    );
    let body = json!({ "ids": [id] }).to_string();
    assert_eq!(
        s.call(
            reqwest::Method::DELETE,
            "/v2/notification",
            Some(&u.token),
            Some(&body)
        )
        .await,
        (200, json!({}))
    );
    assert_eq!(
        list_items(&s.get("/v2/notification", &u.token).await.1).len(),
        1
    );
    // Other spellings of a UUID are accepted.
    let (status, _) = s
        .delete(
            &format!(
                "/v2/notification?ids={}",
                id.to_uppercase().replace('-', "")
            ),
            &u.token,
        )
        .await;
    assert_eq!(status, 200);
    assert!(list_items(&s.get("/v2/notification", &u.token).await.1).is_empty());
}

#[tokio::test]
async fn offline_non_persistent_is_dropped_and_sockets_get_only_their_users() {
    let s = Server::start().await;
    let a = s.user("online").await;
    let b = s.user("offline").await;
    let mut ws = s.socket(&a.token).await;
    send(
        &s,
        vec![note(b.id, "lost", 1, false), note(a.id, "mine", 2, false)],
    )
    .await;
    let frame = next_json(&mut ws).await;
    let items = frame["notifications"]["notifications"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["subject"], "mine");
    assert!(silent(&mut ws, Duration::from_millis(200)).await);
    assert!(list_items(&s.get("/v2/notification", &b.token).await.1).is_empty());
}

#[tokio::test]
async fn persistent_send_to_unknown_user_fails_and_pushes_nothing() {
    let s = Server::start().await;
    let a = s.user("bystander").await;
    let mut ws = s.socket(&a.token).await;
    let err = s
        .core
        .notifications
        .send(vec![
            note(a.id, "live", 1, false),
            note(Uuid::new_v4(), "stored", 1, true),
        ])
        .await
        .unwrap_err();
    assert!(err.message.contains("foreign key"), "{}", err.message);
    assert!(silent(&mut ws, Duration::from_millis(200)).await);
    // Subject and code limits of stored rows.
    let long = note(a.id, &"x".repeat(256), 1, true);
    assert!(s.core.notifications.send(vec![long]).await.is_err());
    assert!(s
        .core
        .notifications
        .send(vec![note(a.id, "big", 40_000, true)])
        .await
        .is_err());
    assert!(s
        .core
        .notifications
        .send(vec![note(a.id, "big", 40_000, false)])
        .await
        .is_ok());
}

#[tokio::test]
async fn send_all_reaches_every_socket_and_every_inbox() {
    let s = Server::start().await;
    let users = [s.user("u1").await, s.user("u2").await, s.user("u3").await];
    let mut sockets = Vec::new();
    for u in &users[..2] {
        sockets.push(s.socket(&u.token).await);
    }
    s.core
        .notifications
        .send_all("hi all".into(), "{}".into(), 7, false)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for ws in &mut sockets {
        let frame = next_json(ws).await;
        ids.push(frame["notifications"]["notifications"][0]["id"].clone());
    }
    assert_eq!(ids[0], ids[1], "one shared notification");
    assert!(list_items(&s.get("/v2/notification", &users[0].token).await.1).is_empty());

    let stored = s
        .core
        .notifications
        .send_all("saved".into(), "{\"a\":1}".into(), 8, true)
        .await
        .unwrap();
    assert_eq!(stored, 1, "one broadcast row, whatever the number of users");
    let mut listed_ids = Vec::new();
    for u in &users {
        let items = list_items(&s.get("/v2/notification", &u.token).await.1);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["subject"], "saved");
        listed_ids.push(items[0]["id"].clone());
    }
    assert!(
        listed_ids[0] != listed_ids[1] && listed_ids[1] != listed_ids[2],
        "each user's copy has its own id, as in Nakama: {listed_ids:?}"
    );
    for (i, ws) in sockets.iter_mut().enumerate() {
        let frame = next_json(ws).await;
        let pushed = &frame["notifications"]["notifications"][0];
        assert_eq!(pushed["persistent"], true);
        assert_eq!(
            pushed["id"], listed_ids[i],
            "the pushed copy is the listed one"
        );
    }
}

#[tokio::test]
async fn get_and_update_through_core() {
    let s = Server::start().await;
    let u = s.user("editor").await;
    send(&s, vec![note(u.id, "before", 3, true)]).await;
    let (_, body) = s.get("/v2/notification", &u.token).await;
    let id = Uuid::parse_str(list_items(&body)[0]["id"].as_str().unwrap()).unwrap();
    let n = s
        .core
        .notifications
        .update(vec![tidings::core::notifications::NotificationUpdate {
            id,
            subject: Some("after".into()),
            content: Some("{\"v\":2}".into()),
            sender_id: None,
        }])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let got = s
        .core
        .notifications
        .get(vec![id], Some(u.id))
        .await
        .unwrap();
    assert_eq!(got[0].subject, "after");
    assert_eq!(got[0].content, "{\"v\":2}");
    assert!(s
        .core
        .notifications
        .get(vec![id], Some(Uuid::new_v4()))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.core.notifications.delete(vec![id], None).await.unwrap(),
        1
    );
}
