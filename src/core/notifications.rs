//! In-app notifications: send, send to all, list, get, update, delete.
//!
//! Persistent notifications are committed first and pushed after; if the commit fails nothing
//! is pushed, not even the call's non-persistent items (NAKAMA-SPEC §4.5). Non-persistent ones
//! are pushed only and dropped for offline users. Each recipient gets one frame per send call
//! with all of that call's notifications for them, in send order.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use super::cluster::{tell, Bus, ClusterEvent, WireNotification};
use super::cursor::{self, Position};
use super::error::{CoreError, CoreResult};
use super::inbox::{Inbox, InboxChange};
use super::metrics::Dropped;
use super::presence::{CopyFrame, Event, Outbound, Presence};
use super::store::{broadcast_copy_id, KeyedInsert, SendKeys, Store, StoreError};
use super::time::now_micros;

/// Longest subject a stored notification may have (Nakama's VARCHAR(255)).
pub const MAX_SUBJECT_CHARS: usize = 255;
/// PostgreSQL's words for a subject over 255 characters, which scripts see (NAKAMA-SPEC §5.1).
const TOO_LONG: &str = "ERROR: value too long for type character varying(255) (SQLSTATE 22001)";
/// Largest page any door may ask for.
pub const MAX_LIST_LIMIT: usize = 1000;
/// Most notifications one send call may carry; bounds the work a script can ask for at once.
pub const MAX_BATCH: usize = 100_000;

/// A notification as stored and delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: Uuid,
    pub user_id: Uuid,
    pub subject: String,
    /// A JSON document as text; always valid JSON.
    pub content: String,
    pub code: i32,
    /// `Some(nil)` is "from the system" (pushed as the nil UUID, omitted in lists); `None` is
    /// "no sender at all", as for the server's own -7 and -8 notifications.
    pub sender_id: Option<Uuid>,
    /// Unix microseconds; for stored rows, the position in the user's inbox.
    pub create_time: i64,
    pub persistent: bool,
    /// Unix microseconds after which a stored notification is neither listed nor pushed
    /// (inbox extension; `None` for Nakama's forever).
    pub expire_time: Option<i64>,
}

/// What a caller asks to send.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub user_id: Uuid,
    pub subject: String,
    pub content: String,
    pub code: i32,
    pub sender_id: Option<Uuid>,
    pub persistent: bool,
    /// Unix microseconds after which it is neither listed nor pushed (persistent only).
    pub expire_time: Option<i64>,
    /// Dedupe and collapse keys (persistent only; inbox extension).
    pub keys: SendKeys,
}

impl NewNotification {
    /// The notification with a new time-ordered id, sent at `now` (the store assigns stored
    /// rows their final create_time).
    fn into_row(self, now: i64) -> Notification {
        Notification {
            id: Uuid::now_v7(),
            user_id: self.user_id,
            subject: self.subject,
            content: self.content,
            code: self.code,
            sender_id: self.sender_id,
            create_time: now,
            persistent: self.persistent,
            expire_time: self.expire_time,
        }
    }
}

/// A change to a stored notification; `None` fields stay as they are.
#[derive(Debug, Clone)]
pub struct NotificationUpdate {
    pub id: Uuid,
    pub subject: Option<String>,
    pub content: Option<String>,
    pub sender_id: Option<Uuid>,
}

/// Which cursor a list returns (NAKAMA-SPEC §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorMode {
    /// REST: always a cursor; an empty page echoes the given one (or the "empty" cursor).
    Cacheable,
    /// Runtime: a cursor only when another page exists.
    NextPageOnly,
}

/// One page of a user's inbox.
#[derive(Debug, Clone)]
pub struct Page {
    pub notifications: Vec<Notification>,
    pub cursor: Option<String>,
}

pub struct Notifications {
    store: Arc<dyn Store>,
    presence: Arc<Presence>,
    known_users: KnownUsers,
    /// Tells other nodes what was sent here (a single node: nobody).
    bus: Arc<dyn Bus>,
    /// Told of stored, deleted and updated rows, for sockets that follow the inbox.
    inbox: Arc<Inbox>,
    /// How long a dedupe key holds, in microseconds (`notifications.dedupe_window_sec`).
    dedupe_window: std::sync::atomic::AtomicI64,
    /// The last create_time of other nodes' rows this node has pushed; catch-ups run one at
    /// a time under this lock.
    seen: tokio::sync::Mutex<i64>,
    /// A wake-up is queued and not yet sent (see `wake_cluster`).
    waking: Arc<std::sync::atomic::AtomicBool>,
}

