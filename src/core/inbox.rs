//! The inbox extension: read and seen state per stored notification, unread counts, filtered
//! lists, and live state changes for sockets that ask for them. Nakama has none of this
//! (heroiclabs/nakama#511); a Nakama client never sees it unless it calls the extension
//! routes or opens its socket with `tidings_inbox=true`.
//!
//! Counts are computed from the table (partial indexes over unread and unseen rows), never
//! kept in a counter that could drift from the rows. A change of state, a delete or an update
//! publishes one [`InboxEvent`] with the user's new counts: this node hands it to the user's
//! opted-in sockets and the bus carries it to the other nodes' ones. New stored notifications
//! are announced by each node to its own opted-in sockets after pushing them, since every
//! node pushes the rows itself.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::cluster::{tell, Bus, ClusterEvent};
use super::cursor::{self, Position};
use super::error::{CoreError, CoreResult};
use super::notifications::page_start;
use super::presence::{Event, Outbound, Presence};
use super::store::{InboxCounts, InboxFilter, InboxItem, InboxMark, Store};
use super::time::now_micros;

/// Most ids one mark call may name.
pub const MAX_IDS: usize = 1000;
/// Largest inbox page.
pub const MAX_PAGE: usize = 1000;

/// What happened to a user's inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxChange {
    Read,
    Unread,
    Seen,
    Deleted,
    Updated,
    Stored,
}

impl From<InboxMark> for InboxChange {
    fn from(mark: InboxMark) -> Self {
        match mark {
            InboxMark::Read => InboxChange::Read,
            InboxMark::Unread => InboxChange::Unread,
            InboxMark::Seen => InboxChange::Seen,
        }
    }
}

/// One change and the counts after it, as opted-in sockets receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxEvent {
    pub user_id: Uuid,
    pub change: InboxChange,
    /// The notifications concerned; empty when `all`.
    pub ids: Vec<Uuid>,
    /// The change applied to every notification of the user ("mark all").
    pub all: bool,
    pub counts: InboxCounts,
}

/// A page of the inbox.
pub struct InboxPage {
    pub items: Vec<InboxItem>,
    /// Nakama's list cursor (the same encoding as `/v2/notification`); `None` at the end.
    pub cursor: Option<String>,
}

pub struct Inbox {
    store: Arc<dyn Store>,
    presence: Arc<Presence>,
    bus: Arc<dyn Bus>,
}

fn store_failed(what: &'static str) -> impl Fn(super::store::StoreError) -> CoreError {
    move |e| CoreError::internal(what, e)
}

impl Inbox {
    pub fn new(store: Arc<dyn Store>, presence: Arc<Presence>, bus: Arc<dyn Bus>) -> Self {
        Inbox {
            store,
            presence,
            bus,
        }
    }

    /// Marks the user's notifications `ids` (every one of them with `None`) read, unread or
    /// seen. Returns how many changed state and the counts after the change; opted-in sockets
    /// hear of it when anything changed.
    pub async fn mark(
        &self,
        user_id: Uuid,
        ids: Option<Vec<Uuid>>,
        mark: InboxMark,
    ) -> CoreResult<(u64, InboxCounts)> {
        if let Some(ids) = &ids {
            if ids.is_empty() {
                return Err(CoreError::invalid("ids must not be empty (or mark all)"));
            }
            if ids.len() > MAX_IDS {
                return Err(CoreError::invalid(format!("at most {MAX_IDS} ids")));
            }
        }
        let all = ids.is_none();
        let changed = self
            .store
            .mark_notifications(user_id, ids.clone(), mark, now_micros())
            .await
            .map_err(store_failed("Error updating notification state."))?;
        let counts = self.counts(user_id).await?;
        if changed > 0 {
            self.publish(InboxEvent {
                user_id,
                change: mark.into(),
                ids: ids.unwrap_or_default(),
                all,
                counts: counts.clone(),
            });
        }
        Ok((changed, counts))
    }

    pub async fn counts(&self, user_id: Uuid) -> CoreResult<InboxCounts> {
        self.store
            .inbox_counts(user_id)
            .await
            .map_err(store_failed("Error counting notifications."))
    }

    /// A page of the user's stored notifications that `filter` admits, oldest first, with
    /// their read and seen times.
    pub async fn list(
        &self,
        user_id: Uuid,
        filter: InboxFilter,
        limit: usize,
        cursor_text: &str,
    ) -> CoreResult<InboxPage> {
        let after = page_start(limit, MAX_PAGE, cursor_text)?;
        let mut items = self
            .store
            .list_inbox(user_id, filter, after, limit + 1)
            .await
            .map_err(store_failed("Error retrieving notifications."))?;
        let more = items.len() > limit;
        items.truncate(limit);
        let cursor = more.then(|| items.last()).flatten().map(|i| {
            cursor::encode(Some(Position {
                create_time: i.notification.create_time,
                id: i.notification.id,
            }))
        });
        Ok(InboxPage { items, cursor })
    }

    /// The changes to the user's inbox after sequence `since` (gap-free sync, `core::sync`).
    pub async fn changes(
        &self,
        user_id: Uuid,
        since: i64,
        limit: usize,
    ) -> CoreResult<super::sync::SyncPage> {
        super::sync::changes(&self.store, user_id, since, limit).await
    }

    /// Whether a change to `user`'s inbox (anyone's, for `None`) could have a listener: any
    /// node's socket when there are other nodes, else one of this node's opted-in sockets.
    /// Lets deletes skip looking up whose rows they touch when nobody would be told.
    pub fn may_be_followed(&self, user: Option<Uuid>) -> bool {
        !self.bus.is_local() || user.is_none_or(|u| self.presence.wants_inbox(u))
    }

    /// After notifications of `user_id` were deleted or updated: tell their opted-in sockets
    /// on every node. Failures are logged; the change itself stands.
    pub async fn changed(&self, user_id: Uuid, change: InboxChange, ids: Vec<Uuid>) {
        if self.bus.is_local() && !self.presence.wants_inbox(user_id) {
            return;
        }
        match self.counts(user_id).await {
            Ok(counts) => self.publish(InboxEvent {
                user_id,
                change,
                ids,
                all: false,
                counts,
            }),
            Err(e) => tracing::warn!(error = %e.message, "inbox event not sent"),
        }
    }

    /// After this node pushed new stored notifications to `user_id`: the new counts to the
    /// user's opted-in sockets here (each node announces what it pushed itself).
    pub fn stored(self: &Arc<Self>, user_id: Uuid, ids: Vec<Uuid>) {
        if !self.presence.wants_inbox(user_id) {
            return;
        }
        let inbox = self.clone();
        tokio::spawn(async move {
            match inbox.counts(user_id).await {
                Ok(counts) => inbox.deliver(InboxEvent {
                    user_id,
                    change: InboxChange::Stored,
                    ids,
                    all: false,
                    counts,
                }),
                Err(e) => tracing::warn!(error = %e.message, "inbox event not sent"),
            }
        });
    }

    /// An event another node published.
    pub fn apply_remote(&self, event: InboxEvent) {
        self.deliver(event);
    }

    fn publish(&self, event: InboxEvent) {
        tell(&self.bus, ClusterEvent::Inbox(event.clone()));
        self.deliver(event);
    }

    fn deliver(&self, event: InboxEvent) {
        let user = event.user_id;
        self.presence
            .deliver_inbox(user, &Outbound::new(Event::Inbox(event)));
    }
}
