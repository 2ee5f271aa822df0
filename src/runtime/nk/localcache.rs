//! `nk.localcache_get/put/delete/clear`: Nakama's node-local cache, one per process and
//! shared by every VM (and kept across hot reloads, like any data a script put there).
//!
//! Nakama shares the Lua value itself between its VMs. Our VMs are separate Lua states, so
//! a value is copied in as a plain tree ([`Cached`]) and copied out again on every get: a
//! script gets its own table each time (Nakama hands out one read-only table). Functions,
//! coroutines and userdata cannot cross VMs and are refused. TTLs are in seconds, 0 keeps
//! the entry until it is replaced, deleted or cleared; expired entries are dropped when
//! read and when room is needed.
//!
//! Unlike Nakama's unbounded map, the cache holds at most [`MAX_BYTES`] (an estimate of its
//! keys and values): scripts are untrusted-ish, and a cache that grows until the process
//! dies would be a memory hog no VM limit sees. A put past it raises an error.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mlua::{Lua, MultiValue, Table, Value};

use super::{ret, Args, NkError, NkResult, Raw};
use crate::runtime::convert::MAX_DEPTH;

pub const FUNCTIONS: &[(&str, Raw)] = &[
    ("localcache_get", localcache_get),
    ("localcache_put", localcache_put),
    ("localcache_delete", localcache_delete),
    ("localcache_clear", localcache_clear),
];

/// Most bytes (keys and values, estimated) the cache holds.
pub const MAX_BYTES: usize = 64 << 20;

/// A Lua value that can live outside any VM.
#[derive(Debug, Clone, PartialEq)]
enum Cached {
    Nil,
    Bool(bool),
    Integer(i64),
    Number(f64),
    Bytes(Vec<u8>),
    Table(Vec<(Cached, Cached)>),
}

impl Cached {
    /// Estimated bytes held.
    fn size(&self) -> usize {
        16 + match self {
            Cached::Bytes(b) => b.len(),
            Cached::Table(pairs) => pairs.iter().map(|(k, v)| k.size() + v.size()).sum(),
            _ => 0,
        }
    }
}

struct Entry {
    value: Cached,
    expires: Option<Instant>,
    size: usize,
}

/// The process's cache.
#[derive(Default)]
pub struct LocalCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Vec<u8>, Entry>,
    bytes: usize,
}

impl Inner {
    fn remove(&mut self, key: &[u8]) {
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= old.size;
        }
    }

    fn drop_expired(&mut self, now: Instant) {
        let before = self.entries.len();
        self.entries
            .retain(|_, e| e.expires.is_none_or(|t| t > now));
        if self.entries.len() != before {
            self.bytes = self.entries.values().map(|e| e.size).sum();
        }
    }
}

impl LocalCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, key: &[u8]) -> Option<Cached> {
        let mut inner = self.lock();
        let entry = inner.entries.get(key)?;
        if entry.expires.is_some_and(|t| t <= Instant::now()) {
            inner.remove(key);
            return None;
        }
        Some(entry.value.clone())
    }

    fn put(&self, key: Vec<u8>, value: Cached, ttl: Option<Duration>) -> Result<(), String> {
        let size = key.len() + value.size();
        let mut inner = self.lock();
        inner.remove(&key);
        if inner.bytes + size > MAX_BYTES {
            inner.drop_expired(Instant::now());
            if inner.bytes + size > MAX_BYTES {
                return Err(full_message());
            }
        }
        inner.bytes += size;
        let expires = ttl.map(|t| Instant::now() + t);
        inner.entries.insert(
            key,
            Entry {
                value,
                expires,
                size,
            },
        );
        Ok(())
    }

    fn delete(&self, key: &[u8]) {
        self.lock().remove(key);
    }

    fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.bytes = 0;
    }
}

fn full_message() -> String {
    format!(
        "localcache is full ({} MiB): delete or clear entries first",
        MAX_BYTES >> 20
    )
}

fn cache(lua: &Lua) -> NkResult<std::sync::Arc<LocalCache>> {
    Ok(super::shared(lua)?.localcache.clone())
}

fn key(args: &Args) -> NkResult<Vec<u8>> {
    let key = args.check_bytes(1)?;
    if key.is_empty() {
        return Err(args.error(1, "expects key string"));
    }
    Ok(key)
}

/// Why a value cannot be cached.
enum Refused {
    /// A function, a thread, userdata, or tables nested deeper than the JSON limit (which
    /// also stops cycles).
    NotShareable,
    /// Its copy would not fit in the cache.
    TooLarge,
}

