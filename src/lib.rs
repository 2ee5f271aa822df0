//! Tidings: a Nakama-compatible game backend that hosts Lua game logic and delivers in-app
//! notifications, in one binary with an embedded SQLite store.
//!
//! Layout (see ARCHITECTURE.md): `core` holds every rule and owns the storage trait; `store`
//! implements it on SQLite; `api` is the HTTP and WebSocket door. [`run`] wires them together.

pub mod api;
pub mod config;
pub mod core;
pub mod runtime;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;

/// This build's version, as scripts see it in `ctx.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Store(#[from] crate::core::store::StoreError),
    #[error("core: {0}")]
    Core(#[from] crate::core::CoreError),
    #[error("Lua modules: {0}")]
    Runtime(String),
}

/// Builds the core on the configured store.
pub async fn build_core(config: &Config) -> Result<Arc<core::Core>, StartError> {
    // A node's identity on the bus and in the rows it commits: its name plus a random
    // suffix, so two nodes configured with the same name still tell each other apart.
    let node_id = format!(
        "{}-{}",
        config.name,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut directory: Arc<dyn core::cluster::Directory> = Arc::new(core::cluster::LocalDirectory);
    let (store, bus): (Arc<dyn core::store::Store>, Option<Arc<store::PgBus>>) =
        match config.postgres_url() {
            Some(url) => {
                let pg = store::PgStore::connect(url, None, &node_id).await?;
                let bus = store::PgBus::new(pg.pool(), url, &node_id)
                    .await
                    .map_err(core::store::StoreError::Internal)?;
                let liveness = store::pg_directory::Liveness {
                    heartbeat: Duration::from_millis(config.database.node_heartbeat_ms),
                    timeout: Duration::from_millis(config.database.node_timeout_ms),
                };
                directory = Arc::new(
                    store::PgDirectory::start(pg.pool(), &node_id, &config.name, liveness)
                        .await
                        .map_err(core::store::StoreError::Internal)?,
                );
                (Arc::new(pg), Some(Arc::new(bus)))
            }
            None => {
                let path = config.sqlite_path();
                let sqlite = tokio::task::spawn_blocking(move || store::SqliteStore::open(&path))
                    .await
                    .map_err(|e| core::store::StoreError::Internal(e.to_string()))??;
                (Arc::new(sqlite), None)
            }
        };
    let settings = core::sessions::SessionSettings {
        encryption_key: config.session.encryption_key.clone(),
        refresh_encryption_key: config.session.refresh_encryption_key.clone(),
        token_expiry_sec: config.session.token_expiry_sec,
        refresh_token_expiry_sec: config.session.refresh_token_expiry_sec,
    };
    let cluster_bus: Arc<dyn core::cluster::Bus> = match &bus {
        Some(bus) => bus.clone(),
        None => Arc::new(core::cluster::LocalBus),
    };
    let core = Arc::new(
        core::Core::new(store, settings, config.name.clone(), cluster_bus, directory).await?,
    );
    let n = &config.notifications;
    core.notifications
        .set_dedupe_window(i64::try_from(n.dedupe_window_sec).unwrap_or(i64::MAX));
    core.start_purge(core::retention::RetentionSettings {
        retention: (n.retention_sec > 0).then(|| Duration::from_secs(n.retention_sec)),
        max_per_user: (n.max_per_user > 0).then_some(n.max_per_user),
        interval: Duration::from_millis(n.purge_interval_ms),
        sync_window: Duration::from_secs(n.sync_window_sec),
    });
    if let Some(bus) = bus {
        core.notifications.follow_cluster().await?;
        bus.listen(Arc::downgrade(&core)).await;
    }
    Ok(core)
}

/// Runs the whole server on an already bound listener until `shutdown` resolves.
///
/// Tests bind `127.0.0.1:0`, call this in-process, and talk to the real server; `main` binds
/// the configured address. Returns once the HTTP server has stopped.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let core = build_core(&config).await?;
    let runtime = start_runtime(&config, core.clone()).await?;
    let sighup = reload_on_sighup(runtime.clone());
    serve(core.clone(), runtime, config, listener, shutdown).await;
    sighup.abort();
    core.close().await;
    Ok(())
}

/// `kill -HUP <pid>` reloads the Lua modules (for when file events do not arrive).
fn reload_on_sighup(rt: Arc<runtime::Runtime>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                tracing::warn!("cannot listen for SIGHUP");
                return;
            };
            while hangups.recv().await.is_some() {
                let _ = rt.reload("SIGHUP").await;
            }
        }
        #[cfg(not(unix))]
        drop(rt);
    })
}

/// Loads the Lua modules of `runtime.path` and starts the VM pool.
pub async fn start_runtime(
    config: &Config,
    core: Arc<core::Core>,
) -> Result<Arc<runtime::Runtime>, StartError> {
    let settings = runtime::Settings::from_config(&config.runtime);
    let rt = runtime::Runtime::start(settings, core, VERSION)
        .await
        .map_err(StartError::Runtime)?;
    tracing::info!(modules = rt.modules().len(), "Lua modules loaded");
    Ok(Arc::new(rt))
}

/// Serves an existing core and runtime (tests use this to reach the core directly).
pub async fn serve(
    core: Arc<core::Core>,
    runtime: Arc<runtime::Runtime>,
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let _watcher = config
        .runtime
        .hot_reload
        .then(|| runtime::reload::watch(runtime.clone(), config.runtime.hot_reload_poll_ms));
    let ctx = Arc::new(api::Ctx {
        core,
        runtime,
        config: Arc::new(config),
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "tidings is serving");
    }
    // Side ports: Prometheus metrics and the admin console (0 turns either off).
    let mut sides = Vec::new();
    let config = ctx.config.clone();
    if config.metrics.prometheus_port != 0 {
        let routes = api::metrics::routes(ctx.clone());
        let port = config.metrics.prometheus_port;
        sides.extend(api::server::side_port("metrics", &config.socket.address, port, routes).await);
    }
    if config.console.port != 0 {
        let routes = api::console::routes(ctx.clone());
        let (address, port) = (&config.console.address, config.console.port);
        sides.extend(api::server::side_port("console", address, port, routes).await);
    }
    api::server::run(ctx, listener, shutdown).await;
    for task in sides {
        task.abort();
    }
}

/// `tidings check [PATH]`: loads every module of `path` the way the server would, without
/// serving. Returns every error found (empty: all modules load).
pub async fn check_modules(config: &Config) -> Vec<String> {
    let settings = runtime::Settings::from_config(&config.runtime);
    let syntax = runtime::check::syntax_errors(&settings.path);
    if !syntax.is_empty() {
        return syntax;
    }
    // Loading runs module bodies, which may call nk: give them a throwaway store.
    let dir = match tempfile_dir() {
        Ok(d) => d,
        Err(e) => return vec![format!("cannot create a scratch directory: {e}")],
    };
    let mut scratch = config.clone();
    scratch.data_dir = dir.clone();
    scratch.database.url = String::new();
    scratch.runtime.lua_min_count = 1;
    let result = match build_core(&scratch).await {
        Ok(core) => runtime::Runtime::start(settings, core, VERSION)
            .await
            .err()
            .into_iter()
            .collect(),
        Err(e) => vec![e.to_string()],
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "tidings-check-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
