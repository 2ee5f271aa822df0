//! Every setting Tidings reads, its default, and where it comes from.
//!
//! Keys follow Nakama's names (`socket.port`, `session.token_expiry_sec`, ...) so a studio's
//! existing config keeps its meaning. Sources, lowest precedence first:
//! 1. the built-in defaults below;
//! 2. a YAML file named by `--config FILE` (nested maps, e.g. `socket: {port: 7350}`);
//! 3. `--dotted.key value` (or `--dotted.key=value`) command-line flags;
//! 4. `TIDINGS_*` environment variables (`socket.port` -> `TIDINGS_SOCKET_PORT`).
//!
//! This is the only module that reads the environment. Every value goes through [`Config::set`],
//! so a bad value anywhere is refused with one line naming the key.

use std::path::PathBuf;

/// The whole configuration. Sections mirror Nakama's YAML layout.
#[derive(Debug, Clone)]
pub struct Config {
    /// Node name, reported to scripts as `ctx.node`.
    pub name: String,
    /// Where the SQLite database (and later other state) lives.
    pub data_dir: PathBuf,
    /// On SIGTERM/SIGINT: how long in-flight requests and sockets get to finish (Nakama's
    /// key) before the process exits anyway.
    pub shutdown_grace_sec: u64,
    pub socket: SocketConfig,
    pub session: SessionConfig,
    pub runtime: RuntimeConfig,
    pub database: DatabaseConfig,
    pub notifications: NotificationsConfig,
    pub logger: LoggerConfig,
    pub metrics: MetricsConfig,
    pub console: ConsoleConfig,
}

/// The Prometheus endpoint (Nakama's `metrics` section).
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Port of `GET /metrics` on `socket.address`; 0 disables it.
    pub prometheus_port: u16,
}

/// The admin console (Nakama's `console` section), its own port and login.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Interface to bind; empty means all interfaces.
    pub address: String,
    /// 0 disables the console.
    pub port: u16,
    pub username: String,
    pub password: String,
    /// Signs console session tokens.
    pub signing_key: String,
    pub token_expiry_sec: i64,
}

#[derive(Debug, Clone)]
pub struct SocketConfig {
    /// Interface to bind; empty means all interfaces.
    pub address: String,
    pub port: u16,
    /// Username of the HTTP Basic auth that authenticate and refresh calls carry.
    pub server_key: String,
    /// Largest inbound WebSocket message; a bigger one closes the socket (Nakama: 4096).
    pub max_message_size_bytes: usize,
    /// Largest HTTP request body.
    pub max_request_size_bytes: usize,
    /// Frames queued for one socket before it is closed as too slow.
    pub outgoing_queue_size: usize,
    /// How often the server sends WebSocket pings.
    pub ping_period_ms: u64,
    /// How long a socket may stay silent (no pong, no message) before it is closed.
    pub pong_wait_ms: u64,
    /// How long one frame write may take before the socket is considered dead.
    pub write_wait_ms: u64,
    /// How long a client may take to send a request's headers (Nakama's key); a connection
    /// that trickles them (slow-loris) is closed after this.
    pub read_timeout_ms: u64,
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub encryption_key: String,
    pub refresh_encryption_key: String,
    pub token_expiry_sec: i64,
    pub refresh_token_expiry_sec: i64,
    /// Close a user's older sockets when they open a new one.
    pub single_socket: bool,
}

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Directory of Lua modules.
    pub path: PathBuf,
    /// Key for server-to-server RPC calls (`?http_key=`).
    pub http_key: String,
    /// Lua VMs started up front (Nakama: `runtime.lua_min_count`).
    pub lua_min_count: usize,
    /// Most Lua VMs, one OS thread each; calls beyond wait for a free VM.
    pub lua_max_count: usize,
    /// Calls that may wait for a free VM; past this a call is refused at once with code 14
    /// (HTTP 503) instead of queueing without bound.
    pub lua_queue_size: usize,
    /// Accepted for Nakama compatibility; PUC Lua sizes its call stack itself.
    pub lua_call_stack_size: usize,
    /// Accepted for Nakama compatibility; PUC Lua grows its registry itself.
    pub lua_registry_size: usize,
    /// Accepted for Nakama compatibility: every VM evaluates the modules itself, so a global
    /// written inside a call stays in that VM, as with Nakama's read-only globals.
    pub lua_read_only_globals: bool,
    /// Keep the full error text (with the module position) in RPC errors.
    pub lua_api_stacktrace: bool,
    /// Run Lua calls on the request's own thread, each worker thread with a VM of its own
    /// (`runtime::inline`); false sends every call to the pool's VM threads.
    pub lua_inline_calls: bool,
    /// Wall-clock budget of one Lua call; a script still running then is stopped.
    pub lua_call_timeout_ms: u64,
    /// Memory limit of one Lua VM; an allocation past it fails with a Lua error.
    pub lua_memory_limit_bytes: usize,
    /// Watch `path` and reload the modules when they change (the development setting).
    pub hot_reload: bool,
    /// Also scan `path` every this many milliseconds (0: off), for file systems that deliver
    /// no change events (network shares, some container mounts).
    pub hot_reload_poll_ms: u64,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// Empty means the embedded SQLite file `<data_dir>/tidings.db`.
    pub url: String,
    /// Several nodes (PostgreSQL): how often a node records that it is alive.
    pub node_heartbeat_ms: u64,
    /// A node silent for this long no longer counts: its sockets are offline everywhere.
    pub node_timeout_ms: u64,
}

