//! The storage core needs, as a trait core owns and backends implement (`crate::store`).
//!
//! Methods speak core's own records. A backend must make each method atomic: it either applies
//! whole or not at all. `insert_notifications` returns only after the rows are durable.

use async_trait::async_trait;
use uuid::Uuid;

use super::notifications::{Notification, NotificationUpdate};

/// A storage failure. `Conflict` names the unique key that clashed; everything else is
/// internal and its text is for the log only.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint on {0}")]
    Conflict(&'static str),
    #[error("referenced row does not exist: {0}")]
    MissingReference(&'static str),
    #[error("constraint failed: {0}")]
    Constraint(String),
    #[error("storage error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A user account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub avatar_url: String,
    pub lang_tag: String,
    pub location: String,
    pub timezone: String,
    /// JSON object text.
    pub metadata: String,
    pub email: Option<String>,
    /// bcrypt hash; only accounts with an email have one.
    pub password_hash: Option<String>,
    pub custom_id: Option<String>,
    pub create_time: i64,
    pub update_time: i64,
    /// Unix seconds the account was banned at; 0 when it is not.
    pub disable_time: i64,
    /// The user's own friend edges in any state (friend, invite sent or received, blocked):
    /// Nakama's `users.edge_count`, counted when read instead of kept in a column.
    pub edge_count: i64,
}

/// What a friend call did to one pair of users, for the notification it triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FriendChange {
    Nothing,
    /// A new invite: the target gets -2.
    Invited,
    /// An incoming invite accepted: the inviter gets -3.
    Accepted,
    /// Both edges removed: the other user gets -9.
    Removed,
}

/// Where a friend list page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FriendPosition {
    pub state: i32,
    pub position: i64,
    pub other: Uuid,
}

/// One edge as listed: the other user and the edge's own fields.
#[derive(Debug, Clone)]
pub struct FriendEdge {
    pub user: UserRecord,
    pub state: i32,
    pub position: i64,
    /// Unix seconds.
    pub update_time: i64,
    /// JSON object text.
    pub metadata: String,
}

/// A group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: Uuid,
    pub creator_id: Uuid,
    pub name: String,
    pub description: String,
    pub avatar_url: String,
    pub lang_tag: String,
    /// JSON object text.
    pub metadata: String,
    pub open: bool,
    /// Superadmins, admins and members.
    pub edge_count: i64,
    pub max_count: i64,
    /// Unix seconds.
    pub create_time: i64,
    pub update_time: i64,
}

/// A change of read or seen state (inbox extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxMark {
    /// Sets read (and seen, when not yet) on unread rows.
    Read,
    /// Clears read on read rows.
    Unread,
    /// Sets seen on unseen rows.
    Seen,
}

/// The keys of a keyed send (inbox extension).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendKeys {
    /// The same key for the same user within the dedupe window stores and pushes once.
    pub dedupe_key: Option<String>,
    /// Replaces the user's earlier notification with the same key.
    pub collapse_key: Option<String>,
}

impl SendKeys {
    pub fn is_empty(&self) -> bool {
        self.dedupe_key.is_none() && self.collapse_key.is_none()
    }
}

/// What a keyed insert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyedInsert {
    /// Stored (with its create_time); `replaced` are the ids its collapse key removed.
    Stored {
        row: Notification,
        replaced: Vec<Uuid>,
    },
    /// A row with the same dedupe key was stored within the window: that row, untouched.
    Duplicate(Notification),
}

/// Which of a user's rows an inbox list shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxFilter {
    /// `Some(true)`: only read rows; `Some(false)`: only unread ones.
    pub read: Option<bool>,
    /// `Some(true)`: only seen rows; `Some(false)`: only unseen ones.
    pub seen: Option<bool>,
    pub code: Option<i32>,
}

/// A stored notification with its read and seen times (Unix microseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    pub notification: Notification,
    pub read_time: Option<i64>,
    pub seen_time: Option<i64>,
    /// The sequence of the row's last change: its create_time, or the sequence of a later
    /// update or read/seen change.
    pub seq: i64,
}

