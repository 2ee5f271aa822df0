//! The admin console: a small web page and the JSON routes it calls, on their own port
//! (`console.address`/`console.port`, Nakama's 7351) behind `console.username`/`password`.
//!
//! The page (`console/index.html`, `console.js`, `console.css`) is embedded in the binary and
//! uses no framework: one form per task, plain tables, `fetch`. It logs in with
//! `POST /v2/console/authenticate` (Nakama's route) and keeps the returned token in session
//! storage; every other route takes that token as `Authorization: Bearer`, or the console
//! login itself as HTTP Basic (for curl). Tokens are HS256 JWTs signed with
//! `console.signing_key`, so they cannot be mistaken for player session tokens.
//!
//! Every action is one core call, the same one the REST API and the Lua runtime make:
//! search users, one user's inbox with read state, send (to one user or everyone,
//! persistent or not), delete, and the live view (sockets, nodes, the runtime's modules,
//! generation and last reload error).

use std::convert::Infallible;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;
use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::error::ApiError;
use super::inbox::item_json;
use super::{
    body_limited, decode_body, go_json, json_reply, query_get, query_pairs, with_ctx, Ctx,
};
use crate::core::notifications::NewNotification;
use crate::core::store::InboxFilter;
use crate::core::time::{now_micros, rfc3339_secs};

const INDEX_HTML: &str = include_str!("console/index.html");
const CONSOLE_JS: &str = include_str!("console/console.js");
const CONSOLE_CSS: &str = include_str!("console/console.css");

/// Largest console request body (a notification's content is the big part).
const MAX_BODY: usize = 64 * 1024;
/// Most sockets the live view lists.
const MAX_SOCKETS_LISTED: usize = 200;

#[derive(Serialize, Deserialize)]
struct Claims {
    /// The console username.
    usr: String,
    exp: i64,
}

/// Every console route, with the error handler; unknown paths are 404.
pub fn routes(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let page = |path: &'static str, kind: &'static str, body: &'static str| {
        warp::path(path)
            .and(warp::path::end())
            .and(warp::get())
            .map(move || asset(kind, body))
    };
    let index = warp::path::end()
        .and(warp::get())
        .map(|| asset("text/html; charset=utf-8", INDEX_HTML));
    let login = warp::path!("v2" / "console" / "authenticate")
        .and(warp::post())
        .and(body_limited(MAX_BODY))
        .and(with_ctx(ctx.clone()))
        .and_then(authenticate);
    let users = warp::path!("v2" / "console" / "account")
        .and(warp::get())
        .and(admin(ctx.clone()))
        .and(query_pairs())
        .and(with_ctx(ctx.clone()))
        .and_then(search_users);
    let inbox = warp::path!("v2" / "console" / "account" / String / "inbox")
        .and(warp::get())
        .and(admin(ctx.clone()))
        .and(query_pairs())
        .and(with_ctx(ctx.clone()))
        .and_then(user_inbox);
    let delete = warp::path!("v2" / "console" / "account" / String / "notification")
        .and(warp::delete())
        .and(admin(ctx.clone()))
        .and(query_pairs())
        .and(with_ctx(ctx.clone()))
        .and_then(delete_notifications);
    let send = warp::path!("v2" / "console" / "notification")
        .and(warp::post())
        .and(admin(ctx.clone()))
        .and(body_limited(MAX_BODY))
        .and(with_ctx(ctx.clone()))
        .and_then(send_notification);
    let status = warp::path!("v2" / "console" / "status")
        .and(warp::get())
        .and(admin(ctx.clone()))
        .and(with_ctx(ctx))
        .and_then(live_status);
    index
        .or(page(
            "console.js",
            "text/javascript; charset=utf-8",
            CONSOLE_JS,
        ))
        .unify()
        .or(page("console.css", "text/css; charset=utf-8", CONSOLE_CSS))
        .unify()
        .or(login)
        .unify()
        .or(users)
        .unify()
        .or(inbox)
        .unify()
        .or(delete)
        .unify()
        .or(send)
        .unify()
        .or(status)
        .unify()
        .recover(super::error::recover)
        .unify()
        .map(|mut res: Response| {
            res.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        })
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut res = warp::reply::with_status(body, StatusCode::OK).into_response();
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    res
}

