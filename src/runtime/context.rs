//! What a Lua function learns about its call: the `context` table (NAKAMA-SPEC §5.4).

use std::collections::BTreeMap;

use std::os::raw::c_int;

use mlua::{ffi, Lua, Table};

use super::convert::{push_str, raise, table_size};
use uuid::Uuid;

/// Why a script is running; becomes `ctx.execution_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Rpc,
    Before,
    After,
    RunOnce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Rpc => "rpc",
            Mode::Before => "before",
            Mode::After => "after",
            Mode::RunOnce => "run_once",
        }
    }
}

/// The caller's side of a call, filled in by the door that received it.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    pub user_id: Option<Uuid>,
    pub username: Option<String>,
    pub vars: BTreeMap<String, String>,
    /// Unix seconds the caller's session token expires.
    pub session_exp: Option<i64>,
    /// Only for calls that came over the socket.
    pub session_id: Option<String>,
    pub lang: Option<String>,
    /// HTTP headers, each name with all its values; empty on the socket.
    pub headers: Vec<(String, Vec<String>)>,
    /// Query parameters (without `http_key`); empty on the socket.
    pub query_params: Vec<(String, Vec<String>)>,
    pub client_ip: Option<String>,
    pub client_port: Option<String>,
}

/// Node-level values every context carries.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node: String,
    pub version: String,
}

/// The most fields `to_table` sets.
const CONTEXT_FIELDS: c_int = 16;

/// Builds the Lua `context` table.
///
/// Built with the C API inside one protected call: through mlua's `Table::set` each of its
/// twenty-odd writes (and each header list) paid a stack guard, a registry push and a
/// reference, and the table was 7-10 % of an online RPC's server CPU (BENCHMARKS.md).
pub fn to_table(lua: &Lua, ctx: &CallContext, mode: Mode, node: &NodeInfo) -> mlua::Result<Table> {
    let mut user_buf = Uuid::encode_buffer();
    let user_id = ctx
        .user_id
        .map(|u| &*u.hyphenated().encode_lower(&mut user_buf));
    let mut trace_buf = Uuid::encode_buffer();
    let trace_id: &str = Uuid::new_v4().simple().encode_lower(&mut trace_buf);
    // SAFETY: only the C API on values pushed here, the stack room checked first, the stack
    // left with the one table; nothing below needs dropping, so a Lua error may unwind it.
    unsafe {
        lua.exec_raw::<Table>((), |state| {
            if ffi::lua_checkstack(state, 8) == 0 {
                raise(state, "no Lua stack room for the call context");
            }
            ffi::lua_createtable(state, 0, CONTEXT_FIELDS);
            push_str(state, "env");
            ffi::lua_createtable(state, 0, 0);
            ffi::lua_rawset(state, -3);
            set_str(state, "execution_mode", mode.as_str());
            set_str(state, "node", &node.node);
            set_str(state, "version", &node.version);
            push_str(state, "headers");
            push_string_lists(state, &ctx.headers);
            ffi::lua_rawset(state, -3);
            push_str(state, "query_params");
            push_string_lists(state, &ctx.query_params);
            ffi::lua_rawset(state, -3);
            if let Some(user_id) = user_id {
                set_str(state, "user_id", user_id);
                set_str(state, "username", ctx.username.as_deref().unwrap_or(""));
                if !ctx.vars.is_empty() {
                    push_str(state, "vars");
                    ffi::lua_createtable(state, 0, table_size(ctx.vars.len()));
                    for (k, v) in &ctx.vars {
                        set_str(state, k, v);
                    }
                    ffi::lua_rawset(state, -3);
                }
                if let Some(exp) = ctx.session_exp {
                    push_str(state, "user_session_exp");
                    ffi::lua_pushnumber(state, exp as ffi::lua_Number);
                    ffi::lua_rawset(state, -3);
                }
            }
            let optional = [
                ("session_id", &ctx.session_id),
                ("lang", &ctx.lang),
                ("client_ip", &ctx.client_ip),
                ("client_port", &ctx.client_port),
            ];
            for (key, value) in optional {
                if let Some(value) = value {
                    set_str(state, key, value);
                }
            }
            set_str(state, "trace_id", trace_id);
        })
    }
}

/// `t[key] = value` for the table on top of the stack.
unsafe fn set_str(state: *mut ffi::lua_State, key: &str, value: &str) {
    push_str(state, key);
    push_str(state, value);
    ffi::lua_rawset(state, -3);
}

/// Pushes `{name = {value, ...}, ...}` (headers, query parameters).
unsafe fn push_string_lists(state: *mut ffi::lua_State, pairs: &[(String, Vec<String>)]) {
    ffi::lua_createtable(state, 0, table_size(pairs.len()));
    for (k, values) in pairs {
        push_str(state, k);
        ffi::lua_createtable(state, table_size(values.len()), 0);
        for (i, v) in values.iter().enumerate() {
            push_str(state, v);
            ffi::lua_rawseti(state, -2, (i + 1) as ffi::lua_Integer);
        }
        ffi::lua_rawset(state, -3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_lands_in_the_table() {
        let lua = Lua::new();
        let user = Uuid::new_v4();
        let ctx = CallContext {
            user_id: Some(user),
            username: Some("ann".into()),
            vars: BTreeMap::from([("k".to_string(), "v".to_string())]),
            session_exp: Some(1_700_000_000),
            session_id: Some("sid".into()),
            lang: Some("fr".into()),
            headers: vec![("X-Two".into(), vec!["a".into(), "b".into()])],
            query_params: vec![("q".into(), vec![String::new()])],
            client_ip: Some("127.0.0.1".into()),
            client_port: Some("4000".into()),
        };
        let node = NodeInfo {
            node: "n1".into(),
            version: "1.0".into(),
        };
        let t = to_table(&lua, &ctx, Mode::Before, &node).unwrap();
        lua.globals().set("c", t).unwrap();
        lua.globals().set("uid", user.to_string()).unwrap();
        let ok: bool = lua
            .load(
                "return next(c.env) == nil and c.execution_mode == 'before' and c.node == 'n1' \
                 and c.version == '1.0' and c.user_id == uid and c.username == 'ann' \
                 and c.vars.k == 'v' and c.user_session_exp == 1700000000 \
                 and c.session_id == 'sid' and c.lang == 'fr' and c.client_ip == '127.0.0.1' \
                 and c.client_port == '4000' and #c.trace_id == 32 \
                 and #c.headers['X-Two'] == 2 and c.headers['X-Two'][2] == 'b' \
                 and c.query_params.q[1] == ''",
            )
            .eval()
            .unwrap();
        assert!(ok);
    }

    #[test]
    fn a_call_without_a_user_has_no_user_fields() {
        let lua = Lua::new();
        let ctx = CallContext {
            username: Some("ignored".into()),
            ..CallContext::default()
        };
        let node = NodeInfo {
            node: "n".into(),
            version: "v".into(),
        };
        let t = to_table(&lua, &ctx, Mode::Rpc, &node).unwrap();
        let mut keys: Vec<String> = t
            .pairs::<String, mlua::Value>()
            .map(|p| p.unwrap().0)
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "env",
                "execution_mode",
                "headers",
                "node",
                "query_params",
                "trace_id",
                "version"
            ]
        );
    }
}
