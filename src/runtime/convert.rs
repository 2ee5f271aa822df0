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
pub fn from_json(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    from_json_at(lua, v, 0)
}

fn from_json_at(lua: &Lua, v: &serde_json::Value, depth: usize) -> mlua::Result<Value> {
    use serde_json::Value as J;
    if depth > MAX_DEPTH {
        return Err(mlua::Error::runtime("JSON nesting is too deep"));
    }
    Ok(match v {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Value::String(lua.create_string(s)?),
        J::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, from_json_at(lua, item, depth + 1)?)?;
            }
            Value::Table(t)
        }
        J::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, item) in map {
                t.raw_set(k.as_str(), from_json_at(lua, item, depth + 1)?)?;
            }
            Value::Table(t)
        }
    })
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
}
