//! Storage faults on the real binary: its data dir on a small tmpfs that fills up while
//! players send (senders get clean errors, nothing is half written, the server keeps
//! answering and recovers once space returns), and a read-only data dir at start (a clear
//! refusal naming it).
//!
//! Mounting needs root (CI runs as root); elsewhere the test says it cannot run and fails,
//! rather than passing without checking anything.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::crash::{device_token, free_port, kill_and_check, listed_seqs, start, wait_healthy};

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "cannot mount a tmpfs (the storage-fault tests need root, as CI has)"
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, mode: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the file system holding `path` until a write fails; the filler's path.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    for _ in 0..100_000 {
        if f.write_all(&chunk).and_then(|()| f.flush()).is_err() {
            break;
        }
    }
    // Also the last few bytes.
    while f.write_all(&[0u8; 512]).is_ok() {}
    filler
}

struct Sender {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Sender {
    /// Stores notification `seq` through the RPC; its HTTP status and body.
    async fn send(&self, seq: u64) -> (u16, serde_json::Value) {
        let res = self
            .http
            .post(format!("{}/v2/rpc/test.store_seq", self.base))
            .bearer_auth(&self.token)
            .body(format!("\"{seq}\""))
            .send()
            .await
            .expect("rpc");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or_default())
    }
}

/// Sends from `first` until a send fails (at most `max`); the acknowledged seqs and the
/// failed one.
async fn send_until_refused(s: &Sender, first: u64, max: u64) -> (Vec<u64>, u64) {
    let mut acked = Vec::new();
    for seq in first..first + max {
        let (status, body) = s.send(seq).await;
        match status {
            200 => acked.push(seq),
            _ => {
                // A clean error in Nakama's shape, not a dropped connection or a hang.
                assert_eq!(status, 500, "{body}");
                assert_eq!(body["code"], 13, "{body}");
                assert!(body["message"].is_string(), "{body}");
                return (acked, seq);
            }
        }
    }
    panic!("{max} sends all succeeded: the fault never reached the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_or_read_only_disk_gives_clean_errors_and_the_server_recovers() {
    let fs = Tmpfs::mount("16m");
    let data = fs.path().join("data");
    let port = free_port();
    let server = start(&data, port, &[]);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    wait_healthy(&http, &base).await;
    let token = device_token(&http, &base, "faults-device-0001").await;
    let s = Sender {
        http: http.clone(),
        base: base.clone(),
        token: token.clone(),
    };
    let (mut acked, _) = (Vec::new(), ());
    for seq in 0..20 {
        assert_eq!(s.send(seq).await.0, 200);
        acked.push(seq);
    }

    // Disk full.
    let filler = fill(fs.path());
    let (more, refused_full) = send_until_refused(&s, 1000, 20_000).await;
    acked.extend(more);
    let health = http
        .get(format!("{base}/healthcheck"))
        .send()
        .await
        .expect("health");
    assert!(health.status().is_success() || health.status() == 503);
    // Space returns: sends succeed again.
    std::fs::remove_file(&filler).expect("remove filler");
    let mut recovered = false;
    for seq in 30_000..30_050 {
        if s.send(seq).await.0 == 200 {
            acked.push(seq);
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "sends still failing after the disk has space again"
    );

    // Every acknowledged send is listed once; the refused ones are not (no half writes).
    let listed = listed_seqs(&http, &base, &token).await;
    let unique: std::collections::HashSet<u64> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "listed twice");
    let lost: Vec<&u64> = acked.iter().filter(|s| !unique.contains(s)).collect();
    assert!(lost.is_empty(), "acknowledged but not listed: {lost:?}");
    assert!(
        !unique.contains(&refused_full),
        "the refused send {refused_full} was stored"
    );
    eprintln!(
        "storage faults: {} sends acknowledged, the first refused at seq {refused_full} \
         (disk full), all acknowledged listed after recovery",
        acked.len()
    );
    kill_and_check(server, &data);

    // A read-only data dir (remounted once the server is gone: Linux refuses while files
    // are open for writing): a clear refusal to start, not a hang.
    fs.remount("ro");
    let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args([
            "--data_dir",
            fs.path().join("fresh").to_str().expect("path"),
        ])
        .args(["--socket.port", &free_port().to_string()])
        .args(["--metrics.prometheus_port", "0", "--console.port", "0"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fresh"), "names the data dir: {err}");
}
