//! The machine's floor for the performance issue's scenarios: the building blocks alone, with
//! no Tidings code, measured on the same cores as everything else, so the load generator's
//! figures can be read against what this machine allows today.
//!
//! ```text
//! cargo run --release --example floor -- http_ws [--duration 10] [--clients 8] [--sockets 200]
//! cargo run --release --example floor -- fanout  [--sockets 5000] [--rounds 5]
//! cargo run --release --example floor -- commit  [--duration 10] [--clients 8] [--rows 1000000]
//! ```
//!
//! - `http_ws`: the issue's "HTTP request -> one WebSocket frame to one of 200 sockets, no Lua
//!   and no storage". A bare hyper server (one route, no auth, no JSON) hands each request's
//!   frame to the target socket's task (tokio-tungstenite, 4 KiB buffers) and answers 200.
//!   The clients are as lean as a client gets: `--clients` closed loops writing a prebuilt
//!   HTTP/1.1 request on a keep-alive connection and reading the answer by hand, and one task
//!   per socket reading frames. Reports requests/s, latency from the request to the socket
//!   receiving the frame, and the CPU per request of the server threads and the client
//!   threads (two runtimes in this one process, on the same two cores).
//! - `fanout`: the issue's "fan-out: about 10 us per socket": the same bare server, `--sockets`
//!   sockets, one request that queues a frame for each; time to the last socket and the CPU of
//!   both sides until then, median of `--rounds`.
//! - `commit`: the issue's "SQLite group commit": one writer thread, `--clients` producers
//!   each waiting for its commit, a `--rows` table keyed by user (`WITHOUT ROWID`), WAL,
//!   `synchronous=NORMAL`, passive checkpoints on a second connection. Reports rows/s,
//!   commit latency and the writer's CPU per row.
//!
//! Every loop is bounded by `--duration`; only loopback addresses are used.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc as tmpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: floor <http_ws|fanout|commit> [--duration 10] [--clients 8] \
[--sockets 200] [--rows 1000000] [--rounds 5]";

struct Args {
    mode: String,
    duration: Duration,
    clients: usize,
    sockets: usize,
    rows: u64,
    rounds: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or("missing mode")?;
    if !["http_ws", "fanout", "commit"].contains(&mode.as_str()) {
        return Err(format!("unknown mode {mode:?}"));
    }
    let mut a = Args {
        mode,
        duration: Duration::from_secs(10),
        clients: 8,
        sockets: 200,
        rows: 1_000_000,
        rounds: 5,
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{flag} must be a whole number"))?;
        match flag.as_str() {
            "--duration" if (1..=600).contains(&n) => a.duration = Duration::from_secs(n),
            "--clients" if (1..=256).contains(&n) => a.clients = n as usize,
            "--sockets" if (1..=10_000).contains(&n) => a.sockets = n as usize,
            "--rows" if n <= 10_000_000 => a.rows = n,
            "--rounds" if (1..=100).contains(&n) => a.rounds = n as usize,
            _ => return Err(format!("{flag} {value} is out of range")),
        }
    }
    Ok(a)
}

fn main() {
    // Thousands of sockets are thousands of open files; a shell's soft limit is often 1,024.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let ok = match args.mode.as_str() {
        "commit" => commit(&args),
        mode => match setup(args.sockets) {
            Some(s) if mode == "http_ws" => http_ws(&args, s),
            Some(s) => fanout(&args, s),
            None => false,
        },
    };
    if !ok {
        std::process::exit(1);
    }
}

