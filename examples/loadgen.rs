//! Load generator for Tidings (or any Nakama): speaks only the public protocol, HTTP and
//! WebSocket JSON as nakama-js does, and prints one summary line per measurement.
//!
//! Start the target server separately, with the load-test module only:
//!
//! ```text
//! ulimit -Hn             # fanout and memory hold thousands of sockets: the server and this
//!                        # tool raise their soft open-file limit to this hard one by themselves
//! cargo run --release -- --runtime.path examples/loadgen/modules --data_dir /tmp/tidings-loadgen \
//!     --logger.level warn
//! ```
//!
//! (A real Nakama works too: copy `examples/loadgen/modules/loadgen.lua` into its modules.)
//! Then, in another shell:
//!
//! ```text
//! cargo run --release --example loadgen -- <scenario> [--url http://127.0.0.1:7350] [--socket-url URL]
//!     [--duration 10] [--clients 8] [--users 200] [--http-key defaulthttpkey]
//!     [--server-key defaultkey] [--pid <server pid>] [--sizes 1000,5000] [--stuck 0] [--rounds 1]
//! ```
//!
//! `--socket-url` puts the players' sockets on another node of a cluster than the one the
//! RPCs go to (cross-node delivery, see BENCHMARKS.md).
//!
//! Scenarios (only loopback targets are accepted; every loop is bounded in count and time):
//! - `send` / `send_online`: `--users` players each hold one socket read by its own task;
//!   `--clients` senders call RPC `loadgen.send` in closed loops, each naming a random target,
//!   a sequence number and persistent true / false. Latency is from just before the request
//!   to the moment the target socket receives that sequence number. Once over REST, once over
//!   the socket (`{"cid":"N","rpc":{...}}`, one sender socket per client, waiting for each
//!   reply). After each run it waits up to 2 s for stragglers, then reports delivered/s,
//!   p50/p99/max and exactly-once: missing, duplicate and misrouted deliveries are failures.
//!   With `--stuck N`, the first N target players also hold a second socket that is never
//!   read (4 KiB receive buffer): slow consumers receiving every send to them, whose
//!   effect on everyone else's latency the run then shows (and which the server closes once
//!   their queue fills). With `--console URL` a third run sends the same notifications
//!   through the admin console's send route (`--console-login user:password`, default
//!   admin:password): the same HTTP, core, store and socket path without Lua, which shows
//!   what the Lua call costs (Tidings only; Nakama's console has no such route).
//! - `fanout`: K connected players for K in `--sizes` (default 1000 and 5000; users and
//!   sockets are opened in parallel batches of 50), then `loadgen.send_all` (http key), first
//!   non-persistent then persistent (each `--rounds` times, default 1): time from the request
//!   to the median and the K-th socket receiving it; with `--pid`, the CPU time the server and
//!   the generator used until the last socket had it. A persistent send_all stores a row for every account in the database,
//!   including those of earlier runs, so its time grows with the database.
//! - `burst`: for each K in `--sizes`, K players log in (in batches of 50), then all K open
//!   their socket at the same moment, as after a server restart; reports the handshake times
//!   (p50, p99, max) and how many took over 900 ms, the mark of a connection the server's
//!   accept queue dropped (the client resends its SYN after a second).
//! - `list`: stores 10,000 persistent notifications for one player (`loadgen.fill`, 10 calls
//!   of 1,000), pages through them with limit=100 and the cacheable cursor, checking the count
//!   and that ids and content numbers strictly increase; then `--clients` tasks fetch the first
//!   page in closed loops for `--duration` s. (Against Nakama the id check fails by design:
//!   Nakama ids are random and one batch lists in random order.)
//! - `store`: `loadgen.store_single` (1,000 `notification_send` calls, one transaction each)
//!   and `loadgen.store_batch` (one `notifications_send` of 1,000) for an offline player,
//!   20 calls each, timed from the client; reports the median notifications/s.
//! - `memory`: needs `--pid` of the server: VmRSS from /proc/<pid>/status with 0 sockets
//!   (after creating the accounts), then with each of `--sizes` idle sockets open; reports KiB
//!   per socket.
//! - `churn`: the soak: for `--duration` s, `--clients` tasks loop over log in (one of
//!   `--users` devices), open a socket, one RPC over it, close; needs `--pid`; reports cycles
//!   and the server's VmRSS at the start, after a warm-up tenth, at the end and 2 s later.
//! - `all`: send, send_online, list and store (not fanout and memory, which need the fd limit
//!   and the pid).
//!
//! With `--pid`, the send and list lines also give the server's CPU time per operation (user +
//! system, all threads, from /proc): on a machine where the generator shares the cores it is
//! the figure that says what the server itself costs. They always give the generator's own
//! CPU per operation: on shared cores the two together bound the rate (2 cores at
//! (server + generator) us per op allow 2,000,000 / (server + generator) ops a second).
//!
//! Start-up time is measured outside this program, from process start to the first 200 from
//! `/healthcheck` (stop any server on :7350 first; add `--prepare 'rm -rf /tmp/tl-st'` for a
//! cold start with an empty database):
//!
//! ```text
//! hyperfine -w 2 'target/release/tidings --data_dir /tmp/tl-st --runtime.path examples/loadgen/modules & p=$!;
//!     until curl -sf http://127.0.0.1:7350/healthcheck >/dev/null; do sleep 0.002; done; kill $p; wait $p; true'
//! ```
//!
//! (or a shell loop: `date +%s%N` before the start and after the first 200).
//!
//! Errors are counted and the first few printed to stderr; the exit code is 1 when any
//! scenario saw an error, a missing or a duplicate delivery, 2 for bad arguments.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::borrow::Cow;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};
use tokio_tungstenite::tungstenite::Message;

#[path = "loadgen/http1.rs"]
mod http1;
use http1::Auth;

/// The generator shares the cores with the server it measures: mimalloc keeps its own
/// allocations (HTTP bodies, frames) from costing the server CPU time (glibc malloc was
/// about a tenth of the machine's samples during the list scenario).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The parts of a socket frame the generator reads, parsed without building a JSON tree
/// (the generator reads every frame of every socket, on the server's cores).
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow)]
    cid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    rpc: Option<FrameRpc<'a>>,
    #[serde(borrow)]
    notifications: Option<Pushed<'a>>,
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct FrameRpc<'a> {
    #[serde(borrow)]
    payload: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Pushed<'a> {
    #[serde(borrow, default)]
    notifications: Vec<PushedItem<'a>>,
}

#[derive(Deserialize)]
struct PushedItem<'a> {
    #[serde(borrow)]
    subject: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
}

/// The numbers loadgen.lua puts in a notification's content.
#[derive(Deserialize)]
struct LgContent {
    seq: Option<f64>,
    tag: Option<f64>,
}

/// A whole non-negative number (Lua numbers may arrive as 12.0).
fn whole(n: Option<f64>) -> Option<u64> {
    n.filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 2f64.powi(53))
        .map(|f| f as u64)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const USAGE: &str = "usage: loadgen <send|send_online|fanout|burst|list|store|memory|churn|all> \
[--url http://127.0.0.1:7350] [--socket-url URL] [--duration 10] [--clients 8] [--users 200] \
[--http-key defaulthttpkey] [--server-key defaultkey] [--pid PID] [--sizes 1000,5000] [--stuck N] [--rounds 1] \
[--console http://127.0.0.1:7351] [--console-login admin:password]";

/// Longest wait for one HTTP exchange.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for slow server-side work (fill, store, a persistent send_all).
const SLOW_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a WebSocket handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A socket silent this long (the server pings every 15 s by default) counts as lost.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Users and sockets opened concurrently.
const BATCH: usize = 50;
/// Upper bound on requests of one closed-loop task, whatever the duration.
const MAX_REQUESTS_PER_TASK: u64 = 2_000_000;
/// How long to wait for deliveries still in flight after the senders stop.
const STRAGGLER_WAIT: Duration = Duration::from_secs(2);
/// Time given to a fanout to reach every socket.
const FANOUT_WAIT: Duration = Duration::from_secs(60);

const LIST_TOTAL: u64 = 10_000;
const LIST_FILL_CALLS: u64 = 10;
const LIST_PAGE: usize = 100;
const STORE_N: u64 = 1000;
const STORE_CALLS: usize = 20;

