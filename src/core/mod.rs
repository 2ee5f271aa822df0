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
pub mod groups;
pub mod notifications;
pub mod presence;
pub mod sessions;
pub mod social;
pub mod store;
pub mod time;

use std::sync::Arc;

pub use error::{Code, CoreError, CoreResult};

/// The whole core, shared by every door.
pub struct Core {
    pub accounts: accounts::Accounts,
    pub sessions: Arc<sessions::Sessions>,
    pub notifications: Arc<notifications::Notifications>,
    pub friends: friends::Friends,
    pub channels: channels::Channels,
    pub groups: groups::Groups,
    pub social: social::Social,
    pub presence: Arc<presence::Presence>,
    /// Node name, as `ctx.node` and in logs.
    pub node: String,
    store: Arc<dyn store::Store>,
}

impl Core {
    /// Wires the core onto a store. Loads the revocation list so logouts survive restarts.
    pub async fn new(
        store: Arc<dyn store::Store>,
        session_config: sessions::SessionSettings,
        node: String,
        bus: Arc<dyn cluster::Bus>,
    ) -> CoreResult<Core> {
        let sessions =
            Arc::new(sessions::Sessions::load(store.clone(), session_config, bus.clone()).await?);
        let presence = Arc::new(presence::Presence::default());
        let notifications = Arc::new(notifications::Notifications::new(
            store.clone(),
            presence.clone(),
            bus.clone(),
        ));
        Ok(Core {
            accounts: accounts::Accounts::new(
                store.clone(),
                sessions.clone(),
                notifications.clone(),
            ),
            friends: friends::Friends::new(store.clone(), notifications.clone(), presence.clone()),
            channels: channels::Channels::new(store.clone(), notifications.clone(), bus.clone()),
            groups: groups::Groups::new(store.clone(), notifications.clone(), presence.clone()),
            social: social::Social::new(store.clone(), notifications.clone()),
            notifications,
            store,
            sessions,
            presence,
            node,
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
            other => self.notifications.apply_remote(other).await,
        }
    }

    /// Tidies storage at shutdown (see `Store::close`).
    pub async fn close(&self) {
        if let Err(e) = self.store.close().await {
            tracing::warn!(error = %e, "closing the store");
        }
    }
}
