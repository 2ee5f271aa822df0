//! The whole server on PostgreSQL (`database.url: postgres://…`): the same REST, socket and
//! Lua behaviour as on SQLite, checked through a few end-to-end flows on a fresh schema.

use serde_json::json;

use crate::support::{fixtures, fresh_pg_schema, next_json, Server};

#[tokio::test]
async fn the_server_runs_on_postgresql() {
    let (_, url) = fresh_pg_schema().await;
    let s = Server::start_with(&[("database.url", url.as_str())]).await;
    let a = s.user("pg_alice").await;
    let b = s.user("pg_bob").await;
    let mut wb = s.socket(&b.token).await;

    // Friends: an invite is stored and pushed through the PostgreSQL store.
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            &format!("/v2/friend?ids={}", b.id),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let frame = next_json(&mut wb).await;
    assert_eq!(frame["notifications"]["notifications"][0]["code"], -2);

    // Notifications: strictly ordered, paged with Nakama's cursor, deleted.
    let batch: Vec<_> = (0..5)
        .map(|i| tidings::core::notifications::NewNotification {
            user_id: b.id,
            subject: format!("n{i}"),
            content: json!({ "i": i }).to_string(),
            code: 1,
            sender_id: None,
            persistent: true,
            expire_time: None,
            keys: Default::default(),
        })
        .collect();
    s.core.notifications.send(batch).await.expect("send");
    // The store's metrics: its pool and the group-commit writer that took the batch.
    let scrape = s.core.metrics.render();
    for line in [
        "tidings_postgres_pool_connections{state=\"max\"} 16",
        "tidings_postgres_pool_connections{state=\"waiting\"} 0",
        "tidings_store_writer_queue 0",
    ] {
        assert!(scrape.lines().any(|l| l == line), "{line} in {scrape}");
    }
    assert!(scrape.contains("tidings_store_writer_batch_jobs_count"));
    let (_, page) = s.get("/v2/notification?limit=3", &b.token).await;
    let subjects: Vec<&str> = page["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["pg_alice wants to add you as a friend", "n0", "n1"]
    );
    let cursor = page["cacheable_cursor"].as_str().unwrap();
    let (_, rest) = s
        .get(
            &format!("/v2/notification?limit=10&cacheable_cursor={cursor}"),
            &b.token,
        )
        .await;
    assert_eq!(rest["notifications"].as_array().unwrap().len(), 3);
    let id = rest["notifications"][0]["id"].as_str().unwrap();
    assert_eq!(
        s.delete(&format!("/v2/notification?ids={id}"), &b.token)
            .await
            .0,
        200
    );
    let (_, all) = s.get("/v2/notification?limit=100", &b.token).await;
    assert_eq!(all["notifications"].as_array().unwrap().len(), 5);

    // Groups and accounts on the same store.
    let (status, g) = s
        .call(
            reqwest::Method::POST,
            "/v2/group",
            Some(&a.token),
            Some(&json!({"name": "pg group", "open": true}).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{g}");
    let gid = g["id"].as_str().unwrap();
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            &format!("/v2/group/{gid}/join"),
            Some(&b.token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (_, users) = s.get(&format!("/v2/group/{gid}/user"), &a.token).await;
    assert_eq!(users["group_users"].as_array().unwrap().len(), 2);
    let (status, account) = s.get("/v2/account", &b.token).await;
    assert_eq!(
        (status, account["user"]["username"].as_str()),
        (200, Some("pg_bob"))
    );
}

/// Lua calls on the worker threads (`runtime::inline`) whose `nk` functions really wait: on
/// PostgreSQL every commit and read is a network round trip, so each call hands its worker
/// away and blocks. More calls at once than the runtime has workers (2 here), each sending
/// persistently and then listing what it sent in the same call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lua_calls_that_wait_on_postgresql_run_from_the_workers() {
    let (_, url) = fresh_pg_schema().await;
    let path = fixtures("good");
    let s = Server::start_with(&[
        ("database.url", url.as_str()),
        ("runtime.path", path.as_str()),
    ])
    .await;
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(s.user(&format!("pg_lua_{i}")).await);
    }
    let calls = users.iter().map(|u| {
        let code = format!(
            r#"for i = 1, 3 do nk.notification_send("{}", "s" .. i, {{}}, 1, nil, true) end
               local listed = nk.notifications_list("{}", 10)
               return tostring(#listed)"#,
            u.id, u.id
        );
        let s = &s;
        async move { s.rpc("test.eval", &u.token, &code).await }
    });
    for (status, body) in futures_util::future::join_all(calls).await {
        assert_eq!(
            (status, body["payload"].as_str()),
            (200, Some("3")),
            "{body}"
        );
    }
    for u in &users {
        let (_, page) = s.get("/v2/notification?limit=10", &u.token).await;
        assert_eq!(page["notifications"].as_array().unwrap().len(), 3, "{page}");
    }
}
