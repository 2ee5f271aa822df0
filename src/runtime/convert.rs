//! Lua values <-> JSON, with Nakama's rules (NAKAMA-SPEC §5.2).
//!
//! Lua -> JSON writes text directly (no intermediate tree), the way Go's `encoding/json`
//! would: object keys sorted, no spaces, `<`, `>`, `&`, U+2028 and U+2029 escaped, whole
//! numbers as integers, NaN and infinities refused. A table with an array part (`#t > 0`) is an
//! array of `t[1..#t]` and its hash keys are dropped; any other table is an object whose keys
//! are stringified as Go's `fmt.Sprint` would.
//!
//! JSON -> Lua: objects and arrays become tables (arrays 1-based), numbers become Lua numbers,
//! and `null` removes the key.

use mlua::{Lua, Table, Value};

use crate::core::gojson::write_string;

/// Deepest nesting either direction accepts; deeper (or cyclic) input is an error.
pub const MAX_DEPTH: usize = 64;

/// Longest JSON text a Lua value may encode to. The depth limit alone does not bound the
/// work: tables that share subtables (`t = {a = t, b = t}`, sixty times over) encode to
/// 2^60 copies, and the script's memory limit never sees Rust's output string.
pub const MAX_ENCODED: usize = 32 << 20;

/// Why a value could not be encoded; the text follows Go's `json` package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

/// Encodes any Lua value as JSON text.
pub fn to_json(value: &Value) -> Result<String, EncodeError> {
    to_json_within(value, MAX_ENCODED)
}

/// [`to_json`] refusing text longer than `limit` bytes.
fn to_json_within(value: &Value, limit: usize) -> Result<String, EncodeError> {
    let mut out = String::with_capacity(64);
    write_value(&mut out, value, 0, limit)?;
    Ok(out)
}

/// Encodes notification content: a table that converts to a JSON object is that object; any
/// other table (one with an array part) is `null`, as Nakama's map type assertion makes it.
pub fn content_to_json(table: &Table) -> Result<String, EncodeError> {
    if table.raw_len() > 0 {
        // Still validate it, as Nakama converts before asserting the type.
        let mut scratch = String::new();
        write_value(&mut scratch, &Value::Table(table.clone()), 0, MAX_ENCODED)?;
        return Ok("null".into());
    }
    let mut out = String::with_capacity(64);
    write_object(&mut out, table, 0, MAX_ENCODED)?;
    Ok(out)
}

fn write_value(
    out: &mut String,
    value: &Value,
    depth: usize,
    limit: usize,
) -> Result<(), EncodeError> {
    match value {
        Value::Nil => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => out.push_str(&i.to_string()),
        Value::Number(n) => write_number(out, *n)?,
        Value::String(s) => write_string(out, &s.to_string_lossy()),
        Value::Table(t) => {
            if depth >= MAX_DEPTH {
                return Err(EncodeError(format!(
                    "json: unsupported value: nesting deeper than {MAX_DEPTH} (cyclic table?)"
                )));
            }
            too_long(out, limit)?;
            let n = t.raw_len();
            if n > 0 {
                out.push('[');
                for i in 1..=n {
                    if i > 1 {
                        out.push(',');
                    }
                    let v: Value = t.raw_get(i).map_err(|e| EncodeError(e.to_string()))?;
                    write_value(out, &v, depth + 1, limit)?;
                }
                out.push(']');
            } else {
                write_object(out, t, depth, limit)?;
            }
        }
        other => write_string(out, &display(other)),
    }
    Ok(())
}

fn write_object(
    out: &mut String,
    t: &Table,
    depth: usize,
    limit: usize,
) -> Result<(), EncodeError> {
    too_long(out, limit)?;
    let mut entries: Vec<(String, Value)> = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| EncodeError(e.to_string()))?;
        entries.push((key_string(&k), v));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.dedup_by(|a, b| a.0 == b.0);
    out.push('{');
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, k);
        out.push(':');
        write_value(out, v, depth + 1, limit)?;
    }
    out.push('}');
    Ok(())
}

/// Refuses to go on once the text passed `limit` (checked at each table).
fn too_long(out: &str, limit: usize) -> Result<(), EncodeError> {
    if out.len() > limit {
        return Err(EncodeError(format!(
            "json: unsupported value: encodes to more than {limit} bytes"
        )));
    }
    Ok(())
}

/// A table key as Go's `fmt.Sprint` writes it.
fn key_string(k: &Value) -> String {
    match k {
        Value::String(s) => s.to_string_lossy(),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => go_float(*n),
        Value::Boolean(b) => b.to_string(),
        other => display(other),
    }
}