/// Byte comparison whose time does not depend on where the inputs differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn credentials_ok(ctx: &Ctx, username: &str, password: &str) -> bool {
    let c = &ctx.config.console;
    // Both compared, always, so the time says nothing about which one was wrong.
    same(username, &c.username) & same(password, &c.password)
}

/// Requires a console token (Bearer) or the console login (Basic).
fn admin(ctx: Arc<Ctx>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and_then(move |header: Option<String>| {
            let ctx = ctx.clone();
            async move {
                let denied = || Rejection::from(ApiError::unauthenticated("Auth token invalid"));
                let header = header.ok_or_else(denied)?;
                if let Some(token) = header.strip_prefix("Bearer ") {
                    let key = DecodingKey::from_secret(ctx.config.console.signing_key.as_bytes())
                        .map_err(|_| denied())?;
                    let mut validation = Validation::new(Algorithm::HS256);
                    validation.leeway = 0;
                    validation.set_required_spec_claims(&["exp"]);
                    return jsonwebtoken::decode::<Claims>(token.trim(), &key, &validation)
                        .map(|_| ())
                        .map_err(|_| denied());
                }
                let basic = header
                    .strip_prefix("Basic ")
                    .and_then(|b| STANDARD.decode(b.trim()).ok())
                    .and_then(|b| String::from_utf8(b).ok());
                match basic.as_deref().and_then(|t| t.split_once(':')) {
                    Some((user, pass)) if credentials_ok(&ctx, user, pass) => Ok(()),
                    _ => Err(denied()),
                }
            }
        })
        .untuple_one()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Login {
    username: String,
    password: String,
}

async fn authenticate(body: Bytes, ctx: Arc<Ctx>) -> Result<Response, Rejection> {
    let login: Login = decode_body(&body)?;
    if !credentials_ok(&ctx, &login.username, &login.password) {
        return Err(ApiError::unauthenticated("Invalid credentials.").into());
    }
    let claims = Claims {
        usr: login.username,
        exp: now_micros() / 1_000_000 + ctx.config.console.token_expiry_sec,
    };
    let internal = |e: jsonwebtoken::errors::Error| {
        ApiError::new(crate::core::Code::Internal, format!("console token: {e}"))
    };
    let key =
        EncodingKey::from_secret(ctx.config.console.signing_key.as_bytes()).map_err(internal)?;
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).map_err(internal)?;
    Ok(json_reply(&json!({ "token": token })))
}

fn user_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::invalid("Requires a valid user ID."))
}

fn limit(pairs: &[(String, String)], default: usize, max: usize) -> Result<usize, ApiError> {
    match query_get(pairs, "limit") {
        None | Some("") => Ok(default),
        Some(raw) => raw
            .parse()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::invalid(format!("limit must be between 1 and {max}"))),
    }
}

async fn search_users(pairs: Vec<(String, String)>, ctx: Arc<Ctx>) -> Result<Response, Rejection> {
    let filter = query_get(&pairs, "filter").unwrap_or("");
    let cursor = query_get(&pairs, "cursor").unwrap_or("");
    let (users, next) = ctx
        .core
        .accounts
        .search(filter, cursor, limit(&pairs, 50, 100)?)
        .await
        .map_err(ApiError::from)?;
    let ids: Vec<Uuid> = users.iter().map(|u| u.id).collect();
    let online = ctx.core.presence.online_among(&ids).await;
    let users: Vec<Value> = users
        .iter()
        .map(|u| {
            json!({
                "id": u.id.to_string(),
                "username": u.username,
                "display_name": u.display_name,
                "create_time": rfc3339_secs(u.create_time),
                "banned": u.disable_time > 0,
                "online": online.contains(&u.id),
            })
        })
        .collect();
    let mut body = json!({ "users": users });
    if let Some(next) = next {
        body["next_cursor"] = next.into();
    }
    Ok(json_reply(&body))
}

