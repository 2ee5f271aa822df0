//! One Lua VM: the sandbox, the `nk` table, every module evaluated, and the registrations
//! (RPCs, hooks) those modules made. A VM lives on one OS thread (a pool thread, or a
//! worker thread running calls inline) and is never shared; Lua never holds Rust
//! references, only ids and copied values.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use mlua::{Function, Lua, Table, Value};

use super::context::{self, CallContext, Mode, NodeInfo};
use super::convert;
use super::modules::Module;
use super::sandbox::{self, Limits};
use super::{RuntimeError, Settings};
use crate::core::{Code, Core};

/// Registry tables a module's registrations go into.
pub const RPC_REGISTRY: &str = "tidings.rpc";
pub const BEFORE_REGISTRY: &str = "tidings.before";
pub const AFTER_REGISTRY: &str = "tidings.after";

/// What every VM of a runtime generation shares.
pub struct Shared {
    pub core: Arc<Core>,
    /// The tokio runtime, for waiting on core from this (non-async) thread.
    pub handle: tokio::runtime::Handle,
    pub settings: Settings,
    pub modules: Vec<Module>,
    pub node: NodeInfo,
    /// `nk.run_once` runs its function only the first time any VM reaches it.
    pub run_once_done: AtomicBool,
    /// Calls running inline right now (`runtime::inline`).
    pub inline_calls: std::sync::atomic::AtomicUsize,
    /// `nk.localcache_*`: one per process, kept across reloads.
    pub localcache: Arc<super::nk::LocalCache>,
}

impl Shared {
    /// Waits for a core future from a Lua function, on a pool thread or inline
    /// (`runtime::inline::wait`).
    pub fn wait<F: std::future::Future>(&self, fut: F) -> F::Output {
        super::inline::wait(&self.handle, fut)
    }
}

/// Per-VM data the `nk` functions reach through `Lua::app_data_ref`.
pub struct VmData {
    pub shared: Arc<Shared>,
    /// The context table of the call in progress, for `nk.get_context`.
    pub current: RefCell<Option<Table>>,
    /// Sends made during the call in progress, committed when it returns (see [`Deferred`]).
    pub deferred: RefCell<Deferred>,
}

/// The notification sends of one call, in call order, committed together when the call
/// returns and before its caller hears back (`Notifications::send_calls`): one commit per
/// RPC instead of one per `nk.notification_send`, with the same guarantee, since nothing
/// outside the call can observe the difference before it returns. Only collecting during a
/// call (`active`); module loading and `run_once` send at once.
#[derive(Default)]
pub struct Deferred {
    pub active: bool,
    pub calls: Vec<Vec<crate::core::notifications::NewNotification>>,
    pub items: usize,
}

impl Deferred {
    /// Most items held back at once; a call that sends more commits what it holds first.
    pub const MAX_ITEMS: usize = crate::core::notifications::MAX_BATCH;

    pub fn take(&mut self) -> Vec<Vec<crate::core::notifications::NewNotification>> {
        self.items = 0;
        std::mem::take(&mut self.calls)
    }
}

/// What the pool hands back for one call: its outcome and the sends it deferred, which the
/// caller must commit (even when the call failed: they were accepted when made).
pub struct Finished {
    pub result: Result<CallOutput, RuntimeError>,
    pub deferred: Vec<Vec<crate::core::notifications::NewNotification>>,
}

/// What a call is for.
pub enum CallArgs {
    Rpc {
        payload: String,
    },
    Before {
        request: serde_json::Value,
    },
    After {
        response: serde_json::Value,
        request: serde_json::Value,
    },
}

/// What a call produced.
#[derive(Debug)]
pub enum CallOutput {
    /// An RPC's result (nil is `None`).
    Rpc(Option<String>),
    /// A before-hook's (possibly rewritten) request, or `None` to reject the call.
    Before(Option<serde_json::Value>),
    After,
}

pub struct Vm {
    lua: Lua,
    limits: Rc<Limits>,
    invoke: Function,
    shared: Arc<Shared>,
    /// True once a limit stopped a script here; the pool then replaces this VM.
    pub spent: bool,
}

/// Runs `fn(...)` under pcall and normalises failures to `false, message, code?`. With a
/// `traceback` function (runtime.lua_api_stacktrace) it uses xpcall to append the Lua stack.
const INVOKE: &str = r##"
local traceback = ...
local pcall, xpcall, type, tostring, tonumber, select, unpack = pcall, xpcall, type, tostring, tonumber, select, unpack
local function handler(e)
  if type(e) == "table" then return e end
  return traceback(tostring(e))
