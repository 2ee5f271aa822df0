//! RPC over HTTP: `POST|GET /v2/rpc/{id}` (NAKAMA-SPEC §5.3). Not a gateway route in Nakama,
//! so its errors have their own shapes: canned bodies with a string `"error"` for auth,
//! routing and payload problems, and `{"code","error":{},"message"}` for a function's error.

use std::sync::Arc;

use bytes::Bytes;
use warp::http::header::{AUTHORIZATION, CONTENT_TYPE};
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::auth::basic_username;
use super::error::status_for;
use super::hooks::{http_info, HttpInfo};
use super::{body_limited, query_get, query_pairs, with_ctx, Ctx};
use crate::core::sessions::SessionUser;
use crate::core::Code;

/// POST /v2/rpc/{id}?http_key=&unwrap=   and   GET /v2/rpc/{id}
pub fn route(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = ctx.config.socket.max_request_size_bytes;
    warp::path!("v2" / "rpc" / String)
        .and(warp::post().or(warp::get()).unify())
        .and(warp::method())
        .and(query_pairs())
        .and(warp::header::headers_cloned())
        .and(body_limited(limit))
        .and(http_info())
        .and(with_ctx(ctx))
        .then(handler)
}

/// A canned RPC error body, keys in Nakama's order.
fn canned(status: StatusCode, code: Code, message: &str) -> Response {
    let text = serde_json::to_string(message).unwrap_or_else(|_| "\"\"".into());
    let body = format!(
        "{{\"error\":{text},\"message\":{text},\"code\":{}}}",
        code.as_i32()
    );
    json_response(status, body)
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut res = warp::reply::with_status(body, status).into_response();
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

enum Caller {
    HttpKey,
    User(SessionUser),
}

fn authenticate(
    ctx: &Ctx,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Caller, &'static str> {
    let unauthorized = |msg: &'static str| msg;
    if let Some(key) = query_get(query, "http_key") {
        return if key == ctx.config.runtime.http_key {
            Ok(Caller::HttpKey)
        } else {
            Err(unauthorized("HTTP key invalid"))
        };
    }
    let Some(header) = headers.get(AUTHORIZATION) else {
        return Err(unauthorized("Auth token or HTTP key required"));
    };
    let header = header.to_str().unwrap_or("");
    if header.starts_with("Basic ") {
        return match basic_username(header) {
            Some(key) if key == ctx.config.runtime.http_key => Ok(Caller::HttpKey),
            _ => Err(unauthorized("HTTP key invalid")),
        };
    }
    let token = header.strip_prefix("Bearer ").unwrap_or("");
    ctx.core
        .sessions
        .verify(token)
        .map(Caller::User)
        .map_err(|_| unauthorized("Auth token invalid"))
}

async fn handler(
    id: String,
    method: Method,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
    info: HttpInfo,
    ctx: Arc<Ctx>,
) -> Response {
    let caller = match authenticate(&ctx, &query, &headers) {
        Ok(c) => c,
        Err(msg) => return canned(StatusCode::UNAUTHORIZED, Code::Unauthenticated, msg),
    };
    let id = percent_decode(&id).to_lowercase();
    if !ctx.runtime.has_rpc(&id) {
        return canned(
            StatusCode::NOT_FOUND,
            Code::NotFound,
            "RPC function not found",
        );
    }
    let unwrap = query.iter().any(|(k, _)| k == "unwrap");
    let payload = if method == Method::GET {
        String::new()
    } else if unwrap {
        String::from_utf8_lossy(&body).into_owned()
    } else if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        match serde_json::from_slice::<String>(&body) {
            Ok(p) => p,
            Err(_) => {
                return canned(
                    StatusCode::BAD_REQUEST,
                    Code::InvalidArgument,
                    "json: cannot unmarshal object into Go value of type string",
                )
            }
        }
    };
    let user = match &caller {
        Caller::User(u) => Some(u),
        Caller::HttpKey => None,
    };
    match ctx.runtime.rpc(&id, info.context(user), payload).await {
        Ok(result) if unwrap => {
            let content_type = headers
                .get(CONTENT_TYPE)
                .cloned()
                .unwrap_or_else(|| HeaderValue::from_static("text/plain"));
            let mut res = warp::reply::with_status(result.unwrap_or_default(), StatusCode::OK)
                .into_response();
            res.headers_mut().insert(CONTENT_TYPE, content_type);
            res
        }
        Ok(result) => json_response(
            StatusCode::OK,
            serde_json::json!({ "payload": result.unwrap_or_default() }).to_string(),
        ),
        Err(e) if e.code == Code::NotFound && e.message == "RPC function not found" => {
            canned(StatusCode::NOT_FOUND, Code::NotFound, &e.message)
        }
        Err(e) => json_response(
            status_for(e.code),
            serde_json::json!({ "code": e.code.as_i32(), "error": {}, "message": e.message })
                .to_string(),
        ),
    }
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}