/// What changed in a user's inbox after a sequence, read in one snapshot (`core::sync`
/// merges the three ranges into one ordered page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxChanges {
    /// Live rows created after it, by create_time, at most the limit.
    pub created: Vec<InboxItem>,
    /// Live rows changed after it (update or read/seen change), by that change's sequence.
    pub changed: Vec<InboxItem>,
    /// Deletes after it: (sequence, id), by sequence.
    pub deleted: Vec<(i64, Uuid)>,
    /// Broadcasts the user sees that were sent or changed after it (true: since deleted or
    /// hidden), by sequence.
    pub broadcasts: Vec<(InboxItem, bool)>,
    /// Below this sequence the user may have lost rows without a tombstone.
    pub floor: Option<i64>,
    /// A sequence every change at or below which is in the snapshot (every node's): the
    /// clock as of the last commit before the snapshot. The ranges may also hold later
    /// changes; `sync::merge` leaves those for the next page.
    pub high_water: i64,
}

/// A user's unread and unseen counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InboxCounts {
    pub unread: i64,
    pub unseen: i64,
    /// Unread rows per code, codes with none left out.
    pub unread_by_code: std::collections::BTreeMap<i32, i64>,
}

/// The id `user` sees for the broadcast `broadcast` (inbox extension): the broadcast id's
/// first 8 bytes, then the user id's first 8. Each user's copy has its own id, as in Nakama
/// (which stores a row per user), and the id leads back to the broadcast and the user.
pub fn broadcast_copy_id(broadcast: Uuid, user: Uuid) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&broadcast.as_bytes()[..8]);
    bytes[8..].copy_from_slice(&user.as_bytes()[..8]);
    Uuid::from_bytes(bytes)
}

/// What a copy id names: the broadcast's key (its id's first 8 bytes) and the lowest and
/// highest user ids it can belong to.
pub fn broadcast_copy_parts(id: Uuid) -> ([u8; 8], Uuid, Uuid) {
    let b = id.as_bytes();
    let mut key = [0u8; 8];
    key.copy_from_slice(&b[..8]);
    let (mut lo, mut hi) = ([0u8; 16], [0xffu8; 16]);
    lo[..8].copy_from_slice(&b[8..]);
    hi[..8].copy_from_slice(&b[8..]);
    (key, Uuid::from_bytes(lo), Uuid::from_bytes(hi))
}

/// A change to a group; `None` fields stay.
#[derive(Debug, Clone, Default)]
pub struct GroupUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub lang_tag: Option<String>,
    pub avatar_url: Option<String>,
    pub open: Option<bool>,
    pub metadata: Option<String>,
    pub max_count: Option<i64>,
}

impl GroupUpdate {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.lang_tag.is_none()
            && self.avatar_url.is_none()
            && self.open.is_none()
            && self.metadata.is_none()
            && self.max_count.is_none()
    }
}

/// Which groups a list shows.
#[derive(Debug, Clone, Default)]
pub struct GroupFilter {
    /// Case-insensitive; `%` and `_` are wildcards.
    pub name: Option<String>,
    pub lang_tag: Option<String>,
    pub open: Option<bool>,
    /// At most this many members.
    pub members: Option<i64>,
}

/// What a join did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupJoin {
    NotFound,
    Full,
    /// Already a member, already asked, or banned.
    Nothing,
    Joined,
    /// A join request on a closed group; these admins and superadmins are told.
    Requested {
        admins: Vec<Uuid>,
    },
}

/// What a leave did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupLeave {
    Done,
    LastSuperadmin,
}

/// What a member operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupMembers {
    Denied,
    NotFound,
    Full,
    UnknownUser,
    /// Applied; `added` are the users who became members by an add.
    Done {
        group: Box<GroupRecord>,
        added: Vec<Uuid>,
    },
}

/// Where a channel's messages are kept (Nakama's message stream columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelStream {
    pub mode: i32,
    pub subject: Uuid,
    pub descriptor: Uuid,
    pub label: String,
}