/// The inbox extension's retention (Nakama has no such settings).
#[derive(Debug, Clone)]
pub struct NotificationsConfig {
    /// Stored notifications older than this are purged (0: kept forever).
    pub retention_sec: u64,
    /// At most this many stored notifications per user; the oldest go (0: no cap).
    pub max_per_user: usize,
    /// How often the purge runs.
    pub purge_interval_ms: u64,
    /// How long a dedupe key holds.
    pub dedupe_window_sec: u64,
    /// How long delete tombstones are kept for gap-free sync; a device further behind must
    /// resync.
    pub sync_window_sec: u64,
}

#[derive(Debug, Clone)]
pub struct LoggerConfig {
    /// debug, info, warn or error.
    pub level: String,
    /// `text` (for a terminal) or `json` (one object per line, for a log pipeline).
    pub format: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "tidings".into(),
            data_dir: PathBuf::from("data"),
            shutdown_grace_sec: 10,
            socket: SocketConfig {
                address: String::new(),
                port: 7350,
                server_key: "defaultkey".into(),
                max_message_size_bytes: 4096,
                max_request_size_bytes: 262_144,
                outgoing_queue_size: 64,
                ping_period_ms: 15_000,
                pong_wait_ms: 25_000,
                write_wait_ms: 5_000,
                read_timeout_ms: 10_000,
            },
            session: SessionConfig {
                encryption_key: "defaultencryptionkey".into(),
                refresh_encryption_key: "defaultrefreshencryptionkey".into(),
                token_expiry_sec: 60,
                refresh_token_expiry_sec: 3600,
                single_socket: false,
            },
            runtime: RuntimeConfig {
                path: PathBuf::from("modules"),
                http_key: "defaulthttpkey".into(),
                lua_min_count: 16,
                lua_max_count: 48,
                lua_queue_size: 4096,
                lua_call_stack_size: 128,
                lua_registry_size: 512,
                lua_read_only_globals: true,
                lua_api_stacktrace: false,
                lua_inline_calls: true,
                lua_call_timeout_ms: 5_000,
                lua_memory_limit_bytes: 64 * 1024 * 1024,
                hot_reload: true,
                hot_reload_poll_ms: 0,
            },
            database: DatabaseConfig {
                url: String::new(),
                node_heartbeat_ms: 2_000,
                node_timeout_ms: 10_000,
            },
            notifications: NotificationsConfig {
                retention_sec: 0,
                max_per_user: 0,
                purge_interval_ms: 60_000,
                dedupe_window_sec: 86_400,
                sync_window_sec: 7 * 86_400,
            },
            logger: LoggerConfig {
                level: "info".into(),
                format: "text".into(),
            },
            metrics: MetricsConfig {
                prometheus_port: 9100,
            },
            console: ConsoleConfig {
                address: String::new(),
                port: 7351,
                username: "admin".into(),
                password: "password".into(),
                signing_key: "defaultsigningkey".into(),
                token_expiry_sec: 86_400,
            },
        }
    }
}

