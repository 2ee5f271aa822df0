//! The inbox extension over real REST and sockets: read/seen state, counts, filtered lists,
//! live inbox frames on sockets that opted in (and never on the others), and the `nk`
//! functions.

use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use tidings::core::notifications::{NewNotification, NotificationUpdate};

use crate::support::{next_json, silent, Server, Ws};

fn note(user: Uuid, subject: &str, code: i32) -> NewNotification {
    NewNotification {
        user_id: user,
        subject: subject.into(),
        content: "{}".into(),
        code,
        sender_id: None,
        persistent: true,
        expire_time: None,
        keys: Default::default(),
    }
}

async fn post(s: &Server, path: &str, token: &str, body: Value) -> (u16, Value) {
    s.call(
        reqwest::Method::POST,
        path,
        Some(token),
        Some(&body.to_string()),
    )
    .await
}

async fn inbox_socket(s: &Server, token: &str) -> Ws {
    s.socket_query(&format!("token={token}&tidings_inbox=true"))
        .await
        .expect("socket")
}

/// The next frame that is an inbox event.
async fn inbox_frame(ws: &mut Ws) -> Value {
    for _ in 0..5 {
        let frame = next_json(ws).await;
        if let Some(event) = frame.get("tidings_inbox") {
            return event.clone();
        }
    }
    panic!("no inbox frame in five frames");
}

