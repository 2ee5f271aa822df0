//! Several nodes on one database: what one node tells the others, and what a node does when
//! told. The table stays the source of truth: after a commit the sending node only wakes the
//! others ([`Bus::publish`]); each node then reads the rows other nodes committed since the
//! last it saw (create_time is strictly increasing cluster-wide) and pushes them to its own
//! sockets, so a missed wake-up delays delivery but never loses it. Pushed-only
//! notifications, revocations and server-side kicks (-7, -8) travel on the bus too.
//!
//! The bus is a trait so a broker could replace PostgreSQL's LISTEN/NOTIFY; a single node
//! (SQLite) uses [`LocalBus`], which tells nobody.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::notifications::Notification;

/// Something that happened on one node that the others must act on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClusterEvent {
    /// Persistent notifications were committed: catch up from the table.
    Stored,
    /// Notifications to push without storing, to their users' sessions (or to every
    /// session, `all`).
    Pushed {
        all: bool,
        notifications: Vec<WireNotification>,
    },
    /// Logout or ban: reload the revocations.
    Revoked,
    /// A chat message or presence change, for this node's members of the channel.
    Chat(super::channels::ChatEvent),
    /// End this user's sessions opened before `at` (Unix microseconds) with a final notice
    /// (single_socket -7, ban -8). Sessions opened later, e.g. the one whose opening caused a
    /// single_socket kick that reached a node late, stay.
    Kick {
        user: Uuid,
        code: i32,
        subject: String,
        at: i64,
    },
}

/// A notification as it crosses the bus.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireNotification {
    pub id: Uuid,
    pub user_id: Uuid,
    pub subject: String,
    pub content: String,
    pub code: i32,
    pub sender_id: Option<Uuid>,
    pub create_time: i64,
}

impl From<&Notification> for WireNotification {
    fn from(n: &Notification) -> Self {
        WireNotification {
            id: n.id,
            user_id: n.user_id,
            subject: n.subject.clone(),
            content: n.content.clone(),
            code: n.code,
            sender_id: n.sender_id,
            create_time: n.create_time,
        }
    }
}

impl From<WireNotification> for Notification {
    fn from(n: WireNotification) -> Self {
        Notification {
            id: n.id,
            user_id: n.user_id,
            subject: n.subject,
            content: n.content,
            code: n.code,
            sender_id: n.sender_id,
            create_time: n.create_time,
            persistent: false,
        }
    }
}

/// How a node tells the others.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Tells every other node, best effort: failures are logged by the bus (stored rows are
    /// caught up later; pushed-only notifications are lost for other nodes' sockets, as they
    /// would be for an offline user).
    async fn publish(&self, event: ClusterEvent);

    /// True when there are no other nodes (nothing to publish).
    fn is_local(&self) -> bool {
        false
    }
}

/// One node: nobody to tell.
pub struct LocalBus;

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, _event: ClusterEvent) {}

    fn is_local(&self) -> bool {
        true
    }
}

/// Publishes without making the caller wait for the bus (a send answers after its commit,
/// not after the other nodes were woken).
pub fn tell(bus: &std::sync::Arc<dyn Bus>, event: ClusterEvent) {
    if bus.is_local() {
        return;
    }
    let bus = bus.clone();
    tokio::spawn(async move { bus.publish(event).await });
}
