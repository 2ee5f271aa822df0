//! REST friend routes (Nakama's AddFriends, ListFriends, DeleteFriends, BlockFriends):
//! `POST /v2/friend`, `GET /v2/friend`, `DELETE /v2/friend`, `POST /v2/friend/block`. Every
//! parameter is in the query (`ids=…&ids=…&usernames=…`); success is `{}`. The checks and
//! their messages are Nakama's (api_friend.go); the state machine and the -2/-3/-9
//! notifications live in `core::friends`.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use uuid::Uuid;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::account::wire_user;
use super::error::ApiError;
use super::hooks::{self, http_info, HttpInfo};
use super::notifications::parse_int32_param;
use super::{auth, json_reply, query_get, query_pairs, with_ctx, Ctx};
use crate::core::friends::{Friend, FriendAction as Action, MAX_LIST};
use crate::core::sessions::SessionUser;
use crate::core::time::rfc3339_secs;

/// The hook name of a route.
fn hook(action: Action) -> &'static str {
    match action {
        Action::Add => "AddFriends",
        Action::Delete => "DeleteFriends",
        Action::Block => "BlockFriends",
    }
}

/// Nakama's REST wording of the self-target refusal: "Cannot add self as friend."
fn self_error(action: Action) -> String {
    let text = action.self_error();
    format!("C{}.", &text[1..])
}

pub fn routes(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("v2" / "friend")
        .and(warp::get())
        .and(auth::session(ctx.clone()))
        .and(query_pairs())
        .and(http_info())
        .and(with_ctx(ctx.clone()))
        .and_then(list_handler);
    let add = warp::path!("v2" / "friend")
        .and(warp::post())
        .map(|| Action::Add);
    let delete = warp::path!("v2" / "friend")
        .and(warp::delete())
        .map(|| Action::Delete);
    let block = warp::path!("v2" / "friend" / "block")
        .and(warp::post())
        .map(|| Action::Block);
    let change = add
        .or(delete)
        .unify()
        .or(block)
        .unify()
        .and(auth::session(ctx.clone()))
        .and(query_pairs())
        .and(http_info())
        .and(with_ctx(ctx))
        .and_then(change_handler);
    list.or(change).unify()
}

fn all<'a>(query: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    query
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A list of strings from a (possibly hook-rewritten) request field.
fn strings(request: &Value, key: &str) -> Result<Vec<String>, ApiError> {
    match request.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::invalid(format!("{key} must be a list of strings")))
            })
            .collect(),
        Some(_) => Err(ApiError::invalid(format!(
            "{key} must be a list of strings"
        ))),
    }
}

async fn change_handler(
    action: Action,
    user: SessionUser,
    query: Vec<(String, String)>,
    info: HttpInfo,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let mut request = Map::new();
    for key in ["ids", "usernames"] {
        let values = all(&query, key);
        if !values.is_empty() {
            request.insert(key.into(), values.into());
        }
    }
    if action == Action::Add {
        if let Some(metadata) = query_get(&query, "metadata") {
            request.insert("metadata".into(), metadata.into());
        }
    }
    let call = (&info, Some(&user));
    let request = hooks::before(&ctx, hook(action), call, request.into()).await?;
    let raw_ids = strings(&request, "ids")?;
    let usernames = strings(&request, "usernames")?;
    if raw_ids.is_empty() && usernames.is_empty() {
        return Ok(json_reply(&json!({})));
    }
    let me = user.user_id.to_string();
    let mut ids = Vec::with_capacity(raw_ids.len());
    for raw in &raw_ids {
        if *raw == me {
            return Err(ApiError::invalid(self_error(action)).into());
        }
        match Uuid::parse_str(raw) {
            Ok(id) if !id.is_nil() => ids.push(id),
            _ => return Err(ApiError::invalid(format!("Invalid user ID '{raw}'.")).into()),
        }
    }
    for name in &usernames {
        if name.is_empty() {
            return Err(ApiError::invalid("Username must not be empty.").into());
        }
        if *name == user.username {
            return Err(ApiError::invalid(self_error(action)).into());
        }
    }
    let friends = &ctx.core.friends;
    let targets = friends.resolve(ids, &usernames).await?;
    let targets: Vec<Uuid> = targets.into_iter().filter(|t| *t != user.user_id).collect();
    if targets.is_empty() {
        if action == Action::Delete {
            return Ok(json_reply(&json!({})));
        }
        return Err(ApiError::invalid("No valid ID or username was provided.").into());
    }
    let metadata = request
        .get("metadata")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty() && action == Action::Add)
        .map(str::to_string);
    friends
        .apply(action, user.user_id, &user.username, targets, metadata)
        .await?;
    hooks::after(&ctx, hook(action), call, json!({}), request).await;
    Ok(json_reply(&json!({})))
}

/// Nakama's `Friend` message: `state` is a wrapper, so 0 is written too.
fn wire_friend(f: &Friend) -> Value {
    json!({
        "user": wire_user(&f.edge.user, f.online),
        "state": f.edge.state,
        "update_time": rfc3339_secs(f.edge.update_time),
        "metadata": f.edge.metadata,
    })
}

async fn list_handler(
    user: SessionUser,
    query: Vec<(String, String)>,
    info: HttpInfo,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let mut request = Map::new();
    for field in ["limit", "state"] {
        if let Some(n) = parse_int32_param(field, query_get(&query, field))? {
            request.insert(field.into(), n.into());
        }
    }
    if let Some(cursor) = query_get(&query, "cursor").filter(|c| !c.is_empty()) {
        request.insert("cursor".into(), cursor.into());
    }
    let call = (&info, Some(&user));
    let request = hooks::before(&ctx, "ListFriends", call, request.into()).await?;
    let limit = request
        .get("limit")
        .and_then(Value::as_i64)
        .unwrap_or(MAX_LIST as i64);
    if !(1..=MAX_LIST as i64).contains(&limit) {
        return Err(ApiError::invalid("Invalid limit - limit must be between 1 and 1000.").into());
    }
    let state = request.get("state").and_then(Value::as_i64);
    if state.is_some_and(|s| !(0..=3).contains(&s)) {
        return Err(ApiError::invalid("Invalid state - state must be between 0 and 3.").into());
    }
    let cursor = request.get("cursor").and_then(Value::as_str).unwrap_or("");
    let page = ctx
        .core
        .friends
        .list(
            user.user_id,
            limit as usize,
            state.map(|s| s as i32),
            cursor,
        )
        .await?;
    let mut body = Map::new();
    if !page.friends.is_empty() {
        body.insert(
            "friends".into(),
            page.friends
                .iter()
                .map(wire_friend)
                .collect::<Vec<_>>()
                .into(),
        );
    }
    if let Some(cursor) = page.cursor {
        body.insert("cursor".into(), cursor.into());
    }
    let response = Value::Object(body);
    hooks::after(&ctx, "ListFriends", call, response.clone(), request).await;
    Ok(json_reply(&response))
}