/// Users known to exist, for [`Notifications::check_recipients`]. Bounded: when full it
/// starts over, which costs one read per user afterwards, never a wrong answer (users are
/// never deleted).
#[derive(Default)]
struct KnownUsers(std::sync::Mutex<std::collections::HashSet<Uuid>>);

impl KnownUsers {
    const MAX: usize = 100_000;

    fn contains(&self, id: Uuid) -> bool {
        self.0.lock().map(|s| s.contains(&id)).unwrap_or(false)
    }

    fn insert(&self, id: Uuid) {
        if let Ok(mut set) = self.0.lock() {
            if set.len() >= Self::MAX {
                set.clear();
            }
            set.insert(id);
        }
    }
}

fn check_content(content: &str) -> CoreResult<()> {
    serde_json::from_str::<serde::de::IgnoredAny>(content)
        .map(|_| ())
        .map_err(|e| CoreError::invalid(format!("content is not valid JSON: {e}")))
}

/// Checks a batch as Nakama's insert fails it: the codes first (the driver refuses to encode
/// the statement's code array), then each item.
fn check_batch(batch: &[NewNotification]) -> CoreResult<()> {
    check_codes(batch)?;
    batch.iter().try_for_each(check_new)
}

/// Persistent codes must fit the SMALLINT column. Nakama's driver fails the whole insert
/// while encoding its code array (argument 4 of the statement), naming every code in it.
fn check_codes(batch: &[NewNotification]) -> CoreResult<()> {
    let codes = || batch.iter().filter(|n| n.persistent).map(|n| n.code);
    let Some(bad) = codes().find(|c| i16::try_from(*c).is_err()) else {
        return Ok(());
    };
    let all: Vec<String> = codes().map(|c| c.to_string()).collect();
    let limit = if bad > 0 {
        "greater than maximum"
    } else {
        "less than minimum"
    };
    Err(CoreError::invalid(format!(
        "failed to encode args[4]: unable to encode []int32{{{}}} into binary format for _int2 \
         (OID 1005): {bad} is {limit} value for int2",
        all.join(", ")
    )))
}

fn check_new(n: &NewNotification) -> CoreResult<()> {
    if n.subject.is_empty() {
        return Err(CoreError::invalid("subject must not be empty"));
    }
    check_content(&n.content)?;
    if n.persistent && n.subject.chars().count() > MAX_SUBJECT_CHARS {
        return Err(CoreError::invalid(TOO_LONG));
    }
    Ok(())
}

/// The -7/-8 notice: not stored, no sender, content `{}`.
fn disconnect_notice(user_id: Uuid, code: i32, subject: &str) -> Notification {
    Notification {
        id: Uuid::now_v7(),
        user_id,
        subject: subject.to_string(),
        content: "{}".into(),
        code,
        sender_id: None,
        create_time: now_micros(),
        persistent: false,
        expire_time: None,
    }
}

fn store_error(public: &str, err: StoreError) -> CoreError {
    match err {
        StoreError::MissingReference(_) => CoreError::invalid(
            "ERROR: insert or update on table \"notification\" violates foreign key constraint \"notification_user_id_fkey\" (SQLSTATE 23503)",
        ),
        StoreError::Constraint(msg) => CoreError::invalid(msg),
        other => CoreError::internal(public, other),
    }
}

impl Notifications {
    pub fn new(
        store: Arc<dyn Store>,
        presence: Arc<Presence>,
        bus: Arc<dyn Bus>,
        inbox: Arc<Inbox>,
    ) -> Self {
        Notifications {
            store,
            presence,
            inbox,
            dedupe_window: std::sync::atomic::AtomicI64::new(
                DEFAULT_DEDUPE_WINDOW_SECS * 1_000_000,
            ),
            known_users: KnownUsers::default(),
            bus,
            seen: tokio::sync::Mutex::new(0),
            waking: Arc::default(),
        }
    }

    /// Wakes the other nodes after a commit. Wake-ups coalesce: while one is on its way, later
    /// commits ride on it (the receivers read everything new from the table anyway), so a
    /// burst of sends costs a few NOTIFYs, not one each.
    fn wake_cluster(&self) {
        if self.waking.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let bus = self.bus.clone();
        let waking = self.waking.clone();
        tokio::spawn(async move {
            waking.store(false, std::sync::atomic::Ordering::Release);
            bus.publish(ClusterEvent::Stored).await;
        });
    }