// ---------------------------------------------------------------------------------------
// Arguments and context

struct Args {
    scenario: String,
    url: String,
    /// Where the sockets connect, when not `url` (another node of a cluster).
    socket_url: Option<String>,
    duration: Duration,
    clients: usize,
    users: usize,
    http_key: String,
    server_key: String,
    pid: Option<u32>,
    sizes: Vec<usize>,
    stuck: usize,
    rounds: usize,
    /// The admin console's base URL: send / send_online add a phase through its send route.
    console: Option<String>,
    console_login: (String, String),
}

fn parse_args() -> Result<Args, String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut it = raw.into_iter();
    let scenario = it.next().ok_or("missing scenario")?;
    if ![
        "send",
        "send_online",
        "fanout",
        "burst",
        "list",
        "store",
        "memory",
        "churn",
        "all",
    ]
    .contains(&scenario.as_str())
    {
        return Err(format!("unknown scenario {scenario:?}"));
    }
    let mut a = Args {
        scenario,
        url: "http://127.0.0.1:7350".into(),
        socket_url: None,
        duration: Duration::from_secs(10),
        clients: 8,
        users: 200,
        http_key: "defaulthttpkey".into(),
        server_key: "defaultkey".into(),
        pid: None,
        sizes: vec![1000, 5000],
        stuck: 0,
        rounds: 1,
        console: None,
        console_login: ("admin".into(), "password".into()),
    };
    while let Some(flag) = it.next() {
        let (key, value) = match flag.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => {
                let v = it.next().ok_or(format!("{flag} needs a value"))?;
                (flag.clone(), v)
            }
        };
        match key.as_str() {
            "--url" => a.url = value.trim_end_matches('/').to_string(),
            "--socket-url" => a.socket_url = Some(value.trim_end_matches('/').to_string()),
            "--duration" => a.duration = Duration::from_secs(number(&key, &value, 1, 3600)?),
            "--clients" => a.clients = number(&key, &value, 1, 1000)? as usize,
            "--users" => a.users = number(&key, &value, 1, 100_000)? as usize,
            "--http-key" => a.http_key = value,
            "--server-key" => a.server_key = value,
            "--pid" => a.pid = Some(number(&key, &value, 1, u32::MAX as u64)? as u32),
            "--stuck" => a.stuck = number(&key, &value, 0, 10_000)? as usize,
            "--rounds" => a.rounds = number(&key, &value, 1, 100)? as usize,
            "--console" => {
                let url = value.trim_end_matches('/').to_string();
                loopback_ws_base(&url)?;
                a.console = Some(url);
            }
            "--console-login" => {
                let (user, password) = value
                    .split_once(':')
                    .ok_or("--console-login must be user:password")?;
                a.console_login = (user.to_string(), password.to_string());
            }
            "--sizes" => {
                let mut sizes = Vec::new();
                for part in value.split(',') {
                    match part.trim().parse::<usize>() {
                        Ok(n) if (1..=100_000).contains(&n) => sizes.push(n),
                        _ => {
                            return Err(
                                "--sizes must be numbers in 1..100000, e.g. 1000,5000".into()
                            )
                        }
                    }
                }
                sizes.sort_unstable();
                sizes.dedup();
                a.sizes = sizes;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn number(key: &str, value: &str, lo: u64, hi: u64) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("{key} must be a whole number in {lo}..{hi}")),
    }
}

/// The WebSocket base (`ws://host:port`) of a loopback `http://` URL, or why not.
fn loopback_ws_base(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("--url must start with http:// (no TLS)")?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    if !loopback {
        return Err(format!(
            "refusing {host:?}: only loopback targets (127.0.0.1, ::1, localhost)"
        ));
    }
    if rest.len() > authority.len() {
        return Err("--url must be just http://host:port".into());
    }
    Ok(format!("ws://{authority}"))
}

struct Ctx {
    http: http1::Http,
    url: String,
    ws_base: String,
    server_key: String,
    http_key: String,
    /// Unique per run: device ids are `lg-<run>-<role>-<i>`.
    run: String,
    duration: Duration,
    clients: usize,
    users: usize,
    pid: Option<u32>,
    sizes: Vec<usize>,
    /// Extra sockets of the first target players that never read (slow consumers).
    stuck: usize,
    rounds: usize,
    console: Option<String>,
    console_login: (String, String),
}

impl Ctx {
    fn device(&self, role: &str, i: usize) -> String {
        format!("lg-{}-{role}-{i}", self.run)
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers

static NOTES: AtomicU64 = AtomicU64::new(0);

/// Prints the first few errors of the whole run to stderr (they are all counted elsewhere).
fn note(what: &str, e: &str) {
    let n = NOTES.fetch_add(1, Ordering::Relaxed);
    if n < 30 {
        eprintln!("  error: {what}: {e}");
    } else if n == 30 {
        eprintln!("  (further errors not printed)");
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Percent-encodes a query parameter value.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn short(s: &str) -> String {
    s.chars().take(200).collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// "p50 … p99 … max …" of unsorted samples.
fn latency_line(samples: &mut [Duration]) -> String {
    samples.sort_unstable();
    format!(
        "p50 {} p99 {} max {}",
        ms(percentile(samples, 0.5)),
        ms(percentile(samples, 0.99)),
        ms(samples.last().copied().unwrap_or_default())
    )
}

fn status(clean: bool) -> &'static str {
    if clean {
        "ok  "
    } else {
        "FAIL"
    }
}

/// A JSON number as u64 (Lua numbers are doubles: accept 12 and 12.0).
fn as_u64(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0)
            .map(|f| f as u64)
    })
}

/// xorshift64: enough to pick random targets without another crate.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        Rng((uuid::Uuid::new_v4().as_u128() as u64) | 1)
    }
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// CPU time a process used (all threads, user + system), from /proc/<pid>/stat ("self" for
/// the generator), in 10 ms ticks.
fn process_cpu(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux for /proc, whatever the kernel's own tick rate.
    Some(Duration::from_millis(ticks * 10))
}

/// CPU time the server process used, when `--pid` names it. Server and load generator share
/// the cores here, so throughput is partly the generator's limit; CPU per operation is the
/// server's own cost.
fn server_cpu(ctx: &Ctx) -> Option<Duration> {
    process_cpu(&ctx.pid?.to_string())
}

/// CPU time of every thread of process `pid` ("self" for the generator), in nanoseconds
/// from each thread's schedstat: precise enough for a burst of a few milliseconds, where
/// /proc/<pid>/stat counts 10 ms ticks. Threads that ended are not counted.
fn threads_cpu(pid: &str) -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        let Ok(stat) = std::fs::read_to_string(path) else {
            continue; // the thread ended meanwhile
        };
        total += stat.split(' ').next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// CPU used so far by the server (with `--pid`) and by this generator.
#[derive(Clone, Copy)]
struct CpuMark {
    server: Option<Duration>,
    generator: Option<Duration>,
}

fn cpu_mark(ctx: &Ctx) -> CpuMark {
    CpuMark {
        server: server_cpu(ctx),
        generator: process_cpu("self"),
    }
}

/// ", server CPU N us/op, generator M us/op" for a phase that started at `before` and did
/// `ops`. Both share the machine's cores, so together they bound the rate: at 2 cores,
/// (N + M) us/op allows at most 2,000,000 / (N + M) operations a second.
fn cpu_per_op(ctx: &Ctx, before: CpuMark, ops: u64) -> String {
    let per_op = |b: Option<Duration>, a: Option<Duration>| match (b, a) {
        (Some(b), Some(a)) if ops > 0 => Some(a.saturating_sub(b).as_secs_f64() * 1e6 / ops as f64),
        _ => None,
    };
    let after = cpu_mark(ctx);
    let mut out = String::new();
    if let Some(us) = per_op(before.server, after.server) {
        out += &format!(", server CPU {us:.0} us/op");
    }
    if let Some(us) = per_op(before.generator, after.generator) {
        out += &format!(", generator CPU {us:.0} us/op");
    }
    out
}

