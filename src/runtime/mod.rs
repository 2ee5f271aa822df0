//! The Lua runtime: modules from `runtime.path`, sandboxed Lua 5.1 VMs (one per server worker
//! thread for calls run inline, and a pool on threads of their own for the rest), the `nk`
//! table, RPCs and request hooks.
//!
//! Why PUC Lua 5.1 (see ARCHITECTURE.md): Nakama's modules are Lua 5.1; a count hook stops
//! every runaway loop in PUC Lua (LuaJIT's compiled loops never run the hook), a memory limit
//! works, and a `notification_send` costs the same on every VM we measured because most of it
//! is converting the content table to JSON.
//!
//! Every VM evaluates every module itself, so a VM never shares Lua state with another; what a
//! script writes to a global stays in that VM, as with Nakama's read-only globals. The first VM
//! is the reference: it is built before the server starts, its load error (file, line,
//! message) refuses start-up, and its registrations are the RPC ids and hooks the doors see.

pub mod check;
pub mod context;
pub mod convert;
mod inline;
pub mod modules;
pub mod nk;
mod pool;
pub mod reload;
pub mod sandbox;
pub mod vm;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::oneshot;

pub use context::CallContext;
pub use reload::{ReloadStatus, Runtime};
use vm::{CallArgs, CallOutput};

use crate::config::RuntimeConfig;
use crate::core::{Code, Core};

/// Stack a Lua call may use: every pool thread gets this much, and an inline call runs on
/// a fresh stack of this size when its worker thread has less left (`runtime::inline`). Lua
/// 5.1 allows 200 nested C calls (`pcall`, `gsub` callbacks): in a debug build those
/// overflowed what a 2 MiB worker thread had left under a request's futures.
pub const LUA_STACK: usize = 2 * 1024 * 1024;

/// Stack of the server's tokio worker threads: a request's futures and a Lua call.
pub const WORKER_STACK: usize = 4 * LUA_STACK;

/// The runtime's settings (from `config::RuntimeConfig`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub path: PathBuf,
    pub min_count: usize,
    pub max_count: usize,
    pub queue_size: usize,
    pub call_timeout_ms: u64,
    pub memory_limit_bytes: usize,
    pub api_stacktrace: bool,
    pub inline_calls: bool,
}

impl Settings {
    pub fn from_config(c: &RuntimeConfig) -> Settings {
        Settings {
            path: c.path.clone(),
            min_count: c.lua_min_count,
            max_count: c.lua_max_count.max(1),
            queue_size: c.lua_queue_size.max(1),
            call_timeout_ms: c.lua_call_timeout_ms,
            memory_limit_bytes: c.lua_memory_limit_bytes,
            api_stacktrace: c.lua_api_stacktrace,
            inline_calls: c.lua_inline_calls,
        }
    }
}

/// A script failure as a door reports it: a gRPC code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeError {
    pub code: Code,
    pub message: String,
}

impl RuntimeError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        RuntimeError {
            code,
            message: message.into(),
        }
    }
}

/// The key Nakama stores a request hook under: `/nakama.api.nakama/<method>`, lowercased.
pub fn hook_key(method: &str) -> String {
    format!("/nakama.api.nakama/{}", method.to_ascii_lowercase())
}

/// One loaded set of modules and its VM pool. Replaced whole by a reload; calls already
/// running keep the generation they started on.
pub struct Generation {
    pool: pool::Pool,
    /// Commits the sends a call deferred.
    core: Arc<Core>,
    rpcs: HashSet<String>,
    before: HashSet<String>,
    after: HashSet<String>,
    module_names: Vec<String>,
}

impl Generation {
    /// Loads every module into the reference VM and starts the pool. Fails with the first
    /// module error (file:line: message).
    pub async fn start(
        settings: Settings,
        core: Arc<Core>,
        version: &str,
        localcache: Arc<nk::LocalCache>,
    ) -> Result<Generation, String> {
        let path = settings.path.clone();
        let modules = tokio::task::spawn_blocking(move || modules::discover(&path))
            .await
            .map_err(|e| e.to_string())??;
        let module_names = modules.iter().map(|m| m.name.clone()).collect();
        let core_ref = core.clone();
        let shared = Arc::new(vm::Shared {
            node: context::NodeInfo {
                node: core.node.clone(),
                version: version.to_string(),
            },
            core,
            handle: tokio::runtime::Handle::current(),
            settings,
            modules,
            run_once_done: Default::default(),
            inline_calls: Default::default(),
            localcache,
        });
        let (pool, (rpcs, before, after)) = pool::Pool::start(shared).await?;
        Ok(Generation {
            pool,
            core: core_ref,
            rpcs: rpcs.into_iter().collect(),
            before: before.into_iter().collect(),
            after: after.into_iter().collect(),
            module_names,
        })
    }

