//! Hot reload: the [`Runtime`] the doors call holds the current [`Generation`] and replaces it
//! whole when the modules change.
//!
//! A reload builds a new generation beside the running one (fresh VMs, every module loaded);
//! only if that succeeds is it swapped in, atomically. Calls already running keep the
//! generation they started on (they hold an `Arc` to it); new calls get the new one; the old
//! generation's VM threads stop once its last call is done. A failed reload keeps the old
//! generation serving and records the error (file:line: message) for the log and for
//! `GET /v2/tidings/runtime`. Every attempt bumps an attempt counter that tests wait on.
//!
//! `run_once` runs once per generation: a successful reload is a fresh start, so functions
//! given to `run_once` run again and should be idempotent.
//!
//! Triggers: file events from `notify` on `runtime.path` (debounced so one save, including an
//! editor's write-to-temp-then-rename, is one reload), an optional polling fallback for file
//! systems without events, SIGHUP (wired in `lib::run`), and `POST /v2/tidings/runtime/reload`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{CallContext, Generation, RuntimeError, Settings};
use crate::core::Core;

/// Quiet time after the last file event before a reload starts.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// What a developer polls to see the state of the modules.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// 1 for the modules loaded at start, +1 per successful reload.
    pub generation: u64,
    pub modules: Vec<String>,
    pub rpcs: Vec<String>,
    /// When the serving generation was loaded.
    pub loaded_at: Option<SystemTime>,
    /// Reload attempts so far (successful or not), not counting start-up.
    pub attempts: u64,
    pub failures: u64,
    pub last_attempt_at: Option<SystemTime>,
    /// The error of the last attempt, if it failed; cleared by the next success.
    pub last_error: Option<String>,
}

pub struct Runtime {
    current: RwLock<Arc<Generation>>,
    core: Arc<Core>,
    settings: Settings,
    version: String,
    status: Mutex<ReloadStatus>,
    /// One reload at a time; a trigger during a reload waits and then reloads again.
    reloading: tokio::sync::Mutex<()>,
    attempts: watch::Sender<u64>,
    /// `nk.localcache_*`'s entries outlive each generation, as they would the code that put
    /// them in a server without reloads.
    localcache: Arc<super::nk::LocalCache>,
}

impl Runtime {
    /// Loads the modules (an error refuses start-up) and returns the runtime.
    pub async fn start(
        settings: Settings,
        core: Arc<Core>,
        version: &str,
    ) -> Result<Runtime, String> {
        let localcache = Arc::new(super::nk::LocalCache::default());
        let generation =
            Generation::start(settings.clone(), core.clone(), version, localcache.clone()).await?;
        let status = ReloadStatus {
            generation: 1,
            modules: generation.modules().to_vec(),
            rpcs: generation.rpc_ids(),
            loaded_at: Some(SystemTime::now()),
            ..ReloadStatus::default()
        };
        Ok(Runtime {
            current: RwLock::new(Arc::new(generation)),
            core,
            settings,
            version: version.to_string(),
            status: Mutex::new(status),
            reloading: tokio::sync::Mutex::new(()),
            attempts: watch::channel(0).0,
            localcache,
        })
    }

    /// The generation new calls run on.
    pub fn current(&self) -> Arc<Generation> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Resolves with the attempt count after each reload attempt.
    pub fn attempts(&self) -> watch::Receiver<u64> {
        self.attempts.subscribe()
    }

    /// Loads the modules again; swaps them in only if all load. Returns the new generation
    /// number, or the load error (the old generation keeps serving).
    pub async fn reload(&self, reason: &str) -> Result<u64, String> {
        let _one_at_a_time = self.reloading.lock().await;
        let started = std::time::Instant::now();
        let result = Generation::start(
            self.settings.clone(),
            self.core.clone(),
            &self.version,
            self.localcache.clone(),
        )
        .await;
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.attempts += 1;
        status.last_attempt_at = Some(SystemTime::now());
        let outcome = match result {
            Ok(generation) => {
                status.generation += 1;
                status.modules = generation.modules().to_vec();
                status.rpcs = generation.rpc_ids();
                status.loaded_at = status.last_attempt_at;
                status.last_error = None;
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(generation);
                tracing::info!(
                    generation = status.generation,
                    reason,
                    modules = status.modules.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "Lua modules reloaded"
                );
                Ok(status.generation)
            }
            Err(e) => {
                status.failures += 1;
                status.last_error = Some(e.clone());
                tracing::error!(reason, error = %e, "Lua reload failed; the previous modules keep serving");
                Err(e)
            }
        };
        let attempts = status.attempts;
        drop(status);
        self.attempts.send_replace(attempts);
        outcome
    }

