//! Account and session routes (NAKAMA-SPEC §7): authenticate by device, custom id and email,
//! refresh, logout, and the caller's own account.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::error::ApiError;
use super::{
    auth, body_limited, decode_body, json_reply, parse_bool_param, query_get, query_pairs,
    with_ctx, Ctx,
};
use crate::core::accounts::{AuthOptions, Authenticated};
use crate::core::sessions::{SessionUser, Tokens};
use crate::core::time::rfc3339_secs;

pub fn routes(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    authenticate(ctx.clone(), "device")
        .or(authenticate(ctx.clone(), "custom"))
        .unify()
        .or(authenticate(ctx.clone(), "email"))
        .unify()
        .or(refresh(ctx.clone()))
        .unify()
        .or(logout(ctx.clone()))
        .unify()
        .or(account(ctx))
        .unify()
}

/// The `account` body of every authenticate call; only the fields its kind uses are read.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AccountBody {
    id: String,
    email: String,
    password: String,
    vars: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct SessionBody {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    created: bool,
    token: String,
    refresh_token: String,
}

fn session_reply(tokens: Tokens, created: bool) -> Response {
    json_reply(&SessionBody {
        created,
        token: tokens.token,
        refresh_token: tokens.refresh_token,
    })
}

/// POST /v2/account/authenticate/{device|custom|email}?create=&username=
fn authenticate(
    ctx: Arc<Ctx>,
    kind: &'static str,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = ctx.config.socket.max_request_size_bytes;
    warp::path("v2")
        .and(warp::path("account"))
        .and(warp::path("authenticate"))
        .and(warp::path(kind))
        .and(warp::path::end())
        .and(warp::post())
        .and(auth::server_key(ctx.clone()))
        .and(query_pairs())
        .and(body_limited(limit))
        .and(with_ctx(ctx))
        .and_then(
            move |query: Vec<(String, String)>, body: Bytes, ctx: Arc<Ctx>| async move {
                let create = match query_get(&query, "create") {
                    Some(v) => parse_bool_param("create", v)?,
                    None => true,
                };
                let body: AccountBody = decode_body(&body)?;
                let opts = AuthOptions {
                    create,
                    username: query_get(&query, "username").unwrap_or("").to_string(),
                    vars: body.vars,
                };
                let accounts = &ctx.core.accounts;
                let done: Authenticated = match kind {
                    "device" => accounts.authenticate_device(&body.id, opts).await,
                    "custom" => accounts.authenticate_custom(&body.id, opts).await,
                    _ => {
                        accounts
                            .authenticate_email(&body.email, &body.password, opts)
                            .await
                    }
                }?;
                Ok::<_, Rejection>(session_reply(done.tokens, done.created))
            },
        )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RefreshBody {
    token: String,
    vars: Option<BTreeMap<String, String>>,
}

/// POST /v2/account/session/refresh
fn refresh(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = ctx.config.socket.max_request_size_bytes;
    warp::path!("v2" / "account" / "session" / "refresh")
        .and(warp::post())
        .and(auth::server_key(ctx.clone()))
        .and(body_limited(limit))
        .and(with_ctx(ctx))
        .and_then(|body: Bytes, ctx: Arc<Ctx>| async move {
            let body: RefreshBody = decode_body(&body)?;
            let tokens = ctx.core.accounts.refresh(&body.token, body.vars).await?;
            Ok::<_, Rejection>(session_reply(tokens, false))
        })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LogoutBody {
    token: String,
    refresh_token: String,
}

/// POST /v2/session/logout
fn logout(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = ctx.config.socket.max_request_size_bytes;
    warp::path!("v2" / "session" / "logout")
        .and(warp::post())
        .and(auth::session(ctx.clone()))
        .and(body_limited(limit))
        .and(with_ctx(ctx))
        .and_then(|user: SessionUser, body: Bytes, ctx: Arc<Ctx>| async move {
            let body: LogoutBody = decode_body(&body)?;
            ctx.core
                .sessions
                .logout(&user, Some(&body.token), Some(&body.refresh_token))
                .await?;
            Ok::<_, Rejection>(json_reply(&serde_json::json!({})))
        })
}

fn put_nonempty(map: &mut serde_json::Map<String, serde_json::Value>, key: &str, value: &str) {
    if !value.is_empty() {
        map.insert(key.into(), value.into());
    }
}

/// GET /v2/account
fn account(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v2" / "account")
        .and(warp::get())
        .and(auth::session(ctx.clone()))
        .and(with_ctx(ctx))
        .and_then(|user: SessionUser, ctx: Arc<Ctx>| async move {
            let account = ctx
                .core
                .accounts
                .account(&user)
                .await
                .map_err(ApiError::from)?;
            let u = &account.user;
            let mut wire_user = serde_json::Map::new();
            wire_user.insert("id".into(), u.id.to_string().into());
            put_nonempty(&mut wire_user, "username", &u.username);
            put_nonempty(&mut wire_user, "display_name", &u.display_name);
            put_nonempty(&mut wire_user, "avatar_url", &u.avatar_url);
            put_nonempty(&mut wire_user, "lang_tag", &u.lang_tag);
            put_nonempty(&mut wire_user, "location", &u.location);
            put_nonempty(&mut wire_user, "timezone", &u.timezone);
            put_nonempty(&mut wire_user, "metadata", &u.metadata);
            if ctx.core.presence.is_online(u.id) {
                wire_user.insert("online".into(), true.into());
            }
            wire_user.insert("create_time".into(), rfc3339_secs(u.create_time).into());
            wire_user.insert("update_time".into(), rfc3339_secs(u.update_time).into());
            let mut body = serde_json::Map::new();
            body.insert("user".into(), wire_user.into());
            body.insert("wallet".into(), "{}".into());
            put_nonempty(&mut body, "email", u.email.as_deref().unwrap_or(""));
            if !account.devices.is_empty() {
                let devices: Vec<_> = account
                    .devices
                    .iter()
                    .map(|d| serde_json::json!({ "id": d }))
                    .collect();
                body.insert("devices".into(), devices.into());
            }
            put_nonempty(&mut body, "custom_id", u.custom_id.as_deref().unwrap_or(""));
            if u.disable_time > 0 {
                body.insert("disable_time".into(), rfc3339_secs(u.disable_time).into());
            }
            Ok::<_, Rejection>(json_reply(&serde_json::Value::Object(body)))
        })
}
