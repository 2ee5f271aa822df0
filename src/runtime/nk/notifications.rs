//! The eight notification functions (NAKAMA-SPEC §5.1), with Nakama's argument order,
//! defaults and error text. Each validates its arguments completely before calling core, so a
//! bad argument never leaves a call half applied.

use std::collections::BTreeMap;

use mlua::{Lua, MultiValue, Table, Value};
use uuid::Uuid;

use super::{ret, shared, Args, NkError, NkResult, Raw};
use crate::core::notifications::{
    expiry, CursorMode, KeyedSent, NewNotification, Notification, NotificationUpdate,
    Notifications, MAX_BATCH,
};
use crate::core::store::SendKeys;
use crate::core::time::now_micros;
use crate::core::{Code, CoreError};
use crate::runtime::convert;
use crate::runtime::vm::{Deferred, VmData};

pub const FUNCTIONS: &[(&str, Raw)] = &[
    ("notification_send", notification_send),
    ("notifications_send", notifications_send),
    ("notification_send_all", notification_send_all),
    ("notifications_list", notifications_list),
    ("notifications_get_id", notifications_get_id),
    ("notifications_delete", notifications_delete),
    ("notifications_delete_id", notifications_delete_id),
    ("notifications_update", notifications_update),
];

/// The Postgres error Nakama scripts see for an id that is not a UUID.
fn uuid_syntax(text: &str) -> String {
    format!("ERROR: invalid input syntax for type uuid: \"{text}\" (SQLSTATE 22P02)")
}

fn send_failed(e: CoreError) -> NkError {
    NkError(format!("failed to send notifications: {}", e.message))
}

/// The tables of a list argument (#1), at most `MAX_BATCH` of them; `invalid` is the error
/// for an element that is not a table.
fn item_tables(args: &Args, invalid: &str) -> NkResult<Vec<Table>> {
    let list = args.check_table(1)?;
    let mut items = Vec::new();
    for pair in list.pairs::<Value, Value>() {
        let (_, item) = pair?;
        if items.len() >= MAX_BATCH {
            return Err(args.error(1, &format!("expects at most {MAX_BATCH} items")));
        }
        let Value::Table(item) = item else {
            return Err(args.error(1, invalid));
        };
        items.push(item);
    }
    Ok(items)
}

/// A non-empty subject at argument `n` and a content table at `n + 1`, converted to JSON.
fn subject_and_content(args: &Args, n: usize) -> NkResult<(String, String)> {
    let subject = args.check_string(n)?;
    if subject.is_empty() {
        return Err(args.error(n, "expects subject to be a non-empty string"));
    }
    let content = convert::content_to_json(&args.check_table(n + 1)?)
        .map_err(|e| args.error(n + 1, &format!("failed to convert content: {}", e.0)))?;
    Ok((subject, content))
}

/// `nk.notification_send(user_id, subject, content, code, sender_id?, persistent?, options?)`;
/// `options` (Tidings): `{ttl = seconds}` or `{expires_at = unix seconds}`.
fn notification_send(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let user = args.check_string(1)?;
    let user_id =
        Uuid::parse_str(&user).map_err(|_| args.error(1, "expects user_id to be a valid UUID"))?;
    let (subject, content) = subject_and_content(args, 2)?;
    let code = args.check_int(4)?;
    if !(code > 0 || (-2000..=-1000).contains(&code)) || code > i32::MAX as i64 {
        return Err(args.error(4, "expects code number to be a positive integer"));
    }
    let sender_id = match args.opt_string(5)?.as_deref() {
        None | Some("") => Uuid::nil(),
        Some(s) => Uuid::parse_str(s).map_err(|_| {
            args.error(
                5,
                "expects sender_id to either be not set, empty string or a valid UUID",
            )
        })?,
    };
    let persistent = args.opt_bool(6, false)?;
    let (expire_time, keys) = match args.opt_table(7)? {
        None => (None, SendKeys::default()),
        Some(options) => {
            let ttl = int_field(&options, "ttl").map_err(|m| args.error(7, &m))?;
            let at = int_field(&options, "expires_at").map_err(|m| args.error(7, &m))?;
            let keys = SendKeys {
                dedupe_key: string_field(&options, "dedupe_key").map_err(|m| args.error(7, &m))?,
                collapse_key: string_field(&options, "collapse_key")
                    .map_err(|m| args.error(7, &m))?,
            };
            let expire_time =
                expiry(ttl, at, now_micros()).map_err(|e| args.error(7, &e.message))?;
            (expire_time, keys)
        }
    };
    let n = NewNotification {
        user_id,
        subject,
        content,
        code: code as i32,
        sender_id: Some(sender_id),
        persistent,
        expire_time,
        keys,
    };
    if n.keys.is_empty() {
        send_or_defer(lua, vec![n])?;
        return ret(lua, ());
    }
    let sent = send_keyed_now(lua, args, 7, vec![n])?;
    let first = sent
        .first()
        .ok_or_else(|| NkError("nothing was sent".into()))?;
    ret(lua, (first.notification.id.to_string(), first.duplicate))
}

