//! Friends and blocks (Nakama's user_edge, NAKAMA-SPEC §6): add (invite or accept), delete
//! (unfriend, cancel, reject, unblock), block, and the friend list. The state machine itself
//! is one store transaction per call; this module resolves usernames, pages the list and
//! sends the implicit notifications -2 (invited), -3 (accepted) and -9 (removed) through the
//! same `Notifications::send` as every other notification. A user who blocked someone never
//! hears from them here: a block leaves no edge the other side could act on.

use std::sync::Arc;

use base64::Engine;
use uuid::Uuid;

use super::error::{CoreError, CoreResult};
use super::notifications::{NewNotification, Notifications};
use super::presence::Presence;
use super::store::{FriendChange, FriendEdge, FriendPosition, Store};
use super::time::now_micros;

/// Reserved notification codes (NAKAMA-SPEC §6).
pub const CODE_FRIEND_REQUEST: i32 = -2;
pub const CODE_FRIEND_ACCEPT: i32 = -3;
pub const CODE_FRIEND_REMOVE: i32 = -9;

/// Most targets one call may name; bounds one transaction.
pub const MAX_TARGETS: usize = 1000;
/// Largest friend list page.
pub const MAX_LIST: usize = 1000;

/// Edge states.
pub const FRIEND: i32 = 0;
pub const BLOCKED: i32 = 3;

/// What a friend call does to its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FriendAction {
    Add,
    Delete,
    Block,
}

impl FriendAction {
    pub fn verb(self) -> &'static str {
        match self {
            FriendAction::Add => "add",
            FriendAction::Delete => "delete",
            FriendAction::Block => "block",
        }
    }

    /// Nakama's refusal of a call naming the caller (the REST door capitalises it).
    pub fn self_error(self) -> &'static str {
        match self {
            FriendAction::Add => "cannot add self as friend",
            FriendAction::Delete => "cannot delete self",
            FriendAction::Block => "cannot block self",
        }
    }
}

/// One listed edge, with whether the other user is online now.
#[derive(Debug, Clone)]
pub struct Friend {
    pub edge: FriendEdge,
    pub online: bool,
}

#[derive(Debug, Clone)]
pub struct FriendPage {
    pub friends: Vec<Friend>,
    /// Where the next page starts; `None` on the last page.
    pub cursor: Option<String>,
}

/// Why a list call failed on its cursor.
pub const INVALID_CURSOR: &str = "Cursor is invalid.";

pub struct Friends {
    store: Arc<dyn Store>,
    notifications: Arc<Notifications>,
    presence: Arc<Presence>,
}

fn store_failed(public: &str) -> impl FnOnce(super::store::StoreError) -> CoreError + '_ {
    move |e| CoreError::internal(public, e)
}

impl Friends {
    pub fn new(
        store: Arc<dyn Store>,
        notifications: Arc<Notifications>,
        presence: Arc<Presence>,
    ) -> Self {
        Friends {
            store,
            notifications,
            presence,
        }
    }

    /// The ids named directly plus those of the usernames that exist, without repeats, in
    /// the order given. Unknown usernames are dropped, as Nakama does; unknown ids are
    /// dropped later by the store.
    pub async fn resolve(&self, ids: Vec<Uuid>, usernames: &[String]) -> CoreResult<Vec<Uuid>> {
        if ids.len() + usernames.len() > MAX_TARGETS {
            return Err(CoreError::invalid(format!(
                "at most {MAX_TARGETS} ids and usernames per call"
            )));
        }
        let mut out: Vec<Uuid> = Vec::with_capacity(ids.len() + usernames.len());
        for id in ids {
            if !out.contains(&id) {
                out.push(id);
            }
        }
        for name in usernames {
            let user = self
                .store
                .user_by_username(name)
                .await
                .map_err(store_failed("Error while looking up users."))?;
            if let Some(user) = user {
                if !out.contains(&user.id) {
                    out.push(user.id);
                }
            }
        }
        Ok(out)
    }

    /// Runs `action` by `me` on `targets` (`metadata` only for an add).
    pub async fn apply(
        &self,
        action: FriendAction,
        me: Uuid,
        my_name: &str,
        targets: Vec<Uuid>,
        metadata: Option<String>,
    ) -> CoreResult<()> {
        match action {
            FriendAction::Add => self.add(me, my_name, targets, metadata).await,
            FriendAction::Delete => self.delete(me, my_name, targets).await,
            FriendAction::Block => self.block(me, targets).await,
        }
    }

    /// `me` (named `my_name` in the notifications) adds each target: -2 to each newly
    /// invited user, -3 to each whose invite this accepts.
    pub async fn add(
        &self,
        me: Uuid,
        my_name: &str,
        targets: Vec<Uuid>,
        metadata: Option<String>,
    ) -> CoreResult<()> {
        let metadata = metadata.unwrap_or_else(|| "{}".to_string());
        if !matches!(
            serde_json::from_str::<serde_json::Value>(&metadata),
            Ok(serde_json::Value::Object(_))
        ) {
            return Err(CoreError::invalid("metadata must be a JSON object"));
        }
        let changes = self
            .store
            .friends_add(me, targets, metadata, now_micros())
            .await
            .map_err(store_failed("Error while trying to add friends."))?;
        self.notify(me, my_name, changes).await;
        Ok(())
    }