/// Every key [`Config::set`] accepts, in the order the README's table lists them.
pub const KEYS: &[&str] = &[
    "name",
    "data_dir",
    "shutdown_grace_sec",
    "socket.address",
    "socket.port",
    "socket.server_key",
    "socket.max_message_size_bytes",
    "socket.max_request_size_bytes",
    "socket.outgoing_queue_size",
    "socket.ping_period_ms",
    "socket.pong_wait_ms",
    "socket.write_wait_ms",
    "socket.read_timeout_ms",
    "session.encryption_key",
    "session.refresh_encryption_key",
    "session.token_expiry_sec",
    "session.refresh_token_expiry_sec",
    "session.single_socket",
    "runtime.path",
    "runtime.http_key",
    "runtime.lua_min_count",
    "runtime.lua_max_count",
    "runtime.lua_queue_size",
    "runtime.lua_call_stack_size",
    "runtime.lua_registry_size",
    "runtime.lua_read_only_globals",
    "runtime.lua_api_stacktrace",
    "runtime.lua_inline_calls",
    "runtime.lua_call_timeout_ms",
    "runtime.lua_memory_limit_bytes",
    "runtime.hot_reload",
    "runtime.hot_reload_poll_ms",
    "database.url",
    "database.node_heartbeat_ms",
    "database.node_timeout_ms",
    "notifications.retention_sec",
    "notifications.max_per_user",
    "notifications.purge_interval_ms",
    "notifications.dedupe_window_sec",
    "notifications.sync_window_sec",
    "logger.level",
    "logger.format",
    "metrics.prometheus_port",
    "console.address",
    "console.port",
    "console.username",
    "console.password",
    "console.signing_key",
    "console.token_expiry_sec",
];

/// A refused setting: the message names the key and says what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn parse<T: std::str::FromStr>(key: &str, value: &str, what: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError(format!("config {key}: expected {what}, got {value:?}")))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError(format!(
            "config {key}: expected true or false, got {value:?}"
        ))),
    }
}

