//! The HTTP and WebSocket doors. Routes, wire structs and status codes live here and nowhere
//! else; every handler is a thin translation into one `core` call and back.
//!
//! One filter function per route, joined with `.or()`; shared state comes in through
//! [`with_ctx`]; one [`error::recover`] writes every error. Auth filters come after the path
//! filters so a wrong path reports 404, not 401.

pub mod account;
pub mod admin;
pub mod auth;
pub mod chat;
pub mod compression;
pub mod console;
pub mod error;
pub mod friends;
pub mod groups;
pub mod hooks;
pub mod inbox;
pub mod metrics;
pub mod notifications;
pub mod protobuf;
pub mod reload;
pub mod rpc;
pub mod server;
pub mod socket;
pub mod wire;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use warp::http::header::{HeaderValue, CACHE_CONTROL};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::config::Config;
use crate::core::Core;
use error::ApiError;

/// The OpenAPI document served at `GET /openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What every handler can reach.
pub struct Ctx {
    pub core: Arc<Core>,
    pub runtime: Arc<crate::runtime::Runtime>,
    pub config: Arc<Config>,
}

pub fn with_ctx(ctx: Arc<Ctx>) -> impl Filter<Extract = (Arc<Ctx>,), Error = Infallible> + Clone {
    warp::any().map(move || ctx.clone())
}

/// Every route, with CORS, the no-cache header and the error handler.
pub fn routes(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    // Nakama's `{}`; 503 in Nakama's error shape when this node cannot reach its database,
    // so a load balancer sends players to the nodes that can serve them.
    let health = warp::path("healthcheck")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_ctx(ctx.clone()))
        .and_then(|ctx: Arc<Ctx>| async move {
            ctx.core.health().await.map_err(error::ApiError::from)?;
            Ok::<_, Rejection>(json_reply(&serde_json::json!({})))
        });
    let root = warp::path::end()
        .and(warp::get())
        .map(|| warp::reply().into_response());
    // The OpenAPI 3 description of every route here (tests/it/openapi.rs keeps it true).
    let openapi = warp::path("openapi.json")
        .and(warp::path::end())
        .and(warp::get())
        .map(|| {
            let mut res = warp::reply::with_status(OPENAPI, StatusCode::OK).into_response();
            res.headers_mut().insert(
                warp::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        });

    let cors = warp::cors()
        .allow_any_origin()
        .allow_headers(["authorization", "content-type", "user-agent"])
        .allow_methods(["GET", "HEAD", "POST", "PUT", "DELETE"]);

    // warp tries the routes in this order, so the busiest come first: an RPC behind the
    // others paid for every rejection before it (BENCHMARKS.md, seventh session). No two
    // routes match the same request, so the order changes nothing else.
    rpc::route(ctx.clone())
        .or(notifications::routes(ctx.clone()))
        .unify()
        .or(health)
        .unify()
        .or(root)
        .unify()
        .or(openapi)
        .unify()
        .or(account::routes(ctx.clone()))
        .unify()
        .or(friends::routes(ctx.clone()))
        .unify()
        .or(inbox::routes(ctx.clone()))
        .unify()
        .or(admin::routes(ctx.clone()))
        .unify()
        .or(chat::history_route(ctx.clone()))
        .unify()
        .or(groups::routes(ctx.clone()))
        .unify()
        .or(reload::routes(ctx))
        .unify()
        // Boxing erases the deeply nested filter type: faster builds, and crates that
        // embed the server do not hit the type recursion limit.
        .boxed()
        .with(cors)
        .map(Reply::into_response)
        .recover(error::recover)
        .unify()
        .map(|mut res: Response| {
            // Nakama answers any origin with `*`; warp's CORS echoes the origin instead.
            let origin = warp::http::header::ACCESS_CONTROL_ALLOW_ORIGIN;
            if res.headers().contains_key(origin.clone()) {
                res.headers_mut()
                    .insert(origin, HeaderValue::from_static("*"));
            }
            res.headers_mut().insert(
                CACHE_CONTROL,
                HeaderValue::from_static("no-store, no-cache, must-revalidate"),
            );
            // grpc-gateway's mark on every successful answer (NAKAMA-SPEC §1).
            if res.status().is_success() {
                res.headers_mut().insert(
                    "grpc-metadata-content-type",
                    HeaderValue::from_static("application/grpc"),
                );
            }
            res
        })
}

/// A JSON body with status 200.
pub fn json_reply<T: serde::Serialize>(value: &T) -> Response {
    warp::reply::json(value).into_response()
}

/// A pre-encoded JSON body with status 200.
pub fn raw_json_reply(body: String) -> Response {
    let mut res = warp::reply::with_status(body, StatusCode::OK).into_response();
    res.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// The query string as decoded pairs, repeated keys kept (`?ids=a&ids=b`). No query is empty.
pub fn query_pairs() -> impl Filter<Extract = (Vec<(String, String)>,), Error = Infallible> + Clone
{
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .map(|raw: String| {
            form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
}

/// The first value of `key` in the query, if present.
pub fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Parses a boolean as Go's `strconv.ParseBool` does, with the gateway's error text.
pub fn parse_bool_param(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(ApiError::invalid(format!(
            "parsing field \"{name}\": strconv.ParseBool: parsing \"{value}\": invalid syntax"
        ))),
    }
}

/// The request body, refused past `limit` bytes without reading further.
pub fn body_limited(limit: usize) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::body::stream().and_then(move |stream| async move {
        read_limited(stream, limit)
            .await
            .map_err(warp::reject::custom)
    })
}

async fn read_limited<S, B>(stream: S, limit: usize) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| ApiError::invalid(format!("reading body: {e}")))?;
        if out.len() + chunk.remaining() > limit {
            return Err(ApiError::invalid("http: request body too large"));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(Bytes::from(out))
}

/// Decodes a JSON request body; an empty body is the message's default (all fields unset).
pub fn decode_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(e.to_string()))
}

/// A client's JSON object stored as notification content, keys sorted as Go's encoder writes
/// them (what a Nakama script's content looks like). Maps elsewhere keep insertion order, so
/// replies list their fields in proto order, as protojson does.
pub fn go_json(mut value: serde_json::Value) -> String {
    value.sort_all_objects();
    value.to_string()
}
