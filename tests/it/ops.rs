//! Operating the real binary: JSON logs where every line of a request carries its id (the
//! script's lines too, logged on a Lua thread), and no token or key ever appears.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::crash::{device_token, free_port, wait_healthy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_ids_and_no_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut command = crate::crash::command(dir.path(), port);
    command
        .args(["--logger.format", "json", "--logger.level", "debug"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (mut server, http, base) = spawn_server(command, port).await;
    let token = device_token(&http, &base, "log-test-device").await;
    let res = http
        .post(format!(
            "{base}/v2/rpc/test.log?http_key=defaulthttpkey&unwrap=true"
        ))
        .body("{}")
        .send()
        .await
        .expect("rpc");
    assert_eq!(res.status(), 200);
    let res = http
        .get(format!("{base}/v2/notification?limit=1"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), 200);
    let res = http
        .get(format!("{base}/v2/account?token={token}"))
        .send()
        .await
        .expect("a token in the query");
    assert_eq!(res.status(), 401);

    let stopped = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let status = server.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    let mut out = String::new();
    server
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read stdout");
    let mut err = String::new();
    server
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");

    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 3, "{out}{err}");
    for secret in [token.as_str(), "defaulthttpkey", "defaultkey"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} was logged"
        );
    }
    let script = lines
        .iter()
        .find(|l| l["fields"]["message"] == "script line")
        .unwrap_or_else(|| panic!("the script's line: {out}"));
    assert_eq!(script["span"]["name"], "request", "{script}");
    assert_eq!(script["span"]["path"], "/v2/rpc/test.log");
    let id = script["span"]["id"].as_str().expect("a request id");
    let served: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "served")
        .collect();
    assert!(served.len() >= 4, "one line per request: {out}");
    let same: Vec<&&Value> = served.iter().filter(|l| l["span"]["id"] == id).collect();
    assert_eq!(same.len(), 1, "the request's own line carries its id");
    assert_eq!(same[0]["fields"]["status"], 200);
    let ids: std::collections::HashSet<&str> = served
        .iter()
        .filter_map(|l| l["span"]["id"].as_str())
        .collect();
    assert_eq!(ids.len(), served.len(), "each request has its own id");
}

/// The value of the sample `name` (with its labels, as rendered) in a Prometheus scrape.
fn sample(scrape: &str, name: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_sends_deliveries_drops_calls_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, metrics_port) = (free_port(), free_port());
    let mut server = crate::crash::start(
        dir.path(),
        port,
        &["--metrics.prometheus_port".into(), metrics_port.to_string()],
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    wait_healthy(&http, &base).await;
    let scrape = || async {
        let res = http
            .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .send()
            .await
            .expect("scrape");
        assert_eq!(res.status(), 200);
        res.text().await.expect("text")
    };
    let before = scrape().await;
    assert_eq!(sample(&before, "tidings_sockets"), Some(0.0), "{before}");
    assert_eq!(sample(&before, "tidings_runtime_generation"), Some(1.0));
    assert!(sample(&before, "tidings_lua_vm_threads").is_some_and(|n| n >= 1.0));

    let token = device_token(&http, &base, "metrics-device-a").await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws?token={token}"))
            .await
            .expect("socket");
    let rpc = |id: &'static str, payload: String| {
        let http = http.clone();
        let url = format!("{base}/v2/rpc/{id}?unwrap=true");
        let token = token.clone();
        async move {
            http.post(url)
                .bearer_auth(token)
                .body(payload)
                .send()
                .await
                .expect("rpc")
                .status()
        }
    };
    // One stored notification to the connected caller, one pushed-only one to a user with no
    // socket, one call that fails.
    assert_eq!(rpc("test.store_seq", "1".into()).await, 200);
    let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a frame")
        .expect("open")
        .expect("frame");
    assert!(frame.to_text().expect("text").contains("notifications"));
    let offline = uuid::Uuid::new_v4();
    let chunk =
        format!("nk.notification_send('{offline}', 'gone', {{}}, 2, nil, false) return 'ok'");
    assert_eq!(rpc("test.eval", chunk).await, 200);
    assert_eq!(rpc("test.error", String::new()).await, 500);

    let after = scrape().await;
    let expect = [
        ("tidings_sockets", 1.0),
        ("tidings_notifications_sent_total{class=\"game\"}", 2.0),
        ("tidings_notifications_stored_total{class=\"game\"}", 1.0),
        ("tidings_notifications_delivered_total{class=\"game\"}", 1.0),
        (
            "tidings_notifications_dropped_total{class=\"game\",reason=\"offline\"}",
            1.0,
        ),
        ("tidings_notification_delivery_seconds_count", 1.0),
        (
            "tidings_rpc_duration_seconds_count{id=\"test.store_seq\"}",
            1.0,
        ),
        ("tidings_rpc_duration_seconds_count{id=\"test.error\"}", 1.0),
        ("tidings_rpc_errors_total{id=\"test.error\"}", 1.0),
        ("tidings_lua_errors_total", 1.0),
        ("tidings_store_writer_queue", 0.0),
    ];
    for (name, value) in expect {
        assert_eq!(sample(&after, name), Some(value), "{name} in:\n{after}");
    }
    assert!(
        sample(&after, "tidings_store_writer_batch_jobs_count").is_some_and(|n| n >= 2.0),
        "the device account and the notification were committed: {after}"
    );
    assert!(!after.contains("test.store_seq\"} 2"));
    assert_eq!(sample(&after, "tidings_lua_inline_calls"), Some(0.0));

    // A call in progress runs inline on a worker thread of the binary, and the gauge shows it.
    let slow = tokio::spawn(rpc("test.slow_store", "2 1500".into()));
    let mut seen = None;
    for _ in 0..100 {
        seen = sample(&scrape().await, "tidings_lua_inline_calls");
        if seen == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, Some(1.0), "the slow call never showed as inline");
    assert_eq!(slow.await.expect("slow rpc"), 200);
    assert_eq!(
        sample(&scrape().await, "tidings_lua_inline_calls"),
        Some(0.0)
    );

    let res = http
        .get(format!("http://127.0.0.1:{metrics_port}/other"))
        .send()
        .await
        .expect("other path");
    assert_eq!(res.status(), 404);
    drop(ws);
    server.kill().expect("kill");
    server.wait().expect("reap");
}

