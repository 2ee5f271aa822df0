//! A fresh, sandboxed Lua 5.1 state: Nakama's library set (NAKAMA-SPEC §9.2) and our limits.
//!
//! Opened: base (without coroutine), table, string, math, bit32 (ours, in Rust), a reduced
//! `os` (clock, date, difftime, time; `require("os")` returns the same reduced table) and
//! `package` with only the preload searcher, so `require` finds modules
//! and `nakama` but never touches the file system or loads native code. Removed: io, debug,
//! coroutine, package.loadlib, string.dump and Lua 5.1's `gcinfo`; `dofile` and `loadfile`
//! exist, as in Nakama's global table, but refuse (no file system); `load`/`loadstring` refuse
//! precompiled (binary) chunks, which could crash the VM. gopher-lua's `_GOPHER_LUA_VERSION`
//! and `_printregs` (a no-op here) complete the globals a Nakama script sees (NAKAMA-SPEC §9.2).
//!
//! Shared tables: `nk`'s functions are read-only from the start (a script may add keys of its
//! own, as on Nakama), and the standard libraries (and the
//! string metatable) once the modules have loaded, so no call can rewrite what later calls on
//! the same VM use (see [`readonly_tools`]).
//!
//! Limits: a count hook checks the call's deadline every [`HOOK_EVERY`] instructions and
//! raises an error once it has passed; from then on it raises on every instruction, so a
//! script that wraps its loop in `pcall` cannot hold it off. A per-VM memory limit makes
//! allocations fail with a Lua "not enough memory" error. The same hook gives an inline call's
//! worker thread away after each slice (`runtime::inline::release`), so a long call never
//! holds a worker.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mlua::{HookTriggers, Lua, LuaOptions, StdLib, VmState};

/// Instructions between deadline checks: small enough to stop a loop within microseconds of
/// its deadline, large enough to cost nothing measurable.
pub const HOOK_EVERY: u32 = 1000;

/// Why the VM stopped the running script, set by the hook and read by the caller.
#[derive(Debug, Default)]
pub struct Limits {
    pub deadline: Cell<Option<Instant>>,
    pub timed_out: Cell<bool>,
    /// When an inline call next hands its worker's other tasks away (`inline::release`),
    /// and the wait after that one.
    release_at: Cell<Option<Instant>>,
    release_step: Cell<Duration>,
}

impl Limits {
    /// Starts the clock of a call (or a module's load) that may run for `timeout`.
    pub fn start(&self, timeout: Duration) {
        let now = Instant::now();
        self.timed_out.set(false);
        self.deadline.set(Some(now + timeout));
        self.release_at.set(Some(now + super::inline::SLICE));
        self.release_step.set(super::inline::SLICE);
    }

    /// Stops the clock: no deadline outside a call.
    pub fn stop(&self) {
        self.deadline.set(None);
        self.release_at.set(None);
    }

    /// Whether the running call has used its slice on a worker thread; the next one is then
    /// twice as long.
    fn slice_over(&self, now: Instant) -> bool {
        match self.release_at.get() {
            Some(at) if now >= at => {
                let step = self.release_step.get() * 2;
                self.release_step.set(step);
                self.release_at.set(Some(now + step));
                true
            }
            _ => false,
        }
    }
}

const PRELUDE: &str = r#"
local raw_loadstring, raw_load, byte, type, error = loadstring, load, string.byte, type, error
local clock, date, difftime, time = os.clock, os.date, os.difftime, os.time
os = { clock = clock, date = date, difftime = difftime, time = time }
package.loaded.os = os
coroutine, package.loaded.coroutine = nil, nil
dofile = function() error("dofile is not available: modules load each other with require", 2) end
loadfile = function() return nil, "loadfile is not available: modules load each other with require" end
gcinfo = nil
_GOPHER_LUA_VERSION = "GopherLua 0.1"
_printregs = function() end
string.dump = nil
package.loadlib = nil
package.path, package.cpath = "", ""
package.loaders = { package.loaders[1] }
local function is_binary(s) return type(s) == "string" and byte(s, 1) == 27 end
loadstring = function(s, name)
  if is_binary(s) then return nil, "binary chunks are not allowed" end
  return raw_loadstring(s, name)
end
load = function(f, name)
  if type(f) == "string" then return loadstring(f, name) end
  local first = true
  return raw_load(function()
    local piece = f()
    if first and type(piece) == "string" and piece ~= "" then
      first = false
      if is_binary(piece) then error("binary chunks are not allowed") end
    end
    return piece
  end, name)