    // The doors' calls, each on the generation current when it starts.

    pub fn modules(&self) -> Vec<String> {
        self.current().modules().to_vec()
    }

    pub fn has_rpc(&self, id: &str) -> bool {
        self.current().has_rpc(id)
    }

    pub fn has_before(&self, method: &str) -> bool {
        self.current().has_before(method)
    }

    pub fn has_after(&self, method: &str) -> bool {
        self.current().has_after(method)
    }

    pub async fn rpc(
        &self,
        id: &str,
        ctx: CallContext,
        payload: String,
    ) -> Result<Option<String>, RuntimeError> {
        self.current().rpc(id, ctx, payload).await
    }

    pub async fn before(
        &self,
        method: &str,
        ctx: CallContext,
        request: serde_json::Value,
    ) -> Result<Option<serde_json::Value>, RuntimeError> {
        self.current().before(method, ctx, request).await
    }

    pub async fn after(
        &self,
        method: &str,
        ctx: CallContext,
        response: serde_json::Value,
        request: serde_json::Value,
    ) {
        self.current().after(method, ctx, response, request).await
    }
}

/// Keeps the file watcher and the reload tasks alive; dropping it stops them.
pub struct Watcher {
    _fs: Option<notify::RecommendedWatcher>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Whether a file event can change what the modules are.
fn relevant(event: &notify::Event) -> bool {
    use notify::event::{MetadataKind, ModifyKind};
    match event.kind {
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        _ => event
            .paths
            .iter()
            .any(|p| p.extension().is_none_or(|e| e.eq_ignore_ascii_case("lua"))),
    }
}

/// Sizes and modification times of every module file: what the polling fallback compares.
fn fingerprint(root: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, u64, Option<SystemTime>)>) {
        if depth > 32 || out.len() > 10_000 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                walk(&path, depth + 1, out);
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("lua"))
            {
                out.push((path, meta.len(), meta.modified().ok()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, 0, &mut out);
    out.sort();
    out
}

/// Starts watching `runtime.path`: file events (if the platform delivers them) and, when
/// `poll_ms > 0`, a periodic scan. Both feed one debounced reload loop.
pub fn watch(rt: Arc<Runtime>, poll_ms: u64) -> Watcher {
    let root = rt.settings.path.clone();
    let (tx, mut rx) = mpsc::channel::<()>(64);
    let mut tasks = Vec::new();

    let fs = if root.is_dir() {
        let events = tx.clone();
        let made = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.is_ok_and(|e| relevant(&e)) {
                let _ = events.try_send(());
            }
        });
        match made.and_then(|mut w| w.watch(&root, RecursiveMode::Recursive).map(|_| w)) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(path = %root.display(), error = %e, "cannot watch Lua modules; set runtime.hot_reload_poll_ms to poll instead");
                None
            }
        }
    } else {
        tracing::warn!(path = %root.display(), "module directory does not exist; not watching it");
        None
    };

    if poll_ms > 0 {
        let events = tx.clone();
        let root = root.clone();
        tasks.push(tokio::spawn(async move {
            let scan = |root: PathBuf| tokio::task::spawn_blocking(move || fingerprint(&root));
            let mut last = scan(root.clone()).await.unwrap_or_default();
            loop {
                tokio::time::sleep(Duration::from_millis(poll_ms)).await;
                let now = scan(root.clone()).await.unwrap_or_default();
                if now != last {
                    last = now;
                    let _ = events.send(()).await;
                }
            }
        }));
    }
    drop(tx);

    tasks.push(tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait until the events stop for DEBOUNCE.
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let _ = rt.reload("module files changed").await;
        }
    }));
    Watcher { _fs: fs, tasks }
}
