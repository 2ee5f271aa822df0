//! What the server counts, for the Prometheus endpoint (`api::metrics`).
//!
//! One [`Metrics`] per core, with its own registry (not the process-global default), so
//! several servers in one process (the integration tests) never mix their figures. Counters
//! and histograms are bumped where the thing happens; values that already live elsewhere
//! (open sockets, VM pool use, the reload generation, store pools) are read at scrape time
//! by the endpoint, which sets the gauges below before it renders.
//!
//! Label values are bounded: a notification's class is `system` (Nakama's reserved negative
//! codes) or `game`; an RPC id is only used as a label once a module registered it (an
//! unknown id a client sends is never a label).

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use super::notifications::Notification;
use super::presence::Event;

/// A store's writer: jobs waiting for it and how many it commits together. Both stores
/// funnel writes through one group-commit writer, so both report these.
#[derive(Clone)]
pub struct WriterMetrics {
    pub queued: IntGauge,
    pub batch: Histogram,
}

impl Default for WriterMetrics {
    fn default() -> Self {
        WriterMetrics {
            queued: IntGauge::new(
                "store_writer_queue",
                "Writes waiting for the store's writer.",
            )
            .expect("static metric"),
            batch: Histogram::with_opts(
                HistogramOpts::new(
                    "store_writer_batch_jobs",
                    "Writes committed together in one transaction by the store's writer.",
                )
                .buckets(vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
                ]),
            )
            .expect("static metric"),
        }
    }
}

impl WriterMetrics {
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![Box::new(self.queued.clone()), Box::new(self.batch.clone())]
    }
}

/// Why a notification did not reach a socket.
#[derive(Debug, Clone, Copy)]
pub enum Dropped {
    /// Not persistent and its user had no socket (on this node).
    Offline,
    /// The session's outgoing queue was full; the session was closed.
    QueueFull,
}

/// One counter per class, resolved once: the delivery path bumps it per socket and
/// notification, so it skips the label lookup.
struct ByClass {
    system: IntCounter,
    game: IntCounter,
}

impl ByClass {
    fn new(vec: &IntCounterVec) -> ByClass {
        ByClass {
            system: vec.with_label_values(&["system"]),
            game: vec.with_label_values(&["game"]),
        }
    }

    fn inc(&self, code: i32) {
        if code < 0 {
            self.system.inc()
        } else {
            self.game.inc()
        }
    }
}

pub struct Metrics {
    registry: Registry,
    sent: ByClass,
    stored: ByClass,
    delivered: ByClass,
    dropped: IntCounterVec,
    delivery_seconds: Histogram,
    rpc_seconds: HistogramVec,
    rpc_errors: IntCounterVec,
    pub lua_errors: IntCounter,
    pub sockets: IntGauge,
    pub vm_threads: IntGauge,
    pub vm_busy: IntGauge,
    pub vm_queued: IntGauge,
    pub vm_inline: IntGauge,
    pub generation: IntGauge,
    pub reload_failures: IntGauge,
}

/// Label value of a notification code.
fn class(code: i32) -> &'static str {
    if code < 0 {
        "system"
    } else {
        "game"
    }
}