/// CPU time (ns) of this process's threads whose name starts with `prefix`, from schedstat.
fn threads_cpu(prefix: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut total = 0;
    for task in dir.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += stat
            .split(' ')
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// "p50 X ms p99 Y ms max Z ms" of latencies in microseconds.
fn percentiles(lat: &mut [u64]) -> String {
    if lat.is_empty() {
        return "no samples".into();
    }
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    format!(
        "p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

fn runtime(name: &'static str) -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            std::process::exit(1);
        }
    }
}

// ---------------------------------------------------------------------------------------
// http_ws

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// The server: sockets register on `/ws`'s listener; `POST /send/<socket>/<seq>` queues the
/// frame `<seq>` for that socket, `POST /all/<seq>` for every socket, and both answer 200.
async fn serve(http: TcpListener, ws: TcpListener, sockets: usize) {
    let mut outs: Vec<tmpsc::UnboundedSender<u64>> = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        let Ok((stream, _)) = ws.accept().await else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let (tx, mut rx) = tmpsc::unbounded_channel::<u64>();
        outs.push(tx);
        tokio::spawn(async move {
            let Ok(mut socket) =
                tokio_tungstenite::accept_async_with_config(stream, Some(ws_config())).await
            else {
                return;
            };
            while let Some(seq) = rx.recv().await {
                let frame = format!("{{\"notifications\":{{\"seq\":{seq}}}}}");
                if socket.send(Message::text(frame)).await.is_err() {
                    return;
                }
            }
        });
    }
    let outs = Arc::new(outs);
    while let Ok((stream, _)) = http.accept().await {
        let _ = stream.set_nodelay(true);
        let outs = outs.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                let mut parts = req.uri().path().split('/').skip(1);
                let route = parts.next().unwrap_or("");
                let to = parts.next().and_then(|v| v.parse::<usize>().ok());
                let seq = parts.next().and_then(|v| v.parse::<u64>().ok());
                let status = match (route, to, seq) {
                    (_, Some(i), Some(seq)) if route == "send" => match outs.get(i) {
                        Some(out) if out.send(seq).is_ok() => 200,
                        _ => 404,
                    },
                    // POST /all/<seq>/ : the frame to every socket.
                    (_, Some(seq), None) if route == "all" => {
                        for out in outs.iter() {
                            let _ = out.send(seq as u64);
                        }
                        200
                    }
                    _ => 404,
                };
                let mut res = hyper::Response::new(String::new());
                *res.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
                async move { Ok::<_, Infallible>(res) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Send instants (ns since the start) by sequence number, and who received what.
struct Board {
    start: Instant,
    sent_at: Vec<AtomicU64>,
    received: AtomicU64,
    /// When the latest frame arrived (ns since `start`).
    last_ns: AtomicU64,
    wrong: AtomicU64,
    latencies: Mutex<Vec<u64>>,
    stop: AtomicBool,
}

/// Reads one HTTP/1.1 answer on a keep-alive connection; true when it was a 200.
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
            let ok = head.starts_with("HTTP/1.1 200");
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            // The server answers with an empty body; anything longer is read and dropped.
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(ok);
        }
        if buf.len() > 64 * 1024 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Connects `sockets` sockets in order (socket i is the server's i-th), each read by its own
/// task that records every frame's latency on `board`.
async fn open_readers(
    ws_addr: std::net::SocketAddr,
    sockets: usize,
    board: &Arc<Board>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    let mut readers = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        let url = format!("ws://{ws_addr}/");
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true)
                .await
                .map_err(|e| format!("socket: {e}"))?;
        let board = board.clone();
        readers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let msg =
                    match tokio::time::timeout(Duration::from_millis(500), socket.next()).await {
                        Ok(Some(Ok(msg))) => msg,
                        Ok(_) => break,
                        // Quiet: done once the senders have stopped.
                        Err(_) if board.stop.load(Ordering::Relaxed) => break,
                        Err(_) => continue,
                    };
                let text = msg.to_text().unwrap_or("");
                let seq = text
                    .rsplit(':')
                    .next()
                    .and_then(|v| v.trim_end_matches('}').parse::<usize>().ok());
                match seq.and_then(|s| board.sent_at.get(s)) {
                    Some(at) => {
                        let now = board.start.elapsed().as_nanos() as u64;
                        mine.push(now.saturating_sub(at.load(Ordering::Relaxed)) / 1000);
                        board.last_ns.fetch_max(now, Ordering::Relaxed);
                        board.received.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        board.wrong.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if let Ok(mut all) = board.latencies.lock() {
                all.extend(mine);
            }
        }));
    }
    Ok(readers)
}

