//! Reading users from scripts: `users_get_id`, `users_get_username`, `account_get_id`.

use mlua::{Lua, MultiValue, Table, Value};
use uuid::Uuid;

use super::{ret, shared, Args, NkError, NkResult, Raw};
use crate::core::accounts::MAX_LOOKUP;
use crate::core::store::UserRecord;
use crate::runtime::convert;

pub const FUNCTIONS: &[(&str, Raw)] = &[
    ("users_get_id", users_get_id),
    ("users_get_username", users_get_username),
    ("account_get_id", account_get_id),
    ("accounts_get_id", accounts_get_id),
    ("users_ban_id", users_ban_id),
    ("users_unban_id", users_unban_id),
];

/// The `ids` argument of users_ban_id / users_unban_id (Nakama's messages).
fn ban_ids(args: &Args) -> NkResult<Vec<Uuid>> {
    let Value::Table(t) = args.get(1) else {
        return Err(args.error(1, "invalid user id list"));
    };
    let len = t.raw_len();
    if len == 0 {
        return match t.pairs::<Value, Value>().next() {
            None => Ok(Vec::new()),
            Some(_) => Err(args.error(1, "invalid user id data")),
        };
    }
    if len > MAX_LOOKUP {
        return Err(args.error(1, &format!("expects at most {MAX_LOOKUP} ids")));
    }
    let mut ids = Vec::with_capacity(len);
    for v in t.sequence_values::<Value>() {
        let Value::String(s) = v? else {
            return Err(args.error(1, "each user id must be a string"));
        };
        let text = s.to_string_lossy();
        if text.is_empty() {
            return Err(args.error(1, "each user id must be a string"));
        }
        ids.push(
            Uuid::parse_str(&text)
                .map_err(|_| args.error(1, "each user id must be a valid id string"))?,
        );
    }
    Ok(ids)
}

/// `nk.users_ban_id(ids)`: each banned user's sockets get -8 and close; their tokens die.
fn users_ban_id(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let ids = ban_ids(args)?;
    if !ids.is_empty() {
        let rt = shared(lua)?;
        rt.wait(rt.core.accounts.ban(&ids))
            .map_err(|e| NkError(format!("failed to ban users: {}", e.message)))?;
    }
    ret(lua, ())
}

/// `nk.users_unban_id(ids)`.
fn users_unban_id(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let ids = ban_ids(args)?;
    if !ids.is_empty() {
        let rt = shared(lua)?;
        rt.wait(rt.core.accounts.unban(&ids))
            .map_err(|e| NkError(format!("failed to unban users: {}", e.message)))?;
    }
    ret(lua, ())
}

/// A Lua array of strings, at most `max` long.
fn string_list(args: &Args, n: usize, what: &str, max: usize) -> NkResult<Vec<String>> {
    let Some(t) = args.opt_table(n)? else {
        return Ok(Vec::new());
    };
    let len = t.raw_len();
    if len == 0 && t.pairs::<Value, Value>().next().is_some() {
        return Err(args.error(n, &format!("invalid {what}s list")));
    }
    if len > max {
        return Err(args.error(n, &format!("expects at most {max} {what}")));
    }
    let mut out = Vec::with_capacity(len);
    for v in t.sequence_values::<Value>() {
        match v? {
            Value::String(s) if !s.as_bytes().is_empty() => out.push(s.to_string_lossy()),
            _ => return Err(args.error(n, &format!("each {what} must be a string"))),
        }
    }
    Ok(out)
}

pub(super) fn user_table(lua: &Lua, u: &UserRecord, online: bool) -> NkResult<Table> {
    let t = lua.create_table()?;
    t.set("user_id", u.id.to_string())?;
    t.set("username", u.username.as_str())?;
    t.set("display_name", u.display_name.as_str())?;
    t.set("avatar_url", u.avatar_url.as_str())?;
    t.set("lang_tag", u.lang_tag.as_str())?;
    t.set("location", u.location.as_str())?;
    t.set("timezone", u.timezone.as_str())?;
    t.set(
        "metadata",
        convert::decode(lua, &u.metadata).unwrap_or(Value::Nil),
    )?;
    t.set("online", online)?;
    t.set("edge_count", u.edge_count)?;
    t.set("create_time", u.create_time)?;
    t.set("update_time", u.update_time)?;
    Ok(t)
}

fn users_reply(lua: &Lua, users: Vec<UserRecord>) -> NkResult<MultiValue> {
    let shared = shared(lua)?;
    let ids: Vec<Uuid> = users.iter().map(|u| u.id).collect();
    let online = shared.wait(shared.core.presence.online_among(&ids));
    let out = lua.create_table()?;
    for (i, u) in users.iter().enumerate() {
        out.raw_set(i + 1, user_table(lua, u, online.contains(&u.id))?)?;
    }
    ret(lua, out)
}