    /// Module names, in load order.
    pub fn modules(&self) -> &[String] {
        &self.module_names
    }

    /// Registered RPC ids, sorted.
    pub fn rpc_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.rpcs.iter().cloned().collect();
        ids.sort();
        ids
    }

    /// Whether an RPC with this (case-insensitive) id is registered.
    pub fn has_rpc(&self, id: &str) -> bool {
        self.rpcs.contains(&id.to_lowercase())
    }

    pub fn has_before(&self, method: &str) -> bool {
        self.before.contains(&hook_key(method))
    }

    pub fn has_after(&self, method: &str) -> bool {
        self.after.contains(&hook_key(method))
    }

    /// Calls running inline on worker threads right now (`runtime::inline`).
    pub fn inline_calls(&self) -> usize {
        self.pool
            .shared()
            .inline_calls
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The pool's (VM threads, idle, queued calls).
    pub fn pool_usage(&self) -> (usize, usize, usize) {
        self.pool.usage()
    }

    /// Runs a call and records its duration and outcome under `target` (a registered RPC id
    /// or hook name; callers check registration first, so the label set stays bounded).
    async fn run(
        &self,
        target: String,
        ctx: CallContext,
        args: CallArgs,
    ) -> Result<CallOutput, RuntimeError> {
        let started = std::time::Instant::now();
        let label = target.clone();
        let result = self.call(target, ctx, args).await;
        self.core
            .metrics
            .call(&label, started.elapsed().as_secs_f64(), result.is_err());
        result
    }

    async fn call(
        &self,
        target: String,
        ctx: CallContext,
        args: CallArgs,
    ) -> Result<CallOutput, RuntimeError> {
        let finished = match inline::run(self.pool.shared(), &target, &ctx, args) {
            Ok(finished) => finished,
            Err(args) => {
                let (reply, wait) = oneshot::channel();
                self.pool.submit(pool::Job {
                    target,
                    ctx,
                    args: *args,
                    reply,
                    span: tracing::Span::current(),
                })?;
                wait.await.map_err(|_| {
                    RuntimeError::new(Code::Internal, "Lua VM stopped during the call")
                })?
            }
        };
        if finished.deferred.is_empty() {
            return finished.result;
        }
        let sent = self.core.notifications.send_calls(finished.deferred).await;
        match (finished.result, sent) {
            (Ok(_), Err(e)) => Err(RuntimeError::new(
                Code::Internal,
                format!("failed to send notifications: {}", e.message),
            )),
            (result, _) => result,
        }
    }

    /// Calls an RPC; `Ok(None)` is a nil result.
    pub async fn rpc(
        &self,
        id: &str,
        ctx: CallContext,
        payload: String,
    ) -> Result<Option<String>, RuntimeError> {
        match self
            .run(id.to_lowercase(), ctx, CallArgs::Rpc { payload })
            .await?
        {
            CallOutput::Rpc(v) => Ok(v),
            _ => Err(RuntimeError::new(Code::Internal, "unexpected RPC result")),
        }
    }

    /// Runs the before-hook of `method` on `request` (its protojson form). `Ok(None)` means
    /// the hook returned nil: the request must be refused. Without a hook the request passes.
    pub async fn before(
        &self,
        method: &str,
        ctx: CallContext,
        request: serde_json::Value,
    ) -> Result<Option<serde_json::Value>, RuntimeError> {
        if !self.has_before(method) {
            return Ok(Some(request));
        }
        match self
            .run(hook_key(method), ctx, CallArgs::Before { request })
            .await?
        {
            CallOutput::Before(v) => Ok(v),
            _ => Err(RuntimeError::new(Code::Internal, "unexpected hook result")),
        }
    }

    /// Runs the after-hook of `method`. Its errors are logged, never returned to clients.
    pub async fn after(
        &self,
        method: &str,
        ctx: CallContext,
        response: serde_json::Value,
        request: serde_json::Value,
    ) {
        if !self.has_after(method) {
            return;
        }
        let result = self
            .run(hook_key(method), ctx, CallArgs::After { response, request })
            .await;
        if let Err(e) = result {
            tracing::warn!(method, error = %e.message, "after-hook failed");
        }
    }
}