    /// Starts following other nodes' rows from now (at start-up, before the bus listens).
    pub async fn follow_cluster(&self) -> CoreResult<()> {
        let now = self
            .store
            .cluster_high_water()
            .await
            .map_err(|e| CoreError::internal("Could not read the cluster clock.", e))?;
        *self.seen.lock().await = now;
        Ok(())
    }

    /// Acts on what another node did: pushes its stored rows (caught up from the table) or
    /// its pushed-only notifications to this node's sessions, or ends a user's sessions.
    pub async fn apply_remote(&self, event: ClusterEvent) {
        match event {
            ClusterEvent::Stored => self.catch_up().await,
            ClusterEvent::Pushed { all, notifications } => {
                let list: Vec<Notification> =
                    notifications.into_iter().map(Notification::from).collect();
                if all {
                    for n in list {
                        self.presence
                            .deliver_all(&Outbound::new(Event::Notifications(vec![n])));
                    }
                } else {
                    self.push_grouped(&list);
                }
            }
            ClusterEvent::Kick {
                user,
                code,
                subject,
                at,
            } => self.presence.disconnect(
                user,
                disconnect_notice(user, code, &subject),
                None,
                Some(at),
            ),
            ClusterEvent::Revoked | ClusterEvent::Chat(_) | ClusterEvent::Inbox(_) => {}
        }
    }