/// Sends a batch with dedupe or collapse keys at once, in order, after whatever the call sent
/// before it: the answer names the id holding each item (the original's, for a duplicate).
/// A refused item is an argument error of argument `arg`.
fn send_keyed_now(
    lua: &Lua,
    args: &Args,
    arg: usize,
    batch: Vec<NewNotification>,
) -> NkResult<Vec<KeyedSent>> {
    flush_deferred(lua)?;
    let rt = shared(lua)?;
    rt.wait(rt.core.notifications.send_in_order(batch))
        .map_err(|e| match e.code {
            crate::core::Code::InvalidArgument => args.error(arg, &e.message),
            _ => send_failed(e),
        })
}

/// An optional string field of an options table.
fn string_field(t: &Table, name: &str) -> Result<Option<String>, String> {
    string_value(name, t.raw_get::<Value>(name).unwrap_or(Value::Nil))
}

/// The value of an optional string field `name`.
fn string_value(name: &str, v: Value) -> Result<Option<String>, String> {
    match v {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(s.to_string_lossy())),
        _ => Err(format!("expects {name} to be a string")),
    }
}

/// Sends a checked batch, or, during a call, holds it back to be committed with the call's
/// other sends when the call returns (`vm::Deferred`). Either way every error the send could
/// raise (bad item, unknown recipient) is raised here, by the call that caused it. A batch
/// of online-only items with nothing held back before it is pushed at once.
fn send_or_defer(lua: &Lua, batch: Vec<NewNotification>) -> NkResult<()> {
    let rt = shared(lua)?;
    let notifications = &rt.core.notifications;
    Notifications::validate(&batch).map_err(send_failed)?;
    rt.wait(notifications.check_recipients(&batch))
        .map_err(send_failed)?;
    let data = lua
        .app_data_ref::<VmData>()
        .ok_or_else(|| NkError("runtime unavailable".into()))?;
    let mut deferred = data.deferred.borrow_mut();
    let online_only = !batch.iter().any(|n| n.persistent);
    if !deferred.active || (deferred.calls.is_empty() && online_only) {
        drop(deferred);
        rt.wait(notifications.send(batch)).map_err(send_failed)?;
        return Ok(());
    }
    if deferred.items + batch.len() > Deferred::MAX_ITEMS {
        let held = deferred.take();
        drop(deferred);
        rt.wait(notifications.send_calls(held))
            .map_err(send_failed)?;
        deferred = data.deferred.borrow_mut();
    }
    deferred.items += batch.len();
    deferred.calls.push(batch);
    Ok(())
}

/// Commits the sends held back so far in this call, so that what the script does next
/// (list, get, delete, update, send to all) sees them and happens after them.
pub(super) fn flush_deferred(lua: &Lua) -> NkResult<()> {
    let Some(data) = lua.app_data_ref::<VmData>() else {
        return Ok(());
    };
    let held = data.deferred.borrow_mut().take();
    drop(data);
    if held.is_empty() {
        return Ok(());
    }
    let rt = shared(lua)?;
    rt.wait(rt.core.notifications.send_calls(held))
        .map_err(send_failed)?;
    Ok(())
}

/// `nk.notifications_send({ {user_id=, subject=, content=, code=, sender_id=?, persistent=?}, ... })`.
fn notifications_send(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let batch = item_tables(args, "expects a valid set of notifications")?
        .iter()
        .map(|item| one_notification(args, item))
        .collect::<NkResult<Vec<_>>>()?;
    if batch.iter().all(|n| n.keys.is_empty()) {
        send_or_defer(lua, batch)?;
        return ret(lua, ());
    }
    let sent = send_keyed_now(lua, args, 1, batch)?;
    let out = lua.create_table()?;
    for (i, s) in sent.iter().enumerate() {
        let t = lua.create_table()?;
        t.set("id", s.notification.id.to_string())?;
        t.set("duplicate", s.duplicate)?;
        out.raw_set(i + 1, t)?;
    }
    ret(lua, out)
}