fn display(v: &Value) -> String {
    match v {
        Value::Function(f) => format!("function: {:p}", f.to_pointer()),
        Value::Table(t) => format!("table: {:p}", t.to_pointer()),
        other => format!("{}: {:p}", other.type_name(), other.to_pointer()),
    }
}

fn write_number(out: &mut String, n: f64) -> Result<(), EncodeError> {
    if n.is_nan() {
        return Err(EncodeError("json: unsupported value: NaN".into()));
    }
    if n.is_infinite() {
        let sign = if n > 0.0 { "+" } else { "-" };
        return Err(EncodeError(format!("json: unsupported value: {sign}Inf")));
    }
    if n.fract() == 0.0 && n.abs() < 9.2e18 {
        out.push_str(&(n as i64).to_string());
    } else {
        out.push_str(&go_float(n));
    }
    Ok(())
}

/// Formats a float as Go's `encoding/json` does: plain decimal for 1e-6 <= |n| < 1e21,
/// otherwise exponent form with a signed, at-least-two-digit exponent (`1e+21`, `1e-07`).
pub fn go_float(n: f64) -> String {
    let abs = n.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        return format!("{n}");
    }
    let e = format!("{n:e}");
    match e.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => e,
    }
}

/// Converts parsed JSON into a Lua value. `null` becomes nil (so it vanishes from tables).
///
/// The whole tree is pushed onto the Lua stack inside one protected call, with the C API.
/// Built through mlua's `Table`/`Value` API instead, every string and table became a registry
/// reference, and every write its own protected call while a memory limit is set: a
/// four-field RPC payload took about 2 us that way, 7 % of an online send's server CPU
/// (BENCHMARKS.md, ninth session). A memory error raised by Lua in the middle unwinds to
/// that one protected call and comes back as mlua's memory error, as before.
pub fn from_json(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    if too_deep(v, 0) {
        return Err(mlua::Error::runtime("JSON nesting is too deep"));
    }
    // SAFETY: `push_json` only calls the Lua C API on values it pushes itself, keeps the
    // stack balanced (one value left), checks the stack room its depth needs first, and holds
    // nothing that needs dropping, so a Lua error (out of memory) may unwind through it.
    unsafe {
        lua.exec_raw::<Value>((), |state| {
            if mlua::ffi::lua_checkstack(state, (2 * MAX_DEPTH + 4) as std::os::raw::c_int) == 0 {
                raise(state, "no Lua stack room to decode JSON");
            }
            push_json(state, v);
        })
    }
}

/// Raises a Lua error with `message` from inside an `exec_raw` call (which turns it into an
/// mlua error). Does not return.
pub(crate) unsafe fn raise(state: *mut mlua::ffi::lua_State, message: &str) {
    push_str(state, message);
    mlua::ffi::lua_error(state);
}

/// Pushes `s` as a Lua string (the C-API builders here and in `context.rs`).
pub(crate) unsafe fn push_str(state: *mut mlua::ffi::lua_State, s: &str) {
    mlua::ffi::lua_pushlstring(state, s.as_ptr() as *const std::os::raw::c_char, s.len());
}

/// A length as the size hint `lua_createtable` takes.
pub(crate) fn table_size(n: usize) -> std::os::raw::c_int {
    n.min(std::os::raw::c_int::MAX as usize) as std::os::raw::c_int
}

/// Whether `v` nests deeper than [`MAX_DEPTH`] below `depth`.
fn too_deep(v: &serde_json::Value, depth: usize) -> bool {
    use serde_json::Value as J;
    if depth > MAX_DEPTH {
        return true;
    }
    match v {
        J::Array(items) => items.iter().any(|i| too_deep(i, depth + 1)),
        J::Object(map) => map.values().any(|i| too_deep(i, depth + 1)),
        _ => false,
    }
}

/// Pushes `v` onto the stack: each level keeps a table and a key below the value it builds,
/// so `2 * MAX_DEPTH + 4` slots are enough for any tree [`too_deep`] accepts.
unsafe fn push_json(state: *mut mlua::ffi::lua_State, v: &serde_json::Value) {
    use mlua::ffi;
    use serde_json::Value as J;
    use std::os::raw::c_int;
    match v {
        J::Null => ffi::lua_pushnil(state),
        J::Bool(b) => ffi::lua_pushboolean(state, c_int::from(*b)),
        J::Number(n) => ffi::lua_pushnumber(state, n.as_f64().unwrap_or(0.0)),
        J::String(s) => push_str(state, s),
        J::Array(items) => {
            ffi::lua_createtable(state, table_size(items.len()), 0);
            for (i, item) in items.iter().enumerate() {
                push_json(state, item);
                ffi::lua_rawseti(state, -2, (i + 1) as ffi::lua_Integer);
            }
        }
        J::Object(map) => {
            ffi::lua_createtable(state, 0, table_size(map.len()));
            for (k, item) in map {
                push_str(state, k);
                push_json(state, item);
                ffi::lua_rawset(state, -3);
            }
        }
    }
}

