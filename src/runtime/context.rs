//! What a Lua function learns about its call: the `context` table (NAKAMA-SPEC §5.4).

use std::collections::BTreeMap;

use mlua::{Lua, Table};
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

fn string_lists(lua: &Lua, pairs: &[(String, Vec<String>)]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, pairs.len())?;
    for (k, values) in pairs {
        t.set(
            k.as_str(),
            lua.create_sequence_from(values.iter().map(String::as_str))?,
        )?;
    }
    Ok(t)
}

/// The most fields `to_table` sets.
const CONTEXT_FIELDS: usize = 16;

/// Builds the Lua `context` table.
pub fn to_table(lua: &Lua, ctx: &CallContext, mode: Mode, node: &NodeInfo) -> mlua::Result<Table> {
    // Sized for every field below up front: grown one by one, the table rehashed five times.
    let t = lua.create_table_with_capacity(0, CONTEXT_FIELDS)?;
    t.set("env", lua.create_table()?)?;
    t.set("execution_mode", mode.as_str())?;
    t.set("node", node.node.as_str())?;
    t.set("version", node.version.as_str())?;
    t.set("headers", string_lists(lua, &ctx.headers)?)?;
    t.set("query_params", string_lists(lua, &ctx.query_params)?)?;
    let mut buf = Uuid::encode_buffer();
    if let Some(user_id) = ctx.user_id {
        t.set("user_id", &*user_id.hyphenated().encode_lower(&mut buf))?;
        t.set("username", ctx.username.as_deref().unwrap_or(""))?;
        if !ctx.vars.is_empty() {
            let vars = lua.create_table()?;
            for (k, v) in &ctx.vars {
                vars.set(k.as_str(), v.as_str())?;
            }
            t.set("vars", vars)?;
        }
        if let Some(exp) = ctx.session_exp {
            t.set("user_session_exp", exp)?;
        }
    }
    if let Some(session_id) = &ctx.session_id {
        t.set("session_id", session_id.as_str())?;
    }
    if let Some(lang) = &ctx.lang {
        t.set("lang", lang.as_str())?;
    }
    if let Some(ip) = &ctx.client_ip {
        t.set("client_ip", ip.as_str())?;
    }
    if let Some(port) = &ctx.client_port {
        t.set("client_port", port.as_str())?;
    }
    t.set("trace_id", &*Uuid::new_v4().simple().encode_lower(&mut buf))?;
    Ok(t)
}