/// One item of `notifications_send`, read in a single pass over its fields: a batch of 1,000
/// is 1,000 of these, so no field is looked up twice and no key is copied.
fn one_notification(args: &Args, item: &Table) -> NkResult<NewNotification> {
    let fail = |msg: &str| args.error(1, msg);
    let mut subject = String::new();
    let mut content: Option<String> = None;
    let mut code: i64 = 0;
    let mut user_id: Option<Uuid> = None;
    let mut sender_id = Uuid::nil();
    let mut persistent = false;
    let (mut ttl, mut expires_at) = (None, None);
    let mut keys = SendKeys::default();
    for pair in item.pairs::<Value, Value>() {
        let (key, value) = pair?;
        let Value::String(key) = key else { continue };
        let key = key.as_bytes();
        match (&*key, value) {
            (b"persistent", Value::Boolean(b)) => persistent = b,
            (b"persistent", _) => return Err(fail("expects persistent to be boolean")),
            (b"subject", Value::String(s)) => subject = s.to_string_lossy(),
            (b"subject", _) => return Err(fail("expects subject to be string")),
            (b"content", Value::Table(t)) => {
                content = Some(
                    convert::content_to_json(&t)
                        .map_err(|e| fail(&format!("failed to convert content: {}", e.0)))?,
                )
            }
            (b"content", _) => return Err(fail("expects content to be a table")),
            (b"code", Value::Integer(n)) => code = n,
            (b"code", Value::Number(n)) if n.is_finite() => code = n.trunc() as i64,
            (b"code", _) => return Err(fail("expects code to be number")),
            (b"user_id", Value::String(s)) => {
                user_id = Some(
                    Uuid::try_parse_ascii(&s.as_bytes())
                        .map_err(|_| fail("expects user_id to be a valid UUID"))?,
                )
            }
            (b"user_id", _) => return Err(fail("expects user_id to be string")),
            (b"sender_id", Value::String(s)) => {
                sender_id = Uuid::try_parse_ascii(&s.as_bytes())
                    .map_err(|_| fail("expects sender_id to be a valid UUID"))?
            }
            (b"sender_id", _) => return Err(fail("expects sender_id to be string")),
            (b"ttl", v) => ttl = int_value("ttl", v).map_err(|m| fail(&m))?,
            (b"expires_at", v) => expires_at = int_value("expires_at", v).map_err(|m| fail(&m))?,
            (b"dedupe_key", v) => {
                keys.dedupe_key = string_value("dedupe_key", v).map_err(|m| fail(&m))?
            }
            (b"collapse_key", v) => {
                keys.collapse_key = string_value("collapse_key", v).map_err(|m| fail(&m))?
            }
            _ => {}
        }
        if &*key == b"code" && code <= 0 {
            return Err(fail("expects code to number above 0"));
        }
    }
    if subject.is_empty() {
        return Err(fail("expects subject to be provided and to be non-empty"));
    }
    let Some(content) = content else {
        return Err(fail("expects content to be provided and be valid JSON"));
    };
    let Some(user_id) = user_id else {
        return Err(fail("expects user_id to be provided and be a valid UUID"));
    };
    if code == 0 || code > i32::MAX as i64 {
        return Err(fail("expects code to be provided and be a number above 0"));
    }
    let expire_time = expiry(ttl, expires_at, now_micros()).map_err(|e| fail(&e.message))?;
    Ok(NewNotification {
        user_id,
        subject,
        content,
        code: code as i32,
        sender_id: Some(sender_id),
        persistent,
        expire_time,
        keys,
    })
}

/// An optional whole-number field of an options table.
fn int_field(t: &Table, name: &str) -> Result<Option<i64>, String> {
    int_value(name, t.raw_get::<Value>(name).unwrap_or(Value::Nil))
}

/// The value of an optional whole-number field `name`.
fn int_value(name: &str, v: Value) -> Result<Option<i64>, String> {
    match v {
        Value::Nil => Ok(None),
        Value::Integer(n) => Ok(Some(n)),
        Value::Number(n) if n.is_finite() && n.fract() == 0.0 => Ok(Some(n as i64)),
        _ => Err(format!("expects {name} to be a whole number of seconds")),
    }
}

