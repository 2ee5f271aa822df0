//! Request hooks around REST calls (`nk.register_req_before/after`) and the HTTP side of a
//! call's Lua context. A before-hook sees the request in its protojson form and may rewrite it
//! or return nil to refuse the call (404 "Requested resource was not found."); an after-hook
//! sees the response and the request, and its errors are only logged.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use warp::http::HeaderMap;
use warp::Filter;

use super::error::ApiError;
use super::{query_pairs, Ctx};
use crate::core::sessions::SessionUser;
use crate::core::Code;
use crate::runtime::CallContext;

/// What an HTTP request tells a script about its caller. Kept raw and converted only when a
/// script actually runs, so requests without hooks pay nothing for it.
#[derive(Debug, Clone, Default)]
pub struct HttpInfo {
    headers: HeaderMap,
    query: Vec<(String, String)>,
    addr: Option<SocketAddr>,
}

fn group(pairs: impl Iterator<Item = (String, String)>) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in pairs {
        match out.iter_mut().find(|(name, _)| *name == k) {
            Some((_, values)) => values.push(v),
            None => out.push((k, vec![v])),
        }
    }
    out
}

/// Go's canonical form of a header name (`content-type` -> `Content-Type`), which is how
/// Nakama hands headers to scripts.
fn canonical_header(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

/// Captures the headers, query parameters and peer address of a request.
pub fn http_info() -> impl Filter<Extract = (HttpInfo,), Error = Infallible> + Clone {
    warp::header::headers_cloned()
        .and(query_pairs())
        .and(warp::ext::optional::<super::server::Peer>())
        .map(
            |headers: HeaderMap,
             query: Vec<(String, String)>,
             peer: Option<super::server::Peer>| {
                HttpInfo {
                    headers,
                    query,
                    addr: peer.map(|p| p.0),
                }
            },
        )
}

impl HttpInfo {
    /// The Lua context for this request, with the caller's session if any: all headers but
    /// Grpc-Timeout, all query parameters but `http_key`.
    pub fn context(&self, user: Option<&SessionUser>) -> CallContext {
        let headers = group(
            self.headers
                .iter()
                .filter(|(name, _)| *name != "grpc-timeout")
                .map(|(name, value)| {
                    (
                        canonical_header(name.as_str()),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                }),
        );
        let query_params = group(self.query.iter().filter(|(k, _)| k != "http_key").cloned());
        CallContext {
            user_id: user.map(|u| u.user_id),
            username: user.map(|u| u.username.clone()),
            vars: user.map(|u| u.vars.clone()).unwrap_or_default(),
            session_exp: user.map(|u| u.expires_at),
            session_id: None,
            lang: None,
            headers,
            query_params,
            client_ip: self.addr.map(|a| a.ip().to_string()),
            client_port: self.addr.map(|a| a.port().to_string()),
        }
    }
}

/// Runs the before-hook for `method` if a module registered one.
pub async fn before(
    ctx: &Arc<Ctx>,
    method: &str,
    caller: (&HttpInfo, Option<&SessionUser>),
    request: Value,
) -> Result<Value, ApiError> {
    if !ctx.runtime.has_before(method) {
        return Ok(request);
    }
    let call = caller.0.context(caller.1);
    match ctx.runtime.before(method, call, request).await {
        Ok(Some(request)) => Ok(request),
        Ok(None) => Err(ApiError::new(
            Code::NotFound,
            "Requested resource was not found.",
        )),
        Err(e) => Err(ApiError::new(e.code, e.message)),
    }
}

/// Runs the after-hook for `method` if a module registered one.
pub async fn after(
    ctx: &Arc<Ctx>,
    method: &str,
    caller: (&HttpInfo, Option<&SessionUser>),
    response: Value,
    request: Value,
) {
    if ctx.runtime.has_after(method) {
        let call = caller.0.context(caller.1);
        ctx.runtime.after(method, call, response, request).await;
    }
}