end
return function(fn, ...)
  local ok, res
  if traceback then
    local n, args = select("#", ...), { ... }
    ok, res = xpcall(function() return fn(unpack(args, 1, n)) end, handler)
  else
    ok, res = pcall(fn, ...)
  end
  if ok then return true, res end
  if type(res) == "table" then return false, tostring(res[1]), tonumber(res[2]) end
  return false, tostring(res)
end
"##;

/// Most frames a traceback lists.
const MAX_TRACE_FRAMES: usize = 40;

/// `message` plus the Lua call stack, one `file:line: in function` per frame, as Lua's own
/// `debug.traceback` writes it (the debug library itself stays out of scripts' reach).
fn traceback(lua: &Lua, message: String) -> mlua::Result<String> {
    let mut out = message;
    out.push_str("\nstack traceback:");
    // Level 0 is this function and 1 the error handler; the failing code comes next.
    for level in 2..MAX_TRACE_FRAMES {
        let frame = lua.inspect_stack(level, |d| {
            let src = d.source();
            let short = src.short_src.as_deref().unwrap_or("?").to_string();
            let name = d.names().name.map(|n| format!("function '{n}'"));
            let name = name.unwrap_or_else(|| format!("function <{short}>"));
            match d.current_line() {
                Some(line) => format!("\n\t{short}:{line}: in {name}"),
                None if short == "(tail call)" => "\n\t(tail call): ?".to_string(),
                None => format!("\n\t[C]: in {name}"),
            }
        });
        match frame {
            Some(f) => out.push_str(&f),
            None => break,
        }
    }
    Ok(out)
}

impl Vm {
    /// Creates the VM and evaluates every module. The error names file, line and message.
    pub fn new(shared: Arc<Shared>) -> Result<Vm, String> {
        let (lua, limits) = sandbox::new_state(shared.settings.memory_limit_bytes)
            .map_err(|e| format!("cannot create a Lua VM: {e}"))?;
        lua.set_app_data(VmData {
            shared: shared.clone(),
            current: RefCell::new(None),
            deferred: RefCell::default(),
        });
        let setup = || -> mlua::Result<(Function, Function)> {
            for name in [RPC_REGISTRY, BEFORE_REGISTRY, AFTER_REGISTRY] {
                lua.set_named_registry_value(name, lua.create_table()?)?;
            }
            let (readonly, seal) = sandbox::readonly_tools(&lua)?;
            // Modules get an `nk` whose functions no call can swap for later calls; new keys
            // may be added (they stay in this VM), as `nk.foo = 1` works on Nakama.
            let nk: Table = readonly.call((super::nk::build(&lua)?, "nk", true))?;
            let package: Table = lua.globals().get("package")?;
            let preload: Table = package.get("preload")?;
            preload.set("nakama", lua.create_function(move |_, ()| Ok(nk.clone()))?)?;
            let trace = if shared.settings.api_stacktrace {
                Some(lua.create_function(|lua, msg: String| traceback(lua, msg))?)
            } else {
                None
            };
            let invoke: Function = lua.load(INVOKE).set_name("=invoke").call(trace)?;
            Ok((invoke, seal))
        };
        let (invoke, seal) = setup().map_err(|e| format!("cannot set up a Lua VM: {e}"))?;
        let vm = Vm {
            lua,
            limits,
            invoke,
            shared,
            spent: false,
        };
        vm.load_modules()?;
        seal.call::<()>(())
            .map_err(|e| format!("cannot seal a Lua VM: {e}"))?;
        Ok(vm)
    }

    fn load_modules(&self) -> Result<(), String> {
        let lua = &self.lua;
        let preload: Table = lua
            .globals()
            .get::<Table>("package")
            .and_then(|p| p.get("preload"))
            .map_err(|e| e.to_string())?;
        for m in &self.shared.modules {
            let chunk = lua
                .load(&m.source[..])
                .set_name(format!("@{}", m.display_path))
                .into_function()
                .map_err(|e| clean(&e))?;
            preload
                .set(m.name.as_str(), chunk)
                .map_err(|e| e.to_string())?;
        }
        let require: Function = lua.globals().get("require").map_err(|e| e.to_string())?;
        let loaded: Table = lua
            .globals()
            .get::<Table>("package")
            .and_then(|p| p.get("loaded"))
            .map_err(|e| e.to_string())?;
        for m in &self.shared.modules {
            if loaded.contains_key(m.name.as_str()).unwrap_or(false) {
                continue;
            }
            self.limits
                .start(Duration::from_millis(self.shared.settings.call_timeout_ms));
            let result = require.call::<Value>(m.name.as_str());
            self.limits.stop();
            result.map_err(|e| clean(&e))?;
        }
        Ok(())
    }

