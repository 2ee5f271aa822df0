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
//! - `POST /v2/tidings/notification?http_key=`: sends from a game's servers with the
//!   extension's options per item: `{"notifications":[{user_id, subject, content, code,
//!   sender_id?, persistent?, ttl? | expires_at?, dedupe_key?, collapse_key?}]}` →
//!   `{"notifications":[{id, duplicate}]}`.
//!
//! - `GET /v2/tidings/inbox/changes?since=&limit=`: gap-free sync (`core::sync`):
//!   `{"since","seq","resync","more","changes":[{"seq","notification"} | {"seq","deleted"}]}`.
//!
//! Sockets opened with `tidings_inbox=true` receive `{"tidings_inbox":{...}}` frames
//! ([`event_frame`]) whenever the user's inbox changes on any device. Sockets opened with
//! `tidings_since=S` also receive `{"tidings_sync":{...}}` frames (the body of the changes
//! route): at once what changed after S, then after every change ([`SyncFollow`]).

use std::future::Future;
use std::pin::Pin;
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
use crate::core::error::CoreResult;
use crate::core::inbox::{Inbox, InboxEvent};
use crate::core::notifications::{expiry, NewNotification};
use crate::core::sessions::SessionUser;
use crate::core::store::{InboxCounts, InboxFilter, InboxItem, InboxMark, SendKeys};
use crate::core::sync::{SyncEntry, SyncPage, MAX_PAGE as MAX_SYNC_PAGE};
use crate::core::time::{now_micros, rfc3339_secs};

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
    let ctx_send = ctx.clone();
    let mark = warp::path!("v2" / "tidings" / "inbox" / String)
        .and(warp::post())
        .and(auth::session(ctx.clone()))
        .and(body_limited(MAX_BODY))
        .and(with_ctx(ctx.clone()))
        .and_then(mark_handler);
    let changes = warp::path!("v2" / "tidings" / "inbox" / "changes")
        .and(warp::get())
        .and(auth::session(ctx.clone()))
        .and(query_pairs())
        .and(with_ctx(ctx))
        .and_then(changes_handler);
    list.or(count)
        .unify()
        .or(changes)
        .unify()
        .or(mark)
        .unify()
        .or(send_route(ctx_send))
        .unify()
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
    let items: Vec<Value> = page.items.iter().map(item_json).collect();
    let mut body = Map::new();
    body.insert("notifications".into(), items.into());
    if let Some(cursor) = page.cursor {
        body.insert("cursor".into(), cursor.into());
    }
    Ok(json_reply(&Value::Object(body)))
}

/// An inbox item: Nakama's list shape plus `read`, `seen`, their times, `expire_time` when
/// it has one, and `seq`, the sequence of its last change.
pub(crate) fn item_json(item: &InboxItem) -> Value {
    let mut v = serde_json::to_value(WireNotification::new(&item.notification, View::List))
        .unwrap_or_default();
    if let Value::Object(map) = &mut v {
        let time = |micros: i64| Value::from(rfc3339_secs(micros.div_euclid(1_000_000)));
        map.insert("read".into(), item.read_time.is_some().into());
        map.insert("seen".into(), item.seen_time.is_some().into());
        if let Some(t) = item.read_time {
            map.insert("read_time".into(), time(t));
        }
        if let Some(t) = item.seen_time {
            map.insert("seen_time".into(), time(t));
        }
        if let Some(t) = item.notification.expire_time {
            map.insert("expire_time".into(), time(t));
        }
        map.insert("seq".into(), item.seq.to_string().into());
    }
    v
}

/// The body of a changes page, for the REST route and `tidings_sync` frames. Sequences are
/// strings, as Nakama's JSON writes 64-bit integers.
pub fn sync_json(page: &SyncPage) -> Value {
    let changes: Vec<Value> = page
        .entries
        .iter()
        .map(|entry| match entry {
            SyncEntry::Upsert(item) => {
                json!({ "seq": item.seq.to_string(), "notification": item_json(item) })
            }
            SyncEntry::Deleted { seq, id } => {
                json!({ "seq": seq.to_string(), "deleted": id.to_string() })
            }
        })
        .collect();
    json!({
        "since": page.since.to_string(),
        "seq": page.seq.to_string(),
        "resync": page.resync,
        "more": page.more,
        "changes": changes,
    })
}

/// A sequence as clients send it back (`since`): a non-negative integer.
pub fn parse_since(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::invalid(format!("since must be a sequence number, got {raw:.40}")))
}

async fn changes_handler(
    user: SessionUser,
    query: Vec<(String, String)>,
    ctx: Arc<Ctx>,
) -> Result<Response, Rejection> {
    let since = parse_since(query_get(&query, "since").unwrap_or("0"))?;
    let limit = match query_get(&query, "limit") {
        None | Some("") => 100,
        Some(raw) => raw.parse::<usize>().map_err(|_| {
            ApiError::invalid(format!(
                "limit must be a number between 1 and {MAX_SYNC_PAGE}"
            ))
        })?,
    };
    let page = ctx.core.inbox.changes(user.user_id, since, limit).await?;
    Ok(json_reply(&sync_json(&page)))
}