    /// `me` removes each target (friend, invite either way, or own block): -9 to the other
    /// user when a pair of edges went.
    pub async fn delete(&self, me: Uuid, my_name: &str, targets: Vec<Uuid>) -> CoreResult<()> {
        let changes = self
            .store
            .friends_delete(me, targets)
            .await
            .map_err(store_failed("Error while trying to delete friends."))?;
        self.notify(me, my_name, changes).await;
        Ok(())
    }

    /// `me` blocks each target. No notification.
    pub async fn block(&self, me: Uuid, targets: Vec<Uuid>) -> CoreResult<()> {
        self.store
            .friends_block(me, targets, now_micros())
            .await
            .map_err(store_failed("Error while trying to block friends."))
    }

    /// A page of `me`'s edges, by state then age. `cursor` is one this function returned
    /// (empty: from the start); with a `state` filter it must come from the same filter.
    pub async fn list(
        &self,
        me: Uuid,
        limit: usize,
        state: Option<i32>,
        cursor: &str,
    ) -> CoreResult<FriendPage> {
        if !(1..=MAX_LIST).contains(&limit) {
            return Err(CoreError::invalid(format!(
                "limit must be between 1 and {MAX_LIST}"
            )));
        }
        let from = if cursor.is_empty() {
            None
        } else {
            let pos = decode_cursor(cursor).ok_or_else(|| CoreError::invalid(INVALID_CURSOR))?;
            if state.is_some_and(|s| s != pos.state) {
                return Err(CoreError::invalid(INVALID_CURSOR));
            }
            Some(pos)
        };
        let mut rows = self
            .store
            .friends_list(me, state, from, limit + 1)
            .await
            .map_err(store_failed("Error while trying to list friends."))?;
        let cursor = if rows.len() > limit {
            rows.pop().map(|next| {
                encode_cursor(FriendPosition {
                    state: next.state,
                    position: next.position,
                    other: next.user.id,
                })
            })
        } else {
            None
        };
        let ids: Vec<Uuid> = rows.iter().map(|e| e.user.id).collect();
        let online = self.presence.online_among(&ids).await;
        let friends = rows
            .into_iter()
            .map(|edge| Friend {
                online: online.contains(&edge.user.id),
                edge,
            })
            .collect();
        Ok(FriendPage { friends, cursor })
    }

    /// Sends the notification each change calls for. Failures are logged and do not fail
    /// the friend call (Nakama's behaviour: the edges are already committed).
    async fn notify(&self, me: Uuid, my_name: &str, changes: Vec<(Uuid, FriendChange)>) {
        let content = super::gojson::string_object(&[("username", my_name)]);
        let batch: Vec<NewNotification> = changes
            .into_iter()
            .filter_map(|(user_id, change)| {
                let (code, subject) = match change {
                    FriendChange::Nothing => return None,
                    FriendChange::Invited => (
                        CODE_FRIEND_REQUEST,
                        format!("{my_name} wants to add you as a friend"),
                    ),
                    FriendChange::Accepted => (
                        CODE_FRIEND_ACCEPT,
                        format!("{my_name} accepted your friend request"),
                    ),
                    FriendChange::Removed => (
                        CODE_FRIEND_REMOVE,
                        format!("{my_name} removed you as a friend"),
                    ),
                };
                Some(NewNotification {
                    user_id,
                    subject,
                    content: content.clone(),
                    code,
                    sender_id: Some(me),
                    persistent: true,
                    expire_time: None,
                    keys: Default::default(),
                })
            })
            .collect();
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.notifications.send(batch).await {
            tracing::warn!(error = %e.message, "could not send friend notifications");
        }
    }
}

/// The list cursor: opaque to clients (Nakama's is Go-specific too), URL-safe base64 of
/// `state:position:other-id`.
fn encode_cursor(p: FriendPosition) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(format!(
        "{}:{}:{}",
        p.state,
        p.position,
        p.other.simple()
    ))
}

fn decode_cursor(text: &str) -> Option<FriendPosition> {
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(text)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let mut parts = raw.splitn(3, ':');
    let state: i32 = parts.next()?.parse().ok()?;
    let position: i64 = parts.next()?.parse().ok()?;
    let other = Uuid::parse_str(parts.next()?).ok()?;
    (FRIEND..=BLOCKED)
        .contains(&state)
        .then_some(FriendPosition {
            state,
            position,
            other,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let p = FriendPosition {
            state: 2,
            position: 1_700_000_000_000_000_123,
            other: Uuid::new_v4(),
        };
        assert_eq!(decode_cursor(&encode_cursor(p)), Some(p));
        for bad in [
            "",
            "!!",
            "AAAA",
            &base64::engine::general_purpose::URL_SAFE.encode("9:1:x"),
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