/// Latency buckets from 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry =
            Registry::new_custom(Some("tidings".into()), None).unwrap_or_else(|_| Registry::new());
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric");
            registry.register(Box::new(c.clone())).expect("unique name");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("static metric");
            registry.register(Box::new(g.clone())).expect("unique name");
            g
        };
        let sent = counter(
            "notifications_sent_total",
            "Notifications accepted by a send, by code class.",
            &["class"],
        );
        let stored = counter(
            "notifications_stored_total",
            "Persistent notifications committed (a persistent send to everyone counts once).",
            &["class"],
        );
        let delivered = counter(
            "notifications_delivered_total",
            "Notifications written to a socket (once per socket).",
            &["class"],
        );
        let dropped = counter(
            "notifications_dropped_total",
            "Notifications that reached no socket: offline (not persistent, user not connected \
             here) or queue_full (the session's outgoing queue overflowed and it was closed).",
            &["class", "reason"],
        );
        let delivery_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "notification_delivery_seconds",
                "From a notification's creation (its commit, when stored) to its frame written \
                 to a socket.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("static metric");
        registry
            .register(Box::new(delivery_seconds.clone()))
            .expect("unique name");
        let rpc_seconds = HistogramVec::new(
            HistogramOpts::new("rpc_duration_seconds", "Lua RPC and hook calls, by id.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["id"],
        )
        .expect("static metric");
        registry
            .register(Box::new(rpc_seconds.clone()))
            .expect("unique name");
        let rpc_errors = counter(
            "rpc_errors_total",
            "Lua RPC and hook calls that ended in an error, by id.",
            &["id"],
        );
        let lua_errors = IntCounter::new(
            "lua_errors_total",
            "Lua calls that raised an error or hit a time or memory limit.",
        )
        .expect("static metric");
        registry
            .register(Box::new(lua_errors.clone()))
            .expect("unique name");
        Metrics {
            sent: ByClass::new(&sent),
            stored: ByClass::new(&stored),
            delivered: ByClass::new(&delivered),
            dropped,
            delivery_seconds,
            rpc_seconds,
            rpc_errors,
            lua_errors,
            sockets: gauge("sockets", "Open realtime sockets on this node."),
            vm_threads: gauge("lua_vm_threads", "Lua VM threads running."),
            vm_busy: gauge("lua_vm_busy", "Lua VM threads running a call."),
            vm_queued: gauge("lua_vm_queued", "Lua calls waiting for a free VM."),
            vm_inline: gauge(
                "lua_inline_calls",
                "Lua calls running on the server's worker threads (runtime.lua_inline_calls).",
            ),
            generation: gauge(
                "runtime_generation",
                "Lua modules generation serving (1 at start, +1 per successful reload).",
            ),
            reload_failures: gauge("runtime_reload_failures", "Lua reloads that failed."),
            registry,
        }
    }

    /// Adds a component's own collectors (a store's writer queue, pool state).
    pub fn register(&self, collectors: Vec<Box<dyn Collector>>) {
        for c in collectors {
            if let Err(e) = self.registry.register(c) {
                tracing::warn!(error = %e, "metric not registered");
            }
        }
    }

    pub fn sent<'a>(&self, list: impl IntoIterator<Item = &'a Notification>) {
        for n in list {
            self.sent.inc(n.code);
            if n.persistent {
                self.stored.inc(n.code);
            }
        }
    }

    /// A notification written to a socket, `now_micros` being when.
    pub fn delivered(&self, event: &Event, now_micros: i64) {
        if let Event::Notifications(list) = event {
            for n in list {
                self.delivered.inc(n.code);
                let micros = now_micros.saturating_sub(n.create_time).max(0);
                self.delivery_seconds.observe(micros as f64 / 1e6);
            }
        }
    }

    pub fn dropped<'a>(&self, list: impl IntoIterator<Item = &'a Notification>, why: Dropped) {
        let reason = match why {
            Dropped::Offline => "offline",
            Dropped::QueueFull => "queue_full",
        };
        for n in list {
            self.dropped
                .with_label_values(&[class(n.code), reason])
                .inc();
        }
    }

    /// A Lua call finished; `id` must be a registered RPC id or hook name.
    pub fn call(&self, id: &str, seconds: f64, failed: bool) {
        self.rpc_seconds.with_label_values(&[id]).observe(seconds);
        if failed {
            self.rpc_errors.with_label_values(&[id]).inc();
            self.lua_errors.inc();
        }
    }

    /// The text exposition format (what `GET /metrics` returns).
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_names_render_with_the_tidings_prefix() {
        let m = Metrics::new();
        m.call("echo", 0.002, true);
        let text = m.render();
        assert!(text.contains("tidings_rpc_duration_seconds_count{id=\"echo\"} 1"));
        assert!(text.contains("tidings_rpc_errors_total{id=\"echo\"} 1"));
        assert!(text.contains("tidings_lua_errors_total 1"));
        assert_eq!(class(-7), "system");
        assert_eq!(class(0), "game");
    }
}
