//! Several nodes on one PostgreSQL database (each a real server in this process, with its
//! own listener and bus connection): a notification committed on one node reaches the user's
//! sockets on the others exactly once; pushed-only notifications and send_all reach every
//! node; logout, ban and single_socket hold across nodes.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use crate::support::{closed, fresh_pg_schema, next_json, plain_notification, silent, Server, Ws};

async fn nodes(n: usize, extra: &[(&str, &str)]) -> Vec<Server> {
    nodes_on(&fresh_pg_schema().await.1, n, extra).await
}

async fn nodes_on(url: &str, n: usize, extra: &[(&str, &str)]) -> Vec<Server> {
    let mut servers = Vec::new();
    for i in 0..n {
        let name = format!("node{i}");
        let mut settings = vec![("database.url", url), ("name", name.as_str())];
        settings.extend_from_slice(extra);
        servers.push(Server::start_with(&settings).await);
    }
    servers
}

/// The subjects of the next `n` notifications pushed to `ws`.
async fn subjects(ws: &mut Ws, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        let frame = next_json(ws).await;
        for item in frame["notifications"]["notifications"]
            .as_array()
            .into_iter()
            .flatten()
        {
            out.push(item["subject"].as_str().unwrap_or_default().to_string());
        }
    }
    out
}

#[tokio::test]
async fn notifications_cross_nodes_exactly_once() {
    let nodes = nodes(3, &[]).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let user = b.user("roamer").await;
    let mut on_b = b.socket(&user.token).await;
    let mut on_c = c.socket(&user.token).await;

    // 50 persistent sends committed on A, one at a time and in batches.
    for i in 0..30 {
        a.core
            .notifications
            .send(vec![plain_notification(user.id, &format!("p{i}"), true)])
            .await
            .expect("send");
    }
    let batch: Vec<_> = (30..50)
        .map(|i| plain_notification(user.id, &format!("p{i}"), true))
        .collect();
    a.core.notifications.send(batch).await.expect("send batch");
    let expected: Vec<String> = (0..50).map(|i| format!("p{i}")).collect();
    for ws in [&mut on_b, &mut on_c] {
        let got = subjects(ws, 50).await;
        assert_eq!(got, expected, "every row once, in commit order");
        assert!(
            crate::support::silent(ws, Duration::from_millis(300)).await,
            "no duplicates"
        );
    }
    // Stored once: listed on any node.
    let (_, page) = c.get("/v2/notification?limit=100", &user.token).await;
    assert_eq!(page["notifications"].as_array().map(Vec::len), Some(50));

    // Pushed-only and send_all reach the other nodes' sockets too.
    a.core
        .notifications
        .send(vec![plain_notification(user.id, "live", false)])
        .await
        .expect("send live");
    assert_eq!(subjects(&mut on_b, 1).await, ["live"]);
    assert_eq!(subjects(&mut on_c, 1).await, ["live"]);
    a.core
        .notifications
        .send_all("everyone".into(), "{}".into(), 2, false)
        .await
        .expect("send_all");
    assert_eq!(subjects(&mut on_b, 1).await, ["everyone"]);
    assert_eq!(subjects(&mut on_c, 1).await, ["everyone"]);
    // A persistent broadcast is stored once and reaches every node's sockets once.
    a.core
        .notifications
        .send_all("stored for all".into(), "{}".into(), 2, true)
        .await
        .expect("persistent send_all");
    assert_eq!(subjects(&mut on_b, 1).await, ["stored for all"]);
    assert_eq!(subjects(&mut on_c, 1).await, ["stored for all"]);
    assert!(silent(&mut on_b, Duration::from_millis(300)).await, "once");
    let (_, page) = c.get("/v2/notification?limit=100", &user.token).await;
    assert_eq!(page["notifications"].as_array().map(Vec::len), Some(51));
}