end
"#;

/// Read-only views of shared tables. A call runs on a VM that later calls reuse, so a script
/// that rewrote `string.format` or `nk.notification_send` would change them for every later
/// call on that VM. `readonly(t, name)` returns a proxy that reads through to `t` and refuses
/// writes (also through `rawset`, which would otherwise write into the proxy; `pairs`, `next`
/// and `rawget` see the table behind it, so iterating a library still works). With
/// `grows`, keys `t` does not have may be added (they stay in that VM, as on Nakama,
/// where `nk.foo = 1` succeeds); its own keys stay as they are. `seal()`
/// swaps the standard libraries for such proxies once the modules have loaded (so modules
/// may still extend `string` at load time, a common idiom) and hides the string metatable.
const READONLY: &str = r#"
local setmetatable, error, tostring, type = setmetatable, error, tostring, type
local raw_rawset, raw_next, raw_rawget, getmetatable = rawset, next, rawget, getmetatable
local frozen = setmetatable({}, { __mode = "k" })
local targets = setmetatable({}, { __mode = "k" })
local extensible = setmetatable({}, { __mode = "k" })
-- Whether writing key k of proxy p is refused.
local function refused(p, k)
  return frozen[p] and not (extensible[p] and raw_rawget(targets[p], k) == nil)
end
local function readonly(t, name, grows)
  local proxy
  proxy = setmetatable({}, {
    __index = t,
    __newindex = function(_, k, v)
      if refused(proxy, k) then
        error("attempt to modify read-only table '" .. name .. "' (key " .. tostring(k) .. ")", 2)
      end
      raw_rawset(proxy, k, v)
    end,
    __metatable = false,
  })
  frozen[proxy], targets[proxy], extensible[proxy] = name, t, grows or nil
  return proxy
