//! `GET /metrics` in Prometheus' text format, on its own port (`metrics.prometheus_port`,
//! as Nakama serves it), so it can stay inside the cluster network while the API port faces
//! players.
//!
//! The counters and histograms live in `core::metrics` and are bumped where things happen;
//! the gauges whose truth lives elsewhere (open sockets, VM pool, reload generation) are
//! read here, at scrape time, so they can never drift.

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use warp::http::header::{HeaderValue, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use super::Ctx;

/// Binds `address:port` and serves until the returned task is aborted. A port already taken
/// is logged and the server runs without metrics: a scrape target is not worth refusing
/// players over.
pub async fn start(ctx: Arc<Ctx>, address: &str, port: u16) -> Option<tokio::task::JoinHandle<()>> {
    let host = if address.is_empty() {
        "0.0.0.0"
    } else {
        address
    };
    let listener = match tokio::net::TcpListener::bind((host, port)).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%host, port, error = %e, "metrics endpoint disabled: cannot listen (set metrics.prometheus_port, 0 disables)");
            return None;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "Prometheus metrics at /metrics");
    }
    Some(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let ctx = ctx.clone();
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(answer(&ctx, &req)) }
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }))
}

fn answer(ctx: &Ctx, req: &hyper::Request<Incoming>) -> Response {
    let reply = |status: StatusCode, kind: &'static str, body: String| {
        let mut res = warp::reply::with_status(body, status).into_response();
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
        res
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /metrics\n".into(),
        );
    }
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET /metrics\n".into(),
        );
    }
    reply(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        render(ctx),
    )
}

/// Sets the scrape-time gauges, then renders every metric.
pub fn render(ctx: &Ctx) -> String {
    let m = &ctx.core.metrics;
    let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    m.sockets.set(gauge(ctx.core.presence.session_count()));
    let (threads, idle, queued) = ctx.runtime.current().pool_usage();
    m.vm_threads.set(gauge(threads));
    m.vm_busy.set(gauge(threads.saturating_sub(idle)));
    m.vm_queued.set(gauge(queued));
    let status = ctx.runtime.status();
    m.generation
        .set(i64::try_from(status.generation).unwrap_or(i64::MAX));
    m.reload_failures
        .set(i64::try_from(status.failures).unwrap_or(i64::MAX));
    m.render()
}
