//! Friends from scripts: `friends_list`, `friends_add`, `friends_delete`, `friends_block`,
//! with Nakama's argument order and messages (runtime_lua_nakama.go). They act as the user
//! named by the first two arguments and go through `core::friends`, so a script's invite
//! sends the same -2/-3/-9 notifications as the REST routes.

use mlua::{Lua, MultiValue, Value};
use uuid::Uuid;

use super::accounts::user_table;
use super::{ret, shared, Args, NkError, NkResult, Raw};
use crate::core::friends::{FriendAction as Action, MAX_LIST, MAX_TARGETS};
use crate::runtime::convert;

pub const FUNCTIONS: &[(&str, Raw)] = &[
    ("friends_list", friends_list),
    ("friends_add", friends_add),
    ("friends_delete", friends_delete),
    ("friends_block", friends_block),
];

fn acting_user(args: &Args) -> NkResult<Uuid> {
    let raw = args.check_string(1)?;
    Uuid::parse_str(&raw).map_err(|_| args.error(1, "expects user ID to be a valid identifier"))
}

/// `nk.friends_list(user_id, limit = 100, state?, cursor?)` -> friends, cursor (nil at the end).
fn friends_list(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let user_id = acting_user(args)?;
    let limit = args.opt_int(2, 100)?;
    if !(1..=MAX_LIST as i64).contains(&limit) {
        return Err(args.error(2, "expects limit to be 1-1000"));
    }
    let state = match args.opt_int(3, -1)? {
        -1 => None,
        s @ 0..=3 => Some(s as i32),
        _ => return Err(args.error(3, "expects state to be 0-3")),
    };
    let cursor = args.opt_string(4)?.unwrap_or_default();
    let rt = shared(lua)?;
    let page = rt
        .wait(
            rt.core
                .friends
                .list(user_id, limit as usize, state, &cursor),
        )
        .map_err(|e| {
            let why = if e.message == crate::core::friends::INVALID_CURSOR {
                "friend cursor invalid".to_string()
            } else {
                e.message
            };
            NkError(format!(
                "error while trying to list friends for a user: {why}"
            ))
        })?;
    let list = lua.create_table_with_capacity(page.friends.len(), 0)?;
    for (i, f) in page.friends.iter().enumerate() {
        let t = lua.create_table()?;
        t.set("state", f.edge.state)?;
        t.set("update_time", f.edge.update_time)?;
        t.set("user", user_table(lua, &f.edge.user, f.online)?)?;
        t.set(
            "metadata",
            convert::decode(lua, &f.edge.metadata).unwrap_or(Value::Nil),
        )?;
        list.raw_set(i + 1, t)?;
    }
    ret(lua, (list, page.cursor))
}

/// The error a failed `action` raises, before the reason.
fn failed(action: Action) -> &'static str {
    match action {
        Action::Add => "error adding friends",
        Action::Delete => "error deleting friends",
        Action::Block => "error blocking friends",
    }
}

/// The strings of an optional array argument; `list_error` when it is not an array.
fn strings(args: &Args, n: usize, list_error: &str, item_error: &str) -> NkResult<Vec<String>> {
    let Some(t) = args.opt_table(n)? else {
        return Ok(Vec::new());
    };
    let len = t.raw_len();
    if len == 0 && t.pairs::<Value, Value>().next().is_some() {
        return Err(args.error(n, list_error));
    }
    if len > MAX_TARGETS {
        return Err(args.error(n, &format!("expects at most {MAX_TARGETS} entries")));
    }
    let mut out = Vec::with_capacity(len);
    for v in t.sequence_values::<Value>() {
        match v? {
            Value::String(s) if !s.as_bytes().is_empty() => out.push(s.to_string_lossy()),
            _ => return Err(args.error(n, item_error)),
        }
    }
    Ok(out)
}

/// The shared body of `friends_add/delete/block(user_id, username, ids?, usernames?)`.
fn change(lua: &Lua, args: &Args, action: Action) -> NkResult<MultiValue> {
    let user_id = acting_user(args)?;
    let username = args.check_string(2)?;
    if username.is_empty() {
        return Err(args.error(2, "expects username string"));
    }
    let raw_ids = strings(
        args,
        3,
        "invalid user ids list",
        "each user id must be a string",
    )?;
    let mut ids = Vec::with_capacity(raw_ids.len());
    for raw in &raw_ids {
        let id = Uuid::parse_str(raw)
            .ok()
            .filter(|id| !id.is_nil())
            .ok_or_else(|| args.error(3, &format!("invalid user ID {raw}")))?;
        if id == user_id {
            return Err(args.error(3, action.self_error()));
        }
        ids.push(id);
    }
    let usernames = strings(
        args,
        4,
        "invalid username list",
        "each username must be a non-empty string",
    )?;
    if usernames.contains(&username) {
        return Err(args.error(4, action.self_error()));
    }
    let metadata = match (action, args.opt_table(5)?) {
        (Action::Add, Some(t)) => Some(
            convert::content_to_json(&t)
                .map_err(|e| args.error(5, &format!("failed to convert metadata: {}", e.0)))?,
        ),
        _ => None,
    };
    if ids.is_empty() && usernames.is_empty() {
        return ret(lua, ());
    }
    let rt = shared(lua)?;
    let friends = &rt.core.friends;
    let targets = rt
        .wait(friends.resolve(ids, &usernames))
        .map_err(|_| NkError(format!("error while trying to {} friends", action.verb())))?;
    let targets: Vec<Uuid> = targets.into_iter().filter(|t| *t != user_id).collect();
    if targets.is_empty() {
        return Err(NkError("no valid ID or username was provided".into()));
    }
    rt.wait(friends.apply(action, user_id, &username, targets, metadata))
        .map_err(|e| NkError(format!("{}: {}", failed(action), e.message)))?;
    ret(lua, ())
}

/// `nk.friends_add(user_id, username, ids?, usernames?, metadata?)`.
fn friends_add(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    change(lua, args, Action::Add)
}

/// `nk.friends_delete(user_id, username, ids?, usernames?)`.
fn friends_delete(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    change(lua, args, Action::Delete)
}

/// `nk.friends_block(user_id, username, ids?, usernames?)`.
fn friends_block(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    change(lua, args, Action::Block)
}