/// `nk.notification_send_all(subject, content, code, persistent?)`.
fn notification_send_all(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let (subject, content) = subject_and_content(args, 1)?;
    let code = args.check_int(3)?;
    if code <= 0 || code > i32::MAX as i64 {
        return Err(args.error(3, "expects code number to be a positive integer"));
    }
    let persistent = args.opt_bool(4, false)?;
    flush_deferred(lua)?;
    let rt = shared(lua)?;
    rt.wait(
        rt.core
            .notifications
            .send_all(subject, content, code as i32, persistent),
    )
    .map_err(send_failed)?;
    ret(lua, ())
}

/// `nk.notifications_list(user_id, limit = 100, cursor?)` -> list, cursor (nil on the last page).
fn notifications_list(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let user = args.check_string(1)?;
    let user_id =
        Uuid::parse_str(&user).map_err(|_| args.error(1, "expects user_id to be a valid uuid"))?;
    let limit = args.opt_int(2, 100)?;
    if !(1..=1000).contains(&limit) {
        return Err(args.error(2, "expects limit to be value between 1 and 1000"));
    }
    let cursor = args.opt_string(3)?.unwrap_or_default();
    flush_deferred(lua)?;
    let rt = shared(lua)?;
    let page = rt
        .wait(rt.core.notifications.list(
            user_id,
            limit as usize,
            &cursor,
            CursorMode::NextPageOnly,
        ))
        .map_err(|e| {
            let detail = if e.code == Code::InvalidArgument {
                format!("rpc error: code = InvalidArgument desc = {}", e.message)
            } else {
                e.message
            };
            NkError(format!("failed to list notifications: {detail}"))
        })?;
    let list = lua.create_table_with_capacity(page.notifications.len(), 0)?;
    for (i, n) in page.notifications.iter().enumerate() {
        let t = lua.create_table()?;
        t.set("id", n.id.to_string())?;
        t.set("subject", n.subject.as_str())?;
        t.set("content", n.content.as_str())?;
        t.set("code", n.code)?;
        let sender = match n.sender_id {
            Some(s) if !s.is_nil() => s.to_string(),
            _ => String::new(),
        };
        t.set("senderId", sender)?;
        t.set("persistent", true)?;
        t.set("createTime", n.create_time.div_euclid(1_000_000))?;
        list.raw_set(i + 1, t)?;
    }
    ret(lua, (list, page.cursor))
}

/// An `ids` argument: a non-empty array of UUID strings, or an empty table (no ids).
pub(super) fn id_list(args: &Args, n: usize) -> NkResult<Vec<Uuid>> {
    let t = args.check_table(n)?;
    let len = t.raw_len();
    if len == 0 {
        return match t.pairs::<Value, Value>().next() {
            None => Ok(Vec::new()),
            Some(_) => Err(args.error(n, "invalid user ids list")),
        };
    }
    if len > MAX_BATCH {
        return Err(args.error(n, &format!("expects at most {MAX_BATCH} ids")));
    }
    let mut ids = Vec::with_capacity(len);
    for i in 1..=len {
        let id = match t.raw_get::<Value>(i)? {
            Value::String(s) if !s.as_bytes().is_empty() => s.to_string_lossy(),
            _ => return Err(args.error(n, "each notification id must be a string")),
        };
        ids.push(
            Uuid::parse_str(&id)
                .map_err(|_| args.error(n, "each notification id must be a valid id"))?,
        );
    }
    Ok(ids)
}

fn opt_user(args: &Args, n: usize) -> NkResult<Option<Uuid>> {
    match args.opt_string(n)?.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => Uuid::parse_str(s)
            .map(Some)
            .map_err(|_| args.error(n, "expects user_id to be a valid UUID")),
    }
}

fn get_table(lua: &Lua, n: &Notification) -> NkResult<Table> {
    let t = lua.create_table()?;
    t.set("code", n.code)?;
    let content = match convert::decode(lua, &n.content) {
        Ok(Value::Table(c)) if !n.content.trim_start().starts_with('[') => c,
        _ => lua.create_table()?,
    };
    t.set("content", content)?;
    if let Some(s) = n.sender_id.filter(|s| !s.is_nil()) {
        t.set("sender_id", s.to_string())?;
    }
    t.set("subject", n.subject.as_str())?;
    t.set("user_id", n.user_id.to_string())?;
    t.set("create_time", n.create_time.div_euclid(1_000_000))?;
    t.set("persistent", true)?;
    Ok(t)
}

