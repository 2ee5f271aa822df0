//! REST notification routes (NAKAMA-SPEC §2): list with the cacheable cursor, delete by ids.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::error::ApiError;
use super::hooks::{self, http_info, HttpInfo};
use super::wire::{View, WireNotification};
use super::{auth, json_reply, query_get, query_pairs, raw_json_reply, with_ctx, Ctx};
use crate::core::notifications::CursorMode;
use crate::core::sessions::SessionUser;

/// Nakama's REST bounds for `limit`.
const MAX_LIMIT: i64 = 100;
/// Hook names of these routes (`nk.register_req_before(fn, "ListNotifications")`).
const LIST: &str = "ListNotifications";
const DELETE: &str = "DeleteNotifications";

pub fn routes(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    list(ctx.clone()).or(delete(ctx)).unify()
}

/// GET /v2/notification?limit=&cacheable_cursor=
fn list(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v2" / "notification")
        .and(warp::get())
        .and(auth::session(ctx.clone()))
        .and(query_pairs())
        .and(http_info())
        .and(with_ctx(ctx))
        .and_then(list_handler)
}

/// DELETE /v2/notification?ids=&ids=
fn delete(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v2" / "notification")
        .and(warp::delete())
        .and(auth::session(ctx.clone()))
        .and(query_pairs())
        .and(http_info())
        .and(with_ctx(ctx))
        .and_then(delete_handler)
}

/// A query parameter as the gateway parses an Int32Value (syntax only; the range is checked
/// later, after a before-hook may have changed it).
pub fn parse_int32_param(field: &str, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let invalid = |why: &str| {
        ApiError::invalid(format!(
            "parsing field \"{field}\": strconv.ParseInt: parsing \"{raw}\": {why}"
        ))
    };
    let n: i64 = raw
        .parse()
        .map_err(|e: std::num::ParseIntError| match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                invalid("value out of range")
            }
            _ => invalid("invalid syntax"),
        })?;
    if i32::try_from(n).is_err() {
        return Err(invalid("value out of range"));
    }
    Ok(Some(n))
}

/// The page size: absent means 1 (Nakama's default), otherwise 1..=100.
fn check_limit(limit: Option<i64>) -> Result<usize, ApiError> {
    let n = limit.unwrap_or(1);
    if !(1..=MAX_LIMIT).contains(&n) {
        return Err(ApiError::invalid(
            "Invalid limit - limit must be between 1 and 100.",
        ));
    }
    Ok(n as usize)
}

#[derive(Serialize)]
struct ListBody<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notifications: Vec<WireNotification<'a>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    cacheable_cursor: String,
}

async fn list_handler(
    user: SessionUser,
    query: Vec<(String, String)>,
    info: HttpInfo,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let mut request = serde_json::Map::new();
    if let Some(limit) = parse_int32_param("limit", query_get(&query, "limit"))? {
        request.insert("limit".into(), limit.into());
    }
    if let Some(cursor) = query_get(&query, "cacheable_cursor").filter(|c| !c.is_empty()) {
        request.insert("cacheable_cursor".into(), cursor.into());
    }
    let call = (&info, Some(&user));
    let request = hooks::before(&ctx, LIST, call, request.into()).await?;
    let limit = check_limit(request.get("limit").and_then(Value::as_i64))?;
    let cursor = request
        .get("cacheable_cursor")
        .and_then(Value::as_str)
        .unwrap_or("");
    let page = ctx
        .core
        .notifications
        .list(user.user_id, limit, cursor, CursorMode::Cacheable)
        .await?;
    let body = ListBody {
        notifications: page
            .notifications
            .iter()
            .map(|n| WireNotification::new(n, View::List))
            .collect(),
        cacheable_cursor: page.cursor.unwrap_or_default(),
    };
    let text = serde_json::to_string(&body).unwrap_or_else(|_| "{}".into());
    if ctx.runtime.has_after(LIST) {
        let response = serde_json::from_str(&text).unwrap_or_default();
        hooks::after(&ctx, LIST, call, response, request).await;
    }
    Ok(raw_json_reply(text))
}

/// A notification id in any spelling PostgreSQL accepts for a UUID: hyphenated, 32 hex
/// digits, or in braces, any case. (`urn:uuid:` is not one of them.)
pub fn parse_notification_id(raw: &str) -> Result<Uuid, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::invalid(
            "Invalid notification ID: an id must not be empty.",
        ));
    }
    if raw.len() > 38 || raw.starts_with("urn:") {
        return Err(ApiError::invalid(format!(
            "Invalid notification ID: {raw:.40} is not a UUID."
        )));
    }
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::invalid(format!("Invalid notification ID: {raw} is not a UUID.")))
}

async fn delete_handler(
    user: SessionUser,
    query: Vec<(String, String)>,
    info: HttpInfo,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let raw_ids: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut request = serde_json::Map::new();
    if !raw_ids.is_empty() {
        request.insert("ids".into(), raw_ids.into());
    }
    let call = (&info, Some(&user));
    let request = hooks::before(&ctx, DELETE, call, request.into()).await?;
    let ids = match request.get("ids") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| parse_notification_id(v.as_str().unwrap_or("")))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(ApiError::invalid("ids must be a list of notification ids").into()),
    };
    if ids.is_empty() {
        return Ok(json_reply(&serde_json::json!({})));
    }
    ctx.core
        .notifications
        .delete(ids, Some(user.user_id))
        .await?;
    hooks::after(&ctx, DELETE, call, serde_json::json!({}), request).await;
    Ok(json_reply(&serde_json::json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        let parse_limit = |raw: Option<&str>| parse_int32_param("limit", raw).and_then(check_limit);
        assert_eq!(parse_limit(None).unwrap(), 1);
        assert_eq!(parse_limit(Some("100")).unwrap(), 100);
        for (raw, msg) in [
            ("0", "Invalid limit - limit must be between 1 and 100."),
            ("-1", "Invalid limit - limit must be between 1 and 100."),
            ("101", "Invalid limit - limit must be between 1 and 100."),
            ("abc", "parsing field \"limit\": strconv.ParseInt: parsing \"abc\": invalid syntax"),
            (
                "99999999999",
                "parsing field \"limit\": strconv.ParseInt: parsing \"99999999999\": value out of range",
            ),
        ] {
            assert_eq!(parse_limit(Some(raw)).unwrap_err().message, msg, "{raw}");
        }
    }

    #[test]
    fn id_spellings() {
        let id = "27788cfc-04dc-4e66-a64f-aaec460a1df2";
        for ok in [
            id,
            &id.to_uppercase(),
            &id.replace('-', ""),
            &format!("{{{id}}}"),
        ] {
            assert_eq!(parse_notification_id(ok).unwrap().to_string(), id, "{ok}");
        }
        for bad in ["", "x", &format!("urn:uuid:{id}"), &format!("{id},{id}")] {
            assert!(parse_notification_id(bad).is_err(), "{bad}");
        }
    }
}
