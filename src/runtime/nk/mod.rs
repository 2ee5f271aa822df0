//! The `nk` table scripts get from `require("nakama")`: one file per area, every function a
//! free Rust function registered here.
//!
//! Errors: Nakama raises errors as Lua strings positioned at the script line that called the
//! `nk` function (`modules/x.lua:12: bad argument #2 to notification_send (...)`). A Rust
//! callback's error would reach Lua as userdata, which scripts cannot match or concatenate, so
//! each raw function returns `true, results...` or `false, message` (the message already
//! prefixed with the script's position, [`script_position`]), and a one-line Lua wrapper turns
//! the latter into `error(message, 0)`.

mod accounts;
mod codec;
mod friends;
mod groups;
mod hooks;
mod inbox;
mod localcache;
mod notifications;
mod sessions;
mod util;

use mlua::{Function, Lua, MultiValue, Table, Value};

pub use localcache::LocalCache;

/// A failure to raise in the calling script, already worded for it.
#[derive(Debug)]
pub struct NkError(pub String);

pub type NkResult<T> = Result<T, NkError>;

impl From<mlua::Error> for NkError {
    fn from(e: mlua::Error) -> Self {
        NkError(e.to_string())
    }
}

/// A raw `nk` function: checked arguments in, values out.
type Raw = fn(&Lua, &Args) -> NkResult<MultiValue>;

/// The arguments of one call, with gopher-lua's checking helpers and messages.
pub struct Args<'lua> {
    lua: &'lua Lua,
    name: &'static str,
    values: Vec<Value>,
}

/// The function's name in an argument error, as gopher-lua finds it: the name the calling
/// script used (`nk.notification_send(...)`: `notification_send`; `local s = nk.notification_send;
/// s(...)`: `s`), and `(anonymous)` when no script called it by a name (`pcall(nk.f, ...)`).
/// Only looked up when an error is raised: finding a name walks the caller's bytecode.
fn name_as_called(lua: &Lua, nk_name: &str) -> String {
    // Level 0 is the Rust function, 1 the `nk` wrapper (WRAP), 2 its caller. Lua 5.1 forgets
    // the name of a tail-called function (`return nk.f(...)`), which gopher-lua keeps.
    if lua.inspect_stack(2, |d| d.source().what == "tail") == Some(true) {
        return nk_name.to_string();
    }
    lua.inspect_stack(1, |d| d.names().name.map(|n| n.into_owned()))
        .flatten()
        .unwrap_or_else(|| "(anonymous)".to_string())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Integer(_) | Value::Number(_) => "number",
        other => other.type_name(),
    }
}

fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

impl Args<'_> {
    pub fn get(&self, n: usize) -> &Value {
        self.values.get(n - 1).unwrap_or(&Value::Nil)
    }

    /// `bad argument #n to f (msg)`.
    pub fn error(&self, n: usize, msg: &str) -> NkError {
        let name = name_as_called(self.lua, self.name);
        NkError(format!("bad argument #{n} to {name} ({msg})"))
    }

    fn type_error(&self, n: usize, expected: &str) -> NkError {
        self.error(
            n,
            &format!("{expected} expected, got {}", type_name(self.get(n))),
        )
    }

    pub fn check_string(&self, n: usize) -> NkResult<String> {
        match self.get(n) {
            Value::String(s) => Ok(s.to_string_lossy()),
            Value::Integer(i) => Ok(i.to_string()),
            Value::Number(f) => Ok(number_text(*f)),
            _ => Err(self.type_error(n, "string")),
        }
    }

    /// A string argument's bytes as they are (Lua strings are byte strings); a number is
    /// accepted as its text, as `check_string` does.
    pub fn check_bytes(&self, n: usize) -> NkResult<Vec<u8>> {
        match self.get(n) {
            Value::String(s) => Ok(s.as_bytes().to_vec()),
            _ => self.check_string(n).map(String::into_bytes),
        }
    }

    pub fn opt_string(&self, n: usize) -> NkResult<Option<String>> {
        match self.get(n) {
            Value::Nil => Ok(None),
            _ => self.check_string(n).map(Some),
        }
    }

    pub fn check_int(&self, n: usize) -> NkResult<i64> {
        match self.get(n) {
            Value::Integer(i) => Ok(*i),
            Value::Number(f) if f.is_finite() => Ok(f.trunc() as i64),
            _ => Err(self.type_error(n, "number")),
        }
    }

    pub fn opt_int(&self, n: usize, default: i64) -> NkResult<i64> {
        match self.get(n) {
            Value::Nil => Ok(default),
            _ => self.check_int(n),
        }
    }

    pub fn check_table(&self, n: usize) -> NkResult<Table> {
        match self.get(n) {
            Value::Table(t) => Ok(t.clone()),
            _ => Err(self.type_error(n, "table")),
        }
    }

    pub fn opt_table(&self, n: usize) -> NkResult<Option<Table>> {
        match self.get(n) {
            Value::Nil => Ok(None),
            _ => self.check_table(n).map(Some),
        }
    }

    pub fn check_function(&self, n: usize) -> NkResult<Function> {
        match self.get(n) {
            Value::Function(f) => Ok(f.clone()),
            _ => Err(self.type_error(n, "function")),
        }
    }

    pub fn opt_bool(&self, n: usize, default: bool) -> NkResult<bool> {
        match self.get(n) {
            Value::Nil => Ok(default),
            Value::Boolean(b) => Ok(*b),
            _ => Err(self.type_error(n, "boolean")),
        }
    }
}

