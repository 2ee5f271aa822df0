//! REST notification routes (NAKAMA-SPEC §2): list with the cacheable cursor, delete by ids.

use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::error::ApiError;
use super::wire::{View, WireNotification};
use super::{auth, json_reply, query_get, query_pairs, with_ctx, Ctx};
use crate::core::notifications::CursorMode;
use crate::core::sessions::SessionUser;

/// Nakama's REST bounds for `limit`.
const MAX_LIMIT: i64 = 100;

pub fn routes(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    list(ctx.clone()).or(delete(ctx)).unify()
}

/// GET /v2/notification?limit=&cacheable_cursor=
fn list(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v2" / "notification")
        .and(warp::get())
        .and(auth::session(ctx.clone()))
        .and(query_pairs())
        .and(with_ctx(ctx))
        .and_then(list_handler)
}

/// DELETE /v2/notification?ids=&ids=
fn delete(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v2" / "notification")
        .and(warp::delete())
        .and(auth::session(ctx.clone()))
        .and(query_pairs())
        .and(with_ctx(ctx))
        .and_then(delete_handler)
}

/// `limit` as the gateway parses an Int32Value: absent means 1 here (Nakama's default).
fn parse_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(1);
    };
    let n: i64 = raw.parse().map_err(|e: std::num::ParseIntError| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        ApiError::invalid(format!(
            "parsing field \"limit\": strconv.ParseInt: parsing \"{raw}\": {why}"
        ))
    })?;
    if i32::try_from(n).is_err() {
        return Err(ApiError::invalid(format!(
            "parsing field \"limit\": strconv.ParseInt: parsing \"{raw}\": value out of range"
        )));
    }
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
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let limit = parse_limit(query_get(&query, "limit"))?;
    let cursor = query_get(&query, "cacheable_cursor").unwrap_or("");
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
    Ok(json_reply(&body))
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
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let ids = query
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| parse_notification_id(v))
        .collect::<Result<Vec<_>, _>>()?;
    ctx.core
        .notifications
        .delete(ids, Some(user.user_id))
        .await?;
    Ok(json_reply(&serde_json::json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
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
