//! Operator account actions in the shape of Nakama's console API, on the API port and guarded
//! by the runtime http key until the console (with its own login) exists:
//! `POST /v2/console/account/{id}/ban` and `/unban` (`{}` on success, Nakama's messages for a
//! bad id or the system user), and `/import_friends`, which runs a social friend import
//! (and its -6 notifications) with friend ids given in the body, standing in for a
//! Facebook or Steam provider (see `core::social`). `GET /v2/console/cluster` lists the live
//! nodes with their open sockets (`core::cluster::NodeStatus`).

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::error::ApiError;
use super::{auth, body_limited, decode_body, json_reply, with_ctx, Ctx};
use crate::core::social::{GivenFriends, SocialFriends};

/// Largest import body (about 5,000 friend ids).
const MAX_BODY: usize = 512 * 1024;

#[derive(Deserialize, Default)]
#[serde(default)]
struct ImportBody {
    provider: String,
    social_id: String,
    friend_ids: Vec<String>,
}

pub fn routes(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let account = warp::path!("v2" / "console" / "account" / String / String)
        .and(warp::post())
        .and(auth::http_key(ctx.clone()))
        .and(body_limited(MAX_BODY))
        .and(with_ctx(ctx.clone()))
        .and_then(handler);
    let nodes = warp::path!("v2" / "console" / "cluster")
        .and(warp::get())
        .and(auth::http_key(ctx.clone()))
        .and(with_ctx(ctx))
        .and_then(|ctx: Arc<Ctx>| async move {
            let nodes = ctx.core.nodes().await.map_err(ApiError::from)?;
            Ok::<_, Rejection>(json_reply(&json!({ "nodes": nodes })))
        });
    account.or(nodes).unify()
}

async fn handler(
    id: String,
    action: String,
    body: Bytes,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    if !matches!(action.as_str(), "ban" | "unban" | "import_friends") {
        return Err(warp::reject::not_found());
    }
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::invalid("Requires a valid user ID."))?;
    if id.is_nil() {
        return Err(ApiError::invalid(format!("Cannot {action} the system user.")).into());
    }
    let core = &ctx.core;
    match action.as_str() {
        "ban" => core.accounts.ban(&[id]).await?,
        "unban" => core.accounts.unban(&[id]).await?,
        _ => {
            let b: ImportBody = decode_body(&body)?;
            if b.provider.is_empty() {
                return Err(ApiError::invalid("provider must be set, e.g. \"facebook\"").into());
            }
            let account = core.accounts.account(id).await?;
            let provider = GivenFriends {
                provider: b.provider,
                friends: SocialFriends {
                    social_id: b.social_id,
                    friend_ids: b.friend_ids,
                },
            };
            let linked = core
                .social
                .import(id, &account.user.username, &provider, "")
                .await?;
            let ids: Vec<String> = linked.iter().map(Uuid::to_string).collect();
            return Ok(json_reply(&json!({ "new_friends": ids })));
        }
    }
    Ok(json_reply(&json!({})))
}
