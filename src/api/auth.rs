//! Who is calling: the server key (HTTP Basic, for authenticate and refresh) or a session
//! token (Bearer, for everything else). Messages are Nakama's (NAKAMA-SPEC §1.3).

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use warp::{Filter, Rejection};

use super::error::ApiError;
use super::Ctx;
use crate::core::sessions::SessionUser;

/// Requires `Authorization: Basic base64(<server_key>:<anything>)`.
pub fn server_key(ctx: Arc<Ctx>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and_then(move |header: Option<String>| {
            let ctx = ctx.clone();
            async move {
                let header =
                    header.ok_or_else(|| ApiError::unauthenticated("Server key required"))?;
                match basic_username(&header) {
                    Some(user) if user == ctx.config.socket.server_key => Ok(()),
                    _ => Err(Rejection::from(ApiError::unauthenticated(
                        "Server key invalid",
                    ))),
                }
            }
        })
        .untuple_one()
}

/// The username of a Basic auth header.
pub fn basic_username(header: &str) -> Option<String> {
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, _) = text.split_once(':')?;
    Some(user.to_string())
}

/// Requires `Authorization: Bearer <session token>` and yields the session's user.
pub fn session(ctx: Arc<Ctx>) -> impl Filter<Extract = (SessionUser,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization").and_then(move |header: Option<String>| {
        let ctx = ctx.clone();
        async move {
            let header = header.ok_or_else(|| ApiError::unauthenticated("Auth token required"))?;
            let token = header
                .strip_prefix("Bearer ")
                .ok_or_else(|| ApiError::unauthenticated("Auth token invalid"))?;
            ctx.core
                .sessions
                .verify(token)
                .map_err(|e| Rejection::from(ApiError::from(e)))
        }
    })
}

/// Requires the runtime's http key, as `?http_key=` or as the username of Basic auth: the
/// server-to-server credential, for operator endpoints.
pub fn http_key(ctx: Arc<Ctx>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    super::query_pairs()
        .and(warp::header::optional::<String>("authorization"))
        .and_then(
            move |query: Vec<(String, String)>, header: Option<String>| {
                let ctx = ctx.clone();
                async move {
                    let given = super::query_get(&query, "http_key")
                        .map(str::to_string)
                        .or_else(|| header.as_deref().and_then(basic_username));
                    match given {
                        Some(key) if key == ctx.config.runtime.http_key => Ok(()),
                        Some(_) => Err(Rejection::from(ApiError::unauthenticated(
                            "HTTP key invalid",
                        ))),
                        None => Err(Rejection::from(ApiError::unauthenticated(
                            "HTTP key required",
                        ))),
                    }
                }
            },
        )
        .untuple_one()
}
