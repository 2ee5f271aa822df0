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

use crate::config::Config;

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
    let path = config.sqlite_path();
    let store = tokio::task::spawn_blocking(move || store::SqliteStore::open(&path))
        .await
        .map_err(|e| core::store::StoreError::Internal(e.to_string()))??;
    let settings = core::sessions::SessionSettings {
        encryption_key: config.session.encryption_key.clone(),
        refresh_encryption_key: config.session.refresh_encryption_key.clone(),
        token_expiry_sec: config.session.token_expiry_sec,
        refresh_token_expiry_sec: config.session.refresh_token_expiry_sec,
    };
    let core = core::Core::new(Arc::new(store), settings, config.name.clone()).await?;
    Ok(Arc::new(core))
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
    serve(core, runtime, config, listener, shutdown).await;
    Ok(())
}

/// Loads the Lua modules of `runtime.path` and starts the VM pool.
pub async fn start_runtime(
    config: &Config,
    core: Arc<core::Core>,
) -> Result<Arc<runtime::Runtime>, StartError> {
    let settings = runtime::Settings::from_config(&config.runtime);
    let rt = runtime::Runtime::start(settings, core, env!("CARGO_PKG_VERSION"))
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
    let ctx = Arc::new(api::Ctx {
        core,
        runtime,
        config: Arc::new(config),
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "tidings is serving");
    }
    warp::serve(api::routes(ctx))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}