/// Awaits tasks for at most `limit` in total; a task still running then is aborted and,
/// like a panicked one, counted as a failure.
async fn join_within<T>(handles: Vec<JoinHandle<T>>, limit: Duration) -> (Vec<T>, u64) {
    let deadline = Instant::now() + limit;
    let (mut out, mut failed) = (Vec::with_capacity(handles.len()), 0);
    for mut h in handles {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, &mut h).await {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(e)) => {
                failed += 1;
                note("task", &e.to_string());
            }
            Err(_) => {
                h.abort();
                failed += 1;
                note("task", "did not finish in time; aborted");
            }
        }
    }
    (out, failed)
}

// ---------------------------------------------------------------------------------------
// HTTP

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// A player session: token, user id, and when to authenticate again before it expires.
struct Sess {
    device: String,
    token: String,
    user_id: String,
    refresh_at: Instant,
}

impl Sess {
    /// Authenticates again when the token is close to expiry.
    async fn fresh(&mut self, ctx: &Ctx) -> Result<(), String> {
        if Instant::now() >= self.refresh_at {
            *self = authenticate(ctx, &self.device).await?;
        }
        Ok(())
    }
}

/// The claims of a JWT (its middle part), as nakama-js's Session reads them.
fn jwt_claims(token: &str) -> Option<Value> {
    let part = token.split('.').nth(1)?.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// POST /v2/account/authenticate/device (creating the account on first use).
async fn authenticate(ctx: &Ctx, device: &str) -> Result<Sess, String> {
    let url = format!("{}/v2/account/authenticate/device?create=true", ctx.url);
    let body = json!({ "id": device }).to_string();
    let auth = Auth::Basic(&ctx.server_key);
    let (status, text) = ctx
        .http
        .call("POST", &url, auth, Some(&body), HTTP_TIMEOUT)
        .await?;
    if !is_success(status) {
        return Err(format!("authenticate: {status} {}", short(&text)));
    }
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format!("authenticate: bad JSON: {e}"))?;
    let token = v["token"]
        .as_str()
        .ok_or_else(|| format!("authenticate: no token in {}", short(&text)))?
        .to_string();
    let claims = jwt_claims(&token).unwrap_or(Value::Null);
    let user_id = match claims["uid"].as_str() {
        Some(uid) => uid.to_string(),
        None => account_id(ctx, &token).await?,
    };
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let left = claims["exp"].as_i64().map(|e| e - now_unix).unwrap_or(60);
    let renew_in = (left - 10).max(left / 2).max(1) as u64;
    Ok(Sess {
        device: device.to_string(),
        token,
        user_id,
        refresh_at: Instant::now() + Duration::from_secs(renew_in),
    })
}

/// GET /v2/account: the user id, when the token's claims did not give it.
async fn account_id(ctx: &Ctx, token: &str) -> Result<String, String> {
    let url = format!("{}/v2/account", ctx.url);
    let (status, text) = ctx
        .http
        .call("GET", &url, Auth::Bearer(token), None, HTTP_TIMEOUT)
        .await?;
    if !is_success(status) {
        return Err(format!("account: {status} {}", short(&text)));
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("account: bad JSON: {e}"))?;
    v["user"]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("account: no user id in {}", short(&text)))
}

#[derive(Clone, Copy)]
enum RpcAuth<'a> {
    Bearer(&'a str),
    HttpKey,
}

/// POST /v2/rpc/<id> with the payload as a JSON string; returns the answer's payload text.
async fn rpc_rest(
    ctx: &Ctx,
    id: &str,
    auth: RpcAuth<'_>,
    payload: &str,
    limit: Duration,
) -> Result<String, String> {
    let (url, auth) = match auth {
        RpcAuth::Bearer(token) => (format!("{}/v2/rpc/{id}", ctx.url), Auth::Bearer(token)),
        RpcAuth::HttpKey => (
            format!("{}/v2/rpc/{id}?http_key={}", ctx.url, enc(&ctx.http_key)),
            Auth::None,
        ),
    };
    #[derive(Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        payload: Option<Cow<'a, str>>,
    }
    let body = serde_json::to_string(payload).map_err(|e| e.to_string())?;
    let (status, text) = ctx
        .http
        .call("POST", &url, auth, Some(&body), limit)
        .await?;
    if !is_success(status) {
        return Err(format!("rpc {id}: {status} {}", short(&text)));
    }
    let answer: Answer =
        serde_json::from_str(&text).map_err(|e| format!("rpc {id}: bad JSON answer: {e}"))?;
    Ok(answer.payload.unwrap_or_default().into_owned())
}

/// GET /v2/notification?limit=N[&cacheable_cursor=C]: (items, cursor).
async fn list_page(
    ctx: &Ctx,
    token: &str,
    limit: usize,
    cursor: &str,
) -> Result<(Vec<Value>, String), String> {
    let text = list_page_text(ctx, token, limit, cursor).await?;
    let mut v: Value = serde_json::from_str(&text).map_err(|e| format!("list: bad JSON: {e}"))?;
    let items = match v.get_mut("notifications").map(Value::take) {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => Vec::new(), // protojson omits an empty list
        Some(other) => return Err(format!("list: notifications is {other}")),
    };
    let cursor = v["cacheable_cursor"].as_str().unwrap_or("").to_string();
    Ok((items, cursor))
}

/// The number of notifications with a non-empty id on a list page, parsed without building
/// a JSON tree (the closed-loop phase reads thousands of 100-item pages a second).
async fn list_page_len(ctx: &Ctx, token: &str, limit: usize) -> Result<usize, String> {
    #[derive(Deserialize)]
    struct Page<'a> {
        #[serde(borrow, default)]
        notifications: Option<Vec<Item<'a>>>,
    }
    #[derive(Deserialize)]
    struct Item<'a> {
        #[serde(borrow)]
        id: Cow<'a, str>,
    }
    let text = list_page_text(ctx, token, limit, "").await?;
    let page: Page = serde_json::from_str(&text).map_err(|e| format!("list: bad JSON: {e}"))?;
    let items = page.notifications.unwrap_or_default();
    if items.iter().any(|n| n.id.is_empty()) {
        return Err("list: a notification without an id".into());
    }
    Ok(items.len())
}

/// The body of one list page (an error for any status but 2xx).
async fn list_page_text(
    ctx: &Ctx,
    token: &str,
    limit: usize,
    cursor: &str,
) -> Result<String, String> {
    let mut url = format!("{}/v2/notification?limit={limit}", ctx.url);
    if !cursor.is_empty() {
        url.push_str("&cacheable_cursor=");
        url.push_str(&enc(cursor));
    }
    let (status, text) = ctx
        .http
        .call("GET", &url, Auth::Bearer(token), None, HTTP_TIMEOUT)
        .await?;
    if !is_success(status) {
        return Err(format!("list: {status} {}", short(&text)));
    }
    Ok(text)
}

// ---------------------------------------------------------------------------------------
// Sockets

/// tungstenite's default read buffer is 128 KiB, zeroed again before every read: in the
/// 5,000-socket fan-out that memset was half of the generator's CPU time, on the cores the
/// server is measured on. Frames here are a few hundred bytes; 4 KiB, as the server uses.
fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096)
}

/// Opens `/ws` with a session token, as nakama-js's socket.connect does.
async fn connect(ctx: &Ctx, token: &str) -> Result<Ws, String> {
    let url = format!(
        "{}/ws?lang=en&status=false&token={}",
        ctx.ws_base,
        enc(token)
    );
    let connecting = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), false);
    match timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(format!("socket connect: {e}")),
        Err(_) => Err(format!(
            "socket connect: no answer within {CONNECT_TIMEOUT:?}"
        )),
    }
}

/// A socket of `device`'s player that is never read, with a small receive buffer so the
/// server's writes back up quickly.
async fn open_stuck(ctx: &Ctx, device: &str) -> Result<Ws, String> {
    let sess = authenticate(ctx, device).await?;
    let url = format!(
        "{}/ws?lang=en&status=false&token={}",
        ctx.ws_base,
        enc(&sess.token)
    );
    let host = ctx
        .ws_base
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let addr: std::net::SocketAddr = tokio::net::lookup_host(&host)
        .await
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| e.to_string())?;
    socket
        .set_recv_buffer_size(4096)
        .map_err(|e| e.to_string())?;
    let stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        url,
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
        Some(ws_config()),
    )
    .await
    .map_err(|e| format!("stuck socket: {e}"))?;
    Ok(ws)
}

