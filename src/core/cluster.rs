//! Several nodes on one database: what one node tells the others, and what a node does when
//! told. The table stays the source of truth: after a commit the sending node only wakes the
//! others ([`Bus::publish`]); each node then reads the rows other nodes committed since the
//! last it saw (create_time is strictly increasing cluster-wide) and pushes them to its own
//! sockets, so a missed wake-up delays delivery but never loses it. Pushed-only
//! notifications, revocations and server-side kicks (-7, -8) travel on the bus too.
//!
//! The bus is a trait so a broker could replace PostgreSQL's LISTEN/NOTIFY; a single node
//! (SQLite) uses [`LocalBus`], which tells nobody. The [`Directory`] answers the questions a
//! node cannot answer alone (is this user online somewhere, who is in this channel, which
//! nodes are alive); a single node uses [`LocalDirectory`], which knows of no other node.

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
    /// A change of a user's inbox, for this node's sockets that asked for inbox events.
    Inbox(super::inbox::InboxEvent),
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
            expire_time: None,
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

/// One of this node's presences as the other nodes see it: a socket (`stream` empty) or a
/// session's membership of a chat channel (`stream` is the channel id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceRow {
    pub stream: String,
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub persistence: bool,
    pub hidden: bool,
}

/// A change to this node's presences, recorded in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceUpdate {
    Up(PresenceRow),
    /// The presence `(stream, session_id)` ended.
    Down {
        stream: String,
        session_id: Uuid,
    },
}

/// A node of the cluster as the directory last heard of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// The node's unique id (its name plus a random suffix).
    pub node: String,
    /// The configured `name`.
    pub name: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// Open sockets on that node.
    pub sessions: i64,
}

/// Who is online where, across nodes: what makes "is this user online" and "who is in this
/// channel" the same answer on every node. A node records its own presences (without waiting:
/// a socket opens at local speed) and asks about the others'. Nodes that stop heartbeating
/// drop out of every answer, so a crashed node's sockets do not stay online.
#[async_trait]
pub trait Directory: Send + Sync {
    /// Records a change of this node's presences; applied in the order recorded.
    fn record(&self, update: PresenceUpdate);

    /// Those of `users` with a socket on another live node.
    async fn online_elsewhere(&self, users: &[Uuid]) -> Result<Vec<Uuid>, String>;

    /// The members of channel `stream` on other live nodes.
    async fn members_elsewhere(&self, stream: &str) -> Result<Vec<PresenceRow>, String>;

    /// The live nodes (empty for a single node).
    async fn nodes(&self) -> Result<Vec<NodeStatus>, String>;

    /// Removes this node's presences (clean shutdown).
    async fn close(&self) {}
}

/// One node: every presence is local, so there is nothing to record or ask.
pub struct LocalDirectory;

#[async_trait]
impl Directory for LocalDirectory {
    fn record(&self, _update: PresenceUpdate) {}

    async fn online_elsewhere(&self, _users: &[Uuid]) -> Result<Vec<Uuid>, String> {
        Ok(Vec::new())
    }

    async fn members_elsewhere(&self, _stream: &str) -> Result<Vec<PresenceRow>, String> {
        Ok(Vec::new())
    }

    async fn nodes(&self) -> Result<Vec<NodeStatus>, String> {
        Ok(Vec::new())
    }
}
