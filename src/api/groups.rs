//! REST group routes (Nakama's CreateGroup, ListGroups, UpdateGroup, DeleteGroup, JoinGroup,
//! LeaveGroup, Add/Kick/Promote/Demote/BanGroupUsers, ListGroupUsers, ListUserGroups) with
//! Nakama's checks, messages and shapes. The rules and the -4/-5 notifications live in
//! `core::groups`.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::account::wire_user;
use super::error::ApiError;
use super::notifications::parse_int32_param;
use super::{
    auth, body_limited, decode_body, json_reply, parse_bool_param, query_get, query_pairs,
    with_ctx, Ctx,
};
use crate::core::groups::{MemberOp, NewGroup, DEFAULT_MAX_COUNT, MAX_LIST};
use crate::core::sessions::SessionUser;
use crate::core::store::{GroupFilter, GroupRecord, GroupUpdate};
use crate::core::time::rfc3339_secs;

/// Largest create or update body.
const MAX_BODY: usize = 64 * 1024;

/// Nakama's `Group` message: `open` always written, empty strings left out.
pub fn wire_group(g: &GroupRecord) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), g.id.to_string().into());
    m.insert("creator_id".into(), g.creator_id.to_string().into());
    m.insert("name".into(), g.name.clone().into());
    for (key, value) in [
        ("description", &g.description),
        ("lang_tag", &g.lang_tag),
        ("metadata", &g.metadata),
        ("avatar_url", &g.avatar_url),
    ] {
        if !value.is_empty() {
            m.insert(key.into(), value.clone().into());
        }
    }
    m.insert("open".into(), g.open.into());
    m.insert("edge_count".into(), g.edge_count.into());
    m.insert("max_count".into(), g.max_count.into());
    m.insert("create_time".into(), rfc3339_secs(g.create_time).into());
    m.insert("update_time".into(), rfc3339_secs(g.update_time).into());
    Value::Object(m)
}