/// The position an error raised by an `nk` function carries, as gopher-lua's `where` gives it:
/// `source:line: ` of the nearest script frame that led to the call, skipping functions that
/// are not Lua (`pcall`), so `pcall(nk.f, ...)` still names the script's line.
fn script_position(lua: &Lua) -> String {
    // Level 0 is the Rust function and 1 the `nk` wrapper; a call chain deeper than this
    // many C frames and tail calls without a script frame gets no position.
    for level in 2..32 {
        let Some(found) = lua.inspect_stack(level, |d| {
            let source = d.source();
            match source.what {
                "Lua" | "main" => Some(match (d.current_line(), source.short_src) {
                    (Some(line), Some(src)) if line > 0 => format!("{src}:{line}: "),
                    _ => String::new(),
                }),
                _ => None,
            }
        }) else {
            break;
        };
        if let Some(position) = found {
            return position;
        }
    }
    String::new()
}

/// Packs results for the wrapper.
pub fn ret(lua: &Lua, values: impl mlua::IntoLuaMulti) -> NkResult<MultiValue> {
    Ok(values.into_lua_multi(lua)?)
}

const WRAP: &str = r#"
local raw = ...
local error = error
local function pass(ok, ...)
  if ok then return ... end
  error((...), 0)
end
local nk = {}
for name, f in pairs(raw) do
  nk[name] = function(...) return pass(f(...)) end
end
return nk
"#;

/// Builds the `nk` table for one VM.
pub fn build(lua: &Lua) -> mlua::Result<Table> {
    let raw = lua.create_table()?;
    let mut all: Vec<(&'static str, Raw)> = Vec::new();
    all.extend(notifications::FUNCTIONS);
    all.extend(hooks::FUNCTIONS);
    all.extend(util::FUNCTIONS);
    all.extend(codec::FUNCTIONS);
    all.extend(localcache::FUNCTIONS);
    all.extend(sessions::FUNCTIONS);
    all.extend(accounts::FUNCTIONS);
    all.extend(friends::FUNCTIONS);
    all.extend(groups::FUNCTIONS);
    all.extend(inbox::FUNCTIONS);
    for (name, f) in all {
        let func = lua.create_function(move |lua, values: MultiValue| {
            let args = Args {
                lua,
                name,
                values: values.into_vec(),
            };
            let mut out = match f(lua, &args) {
                Ok(v) => v,
                Err(NkError(msg)) => {
                    let msg = format!("{}{msg}", script_position(lua));
                    return Ok(MultiValue::from_vec(vec![
                        Value::Boolean(false),
                        Value::String(lua.create_string(&msg)?),
                    ]));
                }
            };
            out.push_front(Value::Boolean(true));
            Ok(out)
        })?;
        raw.set(name, func)?;
    }
    lua.load(WRAP).set_name("=nakama").call(raw)
}

/// The names `nk` offers, for documentation checks.
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = notifications::FUNCTIONS
        .iter()
        .chain(hooks::FUNCTIONS)
        .chain(util::FUNCTIONS)
        .chain(codec::FUNCTIONS)
        .chain(localcache::FUNCTIONS)
        .chain(sessions::FUNCTIONS)
        .chain(accounts::FUNCTIONS)
        .chain(friends::FUNCTIONS)
        .chain(groups::FUNCTIONS)
        .chain(inbox::FUNCTIONS)
        .map(|(n, _)| *n)
        .collect();
    names.sort_unstable();
    names
}

/// The runtime's shared state, for functions that call core.
pub fn shared(lua: &Lua) -> NkResult<std::sync::Arc<crate::runtime::vm::Shared>> {
    lua.app_data_ref::<crate::runtime::vm::VmData>()
        .map(|d| d.shared.clone())
        .ok_or_else(|| NkError("runtime unavailable".into()))
}

#[cfg(test)]
mod tests {
    /// The editor annotation file (lua/library/nakama.lua) and the real `nk` table offer the
    /// same functions.
    #[test]
    fn annotations_match_the_nk_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/lua/library/nakama.lua");
        let text = std::fs::read_to_string(path).expect("annotation file");
        let mut annotated: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("function nk."))
            .filter_map(|l| l.split('(').next())
            .collect();
        annotated.sort_unstable();
        assert_eq!(annotated, super::names());
    }

    /// Every function is documented in the designer reference.
    #[test]
    fn every_function_is_in_the_reference() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/lua-api.md");
        let text = std::fs::read_to_string(path).expect("docs/lua-api.md");
        for name in super::names() {
            assert!(
                text.contains(&format!("nk.{name}(")),
                "{name} is not documented"
            );
        }
    }
}
