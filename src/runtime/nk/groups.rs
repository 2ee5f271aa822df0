//! Groups from scripts: `group_create`, `group_users_add`, `group_users_list`,
//! `user_groups_list`, with Nakama's argument order and messages. They go through
//! `core::groups`, so an add from a script sends -4 like the REST route (with the nil
//! sender when no caller is named, as Nakama's server-side calls do).

use mlua::{Lua, MultiValue, Table, Value};
use uuid::Uuid;

use super::accounts::user_table;
use super::{ret, shared, Args, NkError, NkResult, Raw};
use crate::core::groups::{MemberOp, NewGroup, DEFAULT_MAX_COUNT, MAX_TARGETS};
use crate::core::store::GroupRecord;
use crate::runtime::convert;

pub const FUNCTIONS: &[(&str, Raw)] = &[
    ("group_create", group_create),
    ("group_users_add", group_users_add),
    ("group_users_list", group_users_list),
    ("user_groups_list", user_groups_list),
];

fn group_table(lua: &Lua, g: &GroupRecord) -> NkResult<Table> {
    let t = lua.create_table()?;
    t.set("id", g.id.to_string())?;
    t.set("creator_id", g.creator_id.to_string())?;
    t.set("name", g.name.as_str())?;
    t.set("description", g.description.as_str())?;
    t.set("avatar_url", g.avatar_url.as_str())?;
    t.set("lang_tag", g.lang_tag.as_str())?;
    t.set(
        "metadata",
        convert::decode(lua, &g.metadata).unwrap_or(Value::Nil),
    )?;
    t.set("open", g.open)?;
    t.set("edge_count", g.edge_count)?;
    t.set("max_count", g.max_count)?;
    t.set("create_time", g.create_time)?;
    t.set("update_time", g.update_time)?;
    Ok(t)
}

/// `nk.group_create(user_id, name, creator_id?, lang_tag?, description?, avatar_url?, open?,
/// metadata?, max_count?)` -> the group.
fn group_create(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let owner = Uuid::parse_str(&args.check_string(1)?)
        .map_err(|_| args.error(1, "expects user ID to be a valid identifier"))?;
    let name = args.check_string(2)?;
    if name.is_empty() {
        return Err(args.error(2, "expects group name not be empty"));
    }
    let creator = match args.opt_string(3)?.as_deref() {
        None | Some("") => Uuid::nil(),
        Some(s) => Uuid::parse_str(s)
            .map_err(|_| args.error(3, "expects owner ID to be a valid identifier"))?,
    };
    let metadata = match args.opt_table(8)? {
        None => "{}".to_string(),
        Some(t) => convert::content_to_json(&t)
            .map_err(|e| NkError(format!("error encoding metadata: {}", e.0)))?,
    };
    let max_count = args.opt_int(9, DEFAULT_MAX_COUNT)?;
    if max_count < 1 {
        return Err(args.error(9, "expects max_count to be >= 1"));
    }
    let group = NewGroup {
        name,
        lang_tag: args.opt_string(4)?.unwrap_or_default(),
        description: args.opt_string(5)?.unwrap_or_default(),
        avatar_url: args.opt_string(6)?.unwrap_or_default(),
        open: args.opt_bool(7, false)?,
        metadata,
        max_count,
    };
    let rt = shared(lua)?;
    let created = rt
        .wait(rt.core.groups.create(owner, creator, group))
        .map_err(|e| {
            let why = if e.message == "Group name is in use." {
                "group name in use".to_string()
            } else {
                e.message
            };
            NkError(format!("error while trying to create group: {why}"))
        })?;
    ret(lua, group_table(lua, &created)?)
}

