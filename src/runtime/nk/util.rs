//! Everyday helpers: logging, JSON, ids, time, the call context (encodings and hashes are in
//! `codec`).

use mlua::{Lua, MultiValue, Value};

use super::{ret, Args, NkError, NkResult, Raw};
use crate::runtime::context::{self, CallContext, Mode};
use crate::runtime::convert;
use crate::runtime::vm::VmData;

pub const FUNCTIONS: &[(&str, Raw)] = &[
    ("logger_debug", logger_debug),
    ("logger_info", logger_info),
    ("logger_warn", logger_warn),
    ("logger_error", logger_error),
    ("json_encode", json_encode),
    ("json_decode", json_decode),
    ("uuid_v4", uuid_v4),
    ("time", time),
    ("get_context", get_context),
];

fn message(args: &Args) -> NkResult<String> {
    let msg = args.check_string(1)?;
    if msg.is_empty() {
        return Err(args.error(1, "expects message string"));
    }
    Ok(msg)
}

/// `nk.logger_debug(msg)`: logs `msg` as is and returns it.
fn logger_debug(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let msg = message(args)?;
    tracing::debug!(target: "tidings::lua", "{msg}");
    ret(lua, msg)
}

fn logger_info(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let msg = message(args)?;
    tracing::info!(target: "tidings::lua", "{msg}");
    ret(lua, msg)
}

fn logger_warn(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let msg = message(args)?;
    tracing::warn!(target: "tidings::lua", "{msg}");
    ret(lua, msg)
}

fn logger_error(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let msg = message(args)?;
    tracing::error!(target: "tidings::lua", "{msg}");
    ret(lua, msg)
}

/// `nk.json_encode(value)`.
fn json_encode(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let text = convert::to_json(args.get(1))
        .map_err(|e| NkError(format!("error encoding to JSON: {}", e.0)))?;
    ret(lua, text)
}

/// `nk.json_decode(text)`: `null` removes keys.
fn json_decode(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let text = args.check_string(1)?;
    if text.is_empty() {
        return Err(args.error(1, "expects JSON string"));
    }
    let value = convert::decode(lua, &text)
        .map_err(|e| NkError(format!("not a valid JSON string: {e}")))?;
    ret(lua, value)
}

fn uuid_v4(lua: &Lua, _args: &Args) -> NkResult<MultiValue> {
    ret(lua, uuid::Uuid::new_v4().to_string())
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `nk.time([date])`: now in unix milliseconds, or the given UTC date table's.
fn time(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let Some(t) = args.opt_table(1)? else {
        return ret(lua, crate::core::time::now_micros() / 1000);
    };
    let field = |k: &str, default: i64| -> NkResult<i64> {
        match t.get::<Value>(k)? {
            Value::Nil => Ok(default),
            Value::Integer(i) => Ok(i),
            Value::Number(n) => Ok(n as i64),
            _ => Err(args.error(1, &format!("expects {k} to be a number"))),
        }
    };
    let days = days_from_civil(field("year", 1970)?, field("month", 1)?, field("day", 1)?);
    let secs = days * 86_400 + field("hour", 12)? * 3600 + field("min", 0)? * 60 + field("sec", 0)?;
    ret(lua, secs * 1000)
}

/// `nk.get_context()`: the context of the call in progress, or outside a call (at module
/// load) a node-level context with no user.
fn get_context(lua: &Lua, _args: &Args) -> NkResult<MultiValue> {
    let current = lua
        .app_data_ref::<VmData>()
        .and_then(|d| d.current.borrow().clone());
    if let Some(ctx) = current {
        return ret(lua, ctx);
    }
    let shared = super::shared(lua)?;
    let ctx = context::to_table(lua, &CallContext::default(), Mode::RunOnce, &shared.node)?;
    ret(lua, ctx)
}