#[tokio::test]
async fn read_state_counts_and_filtered_lists() {
    let s = Server::start().await;
    let u = s.user("reader").await;
    let other = s.user("other").await;
    let sent = s
        .core
        .notifications
        .send(vec![
            note(u.id, "a", 1),
            note(u.id, "b", 1),
            note(u.id, "c", 5),
        ])
        .await
        .expect("send");
    let ids: Vec<String> = sent.iter().map(|n| n.id.to_string()).collect();

    let (status, counts) = s.get("/v2/tidings/inbox/count", &u.token).await;
    assert_eq!(status, 200, "{counts}");
    assert_eq!(
        counts,
        json!({"unread": 3, "unseen": 3, "unread_by_code": {"1": 2, "5": 1}})
    );

    let (status, body) = post(
        &s,
        "/v2/tidings/inbox/read",
        &u.token,
        json!({"ids": [ids[0]]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"changed": 1, "unread": 2, "unseen": 2, "unread_by_code": {"1": 1, "5": 1}})
    );
    let (_, again) = post(
        &s,
        "/v2/tidings/inbox/read",
        &u.token,
        json!({"ids": [ids[0]]}),
    )
    .await;
    assert_eq!(again["changed"], 0, "reading twice changes nothing");
    // Someone else's ids do nothing to this inbox.
    let (_, foreign) = post(
        &s,
        "/v2/tidings/inbox/read",
        &other.token,
        json!({"ids": [ids[1]]}),
    )
    .await;
    assert_eq!(foreign["changed"], 0);

    let (_, unread) = s.get("/v2/tidings/inbox?read=false", &u.token).await;
    let subjects = |b: &Value| -> Vec<String> {
        b["notifications"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| n["subject"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(subjects(&unread), ["b", "c"]);
    let (_, read) = s.get("/v2/tidings/inbox?read=true", &u.token).await;
    assert_eq!(subjects(&read), ["a"]);
    assert_eq!(read["notifications"][0]["read"], true);
    assert!(read["notifications"][0]["read_time"].is_string(), "{read}");
    let (_, five) = s.get("/v2/tidings/inbox?code=5", &u.token).await;
    assert_eq!(subjects(&five), ["c"]);
    assert_eq!(five["notifications"][0]["read"], false);
    // Paging with the cursor.
    let (_, first) = s.get("/v2/tidings/inbox?limit=2", &u.token).await;
    assert_eq!(subjects(&first), ["a", "b"]);
    let cursor = first["cursor"].as_str().expect("cursor").to_string();
    let (_, rest) = s
        .get(
            &format!("/v2/tidings/inbox?limit=2&cursor={cursor}"),
            &u.token,
        )
        .await;
    assert_eq!(subjects(&rest), ["c"]);
    assert!(rest.get("cursor").is_none(), "{rest}");

    // Nakama's own list is untouched by the extension.
    let (_, plain) = s.get("/v2/notification?limit=10", &u.token).await;
    assert!(plain["notifications"][0].get("read").is_none(), "{plain}");

    let (_, seen) = post(&s, "/v2/tidings/inbox/seen", &u.token, json!({"all": true})).await;
    assert_eq!(
        (seen["changed"].clone(), seen["unseen"].clone()),
        (json!(2), json!(0))
    );
    let (_, back) = post(
        &s,
        "/v2/tidings/inbox/unread",
        &u.token,
        json!({"ids": [ids[0]]}),
    )
    .await;
    assert_eq!(back["unread"], 3);
    let (_, all) = post(&s, "/v2/tidings/inbox/read", &u.token, json!({"all": true})).await;
    assert_eq!(
        all,
        json!({"changed": 3, "unread": 0, "unseen": 0, "unread_by_code": {}})
    );

    // Bad input: Nakama's error shape, status 400.
    for (path, body) in [
        ("/v2/tidings/inbox/read", json!({})),
        ("/v2/tidings/inbox/read", json!({"ids": ["nope"]})),
        (
            "/v2/tidings/inbox/read",
            json!({"ids": [ids[0]], "all": true}),
        ),
        ("/v2/tidings/inbox/unread", json!({"all": true})),
        ("/v2/tidings/inbox/read", json!({"idz": []})),
    ] {
        let (status, err) = post(&s, path, &u.token, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}: {err}");
        assert_eq!(err["code"], 3, "{err}");
    }
    let too_many: Vec<String> = (0..1001).map(|_| Uuid::new_v4().to_string()).collect();
    let (status, _) = post(
        &s,
        "/v2/tidings/inbox/read",
        &u.token,
        json!({"ids": too_many}),
    )
    .await;
    assert_eq!(status, 400);
    for query in [
        "limit=0",
        "limit=1001",
        "read=maybe",
        "code=x",
        "cursor=%%%",
    ] {
        let (status, err) = s.get(&format!("/v2/tidings/inbox?{query}"), &u.token).await;
        assert_eq!(status, 400, "{query}: {err}");
    }
    let (status, _) = s.get("/v2/tidings/inbox/count", "bad-token").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn sockets_that_opted_in_follow_the_inbox_and_others_hear_nothing() {
    let s = Server::start().await;
    let u = s.user("devices").await;
    let mut phone = inbox_socket(&s, &u.token).await;
    let mut tablet = inbox_socket(&s, &u.token).await;
    let mut plain = s.socket(&u.token).await;

    let sent = s
        .core
        .notifications
        .send(vec![note(u.id, "hello", 2)])
        .await
        .expect("send");
    let id = sent[0].id.to_string();
    for ws in [&mut phone, &mut tablet] {
        let frame = next_json(ws).await;
        assert_eq!(
            frame["notifications"]["notifications"][0]["id"],
            id.as_str()
        );
        let event = inbox_frame(ws).await;
        assert_eq!(
            event,
            json!({"change": "stored", "ids": [id], "all": false, "unread": 1, "unseen": 1,
                   "unread_by_code": {"2": 1}})
        );
    }
    let frame = next_json(&mut plain).await;
    assert!(frame.get("notifications").is_some(), "{frame}");

    // Read on one device: every opted-in socket hears it.
    let (status, _) = post(&s, "/v2/tidings/inbox/read", &u.token, json!({"ids": [id]})).await;
    assert_eq!(status, 200);
    for ws in [&mut phone, &mut tablet] {
        let event = inbox_frame(ws).await;
        assert_eq!(event["change"], "read");
        assert_eq!(event["ids"], json!([id]));
        assert_eq!(event["unread"], 0);
    }

    // Updated and deleted elsewhere (a script, the REST delete).
    s.core
        .notifications
        .update(vec![NotificationUpdate {
            id: sent[0].id,
            subject: Some("hello again".into()),
            content: None,
            sender_id: None,
        }])
        .await
        .expect("update");
    assert_eq!(inbox_frame(&mut phone).await["change"], "updated");
    let (status, _) = s
        .delete(&format!("/v2/notification?ids={id}"), &u.token)
        .await;
    assert_eq!(status, 200);
    let event = inbox_frame(&mut phone).await;
    assert_eq!(
        (event["change"].clone(), event["ids"].clone()),
        (json!("deleted"), json!([id]))
    );
    assert_eq!(inbox_frame(&mut tablet).await["change"], "updated");
    assert_eq!(inbox_frame(&mut tablet).await["change"], "deleted");

    // Nothing of this reached the socket that did not ask.
    assert!(silent(&mut plain, Duration::from_millis(300)).await);
}

#[tokio::test]
async fn scripts_mark_and_count() {
    let path = crate::support::fixtures("good");
    let s = Server::start_with(&[("runtime.path", path.as_str())]).await;
    let u = s.user("scripted").await;
    let sent = s
        .core
        .notifications
        .send(vec![
            note(u.id, "x", 3),
            note(u.id, "y", 3),
            note(u.id, "z", 4),
        ])
        .await
        .expect("send");
    let eval = |code: String| {
        let s = &s;
        let token = u.token.clone();
        async move { s.rpc("test.eval", &token, &code).await }
    };
    let uid = u.id;
    let (status, body) = eval(format!(
        "local n = nk.notifications_mark_read('{uid}', {{'{}'}}) \
         local c = nk.notifications_unread_count('{uid}') \
         return nk.json_encode({{n = n, unread = c.unread, unseen = c.unseen, three = c.by_code[3], four = c.by_code[4]}})",
        sent[0].id
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let got: Value =
        serde_json::from_str(body["payload"].as_str().expect("payload")).expect("json");
    assert_eq!(
        got,
        json!({"n": 1, "unread": 2, "unseen": 2, "three": 1, "four": 1})
    );

    let (_, body) = eval(format!(
        "return tostring(nk.notifications_mark_seen('{uid}')) .. ',' .. \
         tostring(nk.notifications_mark_unread('{uid}', {{'{}'}})) .. ',' .. \
         tostring(nk.notifications_mark_read('{uid}'))",
        sent[0].id
    ))
    .await;
    assert_eq!(body["payload"], "2,1,3", "{body}");

    // Argument errors name the argument, as every nk function does.
    for (code, expect) in [
        (
            "nk.notifications_mark_read('nope')",
            "expects user_id to be a valid UUID",
        ),
        (
            &format!("nk.notifications_mark_unread('{uid}')"),
            "expects a list of notification ids",
        ),
        (
            &format!("nk.notifications_mark_read('{uid}', {{'bad'}})"),
            "each notification id must be a valid id",
        ),
    ] {
        let (status, body) = eval(code.to_string()).await;
        assert_ne!(status, 200, "{code}");
        let message = body["message"].as_str().unwrap_or("");
        assert!(message.contains(expect), "{code}: {message}");
    }
}

/// Rows of `id` left in the server's SQLite file (the purge really deleted them).
fn rows_in_file(s: &Server, id: Uuid) -> i64 {
    let db = rusqlite::Connection::open(s.dir.path().join("tidings.db")).expect("open db");
    db.query_row(
        "SELECT count(*) FROM notification WHERE id = ?1",
        [id.as_bytes().to_vec()],
        |r| r.get(0),
    )
    .expect("count")
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn expired_notifications_are_never_listed_and_are_purged() {
    let path = crate::support::fixtures("good");
    let s = Server::start_with(&[
        ("runtime.path", path.as_str()),
        ("notifications.purge_interval_ms", "100"),
    ])
    .await;
    let u = s.user("expiring").await;
    let uid = u.id;
    let (status, body) = s
        .rpc(
            "test.eval",
            &u.token,
            &format!(
                "nk.notification_send('{uid}', 'short', {{}}, 1, nil, true, {{ttl = 1}}) \
                 nk.notifications_send({{{{user_id = '{uid}', subject = 'long', content = {{}}, \
                 code = 1, persistent = true, expires_at = os.time() + 3600}}}}) \
                 nk.notification_send('{uid}', 'forever', {{}}, 1, nil, true)"
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, listed) = s.get("/v2/notification?limit=10", &u.token).await;
    let subjects = |b: &Value| -> Vec<String> {
        b["notifications"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| n["subject"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(subjects(&listed), ["short", "long", "forever"]);
    let short =
        Uuid::parse_str(listed["notifications"][0]["id"].as_str().expect("id")).expect("uuid");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, listed) = s.get("/v2/notification?limit=10", &u.token).await;
    assert_eq!(
        subjects(&listed),
        ["long", "forever"],
        "expired: never listed"
    );
    let (_, counts) = s.get("/v2/tidings/inbox/count", &u.token).await;
    assert_eq!(counts["unread"], 2, "nor counted");
    let (_, inbox) = s.get("/v2/tidings/inbox", &u.token).await;
    assert_eq!(subjects(&inbox), ["long", "forever"]);
    until("the purge deletes the expired row", || {
        rows_in_file(&s, short) == 0
    })
    .await;

    // A script's bad expiry is an argument error, not a send.
    for (options, expect) in [
        ("{ttl = 0}", "ttl must be positive"),
        ("{ttl = 5, expires_at = os.time() + 60}", "not both"),
        ("{expires_at = os.time() - 60}", "expires_at in the future"),
        (
            "{ttl = 'soon'}",
            "expects ttl to be a whole number of seconds",
        ),
    ] {
        let (status, body) = s
            .rpc(
                "test.eval",
                &u.token,
                &format!("nk.notification_send('{uid}', 'x', {{}}, 1, nil, true, {options})"),
            )
            .await;
        assert_ne!(status, 200, "{options}");
        let message = body["message"].as_str().unwrap_or("");
        assert!(message.contains(expect), "{options}: {message}");
    }
}

#[tokio::test]
async fn the_per_user_cap_and_retention_purge_oldest_first() {
    let s = Server::start_with(&[
        ("notifications.max_per_user", "3"),
        ("notifications.purge_interval_ms", "100"),
    ])
    .await;
    let u = s.user("capped").await;
    let other = s.user("uncapped").await;
    let mut batch: Vec<NewNotification> =
        (1..=5).map(|i| note(u.id, &format!("n{i}"), 1)).collect();
    batch.push(note(other.id, "mine", 1));
    s.core.notifications.send(batch).await.expect("send");
    let mut kept = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let (_, listed) = s.get("/v2/notification?limit=10", &u.token).await;
        kept = listed["notifications"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| n["subject"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>();
        if kept.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kept, ["n3", "n4", "n5"], "the two oldest went");
    let (_, theirs) = s.get("/v2/notification?limit=10", &other.token).await;
    assert_eq!(theirs["notifications"].as_array().map(Vec::len), Some(1));

    let s = Server::start_with(&[
        ("notifications.retention_sec", "1"),
        ("notifications.purge_interval_ms", "100"),
    ])
    .await;
    let u = s.user("retained").await;
    let sent = s
        .core
        .notifications
        .send(vec![note(u.id, "old news", 1)])
        .await
        .expect("send");
    assert_eq!(rows_in_file(&s, sent[0].id), 1);
    until("retention purges the row", || {
        rows_in_file(&s, sent[0].id) == 0
    })
    .await;
}

#[tokio::test]
async fn dedupe_and_collapse_hold_under_concurrent_sends() {
    let path = crate::support::fixtures("good");
    let s = Server::start_with(&[("runtime.path", path.as_str())]).await;
    let u = s.user("keyed").await;
    let uid = u.id;
    let eval = |code: String| {
        let s = &s;
        let token = u.token.clone();
        async move { s.rpc("test.eval", &token, &code).await }
    };
    let send = |key: &str, subject: &str| {
        format!(
            "local id, dup = nk.notification_send('{uid}', '{subject}', {{}}, 1, nil, true, {{{key}}}) \
             return id .. ',' .. tostring(dup)"
        )
    };

    // The same dedupe key twice: stored and pushed once, the second answer names the first.
    let mut ws = inbox_socket(&s, &u.token).await;
    let (_, first) = eval(send("dedupe_key = 'gift-1'", "gift")).await;
    let (_, second) = eval(send("dedupe_key = 'gift-1'", "gift again")).await;
    let first = first["payload"].as_str().expect("payload").to_string();
    let second = second["payload"].as_str().expect("payload").to_string();
    let id = first.strip_suffix(",false").expect("stored").to_string();
    assert_eq!(
        second,
        format!("{id},true"),
        "the duplicate names the original"
    );
    let frame = next_json(&mut ws).await;
    assert_eq!(
        frame["notifications"]["notifications"][0]["subject"],
        "gift"
    );
    assert_eq!(inbox_frame(&mut ws).await["change"], "stored");
    assert!(
        silent(&mut ws, Duration::from_millis(200)).await,
        "the duplicate was not pushed"
    );

    // Ten concurrent sends with one key: one row.
    let sends: Vec<_> = (0..10)
        .map(|i| eval(send("dedupe_key = 'race'", &format!("race {i}"))))
        .collect();
    let answers = futures_util::future::join_all(sends).await;
    let ids: std::collections::HashSet<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            body["payload"]
                .as_str()
                .unwrap_or("")
                .split(',')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "every concurrent send answered with the same id"
    );

    // Collapse: the new one replaces the old, live and in the list.
    let (_, energy) = eval(send("collapse_key = 'energy'", "energy 50")).await;
    let old = energy["payload"]
        .as_str()
        .unwrap_or("")
        .split(',')
        .next()
        .unwrap_or("")
        .to_string();
    let collapses: Vec<_> = (0..10)
        .map(|i| {
            eval(send(
                "collapse_key = 'energy'",
                &format!("energy {}", 60 + i),
            ))
        })
        .collect();
    futures_util::future::join_all(collapses).await;
    let (_, full) = eval(send("collapse_key = 'energy'", "energy 100")).await;
    assert!(full["payload"].as_str().unwrap_or("").ends_with(",false"));
    let (_, listed) = s.get("/v2/notification?limit=100", &u.token).await;
    let subjects: Vec<&str> = listed["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["subject"].as_str())
        .collect();
    assert_eq!(
        subjects
            .iter()
            .filter(|s| s.starts_with("energy"))
            .collect::<Vec<_>>(),
        vec![&"energy 100"],
        "one energy notification is left: {subjects:?}"
    );
    assert_eq!(subjects.iter().filter(|s| s.starts_with("race")).count(), 1);
    let mut saw_replacement = false;
    for _ in 0..80 {
        let frame = next_json(&mut ws).await;
        if frame["tidings_inbox"]["change"] == "deleted"
            && frame["tidings_inbox"]["ids"] == json!([old])
        {
            saw_replacement = true;
            break;
        }
    }
    assert!(
        saw_replacement,
        "the socket heard that energy 50 was replaced"
    );

    // nk.notifications_send takes keys per item and answers per item, in order.
    let (status, body) = eval(format!(
        "local r = nk.notifications_send({{ \
           {{user_id = '{uid}', subject = 'b1', content = {{}}, code = 1, persistent = true}}, \
           {{user_id = '{uid}', subject = 'b2', content = {{}}, code = 1, persistent = true, dedupe_key = 'batch'}}, \
           {{user_id = '{uid}', subject = 'b3', content = {{}}, code = 1, persistent = true, dedupe_key = 'batch'}} }}) \
         return tostring(#r) .. ',' .. tostring(r[1].duplicate) .. ',' .. tostring(r[3].duplicate) .. ',' .. tostring(r[2].id == r[3].id)"
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payload"], "3,false,true,true");

    // Keys are for stored notifications.
    for (code, expect) in [
        (
            format!("nk.notification_send('{uid}', 'x', {{}}, 1, nil, false, {{dedupe_key = 'k'}})"),
            "apply to persistent notifications",
        ),
        (
            format!(
                "nk.notification_send('{uid}', 'x', {{}}, 1, nil, true, {{collapse_key = string.rep('k', 129)}})"
            ),
            "1 to 128 characters",
        ),
        (
            format!(
                "nk.notifications_send({{{{user_id = '{uid}', subject = 'x', content = {{}}, code = 1, dedupe_key = 7}}}})"
            ),
            "expects dedupe_key to be a string",
        ),
        (
            format!(
                "nk.notifications_send({{{{user_id = '{uid}', subject = 'x', content = {{}}, code = 1, collapse_key = {{}}}}}})"
            ),
            "expects collapse_key to be a string",
        ),
        (
            format!(
                "nk.notifications_send({{{{user_id = '{uid}', subject = 'x', content = {{}}, code = 1, persistent = true, ttl = 1.5}}}})"
            ),
            "expects ttl to be a whole number of seconds",
        ),
        (
            format!(
                "nk.notifications_send({{{{user_id = '{uid}', subject = 'x', content = {{}}, code = 1, persistent = true, ttl = 0}}}})"
            ),
            "ttl must be positive",
        ),
    ] {
        let (status, body) = eval(code.clone()).await;
        assert_ne!(status, 200, "{code}");
        let message = body["message"].as_str().unwrap_or("");
        assert!(message.contains(expect), "{code}: {message}");
    }
}

#[tokio::test]
async fn game_servers_send_with_expiry_and_keys_over_rest() {
    let s = Server::start().await;
    let u = s.user("rest_target").await;
    let send = |body: Value| {
        let s = &s;
        async move {
            s.call(
                reqwest::Method::POST,
                "/v2/tidings/notification?http_key=defaulthttpkey",
                None,
                Some(&body.to_string()),
            )
            .await
        }
    };
    let item = |subject: &str, extra: Value| {
        let mut v = json!({"user_id": u.id.to_string(), "subject": subject, "content": {"a": 1},
                           "code": 9, "persistent": true});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        v
    };
    let (status, body) = send(json!({"notifications": [
        item("plain", json!({})),
        item("once", json!({"dedupe_key": "d"})),
        item("once again", json!({"dedupe_key": "d"})),
        item("brief", json!({"ttl": 1})),
    ]}))
    .await;
    assert_eq!(status, 200, "{body}");
    let sent = body["notifications"]
        .as_array()
        .expect("notifications")
        .clone();
    assert_eq!(sent.len(), 4);
    assert_eq!(
        sent[2]["id"], sent[1]["id"],
        "the duplicate names the original"
    );
    assert_eq!(
        sent.iter()
            .map(|s| s["duplicate"].clone())
            .collect::<Vec<_>>(),
        [json!(false), json!(false), json!(true), json!(false)]
    );
    let (_, listed) = s.get("/v2/notification?limit=10", &u.token).await;
    let subjects: Vec<&str> = listed["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["subject"].as_str())
        .collect();
    assert_eq!(subjects, ["plain", "once", "brief"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, listed) = s.get("/v2/notification?limit=10", &u.token).await;
    assert_eq!(
        listed["notifications"].as_array().map(Vec::len),
        Some(2),
        "brief expired"
    );

    // Refused: no key, a bad key, bad items (400 in Nakama's shape), nothing sent.
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            "/v2/tidings/notification",
            None,
            Some("{}"),
        )
        .await;
    assert_eq!(status, 401);
    for bad in [
        json!({"notifications": []}),
        json!({"notifications": [item("x", json!({"ttl": 0}))]}),
        json!({"notifications": [item("x", json!({"user_id": "nope"}))]}),
        json!({"notifications": [item("x", json!({"content": [1]}))]}),
        json!({"notifications": [item("x", json!({"code": 0}))]}),
        json!({"notifications": [item("x", json!({"surprise": 1}))]}),
        json!({"notifications": [item("x", json!({"persistent": false, "dedupe_key": "k"}))]}),
    ] {
        let (status, err) = send(bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {err}");
        assert_eq!(err["code"], 3, "{err}");
    }
}

/// A device's copy of its inbox, built only from sync pages: id -> (subject, read).
#[derive(Default)]
struct Replica {
    items: std::collections::BTreeMap<String, (String, bool)>,
    seq: Option<String>,
    pages: usize,
}

impl Replica {
    /// Applies one page; each page must start where the previous one ended (no gap, no
    /// overlap), and its changes must come in ascending sequence.
    fn apply(&mut self, page: &Value) {
        assert_eq!(page["resync"], json!(false), "unexpected resync: {page}");
        if let Some(seq) = &self.seq {
            assert_eq!(&page["since"], seq, "a page starts where the last ended");
        }
        let mut last = page["since"].as_str().and_then(|s| s.parse::<i64>().ok());
        for change in page["changes"].as_array().expect("changes") {
            let seq: i64 = change["seq"]
                .as_str()
                .expect("seq")
                .parse()
                .expect("number");
            assert!(last.is_none_or(|l| seq > l), "ascending sequences: {page}");
            last = Some(seq);
            if let Some(id) = change["deleted"].as_str() {
                self.items.remove(id);
            } else {
                let n = &change["notification"];
                let id = n["id"].as_str().expect("id").to_string();
                let entry = (
                    n["subject"].as_str().unwrap_or("").to_string(),
                    n["read"].as_bool().expect("read"),
                );
                self.items.insert(id, entry);
            }
        }
        self.seq = Some(page["seq"].as_str().expect("page seq").to_string());
        self.pages += 1;
    }

    /// What the server lists now, in the replica's form.
    async fn of_server(
        s: &Server,
        token: &str,
    ) -> std::collections::BTreeMap<String, (String, bool)> {
        let (status, listed) = s.get("/v2/tidings/inbox?limit=1000", token).await;
        assert_eq!(status, 200, "{listed}");
        listed["notifications"]
            .as_array()
            .expect("list")
            .iter()
            .map(|n| {
                let id = n["id"].as_str().expect("id").to_string();
                let subject = n["subject"].as_str().unwrap_or("").to_string();
                (id, (subject, n["read"].as_bool().expect("read")))
            })
            .collect()
    }
}

/// Reads frames, applying `tidings_sync` pages, until the replica equals the server's list.
async fn sync_until_equal(ws: &mut Ws, replica: &mut Replica, s: &Server, token: &str) {
    let want = Replica::of_server(s, token).await;
    for _ in 0..50 {
        if replica.items == want {
            return;
        }
        let frame = next_json(ws).await;
        if let Some(page) = frame.get("tidings_sync") {
            replica.apply(page);
        }
    }
    panic!("replica never matched: {:?} vs {want:?}", replica.items);
}

#[tokio::test]
async fn devices_stay_in_sync_without_gaps() {
    let s = Server::start().await;
    let u = s.user("syncer").await;
    let send = |subject: &str| note(u.id, subject, 1);
    s.core
        .notifications
        .send(vec![send("before")])
        .await
        .expect("send");

    // Device B follows from the beginning: the catch-up page holds what exists already.
    let mut b = s
        .socket_query(&format!("token={}&tidings_since=0", u.token))
        .await
        .expect("socket");
    let mut replica = Replica::default();
    sync_until_equal(&mut b, &mut replica, &s, &u.token).await;
    assert_eq!(replica.items.len(), 1);

    // Live: sends, and a read on another device.
    let sent = s
        .core
        .notifications
        .send(vec![send("one"), send("two"), send("three")])
        .await
        .expect("send");
    sync_until_equal(&mut b, &mut replica, &s, &u.token).await;
    let (status, _) = post(
        &s,
        "/v2/tidings/inbox/read",
        &u.token,
        json!({"ids": [sent[0].id.to_string()]}),
    )
    .await;
    assert_eq!(status, 200);
    sync_until_equal(&mut b, &mut replica, &s, &u.token).await;
    assert!(replica.items[&sent[0].id.to_string()].1, "read on device A");
    let live_pages = replica.pages;
    drop(b);

    // Offline: inserts, an update, a delete and "mark all read" happen.
    s.core
        .notifications
        .send(vec![send("four"), send("five")])
        .await
        .expect("send");
    s.core
        .notifications
        .update(vec![NotificationUpdate {
            id: sent[1].id,
            subject: Some("two, edited".into()),
            content: None,
            sender_id: None,
        }])
        .await
        .expect("update");
    let (status, _) = s
        .delete(&format!("/v2/notification?ids={}", sent[2].id), &u.token)
        .await;
    assert_eq!(status, 200);
    let (status, _) = post(&s, "/v2/tidings/inbox/read", &u.token, json!({"all": true})).await;
    assert_eq!(status, 200);

    // Reconnecting from its last sequence, B receives exactly what it missed.
    let since = replica.seq.clone().expect("a sequence");
    let mut b = s
        .socket_query(&format!("token={}&tidings_since={since}", u.token))
        .await
        .expect("socket");
    let frame = next_json(&mut b).await;
    let page = frame.get("tidings_sync").expect("the catch-up comes first");
    let changes = page["changes"].as_array().expect("changes");
    let deleted: Vec<&str> = changes
        .iter()
        .filter_map(|c| c["deleted"].as_str())
        .collect();
    assert_eq!(deleted, [sent[2].id.to_string().as_str()]);
    // Each changed row once, in its state now: two new, the edited one, and every row
    // "mark all" changed (before, two, and the new ones; one was read already).
    let upserts: Vec<&Value> = changes
        .iter()
        .filter_map(|c| c.get("notification"))
        .collect();
    let subjects: std::collections::BTreeSet<&str> = upserts
        .iter()
        .map(|n| n["subject"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        subjects,
        ["before", "five", "four", "two, edited"]
            .into_iter()
            .collect(),
        "{page}"
    );
    assert_eq!(upserts.len(), 4, "each row once: {page}");
    assert!(upserts.iter().all(|n| n["read"] == json!(true)));
    replica.apply(page);
    assert_eq!(replica.items, Replica::of_server(&s, &u.token).await);
    assert!(live_pages >= 3);
    assert!(
        silent(&mut b, Duration::from_millis(200)).await,
        "nothing twice"
    );

    // REST: paging from the start in pages of 2 rebuilds the same inbox.
    let mut rest = Replica::default();
    let mut since = "0".to_string();
    for _ in 0..20 {
        let (status, page) = s
            .get(
                &format!("/v2/tidings/inbox/changes?since={since}&limit=2"),
                &u.token,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        assert!(page["changes"].as_array().expect("changes").len() <= 2);
        rest.apply(&page);
        since = page["seq"].as_str().expect("seq").to_string();
        if page["more"] == json!(false) {
            break;
        }
    }
    assert_eq!(rest.items, Replica::of_server(&s, &u.token).await);
    assert!(rest.pages > 3, "paged in small steps");

    // Bad sequences and limits.
    for query in [
        "since=-1",
        "since=abc",
        "since=1&limit=0",
        "since=1&limit=1001",
    ] {
        let (status, body) = s
            .get(&format!("/v2/tidings/inbox/changes?{query}"), &u.token)
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["code"], json!(3), "{query}: {body}");
    }
    let refused = s
        .socket_query(&format!("token={}&tidings_since=soon", u.token))
        .await;
    assert!(matches!(refused, Err((400, _))), "{:?}", refused.err());
}

#[tokio::test]
async fn a_retention_purge_asks_behind_devices_to_resync() {
    let s = Server::start_with(&[
        ("notifications.max_per_user", "2"),
        ("notifications.purge_interval_ms", "100"),
    ])
    .await;
    let u = s.user("resyncer").await;
    let (_, first) = s.get("/v2/tidings/inbox/changes?since=0", &u.token).await;
    assert_eq!(first["resync"], json!(false), "{first}");
    let since = first["seq"].as_str().expect("seq").to_string();
    let sent = s
        .core
        .notifications
        .send((1..=4).map(|i| note(u.id, &format!("n{i}"), 1)).collect())
        .await
        .expect("send");
    until("the cap purges the two oldest", || {
        rows_in_file(&s, sent[0].id) == 0 && rows_in_file(&s, sent[1].id) == 0
    })
    .await;
    let (status, page) = s
        .get(
            &format!("/v2/tidings/inbox/changes?since={since}"),
            &u.token,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["resync"], json!(true), "{page}");
    assert_eq!(page["changes"], json!([]));
    let resume = page["seq"].as_str().expect("seq").to_string();
    assert!(resume.parse::<i64>().expect("n") > since.parse::<i64>().expect("n"));

    // The same on a socket; from the resync's sequence the device is current again.
    let mut ws = s
        .socket_query(&format!("token={}&tidings_since={since}", u.token))
        .await
        .expect("socket");
    let frame = next_json(&mut ws).await;
    assert_eq!(frame["tidings_sync"]["resync"], json!(true), "{frame}");
    let (_, after) = s
        .get(
            &format!("/v2/tidings/inbox/changes?since={resume}"),
            &u.token,
        )
        .await;
    assert_eq!(after["resync"], json!(false), "{after}");
    assert_eq!(after["changes"], json!([]));
}

/// The subjects a user lists through Nakama's route, paging one at a time with the cursor.
async fn listed_one_by_one(s: &Server, token: &str) -> Vec<String> {
    let mut subjects = Vec::new();
    let mut cursor = String::new();
    for _ in 0..20 {
        let (status, page) = s
            .get(
                &format!("/v2/notification?limit=1&cacheable_cursor={cursor}"),
                token,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let items = page["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        subjects.extend(
            items
                .iter()
                .map(|n| n["subject"].as_str().unwrap_or("").to_string()),
        );
        match page["cacheable_cursor"].as_str() {
            Some(next) if !items.is_empty() => cursor = next.to_string(),
            _ => break,
        }
    }
    subjects
}

#[tokio::test]
async fn a_persistent_broadcast_is_one_row_with_state_per_player() {
    let s = Server::start().await;
    let (ann, bo, cy) = (s.user("ann").await, s.user("bo").await, s.user("cy").await);
    s.core
        .notifications
        .send(vec![note(cy.id, "own before", 2)])
        .await
        .expect("send");
    let (_, before) = s.get("/v2/tidings/inbox/changes?since=0", &bo.token).await;
    let bo_since = before["seq"].as_str().expect("seq").to_string();
    let stored = s
        .core
        .notifications
        .send_all("Season 2 is live".into(), "{}".into(), 9, true)
        .await
        .expect("send_all");
    assert_eq!(stored, 1);
    s.core
        .notifications
        .send(vec![note(cy.id, "own after", 2)])
        .await
        .expect("send");

    // One row in the file, none per player.
    let db = rusqlite::Connection::open(s.dir.path().join("tidings.db")).expect("open db");
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).expect("count") };
    assert_eq!(count("SELECT count(*) FROM notification_broadcast"), 1);
    assert_eq!(
        count("SELECT count(*) FROM notification WHERE code = 9"),
        0,
        "no row per player"
    );

    // Nakama's list shows it in its place, paging through it with the cursor; as in Nakama,
    // each player's copy has an id of its own.
    assert_eq!(
        listed_one_by_one(&s, &cy.token).await,
        ["own before", "Season 2 is live", "own after"]
    );
    let copy_id = |token: String| {
        let s = &s;
        async move {
            let (_, listed) = s.get("/v2/notification?limit=10", &token).await;
            let n = listed["notifications"]
                .as_array()
                .and_then(|l| l.iter().find(|n| n["code"] == json!(9)).cloned())
                .expect("the broadcast is listed");
            assert_eq!(n["persistent"], json!(true));
            n["id"].as_str().expect("id").to_string()
        }
    };
    let (ann_id, bo_id, cy_id) = (
        copy_id(ann.token.clone()).await,
        copy_id(bo.token.clone()).await,
        copy_id(cy.token.clone()).await,
    );
    assert!(ann_id != bo_id && bo_id != cy_id && ann_id != cy_id);

    // Ann reads it, Bo deletes it: each only for themselves. Another player's copy id does
    // nothing.
    let (status, body) = post(
        &s,
        "/v2/tidings/inbox/read",
        &ann.token,
        json!({"ids": [bo_id]}),
    )
    .await;
    assert_eq!((status, body["changed"].clone()), (200, json!(0)), "{body}");
    let (status, body) = post(
        &s,
        "/v2/tidings/inbox/read",
        &ann.token,
        json!({"ids": [ann_id]}),
    )
    .await;
    assert_eq!((status, body["changed"].clone()), (200, json!(1)), "{body}");
    let (status, _) = s
        .delete(&format!("/v2/notification?ids={ann_id}"), &bo.token)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        copy_id(ann.token.clone()).await,
        ann_id,
        "Bo cannot delete Ann's copy"
    );
    let (status, _) = s
        .delete(&format!("/v2/notification?ids={bo_id}"), &bo.token)
        .await;
    assert_eq!(status, 200);
    let unread = |token: String| {
        let s = &s;
        async move { s.get("/v2/tidings/inbox/count", &token).await.1["unread"].clone() }
    };
    assert_eq!(unread(ann.token.clone()).await, json!(0));
    assert_eq!(unread(bo.token.clone()).await, json!(0));
    assert_eq!(unread(cy.token.clone()).await, json!(3));
    let (_, ann_inbox) = s.get("/v2/tidings/inbox", &ann.token).await;
    assert_eq!(ann_inbox["notifications"][0]["read"], json!(true));
    let (_, bo_list) = s.get("/v2/notification", &bo.token).await;
    assert_eq!(
        bo_list["notifications"],
        json!(null),
        "hidden for Bo: {bo_list}"
    );
    let (_, cy_inbox) = s
        .get("/v2/tidings/inbox?read=false&code=9", &cy.token)
        .await;
    assert_eq!(cy_inbox["notifications"][0]["id"], json!(cy_id));

    // Sync: Bo's devices hear of the delete, Cy's of the broadcast.
    let (_, bo_changes) = s
        .get(
            &format!("/v2/tidings/inbox/changes?since={bo_since}"),
            &bo.token,
        )
        .await;
    let bo_entries = bo_changes["changes"].as_array().expect("changes");
    assert_eq!(bo_entries.len(), 1, "{bo_changes}");
    assert_eq!(bo_entries[0]["deleted"], json!(bo_id));
    let (_, cy_changes) = s.get("/v2/tidings/inbox/changes?since=0", &cy.token).await;
    let cy_ids: Vec<&str> = cy_changes["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["notification"]["id"].as_str())
        .collect();
    assert_eq!(cy_ids.len(), 3);
    assert_eq!(cy_ids[1], cy_id, "in sequence order");

    // A script's update or delete through a copy (no user given) changes that player's copy
    // only, as in Nakama, where each player has a row.
    let ann_uuid = Uuid::parse_str(&ann_id).expect("uuid");
    s.core
        .notifications
        .update(vec![NotificationUpdate {
            id: ann_uuid,
            subject: Some("Season 2 is live!".into()),
            content: None,
            sender_id: None,
        }])
        .await
        .expect("update");
    let (_, cy_list) = s.get("/v2/notification?limit=10", &cy.token).await;
    assert_eq!(
        cy_list["notifications"][1]["subject"],
        json!("Season 2 is live")
    );
    let (_, ann_list) = s.get("/v2/notification?limit=10", &ann.token).await;
    assert_eq!(
        ann_list["notifications"][0]["subject"],
        json!("Season 2 is live!"),
        "{ann_list}"
    );
    assert_eq!(ann_list["notifications"][0]["id"], json!(ann_id));
    let got = s
        .core
        .notifications
        .get(vec![ann_uuid], None)
        .await
        .expect("get");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].user_id, ann.id, "a copy id names its player");
    assert_eq!(
        s.core
            .notifications
            .delete(vec![ann_uuid], None)
            .await
            .expect("delete"),
        1
    );
    let (_, ann_list) = s.get("/v2/notification", &ann.token).await;
    assert_eq!(ann_list["notifications"], json!(null), "{ann_list}");
    assert_eq!(copy_id(cy.token.clone()).await, cy_id, "Cy keeps hers");

    // Players who join later do not receive earlier broadcasts (as Nakama, which stores one
    // row per existing user). Account times are in seconds.
    s.core
        .notifications
        .send_all("Welcome week".into(), "{}".into(), 9, true)
        .await
        .expect("send_all");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let late = s.user("late").await;
    let (_, late_list) = s.get("/v2/notification", &late.token).await;
    assert_eq!(late_list["notifications"], json!(null), "{late_list}");
    let (_, cy_list) = s.get("/v2/notification?limit=10", &cy.token).await;
    assert_eq!(cy_list["notifications"].as_array().map(Vec::len), Some(4));
}
