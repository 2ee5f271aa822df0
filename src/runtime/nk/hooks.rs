//! Registration: `register_rpc`, `register_req_before`, `register_req_after`, `run_once`.
//! Registrations land in this VM's registry tables; the reference VM's set is what the
//! doors consult (see `runtime::vm`).

use std::sync::atomic::Ordering;

use mlua::{Lua, MultiValue, Table, Value};

use super::{ret, Args, NkError, NkResult, Raw};
use crate::runtime::context::{self, CallContext, Mode};
use crate::runtime::hook_key;
use crate::runtime::vm::{VmData, AFTER_REGISTRY, BEFORE_REGISTRY, RPC_REGISTRY};

pub const FUNCTIONS: &[(&str, Raw)] = &[
    ("register_rpc", register_rpc),
    ("register_req_before", register_req_before),
    ("register_req_after", register_req_after),
    ("register_rt_before", register_rt),
    ("register_rt_after", register_rt),
    ("run_once", run_once),
];

fn register_in(lua: &Lua, registry: &str, key: String, args: &Args) -> NkResult<MultiValue> {
    let f = args.check_function(1)?;
    let table: Table = lua.named_registry_value(registry)?;
    table.set(key, f)?;
    ret(lua, ())
}

/// `nk.register_rpc(fn, id)`: the id is case-insensitive; registering it again replaces it.
fn register_rpc(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    args.check_function(1)?;
    let id = args.check_string(2)?;
    if id.is_empty() {
        return Err(args.error(2, "expects rpc id"));
    }
    register_in(lua, RPC_REGISTRY, id.to_lowercase(), args)
}

fn method(args: &Args) -> NkResult<String> {
    args.check_function(1)?;
    let name = args.check_string(2)?;
    if name.is_empty() {
        return Err(args.error(2, "expects method name"));
    }
    Ok(hook_key(&name))
}

/// `nk.register_req_before(fn, "ListNotifications")`.
fn register_req_before(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let key = method(args)?;
    register_in(lua, BEFORE_REGISTRY, key, args)
}

/// `nk.register_req_after(fn, "ListNotifications")`.
fn register_req_after(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let key = method(args)?;
    register_in(lua, AFTER_REGISTRY, key, args)
}

/// Realtime hooks: accepted so Nakama modules load, but Tidings serves no realtime message
/// kinds they could apply to yet, so they are never called.
fn register_rt(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    method(args)?;
    ret(lua, ())
}

/// `nk.run_once(fn)`: runs `fn(ctx)` the first time any VM of this process reaches it.
fn run_once(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let f = args.check_function(1)?;
    let Some(data) = lua.app_data_ref::<VmData>() else {
        return ret(lua, ());
    };
    if data.shared.run_once_done.swap(true, Ordering::SeqCst) {
        return ret(lua, ());
    }
    let ctx = context::to_table(
        lua,
        &CallContext::default(),
        Mode::RunOnce,
        &data.shared.node,
    )?;
    drop(data);
    f.call::<Value>(ctx).map_err(|e| {
        NkError(format!(
            "error in run_once function: {}",
            crate::runtime::vm::clean(&e)
        ))
    })?;
    ret(lua, ())
}