impl Config {
    /// Sets one dotted key from its text form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let v = value.to_string();
        match key {
            "name" => self.name = v,
            "data_dir" => self.data_dir = PathBuf::from(v),
            "shutdown_grace_sec" => self.shutdown_grace_sec = parse(key, value, "seconds")?,
            "socket.address" => self.socket.address = v,
            "socket.port" => self.socket.port = parse(key, value, "a port number 0-65535")?,
            "socket.server_key" => self.socket.server_key = v,
            "socket.max_message_size_bytes" => {
                self.socket.max_message_size_bytes = parse(key, value, "a byte count")?
            }
            "socket.max_request_size_bytes" => {
                self.socket.max_request_size_bytes = parse(key, value, "a byte count")?
            }
            "socket.outgoing_queue_size" => {
                self.socket.outgoing_queue_size = parse(key, value, "a message count")?
            }
            "socket.ping_period_ms" => {
                self.socket.ping_period_ms = parse(key, value, "milliseconds")?
            }
            "socket.pong_wait_ms" => self.socket.pong_wait_ms = parse(key, value, "milliseconds")?,
            "socket.write_wait_ms" => {
                self.socket.write_wait_ms = parse(key, value, "milliseconds")?
            }
            "socket.read_timeout_ms" => {
                self.socket.read_timeout_ms = parse(key, value, "milliseconds")?
            }
            "session.encryption_key" => self.session.encryption_key = v,
            "session.refresh_encryption_key" => self.session.refresh_encryption_key = v,
            "session.token_expiry_sec" => {
                self.session.token_expiry_sec = parse(key, value, "seconds")?
            }
            "session.refresh_token_expiry_sec" => {
                self.session.refresh_token_expiry_sec = parse(key, value, "seconds")?
            }
            "session.single_socket" => self.session.single_socket = parse_bool(key, value)?,
            "runtime.path" => self.runtime.path = PathBuf::from(v),
            "runtime.http_key" => self.runtime.http_key = v,
            "runtime.lua_min_count" => self.runtime.lua_min_count = parse(key, value, "a count")?,
            "runtime.lua_max_count" => self.runtime.lua_max_count = parse(key, value, "a count")?,
            "runtime.lua_queue_size" => self.runtime.lua_queue_size = parse(key, value, "a count")?,
            "runtime.lua_call_stack_size" => {
                self.runtime.lua_call_stack_size = parse(key, value, "a size")?
            }
            "runtime.lua_registry_size" => {
                self.runtime.lua_registry_size = parse(key, value, "a size")?
            }
            "runtime.lua_read_only_globals" => {
                self.runtime.lua_read_only_globals = parse_bool(key, value)?
            }
            "runtime.lua_api_stacktrace" => {
                self.runtime.lua_api_stacktrace = parse_bool(key, value)?
            }
            "runtime.lua_inline_calls" => self.runtime.lua_inline_calls = parse_bool(key, value)?,
            "runtime.lua_call_timeout_ms" => {
                self.runtime.lua_call_timeout_ms = parse(key, value, "milliseconds")?
            }
            "runtime.lua_memory_limit_bytes" => {
                self.runtime.lua_memory_limit_bytes = parse(key, value, "a byte count")?
            }
            "runtime.hot_reload" => self.runtime.hot_reload = parse_bool(key, value)?,
            "runtime.hot_reload_poll_ms" => {
                self.runtime.hot_reload_poll_ms = parse(key, value, "milliseconds")?
            }
            "database.url" => self.database.url = v,
            "database.node_heartbeat_ms" => {
                self.database.node_heartbeat_ms = parse(key, value, "milliseconds")?
            }
            "database.node_timeout_ms" => {
                self.database.node_timeout_ms = parse(key, value, "milliseconds")?
            }
            "notifications.retention_sec" => {
                self.notifications.retention_sec = parse(key, value, "seconds")?
            }
            "notifications.max_per_user" => {
                self.notifications.max_per_user = parse(key, value, "a count")?
            }
            "notifications.purge_interval_ms" => {
                self.notifications.purge_interval_ms = parse(key, value, "milliseconds")?
            }
            "notifications.dedupe_window_sec" => {
                self.notifications.dedupe_window_sec = parse(key, value, "seconds")?
            }
            "notifications.sync_window_sec" => {
                self.notifications.sync_window_sec = parse(key, value, "seconds")?
            }
            "logger.level" => self.logger.level = v.to_ascii_lowercase(),
            "logger.format" => self.logger.format = v.to_ascii_lowercase(),
            "metrics.prometheus_port" => {
                self.metrics.prometheus_port = parse(key, value, "a port number 0-65535")?
            }
            "console.address" => self.console.address = v,
            "console.port" => self.console.port = parse(key, value, "a port number 0-65535")?,
            "console.username" => self.console.username = v,
            "console.password" => self.console.password = v,
            "console.signing_key" => self.console.signing_key = v,
            "console.token_expiry_sec" => {
                self.console.token_expiry_sec = parse(key, value, "seconds")?
            }
            _ => {
                return Err(ConfigError(format!(
                    "config {key}: unknown setting (known: {})",
                    KEYS.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// Builds the configuration from command-line arguments (without the program name) and
    /// the process environment.
    pub fn from_args_and_env(args: &[String]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load(args, &env)
    }

    /// Builds the configuration from explicit arguments and environment pairs (testable).
    pub fn load(args: &[String], env: &[(String, String)]) -> Result<Config, ConfigError> {
        let flags = parse_flags(args)?;
        let mut config = Config::default();
        if let Some((_, path)) = flags.iter().find(|(k, _)| k == "config") {
            config.apply_yaml_file(path)?;
        }
        for (key, value) in flags.iter().filter(|(k, _)| k != "config") {
            config.set(key, value)?;
        }
        for key in KEYS {
            let name = env_name(key);
            if let Some((_, value)) = env.iter().find(|(k, _)| *k == name) {
                config.set(key, value)?;
            }
        }
        config.validate()?;
        Ok(config)
    }

    fn apply_yaml_file(&mut self, path: &str) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("config file {path}: {e}")))?;
        self.apply_yaml(&text)
            .map_err(|ConfigError(msg)| ConfigError(format!("config file {path}: {msg}")))
    }

    /// Applies a YAML document of nested maps.
    pub fn apply_yaml(&mut self, text: &str) -> Result<(), ConfigError> {
        let doc: serde_norway::Value =
            serde_norway::from_str(text).map_err(|e| ConfigError(format!("invalid YAML: {e}")))?;
        let mut pairs = Vec::new();
        flatten_yaml("", &doc, &mut pairs)?;
        for (key, value) in pairs {
            self.set(&key, &value)?;
        }
        Ok(())
    }

    /// Cross-field and range checks, each naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, msg: &str| Err(ConfigError(format!("config {key}: {msg}")));
        if self.name.is_empty() {
            return fail("name", "must not be empty");
        }
        if self.socket.server_key.is_empty() {
            return fail("socket.server_key", "must not be empty");
        }
        if self.socket.max_message_size_bytes < 64 {
            return fail("socket.max_message_size_bytes", "must be at least 64");
        }
        if self.socket.max_request_size_bytes < 64 {
            return fail("socket.max_request_size_bytes", "must be at least 64");
        }
        if !(1..=1_000_000).contains(&self.socket.outgoing_queue_size) {
            return fail(
                "socket.outgoing_queue_size",
                "must be between 1 and 1000000",
            );
        }
        if self.socket.ping_period_ms == 0 {
            return fail("socket.ping_period_ms", "must be greater than 0");
        }
        if self.socket.pong_wait_ms <= self.socket.ping_period_ms {
            return fail(
                "socket.pong_wait_ms",
                "must be greater than socket.ping_period_ms",
            );
        }
        if self.console.port != 0 {
            if self.console.username.is_empty() || self.console.password.is_empty() {
                return fail(
                    "console.username",
                    "console.username and console.password must be set (or console.port 0)",
                );
            }
            if self.console.signing_key.is_empty() {
                return fail("console.signing_key", "must not be empty");
            }
            if self.console.token_expiry_sec <= 0 {
                return fail("console.token_expiry_sec", "must be greater than 0");
            }
        }
        if self.notifications.purge_interval_ms == 0 {
            return fail("notifications.purge_interval_ms", "must be greater than 0");
        }
        if self.database.node_heartbeat_ms == 0 {
            return fail("database.node_heartbeat_ms", "must be greater than 0");
        }
        if self.database.node_timeout_ms < 2 * self.database.node_heartbeat_ms {
            return fail(
                "database.node_timeout_ms",
                "must be at least twice database.node_heartbeat_ms",
            );
        }
        if self.socket.read_timeout_ms == 0 {
            return fail("socket.read_timeout_ms", "must be greater than 0");
        }
        if self.socket.write_wait_ms == 0 {
            return fail("socket.write_wait_ms", "must be greater than 0");
        }
        if self.session.encryption_key.is_empty() {
            return fail("session.encryption_key", "must not be empty");
        }
        if self.session.refresh_encryption_key.is_empty() {
            return fail("session.refresh_encryption_key", "must not be empty");
        }
        if self.session.refresh_encryption_key == self.session.encryption_key {
            return fail(
                "session.refresh_encryption_key",
                "must be different from session.encryption_key",
            );
        }
        if self.session.token_expiry_sec < 1 {
            return fail("session.token_expiry_sec", "must be at least 1");
        }
        if self.session.refresh_token_expiry_sec < 1 {
            return fail("session.refresh_token_expiry_sec", "must be at least 1");
        }
        if self.runtime.http_key.is_empty() {
            return fail("runtime.http_key", "must not be empty");
        }
        if self.runtime.lua_queue_size < 1 {
            return fail("runtime.lua_queue_size", "must be at least 1");
        }
        if self.runtime.lua_max_count < 1 {
            return fail("runtime.lua_max_count", "must be at least 1");
        }
        if self.runtime.lua_max_count < self.runtime.lua_min_count {
            return fail(
                "runtime.lua_max_count",
                "must be at least runtime.lua_min_count",
            );
        }
        if self.runtime.lua_call_stack_size < 1 {
            return fail("runtime.lua_call_stack_size", "must be at least 1");
        }
        if self.runtime.lua_registry_size < 128 {
            return fail("runtime.lua_registry_size", "must be at least 128");
        }
        if self.runtime.lua_call_timeout_ms == 0 {
            return fail("runtime.lua_call_timeout_ms", "must be greater than 0");
        }
        if self.runtime.lua_memory_limit_bytes < 1024 * 1024 {
            return fail(
                "runtime.lua_memory_limit_bytes",
                "must be at least 1048576 (1 MiB)",
            );
        }
        if !self.database.url.is_empty()
            && !self.database.url.starts_with("sqlite:")
            && self.postgres_url().is_none()
        {
            return fail(
                "database.url",
                "must be sqlite:PATH or postgres://user@host:port/database (leave empty for <data_dir>/tidings.db)",
            );
        }
        if !["debug", "info", "warn", "error"].contains(&self.logger.level.as_str()) {
            return fail("logger.level", "must be one of debug, info, warn, error");
        }
        if !["text", "json"].contains(&self.logger.format.as_str()) {
            return fail("logger.format", "must be text or json");
        }
        Ok(())
    }

    /// The PostgreSQL connection URL, when `database.url` names one.
    pub fn postgres_url(&self) -> Option<&str> {
        let url = self.database.url.as_str();
        (url.starts_with("postgres://") || url.starts_with("postgresql://")).then_some(url)
    }

    /// The SQLite file this configuration stores into.
    pub fn sqlite_path(&self) -> PathBuf {
        match self.database.url.strip_prefix("sqlite:") {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => self.data_dir.join("tidings.db"),
        }
    }
}

/// `socket.port` -> `TIDINGS_SOCKET_PORT`.
pub fn env_name(key: &str) -> String {
    format!("TIDINGS_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Splits `--a.b value` / `--a.b=value` into pairs. Every flag takes a value.
fn parse_flags(args: &[String]) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(ConfigError(format!(
                "unexpected argument {arg:?} (settings are given as --key value)"
            )));
        };
        let (key, value) = match flag.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => {
                let value = iter
                    .next()
                    .ok_or_else(|| ConfigError(format!("config {flag}: missing value")))?;
                (flag.to_string(), value.clone())
            }
        };
        out.push((key, value));
    }
    Ok(out)
}