    /// Pushes the rows other nodes committed since the last seen, oldest first, to the users
    /// online here. Reads in pages; a wake-up that finds nothing new costs one query.
    async fn catch_up(&self) {
        const PAGE: usize = 1000;
        let mut seen = self.seen.lock().await;
        for _ in 0..10_000 {
            let rows = match self.store.notifications_from_others(*seen, PAGE).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster catch-up failed; the next wake-up retries");
                    return;
                }
            };
            let Some(last) = rows.last() else { return };
            *seen = last.create_time;
            let full = rows.len() == PAGE;
            self.push_grouped(&rows);
            if !full {
                return;
            }
        }
    }

    /// Checks a batch as `send` would, without sending it: its size and every item's subject,
    /// content and code. Doors that defer the send (the Lua runtime) call this first so a bad
    /// argument fails the call that made it.
    pub fn validate(batch: &[NewNotification]) -> CoreResult<()> {
        if batch.len() > MAX_BATCH {
            return Err(CoreError::invalid(format!(
                "at most {MAX_BATCH} notifications per send"
            )));
        }
        check_batch(batch)
    }

    /// Fails as the store's foreign key would when a persistent item names a user that does
    /// not exist. Users are never deleted, so users seen once are remembered (bounded) and
    /// most calls cost no read.
    pub async fn check_recipients(&self, batch: &[NewNotification]) -> CoreResult<()> {
        for n in batch.iter().filter(|n| n.persistent) {
            if self.known_users.contains(n.user_id) {
                continue;
            }
            match self.store.user_by_id(n.user_id).await {
                Ok(Some(_)) => self.known_users.insert(n.user_id),
                Ok(None) => return Err(store_error("", StoreError::MissingReference("user"))),
                Err(e) => return Err(store_error("Error sending notifications.", e)),
            }
        }
        Ok(())
    }

    /// Sends a batch: stores the persistent ones in one transaction, then pushes one frame per
    /// online recipient. Returns the notifications as delivered (stored ones with their
    /// stored `create_time`).
    pub async fn send(&self, batch: Vec<NewNotification>) -> CoreResult<Vec<Notification>> {
        let mut sent = self.send_calls(vec![batch]).await?;
        Ok(sent.pop().unwrap_or_default())
    }

    /// Sends several calls' batches at once: every persistent item of every call in one
    /// transaction, then each call's frames in call order, exactly as if each call had been
    /// sent alone. The Lua runtime collects an RPC's sends and commits them here before the
    /// RPC answers, so a script that sends 1,000 notifications pays for one commit.
    pub async fn send_calls(
        &self,
        calls: Vec<Vec<NewNotification>>,
    ) -> CoreResult<Vec<Vec<Notification>>> {
        for batch in &calls {
            Self::validate(batch)?;
            if batch.iter().any(|n| !n.keys.is_empty()) {
                return Err(CoreError::invalid(
                    "a notification with dedupe_key or collapse_key is sent on its own",
                ));
            }
        }
        let now = now_micros();
        let mut calls: Vec<Vec<Notification>> = calls
            .into_iter()
            .map(|batch| batch.into_iter().map(|n| n.into_row(now)).collect())
            .collect();

        let stored_at: Vec<(usize, usize)> = calls
            .iter()
            .enumerate()
            .flat_map(|(c, batch)| {
                batch
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| n.persistent)
                    .map(move |(i, _)| (c, i))
            })
            .collect();
        if !stored_at.is_empty() {
            let rows = stored_at
                .iter()
                .map(|&(c, i)| calls[c][i].clone())
                .collect();
            let stored = self
                .store
                .insert_notifications(rows)
                .await
                .map_err(|e| store_error("Error sending notifications.", e))?;
            for ((c, i), row) in stored_at.into_iter().zip(stored) {
                calls[c][i] = row;
            }
        }
        self.presence.metrics.sent(calls.iter().flatten());
        for batch in &calls {
            self.push_grouped(batch);
        }
        if !self.bus.is_local() {
            let pushed: Vec<WireNotification> = calls
                .iter()
                .flatten()
                .filter(|n| !n.persistent)
                .map(WireNotification::from)
                .collect();
            if calls.iter().flatten().any(|n| n.persistent) {
                self.wake_cluster();
            }
            if !pushed.is_empty() {
                tell(
                    &self.bus,
                    ClusterEvent::Pushed {
                        all: false,
                        notifications: pushed,
                    },
                );
            }
        }
        Ok(calls)
    }

    /// Sets how long a dedupe key holds.
    pub fn set_dedupe_window(&self, secs: i64) {
        self.dedupe_window.store(
            secs.saturating_mul(1_000_000),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Sends one stored notification with a dedupe and/or collapse key (inbox extension).
    /// A duplicate (same dedupe key for the user within the window) stores and pushes
    /// nothing and returns the original; a collapse key first deletes the user's earlier
    /// notifications with that key, and sockets following the inbox hear of it.
    pub async fn send_keyed(&self, n: NewNotification) -> CoreResult<KeyedSent> {
        check_batch(std::slice::from_ref(&n))?;
        if !n.persistent {
            return Err(CoreError::invalid(
                "dedupe_key and collapse_key apply to persistent notifications",
            ));
        }
        for key in [&n.keys.dedupe_key, &n.keys.collapse_key]
            .into_iter()
            .flatten()
        {
            if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
                return Err(CoreError::invalid(format!(
                    "dedupe_key and collapse_key must be 1 to {MAX_KEY_CHARS} characters"
                )));
            }
        }
        self.check_recipients(std::slice::from_ref(&n)).await?;
        let now = now_micros();
        let window = self
            .dedupe_window
            .load(std::sync::atomic::Ordering::Relaxed);
        let keys = n.keys.clone();
        let row = n.into_row(now);
        let outcome = self
            .store
            .insert_keyed(row, keys, now.saturating_sub(window))
            .await
            .map_err(|e| store_error("Error sending notifications.", e))?;
        match outcome {
            KeyedInsert::Duplicate(original) => Ok(KeyedSent {
                notification: original,
                duplicate: true,
            }),
            KeyedInsert::Stored { row, replaced } => {
                if !replaced.is_empty() {
                    self.inbox
                        .changed(row.user_id, InboxChange::Deleted, replaced)
                        .await;
                }
                self.presence.metrics.sent(std::slice::from_ref(&row));
                self.push_grouped(std::slice::from_ref(&row));
                if !self.bus.is_local() {
                    self.wake_cluster();
                }
                Ok(KeyedSent {
                    notification: row,
                    duplicate: false,
                })
            }
        }
    }

    /// Sends items in order, the keyed ones one at a time ([`Self::send_keyed`]) and each run
    /// of plain ones as one batch. Returns, per item, what was sent (for a duplicate, the
    /// original). Stops at the first error; what was sent before it stays sent.
    pub async fn send_in_order(&self, items: Vec<NewNotification>) -> CoreResult<Vec<KeyedSent>> {
        if items.len() > MAX_BATCH {
            return Err(CoreError::invalid(format!(
                "at most {MAX_BATCH} notifications"
            )));
        }
        let mut out = Vec::with_capacity(items.len());
        let mut plain: Vec<NewNotification> = Vec::new();
        for n in items {
            if n.keys.is_empty() {
                plain.push(n);
                continue;
            }
            if !plain.is_empty() {
                out.extend(self.send_plain(std::mem::take(&mut plain)).await?);
            }
            out.push(self.send_keyed(n).await?);
        }
        if !plain.is_empty() {
            out.extend(self.send_plain(plain).await?);
        }
        Ok(out)
    }

    async fn send_plain(&self, batch: Vec<NewNotification>) -> CoreResult<Vec<KeyedSent>> {
        self.check_recipients(&batch).await?;
        Ok(self
            .send(batch)
            .await?
            .into_iter()
            .map(|notification| KeyedSent {
                notification,
                duplicate: false,
            })
            .collect())
    }

    /// The server's own disconnect notices (-7 single_socket, -8 banned): not stored, no
    /// sender, content `{}`, delivered as the last frame of each of the user's sessions but
    /// `keep`, which then close. Made here so every implicit notification comes from this
    /// module.
    pub fn disconnect(&self, user_id: Uuid, code: i32, subject: &str, keep: Option<Uuid>) {
        let at = now_micros();
        let notice = disconnect_notice(user_id, code, subject);
        self.presence.metrics.sent(std::slice::from_ref(&notice));
        self.presence.disconnect(user_id, notice, keep, None);
        tell(
            &self.bus,
            ClusterEvent::Kick {
                user: user_id,
                code,
                subject: subject.to_string(),
                at,
            },
        );
    }

    /// One frame per recipient with all of their notifications from this call, in order.
    fn push_grouped(&self, all: &[Notification]) {
        let mut order: Vec<Uuid> = Vec::new();
        let mut per_user: HashMap<Uuid, Vec<Notification>> = HashMap::new();
        for n in all {
            if n.user_id.is_nil() && n.persistent {
                // A broadcast another node stored (the catch-up reads them with a nil user).
                self.push_broadcast(n.clone());
                continue;
            }
            if !self.presence.is_online(n.user_id) {
                // On one node nobody else can deliver it; on several, another node may.
                if !n.persistent && self.bus.is_local() {
                    self.presence
                        .metrics
                        .dropped(std::slice::from_ref(n), Dropped::Offline);
                }
                continue;
            }
            per_user
                .entry(n.user_id)
                .or_insert_with(|| {
                    order.push(n.user_id);
                    Vec::new()
                })
                .push(n.clone());
        }
        for user in order {
            if let Some(list) = per_user.remove(&user) {
                let stored: Vec<Uuid> =
                    list.iter().filter(|n| n.persistent).map(|n| n.id).collect();
                let msg = Outbound::new(Event::Notifications(list));
                self.presence.deliver(user, &msg);
                if !stored.is_empty() {
                    self.inbox.stored(user, stored);
                }
            }
        }
    }

    /// Sends one notification to every user: one shared frame to every online session (of
    /// every node). Persistent: first stored once as a broadcast (`Store::insert_broadcast`),
    /// which every existing user lists with their own read and delete state, so a broadcast
    /// to a million players is one write; returns once it is durable. Returns the number of
    /// rows stored (1 or 0).
    pub async fn send_all(
        &self,
        subject: String,
        content: String,
        code: i32,
        persistent: bool,
    ) -> CoreResult<u64> {
        let template = NewNotification {
            user_id: Uuid::nil(),
            subject,
            content,
            code,
            sender_id: Some(Uuid::nil()),
            persistent,
            expire_time: None,
            keys: Default::default(),
        };
        check_batch(std::slice::from_ref(&template))?;
        if !persistent {
            let n = Notification {
                id: Uuid::now_v7(),
                user_id: Uuid::nil(),
                subject: template.subject,
                content: template.content,
                code,
                sender_id: Some(Uuid::nil()),
                create_time: now_micros(),
                persistent: false,
                expire_time: None,
            };
            self.presence.metrics.sent(std::slice::from_ref(&n));
            tell(
                &self.bus,
                ClusterEvent::Pushed {
                    all: true,
                    notifications: vec![WireNotification::from(&n)],
                },
            );
            self.presence
                .deliver_all(&Outbound::new(Event::Notifications(vec![n])));
            return Ok(0);
        }
        let row = self
            .store
            .insert_broadcast(template.into_row(now_micros()))
            .await
            .map_err(|e| store_error("Error sending notifications.", e))?;
        self.presence.metrics.sent(std::slice::from_ref(&row));
        self.wake_cluster();
        self.push_broadcast(row);
        Ok(1)
    }

    /// Pushes a stored broadcast to every session here, each user their own copy (its id is
    /// the one they list), and tells the users following their inbox here.
    fn push_broadcast(&self, row: Notification) {
        let copy = |user: Uuid| Notification {
            id: broadcast_copy_id(row.id, user),
            user_id: user,
            ..row.clone()
        };
        let shared = Arc::new(CopyFrame::default());
        let following = self.presence.deliver_each(|user| {
            let n = copy(user);
            let id = n.id;
            Outbound::copy(Event::Notifications(vec![n]), id, &shared)
        });
        for user in following {
            self.inbox
                .stored(user, vec![broadcast_copy_id(row.id, user)]);
        }
    }

    /// A page of the user's inbox after `cursor` (empty text: from the start).
    pub async fn list(
        &self,
        user_id: Uuid,
        limit: usize,
        cursor_text: &str,
        mode: CursorMode,
    ) -> CoreResult<Page> {
        let after = page_start(limit, MAX_LIST_LIMIT, cursor_text)?;
        let mut rows = self
            .store
            .list_notifications(user_id, after, limit + 1)
            .await
            .map_err(|e| store_error("Error retrieving notifications.", e))?;
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let last = rows.last().map(|n| Position {
            create_time: n.create_time,
            id: n.id,
        });
        let cursor = match (mode, last) {
            (CursorMode::Cacheable, Some(pos)) => Some(cursor::encode(Some(pos))),
            (CursorMode::Cacheable, None) if cursor_text.is_empty() => Some(cursor::encode(None)),
            (CursorMode::Cacheable, None) => Some(cursor_text.to_string()),
            (CursorMode::NextPageOnly, Some(pos)) if has_more => Some(cursor::encode(Some(pos))),
            (CursorMode::NextPageOnly, _) => None,
        };
        Ok(Page {
            notifications: rows,
            cursor,
        })
    }

    /// Stored notifications by id; with `user_id`, only that user's.
    pub async fn get(
        &self,
        ids: Vec<Uuid>,
        user_id: Option<Uuid>,
    ) -> CoreResult<Vec<Notification>> {
        if ids.len() > MAX_BATCH {
            return Err(CoreError::invalid(format!("at most {MAX_BATCH} ids")));
        }
        self.store
            .get_notifications(ids, user_id)
            .await
            .map_err(|e| store_error("Error retrieving notifications.", e))
    }

    /// Deletes stored notifications by id; with `user_id`, only that user's (others' ids are
    /// ignored). Returns how many rows went.
    pub async fn delete(&self, ids: Vec<Uuid>, user_id: Option<Uuid>) -> CoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        if ids.len() > MAX_BATCH {
            return Err(CoreError::invalid(format!("at most {MAX_BATCH} ids")));
        }
        // Whose rows they are, for the inbox events of the users' opted-in sockets (a read
        // spared when nobody follows this user's inbox).
        let owners = if self.inbox.may_be_followed(user_id) {
            self.owners(ids.clone(), user_id).await?
        } else {
            Vec::new()
        };
        let n = self
            .store
            .delete_notifications(ids, user_id)
            .await
            .map_err(|e| store_error("Error while deleting notifications.", e))?;
        for (user, ids) in owners {
            self.inbox.changed(user, InboxChange::Deleted, ids).await;
        }
        Ok(n)
    }

    /// The stored rows among `ids` (only `user_id`'s, when given), grouped by owner.
    async fn owners(
        &self,
        ids: Vec<Uuid>,
        user_id: Option<Uuid>,
    ) -> CoreResult<Vec<(Uuid, Vec<Uuid>)>> {
        let rows = self
            .store
            .get_notifications(ids, user_id)
            .await
            .map_err(|e| store_error("Error retrieving notifications.", e))?;
        let mut by_user: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for n in rows {
            by_user.entry(n.user_id).or_default().push(n.id);
        }
        Ok(by_user.into_iter().collect())
    }

    /// Applies every update in one transaction. Nothing is pushed; positions do not change.
    pub async fn update(&self, updates: Vec<NotificationUpdate>) -> CoreResult<u64> {
        if updates.len() > MAX_BATCH {
            return Err(CoreError::invalid(format!("at most {MAX_BATCH} updates")));
        }
        for u in &updates {
            if let Some(content) = &u.content {
                check_content(content)?;
            }
            if let Some(subject) = &u.subject {
                if subject.is_empty() {
                    return Err(CoreError::invalid("subject must not be empty"));
                }
                if subject.chars().count() > MAX_SUBJECT_CHARS {
                    return Err(CoreError::invalid(TOO_LONG));
                }
            }
        }
        let owners = self
            .owners(updates.iter().map(|u| u.id).collect(), None)
            .await?;
        let n = self
            .store
            .update_notifications(updates)
            .await
            .map_err(|e| store_error("Error updating notifications.", e))?;
        for (user, ids) in owners {
            self.inbox.changed(user, InboxChange::Updated, ids).await;
        }
        Ok(n)
    }
}

