//! The `tidings` binary: parse config, start logging, bind, run. Exit codes are decided here
//! and only here: 0 after a clean shutdown, 2 for bad config, 1 for anything else.

use std::process::ExitCode;

use tidings::config::Config;

/// mimalloc instead of glibc malloc: a profile of the list benchmark spent about a quarter of
/// the server's time in glibc's malloc/free (arena locks, consolidation) across the threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: tidings [--config FILE] [--dotted.key VALUE ...]
       tidings check [PATH] [--config FILE] [--dotted.key VALUE ...]

Runs the Tidings server. `check` loads every Lua module of PATH (default: runtime.path)
as the server would, prints each error with file:line, and exits 1 if there was any. Settings use Nakama's key names, e.g. --socket.port 7350,
--data_dir ./data, --runtime.path ./modules; environment variables TIDINGS_SOCKET_PORT etc.
override flags. See README.md for the full table.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("tidings {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let check = args.first().is_some_and(|a| a == "check");
    let mut args = args;
    let mut check_path = None;
    if check {
        args.remove(0);
        if args.first().is_some_and(|a| !a.starts_with("--")) {
            check_path = Some(args.remove(0));
        }
    }
    let config = match Config::from_args_and_env(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tidings: {e}");
            return ExitCode::from(2);
        }
    };
    let filter =
        tracing_subscriber::EnvFilter::try_new(format!("tidings={},warn", config.logger.level))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Each line carries the spans it was logged in: `request{id=…}` for an HTTP request,
    // `session{id=…}` for a socket, also on the Lua thread that runs their calls.
    if config.logger.format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    let mut config = config;
    if let Some(path) = check_path {
        config.runtime.path = path.into();
    }
    if !check {
        raise_open_file_limit();
    }
    // Lua calls run on the worker threads (runtime::inline); a stack that holds the request's
    // futures and a Lua call's deepest C recursion spares them a stack switch.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(tidings::runtime::WORKER_STACK)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tidings: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if check {
        return runtime.block_on(async move {
            let errors = tidings::check_modules(&config).await;
            for e in &errors {
                println!("{e}");
            }
            if errors.is_empty() {
                println!(
                    "ok: every module in {} loads",
                    config.runtime.path.display()
                );
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        });
    }
    runtime.block_on(async move {
        let host = if config.socket.address.is_empty() {
            "0.0.0.0"
        } else {
            config.socket.address.as_str()
        };
        let addr = format!("{host}:{}", config.socket.port);
        let listener = match tidings::api::server::listen(host, config.socket.port).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("tidings: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        // SIGTERM (docker stop, systemd, Kubernetes) or SIGINT (Ctrl-C): a graceful stop.
        let shutdown = async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        };
        match tidings::run(config, listener, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tidings: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Every socket is a file descriptor, and shells and service managers commonly start a
/// process with a soft limit of 1,024 (the hard limit is often far higher): without this the
/// server would stop accepting near a thousand players, with connections left waiting in the
/// listen backlog. The soft limit goes up to the hard one, as Go's runtime does for Nakama.
fn raise_open_file_limit() {
    let before = rlimit::Resource::NOFILE.get().map_or(0, |(soft, _)| soft);
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) if now > before => {
            tracing::info!(from = before, to = now, "raised the open file limit")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise the open file limit"),
    }
}