/// `nk.group_users_add(group_id, user_ids, caller_id?)`.
fn group_users_add(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let group = Uuid::parse_str(&args.check_string(1)?)
        .map_err(|_| args.error(1, "expects group ID to be a valid identifier"))?;
    let list = args.check_table(2)?;
    let mut users = Vec::new();
    for v in list.sequence_values::<Value>() {
        if users.len() >= MAX_TARGETS {
            return Err(args.error(2, &format!("expects at most {MAX_TARGETS} user IDs")));
        }
        let Value::String(s) = v? else {
            return Err(args.error(2, "expects each user ID to be a string"));
        };
        let id = Uuid::parse_str(&s.to_string_lossy())
            .map_err(|_| args.error(2, "expects each user ID to be a valid identifier"))?;
        if id.is_nil() {
            return Err(args.error(2, "cannot add the root user"));
        }
        users.push(id);
    }
    let caller =
        match args.opt_string(3)?.as_deref() {
            None | Some("") => None,
            Some(s) => Some(Uuid::parse_str(s).map_err(|_| {
                args.error(3, "expects caller ID to be empty or a valid identifier")
            })?),
        };
    if users.is_empty() {
        return ret(lua, ());
    }
    let rt = shared(lua)?;
    rt.wait(rt.core.groups.members(caller, group, MemberOp::Add, users))
        .map_err(|e| {
            let why = match e.message.as_str() {
                "Group not found or permission denied." => "group permission denied".into(),
                "Group not found." => "group not found".into(),
                "Group is full." => "group is full".into(),
                "One or more users not found." => "user not found".into(),
                _ => e.message,
            };
            NkError(format!(
                "error while trying to add users into a group: {why}"
            ))
        })?;
    ret(lua, ())
}

/// `nk.group_users_list(group_id, limit = 100, state?, cursor?)` -> users, cursor.
fn group_users_list(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let group = Uuid::parse_str(&args.check_string(1)?)
        .map_err(|_| args.error(1, "expects group ID to be a valid identifier"))?;
    let limit = args.opt_int(2, 100)?;
    if !(1..=10_000).contains(&limit) {
        return Err(args.error(2, "expects limit to be 1-10000"));
    }
    let state = list_state(args)?;
    let cursor = args.opt_string(4)?.unwrap_or_default();
    let rt = shared(lua)?;
    let groups = &rt.core.groups;
    let page = rt
        .wait(groups.users(group, limit as usize, state, &cursor))
        .map_err(|e| {
            NkError(format!(
                "error while trying to list users in a group: {}",
                e.message
            ))
        })?;
    let list = lua.create_table()?;
    for (i, (user, state, online)) in page.items.iter().enumerate() {
        let t = lua.create_table()?;
        t.set("user", user_table(lua, user, *online)?)?;
        t.set("state", *state)?;
        list.raw_set(i + 1, t)?;
    }
    ret(lua, (list, page.cursor))
}

fn list_state(args: &Args) -> NkResult<Option<i32>> {
    match args.opt_int(3, -1)? {
        -1 => Ok(None),
        s @ 0..=4 => Ok(Some(s as i32)),
        _ => Err(args.error(3, "expects state to be 0-4")),
    }
}

/// `nk.user_groups_list(user_id, limit = 100, state?, cursor?)` -> groups, cursor.
fn user_groups_list(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let user = Uuid::parse_str(&args.check_string(1)?)
        .map_err(|_| args.error(1, "expects user ID to be a valid identifier"))?;
    let limit = args.opt_int(2, 100)?;
    if !(1..=100).contains(&limit) {
        return Err(args.error(2, "expects limit to be 1-100"));
    }
    let state = list_state(args)?;
    let cursor = args.opt_string(4)?.unwrap_or_default();
    let rt = shared(lua)?;
    let page = rt
        .wait(rt.core.groups.of_user(user, limit as usize, state, &cursor))
        .map_err(|e| {
            NkError(format!(
                "error while trying to list groups for a user: {}",
                e.message
            ))
        })?;
    let list = lua.create_table()?;
    for (i, (group, state)) in page.items.iter().enumerate() {
        let t = lua.create_table()?;
        t.set("group", group_table(lua, group)?)?;
        t.set("state", *state)?;
        list.raw_set(i + 1, t)?;
    }
    ret(lua, (list, page.cursor))
}
