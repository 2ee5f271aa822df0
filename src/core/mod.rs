//! The business rules of Tidings: accounts, sessions, notifications, friends and who is online.
//!
//! Every door (REST, the WebSocket, the Lua runtime) calls these functions; none of them
//! re-implements a rule. This module must not import warp, mlua, rusqlite or any of `api`,
//! `runtime` or `store`: storage is reached through the [`store::Store`] trait that core owns,
//! and wire formats are converted at the edges.

pub mod accounts;
pub mod channels;
pub mod cluster;
pub mod cursor;
pub mod error;
pub mod friends;
pub mod gojson;
pub mod groups;
pub mod inbox;
pub mod metrics;
pub mod notifications;
pub mod presence;
pub mod retention;
pub mod sessions;
pub mod social;
pub mod store;
pub mod sync;
pub mod time;

use std::sync::Arc;

pub use error::{Code, CoreError, CoreResult};

/// The whole core, shared by every door.
pub struct Core {
    pub accounts: accounts::Accounts,
    pub sessions: Arc<sessions::Sessions>,
    pub notifications: Arc<notifications::Notifications>,
    pub inbox: Arc<inbox::Inbox>,
    pub friends: friends::Friends,
    pub channels: channels::Channels,
    pub groups: groups::Groups,
    pub social: social::Social,
    pub presence: Arc<presence::Presence>,
    /// What `GET /metrics` reports.
    pub metrics: Arc<metrics::Metrics>,
    /// Node name, as `ctx.node` and in logs.
    pub node: String,
    /// Unix microseconds this node started.
    started_at: i64,
    /// The background purge, stopped at close.
    purge: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    store: Arc<dyn store::Store>,
}

impl Core {
    /// Wires the core onto a store. Loads the revocation list so logouts survive restarts.
    pub async fn new(
        store: Arc<dyn store::Store>,
        session_config: sessions::SessionSettings,
        node: String,
        bus: Arc<dyn cluster::Bus>,
        directory: Arc<dyn cluster::Directory>,
    ) -> CoreResult<Core> {
        let sessions =
            Arc::new(sessions::Sessions::load(store.clone(), session_config, bus.clone()).await?);
        let metrics = Arc::new(metrics::Metrics::new());
        metrics.register(store.collectors());
        let presence = Arc::new(presence::Presence::new(directory.clone(), metrics.clone()));
        let inbox = Arc::new(inbox::Inbox::new(
            store.clone(),
            presence.clone(),
            bus.clone(),
        ));
        let notifications = Arc::new(notifications::Notifications::new(
            store.clone(),
            presence.clone(),
            bus.clone(),
            inbox.clone(),
        ));
        Ok(Core {
            accounts: accounts::Accounts::new(
                store.clone(),
                sessions.clone(),
                notifications.clone(),
            ),
            friends: friends::Friends::new(store.clone(), notifications.clone(), presence.clone()),
            channels: channels::Channels::new(
                store.clone(),
                notifications.clone(),
                bus.clone(),
                directory.clone(),
            ),
            groups: groups::Groups::new(store.clone(), notifications.clone(), presence.clone()),
            social: social::Social::new(store.clone(), notifications.clone()),
            notifications,
            inbox,
            store,
            sessions,
            presence,
            metrics,
            node,
            started_at: time::now_micros(),
            purge: std::sync::Mutex::new(None),
        })
    }

    /// Acts on an event another node published (see `cluster`).
    pub async fn apply_remote(&self, event: cluster::ClusterEvent) {
        match event {
            cluster::ClusterEvent::Revoked => {
                if let Err(e) = self.sessions.reload().await {
                    tracing::warn!(error = %e.message, "could not reload revocations");
                }
            }
            cluster::ClusterEvent::Chat(event) => self.channels.apply_remote(event),
            cluster::ClusterEvent::Inbox(event) => self.inbox.apply_remote(event),
            other => self.notifications.apply_remote(other).await,
        }
    }

    /// Whether this node can serve: its storage answers within two seconds. A load balancer
    /// takes a node that lost its database out of rotation by this.
    pub async fn health(&self) -> CoreResult<()> {
        let unavailable =
            |why: String| CoreError::new(Code::Unavailable, format!("Database unavailable: {why}"));
        match tokio::time::timeout(std::time::Duration::from_secs(2), self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(unavailable(e.to_string())),
            Err(_) => Err(unavailable("no answer within 2 s".into())),
        }
    }

    /// The nodes of the cluster with their open sockets; a single node lists itself.
    pub async fn nodes(&self) -> CoreResult<Vec<cluster::NodeStatus>> {
        let nodes = self
            .presence
            .directory()
            .nodes()
            .await
            .map_err(|e| CoreError::new(Code::Internal, format!("Cannot list nodes: {e}")))?;
        if !nodes.is_empty() {
            return Ok(nodes);
        }
        Ok(vec![cluster::NodeStatus {
            node: self.node.clone(),
            name: self.node.clone(),
            started_at: self.started_at,
            heartbeat_at: time::now_micros(),
            sessions: self.presence.session_count() as i64,
        }])
    }

    /// Starts the background purge of expired and retained-out notifications.
    pub fn start_purge(&self, settings: retention::RetentionSettings) {
        let task = retention::spawn(self.store.clone(), settings);
        *self.purge.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// Tidies storage at shutdown (see `Store::close`); other nodes stop counting this
    /// node's sockets as online.
    pub async fn close(&self) {
        if let Some(task) = self.purge.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        self.presence.directory().close().await;
        if let Err(e) = self.store.close().await {
            tracing::warn!(error = %e, "closing the store");
        }
    }
}
