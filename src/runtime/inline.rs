//! Lua calls on the request's own thread: each tokio worker thread keeps a VM of its own and
//! runs a call where the request already is, instead of handing it to a pool thread.
//!
//! Why: the hand-off to a pool thread and the answer back cost two thread wake-ups per call.
//! On a small virtual machine (where waking a thread on the other CPU is an interrupt and a
//! VM exit) that measured 15-20 µs of server CPU per RPC, about 40 % of an online send
//! (BENCHMARKS.md, seventh session). Most calls are short and never wait.
//!
//! What keeps this as safe as the pool:
//! - A call that must wait for the core (a store read, a commit) first hands the worker's
//!   other tasks to another thread (`tokio::task::block_in_place`), then blocks on its
//!   future ([`wait`]). A call that never waits pays nothing.
//! - A call still running after [`SLICE`] does the same from the deadline hook
//!   ([`release`]), so a runaway loop holds one thread, never the runtime's workers. Its
//!   deadline and memory limit are the pool's.
//! - At most `lua_max_count` inline calls at once, so waiting calls hold at most that many
//!   threads and VMs; the rest go to the pool, with its bounded queue.
//! - Only on a multi-thread runtime (`block_in_place` needs one). On a current-thread
//!   runtime, with `runtime.lua_inline_calls` off, when this thread's VM is busy (a call
//!   reached from inside another) or cannot be built, the call goes to the pool.
//!
//! A call needs the stack a pool thread has ([`super::LUA_STACK`]); on a worker thread with
//! less left (a test's runtime: the server's own workers have room) it runs on a fresh stack
//! of that size (`stacker`), on the same thread.
//!
//! Each thread's VM evaluates the modules on its first call of a generation, like a pool
//! VM; a VM that hit a limit or panicked is dropped and rebuilt on the next call.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};

use super::context::CallContext;
use super::pool;
use super::vm::{CallArgs, Finished, Shared, Vm};

/// How long an inline call runs before it gives the worker's other tasks away; then again
/// after twice as long, and so on, in case a hand-off lost the race for the worker.
pub const SLICE: Duration = Duration::from_millis(2);

thread_local! {
    /// This thread's VM (of the generation it last served).
    static VM: RefCell<Option<Vm>> = const { RefCell::new(None) };
    /// True while this thread runs an inline call: [`wait`] and [`release`] then act.
    static INLINE: Cell<bool> = const { Cell::new(false) };
}

/// Runs the call on this thread's VM, or gives `args` back when it must go to the pool.
pub fn run(
    shared: &Arc<Shared>,
    target: &str,
    ctx: &CallContext,
    args: CallArgs,
) -> Result<Finished, Box<CallArgs>> {
    if !shared.settings.inline_calls || INLINE.get() || !on_a_worker_pool() {
        return Err(Box::new(args));
    }
    let Some(_admitted) = Admitted::enter(shared) else {
        return Err(Box::new(args));
    };
    stacker::maybe_grow(super::LUA_STACK, super::LUA_STACK, || {
        run_here(shared, target, ctx, args)
    })
}

/// One inline call in flight. At most `lua_max_count` run at once: each that waits holds a
/// thread (and each thread a VM), so past that calls go to the pool, whose queue is bounded.
struct Admitted<'a>(&'a AtomicUsize);

impl<'a> Admitted<'a> {
    fn enter(shared: &'a Shared) -> Option<Admitted<'a>> {
        let n = shared.inline_calls.fetch_add(1, Ordering::AcqRel);
        let admitted = Admitted(&shared.inline_calls);
        (n < shared.settings.max_count).then_some(admitted)
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// [`run`] on a stack with room for the call.
fn run_here(
    shared: &Arc<Shared>,
    target: &str,
    ctx: &CallContext,
    args: CallArgs,
) -> Result<Finished, Box<CallArgs>> {
    VM.with(|slot| {
        let Ok(mut slot) = slot.try_borrow_mut() else {
            return Err(Box::new(args));
        };
        let _inline = Inline::enter();
        if !slot.as_ref().is_some_and(|vm| vm.serves(shared)) {
            // The old generation's VM goes before the new one is built.
            *slot = None;
            match Vm::new(shared.clone()) {
                Ok(vm) => *slot = Some(vm),
                Err(e) => {
                    tracing::error!(error = %e, "a Lua VM failed to load");
                    return Err(Box::new(args));
                }
            }
        }
        let Some(vm) = slot.as_mut() else {
            return Err(Box::new(args));
        };
        let (finished, replace) = pool::call_guarded(vm, target, ctx, args);
        if replace {
            *slot = None;
        }
        Ok(finished)
    })
}

/// Waits for a core future from a Lua function: on a pool thread by blocking on it; inline,
/// by polling it once (most answers are ready at once: caches, in-memory pushes) and
/// otherwise by handing the worker's other tasks away before blocking.
pub fn wait<F: Future>(handle: &Handle, fut: F) -> F::Output {
    if !INLINE.get() {
        return handle.block_on(fut);
    }
    let mut fut = pin!(fut);
    if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return v;
    }
    tokio::task::block_in_place(|| handle.block_on(fut))
}

/// Called by the deadline hook once an inline call has run a slice: hands the worker's
/// other tasks to another thread, and waits until a task spawned now has run (on that
/// thread, when every worker is busy), so the hand-off has happened before the call goes on.
pub fn release(handle: &Handle) {
    if !INLINE.get() {
        return;
    }
    tokio::task::block_in_place(|| {
        let started = Instant::now();
        let (ran, probe) = std::sync::mpsc::sync_channel::<()>(1);
        handle.spawn(async move {
            let _ = ran.send(());
        });
        let _ = probe.recv_timeout(Duration::from_millis(20));
        // The new thread takes the worker's tasks within microseconds of being woken; this
        // keeps the call from taking them back first when another worker ran the probe.
        if let Some(rest) = Duration::from_micros(500).checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    });
}

/// Whether this thread may block in place: a task on a multi-thread runtime's worker (not a
/// future driven by `block_on`, where `block_in_place` is refused).
fn on_a_worker_pool() -> bool {
    tokio::task::try_id().is_some()
        && Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
}

/// Marks this thread as running an inline call until dropped (also on a panic).
struct Inline;

impl Inline {
    fn enter() -> Inline {
        INLINE.set(true);
        Inline
    }
}

impl Drop for Inline {
    fn drop(&mut self) {
        INLINE.set(false);
    }
}