    /// Whether this VM belongs to the generation that `shared` describes.
    pub fn serves(&self, shared: &Arc<Shared>) -> bool {
        Arc::ptr_eq(&self.shared, shared)
    }

    /// Ids of the RPCs and hook keys this VM's modules registered.
    pub fn registrations(&self) -> (Vec<String>, Vec<String>, Vec<String>) {
        let keys = |name: &str| -> Vec<String> {
            self.lua
                .named_registry_value::<Table>(name)
                .map(|t| {
                    t.pairs::<String, Value>()
                        .filter_map(Result::ok)
                        .map(|(k, _)| k)
                        .collect()
                })
                .unwrap_or_default()
        };
        (
            keys(RPC_REGISTRY),
            keys(BEFORE_REGISTRY),
            keys(AFTER_REGISTRY),
        )
    }

    /// Runs one registered function, collecting its notification sends.
    pub fn call(&mut self, target: &str, ctx: &CallContext, args: CallArgs) -> Finished {
        if let Some(data) = self.lua.app_data_ref::<VmData>() {
            let mut deferred = data.deferred.borrow_mut();
            deferred.take();
            deferred.active = true;
        }
        let result = self.call_inner(target, ctx, args);
        let deferred = match self.lua.app_data_ref::<VmData>() {
            Some(data) => {
                let mut deferred = data.deferred.borrow_mut();
                deferred.active = false;
                deferred.take()
            }
            None => Vec::new(),
        };
        Finished { result, deferred }
    }