end
-- Iterating or raw-reading a proxy sees the table behind it (Lua 5.1's pairs has no __pairs).
next = function(t, k) return raw_next(targets[t] or t, k) end
pairs = function(t) return next, t, nil end
rawget = function(t, k)
  local v = raw_rawget(t, k)
  if v == nil and targets[t] then v = raw_rawget(targets[t], k) end
  return v
end
rawset = function(t, k, v)
  if refused(t, k) then
    error("attempt to modify read-only table '" .. frozen[t] .. "' (key " .. tostring(k) .. ")", 2)
  end
  return raw_rawset(t, k, v)
end
local function seal()
  for _, name in ipairs({ "string", "table", "math", "os", "bit32" }) do
    _G[name] = readonly(_G[name], name)
  end
  package.loaded.string, package.loaded.table = string, table
  package.loaded.math, package.loaded.os = math, os
  local mt = getmetatable("")
  mt.__index = string
  mt.__metatable = false
end
return readonly, seal
"#;

/// The read-only proxy maker and the function that seals the standard libraries.
pub fn readonly_tools(lua: &Lua) -> mlua::Result<(mlua::Function, mlua::Function)> {
    lua.load(READONLY).set_name("=sandbox").call(())
}

/// A new sandboxed state with the deadline hook and memory limit installed.
pub fn new_state(memory_limit: usize) -> mlua::Result<(Lua, Rc<Limits>)> {
    let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::OS | StdLib::PACKAGE;
    let lua = Lua::new_with(libs, LuaOptions::default())?;
    lua.load(PRELUDE).set_name("=sandbox").exec()?;
    lua.globals().set("bit32", bit32(&lua)?)?;
    lua.globals().set(
        "print",
        lua.create_function(|_, args: mlua::Variadic<mlua::Value>| {
            let text: Vec<String> = args
                .iter()
                .map(|v| v.to_string().unwrap_or_else(|_| v.type_name().to_string()))
                .collect();
            tracing::info!(target: "tidings::lua", "{}", text.join("\t"));
            Ok(())
        })?,
    )?;

    let limits = Rc::new(Limits::default());
    install_deadline_hook(&lua, limits.clone(), HOOK_EVERY)?;
    lua.set_memory_limit(memory_limit)?;
    Ok((lua, limits))
}

/// Checks the deadline every `every` instructions. Once it has passed, the hook re-installs
/// itself to fire on every instruction and every call: the error then escapes any `pcall` the
/// script wraps around its loop, because the next instruction outside the protected call
/// raises too. The VM is replaced after such a call, so the strict hook never lingers.
fn install_deadline_hook(lua: &Lua, limits: Rc<Limits>, every: u32) -> mlua::Result<()> {
    let mut triggers = HookTriggers::new().every_nth_instruction(every);
    if every == 1 {
        triggers = triggers.on_calls();
    }
    lua.set_hook(triggers, move |lua, _| {
        if let Some(deadline) = limits.deadline.get() {
            let now = Instant::now();
            if now >= deadline {
                if !limits.timed_out.replace(true) {
                    install_deadline_hook(lua, limits.clone(), 1)?;
                }
                return Err(mlua::Error::runtime("execution time limit exceeded"));
            }
            if limits.slice_over(now) {
                let handle = lua
                    .app_data_ref::<super::vm::VmData>()
                    .map(|data| data.shared.handle.clone());
                if let Some(handle) = handle {
                    super::inline::release(&handle);
                }
            }
        }
        Ok(VmState::Continue)
    })
}

/// Lua 5.2's bit32 library for Lua 5.1 scripts, on 32-bit unsigned values.
fn bit32(lua: &Lua) -> mlua::Result<mlua::Table> {
    fn u(n: f64) -> u32 {
        // Lua 5.2 reduces modulo 2^32.
        (n.trunc().rem_euclid(4_294_967_296.0)) as u32
    }
    let t = lua.create_table()?;
    let fold = |lua: &Lua, init: u32, op: fn(u32, u32) -> u32| {
        lua.create_function(move |_, args: mlua::Variadic<f64>| {
            Ok(args.iter().fold(init, |acc, n| op(acc, u(*n))) as f64)
        })
    };
    t.set("band", fold(lua, u32::MAX, |a, b| a & b)?)?;
    t.set("bor", fold(lua, 0, |a, b| a | b)?)?;
    t.set("bxor", fold(lua, 0, |a, b| a ^ b)?)?;
    t.set(
        "btest",
        lua.create_function(|_, args: mlua::Variadic<f64>| {
            Ok(args.iter().fold(u32::MAX, |acc, n| acc & u(*n)) != 0)
        })?,
    )?;
    t.set("bnot", lua.create_function(|_, x: f64| Ok(!u(x) as f64))?)?;
    let shift = |lua: &Lua, f: fn(u32, i64) -> u32| {
        lua.create_function(move |_, (x, n): (f64, f64)| Ok(f(u(x), n.trunc() as i64) as f64))
    };
    fn lshift(x: u32, n: i64) -> u32 {
        match n {
            n if n <= -32 || n >= 32 => 0,
            n if n >= 0 => x << n,
            n => x >> -n,
        }
    }
    fn rshift(x: u32, n: i64) -> u32 {
        lshift(x, -n)
    }
    fn arshift(x: u32, n: i64) -> u32 {
        if n >= 32 {
            if x & 0x8000_0000 != 0 {
                u32::MAX
            } else {
                0
            }
        } else if n >= 0 {
            ((x as i32) >> n) as u32
        } else {
            lshift(x, -n)
        }
    }
    fn lrotate(x: u32, n: i64) -> u32 {
        x.rotate_left(n.rem_euclid(32) as u32)
    }
    fn rrotate(x: u32, n: i64) -> u32 {
        x.rotate_right(n.rem_euclid(32) as u32)
    }
    t.set("lshift", shift(lua, lshift)?)?;
    t.set("rshift", shift(lua, rshift)?)?;
    t.set("arshift", shift(lua, arshift)?)?;
    t.set("lrotate", shift(lua, lrotate)?)?;
    t.set("rrotate", shift(lua, rrotate)?)?;
    t.set(
        "extract",
        lua.create_function(|_, (x, field, width): (f64, f64, Option<f64>)| {
            let (f, w) = (field as i64, width.unwrap_or(1.0) as i64);
            if f < 0 || w <= 0 || f + w > 32 {
                return Err(mlua::Error::runtime("trying to access non-existent bits"));
            }
            let mask = if w == 32 { u32::MAX } else { (1u32 << w) - 1 };
            Ok(((u(x) >> f) & mask) as f64)
        })?,
    )?;
    t.set(
        "replace",
        lua.create_function(|_, (x, v, field, width): (f64, f64, f64, Option<f64>)| {
            let (f, w) = (field as i64, width.unwrap_or(1.0) as i64);
            if f < 0 || w <= 0 || f + w > 32 {
                return Err(mlua::Error::runtime("trying to access non-existent bits"));
            }
            let mask = if w == 32 { u32::MAX } else { (1u32 << w) - 1 };
            let cleared = u(x) & !(mask << f);
            Ok((cleared | ((u(v) & mask) << f)) as f64)
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_has_nakamas_globals_only() {
        let (lua, _) = new_state(16 << 20).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("chunk.lua");
        std::fs::write(&script, "return 42").unwrap();
        lua.globals()
            .set("script_path", script.to_string_lossy().to_string())
            .unwrap();
        let open: String = lua
            .load(
                "local t = {} \
                 for k, v in pairs({io = io, debug = debug, coroutine = coroutine, \
                   gcinfo = gcinfo, execute = os.execute, getenv = os.getenv, \
                   dump = string.dump, loadlib = package.loadlib}) do t[#t + 1] = k end \
                 if pcall(dofile, script_path) then t[#t + 1] = 'dofile' end \
                 if loadfile(script_path) ~= nil then t[#t + 1] = 'loadfile' end \
                 if type(os.time) ~= 'function' then t[#t + 1] = 'no os.time' end \
                 if #package.loaders ~= 1 then t[#t + 1] = 'loaders' end \
                 table.sort(t) return table.concat(t, ',')",
            )
            .eval()
            .unwrap();
        assert_eq!(open, "");
        lua.globals().set("script_path", mlua::Value::Nil).unwrap();
        // The global table a script sees is Nakama's (NAKAMA-SPEC §9.2, observed on gopher-lua).
        let names: String = lua
            .load(
                "local names = {} for k in pairs(_G) do names[#names + 1] = k end \
                 table.sort(names) return table.concat(names, ' ')",
            )
            .eval()
            .unwrap();
        assert_eq!(
            names,
            "_G _GOPHER_LUA_VERSION _VERSION _printregs assert bit32 collectgarbage dofile error \
             getfenv getmetatable ipairs load loadfile loadstring math module newproxy next os \
             package pairs pcall print rawequal rawget rawset require select setfenv setmetatable \
             string table tonumber tostring type unpack xpcall"
        );
        let (f, err): (mlua::Value, String) =
            lua.load("return loadstring('\\27Lua')").eval().unwrap();
        assert!(f.is_nil());
        assert_eq!(err, "binary chunks are not allowed");
        let n: f64 = lua
            .load("return loadstring('return 1 + 1')()")
            .eval()
            .unwrap();
        assert_eq!(n, 2.0);
        let reduced: bool = lua
            .load("return require('os').execute == nil and not pcall(require, 'io')")
            .eval()
            .unwrap();
        assert!(reduced, "require finds only the reduced os and no io");
    }

    #[test]
    fn bit32_matches_lua52() {
        let (lua, _) = new_state(16 << 20).unwrap();
        let ok: bool = lua
            .load(
                "return bit32.band(0xff, 0x0f) == 15 and bit32.bor(1, 2, 4) == 7 \
                 and bit32.bxor(5, 1) == 4 and bit32.bnot(0) == 4294967295 \
                 and bit32.lshift(1, 31) == 2147483648 and bit32.rshift(-1, 28) == 15 \
                 and bit32.arshift(0x80000000, 31) == 4294967295 \
                 and bit32.extract(0xf0, 4, 4) == 15 and bit32.replace(0, 3, 4, 2) == 48 \
                 and bit32.lrotate(1, 33) == 2 and bit32.btest(2, 3)",
            )
            .eval()
            .unwrap();
        assert!(ok);
    }

    #[test]
    fn runaway_loops_and_memory_bombs_stop() {
        let (lua, limits) = new_state(8 << 20).unwrap();
        limits
            .deadline
            .set(Some(Instant::now() + std::time::Duration::from_millis(50)));
        let err = lua
            .load("while true do pcall(function() while true do end end) end")
            .exec()
            .unwrap_err();
        assert!(
            err.to_string().contains("execution time limit exceeded"),
            "{err}"
        );
        assert!(limits.timed_out.get());
        // A VM stopped this way is replaced; the memory limit is checked on a fresh one.
        let (lua, _) = new_state(8 << 20).unwrap();
        let err = lua
            .load("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end")
            .exec()
            .unwrap_err();
        assert!(err.to_string().contains("memory"), "{err}");
        // The state is still usable once the garbage is collected.
        lua.gc_collect().unwrap();
        let n: i64 = lua.load("return 40 + 2").eval().unwrap();
        assert_eq!(n, 42);
    }
}