fn flatten_yaml(
    prefix: &str,
    value: &serde_norway::Value,
    out: &mut Vec<(String, String)>,
) -> Result<(), ConfigError> {
    use serde_norway::Value;
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                let Some(k) = k.as_str() else {
                    return Err(ConfigError(format!(
                        "config {prefix}: keys must be strings"
                    )));
                };
                let key = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_yaml(&key, v, out)?;
            }
        }
        Value::Null if prefix.is_empty() => {}
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        Value::Bool(b) => out.push((prefix.to_string(), b.to_string())),
        Value::Number(n) => out.push((prefix.to_string(), n.to_string())),
        _ => {
            return Err(ConfigError(format!(
                "config {prefix}: expected a single value"
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_follow_nakama() {
        let c = Config::load(&[], &[]).unwrap();
        assert_eq!(c.socket.port, 7350);
        assert_eq!(c.socket.max_message_size_bytes, 4096);
        assert_eq!(c.socket.outgoing_queue_size, 64);
        assert_eq!(c.session.token_expiry_sec, 60);
        assert_eq!(c.session.refresh_token_expiry_sec, 3600);
        assert_eq!(c.runtime.http_key, "defaulthttpkey");
        assert_eq!(c.sqlite_path(), PathBuf::from("data/tidings.db"));
    }

    #[test]
    fn file_then_flags_then_env() {
        let dir = std::env::temp_dir().join(format!("tidings-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.yml");
        std::fs::write(
            &file,
            "socket:\n  port: 1000\n  server_key: fromfile\nname: n1\n",
        )
        .unwrap();
        let c = Config::load(
            &args(&[
                "--config",
                file.to_str().unwrap(),
                "--socket.port=2000",
                "--name",
                "n2",
            ]),
            &[("TIDINGS_NAME".into(), "n3".into())],
        )
        .unwrap();
        assert_eq!(c.socket.port, 2000);
        assert_eq!(c.socket.server_key, "fromfile");
        assert_eq!(c.name, "n3");
    }

    #[test]
    fn bad_values_name_the_key() {
        let check = |a: &[&str], needle: &str| {
            let err = Config::load(&args(a), &[]).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should mention {needle}");
        };
        check(&["--socket.port", "seventy"], "socket.port");
        check(&["--socket.port", "70000"], "socket.port");
        check(&["--nope.key", "1"], "nope.key");
        check(
            &["--session.single_socket", "maybe"],
            "session.single_socket",
        );
        check(&["--logger.level", "loud"], "logger.level");
        check(
            &["--session.refresh_encryption_key", "defaultencryptionkey"],
            "session.refresh_encryption_key",
        );
        check(&["--socket.pong_wait_ms", "10"], "socket.pong_wait_ms");
        check(&["--socket.port"], "socket.port");
        check(&["stray"], "stray");
        let err = Config::load(&[], &[("TIDINGS_SOCKET_PORT".into(), "x".into())]).unwrap_err();
        assert!(err.to_string().contains("socket.port"));
    }
}
