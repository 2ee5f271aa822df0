//! REST routes of the inbox extension (`core::inbox`), under `/v2/tidings/inbox` so they can
//! never collide with a route Nakama adds later; a session token as for any Nakama route.
//!
//! - `GET /v2/tidings/inbox?limit=&cursor=&read=&seen=&code=`: the user's stored
//!   notifications (Nakama's item shape plus `read`, `seen`, `read_time`, `seen_time`),
//!   oldest first; `read=false` lists unread ones, `code=N` one code. `cursor` continues.
//! - `GET /v2/tidings/inbox/count`: `{"unread","unseen","unread_by_code"}`.
//! - `POST /v2/tidings/inbox/read|unread|seen` with `{"ids":[...]}` or `{"all":true}`
//!   (`unread` needs ids): `{"changed", ...counts}`.
//!
//! Sockets opened with `tidings_inbox=true` receive `{"tidings_inbox":{...}}` frames
//! ([`event_frame`]) whenever the user's inbox changes on any device.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::error::ApiError;
use super::notifications::parse_notification_id;
use super::wire::{View, WireNotification};
use super::{auth, body_limited, decode_body, json_reply, query_get, query_pairs, with_ctx, Ctx};
use crate::core::inbox::InboxEvent;
use crate::core::sessions::SessionUser;
use crate::core::store::{InboxCounts, InboxFilter, InboxMark};
use crate::core::time::rfc3339_secs;

/// Largest mark body (1000 ids).
const MAX_BODY: usize = 64 * 1024;

pub fn routes(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("v2" / "tidings" / "inbox")
        .and(warp::get())
        .and(auth::session(ctx.clone()))
        .and(query_pairs())
        .and(with_ctx(ctx.clone()))
        .and_then(list_handler);
    let count = warp::path!("v2" / "tidings" / "inbox" / "count")
        .and(warp::get())
        .and(auth::session(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and_then(|user: SessionUser, ctx: Arc<Ctx>| async move {
            let counts = ctx
                .core
                .inbox
                .counts(user.user_id)
                .await
                .map_err(ApiError::from)?;
            Ok::<_, Rejection>(json_reply(&Value::Object(counts_json(&counts))))
        });
    let mark = warp::path!("v2" / "tidings" / "inbox" / String)
        .and(warp::post())
        .and(auth::session(ctx.clone()))
        .and(body_limited(MAX_BODY))
        .and(with_ctx(ctx))
        .and_then(mark_handler);
    list.or(count).unify().or(mark).unify()
}

/// The counts as the routes and inbox frames carry them.
fn counts_json(counts: &InboxCounts) -> Map<String, Value> {
    let by_code: Map<String, Value> = counts
        .unread_by_code
        .iter()
        .map(|(code, n)| (code.to_string(), (*n).into()))
        .collect();
    let mut out = Map::new();
    out.insert("unread".into(), counts.unread.into());
    out.insert("unseen".into(), counts.unseen.into());
    out.insert("unread_by_code".into(), by_code.into());
    out
}

/// The socket frame of an inbox event (never sent to sockets that did not ask).
pub fn event_frame(event: &InboxEvent) -> String {
    let mut body = counts_json(&event.counts);
    body.insert("change".into(), json!(event.change));
    body.insert(
        "ids".into(),
        event
            .ids
            .iter()
            .map(Uuid::to_string)
            .collect::<Vec<_>>()
            .into(),
    );
    body.insert("all".into(), event.all.into());
    json!({ "tidings_inbox": body }).to_string()
}

/// `true`/`false` (also 1/0), or absent.
fn bool_param(query: &[(String, String)], name: &str) -> Result<Option<bool>, ApiError> {
    match query_get(query, name) {
        None | Some("") => Ok(None),
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(other) => Err(ApiError::invalid(format!(
            "{name} must be true or false, got {other:.40}"
        ))),
    }
}

async fn list_handler(
    user: SessionUser,
    query: Vec<(String, String)>,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let limit = match query_get(&query, "limit") {
        None | Some("") => 100,
        Some(raw) => raw
            .parse::<usize>()
            .map_err(|_| ApiError::invalid("limit must be a number between 1 and 1000"))?,
    };
    let code = match query_get(&query, "code") {
        None | Some("") => None,
        Some(raw) => Some(
            raw.parse::<i32>()
                .map_err(|_| ApiError::invalid(format!("code must be a number, got {raw:.40}")))?,
        ),
    };
    let filter = InboxFilter {
        read: bool_param(&query, "read")?,
        seen: bool_param(&query, "seen")?,
        code,
    };
    let cursor = query_get(&query, "cursor").unwrap_or("");
    let page = ctx
        .core
        .inbox
        .list(user.user_id, filter, limit, cursor)
        .await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|item| {
            let mut v = serde_json::to_value(WireNotification::new(&item.notification, View::List))
                .unwrap_or_default();
            if let Value::Object(map) = &mut v {
                map.insert("read".into(), item.read_time.is_some().into());
                map.insert("seen".into(), item.seen_time.is_some().into());
                if let Some(t) = item.read_time {
                    map.insert(
                        "read_time".into(),
                        rfc3339_secs(t.div_euclid(1_000_000)).into(),
                    );
                }
                if let Some(t) = item.seen_time {
                    map.insert(
                        "seen_time".into(),
                        rfc3339_secs(t.div_euclid(1_000_000)).into(),
                    );
                }
            }
            v
        })
        .collect();
    let mut body = Map::new();
    body.insert("notifications".into(), items.into());
    if let Some(cursor) = page.cursor {
        body.insert("cursor".into(), cursor.into());
    }
    Ok(json_reply(&Value::Object(body)))
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct MarkBody {
    ids: Vec<String>,
    all: bool,
}

async fn mark_handler(
    action: String,
    user: SessionUser,
    body: Bytes,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let mark = match action.as_str() {
        "read" => InboxMark::Read,
        "unread" => InboxMark::Unread,
        "seen" => InboxMark::Seen,
        _ => return Err(warp::reject::not_found()),
    };
    let b: MarkBody = decode_body(&body)?;
    let ids = match (b.all, b.ids.is_empty()) {
        (true, true) if mark != InboxMark::Unread => None,
        (true, true) => return Err(ApiError::invalid("unread needs ids").into()),
        (true, false) => return Err(ApiError::invalid("give ids or all, not both").into()),
        (false, true) => return Err(ApiError::invalid("give ids or all").into()),
        (false, false) => Some(
            b.ids
                .iter()
                .map(|raw| parse_notification_id(raw))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let (changed, counts) = ctx.core.inbox.mark(user.user_id, ids, mark).await?;
    let mut body = counts_json(&counts);
    body.insert("changed".into(), changed.into());
    Ok(json_reply(&Value::Object(body)))
}