/// How long a dedupe key holds unless configured: a day.
pub const DEFAULT_DEDUPE_WINDOW_SECS: i64 = 24 * 3600;
/// Longest dedupe or collapse key.
pub const MAX_KEY_CHARS: usize = 128;

/// What a keyed send did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedSent {
    /// The stored notification, or for a duplicate the original one.
    pub notification: Notification,
    pub duplicate: bool,
}

/// Longest time-to-live a notification may be given: ten years.
pub const MAX_TTL_SECS: i64 = 10 * 365 * 24 * 3600;

/// The expiry (Unix microseconds) of a send that gives `ttl_secs` from now or `expires_at`
/// (Unix seconds); at most one of them, in the future, within [`MAX_TTL_SECS`].
pub fn expiry(ttl_secs: Option<i64>, expires_at: Option<i64>, now: i64) -> CoreResult<Option<i64>> {
    let now_secs = now.div_euclid(1_000_000);
    let ttl = match (ttl_secs, expires_at) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => return Err(CoreError::invalid("give ttl or expires_at, not both")),
        (Some(ttl), None) => ttl,
        (None, Some(at)) => at.saturating_sub(now_secs),
    };
    if ttl <= 0 {
        return Err(CoreError::invalid("the notification would expire at once: ttl must be positive and expires_at in the future"));
    }
    if ttl > MAX_TTL_SECS {
        return Err(CoreError::invalid(format!(
            "ttl must be at most {MAX_TTL_SECS} seconds"
        )));
    }
    Ok(Some(now + ttl * 1_000_000))
}