/// Spawns `command` (the binary, or a wrapper that execs it) and waits until it answers on
/// `port`: the process, an HTTP client, the base URL.
async fn spawn_server(
    mut command: Command,
    port: u16,
) -> (crate::crash::Running, reqwest::Client, String) {
    let server = crate::crash::Running(command.spawn().expect("start tidings"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&http, &base).await;
    (server, http, base)
}

/// A server started with a soft limit of 256 open files (the 1,024 shells and service managers
/// commonly hand out, in miniature) still takes 400 sockets: it raises its soft limit to the
/// hard one at start, as Nakama's Go runtime does. Without that it stops accepting near 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_beyond_the_inherited_soft_file_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let inner = crate::crash::command(dir.path(), port);
    let mut limited = Command::new("sh");
    limited
        .args(["-c", "ulimit -Sn 256 && exec \"$@\"", "sh"])
        .arg(inner.get_program())
        .args(inner.get_args())
        .args(["--logger.level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let (mut server, http, base) = spawn_server(limited, port).await;
    let token = device_token(&http, &base, "fd-limit-device-1").await;
    let mut sockets = Vec::new();
    for i in 0..400 {
        let url = format!("ws://127.0.0.1:{port}/ws?token={token}");
        match tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async(url),
        )
        .await
        {
            Ok(Ok((ws, _))) => sockets.push(ws),
            Ok(Err(e)) => panic!("socket {i} refused: {e}"),
            Err(_) => panic!("socket {i} not accepted within 5 s"),
        }
    }
    assert_eq!(sockets.len(), 400);
    let _ = server.0.kill();
    let _ = server.0.wait();
}

/// The listening socket's accept queue is the kernel's largest (`net.core.somaxconn`), as Go
/// gives Nakama, not the 128 tokio's bind gave: `ss` shows a listener's queue size as its
/// Send-Q.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_takes_the_kernels_largest_accept_queue() {
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("somaxconn")
        .trim()
        .parse()
        .expect("a number");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut command = crate::crash::command(dir.path(), port);
    command
        .args(["--logger.level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let (mut server, _, _) = spawn_server(command, port).await;
    let out = Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let queue: Vec<u32> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .collect();
    assert_eq!(queue, vec![somaxconn], "ss said: {text}");
    let _ = server.0.kill();
    let _ = server.0.wait();
}

/// Ports already taken: the main port is fatal (exit 1, naming the address), a side port
/// (here the console's) is logged and the server serves without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_ports_fail_the_main_listener_and_skip_a_side_one() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = held.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");

    let mut main = crate::crash::command(dir.path(), taken);
    main.args(["--console.port", "0", "--metrics.prometheus_port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = crate::crash::Running(main.spawn().expect("start tidings"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running on a taken port"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{taken}")),
        "{err}"
    );

    let port = free_port();
    let mut command = crate::crash::command(dir.path(), port);
    command
        .args(["--console.port", &taken.to_string()])
        .args(["--metrics.prometheus_port", "0", "--logger.level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let (mut server, http, base) = spawn_server(command, port).await;
    let token = device_token(&http, &base, "taken-port-device").await;
    assert!(!token.is_empty());
    let _ = server.0.kill();
    let _ = server.0.wait();
    drop(held);
}
