//! Operator endpoints for the Lua modules, guarded by the runtime's http key:
//! `GET /v2/tidings/runtime` (generation, modules, RPCs, last reload and its error) and
//! `POST /v2/tidings/runtime/reload` (reload now, for setups where file events do not arrive).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::{auth, with_ctx, Ctx};
use crate::core::time::rfc3339_secs;
use crate::runtime::ReloadStatus;

pub fn routes(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    status(ctx.clone()).or(reload(ctx)).unify()
}

fn time_text(t: Option<SystemTime>) -> serde_json::Value {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| rfc3339_secs(d.as_secs() as i64).into())
        .unwrap_or(serde_json::Value::Null)
}

fn body(s: &ReloadStatus) -> serde_json::Value {
    json!({
        "generation": s.generation,
        "modules": s.modules,
        "rpcs": s.rpcs,
        "loaded_at": time_text(s.loaded_at),
        "reload_attempts": s.attempts,
        "reload_failures": s.failures,
        "last_attempt_at": time_text(s.last_attempt_at),
        "last_error": s.last_error,
    })
}

/// GET /v2/tidings/runtime
fn status(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v2" / "tidings" / "runtime")
        .and(warp::get())
        .and(auth::http_key(ctx.clone()))
        .and(with_ctx(ctx))
        .map(|ctx: Arc<Ctx>| warp::reply::json(&body(&ctx.runtime.status())).into_response())
}

/// POST /v2/tidings/runtime/reload: 200 with the status when the reload succeeded, 400 with
/// the status (and its `last_error`) when it failed and the old modules keep serving.
fn reload(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v2" / "tidings" / "runtime" / "reload")
        .and(warp::post())
        .and(auth::http_key(ctx.clone()))
        .and(with_ctx(ctx))
        .then(|ctx: Arc<Ctx>| async move {
            let outcome = ctx.runtime.reload("requested over HTTP").await;
            let status = if outcome.is_ok() {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            };
            warp::reply::with_status(warp::reply::json(&body(&ctx.runtime.status())), status)
                .into_response()
        })
}