fn group_id(raw: &str) -> Result<Uuid, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::invalid("Group ID must be set."));
    }
    Uuid::parse_str(raw).map_err(|_| ApiError::invalid("Group ID must be a valid ID."))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreateBody {
    name: String,
    description: String,
    lang_tag: String,
    avatar_url: String,
    open: bool,
    max_count: i64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UpdateBody {
    name: Option<String>,
    description: Option<String>,
    lang_tag: Option<String>,
    avatar_url: Option<String>,
    open: Option<bool>,
}

pub fn routes(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let session = auth::session(ctx.clone());
    let create = warp::path!("v2" / "group")
        .and(warp::post())
        .and(session.clone())
        .and(body_limited(MAX_BODY))
        .and(with_ctx(ctx.clone()))
        .and_then(create_handler);
    let list = warp::path!("v2" / "group")
        .and(warp::get())
        .and(session.clone())
        .and(query_pairs())
        .and(with_ctx(ctx.clone()))
        .and_then(list_handler);
    let update = warp::path!("v2" / "group" / String)
        .and(warp::put())
        .and(session.clone())
        .and(body_limited(MAX_BODY))
        .and(with_ctx(ctx.clone()))
        .and_then(update_handler);
    let delete = warp::path!("v2" / "group" / String)
        .and(warp::delete())
        .and(session.clone())
        .and(with_ctx(ctx.clone()))
        .and_then(|id: String, user: SessionUser, ctx: Arc<Ctx>| async move {
            ctx.core.groups.delete(user.user_id, group_id(&id)?).await?;
            Ok::<_, Rejection>(json_reply(&json!({})))
        });
    let action = warp::path!("v2" / "group" / String / String)
        .and(warp::post())
        .and(session.clone())
        .and(query_pairs())
        .and(with_ctx(ctx.clone()))
        .and_then(action_handler);
    let users = warp::path!("v2" / "group" / String / "user")
        .and(warp::get())
        .and(session.clone())
        .and(query_pairs())
        .and(with_ctx(ctx.clone()))
        .and_then(users_handler);
    let user_groups = warp::path!("v2" / "user" / String / "group")
        .and(warp::get())
        .and(session)
        .and(query_pairs())
        .and(with_ctx(ctx))
        .and_then(user_groups_handler);
    create
        .or(list)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(action)
        .unify()
        .or(users)
        .unify()
        .or(user_groups)
        .unify()
}

async fn create_handler(
    user: SessionUser,
    body: Bytes,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let b: CreateBody = decode_body(&body)?;
    if b.name.is_empty() {
        return Err(ApiError::invalid("Group name must be set.").into());
    }
    let max_count = match b.max_count {
        0 => DEFAULT_MAX_COUNT,
        n if n < 1 => {
            return Err(ApiError::invalid("Group max count must be >= 1 when set.").into())
        }
        n => n,
    };
    let group = ctx
        .core
        .groups
        .create(
            user.user_id,
            user.user_id,
            NewGroup {
                name: b.name,
                description: b.description,
                lang_tag: b.lang_tag,
                avatar_url: b.avatar_url,
                metadata: "{}".into(),
                open: b.open,
                max_count,
            },
        )
        .await?;
    Ok(json_reply(&wire_group(&group)))
}

async fn update_handler(
    id: String,
    user: SessionUser,
    body: Bytes,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let group = group_id(&id)?;
    let b: UpdateBody = decode_body(&body)?;
    let update = GroupUpdate {
        name: b.name,
        description: b.description,
        lang_tag: b.lang_tag,
        avatar_url: b.avatar_url,
        open: b.open,
        ..GroupUpdate::default()
    };
    ctx.core.groups.update(user.user_id, group, update).await?;
    Ok(json_reply(&json!({})))
}

async fn action_handler(
    id: String,
    action: String,
    user: SessionUser,
    query: Vec<(String, String)>,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let op = match action.as_str() {
        "join" | "leave" => None,
        "add" => Some(MemberOp::Add),
        "kick" => Some(MemberOp::Kick),
        "promote" => Some(MemberOp::Promote),
        "demote" => Some(MemberOp::Demote),
        "ban" => Some(MemberOp::Ban),
        _ => return Err(warp::reject::not_found()),
    };
    let group = group_id(&id)?;
    let groups = &ctx.core.groups;
    match (action.as_str(), op) {
        ("join", _) => groups.join(user.user_id, &user.username, group).await?,
        ("leave", _) => groups.leave(user.user_id, group).await?,
        (_, Some(op)) => {
            let raw: Vec<&str> = query
                .iter()
                .filter(|(k, _)| k == "user_ids" || k == "userIds")
                .map(|(_, v)| v.as_str())
                .collect();
            if raw.is_empty() {
                if op == MemberOp::Demote {
                    return Err(ApiError::invalid("User IDs must be set.").into());
                }
                return Ok(json_reply(&json!({})));
            }
            let targets = raw
                .iter()
                .map(|r| {
                    Uuid::parse_str(r)
                        .ok()
                        .filter(|u| !u.is_nil())
                        .ok_or_else(|| ApiError::invalid("User ID must be a valid ID."))
                })
                .collect::<Result<Vec<_>, _>>()?;
            groups
                .members(Some(user.user_id), group, op, targets)
                .await?
        }
        _ => return Err(warp::reject::not_found()),
    }
    Ok(json_reply(&json!({})))
}

/// `limit` (default 100, 1..=100) and `state` (0..=4) of a member or user-group list.
fn list_params(query: &[(String, String)]) -> Result<(usize, Option<i32>), ApiError> {
    let limit = parse_int32_param("limit", query_get(query, "limit"))?.unwrap_or(MAX_LIST as i64);
    if !(1..=MAX_LIST as i64).contains(&limit) {
        return Err(ApiError::invalid(
            "Invalid limit - limit must be between 1 and 100.",
        ));
    }
    let state = parse_int32_param("state", query_get(query, "state"))?;
    if state.is_some_and(|s| !(0..=4).contains(&s)) {
        return Err(ApiError::invalid(
            "Invalid state - state must be between 0 and 4.",
        ));
    }
    Ok((limit as usize, state.map(|s| s as i32)))
}

fn page_body(key: &str, items: Vec<Value>, cursor: Option<String>) -> Response {
    let mut body = Map::new();
    if !items.is_empty() {
        body.insert(key.into(), items.into());
    }
    if let Some(c) = cursor {
        body.insert("cursor".into(), c.into());
    }
    json_reply(&Value::Object(body))
}

async fn list_handler(
    _user: SessionUser,
    query: Vec<(String, String)>,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let limit = parse_int32_param("limit", query_get(&query, "limit"))?.unwrap_or(1);
    if !(1..=MAX_LIST as i64).contains(&limit) {
        return Err(ApiError::invalid("Invalid limit - limit must be between 1 and 100.").into());
    }
    let name = query_get(&query, "name")
        .map(|n| n.trim_start_matches(['%', ' ']).to_string())
        .filter(|n| !n.is_empty());
    let filter = GroupFilter {
        lang_tag: query_get(&query, "lang_tag")
            .filter(|l| !l.is_empty())
            .map(str::to_string),
        open: query_get(&query, "open")
            .map(|v| parse_bool_param("open", v))
            .transpose()?,
        members: parse_int32_param("members", query_get(&query, "members"))?,
        name: None,
    };
    if name.is_some()
        && (filter.lang_tag.is_some() || filter.open.is_some() || filter.members.is_some())
    {
        return Err(
            ApiError::invalid("name filter cannot be combined with any other filter").into(),
        );
    }
    let filter = GroupFilter { name, ..filter };
    let cursor = query_get(&query, "cursor").unwrap_or("");
    let page = ctx.core.groups.list(filter, limit as usize, cursor).await?;
    Ok(page_body(
        "groups",
        page.items.iter().map(wire_group).collect(),
        page.cursor,
    ))
}

async fn users_handler(
    id: String,
    _user: SessionUser,
    query: Vec<(String, String)>,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let group = group_id(&id)?;
    let (limit, state) = list_params(&query)?;
    let cursor = query_get(&query, "cursor").unwrap_or("");
    let groups = &ctx.core.groups;
    let page = groups.users(group, limit, state, cursor).await?;
    let items = page
        .items
        .iter()
        .map(|(u, s, online)| json!({ "user": wire_user(u, *online), "state": s }))
        .collect();
    Ok(page_body("group_users", items, page.cursor))
}

async fn user_groups_handler(
    id: String,
    _user: SessionUser,
    query: Vec<(String, String)>,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    if id.is_empty() {
        return Err(ApiError::invalid("User ID must be set.").into());
    }
    let user =
        Uuid::parse_str(&id).map_err(|_| ApiError::invalid("Group ID must be a valid ID."))?;
    let (limit, state) = list_params(&query)?;
    let cursor = query_get(&query, "cursor").unwrap_or("");
    let page = ctx.core.groups.of_user(user, limit, state, cursor).await?;
    let items = page
        .items
        .iter()
        .map(|(g, s)| json!({ "group": wire_group(g), "state": s }))
        .collect();
    Ok(page_body("user_groups", items, page.cursor))
}