/// Checks a list's `limit` (1..=`max`) and decodes where its page starts: after the row the
/// cursor names, or from the start for an empty cursor.
pub fn page_start(limit: usize, max: usize, cursor_text: &str) -> CoreResult<Option<(i64, Uuid)>> {
    if !(1..=max).contains(&limit) {
        return Err(CoreError::invalid(format!(
            "limit must be between 1 and {max}"
        )));
    }
    if cursor_text.is_empty() {
        return Ok(None);
    }
    Ok(cursor::decode(cursor_text)
        .map_err(|_| CoreError::invalid("Malformed cursor was used."))?
        .map(|p| (p.create_time, p.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(code: i32, persistent: bool) -> NewNotification {
        NewNotification {
            user_id: Uuid::nil(),
            subject: "s".into(),
            content: "{}".into(),
            code,
            sender_id: None,
            persistent,
            expire_time: None,
            keys: Default::default(),
        }
    }

    #[test]
    fn codes_outside_smallint_fail_like_nakamas_driver() {
        let message = |batch: &[NewNotification]| check_batch(batch).err().map(|e| e.message);
        assert_eq!(message(&[item(40000, false), item(32767, true)]), None);
        assert_eq!(
            message(&[item(7, true), item(90000, false), item(-40000, true)]).as_deref(),
            Some(
                "failed to encode args[4]: unable to encode []int32{7, -40000} into binary \
                 format for _int2 (OID 1005): -40000 is less than minimum value for int2"
            ),
            "online-only codes are not in the insert"
        );
        // The code check comes before a row's own failures, as the driver's encoding does.
        let mut long = item(40000, true);
        long.subject = "x".repeat(300);
        assert!(message(&[long])
            .unwrap_or_default()
            .ends_with("40000 is greater than maximum value for int2"));
    }
}
