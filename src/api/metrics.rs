//! `GET /metrics` in Prometheus' text format, on its own port (`metrics.prometheus_port`,
//! as Nakama serves it), so it can stay inside the cluster network while the API port faces
//! players.
//!
//! The counters and histograms live in `core::metrics` and are bumped where things happen;
//! the gauges whose truth lives elsewhere (open sockets, VM pool, reload generation) are
//! read here, at scrape time, so they can never drift.

use std::convert::Infallible;
use std::sync::Arc;

use warp::http::header::{HeaderValue, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{with_ctx, Ctx};

/// The metrics port's only route; anything else is 404.
pub fn routes(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_ctx(ctx))
        .map(|ctx: Arc<Ctx>| {
            let mut res = render(&ctx).into_response();
            res.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            res
        })
        .or(warp::any().map(|| {
            warp::reply::with_status("not found; try /metrics\n", StatusCode::NOT_FOUND)
                .into_response()
        }))
        .unify()
}

/// Sets the scrape-time gauges, then renders every metric.
pub fn render(ctx: &Ctx) -> String {
    let m = &ctx.core.metrics;
    let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    m.sockets.set(gauge(ctx.core.presence.session_count()));
    let generation = ctx.runtime.current();
    let (threads, idle, queued) = generation.pool_usage();
    m.vm_threads.set(gauge(threads));
    m.vm_busy.set(gauge(threads.saturating_sub(idle)));
    m.vm_queued.set(gauge(queued));
    m.vm_inline.set(gauge(generation.inline_calls()));
    let status = ctx.runtime.status();
    m.generation
        .set(i64::try_from(status.generation).unwrap_or(i64::MAX));
    m.reload_failures
        .set(i64::try_from(status.failures).unwrap_or(i64::MAX));
    m.render()
}
