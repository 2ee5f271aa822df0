use tidings::core::notifications::NewNotification;

use crate::support::{plain_notification, Server};

#[tokio::test]
async fn stored_notifications_sessions_and_cursors_survive_a_restart() {
    let s = Server::start().await;
    let u = s.user("keeper").await;
    let gone = s.user("gone").await;
    let batch = (0..3)
        .map(|i| NewNotification {
            user_id: u.id,
            subject: format!("s{i}"),
            content: "{}".into(),
            code: 1,
            sender_id: Some(uuid::Uuid::nil()),
            persistent: true,
            expire_time: None,
            keys: Default::default(),
        })
        .collect();
    s.core.notifications.send(batch).await.unwrap();
    let (_, page) = s.get("/v2/notification?limit=2", &u.token).await;
    let cursor = page["cacheable_cursor"].as_str().unwrap().to_string();
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            "/v2/session/logout",
            Some(&gone.token),
            Some("{}"),
        )
        .await;
    assert_eq!(status, 200);
    let dir = s.stop().await;

    let s = Server::start_in(dir, &[]).await;
    // A row stored after the restart still sorts after every earlier one: the writer resumes
    // from the saved clock bound, not from the clock alone.
    let after_restart = vec![NewNotification {
        user_id: u.id,
        subject: "s3".into(),
        content: "{}".into(),
        code: 1,
        sender_id: Some(uuid::Uuid::nil()),
        persistent: true,
        expire_time: None,
        keys: Default::default(),
    }];
    s.core.notifications.send(after_restart).await.unwrap();
    let (status, body) = s
        .get(
            &format!("/v2/notification?limit=10&cacheable_cursor={cursor}"),
            &u.token,
        )
        .await;
    assert_eq!(status, 200, "the old token is still valid: {body}");
    let items = body["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let subjects: Vec<&str> = items
        .iter()
        .map(|n| n["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["s2", "s3"]);
    assert_eq!(
        s.get("/v2/account", &gone.token).await.0,
        401,
        "logout survives restart"
    );
}

/// The clock bound saved in `store_meta` covers every committed create_time at all times
/// (checked from a second connection while the server runs, after single sends that each
/// commit alone, and after a stop), so a writer restarted at any moment, even after a kill,
/// resumes above every stored row. It runs ahead of the clock rather than being rewritten by
/// every commit.
#[tokio::test]
async fn the_saved_clock_bound_covers_every_commit() {
    let s = Server::start().await;
    let u = s.user("bound").await;
    let path = s.dir.path().join("tidings.db");
    let read = || {
        let db = rusqlite::Connection::open(&path).unwrap();
        let bound: i64 = db
            .query_row(
                "SELECT value FROM store_meta WHERE key = 'last_create_time'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let newest: i64 = db
            .query_row("SELECT max(create_time) FROM notification", [], |r| {
                r.get(0)
            })
            .unwrap();
        (bound, newest)
    };
    for i in 0..5 {
        let one = vec![plain_notification(u.id, &format!("b{i}"), true)];
        s.core.notifications.send(one).await.unwrap();
        let (bound, newest) = read();
        assert!(
            bound >= newest,
            "send {i}: bound {bound} below row {newest}"
        );
        if i == 0 {
            assert!(bound > newest, "the bound runs ahead of the clock");
        }
    }
    let dir = s.stop().await;
    let db = rusqlite::Connection::open(dir.path().join("tidings.db")).unwrap();
    let (bound, newest): (i64, i64) = db
        .query_row(
            "SELECT (SELECT value FROM store_meta WHERE key = 'last_create_time'), \
             (SELECT max(create_time) FROM notification)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        bound >= newest,
        "after stop: bound {bound} below row {newest}"
    );
}

/// The writer's clock resumes from the saved clock bound, not from the wall clock: a row
/// stored ahead of the clock before a restart (as a burst of sends can be) still sorts before
/// every row stored after it.
#[tokio::test]
async fn rows_after_a_restart_sort_after_rows_ahead_of_the_clock() {
    let s = Server::start().await;
    let u = s.user("ahead").await;
    let dir = s.stop().await;

    // A row an hour ahead of the clock, and the saved bound that covers it.
    let ahead = tidings::core::time::now_micros() + 3_600_000_000;
    let db = rusqlite::Connection::open(dir.path().join("tidings.db")).unwrap();
    db.execute(
        "INSERT INTO notification (user_id, create_time, id, subject, content, code, sender_id) \
         VALUES (?1, ?2, ?3, 'ahead', '{}', 1, ?4)",
        rusqlite::params![
            u.id.as_bytes().to_vec(),
            ahead,
            uuid::Uuid::now_v7().as_bytes().to_vec(),
            uuid::Uuid::nil().as_bytes().to_vec()
        ],
    )
    .unwrap();
    db.execute(
        "UPDATE store_meta SET value = ?1 WHERE key = 'last_create_time'",
        [ahead],
    )
    .unwrap();
    drop(db);

    let s = Server::start_in(dir, &[]).await;
    let (_, page) = s.get("/v2/notification?limit=1", &u.token).await;
    let cursor = page["cacheable_cursor"].as_str().unwrap().to_string();
    assert_eq!(page["notifications"][0]["subject"], "ahead");
    let later = vec![NewNotification {
        user_id: u.id,
        subject: "later".into(),
        content: "{}".into(),
        code: 1,
        sender_id: Some(uuid::Uuid::nil()),
        persistent: true,
        expire_time: None,
        keys: Default::default(),
    }];
    s.core.notifications.send(later).await.unwrap();
    let (_, body) = s
        .get(
            &format!("/v2/notification?limit=10&cacheable_cursor={cursor}"),
            &u.token,
        )
        .await;
    assert_eq!(body["notifications"][0]["subject"], "later", "{body}");
}