/// The server's and the clients' runtimes, the server started for `sockets` sockets, and its
/// HTTP and WebSocket addresses.
struct Setup {
    server: tokio::runtime::Runtime,
    client: tokio::runtime::Runtime,
    http_addr: std::net::SocketAddr,
    ws_addr: std::net::SocketAddr,
}

fn setup(sockets: usize) -> Option<Setup> {
    let server = runtime("floor-srv");
    let client = runtime("floor-cli");
    let listeners = server.block_on(async {
        Ok::<_, std::io::Error>((
            TcpListener::bind("127.0.0.1:0").await?,
            TcpListener::bind("127.0.0.1:0").await?,
        ))
    });
    let (http, ws) = match listeners {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen: {e}");
            return None;
        }
    };
    let (http_addr, ws_addr) = (http.local_addr().ok()?, ws.local_addr().ok()?);
    server.spawn(serve(http, ws, sockets));
    Some(Setup {
        server,
        client,
        http_addr,
        ws_addr,
    })
}

fn new_board(capacity: usize) -> Arc<Board> {
    Arc::new(Board {
        start: Instant::now(),
        sent_at: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
        received: AtomicU64::new(0),
        last_ns: AtomicU64::new(0),
        wrong: AtomicU64::new(0),
        latencies: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    })
}

fn http_ws(args: &Args, setup: Setup) -> bool {
    let sockets = args.sockets;
    let Setup {
        server,
        client,
        http_addr,
        ws_addr,
    } = setup;

    // At most 200,000 requests a second for the whole run: the sequence space is bounded.
    let capacity = (args.duration.as_secs() as usize + 1) * 200_000;
    let board = new_board(capacity);
    let next_seq = Arc::new(AtomicU64::new(1));
    let clients = args.clients;
    let duration = args.duration;
    let shared = board.clone();
    let result = client.block_on(async move {
        let board = shared;
        let readers = open_readers(ws_addr, sockets, &board).await?;
        let cpu = (threads_cpu("floor-srv"), threads_cpu("floor-cli"));
        let begin = Instant::now();
        let end = begin + duration;
        let mut senders = Vec::new();
        for c in 0..clients {
            let board = board.clone();
            let next_seq = next_seq.clone();
            senders.push(tokio::spawn(async move {
                let mut stream = TcpStream::connect(http_addr).await?;
                stream.set_nodelay(true)?;
                let mut buf = Vec::with_capacity(1024);
                let (mut ok, mut failed) = (0u64, 0u64);
                let mut target = c * 7919;
                while Instant::now() < end {
                    let seq = next_seq.fetch_add(1, Ordering::Relaxed) as usize;
                    if seq >= board.sent_at.len() {
                        break;
                    }
                    target = (target + 7919) % sockets;
                    let req = format!(
                        "POST /send/{target}/{seq} HTTP/1.1\r\nHost: floor\r\nContent-Length: 0\r\n\r\n"
                    );
                    board.sent_at[seq]
                        .store(board.start.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    stream.write_all(req.as_bytes()).await?;
                    if read_answer(&mut stream, &mut buf).await? {
                        ok += 1;
                    } else {
                        failed += 1;
                    }
                }
                Ok::<_, std::io::Error>((ok, failed))
            }));
        }
        let (mut ok, mut failed) = (0u64, 0u64);
        for s in senders {
            match s.await {
                Ok(Ok((o, f))) => {
                    ok += o;
                    failed += f;
                }
                Ok(Err(e)) => return Err(format!("sender: {e}")),
                Err(e) => return Err(format!("sender task: {e}")),
            }
        }
        let elapsed = begin.elapsed();
        let cpu_after = (threads_cpu("floor-srv"), threads_cpu("floor-cli"));
        board.stop.store(true, Ordering::Relaxed);
        for r in readers {
            let _ = r.await;
        }
        Ok((ok, failed, elapsed, cpu, cpu_after))
    });
    let (ok, failed, elapsed, cpu, cpu_after) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("http_ws: {e}");
            return false;
        }
    };
    let received = board.received.load(Ordering::Relaxed);
    let wrong = board.wrong.load(Ordering::Relaxed);
    let mut lat = board
        .latencies
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / 1000.0 / ok.max(1) as f64;
    let clean = ok > 0 && failed == 0 && wrong == 0 && received == ok;
    println!(
        "{} http_ws: {} clients -> {} sockets, {:.1} s: {ok} requests ({:.0}/s), {received} \
         frames received, latency {}; failed {failed}, unknown frames {wrong}; CPU per request: \
         server {:.1} us, clients {:.1} us",
        if clean { "ok  " } else { "FAIL" },
        args.clients,
        sockets,
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64(),
        percentiles(&mut lat),
        per(cpu.0, cpu_after.0),
        per(cpu.1, cpu_after.1),
    );
    drop(client);
    server.shutdown_background();
    clean
}

