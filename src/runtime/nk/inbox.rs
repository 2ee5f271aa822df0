//! The inbox extension for scripts (`core::inbox`): mark a user's notifications read, unread
//! or seen, and read their unread counts. Not in Nakama; the names follow its
//! `notifications_*` family. Each flushes the call's deferred sends first, so a script that
//! sends and then marks sees its own rows.

use mlua::{Lua, MultiValue, Value};
use uuid::Uuid;

use super::notifications::{flush_deferred, id_list};
use super::{ret, shared, Args, NkError, NkResult, Raw};
use crate::core::store::InboxMark;

pub const FUNCTIONS: &[(&str, Raw)] = &[
    ("notifications_mark_read", mark_read),
    ("notifications_mark_unread", mark_unread),
    ("notifications_mark_seen", mark_seen),
    ("notifications_unread_count", unread_count),
];

fn user_arg(args: &Args) -> NkResult<Uuid> {
    let text = args.check_string(1)?;
    Uuid::parse_str(&text).map_err(|_| args.error(1, "expects user_id to be a valid UUID"))
}

/// `nk.notifications_mark_*(user_id, ids?)`: returns how many changed state. Without ids (nil)
/// every notification of the user, except for unread, which needs ids.
fn mark(lua: &Lua, args: &Args, mark: InboxMark) -> NkResult<MultiValue> {
    let user = user_arg(args)?;
    let ids = match args.get(2) {
        Value::Nil if mark != InboxMark::Unread => None,
        Value::Nil => return Err(args.error(2, "expects a list of notification ids")),
        _ => {
            let ids = id_list(args, 2)?;
            if ids.is_empty() {
                return ret(lua, 0);
            }
            Some(ids)
        }
    };
    flush_deferred(lua)?;
    let rt = shared(lua)?;
    let (changed, _) = rt
        .wait(rt.core.inbox.mark(user, ids, mark))
        .map_err(|e| NkError(format!("failed to mark notifications: {}", e.message)))?;
    ret(lua, changed as i64)
}

fn mark_read(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    mark(lua, args, InboxMark::Read)
}

fn mark_unread(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    mark(lua, args, InboxMark::Unread)
}

fn mark_seen(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    mark(lua, args, InboxMark::Seen)
}

/// `nk.notifications_unread_count(user_id)` → `{ unread = n, unseen = n, by_code = { [code] = n } }`.
fn unread_count(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let user = user_arg(args)?;
    flush_deferred(lua)?;
    let rt = shared(lua)?;
    let counts = rt
        .wait(rt.core.inbox.counts(user))
        .map_err(|e| NkError(format!("failed to count notifications: {}", e.message)))?;
    let t = lua.create_table()?;
    t.set("unread", counts.unread)?;
    t.set("unseen", counts.unseen)?;
    let by_code = lua.create_table()?;
    for (code, n) in &counts.unread_by_code {
        by_code.set(*code, *n)?;
    }
    t.set("by_code", by_code)?;
    ret(lua, t)
}