/// Copies a Lua value out of its VM, spending `budget` (bytes, as [`Cached::size`] counts
/// them): tables that share subtables copy each share again, so without a budget sixty
/// levels of `{a = t, b = t}` would take 2^60 steps.
fn copy_out(v: &Value, depth: usize, budget: &mut usize) -> Result<Cached, Refused> {
    let cost = 16
        + if let Value::String(s) = v {
            s.as_bytes().len()
        } else {
            0
        };
    *budget = budget.checked_sub(cost).ok_or(Refused::TooLarge)?;
    Ok(match v {
        Value::Nil => Cached::Nil,
        Value::Boolean(b) => Cached::Bool(*b),
        Value::Integer(i) => Cached::Integer(*i),
        Value::Number(n) => Cached::Number(*n),
        Value::String(s) => Cached::Bytes(s.as_bytes().to_vec()),
        Value::Table(t) if depth < MAX_DEPTH => {
            let mut pairs = Vec::new();
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, v) = pair.map_err(|_| Refused::NotShareable)?;
                pairs.push((
                    copy_out(&k, depth + 1, budget)?,
                    copy_out(&v, depth + 1, budget)?,
                ));
            }
            Cached::Table(pairs)
        }
        _ => return Err(Refused::NotShareable),
    })
}

/// A fresh Lua value for this VM.
fn copy_in(lua: &Lua, c: &Cached) -> mlua::Result<Value> {
    Ok(match c {
        Cached::Nil => Value::Nil,
        Cached::Bool(b) => Value::Boolean(*b),
        Cached::Integer(i) => Value::Integer(*i),
        Cached::Number(n) => Value::Number(*n),
        Cached::Bytes(b) => Value::String(lua.create_string(b)?),
        Cached::Table(pairs) => {
            let t: Table = lua.create_table_with_capacity(0, pairs.len())?;
            for (k, v) in pairs {
                t.raw_set(copy_in(lua, k)?, copy_in(lua, v)?)?;
            }
            Value::Table(t)
        }
    })
}

/// `nk.localcache_get(key, default?)`: the value, or `default` (nil) when absent or expired.
fn localcache_get(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let key = key(args)?;
    match cache(lua)?.get(&key) {
        Some(v) => ret(lua, copy_in(lua, &v)?),
        None => ret(lua, args.get(2).clone()),
    }
}

/// `nk.localcache_put(key, value, ttl_seconds = 0)`.
fn localcache_put(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    let key = key(args)?;
    let value =
        match copy_out(args.get(2), 0, &mut MAX_BYTES.clone()) {
            Ok(value) => value,
            Err(Refused::NotShareable) => return Err(args.error(
                2,
                "expects a value VMs can share: nil, boolean, number, string or a table of those",
            )),
            Err(Refused::TooLarge) => return Err(NkError(full_message())),
        };
    let ttl = args.opt_int(3, 0)?;
    if ttl < 0 {
        return Err(args.error(3, "ttl must be 0 or more"));
    }
    let ttl = (ttl > 0).then(|| Duration::from_secs(ttl as u64));
    cache(lua)?.put(key, value, ttl).map_err(NkError)?;
    ret(lua, ())
}

/// `nk.localcache_delete(key)`.
fn localcache_delete(lua: &Lua, args: &Args) -> NkResult<MultiValue> {
    cache(lua)?.delete(&key(args)?);
    ret(lua, ())
}

/// `nk.localcache_clear()`.
fn localcache_clear(lua: &Lua, _args: &Args) -> NkResult<MultiValue> {
    cache(lua)?.clear();
    ret(lua, ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tables sharing subtables would copy 2^60 times: the budget stops them early.
    #[test]
    fn shared_subtables_exhaust_the_budget() {
        let lua = Lua::new();
        let dag: Value = lua
            .load("local t = {} for i = 1, 60 do t = {a = t, b = t} end return t")
            .eval()
            .unwrap();
        assert!(matches!(
            copy_out(&dag, 0, &mut 100_000),
            Err(Refused::TooLarge)
        ));
        let f: Value = lua.load("return print").eval().unwrap();
        assert!(matches!(
            copy_out(&f, 0, &mut 100_000),
            Err(Refused::NotShareable)
        ));
    }

    #[test]
    fn entries_expire_and_the_size_is_bounded() {
        let cache = LocalCache::default();
        cache
            .put(b"a".to_vec(), Cached::Integer(1), Some(Duration::ZERO))
            .expect("put");
        assert_eq!(cache.get(b"a"), None, "a zero-length TTL is already over");
        cache
            .put(b"b".to_vec(), Cached::Bool(true), None)
            .expect("put");
        assert_eq!(cache.get(b"b"), Some(Cached::Bool(true)));
        let big = Cached::Bytes(vec![0; MAX_BYTES / 2]);
        cache.put(b"c".to_vec(), big.clone(), None).expect("half");
        assert!(cache.put(b"d".to_vec(), big.clone(), None).is_err(), "full");
        cache
            .put(b"c".to_vec(), big, None)
            .expect("replacing frees the old value");
        cache.delete(b"c");
        assert_eq!(cache.lock().bytes, 1 + Cached::Bool(true).size());
        cache.clear();
        assert_eq!(cache.lock().bytes, 0);
    }
}
