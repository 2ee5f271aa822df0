//! Overload: a socket that never reads, and more RPCs than the Lua pool can take. Neither
//! may slow other players down or grow memory without bound (figures: RELIABILITY.md).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tidings::core::notifications::NewNotification;

use crate::support::{fixtures, next_json, send_text, Server, WAIT};

fn notification(user_id: uuid::Uuid, i: usize, content: &str) -> NewNotification {
    NewNotification {
        user_id,
        subject: format!("n{i}"),
        content: content.to_string(),
        code: 1,
        sender_id: None,
        persistent: false,
        expire_time: None,
        keys: Default::default(),
    }
}

/// A player whose client stopped reading: the server's writes back up, its bounded queue
/// fills, and it is closed with Nakama's reason, while a healthy player sharing every send
/// gets all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_reads_is_closed_and_slows_no_one() {
    let s = Server::start_with(&[
        ("socket.outgoing_queue_size", "16"),
        ("socket.write_wait_ms", "1000"),
    ])
    .await;
    let stuck = s.user("never_reads").await;
    let healthy = s.user("reads_fine").await;
    // Opened and then never polled again: nothing drains its TCP buffers.
    let stuck_ws = s.socket(&stuck.token).await;
    let mut ws = s.socket(&healthy.token).await;
    send_text(&mut ws, r#"{"cid":"1","ping":{}}"#).await;
    assert_eq!(next_json(&mut ws).await["cid"], "1");

    // 3 KB per notification: the loopback buffers of the stuck socket fill within a few
    // hundred sends, its writer blocks, and then its queue overflows.
    let content = format!(r#"{{"pad":"{}"}}"#, "x".repeat(3000));
    const SENDS: usize = 3000;
    let mut received = 0;
    let started = Instant::now();
    for i in 0..SENDS {
        s.core
            .notifications
            .send(vec![
                notification(stuck.id, i, &content),
                notification(healthy.id, i, &content),
            ])
            .await
            .expect("send");
        // The healthy socket is read as we go, as a game client would.
        while let Ok(Some(Ok(frame))) =
            tokio::time::timeout(Duration::from_millis(0), ws.next()).await
        {
            let v: Value = serde_json::from_str(frame.to_text().expect("text")).expect("json");
            received += v["notifications"]["notifications"]
                .as_array()
                .map_or(0, Vec::len);
        }
    }
    while received < SENDS {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the healthy socket got everything in time")
            .expect("open")
            .expect("frame");
        let v: Value = serde_json::from_str(frame.to_text().expect("text")).expect("json");
        received += v["notifications"]["notifications"]
            .as_array()
            .map_or(0, Vec::len);
    }
    assert_eq!(received, SENDS);
    let elapsed = started.elapsed();
    // The stuck session is gone from presence (closed for its full queue or its dead write).
    let deadline = Instant::now() + WAIT;
    while s.core.presence.session_count() > 1 {
        assert!(
            Instant::now() < deadline,
            "the stuck socket was never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !s.core.presence.is_online(stuck.id),
        "the stuck player's session is closed"
    );
    eprintln!("slow consumer: {SENDS} notifications to the healthy socket in {elapsed:?} beside a stuck one");
    drop(stuck_ws);
}

/// More RPCs than one VM and a queue of two can take: the overflow is refused at once with
/// 503 / code 14, the queued ones are served, and the server answers normally afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_flood_beyond_the_queue_gets_quick_clean_errors() {
    let path = fixtures("good");
    let s = Server::start_with(&[
        ("runtime.path", path.as_str()),
        ("runtime.lua_min_count", "1"),
        ("runtime.lua_max_count", "1"),
        ("runtime.lua_queue_size", "2"),
        // Every call through the pool and its queue (calls run inline never queue).
        ("runtime.lua_inline_calls", "false"),
    ])
    .await;
    let u = s.user("flooder").await;
    // Occupies the only VM for 800 ms.
    let busy = {
        let http = s.http.clone();
        let url = s.url("/v2/rpc/test.slow_store?unwrap=true");
        let token = u.token.clone();
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .body("1 800")
                .send()
                .await
                .expect("slow rpc")
                .status()
                .as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let calls = (0..12).map(|i| {
        let http = s.http.clone();
        let url = s.url("/v2/rpc/test.echo?unwrap=true");
        let token = u.token.clone();
        async move {
            let started = Instant::now();
            let res = http
                .post(url)
                .bearer_auth(token)
                .body(format!("flood {i}"))
                .send()
                .await
                .expect("rpc");
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            (status, body, started.elapsed())
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let refused: Vec<_> = results.iter().filter(|(st, _, _)| *st == 503).collect();
    let served = results.iter().filter(|(st, _, _)| *st == 200).count();
    assert_eq!(refused.len() + served, 12, "{results:?}");
    assert!(
        (1..=2).contains(&served),
        "at most the queue is served: {results:?}"
    );
    for (_, body, took) in &refused {
        assert_eq!(body["code"], 14, "{body}");
        assert!(
            *took < Duration::from_millis(500),
            "refused at once, not after the wait: {took:?}"
        );
    }
    assert_eq!(busy.await.expect("join"), 200);
    // Afterwards, normal service.
    let (status, body) = s.rpc("test.echo", &u.token, "again").await;
    assert_eq!((status, body["payload"].clone()), (200, "again".into()));
}