impl ChannelStream {
    /// A text that names the stream, for cursors.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.mode,
            self.subject.simple(),
            self.descriptor.simple(),
            self.label
        )
    }
}

/// A stored chat message.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: Uuid,
    pub code: i32,
    pub sender_id: Uuid,
    pub username: String,
    /// A JSON object as text.
    pub content: String,
    /// Unix microseconds.
    pub create_time: i64,
    pub update_time: i64,
}

/// How a new account is identified at creation.
#[derive(Debug, Clone)]
pub enum NewIdentity {
    Device(String),
    Custom(String),
    Email {
        email: String,
        password_hash: String,
    },
}

/// A revoked token id: `refresh` says which kind of token it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokedToken {
    pub token_id: Uuid,
    pub refresh: bool,
    /// Unix seconds after which the token is dead anyway and the entry can go.
    pub expires_at: i64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Accounts.
    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<UserRecord>>;
    async fn user_by_device(&self, device_id: &str) -> StoreResult<Option<UserRecord>>;
    async fn user_by_custom_id(&self, custom_id: &str) -> StoreResult<Option<UserRecord>>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    /// Users whose username starts with `prefix` (case-sensitive), in username order, after
    /// the username `after` (the admin console's search and its paging).
    async fn users_by_username_prefix(
        &self,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> StoreResult<Vec<UserRecord>>;
    /// Creates the user and links the identity in one transaction. A clash on the username
    /// is `Conflict("username")`; on the identity, `Conflict("device" | "custom_id" | "email")`.
    async fn create_user(
        &self,
        id: Uuid,
        username: &str,
        identity: NewIdentity,
        now: i64,
    ) -> StoreResult<UserRecord>;
    async fn devices_of(&self, user_id: Uuid) -> StoreResult<Vec<String>>;

    // Session revocation.
    async fn revoke_tokens(&self, tokens: Vec<RevokedToken>) -> StoreResult<()>;
    /// Every token of `user_id` issued before `at` (unix seconds) is invalid.
    async fn invalidate_user_sessions(&self, user_id: Uuid, at: i64) -> StoreResult<()>;
    /// The still-relevant revocations, to warm the in-memory cache at start.
    async fn load_revocations(
        &self,
        now: i64,
    ) -> StoreResult<(Vec<RevokedToken>, Vec<(Uuid, i64)>)>;

    // Notifications.
    /// Stores the rows in one transaction and returns them with the `create_time` the store
    /// assigned: strictly increasing in the given order and after every earlier row, so a
    /// cursor handed out before never skips them.
    async fn insert_notifications(&self, rows: Vec<Notification>)
        -> StoreResult<Vec<Notification>>;
    /// A user's rows strictly after `after`, oldest first, at most `limit`.
    async fn list_notifications(
        &self,
        user_id: Uuid,
        after: Option<(i64, Uuid)>,
        limit: usize,
    ) -> StoreResult<Vec<Notification>>;
    /// Stores one row with dedupe and collapse keys in one transaction: when the user has a
    /// live row with the same dedupe key created after `dedupe_after`, nothing is written and
    /// that row is returned; otherwise the user's rows with the same collapse key are deleted
    /// and the row is stored.
    async fn insert_keyed(
        &self,
        row: Notification,
        keys: SendKeys,
        dedupe_after: i64,
    ) -> StoreResult<KeyedInsert>;
    /// Rows by id, optionally only the given user's.
    async fn get_notifications(
        &self,
        ids: Vec<Uuid>,
        user_id: Option<Uuid>,
    ) -> StoreResult<Vec<Notification>>;
    /// Deletes rows by id, optionally only the given user's, leaving a tombstone with a new
    /// sequence for each; returns how many went. A broadcast's id with a user hides it for
    /// that user only; without one, deletes it for everyone.
    async fn delete_notifications(&self, ids: Vec<Uuid>, user_id: Option<Uuid>)
        -> StoreResult<u64>;
    /// Applies every update in one transaction, each changed row taking a new sequence;
    /// returns how many rows changed.
    async fn update_notifications(&self, updates: Vec<NotificationUpdate>) -> StoreResult<u64>;
    /// Changes the read or seen state of the user's rows `ids` (all of the user's rows when
    /// `None`) at `now`, each changed row taking its own new sequence; returns how many rows
    /// changed state.
    async fn mark_notifications(
        &self,
        user_id: Uuid,
        ids: Option<Vec<Uuid>>,
        mark: InboxMark,
        now: i64,
    ) -> StoreResult<u64>;
    /// Up to `limit` ids of rows to purge: expired at `now`, created before `created_before`,
    /// or beyond the newest `max_per_user` of their user. Read without blocking writes.
    async fn purge_candidates(
        &self,
        now: i64,
        created_before: Option<i64>,
        max_per_user: Option<usize>,
        limit: usize,
    ) -> StoreResult<Vec<Uuid>>;
    /// Deletes the purge's rows without tombstones. For the users of rows that had not
    /// expired at `now` the sync floor rises past every sequence so far: their devices must
    /// resync (an expired row needs no news: clients drop it at its expire time).
    async fn purge_notifications(&self, ids: Vec<Uuid>, now: i64) -> StoreResult<u64>;
    /// Stores a broadcast: one row that every user existing now sees in their inbox, with
    /// their own read, seen and delete state. Returns it with its create_time (from the same
    /// clock as notifications) and a nil user.
    async fn insert_broadcast(&self, row: Notification) -> StoreResult<Notification>;
    /// Deletes up to `limit` tombstones older than sequence `before`, raising their users'
    /// sync floors to the newest of them. Returns how many went.
    async fn prune_tombstones(&self, before: i64, limit: usize) -> StoreResult<u64>;
    /// What changed in the user's inbox after sequence `since`: at most `limit` of each kind,
    /// with the user's floor and the high-water mark, all from one snapshot.
    async fn inbox_changes(
        &self,
        user_id: Uuid,
        since: i64,
        limit: usize,
    ) -> StoreResult<InboxChanges>;
    /// The user's unread and unseen counts.
    async fn inbox_counts(&self, user_id: Uuid) -> StoreResult<InboxCounts>;
    /// Like `list_notifications`, with read/seen state, only the rows `filter` admits.
    async fn list_inbox(
        &self,
        user_id: Uuid,
        filter: InboxFilter,
        after: Option<(i64, Uuid)>,
        limit: usize,
    ) -> StoreResult<Vec<InboxItem>>;

    // Friends (Nakama's user_edge state machine, NAKAMA-SPEC §6). Each call is one
    // transaction over all its targets; targets that do not exist are skipped.
    /// `now` is Unix microseconds.
    /// `user` adds each target: accepts an incoming invite, else invites, unless either side
    /// blocked the other or an edge already exists.
    async fn friends_add(
        &self,
        user: Uuid,
        targets: Vec<Uuid>,
        metadata: String,
        now: i64,
    ) -> StoreResult<Vec<(Uuid, FriendChange)>>;
    /// `user` removes each target: its own edge in any state, and the target's unless that
    /// is a block. `Removed` when both went (unfriend, cancel or reject).
    async fn friends_delete(
        &self,
        user: Uuid,
        targets: Vec<Uuid>,
    ) -> StoreResult<Vec<(Uuid, FriendChange)>>;
    /// `user` blocks each target: its own edge becomes (or is created as) a block and the
    /// target's edge goes unless it is itself a block.
    async fn friends_block(&self, user: Uuid, targets: Vec<Uuid>, now: i64) -> StoreResult<()>;
    /// A page of `user`'s edges ordered by (state, position, other id), starting at `from`
    /// (inclusive), optionally of one state.
    async fn friends_list(
        &self,
        user: Uuid,
        state: Option<i32>,
        from: Option<FriendPosition>,
        limit: usize,
    ) -> StoreResult<Vec<FriendEdge>>;

    // Groups. Each call is one transaction; member operations ask
    // `core::groups::transition` for every target inside it.
    async fn create_group(&self, group: GroupRecord, owner: Uuid, now: i64) -> StoreResult<()>;
    async fn group_edge_state(&self, group: Uuid, user: Uuid) -> StoreResult<Option<i32>>;
    /// False when the group does not exist.
    async fn update_group(&self, group: Uuid, update: GroupUpdate, now: i64) -> StoreResult<bool>;
    async fn delete_group(&self, group: Uuid) -> StoreResult<()>;
    async fn join_group(&self, group: Uuid, user: Uuid, now: i64) -> StoreResult<GroupJoin>;
    async fn leave_group(&self, group: Uuid, user: Uuid) -> StoreResult<GroupLeave>;
    async fn group_members(
        &self,
        group: Uuid,
        caller: Option<Uuid>,
        op: crate::core::groups::MemberOp,
        targets: Vec<Uuid>,
        now: i64,
    ) -> StoreResult<GroupMembers>;
    /// Groups in creation order from position `after` (inclusive), with their positions.
    async fn list_groups(
        &self,
        filter: GroupFilter,
        after: Option<(i64, i64)>,
        limit: usize,
    ) -> StoreResult<Vec<(GroupRecord, i64)>>;
    /// Members by (state, position) from `after` (inclusive); bans only when `state` is 4.
    async fn list_group_users(
        &self,
        group: Uuid,
        state: Option<i32>,
        after: Option<(i64, i64)>,
        limit: usize,
    ) -> StoreResult<Vec<(UserRecord, i32, i64)>>;
    /// A user's groups by (state, position) from `after` (inclusive); never bans.
    async fn list_user_groups(
        &self,
        user: Uuid,
        state: Option<i32>,
        after: Option<(i64, i64)>,
        limit: usize,
    ) -> StoreResult<Vec<(GroupRecord, i32, i64)>>;

    /// Links `user` to `social_id` on `provider` (a conflict when another user has it), then
    /// makes each user linked to one of `friend_ids` a mutual friend of `user` where no edge
    /// exists either way. Returns those new friends.
    async fn import_social_friends(
        &self,
        user: Uuid,
        provider: String,
        social_id: String,
        friend_ids: Vec<String>,
        now: i64,
    ) -> StoreResult<Vec<Uuid>>;

    /// True when `user` exists and has not blocked `by` (who may open a direct chat).
    async fn user_exists_unblocked(&self, user: Uuid, by: Uuid) -> StoreResult<bool>;

    // Chat messages.
    async fn insert_message(
        &self,
        stream: ChannelStream,
        message: StoredMessage,
    ) -> StoreResult<()>;
    /// A stream's messages strictly after `after` in the given direction (ascending: oldest
    /// first), at most `limit`.
    async fn list_messages(
        &self,
        stream: ChannelStream,
        after: Option<(i64, Uuid)>,
        ascending: bool,
        limit: usize,
    ) -> StoreResult<Vec<StoredMessage>>;

    // Several nodes (a single-node store answers 0 and nothing).
    /// The largest notification create_time handed out so far, cluster-wide.
    async fn cluster_high_water(&self) -> StoreResult<i64>;
    /// Stored notifications other nodes committed after `after`, oldest first, at most `limit`.
    async fn notifications_from_others(
        &self,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<Notification>>;

    /// Sets `disable_time` (Unix seconds; 0 lifts a ban) on the users that exist.
    async fn set_disable_time(&self, ids: Vec<Uuid>, at: i64) -> StoreResult<()>;

    /// Called once at shutdown, after the doors have stopped: leave the storage tidy so the
    /// next start is fast. Every committed write is already durable before this.
    async fn close(&self) -> StoreResult<()>;

    /// Whether the storage answers now (the node's health). An embedded store always does.
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    /// The store's own metrics (writer queue, batch sizes, connection pool), registered
    /// with the core's at start.
    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        Vec::new()
    }
}
