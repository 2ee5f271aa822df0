//! The HTTP server loop: hyper connections, `/ws` upgrades handled here, everything else
//! handed to the warp routes.
//!
//! Why not `warp::serve` and `warp::ws()`: warp's WebSocket keeps tungstenite's default
//! 128 KiB read buffer per connection and does not expose the setting. Measured with
//! `examples/loadgen memory` on 2026-11-29: 122–132 KiB of RSS per idle socket through warp.
//! Upgrading with hyper ourselves lets the socket use a 4 KiB read buffer (see `socket.rs`).
//!
//! Around the routes, `compression` inflates gzip and deflate request bodies and compresses
//! answers, as Nakama's gateway does.
//!
//! Shutdown (SIGTERM or SIGINT, see `main.rs`): stop accepting, let every connection finish
//! the request it is serving (an RPC included), close every socket with a close frame once
//! its own RPC, if any, has answered, and wait for all of them up to `shutdown_grace_sec`.
//! The caller then closes the store; every acknowledged write was already committed.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower_service::Service;
use tracing::Instrument;

use super::{compression, routes, socket, Ctx};

/// The peer address of a request, as a request extension (warp's own one is private).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The close reason sockets get at shutdown.
pub const SHUTDOWN_REASON: &str = "server shutting down";

/// Counts connections and sockets still running, so shutdown can wait for them.
#[derive(Default)]
pub struct Live {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Held by one running connection or socket.
pub struct LiveGuard(Arc<Live>);

impl Live {
    pub fn enter(self: &Arc<Self>) -> LiveGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        LiveGuard(self.clone())
    }

    /// Resolves once nothing is running.
    async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Binds `host:port` with the kernel's largest accept queue (`net.core.somaxconn`, as Go's
/// net package and so Nakama use) instead of the 128 `TcpListener::bind` gave: when
/// thousands of players connect at once (a server restart, a match ending), connections past
/// the queue are dropped and their SYN is retried a second later. Three bursts of 5,000
/// connections overflowed a queue of 128 1,158 times (805 SYNs resent); one of 4,096, never.
pub async fn listen(host: &str, port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let backlog = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(4096);
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // As tokio's own bind does on Unix: a restart may bind while old connections linger.
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(backlog)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    }))
}

/// Serves until `shutdown` resolves, then stops accepting and lets open requests finish.
pub async fn run(
    ctx: Arc<Ctx>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let warp_service = warp::service(routes(ctx.clone()));
    let live = Arc::new(Live::default());
    // Tells open connections to finish their current request and close.
    let (closing, closed) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    // A client gets this long for a request's headers; one that trickles them is dropped.
    let read_timeout = Duration::from_millis(ctx.config.socket.read_timeout_ms);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        let warp_service = warp_service.clone();
        let sockets = live.clone();
        let service = service_fn(move |mut req: hyper::Request<Incoming>| {
            let ctx = ctx.clone();
            let mut warp_service = warp_service.clone();
            let sockets = sockets.clone();
            // Every line logged while serving carries the request's id (never its query,
            // which may hold a token or the http key).
            let span = tracing::info_span!(
                "request",
                id = %uuid::Uuid::new_v4().simple(),
                method = %req.method(),
                path = %req.uri().path(),
            );
            async move {
                if req.uri().path() == "/ws" {
                    return Ok::<_, Infallible>(socket::upgrade(req, peer, ctx, sockets));
                }
                req.extensions_mut().insert(Peer(peer));
                let started = std::time::Instant::now();
                let compressed = compression::applies(&req);
                let encoding = compressed
                    .then(|| compression::accepted(req.headers()))
                    .flatten();
                let limit = ctx.config.socket.max_request_size_bytes;
                let res = match compression::inflate_request(req, limit).await {
                    Ok(req) => match warp_service.call(req).await {
                        Ok(res) => res,
                        Err(never) => match never {},
                    },
                    Err(refused) => refused,
                };
                let res = if compressed {
                    compression::answer(res, encoding).await
                } else {
                    res
                };
                tracing::debug!(
                    status = res.status().as_u16(),
                    micros = started.elapsed().as_micros() as u64,
                    "served"
                );
                Ok(res)
            }
            .instrument(span)
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(read_timeout)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut closed = closed.clone();
        let running = live.enter();
        tokio::spawn(async move {
            let _running = running;
            let mut conn = std::pin::pin!(conn);
            let stop = async move {
                let _ = closed.wait_for(|c| *c).await;
            };
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    ctx.core.presence.close_all(SHUTDOWN_REASON);
    let grace = Duration::from_secs(ctx.config.shutdown_grace_sec);
    if tokio::time::timeout(grace, live.idle()).await.is_err() {
        tracing::warn!(
            still_running = live.count.load(Ordering::SeqCst),
            "shutdown grace period over; stopping anyway"
        );
    }
}

/// How long a side-port client (a scraper, a browser) gets for a request's headers.
const SIDE_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `filter` on its own port (the metrics endpoint, the console) until the returned
/// task is aborted. A port that cannot be bound is logged and that side stays off: neither is
/// worth refusing players over.
pub async fn side_port<F>(
    what: &'static str,
    address: &str,
    port: u16,
    filter: F,
) -> Option<tokio::task::JoinHandle<()>>
where
    F: warp::Filter<Extract = (warp::reply::Response,), Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let host = if address.is_empty() {
        "0.0.0.0"
    } else {
        address
    };
    let listener = match listen(host, port).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%host, port, error = %e, "{what} disabled: cannot listen on its port");
            return None;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "{what} listening");
    }
    let service = warp::service(filter);
    Some(tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(a) => a,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let service = service.clone();
            let handler = service_fn(move |mut req: hyper::Request<Incoming>| {
                let mut service = service.clone();
                req.extensions_mut().insert(Peer(peer));
                async move { service.call(req).await }
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(SIDE_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), handler)
                    .await;
            });
        }
    }))
}
