//! Hot-reload benchmark: how long from saving a module to the first call served by the new
//! code, and whether any call fails or runs stale code while modules reload under load.
//!
//! ```text
//! cargo run --release --example reload_bench -- [reloads=50] [clients=8]
//! ```
//!
//! It starts a real Tidings server in-process on 127.0.0.1 with 20 modules in a temporary
//! directory and file watching on, and talks to it over HTTP only.
//! - Latency: `reloads` times, rewrite one module with a new version and poll its RPC until the
//!   new version answers; report p50/p95/max from the write to that first new answer.
//! - Under load: `clients` tasks call random RPCs in closed loops while the same number of
//!   reloads happen; count failed calls and calls answered by a version older than one already
//!   observed live before the call was sent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidings::config::Config;

const MODULES: usize = 20;

fn module(i: usize, version: u64) -> String {
    format!(
        "local nk = require(\"nakama\")\n\
         -- module {i}\n\
         nk.register_rpc(function(ctx, payload) return \"{version}\" end, \"m{i}\")\n"
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

async fn call(http: &reqwest::Client, base: &str, token: &str, i: usize) -> Result<u64, String> {
    let res = http
        .post(format!("{base}/v2/rpc/m{i}"))
        .bearer_auth(token)
        .body("\"\"")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status();
    let body: serde_json::Value = res.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status} {body}"));
    }
    body["payload"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("bad payload {body}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let reloads = args.first().copied().unwrap_or(50);
    let clients = args.get(1).copied().unwrap_or(8) as usize;

    let tmp = std::env::temp_dir().join(format!("tidings-reload-bench-{}", std::process::id()));
    let modules = tmp.join("modules");
    std::fs::create_dir_all(&modules)?;
    for i in 0..MODULES {
        std::fs::write(modules.join(format!("m{i:02}.lua")), module(i, 0))?;
    }
    let mut config = Config {
        data_dir: tmp.join("data"),
        ..Config::default()
    };
    config.runtime.path = modules.clone();
    config.runtime.lua_min_count = 4;
    config.validate()?;
    let core = tidings::build_core(&config).await?;
    let runtime = tidings::start_runtime(&config, core.clone()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tidings::serve(core, runtime, config, listener, async {
        let _ = stop_rx.await;
    }));

    let http = reqwest::Client::new();
    let session: serde_json::Value = http
        .post(format!("{base}/v2/account/authenticate/device"))
        .basic_auth("defaultkey", Some(""))
        .body(r#"{"id":"reload-bench-device"}"#)
        .send()
        .await?
        .json()
        .await?;
    let token = session["token"].as_str().ok_or("no token")?.to_string();

    // 1. Latency from write to first new answer.
    let mut version = 0u64;
    let mut latencies = Vec::new();
    for r in 0..reloads {
        version += 1;
        let i = (r as usize * 7) % MODULES;
        let written = Instant::now();
        std::fs::write(modules.join(format!("m{i:02}.lua")), module(i, version))?;
        loop {
            if call(&http, &base, &token, i).await == Ok(version) {
                break;
            }
            if written.elapsed() > Duration::from_secs(10) {
                return Err(format!("reload {r} never served version {version}").into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(written.elapsed());
        // Make the next write a separate save, not part of this debounce window.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    latencies.sort();
    println!(
        "write -> first call on new code ({reloads} reloads, {MODULES} modules): p50 {:?}  p95 {:?}  max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        latencies.last().copied().unwrap_or_default()
    );

    // 2. Calls under continuous load through reloads. Every module answers `version` of the
    // last save that touched it; after each save we wait until it is live, then publish the
    // version every module must answer at least (all modules are rewritten together here).
    // Phase 1 left each module at the version of its own last save, so until the first
    // rewrite of all modules is live any version is acceptable.
    let floor = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        let (floor, done) = (floor.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut stale) = (0u64, 0u64, 0u64);
            let mut n = c;
            while !done.load(Ordering::Relaxed) {
                n = n.wrapping_mul(31).wrapping_add(17);
                let must_see = floor.load(Ordering::SeqCst);
                match call(&http, &base, &token, n % MODULES).await {
                    Ok(v) if v >= must_see => ok += 1,
                    Ok(_) => stale += 1,
                    Err(e) => {
                        failed += 1;
                        eprintln!("call failed: {e}");
                    }
                }
            }
            (ok, failed, stale)
        }));
    }
    let under_load = Instant::now();
    let mut load_latencies = Vec::new();
    for _ in 0..reloads {
        version += 1;
        let written = Instant::now();
        let dir = modules.clone();
        let v = version;
        tokio::task::spawn_blocking(move || {
            // One save of every module, each an atomic rename as editors do.
            for i in 0..MODULES {
                let tmp = dir.join(format!(".m{i:02}.lua.tmp"));
                std::fs::write(&tmp, module(i, v))?;
                std::fs::rename(&tmp, dir.join(format!("m{i:02}.lua")))?;
            }
            Ok::<_, std::io::Error>(())
        })
        .await??;
        while call(&http, &base, &token, MODULES - 1).await != Ok(version) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        load_latencies.push(written.elapsed());
        floor.store(version, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done.store(true, Ordering::Relaxed);
    let (mut ok, mut failed, mut stale) = (0, 0, 0);
    for t in tasks {
        let (o, f, s) = t.await?;
        ok += o;
        failed += f;
        stale += s;
    }
    load_latencies.sort();
    let secs = under_load.elapsed().as_secs_f64();
    println!(
        "under load ({clients} clients, {reloads} reloads of all {MODULES} modules in {secs:.1} s): \
         {ok} calls ok ({:.0}/s), {failed} failed, {stale} answered by an older generation; \
         save -> live p50 {:?} p95 {:?}",
        ok as f64 / secs,
        percentile(&load_latencies, 0.5),
        percentile(&load_latencies, 0.95)
    );

    let _ = stop_tx.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
