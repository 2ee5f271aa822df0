//! The VM pool: Lua states on their own OS threads, fed by one shared job queue.
//!
//! `lua_min_count` threads start with the runtime; when a job arrives and no VM is idle,
//! another thread starts, up to `lua_max_count`; beyond that jobs wait in the queue. A VM
//! that hit a limit (time or memory) or panicked is replaced by a fresh one, so one bad call
//! never leaves a half-broken VM behind and never takes the server down.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use tokio::sync::oneshot;

use super::vm::{CallArgs, Finished, Shared, Vm};
use super::{CallContext, RuntimeError};
use crate::core::Code;

pub struct Job {
    pub target: String,
    pub ctx: CallContext,
    pub args: CallArgs,
    pub reply: oneshot::Sender<Finished>,
    /// The caller's span (its request or socket session), entered on the VM thread so the
    /// script's log lines carry the same id.
    pub span: tracing::Span,
}

type Registrations = (Vec<String>, Vec<String>, Vec<String>);

pub struct Pool {
    tx: Sender<Job>,
    rx: Receiver<Job>,
    shared: Arc<Shared>,
    workers: Arc<AtomicUsize>,
    idle: Arc<AtomicUsize>,
}

impl Pool {
    /// Builds the reference VM (reporting its load error, if any), then the other workers.
    pub async fn start(shared: Arc<Shared>) -> Result<(Pool, Registrations), String> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let pool = Pool {
            tx,
            rx,
            shared,
            workers: Arc::new(AtomicUsize::new(0)),
            idle: Arc::new(AtomicUsize::new(0)),
        };
        let (ready, loaded) = oneshot::channel();
        pool.spawn(Some(ready))?;
        let registrations = loaded
            .await
            .map_err(|_| "the reference Lua VM stopped while loading".to_string())??;
        for _ in 1..pool.shared.settings.min_count {
            pool.spawn(None)?;
        }
        Ok((pool, registrations))
    }

    fn spawn(
        &self,
        ready: Option<oneshot::Sender<Result<Registrations, String>>>,
    ) -> Result<(), String> {
        let n = self.workers.fetch_add(1, Ordering::SeqCst);
        let shared = self.shared.clone();
        let rx = self.rx.clone();
        let workers = self.workers.clone();
        let idle = self.idle.clone();
        std::thread::Builder::new()
            .name(format!("lua-{n}"))
            .stack_size(super::LUA_STACK)
            .spawn(move || {
                worker(shared, rx, idle, ready);
                workers.fetch_sub(1, Ordering::SeqCst);
            })
            .map(|_| ())
            .map_err(|e| {
                self.workers.fetch_sub(1, Ordering::SeqCst);
                format!("cannot start a Lua thread: {e}")
            })
    }

    /// What every VM of this pool shares (inline VMs too).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// (VM threads, of which idle, calls queued): the pool's use, for metrics.
    pub fn usage(&self) -> (usize, usize, usize) {
        (
            self.workers.load(Ordering::SeqCst),
            self.idle.load(Ordering::SeqCst),
            self.rx.len(),
        )
    }

    /// Queues a call for the next free VM. Past `lua_queue_size` waiting calls it is refused
    /// at once (Unavailable): an overload gets quick errors, not unbounded memory and latency.
    pub fn submit(&self, job: Job) -> Result<(), RuntimeError> {
        if self.rx.len() >= self.shared.settings.queue_size {
            return Err(RuntimeError::new(
                Code::Unavailable,
                "Lua runtime is overloaded: too many calls waiting; try again",
            ));
        }
        if self.idle.load(Ordering::SeqCst) == 0
            && self.workers.load(Ordering::SeqCst) < self.shared.settings.max_count
        {
            if let Err(e) = self.spawn(None) {
                tracing::warn!(error = %e, "could not grow the Lua pool");
            }
        }
        self.tx
            .send(job)
            .map_err(|_| RuntimeError::new(Code::Unavailable, "Lua runtime is stopped"))
    }
}

fn worker(
    shared: Arc<Shared>,
    rx: Receiver<Job>,
    idle: Arc<AtomicUsize>,
    ready: Option<oneshot::Sender<Result<Registrations, String>>>,
) {
    let mut vm = match Vm::new(shared.clone()) {
        Ok(vm) => vm,
        Err(e) => {
            match ready {
                Some(ready) => {
                    let _ = ready.send(Err(e));
                }
                None => tracing::error!(error = %e, "a Lua VM failed to load"),
            }
            return;
        }
    };
    if let Some(ready) = ready {
        let _ = ready.send(Ok(vm.registrations()));
    }
    idle.fetch_add(1, Ordering::SeqCst);
    while let Ok(job) = rx.recv() {
        idle.fetch_sub(1, Ordering::SeqCst);
        let Job {
            target,
            ctx,
            args,
            reply,
            span,
        } = job;
        let _entered = span.enter();
        let (result, replace) = call_guarded(&mut vm, &target, &ctx, args);
        let _ = reply.send(result);
        if replace {
            match Vm::new(shared.clone()) {
                Ok(fresh) => vm = fresh,
                Err(e) => {
                    tracing::error!(error = %e, "could not replace a Lua VM");
                    return;
                }
            }
        }
        idle.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs one call on `vm`, turning a panic into an Internal error. The flag says the VM must
/// be replaced: a limit stopped the script, or the call panicked.
pub fn call_guarded(
    vm: &mut Vm,
    target: &str,
    ctx: &CallContext,
    args: CallArgs,
) -> (Finished, bool) {
    match catch_unwind(AssertUnwindSafe(|| vm.call(target, ctx, args))) {
        Ok(finished) => (finished, vm.spent),
        Err(_) => (
            Finished {
                result: Err(RuntimeError::new(Code::Internal, "Lua call failed")),
                deferred: Vec::new(),
            },
            true,
        ),
    }
}