/// Parses JSON text with serde_json's limits and converts it.
pub fn decode(lua: &Lua, text: &str) -> Result<Value, String> {
    let parsed: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    from_json(lua, &parsed).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(lua: &Lua, src: &str) -> Result<String, EncodeError> {
        let v: Value = lua.load(src).eval().unwrap();
        to_json(&v)
    }

    /// Tables sharing subtables would encode to 2^60 copies: the length limit stops them.
    #[test]
    fn shared_subtables_stop_at_the_length_limit() {
        let lua = Lua::new();
        let dag: Value = lua
            .load("local t = {} for i = 1, 60 do t = {a = t, b = t} end return t")
            .eval()
            .unwrap();
        let err = to_json_within(&dag, 4096).unwrap_err();
        assert!(err.0.contains("more than 4096 bytes"), "{}", err.0);
    }

    #[test]
    fn encodes_like_go() {
        let lua = Lua::new();
        let check = |src: &str, want: &str| assert_eq!(enc(&lua, src).unwrap(), want, "{src}");
        check("return {}", "{}");
        check("return {1,2,3}", "[1,2,3]");
        check("return {1,2,x=3}", "[1,2]");
        check(
            "return {b=true, a=1.5, c='x'}",
            r#"{"a":1.5,"b":true,"c":"x"}"#,
        );
        check("return {h='<&>'}", r#"{"h":"\u003c\u0026\u003e"}"#);
        check("return 1e20", "100000000000000000000");
        check("return 1e21", "1e+21");
        check("return 0.0000001", "1e-07");
        check("return 3", "3");
        check(
            "return {[1.5]='a', [true]='b'}",
            r#"{"1.5":"a","true":"b"}"#,
        );
        check(
            "return {nested={z=1, a={1,2}}}",
            r#"{"nested":{"a":[1,2],"z":1}}"#,
        );
        assert_eq!(
            enc(&lua, "return {n=0/0}").unwrap_err().0,
            "json: unsupported value: NaN"
        );
        assert_eq!(
            enc(&lua, "return {n=1/0}").unwrap_err().0,
            "json: unsupported value: +Inf"
        );
        assert!(enc(&lua, "local t = {} t.self = t return t").is_err());
    }

    #[test]
    fn content_arrays_are_null() {
        let lua = Lua::new();
        let t: Table = lua.load("return {1,2,3}").eval().unwrap();
        assert_eq!(content_to_json(&t).unwrap(), "null");
        let t: Table = lua.load("return {}").eval().unwrap();
        assert_eq!(content_to_json(&t).unwrap(), "{}");
    }

    #[test]
    fn decodes_with_null_removing_keys() {
        let lua = Lua::new();
        let v = decode(&lua, r#"{"a":1,"b":null,"c":[1,2],"d":{"e":"f"}}"#).unwrap();
        lua.globals().set("v", v).unwrap();
        let ok: bool = lua
            .load("return v.a == 1 and v.b == nil and #v.c == 2 and v.d.e == 'f'")
            .eval()
            .unwrap();
        assert!(ok);
    }

    #[test]
    fn decode_refuses_nesting_past_the_limit() {
        let lua = Lua::new();
        let at_limit = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(decode(&lua, &at_limit).is_ok());
        let past = format!("{}{}", "[".repeat(MAX_DEPTH + 2), "]".repeat(MAX_DEPTH + 2));
        let err = decode(&lua, &past).unwrap_err();
        assert!(err.contains("too deep"), "{err}");
    }

    /// Out of memory in the middle of a tree is an error of the call, the VM still usable.
    #[test]
    fn decode_under_a_memory_limit_fails_cleanly() {
        let lua = Lua::new();
        let big = format!("[{}\"x\"]", "\"0123456789abcdef\",".repeat(200_000));
        lua.set_memory_limit(lua.used_memory() + 1024 * 1024)
            .unwrap();
        let err = decode(&lua, &big).unwrap_err();
        assert!(err.contains("memory"), "{err}");
        let v = decode(&lua, r#"{"k":[true,2,"s"]}"#).unwrap();
        lua.globals().set("v", v).unwrap();
        let ok: bool = lua
            .load("return v.k[1] == true and v.k[2] == 2 and v.k[3] == 's'")
            .eval()
            .unwrap();
        assert!(ok);
    }
}
