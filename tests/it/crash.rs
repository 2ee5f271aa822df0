//! Crash durability: the real binary is SIGKILLed at random moments while clients store
//! persistent notifications; after every restart, each send that was acknowledged must be
//! listed exactly once, and SQLite must report an intact database. On PostgreSQL the same
//! runs with a second node that is never killed, and the list is read from that node (a
//! node dying mid-stream loses nothing its clients were told was sent).

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::fixtures;

/// Kills per run; the reliability issue asks for at least 20.
const KILLS: usize = 20;
const CLIENTS: usize = 4;

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A started server process, killed when dropped, so a failing test leaves none behind.
pub(crate) struct Running(pub Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The server binary on `data` and `port` with the "good" fixtures, two Lua VMs, no file
/// watching and hour-long tokens; the caller adds its own flags, the log settings and stdio.
pub(crate) fn command(data: &std::path::Path, port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidings"));
    command
        .args(["--data_dir", data.to_str().expect("path")])
        .args([
            "--socket.address",
            "127.0.0.1",
            "--socket.port",
            &port.to_string(),
        ])
        .args([
            "--runtime.path",
            &fixtures("good"),
            "--runtime.lua_min_count",
            "2",
        ])
        .args([
            "--runtime.hot_reload",
            "false",
            "--session.token_expiry_sec",
            "3600",
        ]);
    command
}

pub(crate) fn start(data: &std::path::Path, port: u16, extra: &[String]) -> Running {
    Running(
        command(data, port)
            .args(extra)
            .args(["--logger.level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tidings"),
    )
}

pub(crate) async fn wait_healthy(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(res) = http.get(format!("{base}/healthcheck")).send().await {
            if res.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("server did not become healthy");
}

/// Authenticates `device` against the server at `base`; its session token.
pub(crate) async fn device_token(http: &reqwest::Client, base: &str, device: &str) -> String {
    let session: serde_json::Value = http
        .post(format!("{base}/v2/account/authenticate/device"))
        .basic_auth("defaultkey", Some(""))
        .body(serde_json::json!({ "id": device }).to_string())
        .send()
        .await
        .expect("auth")
        .json()
        .await
        .expect("auth json");
    session["token"].as_str().expect("token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sends_survive_sigkill() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let server = crash_run(&data, &[], None).await;
    kill_and_check(server, &data);
}

/// SIGKILLs the server, then checks its SQLite file with `PRAGMA integrity_check`.
pub(crate) fn kill_and_check(mut server: Running, data: &std::path::Path) {
    server.kill().expect("SIGKILL");
    server.wait().expect("reap");
    let db = rusqlite::Connection::open(data.join("tidings.db")).expect("open db");
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sends_survive_sigkill_on_postgresql() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, url) = crate::support::fresh_pg_schema().await;
    let extra = vec!["--database.url".to_string(), url];
    let witness_port = free_port();
    let mut witness = start(&tmp.path().join("witness"), witness_port, &extra);
    let mut server = crash_run(&tmp.path().join("data"), &extra, Some(witness_port)).await;
    for child in [&mut server, &mut witness] {
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }
}

/// Drives CLIENTS senders against a node that is SIGKILLed KILLS times, then checks that
/// every acknowledged send is listed once (from `list_port`'s node when given). Returns the
/// last server process.
async fn crash_run(data: &std::path::Path, extra: &[String], list_port: Option<u16>) -> Running {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut server = start(data, port, extra);
    wait_healthy(&http, &base).await;
    let token = device_token(&http, &base, "crash-test-device").await;

    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        let (next, acked, stop) = (next.clone(), acked.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            // Bounded: stops when told to, or after a ceiling of requests.
            for _ in 0..1_000_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let seq = next.fetch_add(1, Ordering::Relaxed);
                let sent = http
                    .post(format!("{base}/v2/rpc/test.store_seq"))
                    .bearer_auth(&token)
                    .body(format!("\"{seq}\""))
                    .send()
                    .await;
                match sent {
                    Ok(res) if res.status().is_success() => {
                        acked.lock().unwrap_or_else(|p| p.into_inner()).push(seq)
                    }
                    // Server down or restarting: the send may or may not have happened.
                    _ => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }

    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..KILLS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        tokio::time::sleep(Duration::from_millis(40 + rng % 160)).await;
        server.kill().expect("SIGKILL");
        server.wait().expect("reap");
        server = start(data, port, extra);
        wait_healthy(&http, &base).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client task");
    }

    // Everything acknowledged is listed, once.
    let base = match list_port {
        Some(p) => {
            let other = format!("http://127.0.0.1:{p}");
            wait_healthy(&http, &other).await;
            other
        }
        None => base,
    };
    let listed = listed_seqs(&http, &base, &token).await;
    let acked = acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let unique: HashSet<u64> = listed.iter().copied().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "a notification was listed twice"
    );
    let lost: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|s| !unique.contains(s))
        .collect();
    eprintln!(
        "crash durability: {} sends acknowledged, {} listed, {KILLS} SIGKILLs, {} lost",
        acked.len(),
        listed.len(),
        lost.len()
    );
    assert!(acked.len() > 100, "the clients barely ran: {}", acked.len());
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    server
}

/// The `seq` of every notification the user lists (all pages), in list order.
pub(crate) async fn listed_seqs(http: &reqwest::Client, base: &str, token: &str) -> Vec<u64> {
    let mut listed = Vec::new();
    let mut cursor = String::new();
    for _ in 0..100_000 {
        let page: serde_json::Value = http
            .get(format!(
                "{base}/v2/notification?limit=100&cacheable_cursor={cursor}"
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("list json");
        let items = page["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if items.is_empty() {
            break;
        }
        for n in &items {
            let content: serde_json::Value =
                serde_json::from_str(n["content"].as_str().expect("content"))
                    .expect("content json");
            listed.push(content["seq"].as_u64().expect("seq"));
        }
        cursor = page["cacheable_cursor"]
            .as_str()
            .expect("cursor")
            .to_string();
    }
    listed
}

/// Waits for `child` to exit, at most `limit`; its exit status, or None if it is still running.
async fn exit_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// SIGTERM is a graceful stop: the RPC in flight answers and its notification is stored,
/// open sockets get a close frame (1000, "server shutting down"), new connections are
/// refused, and the process exits 0 within the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_calls_closes_sockets_and_exits_zero() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let grace = ["--shutdown_grace_sec".to_string(), "8".to_string()];
    let mut server = start(dir.path(), port, &grace);
    wait_healthy(&http, &base).await;
    let token = device_token(&http, &base, "shutdown-test-device").await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws?token={token}"))
            .await
            .expect("socket");

    // A call that is still running when SIGTERM arrives.
    let call = {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        tokio::spawn(async move {
            let res = http
                .post(format!("{base}/v2/rpc/test.slow_store"))
                .bearer_auth(&token)
                .body("\"7 800\"")
                .send()
                .await
                .expect("the call answers");
            (res.status().as_u16(), res.text().await.unwrap_or_default())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());

    let (code, reason) = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("the socket hears of the shutdown")
        {
            Some(Ok(Message::Close(Some(frame)))) => {
                break (u16::from(frame.code), frame.reason.to_string())
            }
            Some(Ok(_)) => continue,
            other => panic!("socket ended without a close frame: {other:?}"),
        }
    };
    assert_eq!((code, reason.as_str()), (1000, "server shutting down"));
    let (status, body) = call.await.expect("call task");
    assert_eq!((status, body.as_str()), (200, r#"{"payload":"7"}"#));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
            || server.try_wait().expect("try_wait").is_some(),
        "no new connections once stopping"
    );
    let status = exit_within(&mut server, Duration::from_secs(8))
        .await
        .expect("exits within the grace period");
    assert!(status.success(), "exit status {status:?}");
    assert!(started.elapsed() < Duration::from_secs(8));

    // What the call stored is there after a restart.
    let mut again = start(dir.path(), port, &grace);
    wait_healthy(&http, &base).await;
    let listed: serde_json::Value = http
        .get(format!("{base}/v2/notification?limit=10"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("list json");
    let _ = again.kill();
    let _ = again.wait();
    let items = listed["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["content"], serde_json::json!("{\"seq\":7}"));
}
