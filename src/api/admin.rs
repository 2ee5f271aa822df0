//! Operator account actions in the shape of Nakama's console API, on the API port and guarded
//! by the runtime http key until the console (with its own login) exists:
//! `POST /v2/console/account/{id}/ban` and `POST /v2/console/account/{id}/unban`, `{}` on
//! success, Nakama's messages for a bad id or the system user.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::error::ApiError;
use super::{auth, json_reply, with_ctx, Ctx};

pub fn routes(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v2" / "console" / "account" / String / String)
        .and(warp::post())
        .and(auth::http_key(ctx.clone()))
        .and(with_ctx(ctx))
        .and_then(|id: String, action: String, ctx: Arc<Ctx>| async move {
            let ban = match action.as_str() {
                "ban" => true,
                "unban" => false,
                _ => return Err(warp::reject::not_found()),
            };
            let id =
                Uuid::parse_str(&id).map_err(|_| ApiError::invalid("Requires a valid user ID."))?;
            if id.is_nil() {
                return Err(ApiError::invalid(format!("Cannot {action} the system user.")).into());
            }
            let accounts = &ctx.core.accounts;
            if ban {
                accounts.ban(&[id]).await?;
            } else {
                accounts.unban(&[id]).await?;
            }
            Ok::<_, Rejection>(json_reply(&json!({})))
        })
}