// ---------------------------------------------------------------------------------------
// fanout

/// `--rounds` times: one request makes the server queue a frame for each of `--sockets`
/// sockets; time from the request to the last socket receiving it, and the CPU both sides
/// used until then.
fn fanout(args: &Args, setup: Setup) -> bool {
    let sockets = args.sockets;
    let (client, http_addr, ws_addr) = (&setup.client, setup.http_addr, setup.ws_addr);
    let board = new_board(args.rounds + 1);
    let rounds = args.rounds;
    let shared = board.clone();
    let result = client.block_on(async move {
        let board = shared;
        let readers = open_readers(ws_addr, sockets, &board).await?;
        let mut stream = TcpStream::connect(http_addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        for round in 1..=rounds {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let cpu = (threads_cpu("floor-srv"), threads_cpu("floor-cli"));
            let target = (round * sockets) as u64;
            let at = board.start.elapsed().as_nanos() as u64;
            board.sent_at[round].store(at, Ordering::Relaxed);
            let req =
                format!("POST /all/{round} HTTP/1.1\r\nHost: floor\r\nContent-Length: 0\r\n\r\n");
            stream
                .write_all(req.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            if !read_answer(&mut stream, &mut buf)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err("the fan-out request failed".to_string());
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while board.received.load(Ordering::Relaxed) < target {
                if Instant::now() > deadline {
                    return Err(format!("round {round}: not every socket had the frame"));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let cpu_after = (threads_cpu("floor-srv"), threads_cpu("floor-cli"));
            let last = board.last_ns.load(Ordering::Relaxed).saturating_sub(at);
            lines.push((last, cpu_after.0 - cpu.0, cpu_after.1 - cpu.1));
        }
        board.stop.store(true, Ordering::Relaxed);
        for r in readers {
            let _ = r.await;
        }
        Ok::<_, String>(lines)
    });
    let mut lines = match result {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fanout: {e}");
            return false;
        }
    };
    lines.sort_unstable();
    let Setup { server, client, .. } = setup;
    let ms = |ns: u64| ns as f64 / 1e6;
    let (last, srv, cli) = lines[lines.len() / 2];
    println!(
        "ok   fanout: {sockets} sockets, {rounds} rounds: last socket median {:.2} ms (fastest \
         {:.2}, slowest {:.2}); in the median round, CPU until the last socket: server {:.2} ms, \
         clients {:.2} ms",
        ms(last),
        ms(lines[0].0),
        ms(lines[lines.len() - 1].0),
        ms(srv),
        ms(cli),
    );
    drop(client);
    server.shutdown_background();
    board.wrong.load(Ordering::Relaxed) == 0
}

// ---------------------------------------------------------------------------------------
// commit

type Reply = mpsc::Sender<()>;

fn commit(args: &Args) -> bool {
    match commit_run(args) {
        Ok(clean) => clean,
        Err(e) => {
            eprintln!("commit: {e}");
            false
        }
    }
}

fn commit_run(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("floor.sqlite3");
    let writer = rusqlite::Connection::open(&path)?;
    writer.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE n (user_id BLOB, create_time INTEGER, id BLOB, content TEXT,
                         PRIMARY KEY (user_id, create_time, id)) WITHOUT ROWID;",
    )?;
    eprintln!("commit: filling {} rows", args.rows);
    {
        let tx = writer.unchecked_transaction()?;
        let mut stmt = tx.prepare("INSERT INTO n VALUES (?1, ?2, ?3, '{\"seq\":1}')")?;
        for i in 0..args.rows {
            let user = uuid::Uuid::from_u128((i % 200) as u128).as_bytes().to_vec();
            stmt.execute(rusqlite::params![
                user,
                i as i64,
                uuid::Uuid::now_v7().as_bytes()
            ])?;
        }
        drop(stmt);
        tx.commit()?;
    }
    writer.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;

    let checkpointer = rusqlite::Connection::open(&path)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_ckpt = stop.clone();
    let ckpt = std::thread::Builder::new()
        .name("floor-ckpt".into())
        .spawn(move || {
            while !stop_ckpt.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                let _ = checkpointer.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
            }
        })?;
    let (tx, rx) = mpsc::channel::<(u64, Reply)>();
    let writer_thread = std::thread::Builder::new()
        .name("floor-writer".into())
        .spawn(move || -> rusqlite::Result<u64> {
            let mut commits = 0;
            let mut t = 10_000_000i64;
            while let Ok(first) = rx.recv() {
                let mut jobs = VecDeque::from([first]);
                while let Ok(more) = rx.try_recv() {
                    jobs.push_back(more);
                }
                writer.execute_batch("BEGIN IMMEDIATE")?;
                {
                    let mut stmt = writer
                        .prepare_cached("INSERT INTO n VALUES (?1, ?2, ?3, '{\"seq\":1}')")?;
                    for (user, _) in &jobs {
                        t += 1;
                        let user = uuid::Uuid::from_u128(*user as u128).as_bytes().to_vec();
                        stmt.execute(rusqlite::params![user, t, uuid::Uuid::now_v7().as_bytes()])?;
                    }
                }
                writer.execute_batch("COMMIT")?;
                commits += 1;
                for (_, reply) in jobs {
                    let _ = reply.send(());
                }
            }
            Ok(commits)
        })?;

    let cpu = threads_cpu("floor-writer");
    let begin = Instant::now();
    let end = begin + args.duration;
    let producers: Vec<_> = (0..args.clients)
        .map(|c| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut user = c as u64;
                while Instant::now() < end {
                    user = (user + 7919) % 200;
                    let (reply, wait) = mpsc::channel();
                    let at = Instant::now();
                    if tx.send((user, reply)).is_err() || wait.recv().is_err() {
                        break;
                    }
                    lat.push(at.elapsed().as_micros() as u64);
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for p in producers {
        lat.extend(p.join().unwrap_or_default());
    }
    let elapsed = begin.elapsed();
    // Read while the writer still runs (it stops when the last sender is dropped).
    let writer_cpu = threads_cpu("floor-writer").saturating_sub(cpu);
    drop(tx);
    let commits = writer_thread.join().map_err(|_| "the writer panicked")??;
    stop.store(true, Ordering::Relaxed);
    let _ = ckpt.join();
    let rows = lat.len() as u64;
    println!(
        "ok   commit: {} producers, {}-row table, {:.1} s: {rows} rows ({:.0}/s) in {commits} \
         commits, commit latency {}; writer CPU {:.1} us per row",
        args.clients,
        args.rows,
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64(),
        percentiles(&mut lat),
        writer_cpu as f64 / 1000.0 / rows.max(1) as f64,
    );
    Ok(rows > 0)
}