/// One RPC over the socket: sends the envelope and waits for the reply with that cid
/// (skipping anything else), within `limit`.
async fn rpc_socket(
    ws: &mut Ws,
    cid: u64,
    id: &str,
    payload: &str,
    limit: Duration,
) -> Result<String, String> {
    let cid = cid.to_string();
    let frame = json!({ "cid": cid, "rpc": { "id": id, "payload": payload } }).to_string();
    let deadline = Instant::now() + limit;
    match timeout(limit, ws.send(Message::text(frame))).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("socket send: {e}")),
        Err(_) => return Err("socket send timed out".into()),
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = match timeout(left, ws.next()).await {
            Err(_) => return Err(format!("no rpc reply within {limit:?}")),
            Ok(None) => return Err("socket closed".into()),
            Ok(Some(Err(e))) => return Err(format!("socket read: {e}")),
            Ok(Some(Ok(m))) => m,
        };
        let text = match msg {
            Message::Text(text) => text,
            Message::Close(frame) => return Err(format!("socket closed by server: {frame:?}")),
            _ => continue, // pings are answered by tungstenite
        };
        let v: Frame = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => return Err(format!("bad frame: {e}")),
        };
        if v.cid.as_deref() != Some(cid.as_str()) {
            continue; // a push or something unrelated
        }
        if let (Some(rpc), None) = (v.rpc, v.error) {
            return Ok(rpc.payload.unwrap_or_default().into_owned());
        }
        return Err(format!("rpc error: {}", short(&text)));
    }
}

/// A send as the sender saw it.
struct Sent {
    at: Instant,
    target: usize,
    ok: bool,
}

/// A sequence number as the receiving sockets saw it.
struct Recv {
    count: u32,
    first: Instant,
    receiver: usize,
}

/// (tag, receiving socket, arrival) of one `lg_all` notification.
type FanEvent = (u64, usize, Instant);

/// State shared by the socket readers and the senders of one scenario.
struct Shared {
    next_seq: AtomicU64,
    sent: Mutex<HashMap<u64, Sent>>,
    recv: Mutex<HashMap<u64, Recv>>,
    /// Every `lg_all` notification received.
    fan_tx: mpsc::UnboundedSender<FanEvent>,
    /// Sockets that closed, failed or went silent before the scenario stopped them.
    lost: AtomicU64,
    /// Frames or notifications that could not be understood.
    bad_frames: AtomicU64,
    stopping: AtomicBool,
}

impl Shared {
    fn new() -> (Arc<Shared>, mpsc::UnboundedReceiver<FanEvent>) {
        let (fan_tx, fan_rx) = mpsc::unbounded_channel();
        let shared = Shared {
            next_seq: AtomicU64::new(1),
            sent: Mutex::new(HashMap::new()),
            recv: Mutex::new(HashMap::new()),
            fan_tx,
            lost: AtomicU64::new(0),
            bad_frames: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        };
        (Arc::new(shared), fan_rx)
    }

    /// Records the notifications of one text frame received by socket `idx` at `at`.
    fn on_frame(&self, idx: usize, text: &str, at: Instant) {
        let Ok(frame) = serde_json::from_str::<Frame>(text) else {
            self.bad_frames.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(pushed) = frame.notifications else {
            return; // not a push
        };
        for n in pushed.notifications {
            let content = n
                .content
                .as_deref()
                .and_then(|c| serde_json::from_str::<LgContent>(c).ok());
            let (seq, tag) = content.map_or((None, None), |c| (whole(c.seq), whole(c.tag)));
            match n.subject.as_deref() {
                Some("lg") => match seq {
                    Some(seq) => {
                        lock(&self.recv)
                            .entry(seq)
                            .and_modify(|r| r.count += 1)
                            .or_insert(Recv {
                                count: 1,
                                first: at,
                                receiver: idx,
                            });
                    }
                    None => {
                        self.bad_frames.fetch_add(1, Ordering::Relaxed);
                    }
                },
                Some("lg_all") => match tag {
                    Some(tag) => {
                        let _ = self.fan_tx.send((tag, idx, at));
                    }
                    None => {
                        self.bad_frames.fetch_add(1, Ordering::Relaxed);
                    }
                },
                _ => {} // someone else's notification
            }
        }
    }
}

/// Reads socket `idx` until the scenario stops (or the socket is lost), timestamping frames.
fn spawn_reader(
    mut ws: Ws,
    idx: usize,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let lost = |why: String| {
            if !shared.stopping.load(Ordering::Relaxed) {
                shared.lost.fetch_add(1, Ordering::Relaxed);
                note(&format!("socket {idx}"), &why);
            }
        };
        // One idle timer, pushed back at most once a second: a fresh `timeout` per frame put
        // a timer in and took it out of tokio's wheel for every frame received.
        let idle = tokio::time::sleep(IDLE_TIMEOUT);
        tokio::pin!(idle);
        let mut armed_at = Instant::now();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = &mut idle => {
                    lost(format!("silent for over {:?}", IDLE_TIMEOUT - Duration::from_secs(1)));
                    break;
                }
                next = ws.next() => {
                    let at = Instant::now();
                    if at.duration_since(armed_at) >= Duration::from_secs(1) {
                        idle.as_mut().reset((at + IDLE_TIMEOUT).into());
                        armed_at = at;
                    }
                    match next {
                        None => {
                            lost("closed".into());
                            break;
                        }
                        Some(Err(e)) => {
                            lost(e.to_string());
                            break;
                        }
                        Some(Ok(Message::Text(text))) => shared.on_frame(idx, &text, at),
                        Some(Ok(Message::Close(frame))) => {
                            lost(format!("closed by server: {frame:?}"));
                            break;
                        }
                        Some(Ok(_)) => {} // ping/pong (answered by tungstenite), binary
                    }
                }
            }
        }
        let _ = timeout(Duration::from_secs(2), ws.send(Message::Close(None))).await;
    })
}

/// A player whose socket is read by a reader task.
struct Target {
    idx: usize,
    user_id: String,
}

/// Authenticates devices `role`-i for i in `range` and opens a socket for each, in parallel
/// batches of `BATCH`. Returns the players that made it, their readers and the error count.
async fn open_sockets(
    ctx: &Ctx,
    role: &str,
    range: Range<usize>,
    shared: &Arc<Shared>,
    stop: &watch::Receiver<bool>,
) -> (Vec<Target>, Vec<JoinHandle<()>>, u64) {
    let (mut targets, mut readers, mut errors) = (Vec::new(), Vec::new(), 0u64);
    let idxs: Vec<usize> = range.collect();
    for chunk in idxs.chunks(BATCH) {
        let opens = chunk.iter().map(|&i| {
            let device = ctx.device(role, i);
            async move {
                let sess = authenticate(ctx, &device).await?;
                let ws = connect(ctx, &sess.token).await?;
                Ok::<_, String>((i, sess.user_id, ws))
            }
        });
        for r in futures_util::future::join_all(opens).await {
            match r {
                Ok((idx, user_id, ws)) => {
                    readers.push(spawn_reader(ws, idx, shared.clone(), stop.clone()));
                    targets.push(Target { idx, user_id });
                }
                Err(e) => {
                    errors += 1;
                    note("open socket", &e);
                }
            }
        }
    }
    (targets, readers, errors)
}

/// Stops the readers of a scenario; returns the sockets lost before that.
async fn stop_readers(
    shared: &Shared,
    stop_tx: watch::Sender<bool>,
    readers: Vec<JoinHandle<()>>,
) -> u64 {
    let lost = shared.lost.load(Ordering::Relaxed);
    shared.stopping.store(true, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let _ = join_within(readers, Duration::from_secs(15)).await;
    lost
}

// ---------------------------------------------------------------------------------------
// A. send / send_online

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Rest,
    Socket,
    /// The admin console's send route: the same notification without Lua.
    Console,
}