async fn user_inbox(
    id: String,
    pairs: Vec<(String, String)>,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let id = user_id(&id)?;
    // The user record only (account() would also read the devices).
    let user = ctx
        .core
        .accounts
        .users(&[id])
        .await
        .map_err(ApiError::from)?
        .pop()
        .ok_or_else(|| ApiError::new(crate::core::Code::NotFound, "User account not found."))?;
    let cursor = query_get(&pairs, "cursor").unwrap_or("");
    let inbox = &ctx.core.inbox;
    let page = inbox
        .list(id, InboxFilter::default(), limit(&pairs, 100, 100)?, cursor)
        .await
        .map_err(ApiError::from)?;
    let counts = inbox.counts(id).await.map_err(ApiError::from)?;
    let mut body = json!({
        "user": { "id": id.to_string(), "username": user.username },
        "notifications": page.items.iter().map(item_json).collect::<Vec<_>>(),
        "unread": counts.unread,
        "unseen": counts.unseen,
    });
    if let Some(cursor) = page.cursor {
        body["cursor"] = cursor.into();
    }
    Ok(json_reply(&body))
}

async fn delete_notifications(
    id: String,
    pairs: Vec<(String, String)>,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let user = user_id(&id)?;
    let ids = pairs
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| Uuid::parse_str(v))
        .collect::<Result<Vec<Uuid>, _>>()
        .map_err(|_| ApiError::invalid("ids must be notification ids"))?;
    if ids.is_empty() {
        return Err(ApiError::invalid("ids: give at least one notification id").into());
    }
    let deleted = ctx
        .core
        .notifications
        .delete(ids, Some(user))
        .await
        .map_err(ApiError::from)?;
    Ok(json_reply(&json!({ "deleted": deleted })))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SendBody {
    /// A user id, or empty with `all` for everyone.
    user_id: String,
    all: bool,
    subject: String,
    /// A JSON object (as an object or as its text).
    content: Value,
    code: i32,
    persistent: bool,
}

async fn send_notification(body: Bytes, ctx: Arc<Ctx>) -> Result<Response, Rejection> {
    let b: SendBody = decode_body(&body)?;
    let content = match b.content {
        Value::Null => "{}".to_string(),
        Value::String(text) => text,
        other => go_json(other),
    };
    let notifications = &ctx.core.notifications;
    if b.all {
        if !b.user_id.is_empty() {
            return Err(ApiError::invalid("give either user_id or all, not both").into());
        }
        let stored = notifications
            .send_all(b.subject, content, b.code, b.persistent)
            .await
            .map_err(ApiError::from)?;
        return Ok(json_reply(&json!({ "sent": "all", "stored": stored })));
    }
    let to = user_id(&b.user_id)?;
    let item = NewNotification {
        user_id: to,
        subject: b.subject,
        content,
        code: b.code,
        sender_id: None,
        persistent: b.persistent,
        expire_time: None,
        keys: Default::default(),
    };
    notifications
        .check_recipients(std::slice::from_ref(&item))
        .await
        .map_err(ApiError::from)?;
    let sent = notifications
        .send(vec![item])
        .await
        .map_err(ApiError::from)?;
    let id = sent.first().map(|n| n.id.to_string()).unwrap_or_default();
    Ok(json_reply(&json!({ "sent": 1, "id": id })))
}

async fn live_status(ctx: Arc<Ctx>) -> Result<Response, Rejection> {
    let nodes = ctx.core.nodes().await.map_err(ApiError::from)?;
    let sockets: Vec<Value> = ctx
        .core
        .presence
        .some_sessions(MAX_SOCKETS_LISTED)
        .iter()
        .map(|s| {
            json!({
                "session_id": s.session_id.to_string(),
                "user_id": s.user_id.to_string(),
                "username": s.username,
                "opened_at": rfc3339_secs(s.opened_at / 1_000_000),
                "inbox": s.inbox,
            })
        })
        .collect();
    let status = ctx.runtime.status();
    let when = |t: Option<std::time::SystemTime>| {
        t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| rfc3339_secs(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
    };
    Ok(json_reply(&json!({
        "node": ctx.core.node,
        "socket_count": ctx.core.presence.session_count(),
        "sockets": sockets,
        "nodes": nodes,
        "runtime": {
            "generation": status.generation,
            "modules": status.modules,
            "rpcs": status.rpcs,
            "loaded_at": when(status.loaded_at),
            "reload_attempts": status.attempts,
            "reload_failures": status.failures,
            "last_attempt_at": when(status.last_attempt_at),
            "last_error": status.last_error,
        },
    })))
}