/// `nk.users_get_id(user_ids, facebook_ids?)`: unknown ids are skipped.
fn users_get_id(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let ids = string_list(args, 1, "user id", crate::core::accounts::MAX_LOOKUP)?
        .iter()
        .map(|s| {
            Uuid::parse_str(s).map_err(|_| args.error(1, "each user id must be a valid id string"))
        })
        .collect::<NkResult<Vec<_>>>()?;
    let shared = shared(lua)?;
    let users = shared
        .wait(shared.core.accounts.users(&ids))
        .map_err(|e| NkError(format!("failed to get users: {}", e.message)))?;
    users_reply(lua, users)
}

/// `nk.users_get_username(usernames)`.
fn users_get_username(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let names = string_list(args, 1, "username", crate::core::accounts::MAX_LOOKUP)?;
    let shared = shared(lua)?;
    let users = shared
        .wait(shared.core.accounts.users_by_username(&names))
        .map_err(|e| NkError(format!("failed to get users: {}", e.message)))?;
    users_reply(lua, users)
}

/// `nk.account_get_id(user_id)`.
fn account_get_id(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let id = args.check_string(1)?;
    let id = Uuid::parse_str(&id).map_err(|_| args.error(1, "invalid user id"))?;
    let shared = shared(lua)?;
    let account = shared
        .wait(shared.core.accounts.account(id))
        .map_err(|e| NkError(format!("failed to get account for user_id: {}", e.message)))?;
    let online = shared
        .wait(shared.core.presence.online_among(&[id]))
        .contains(&id);
    ret(lua, account_table(lua, &account, online)?)
}

/// `nk.accounts_get_id(user_ids?, device_ids?)`: the accounts of those users and of the
/// owners of those devices, each once; unknown ids are skipped.
fn accounts_get_id(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let ids = id_values(args, 1, "user id")?
        .iter()
        .map(|s| {
            Uuid::parse_str(s)
                .map_err(|_| args.error(1, "user id must be a valid identifier string"))
        })
        .collect::<NkResult<Vec<_>>>()?;
    let devices = id_values(args, 2, "device id")?;
    let out = lua.create_table()?;
    if ids.is_empty() && devices.is_empty() {
        return ret(lua, out);
    }
    let shared = shared(lua)?;
    let accounts = shared
        .wait(shared.core.accounts.accounts(&ids, &devices))
        .map_err(|e| NkError(format!("failed to get accounts: {}", e.message)))?;
    let user_ids: Vec<Uuid> = accounts.iter().map(|a| a.user.id).collect();
    let online = shared.wait(shared.core.presence.online_among(&user_ids));
    for (i, account) in accounts.iter().enumerate() {
        let t = account_table(lua, account, online.contains(&account.user.id))?;
        out.raw_set(i + 1, t)?;
    }
    ret(lua, out)
}

/// The values of an optional list argument, as Nakama's `accounts_get_id` reads it: only a
/// table with an array part counts, and then every value must be a string.
fn id_values(args: &Args, n: usize, what: &str) -> NkResult<Vec<String>> {
    let Some(t) = args.opt_table(n)? else {
        return Ok(Vec::new());
    };
    if t.raw_len() == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        let (_, v) = pair?;
        let Value::String(s) = v else {
            return Err(args.error(n, &format!("{what} must be a string")));
        };
        if out.len() == crate::core::accounts::MAX_LOOKUP {
            return Err(args.error(
                n,
                &format!(
                    "expects at most {} {what}s",
                    crate::core::accounts::MAX_LOOKUP
                ),
            ));
        }
        out.push(s.to_string_lossy());
    }
    Ok(out)
}

/// An account as `account_get_id` returns it: the user's fields at the top level and under
/// `user`, with wallet, email, custom id, devices and disable time.
fn account_table(
    lua: &Lua,
    account: &crate::core::accounts::Account,
    online: bool,
) -> NkResult<Table> {
    let t = user_table(lua, &account.user, online)?;
    t.set("user", user_table(lua, &account.user, online)?)?;
    t.set("wallet", lua.create_table()?)?;
    if let Some(email) = &account.user.email {
        t.set("email", email.as_str())?;
    }
    if let Some(custom) = &account.user.custom_id {
        t.set("custom_id", custom.as_str())?;
    }
    let devices = lua.create_table()?;
    for (i, d) in account.devices.iter().enumerate() {
        let dt = lua.create_table()?;
        dt.set("id", d.as_str())?;
        devices.raw_set(i + 1, dt)?;
    }
    t.set("devices", devices)?;
    t.set("disable_time", account.user.disable_time)?;
    Ok(t)
}