/// Page size of the pages a following socket receives.
const FOLLOW_PAGE: usize = 100;

type PendingPage = Pin<Box<dyn Future<Output = CoreResult<SyncPage>> + Send>>;

/// A socket following its user's inbox from a sequence (`tidings_since`): one changes query
/// at a time, started at once and again after every inbox event the socket receives, each
/// from where the last page ended, so frames arrive in sequence order with no gap and no
/// repeat however events interleave. A wake-up during a query runs one more after it.
pub struct SyncFollow {
    inbox: Arc<Inbox>,
    user_id: Uuid,
    last: i64,
    running: Option<PendingPage>,
    again: bool,
}

impl SyncFollow {
    pub fn start(inbox: Arc<Inbox>, user_id: Uuid, since: i64) -> SyncFollow {
        let mut follow = SyncFollow {
            inbox,
            user_id,
            last: since,
            running: None,
            again: false,
        };
        follow.wake();
        follow
    }

    /// Something changed: query from the last sequence (after the running query, if any).
    pub fn wake(&mut self) {
        if self.running.is_some() {
            self.again = true;
            return;
        }
        let (inbox, user, since) = (self.inbox.clone(), self.user_id, self.last);
        self.running = Some(Box::pin(async move {
            inbox.changes(user, since, FOLLOW_PAGE).await
        }));
    }

    /// Resolves with the next frame to send; pending while no query runs.
    pub async fn next_frame(&mut self) -> String {
        loop {
            let Some(running) = self.running.as_mut() else {
                return std::future::pending().await;
            };
            let result = running.await;
            self.running = None;
            match result {
                Ok(page) => {
                    self.last = page.seq;
                    if page.more || std::mem::take(&mut self.again) {
                        self.wake();
                    }
                    return json!({ "tidings_sync": sync_json(&page) }).to_string();
                }
                Err(e) => {
                    // The next wake-up asks again from the same sequence: nothing is skipped.
                    tracing::warn!(user = %self.user_id, error = %e.message, "inbox sync failed");
                    if std::mem::take(&mut self.again) {
                        self.wake();
                    }
                }
            }
        }
    }
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

/// One item of `POST /v2/tidings/notification`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendItem {
    user_id: String,
    subject: String,
    #[serde(default)]
    content: Option<Value>,
    code: i64,
    #[serde(default)]
    sender_id: Option<String>,
    #[serde(default)]
    persistent: bool,
    #[serde(default)]
    ttl: Option<i64>,
    #[serde(default)]
    expires_at: Option<i64>,
    #[serde(default)]
    dedupe_key: Option<String>,
    #[serde(default)]
    collapse_key: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct SendBody {
    notifications: Vec<SendItem>,
}

/// Largest send body.
const MAX_SEND_BODY: usize = 4 * 1024 * 1024;

/// `POST /v2/tidings/notification?http_key=`: sends from a game's own servers, with the
/// extension's options (`ttl`/`expires_at`, `dedupe_key`, `collapse_key`) per item.
pub fn send_route(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v2" / "tidings" / "notification")
        .and(warp::post())
        .and(auth::http_key(ctx.clone()))
        .and(body_limited(MAX_SEND_BODY))
        .and(with_ctx(ctx))
        .and_then(send_handler)
}

fn new_notification(item: SendItem, now: i64) -> Result<NewNotification, ApiError> {
    let user_id = Uuid::parse_str(&item.user_id)
        .map_err(|_| ApiError::invalid("user_id must be a valid id"))?;
    let sender_id = match item.sender_id.as_deref() {
        None | Some("") => Uuid::nil(),
        Some(s) => {
            Uuid::parse_str(s).map_err(|_| ApiError::invalid("sender_id must be a valid id"))?
        }
    };
    let content = match item.content {
        None => "{}".to_string(),
        Some(v @ Value::Object(_)) => super::go_json(v),
        Some(_) => return Err(ApiError::invalid("content must be a JSON object")),
    };
    if item.code <= 0 || item.code > i64::from(i32::MAX) {
        return Err(ApiError::invalid("code must be a positive number"));
    }
    Ok(NewNotification {
        user_id,
        subject: item.subject,
        content,
        code: item.code as i32,
        sender_id: Some(sender_id),
        persistent: item.persistent,
        expire_time: expiry(item.ttl, item.expires_at, now)?,
        keys: SendKeys {
            dedupe_key: item.dedupe_key,
            collapse_key: item.collapse_key,
        },
    })
}

async fn send_handler(body: Bytes, ctx: Arc<Ctx>) -> Result<Response, Rejection> {
    let b: SendBody = decode_body(&body)?;
    if b.notifications.is_empty() {
        return Err(ApiError::invalid("notifications must not be empty").into());
    }
    let now = now_micros();
    let items = b
        .notifications
        .into_iter()
        .map(|item| new_notification(item, now))
        .collect::<Result<Vec<_>, _>>()?;
    let sent = ctx.core.notifications.send_in_order(items).await?;
    let out: Vec<Value> = sent
        .iter()
        .map(|s| json!({ "id": s.notification.id.to_string(), "duplicate": s.duplicate }))
        .collect();
    Ok(json_reply(&json!({ "notifications": out })))
}