    fn call_inner(
        &mut self,
        target: &str,
        ctx: &CallContext,
        args: CallArgs,
    ) -> Result<CallOutput, RuntimeError> {
        let (registry, mode) = match args {
            CallArgs::Rpc { .. } => (RPC_REGISTRY, Mode::Rpc),
            CallArgs::Before { .. } => (BEFORE_REGISTRY, Mode::Before),
            CallArgs::After { .. } => (AFTER_REGISTRY, Mode::After),
        };
        let lua = &self.lua;
        let internal = |e: mlua::Error| RuntimeError::new(Code::Internal, e.to_string());
        let func: Option<Function> = lua
            .named_registry_value::<Table>(registry)
            .and_then(|t| t.get(target))
            .map_err(internal)?;
        let Some(func) = func else {
            return Err(RuntimeError::new(Code::NotFound, "RPC function not found"));
        };
        let ctx_table = without_memory_limit(lua, self.shared.settings.memory_limit_bytes, || {
            context::to_table(lua, ctx, mode, &self.shared.node)
        })
        .map_err(internal)?;
        if let Some(data) = lua.app_data_ref::<VmData>() {
            *data.current.borrow_mut() = Some(ctx_table.clone());
        }
        let call_args: mlua::MultiValue = match &args {
            CallArgs::Rpc { payload } => (
                func.clone(),
                ctx_table,
                lua.create_string(payload).map_err(internal)?,
            )
                .into_lua_multi_checked(lua)?,
            CallArgs::Before { request } => {
                let req = convert::from_json(lua, request).map_err(internal)?;
                (func.clone(), ctx_table, req).into_lua_multi_checked(lua)?
            }
            CallArgs::After { response, request } => {
                let res = convert::from_json(lua, response).map_err(internal)?;
                let req = convert::from_json(lua, request).map_err(internal)?;
                (func.clone(), ctx_table, res, req).into_lua_multi_checked(lua)?
            }
        };

        self.limits
            .start(Duration::from_millis(self.shared.settings.call_timeout_ms));
        let outcome = self.invoke.call::<(bool, Value, Option<f64>)>(call_args);
        self.limits.stop();
        if let Some(data) = lua.app_data_ref::<VmData>() {
            *data.current.borrow_mut() = None;
        }

        let limit_error = |spent: &mut bool, message: &str| -> Option<RuntimeError> {
            if self.limits.timed_out.get() {
                *spent = true;
                return Some(RuntimeError::new(
                    Code::DeadlineExceeded,
                    format!(
                        "Lua call stopped: it ran longer than runtime.lua_call_timeout_ms ({} ms)",
                        self.shared.settings.call_timeout_ms
                    ),
                ));
            }
            if message.contains("not enough memory") {
                *spent = true;
                return Some(RuntimeError::new(
                    Code::ResourceExhausted,
                    format!(
                        "Lua call stopped: the VM reached runtime.lua_memory_limit_bytes ({} bytes)",
                        self.shared.settings.memory_limit_bytes
                    ),
                ));
            }
            None
        };
        let mut spent = false;
        let result = match outcome {
            Err(e) => {
                let msg = e.to_string();
                Err(limit_error(&mut spent, &msg)
                    .unwrap_or_else(|| RuntimeError::new(Code::Internal, clean(&e))))
            }
            Ok((false, message, code)) => {
                let message = match &message {
                    Value::String(s) => s.to_string_lossy(),
                    other => format!("{other:?}"),
                };
                if let Some(err) = limit_error(&mut spent, &message) {
                    Err(err)
                } else {
                    let code = code
                        .and_then(|c| Code::from_i32(c as i64))
                        .unwrap_or(Code::Internal);
                    let message = if self.shared.settings.api_stacktrace {
                        message
                    } else {
                        strip_position(&message, &func)
                    };
                    Err(RuntimeError::new(code, message))
                }
            }
            Ok((true, value, _)) => match args {
                CallArgs::Rpc { .. } => match value {
                    Value::Nil => Ok(CallOutput::Rpc(None)),
                    Value::String(s) => Ok(CallOutput::Rpc(Some(s.to_string_lossy()))),
                    _ => Err(RuntimeError::new(
                        Code::Internal,
                        "Runtime function returned invalid data - only allowed one return value of type String/Byte.",
                    )),
                },
                CallArgs::Before { .. } => match value {
                    Value::Nil => Ok(CallOutput::Before(None)),
                    Value::Table(_) => {
                        let text = convert::to_json(&value)
                            .map_err(|e| RuntimeError::new(Code::Internal, e.0))?;
                        serde_json::from_str(&text)
                            .map(|v| CallOutput::Before(Some(v)))
                            .map_err(|e| RuntimeError::new(Code::Internal, e.to_string()))
                    }
                    _ => Err(RuntimeError::new(
                        Code::Internal,
                        "Runtime before function returned invalid data.",
                    )),
                },
                CallArgs::After { .. } => Ok(CallOutput::After),
            },
        };
        if spent {
            self.spent = true;
        }
        result
    }
}

/// Runs `build` with the VM's memory limit lifted, for values whose size the server bounds
/// (the call context). Under a limit mlua guards every table write and string push with its
/// own protected call in case the allocator refuses; a profile of the RPC path showed that
/// guard as a fifth of the server's time. Without a limit those writes are plain API calls.
fn without_memory_limit<R>(lua: &Lua, limit: usize, build: impl FnOnce() -> R) -> R {
    if limit == 0 {
        return build();
    }
    let _ = lua.set_memory_limit(0);
    let out = build();
    let _ = lua.set_memory_limit(limit);
    out
}

trait IntoLuaMultiChecked {
    fn into_lua_multi_checked(self, lua: &Lua) -> Result<mlua::MultiValue, RuntimeError>;
}

impl<T: mlua::IntoLuaMulti> IntoLuaMultiChecked for T {
    fn into_lua_multi_checked(self, lua: &Lua) -> Result<mlua::MultiValue, RuntimeError> {
        self.into_lua_multi(lua)
            .map_err(|e| RuntimeError::new(Code::Internal, e.to_string()))
    }
}

/// Drops Nakama's "same file" position prefix: `modules/x.lua:12: msg` -> `msg` when the
/// error was raised in the file that defines the called function.
fn strip_position(message: &str, func: &Function) -> String {
    let Some(src) = func.info().short_src else {
        return message.to_string();
    };
    if let Some(rest) = message.strip_prefix(src.as_str()) {
        if let Some(rest) = rest.strip_prefix(':') {
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            if digits > 0 {
                if let Some(msg) = rest[digits..].strip_prefix(": ") {
                    return msg.to_string();
                }
            }
        }
    }
    message.to_string()
}

/// An mlua error as the script author wants to read it: the Lua message, without mlua's
/// wrapping and Rust-side traceback.
pub fn clean(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::MemoryError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => clean(cause),
        other => other.to_string(),
    }
}
