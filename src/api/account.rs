//! Account and session routes (NAKAMA-SPEC §7): authenticate by device, custom id and email,
//! refresh, logout, and the caller's own account.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::error::ApiError;
use super::hooks::{self, http_info, HttpInfo};
use super::{
    auth, body_limited, decode_body, json_reply, parse_bool_param, query_get, query_pairs,
    with_ctx, Ctx,
};
use crate::core::accounts::{AuthOptions, Authenticated};
use crate::core::sessions::SessionUser;
use crate::core::store::UserRecord;
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
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
struct AccountBody {
    #[serde(skip_serializing_if = "String::is_empty")]
    id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    email: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    password: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    vars: BTreeMap<String, String>,
}

/// An authenticate request in its protojson form, as request hooks see it.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
struct AuthenticateRequest {
    account: AccountBody,
    create: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
}

/// Runs the before-hook of `method` over a typed request.
async fn hooked<T: Serialize + serde::de::DeserializeOwned>(
    ctx: &Arc<Ctx>,
    method: &str,
    caller: (&HttpInfo, Option<&SessionUser>),
    request: T,
) -> Result<(T, serde_json::Value), Rejection> {
    let value = serde_json::to_value(&request).map_err(|e| ApiError::invalid(e.to_string()))?;
    if !ctx.runtime.has_before(method) && !ctx.runtime.has_after(method) {
        return Ok((request, value));
    }
    let value = hooks::before(ctx, method, caller, value).await?;
    let typed =
        serde_json::from_value(value.clone()).map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok((typed, value))
}

#[derive(Serialize)]
struct SessionBody {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    created: bool,
    token: String,
    refresh_token: String,
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
        .and(http_info())
        .and(with_ctx(ctx))
        .and_then(move |query, body, info, ctx| authenticate_handler(kind, query, body, info, ctx))
}

async fn authenticate_handler(
    kind: &'static str,
    query: Vec<(String, String)>,
    body: Bytes,
    info: HttpInfo,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let create = match query_get(&query, "create") {
        Some(v) => parse_bool_param("create", v)?,
        None => true,
    };
    let request = AuthenticateRequest {
        account: decode_body(&body)?,
        create,
        username: query_get(&query, "username").unwrap_or("").to_string(),
    };
    let method = match kind {
        "device" => "AuthenticateDevice",
        "custom" => "AuthenticateCustom",
        _ => "AuthenticateEmail",
    };
    let call = (&info, None);
    let (request, raw) = hooked(&ctx, method, call, request).await?;
    let body = request.account;
    let opts = AuthOptions {
        create: request.create,
        username: request.username,
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
    let reply = SessionBody {
        created: done.created,
        token: done.tokens.token,
        refresh_token: done.tokens.refresh_token,
    };
    if ctx.runtime.has_after(method) {
        let response = serde_json::to_value(&reply).unwrap_or_default();
        hooks::after(&ctx, method, call, response, raw).await;
    }
    Ok(json_reply(&reply))
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
struct RefreshBody {
    token: String,
    /// An empty map is "not given", as in proto3: the token's vars are kept.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    vars: BTreeMap<String, String>,
}

/// POST /v2/account/session/refresh
fn refresh(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = ctx.config.socket.max_request_size_bytes;
    warp::path!("v2" / "account" / "session" / "refresh")
        .and(warp::post())
        .and(auth::server_key(ctx.clone()))
        .and(body_limited(limit))
        .and(http_info())
        .and(with_ctx(ctx))
        .and_then(|body: Bytes, info: HttpInfo, ctx: Arc<Ctx>| async move {
            const METHOD: &str = "SessionRefresh";
            let call = (&info, None);
            let (body, raw): (RefreshBody, _) =
                hooked(&ctx, METHOD, call, decode_body(&body)?).await?;
            let vars = Some(body.vars).filter(|v| !v.is_empty());
            let tokens = ctx.core.accounts.refresh(&body.token, vars).await?;
            let reply = SessionBody {
                created: false,
                token: tokens.token,
                refresh_token: tokens.refresh_token,
            };
            if ctx.runtime.has_after(METHOD) {
                let response = serde_json::to_value(&reply).unwrap_or_default();
                hooks::after(&ctx, METHOD, call, response, raw).await;
            }
            Ok::<_, Rejection>(json_reply(&reply))
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

/// Nakama's `User` message as protojson writes it: empty strings and `online: false` left out.
pub fn wire_user(u: &UserRecord, online: bool) -> serde_json::Map<String, serde_json::Value> {
    let mut wire_user = serde_json::Map::new();
    wire_user.insert("id".into(), u.id.to_string().into());
    put_nonempty(&mut wire_user, "username", &u.username);
    put_nonempty(&mut wire_user, "display_name", &u.display_name);
    put_nonempty(&mut wire_user, "avatar_url", &u.avatar_url);
    put_nonempty(&mut wire_user, "lang_tag", &u.lang_tag);
    put_nonempty(&mut wire_user, "location", &u.location);
    put_nonempty(&mut wire_user, "timezone", &u.timezone);
    put_nonempty(&mut wire_user, "metadata", &u.metadata);
    if online {
        wire_user.insert("online".into(), true.into());
    }
    if u.edge_count > 0 {
        wire_user.insert("edge_count".into(), u.edge_count.into());
    }
    wire_user.insert("create_time".into(), rfc3339_secs(u.create_time).into());
    wire_user.insert("update_time".into(), rfc3339_secs(u.update_time).into());
    wire_user
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
                .account(user.user_id)
                .await
                .map_err(ApiError::from)?;
            let u = &account.user;
            let online = ctx.core.presence.online_among(&[u.id]).await;
            let wire_user = wire_user(u, online.contains(&u.id));
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