#[tokio::test]
async fn logout_ban_and_single_socket_hold_across_nodes() {
    let nodes = nodes(2, &[("session.single_socket", "true")]).await;
    let (a, b) = (&nodes[0], &nodes[1]);

    // Logout everywhere on A: the token stops working on B.
    let user = a.user("leaver").await;
    assert_eq!(b.get("/v2/account", &user.token).await.0, 200);
    let (status, _) = a
        .call(
            reqwest::Method::POST,
            "/v2/session/logout",
            Some(&user.token),
            Some("{}"),
        )
        .await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.get("/v2/account", &user.token).await.0 != 401 {
        assert!(Instant::now() < deadline, "logout on A never reached B");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // single_socket: a second socket on B ends the first one on A with -7.
    let solo = a.user("solo").await;
    let mut first = a.socket(&solo.token).await;
    let mut second = b.socket(&solo.token).await;
    let frame: Value = next_json(&mut first).await;
    assert_eq!(frame["notifications"]["notifications"][0]["code"], -7);
    assert_eq!(closed(&mut first).await.0, 1000);
    crate::support::send_text(&mut second, r#"{"cid":"1","ping":{}}"#).await;
    assert_eq!(next_json(&mut second).await["cid"], "1");

    // A ban on A ends the user's socket on B with -8 and its token on B.
    let (status, _) = a
        .call(
            reqwest::Method::POST,
            &format!(
                "/v2/console/account/{}/ban?http_key=defaulthttpkey",
                solo.id
            ),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let frame = next_json(&mut second).await;
    assert_eq!(frame["notifications"]["notifications"][0]["code"], -8);
    assert_eq!(closed(&mut second).await.0, 1000);
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.get("/v2/account", &solo.token).await.0 != 401 {
        assert!(
            Instant::now() < deadline,
            "the ban on A never reached B's sessions"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_node_that_was_not_listening_catches_up_without_duplicates() {
    let (_, url) = fresh_pg_schema().await;
    let nodes = nodes_on(&url, 2, &[]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let user = b.user("patient").await;
    let mut on_b = b.socket(&user.token).await;
    // Rows committed by a node whose wake-ups B never hears (a store without a bus), then
    // one wake-up from A: B reads everything since the last row it pushed, once.
    let quiet = tidings::store::PgStore::connect(&url, None, "quiet-node")
        .await
        .expect("store");
    for i in 0..5 {
        let row = tidings::core::notifications::Notification {
            id: Uuid::now_v7(),
            user_id: user.id,
            subject: format!("quiet{i}"),
            content: "{}".into(),
            code: 1,
            sender_id: Some(Uuid::nil()),
            create_time: 0,
            persistent: true,
            expire_time: None,
        };
        tidings::core::store::Store::insert_notifications(&quiet, vec![row])
            .await
            .expect("insert");
    }
    assert!(crate::support::silent(&mut on_b, Duration::from_millis(200)).await);
    a.core
        .notifications
        .send(vec![plain_notification(user.id, "loud", true)])
        .await
        .expect("send");
    let got: HashSet<String> = subjects(&mut on_b, 6).await.into_iter().collect();
    assert_eq!(got.len(), 6, "{got:?}");
    assert!(got.contains("loud") && got.contains("quiet0"));
    assert!(crate::support::silent(&mut on_b, Duration::from_millis(300)).await);
}

/// A node whose PostgreSQL connection drops reconnects, catches up what was committed
/// meanwhile, and pushes nothing twice.
#[tokio::test]
async fn a_node_that_loses_its_connection_catches_up_without_duplicates() {
    let (schema, url) = fresh_pg_schema().await;
    let nodes = nodes_on(&url, 2, &[]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let user = b.user("unlucky").await;
    let mut on_b = b.socket(&user.token).await;
    a.core
        .notifications
        .send(vec![plain_notification(user.id, "before", true)])
        .await
        .expect("send");
    assert_eq!(subjects(&mut on_b, 1).await, ["before"]);

    // Cut every listening connection of this cluster (both nodes'), then send while they
    // reconnect.
    let (client, conn) = tokio_postgres::connect(&crate::support::pg_url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    let driver = tokio::spawn(conn);
    let cut = client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1",
            &[&format!("LISTEN tidings_{schema}")],
        )
        .await
        .expect("terminate");
    assert_eq!(cut.len(), 2, "both nodes were listening");
    for i in 0..5 {
        a.core
            .notifications
            .send(vec![plain_notification(
                user.id,
                &format!("during{i}"),
                true,
            )])
            .await
            .expect("send");
    }
    let got = subjects(&mut on_b, 5).await;
    assert_eq!(
        got,
        (0..5).map(|i| format!("during{i}")).collect::<Vec<_>>()
    );
    a.core
        .notifications
        .send(vec![plain_notification(user.id, "after", true)])
        .await
        .expect("send");
    assert_eq!(subjects(&mut on_b, 1).await, ["after"]);
    assert!(
        crate::support::silent(&mut on_b, Duration::from_millis(300)).await,
        "no duplicates"
    );
    drop(client);
    let _ = driver.await;
}

/// Chat messages and presence changes reach a channel's members on other nodes.
#[tokio::test]
async fn chat_crosses_nodes() {
    let nodes = nodes(2, &[]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let x = a.user("chatter_x").await;
    let y = b.user("chatter_y").await;
    let mut on_a = a.socket(&x.token).await;
    let mut on_b = b.socket(&y.token).await;
    let join = r#"{"cid":"j","channel_join":{"target":"tavern","type":1}}"#;
    crate::support::send_text(&mut on_a, join).await;
    crate::support::send_text(&mut on_b, join).await;
    // X (on A) hears Y's join made on B.
    let mut heard_join = false;
    for _ in 0..6 {
        let frame = next_json(&mut on_a).await;
        if frame["channel_presence_event"]["joins"][0]["user_id"] == y.id.to_string() {
            heard_join = true;
            break;
        }
    }
    assert!(heard_join, "the join on B reached A");
    crate::support::send_text(
        &mut on_b,
        r#"{"cid":"m","channel_message_send":{"channel_id":"2...tavern","content":"{\"hi\":1}"}}"#,
    )
    .await;
    let mut got = None;
    for _ in 0..6 {
        let frame = next_json(&mut on_a).await;
        if frame.get("channel_message").is_some() {
            got = Some(frame);
            break;
        }
    }
    let got = got.expect("the message sent on B reached A");
    assert_eq!(got["channel_message"]["sender_id"], y.id.to_string());
    assert_eq!(got["channel_message"]["content"], "{\"hi\":1}");
    assert!(
        crate::support::silent(&mut on_a, Duration::from_millis(200)).await,
        "once"
    );
}

/// Polls `check` for up to five seconds; true once it held.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Whether `who` is online in `viewer`'s friend list as served by `node`.
async fn friend_online(node: &Server, viewer: &str, who: Uuid) -> bool {
    let (status, body) = node.get("/v2/friend", viewer).await;
    assert_eq!(status, 200, "{body}");
    body["friends"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["user"]["id"] == who.to_string())
        .map(|f| f["user"]["online"] == true)
        .expect("the friend is listed")
}

const FAST_LIVENESS: &[(&str, &str)] = &[
    ("database.node_heartbeat_ms", "100"),
    ("database.node_timeout_ms", "1000"),
];

#[tokio::test]
async fn online_status_is_the_same_on_every_node() {
    let (_, url) = fresh_pg_schema().await;
    let mut nodes = nodes_on(&url, 2, FAST_LIVENESS).await;
    let b = nodes.pop().expect("b");
    let a = nodes.pop().expect("a");
    let x = a.user("online_x").await;
    let y = a.user("online_y").await;
    for (me, other) in [(&x, &y), (&y, &x)] {
        let (status, body) = a
            .call(
                reqwest::Method::POST,
                &format!("/v2/friend?ids={}", other.id),
                Some(&me.token),
                Some("{}"),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(!friend_online(&a, &y.token, x.id).await);

    // X's only socket is on B; Y asks A.
    let ws = b.socket(&x.token).await;
    assert!(
        eventually(|| friend_online(&a, &y.token, x.id)).await,
        "A sees X online on B"
    );
    // Group member lists and nk.users_get_id say the same (one directory behind them all).
    let (status, group) = a
        .call(
            reqwest::Method::POST,
            "/v2/group",
            Some(&x.token),
            Some(r#"{"name":"online-check","open":true}"#),
        )
        .await;
    assert_eq!(status, 200, "{group}");
    let gid = group["id"].as_str().expect("group id").to_string();
    let (_, members) = a.get(&format!("/v2/group/{gid}/user"), &y.token).await;
    assert_eq!(
        members["group_users"][0]["user"]["online"], true,
        "{members}"
    );

    // The cluster lists both nodes and where the socket is.
    let key = "?http_key=defaulthttpkey";
    let (status, listed) = a
        .call(
            reqwest::Method::GET,
            &format!("/v2/console/cluster{key}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    let names: Vec<(&str, i64)> = listed["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap_or(""),
                n["sessions"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(names, vec![("node0", 0), ("node1", 1)]);

    // Closing the socket makes X offline everywhere.
    drop(ws);
    assert!(
        eventually(|| async { !friend_online(&a, &y.token, x.id).await }).await,
        "A sees X go offline"
    );

    // A node stopped cleanly takes its sockets with it at once.
    let _ws = b.socket(&x.token).await;
    assert!(eventually(|| friend_online(&a, &y.token, x.id)).await);
    let b_core = b.core.clone();
    b.stop().await;
    b_core.close().await;
    assert!(
        !friend_online(&a, &y.token, x.id).await,
        "B left the cluster"
    );
}

#[tokio::test]
async fn a_silent_node_drops_out_and_a_reaped_node_comes_back() {
    let (schema, url) = fresh_pg_schema().await;
    let nodes = nodes_on(&url, 2, FAST_LIVENESS).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let x = a.user("reaped_x").await;
    let y = a.user("reaped_y").await;
    for (me, other) in [(&x, &y), (&y, &x)] {
        a.call(
            reqwest::Method::POST,
            &format!("/v2/friend?ids={}", other.id),
            Some(&me.token),
            Some("{}"),
        )
        .await;
    }
    let (client, conn) = tokio_postgres::connect(&crate::support::pg_url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);

    // A node that crashed: its row stops heartbeating, its presences are still there.
    client
        .batch_execute(&format!(
            "INSERT INTO {schema}.cluster_node (node, name, heartbeat_at) \
             VALUES ('crashed-1', 'crashed', now()); \
             INSERT INTO {schema}.cluster_presence (stream, session_id, node, user_id, username) \
             VALUES ('', '{}', 'crashed-1', '{}', 'reaped_x')",
            Uuid::new_v4(),
            x.id
        ))
        .await
        .expect("a crashed node's rows");
    assert!(
        friend_online(a, &y.token, x.id).await,
        "while it heartbeated"
    );
    client
        .batch_execute(&format!(
            "UPDATE {schema}.cluster_node SET heartbeat_at = now() - interval '1 hour' \
             WHERE node = 'crashed-1'"
        ))
        .await
        .expect("silence");
    assert!(
        !friend_online(a, &y.token, x.id).await,
        "silent: not online"
    );
    let reaped = eventually(|| async {
        client
            .query_one(
                &format!("SELECT count(*) FROM {schema}.cluster_presence WHERE node = 'crashed-1'"),
                &[],
            )
            .await
            .map(|r| r.get::<_, i64>(0) == 0)
            .unwrap_or(false)
    })
    .await;
    assert!(reaped, "a live node deleted the silent node's presences");

    // B was reaped while alive (a long pause): it writes its presences again.
    let _ws = b.socket(&x.token).await;
    assert!(eventually(|| friend_online(a, &y.token, x.id)).await);
    client
        .batch_execute(&format!(
            "DELETE FROM {schema}.cluster_node WHERE name = 'node1'"
        ))
        .await
        .expect("reap B");
    assert!(!friend_online(a, &y.token, x.id).await, "reaped");
    assert!(
        eventually(|| friend_online(a, &y.token, x.id)).await,
        "B rewrote its presences on its next heartbeat"
    );
}

/// Joins the direct channel with `other` and returns the reply (presence events before it
/// are skipped).
async fn join_direct(ws: &mut Ws, other: Uuid) -> Value {
    let join = format!(r#"{{"cid":"j","channel_join":{{"target":"{other}","type":2}}}}"#);
    crate::support::send_text(ws, &join).await;
    loop {
        let frame = next_json(ws).await;
        if frame.get("cid").is_some() {
            return frame;
        }
    }
}

#[tokio::test]
async fn direct_chat_sees_the_other_user_on_another_node() {
    let nodes = nodes(2, &[]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let x = a.user("dm_x").await;
    let y = a.user("dm_y").await;
    // X joins the direct channel on B while Y is nowhere: Y gets -1.
    let mut on_b = b.socket(&x.token).await;
    let joined = join_direct(&mut on_b, y.id).await;
    assert!(joined.get("channel").is_some(), "{joined}");

    // Y joins on A: the reply lists X (on B), and X gets no -1.
    let mut on_a = a.socket(&y.token).await;
    let reply = join_direct(&mut on_a, x.id).await;
    let presences = reply["channel"]["presences"].as_array().expect("presences");
    assert!(
        presences.iter().any(|p| p["user_id"] == x.id.to_string()),
        "{reply}"
    );
    let codes = |list: Value| -> Vec<i64> {
        list["notifications"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["code"].as_i64())
            .collect()
    };
    let (_, y_list) = a.get("/v2/notification?limit=100", &y.token).await;
    assert_eq!(codes(y_list), vec![-1], "Y was asked to chat");
    let (_, x_list) = a.get("/v2/notification?limit=100", &x.token).await;
    assert_eq!(codes(x_list), Vec::<i64>::new(), "X was already there");
}

#[tokio::test]
async fn inbox_frames_follow_the_user_across_nodes() {
    let nodes = nodes(2, &[]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let u = a.user("inbox_x").await;
    let mut on_b = b
        .socket_query(&format!("token={}&tidings_inbox=true", u.token))
        .await
        .expect("socket");
    let sent = a
        .core
        .notifications
        .send(vec![plain_notification(u.id, "cross", true)])
        .await
        .expect("send");
    let id = sent[0].id.to_string();
    async fn next_inbox(ws: &mut Ws) -> Value {
        loop {
            let frame = next_json(ws).await;
            if let Some(e) = frame.get("tidings_inbox") {
                return e.clone();
            }
        }
    }
    let stored = next_inbox(&mut on_b).await;
    assert_eq!(stored["change"], "stored", "B announced what it pushed");
    assert_eq!(stored["unread"], 1);
    let (status, _) = a
        .call(
            reqwest::Method::POST,
            "/v2/tidings/inbox/read",
            Some(&u.token),
            Some(&serde_json::json!({ "ids": [id] }).to_string()),
        )
        .await;
    assert_eq!(status, 200);
    let read = next_inbox(&mut on_b).await;
    assert_eq!(read["change"], "read", "the read on A reached B");
    assert_eq!(read["unread"], 0);
}