/// A console session token (`--console`).
async fn console_token(ctx: &Ctx, console: &str) -> Result<String, String> {
    let (username, password) = &ctx.console_login;
    let url = format!("{console}/v2/console/authenticate");
    let body = json!({ "username": username, "password": password }).to_string();
    let (status, text) = ctx
        .http
        .call("POST", &url, Auth::None, Some(&body), HTTP_TIMEOUT)
        .await?;
    if !is_success(status) {
        return Err(format!("console login: {status} {}", short(&text)));
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("console login: {e}"))?;
    v["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "console login: no token".to_string())
}

/// POST /v2/console/notification: what `loadgen.send` sends, straight to the core.
async fn console_send(
    ctx: &Ctx,
    console: &str,
    token: &str,
    user_id: &str,
    seq: u64,
    persistent: bool,
    start: Instant,
) -> Result<String, String> {
    let body = json!({
        "user_id": user_id,
        "subject": "lg",
        "content": { "seq": seq, "t": start.elapsed().as_micros() as u64 },
        "code": 1,
        "persistent": persistent,
    });
    let url = format!("{console}/v2/console/notification");
    let (status, text) = ctx
        .http
        .call(
            "POST",
            &url,
            Auth::Bearer(token),
            Some(&body.to_string()),
            HTTP_TIMEOUT,
        )
        .await?;
    if !is_success(status) {
        return Err(format!("console send: {status} {}", short(&text)));
    }
    Ok(text)
}

fn send_payload(user_id: &str, seq: u64, persistent: bool, start: Instant) -> String {
    // Written by hand: json!() built a tree per send, on the cores being measured.
    let user_id = Value::from(user_id);
    let t = start.elapsed().as_micros() as u64;
    format!(r#"{{"user_id":{user_id},"seq":{seq},"persistent":{persistent},"t":{t}}}"#)
}

/// What one closed-loop sender does.
struct SenderSpec {
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    targets: Arc<Vec<Target>>,
    persistent: bool,
    transport: Transport,
    device: String,
    start: Instant,
    end: Instant,
}

/// One closed-loop sender; returns (sends answered ok, failed sends).
async fn sender(spec: SenderSpec) -> (u64, u64) {
    let SenderSpec {
        ctx,
        shared,
        targets,
        persistent,
        transport,
        device,
        start,
        end,
    } = spec;
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut sess = match authenticate(&ctx, &device).await {
        Ok(s) => s,
        Err(e) => {
            note("sender authenticate", &e);
            return (0, 1);
        }
    };
    let mut ws = None;
    let mut console = None;
    if transport == Transport::Console {
        let Some(url) = ctx.console.clone() else {
            return (0, 1);
        };
        match console_token(&ctx, &url).await {
            Ok(token) => console = Some((url, token)),
            Err(e) => {
                note("sender console login", &e);
                return (0, 1);
            }
        }
    }
    if transport == Transport::Socket {
        match connect(&ctx, &sess.token).await {
            Ok(s) => ws = Some(s),
            Err(e) => {
                note("sender socket", &e);
                return (0, 1);
            }
        }
    }
    let mut rng = Rng::new();
    for n in 0..MAX_REQUESTS_PER_TASK {
        if Instant::now() >= end {
            break;
        }
        let target = &targets[rng.below(targets.len())];
        let seq = shared.next_seq.fetch_add(1, Ordering::Relaxed);
        let payload = send_payload(&target.user_id, seq, persistent, start);
        if transport == Transport::Rest {
            if let Err(e) = sess.fresh(&ctx).await {
                note("sender re-authenticate", &e);
                failed += 1;
                break;
            }
        }
        lock(&shared.sent).insert(
            seq,
            Sent {
                at: Instant::now(),
                target: target.idx,
                ok: false,
            },
        );
        let result = match (ws.as_mut(), &console) {
            (Some(ws), _) => rpc_socket(ws, n + 1, "loadgen.send", &payload, HTTP_TIMEOUT).await,
            (None, Some((url, token))) => {
                console_send(&ctx, url, token, &target.user_id, seq, persistent, start).await
            }
            (None, None) => {
                rpc_rest(
                    &ctx,
                    "loadgen.send",
                    RpcAuth::Bearer(&sess.token),
                    &payload,
                    HTTP_TIMEOUT,
                )
                .await
            }
        };
        match result {
            Ok(_) => {
                ok += 1;
                if let Some(s) = lock(&shared.sent).get_mut(&seq) {
                    s.ok = true;
                }
            }
            Err(e) => {
                failed += 1;
                note("send", &e);
                if ws.is_some() {
                    break; // the socket's state is unknown now
                }
            }
        }
    }
    if let Some(mut ws) = ws {
        let _ = timeout(Duration::from_secs(2), ws.send(Message::Close(None))).await;
    }
    (ok, failed)
}

/// Waits until every successful send of `lo..hi` has been received, at most STRAGGLER_WAIT.
async fn wait_stragglers(shared: &Shared, lo: u64, hi: u64) {
    let deadline = Instant::now() + STRAGGLER_WAIT;
    loop {
        let pending = {
            let sent = lock(&shared.sent);
            let recv = lock(&shared.recv);
            (lo..hi)
                .filter(|s| sent.get(s).is_some_and(|x| x.ok) && !recv.contains_key(s))
                .count()
        };
        if pending == 0 || Instant::now() >= deadline {
            break;
        }
        sleep(Duration::from_millis(50)).await;
    }
    // A little longer, so a duplicate right behind the first copy is seen too.
    sleep(Duration::from_millis(100)).await;
}

/// One measured run of senders over one transport; prints its line and returns whether clean.
async fn send_phase(
    ctx: &Arc<Ctx>,
    shared: &Arc<Shared>,
    targets: &Arc<Vec<Target>>,
    name: &str,
    persistent: bool,
    transport: Transport,
) -> bool {
    let (over, tag) = match transport {
        Transport::Rest => ("REST", "REST"),
        Transport::Socket => ("socket", "socket"),
        Transport::Console => ("the console route (no Lua)", "console"),
    };
    let label = format!(
        "{name} ({}) over {over}",
        if persistent {
            "persistent"
        } else {
            "non-persistent"
        }
    );
    eprintln!(
        "{label}: {} s with {} clients",
        ctx.duration.as_secs(),
        ctx.clients
    );
    let lo = shared.next_seq.load(Ordering::SeqCst);
    let lost_before = shared.lost.load(Ordering::Relaxed);
    let bad_before = shared.bad_frames.load(Ordering::Relaxed);
    let cpu_before = cpu_mark(ctx);
    let start = Instant::now();
    let end = start + ctx.duration;
    let tasks: Vec<_> = (0..ctx.clients)
        .map(|c| {
            let device = ctx.device(&format!("{name}-{tag}-sender"), c);
            tokio::spawn(sender(SenderSpec {
                ctx: ctx.clone(),
                shared: shared.clone(),
                targets: targets.clone(),
                persistent,
                transport,
                device,
                start,
                end,
            }))
        })
        .collect();
    let (results, task_failures) = join_within(tasks, ctx.duration + SLOW_TIMEOUT).await;
    let elapsed = start.elapsed();
    let hi = shared.next_seq.load(Ordering::SeqCst);
    let rpc_errors = task_failures + results.iter().map(|r| r.1).sum::<u64>();
    wait_stragglers(shared, lo, hi).await;

    let (mut ok, mut delivered, mut missing, mut dups, mut misrouted, mut after_error) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut latencies = Vec::new();
    {
        let sent = lock(&shared.sent);
        let recv = lock(&shared.recv);
        for seq in lo..hi {
            let r = recv.get(&seq);
            let Some(s) = sent.get(&seq) else {
                if r.is_some() {
                    misrouted += 1; // received, never sent by this phase
                }
                continue;
            };
            if let Some(r) = r {
                if r.count > 1 {
                    dups += 1;
                }
                if r.receiver != s.target {
                    misrouted += 1;
                }
            }
            match (s.ok, r) {
                (true, Some(r)) => {
                    ok += 1;
                    delivered += 1;
                    latencies.push(r.first.saturating_duration_since(s.at));
                }
                (true, None) => {
                    ok += 1;
                    missing += 1;
                }
                (false, Some(_)) => after_error += 1,
                (false, None) => {}
            }
        }
    }
    let lost = shared.lost.load(Ordering::Relaxed) - lost_before;
    let bad = shared.bad_frames.load(Ordering::Relaxed) - bad_before;
    let clean = ok > 0
        && rpc_errors == 0
        && missing == 0
        && dups == 0
        && misrouted == 0
        && lost == 0
        && bad == 0;
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "{} {label}: {} clients -> {} sockets, {secs:.1} s: {ok} sends ok ({:.0}/s), \
         {delivered} delivered ({:.0}/s), latency {}; missing {missing}, duplicates {dups}, \
         misrouted {misrouted}, rpc errors {rpc_errors}, delivered-after-error {after_error}, \
         bad frames {bad}, sockets lost {lost}{}",
        status(clean),
        ctx.clients,
        targets.len(),
        ok as f64 / secs,
        delivered as f64 / secs,
        latency_line(&mut latencies),
        cpu_per_op(ctx, cpu_before, ok),
    );
    clean
}

async fn scenario_send(ctx: &Arc<Ctx>, persistent: bool) -> bool {
    let name = if persistent { "send" } else { "send_online" };
    let (shared, _fan_rx) = Shared::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    eprintln!("{name}: opening {} target sockets", ctx.users);
    let t = Instant::now();
    let (targets, readers, open_errors) = open_sockets(
        ctx,
        &format!("{name}-target"),
        0..ctx.users,
        &shared,
        &stop_rx,
    )
    .await;
    eprintln!(
        "{name}: {} sockets open in {:.1} s ({open_errors} errors)",
        targets.len(),
        t.elapsed().as_secs_f64()
    );
    if targets.is_empty() {
        println!("FAIL {name}: no target socket could be opened ({open_errors} errors)");
        stop_readers(&shared, stop_tx, readers).await;
        return false;
    }
    if open_errors > 0 {
        println!(
            "FAIL {name}: {open_errors} of {} target sockets failed to open",
            ctx.users
        );
    }
    // Slow consumers: a second socket for each of the first `--stuck` targets, with a 4 KiB
    // receive buffer, never read. Every send to those players also goes to them.
    let mut stuck = Vec::new();
    for t in targets.iter().take(ctx.stuck) {
        match open_stuck(ctx, &ctx.device(&format!("{name}-target"), t.idx)).await {
            Ok(ws) => stuck.push(ws),
            Err(e) => note("open stuck socket", &e),
        }
    }
    if ctx.stuck > 0 {
        eprintln!("{name}: {} sockets that never read", stuck.len());
    }
    let targets = Arc::new(targets);
    let rest = send_phase(ctx, &shared, &targets, name, persistent, Transport::Rest).await;
    let socket = send_phase(ctx, &shared, &targets, name, persistent, Transport::Socket).await;
    let console = match ctx.console {
        Some(_) => send_phase(ctx, &shared, &targets, name, persistent, Transport::Console).await,
        None => true,
    };
    drop(stuck);
    stop_readers(&shared, stop_tx, readers).await;
    open_errors == 0 && rest && socket && console
}

// ---------------------------------------------------------------------------------------
// B. fanout

async fn scenario_fanout(ctx: &Arc<Ctx>) -> bool {
    let (shared, mut fan_rx) = Shared::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut clean = true;
    let mut targets: Vec<Target> = Vec::new();
    let mut readers = Vec::new();
    let mut tag = 0u64;
    for &k in &ctx.sizes {
        if targets.len() < k {
            eprintln!("fanout: opening sockets {}..{k}", targets.len());
            let t = Instant::now();
            let (more, more_readers, errors) =
                open_sockets(ctx, "fanout", targets.len()..k, &shared, &stop_rx).await;
            targets.extend(more);
            readers.extend(more_readers);
            eprintln!(
                "fanout: {} sockets open ({:.1} s, {errors} errors)",
                targets.len(),
                t.elapsed().as_secs_f64()
            );
            if errors > 0 {
                clean = false;
                println!(
                    "FAIL fanout K={k}: {errors} sockets failed to open (is the hard limit, \
                     `ulimit -Hn`, high enough for server and generator?)"
                );
            }
        }
        let expected = targets.len();
        if expected == 0 {
            clean = false;
            continue;
        }
        // Let the last connections settle before measuring.
        sleep(Duration::from_millis(500)).await;
        let kinds = [false, true].map(|p| std::iter::repeat_n(p, ctx.rounds));
        for persistent in kinds.into_iter().flatten() {
            tag += 1;
            while fan_rx.try_recv().is_ok() {} // stale events of an earlier round
            let kind = if persistent {
                "persistent"
            } else {
                "non-persistent"
            };
            let payload = json!({ "tag": tag, "persistent": persistent }).to_string();
            let server_pid = ctx.pid.map(|p| p.to_string());
            let cpu_before = (
                server_pid.as_deref().and_then(threads_cpu),
                threads_cpu("self"),
            );
            let t0 = Instant::now();
            let rpc = rpc_rest(
                ctx,
                "loadgen.send_all",
                RpcAuth::HttpKey,
                &payload,
                SLOW_TIMEOUT,
            )
            .await;
            let rpc_time = t0.elapsed();
            if let Err(e) = rpc {
                clean = false;
                println!("FAIL fanout K={expected} {kind}: send_all failed: {e}");
                continue;
            }
            let mut seen = HashSet::with_capacity(expected);
            let mut times = Vec::with_capacity(expected);
            let mut dups = 0u64;
            let deadline = t0 + FANOUT_WAIT;
            let mut grace_until: Option<Instant> = None;
            let mut cpu_after = (None, None);
            loop {
                let until = grace_until.unwrap_or(deadline);
                let left = until.saturating_duration_since(Instant::now());
                match timeout(left, fan_rx.recv()).await {
                    Ok(Some((t, idx, at))) if t == tag => {
                        if seen.insert(idx) {
                            times.push(at.saturating_duration_since(t0));
                        } else {
                            dups += 1;
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
                if seen.len() >= expected && grace_until.is_none() {
                    // Everyone has it; listen a little longer for duplicates.
                    grace_until = Some(Instant::now() + Duration::from_millis(300));
                    cpu_after = (
                        server_pid.as_deref().and_then(threads_cpu),
                        threads_cpu("self"),
                    );
                }
            }
            // CPU used from the request until the last socket had it: who the burst cost.
            let cpu = match (cpu_before, cpu_after) {
                ((Some(sb), Some(gb)), (Some(sa), Some(ga))) => format!(
                    "; CPU until the last: server {}, generator {}",
                    ms(sa.saturating_sub(sb)),
                    ms(ga.saturating_sub(gb))
                ),
                _ => String::new(),
            };
            times.sort_unstable();
            let missing = expected.saturating_sub(seen.len());
            let ok = missing == 0 && dups == 0;
            clean &= ok;
            println!(
                "{} fanout K={expected} {kind}: rpc answered in {}, {}/{expected} sockets received: \
                 median {}, last (K-th) {}; missing {missing}, duplicates {dups}{cpu}",
                status(ok),
                ms(rpc_time),
                seen.len(),
                ms(percentile(&times, 0.5)),
                ms(times.last().copied().unwrap_or_default()),
            );
        }
    }
    let lost = stop_readers(&shared, stop_tx, readers).await;
    let bad = shared.bad_frames.load(Ordering::Relaxed);
    if lost > 0 || bad > 0 {
        println!("FAIL fanout: {lost} sockets lost, {bad} bad frames");
        clean = false;
    }
    clean
}

// ---------------------------------------------------------------------------------------
// C. list

async fn scenario_list(ctx: &Arc<Ctx>) -> bool {
    let mut sess = match authenticate(ctx, &ctx.device("list-owner", 0)).await {
        Ok(s) => s,
        Err(e) => {
            println!("FAIL list: cannot authenticate: {e}");
            return false;
        }
    };
    // Fill: 10 calls of 1000.
    eprintln!("list: storing {LIST_TOTAL} notifications");
    let per_call = LIST_TOTAL / LIST_FILL_CALLS;
    let t = Instant::now();
    let mut fill_errors = 0u64;
    for b in 0..LIST_FILL_CALLS {
        let payload =
            json!({ "user_id": sess.user_id, "n": per_call, "start": b * per_call }).to_string();
        match rpc_rest(
            ctx,
            "loadgen.fill",
            RpcAuth::HttpKey,
            &payload,
            SLOW_TIMEOUT,
        )
        .await
        {
            Ok(answer) => {
                let n = serde_json::from_str::<Value>(&answer)
                    .ok()
                    .and_then(|v| as_u64(&v["n"]));
                if n != Some(per_call) {
                    fill_errors += 1;
                    note("fill", &format!("unexpected answer {}", short(&answer)));
                }
            }
            Err(e) => {
                fill_errors += 1;
                note("fill", &e);
            }
        }
    }
    let fill_time = t.elapsed();

    // Page through everything with the cacheable cursor.
    let mut page_errors = 0u64;
    if let Err(e) = sess.fresh(ctx).await {
        println!("FAIL list: cannot re-authenticate: {e}");
        return false;
    }
    let t = Instant::now();
    let (mut total, mut pages, mut id_order, mut seq_order, mut dups) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut last_id: Option<String> = None;
    let mut expect_i = 1u64;
    let mut ids = HashSet::with_capacity(LIST_TOTAL as usize);
    let mut cursor = String::new();
    let max_pages = LIST_TOTAL / LIST_PAGE as u64 + 10;
    for _ in 0..max_pages {
        let (items, next) = match list_page(ctx, &sess.token, LIST_PAGE, &cursor).await {
            Ok(p) => p,
            Err(e) => {
                page_errors += 1;
                note("list page", &e);
                break;
            }
        };
        if items.is_empty() {
            break;
        }
        pages += 1;
        for n in &items {
            total += 1;
            let id = n["id"].as_str().unwrap_or("").to_string();
            if !ids.insert(id.clone()) {
                dups += 1;
            }
            if last_id.as_ref().is_some_and(|prev| id <= *prev) {
                id_order += 1;
            }
            last_id = Some(id);
            let i = n["content"]
                .as_str()
                .and_then(|c| serde_json::from_str::<Value>(c).ok())
                .and_then(|c| as_u64(&c["i"]));
            if i != Some(expect_i) {
                seq_order += 1;
            }
            expect_i = i.unwrap_or(expect_i) + 1;
        }
        if next.is_empty() {
            break;
        }
        cursor = next;
    }
    let page_time = t.elapsed();
    let list_clean = fill_errors == 0
        && page_errors == 0
        && total == LIST_TOTAL
        && id_order == 0
        && seq_order == 0
        && dups == 0;
    println!(
        "{} list: stored {LIST_TOTAL} in {:.2} s ({:.0}/s, {fill_errors} errors); paged {total} in {} \
         over {pages} pages ({:.0} pages/s): id order errors {id_order}, content order errors \
         {seq_order}, duplicate ids {dups}, page errors {page_errors}",
        status(list_clean),
        fill_time.as_secs_f64(),
        LIST_TOTAL as f64 / fill_time.as_secs_f64().max(1e-9),
        ms(page_time),
        pages as f64 / page_time.as_secs_f64().max(1e-9),
    );

    // First page, closed loops.
    eprintln!(
        "list first page: {} s with {} clients",
        ctx.duration.as_secs(),
        ctx.clients
    );
    let device = sess.device.clone();
    let start = Instant::now();
    let end = start + ctx.duration;
    let expect_len = (LIST_PAGE as u64).min(total.max(1)) as usize;
    let cpu_before = cpu_mark(ctx);
    let tasks: Vec<_> = (0..ctx.clients)
        .map(|_| {
            let ctx = ctx.clone();
            let device = device.clone();
            tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::new(), 0u64);
                let mut sess = match authenticate(&ctx, &device).await {
                    Ok(s) => s,
                    Err(e) => {
                        note("list authenticate", &e);
                        return (lat, 1);
                    }
                };
                for _ in 0..MAX_REQUESTS_PER_TASK {
                    if Instant::now() >= end {
                        break;
                    }
                    if let Err(e) = sess.fresh(&ctx).await {
                        note("list re-authenticate", &e);
                        errors += 1;
                        break;
                    }
                    let t = Instant::now();
                    match list_page_len(&ctx, &sess.token, LIST_PAGE).await {
                        Ok(n) if n == expect_len => lat.push(t.elapsed()),
                        Ok(n) => {
                            errors += 1;
                            note("list first page", &format!("{n} items"));
                        }
                        Err(e) => {
                            errors += 1;
                            note("list first page", &e);
                        }
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (results, task_failures) = join_within(tasks, ctx.duration + SLOW_TIMEOUT).await;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let mut errors = task_failures;
    let mut lat = Vec::new();
    for (l, e) in results {
        lat.extend(l);
        errors += e;
    }
    let loop_clean = errors == 0 && !lat.is_empty();
    println!(
        "{} list first page (limit {LIST_PAGE}): {} clients, {secs:.1} s: {} pages ({:.0}/s), \
         latency {}; errors {errors}{}",
        status(loop_clean),
        ctx.clients,
        lat.len(),
        lat.len() as f64 / secs,
        latency_line(&mut lat),
        cpu_per_op(ctx, cpu_before, lat.len() as u64),
    );
    list_clean && loop_clean
}

// ---------------------------------------------------------------------------------------
// D. store

async fn scenario_store(ctx: &Arc<Ctx>) -> bool {
    let sess = match authenticate(ctx, &ctx.device("store-owner", 0)).await {
        Ok(s) => s,
        Err(e) => {
            println!("FAIL store: cannot authenticate: {e}");
            return false;
        }
    };
    let mut clean = true;
    for (rpc, what) in [
        (
            "loadgen.store_single",
            "store single (notification_send x1000)",
        ),
        (
            "loadgen.store_batch",
            "store batch (notifications_send of 1000)",
        ),
    ] {
        eprintln!("{what}: {STORE_CALLS} calls");
        let payload = json!({ "user_id": sess.user_id, "n": STORE_N }).to_string();
        let (mut times, mut errors) = (Vec::new(), 0u64);
        for _ in 0..STORE_CALLS {
            let t = Instant::now();
            match rpc_rest(ctx, rpc, RpcAuth::HttpKey, &payload, SLOW_TIMEOUT).await {
                Ok(answer) => {
                    let elapsed = t.elapsed();
                    let n = serde_json::from_str::<Value>(&answer)
                        .ok()
                        .and_then(|v| as_u64(&v["n"]));
                    if n == Some(STORE_N) {
                        times.push(elapsed);
                    } else {
                        errors += 1;
                        note(rpc, &format!("unexpected answer {}", short(&answer)));
                    }
                }
                Err(e) => {
                    errors += 1;
                    note(rpc, &e);
                }
            }
        }
        times.sort_unstable();
        let rate = |d: Duration| STORE_N as f64 / d.as_secs_f64().max(1e-9);
        let ok = errors == 0 && !times.is_empty();
        clean &= ok;
        let median = percentile(&times, 0.5);
        println!(
            "{} {what}, offline player, {} calls: median {:.0} notifications/s ({} per call), \
             best {:.0}/s, worst {:.0}/s; errors {errors}",
            status(ok),
            times.len(),
            rate(median),
            ms(median),
            rate(times.first().copied().unwrap_or_default()),
            rate(times.last().copied().unwrap_or_default()),
        );
    }
    clean
}

// ---------------------------------------------------------------------------------------
// E. memory

/// Connect/disconnect churn for `--duration` s (a soak): `--clients` tasks each loop over
/// log in, open a socket, ping, an RPC over the socket, close. VmRSS of `--pid` is sampled
/// after a warm-up tenth of the run and at the end; flat memory means no per-connection leak.
async fn scenario_churn(ctx: &Arc<Ctx>) -> bool {
    let Some(pid) = ctx.pid else {
        println!("FAIL churn: needs --pid of the server");
        return false;
    };
    let deadline = Instant::now() + ctx.duration;
    let warm = Instant::now() + ctx.duration / 10;
    let cycles = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start_rss = vm_rss_kib(pid).unwrap_or(0);
    let tasks: Vec<JoinHandle<()>> = (0..ctx.clients)
        .map(|c| {
            let ctx = ctx.clone();
            let (cycles, errors) = (cycles.clone(), errors.clone());
            tokio::spawn(async move {
                for i in 0..MAX_REQUESTS_PER_TASK {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let device = ctx.device("churn", (c * 7919 + i as usize) % ctx.users);
                    let cycle = async {
                        let sess = authenticate(&ctx, &device).await?;
                        let mut ws = connect(&ctx, &sess.token).await?;
                        rpc_socket(&mut ws, 1, "loadgen.echo", "churn", HTTP_TIMEOUT).await?;
                        let _ = ws.close(None).await;
                        Ok::<(), String>(())
                    };
                    match cycle.await {
                        Ok(()) => {
                            cycles.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            note("churn", &e);
                        }
                    }
                }
            })
        })
        .collect();
    sleep(warm.saturating_duration_since(Instant::now())).await;
    let warm_rss = vm_rss_kib(pid).unwrap_or(0);
    for t in tasks {
        let _ = t.await;
    }
    let end_rss = vm_rss_kib(pid).unwrap_or(0);
    sleep(Duration::from_secs(2)).await;
    let idle_rss = vm_rss_kib(pid).unwrap_or(0);
    let (n, e) = (
        cycles.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
    );
    let ok = e == 0 && n > 0;
    println!(
        "{} churn: {} s, {n} cycles (login, socket, RPC, close; {:.0}/s), {e} errors; VmRSS \
         start {start_rss} KiB, after warm-up {warm_rss} KiB, end {end_rss} KiB, 2 s later \
         {idle_rss} KiB ({:+} KiB warm-up to end)",
        if ok { "ok  " } else { "FAIL" },
        ctx.duration.as_secs(),
        n as f64 / ctx.duration.as_secs_f64(),
        end_rss as i64 - warm_rss as i64
    );
    ok
}

fn vm_rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// Logs in players 0..k of `role` in parallel batches: their session tokens, and how many
/// failed (each noted).
async fn log_in_all(ctx: &Ctx, role: &str, k: usize) -> (Vec<String>, u64) {
    let mut tokens = Vec::with_capacity(k);
    let mut errors = 0u64;
    let idxs: Vec<usize> = (0..k).collect();
    for chunk in idxs.chunks(BATCH) {
        let auths = chunk.iter().map(|&i| {
            let device = ctx.device(role, i);
            async move { authenticate(ctx, &device).await }
        });
        for r in futures_util::future::join_all(auths).await {
            match r {
                Ok(sess) => tokens.push(sess.token),
                Err(e) => {
                    errors += 1;
                    note(&format!("{role} authenticate"), &e);
                }
            }
        }
    }
    (tokens, errors)
}

async fn scenario_burst(ctx: &Arc<Ctx>) -> bool {
    let mut clean = true;
    for &k in &ctx.sizes {
        let (tokens, mut errors) = log_in_all(ctx, "burst", k).await;
        let opens = tokens.iter().map(|token| async move {
            let t = Instant::now();
            connect(ctx, token).await.map(|ws| (t.elapsed(), ws))
        });
        let started = Instant::now();
        let mut times = Vec::with_capacity(k);
        let mut sockets = Vec::with_capacity(k);
        for r in futures_util::future::join_all(opens).await {
            match r {
                Ok((took, ws)) => {
                    times.push(took);
                    sockets.push(ws);
                }
                Err(e) => {
                    errors += 1;
                    note("burst socket", &e);
                }
            }
        }
        let all = started.elapsed();
        let late = times
            .iter()
            .filter(|t| **t > Duration::from_millis(900))
            .count();
        clean &= errors == 0;
        println!(
            "{} burst K={k}: {} sockets opened at once in {}: handshake {}; over 900 ms {late}; \
             errors {errors}",
            status(errors == 0),
            times.len(),
            ms(all),
            latency_line(&mut times),
        );
        drop(sockets);
        sleep(Duration::from_secs(1)).await;
    }
    clean
}

async fn scenario_memory(ctx: &Arc<Ctx>) -> bool {
    let Some(pid) = ctx.pid else {
        println!("FAIL memory: needs --pid <server pid>");
        return false;
    };
    let max = ctx.sizes.last().copied().unwrap_or(0);
    // Create every account first, so the measured growth is the sockets'.
    eprintln!("memory: creating {max} accounts");
    let (_, mut errors) = log_in_all(ctx, "memory", max).await;
    sleep(Duration::from_secs(2)).await;
    let base = match vm_rss_kib(pid) {
        Ok(v) => v,
        Err(e) => {
            println!("FAIL memory: {e}");
            return false;
        }
    };
    println!("     memory: 0 sockets ({max} accounts): VmRSS {base} KiB");
    let (shared, _fan_rx) = Shared::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (mut open, mut readers) = (0usize, Vec::new());
    let mut prev = (0usize, base);
    let mut clean = errors == 0;
    for &k in &ctx.sizes {
        let (more, more_readers, errs) =
            open_sockets(ctx, "memory", open..k, &shared, &stop_rx).await;
        open += more.len();
        readers.extend(more_readers);
        errors += errs;
        sleep(Duration::from_secs(2)).await;
        let rss = match vm_rss_kib(pid) {
            Ok(v) => v,
            Err(e) => {
                println!("FAIL memory: {e}");
                clean = false;
                break;
            }
        };
        let per = |kib: u64, base: u64, n: usize| (kib as f64 - base as f64) / n.max(1) as f64;
        let ok = errs == 0;
        clean &= ok;
        println!(
            "{} memory: {open} idle sockets: VmRSS {rss} KiB, {:+} KiB over 0 sockets = {:.1} KiB \
             per socket (this step: {:+} KiB for {} sockets = {:.1} KiB/socket); open errors {errs}",
            status(ok),
            rss as i64 - base as i64,
            per(rss, base, open),
            rss as i64 - prev.1 as i64,
            open - prev.0,
            per(rss, prev.1, open - prev.0),
        );
        prev = (open, rss);
    }
    let lost = stop_readers(&shared, stop_tx, readers).await;
    if lost > 0 || errors > 0 {
        println!("FAIL memory: {lost} sockets lost, {errors} errors");
        clean = false;
    }
    clean
}

// ---------------------------------------------------------------------------------------

#[tokio::main]
async fn main() {
    // Thousands of sockets are thousands of open files; a shell's soft limit is often 1,024.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let ws_base = match loopback_ws_base(args.socket_url.as_deref().unwrap_or(&args.url)) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let ctx = Arc::new(Ctx {
        http: http1::Http::default(),
        url: args.url.clone(),
        ws_base,
        server_key: args.server_key,
        http_key: args.http_key,
        run: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        duration: args.duration,
        clients: args.clients,
        users: args.users,
        pid: args.pid,
        sizes: args.sizes,
        stuck: args.stuck,
        rounds: args.rounds,
        console: args.console,
        console_login: args.console_login,
    });

    let health = format!("{}/healthcheck", ctx.url);
    match ctx
        .http
        .call("GET", &health, Auth::None, None, HTTP_TIMEOUT)
        .await
    {
        Ok((s, _)) if is_success(s) => {}
        Ok((s, body)) => {
            eprintln!("{}/healthcheck answered {s} {}", ctx.url, short(&body));
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("{} is not reachable: {e}", ctx.url);
            std::process::exit(1);
        }
    }
    eprintln!("run {} against {}", ctx.run, ctx.url);

    let scenarios: Vec<&str> = match args.scenario.as_str() {
        "all" => vec!["send", "send_online", "list", "store"],
        s => vec![s],
    };
    let mut clean = true;
    for s in scenarios {
        let ok = match s {
            "send" => scenario_send(&ctx, true).await,
            "send_online" => scenario_send(&ctx, false).await,
            "fanout" => scenario_fanout(&ctx).await,
            "list" => scenario_list(&ctx).await,
            "store" => scenario_store(&ctx).await,
            "memory" => scenario_memory(&ctx).await,
            "churn" => scenario_churn(&ctx).await,
            "burst" => scenario_burst(&ctx).await,
            _ => false,
        };
        clean &= ok;
    }
    let errors = NOTES.load(Ordering::Relaxed);
    if !clean || errors > 0 {
        eprintln!("loadgen: FAILED ({errors} errors noted)");
        std::process::exit(1);
    }
}