/// `nk.notifications_get_id(ids, user_id?)`: stored notifications by id (no `id` key, as Nakama).
fn notifications_get_id(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let ids = id_list(args, 1)?;
    let user = opt_user(args, 2)?;
    if ids.is_empty() {
        return ret(lua, lua.create_table()?);
    }
    flush_deferred(lua)?;
    let rt = shared(lua)?;
    let found = rt
        .wait(rt.core.notifications.get(ids, user))
        .map_err(|e| NkError(format!("failed to get notifications: {}", e.message)))?;
    let out = lua.create_table_with_capacity(found.len(), 0)?;
    for (i, n) in found.iter().enumerate() {
        out.raw_set(i + 1, get_table(lua, n)?)?;
    }
    ret(lua, out)
}

/// `nk.notifications_delete({ {user_id=, notification_id=}, ... })`: each only if it is that user's.
fn notifications_delete(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let mut per_user: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    for item in item_tables(args, "expects a valid set of notifications")? {
        let user_id = match item.get::<Value>("user_id")? {
            Value::Nil => Uuid::nil(),
            Value::String(s) => Uuid::parse_str(&s.to_string_lossy())
                .map_err(|_| args.error(1, "expects user_id to be a valid UUID"))?,
            _ => return Err(args.error(1, "expects user_id to be string")),
        };
        let id = match item.get::<Value>("notification_id")? {
            Value::Nil => {
                return Err(NkError(format!(
                    "failed to delete notifications: {}",
                    uuid_syntax("")
                )))
            }
            Value::String(s) => Uuid::parse_str(&s.to_string_lossy())
                .map_err(|_| args.error(1, "expects notification_id to be a valid UUID"))?,
            _ => return Err(args.error(1, "expects notification_id to be string")),
        };
        per_user.entry(user_id).or_default().push(id);
    }
    flush_deferred(lua)?;
    let rt = shared(lua)?;
    for (user, ids) in per_user {
        rt.wait(rt.core.notifications.delete(ids, Some(user)))
            .map_err(|e| NkError(format!("failed to delete notifications: {}", e.message)))?;
    }
    ret(lua, ())
}

/// `nk.notifications_delete_id(ids, user_id?)`: without `user_id`, whoever owns them.
fn notifications_delete_id(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let ids = id_list(args, 1)?;
    let user = opt_user(args, 2)?;
    flush_deferred(lua)?;
    let rt = shared(lua)?;
    rt.wait(rt.core.notifications.delete(ids, user))
        .map_err(|e| NkError(format!("failed to delete notifications: {}", e.message)))?;
    ret(lua, ())
}

/// `nk.notifications_update({ {id=, subject=?, content=?, sender=?}, ... })`: one transaction.
fn notifications_update(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let mut updates = Vec::new();
    for item in item_tables(args, "expects a valid set of data")? {
        let id = match item.get::<Value>("id")? {
            Value::Nil => None,
            Value::String(s) => Some(
                Uuid::parse_str(&s.to_string_lossy())
                    .map_err(|_| args.error(1, "expects user_id to be a valid ID"))?,
            ),
            _ => return Err(args.error(1, "expects id to be string")),
        };
        let content = match item.get::<Value>("content")? {
            Value::Nil => None,
            Value::Table(t) => Some(
                convert::content_to_json(&t)
                    .map_err(|e| args.error(1, &format!("failed to convert content: {}", e.0)))?,
            ),
            _ => return Err(args.error(1, "expects content to be table")),
        };
        let subject = match item.get::<Value>("subject")? {
            Value::Nil => None,
            Value::String(s) if s.as_bytes().is_empty() => {
                return Err(args.error(1, "expects subject to be a non-empty string"))
            }
            Value::String(s) => Some(s.to_string_lossy()),
            _ => return Err(args.error(1, "expects subject to be string")),
        };
        let sender_id = match item.get::<Value>("sender")? {
            Value::Nil => None,
            Value::String(s) if s.as_bytes().is_empty() => {
                return Err(args.error(1, "expects sender to be a non-empty string"))
            }
            Value::String(s) => {
                let text = s.to_string_lossy();
                Some(Uuid::parse_str(&text).map_err(|_| {
                    NkError(format!(
                        "failed to update notifications: failed to update notifications: {}",
                        uuid_syntax(&text)
                    ))
                })?)
            }
            _ => return Err(args.error(1, "expects sender to be string")),
        };
        if let Some(id) = id {
            updates.push(NotificationUpdate {
                id,
                subject,
                content,
                sender_id,
            });
        }
    }
    flush_deferred(lua)?;
    let rt = shared(lua)?;
    rt.wait(rt.core.notifications.update(updates))
        .map_err(|e| {
            NkError(format!(
                "failed to update notifications: failed to update notifications: {}",
                e.message
            ))
        })?;
    ret(lua, ())
}
