use tidings::core::notifications::NewNotification;

use crate::support::Server;

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
    // from the saved high-water mark, not from the clock alone.
    let after_restart = vec![NewNotification {
        user_id: u.id,
        subject: "s3".into(),
        content: "{}".into(),
        code: 1,
        sender_id: Some(uuid::Uuid::nil()),
        persistent: true,
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
