//! The PostgreSQL store: the same `Store` trait as SQLite, for several Tidings nodes sharing
//! one database (`database.url: postgres://…`). A deadpool connection pool; every trait
//! method is one transaction (or one statement); the friend and group state machines run
//! the same rules as SQLite, with row locks (`FOR UPDATE`) where two nodes could race.
//! Notification `create_time` comes from one locked clock row, so it is strictly increasing
//! across all nodes, which the list cursor relies on.
//!
//! Migrations (`migrations/postgres/NNN_*.sql`) run at connect under an advisory lock, so
//! nodes starting together apply each once.

use std::str::FromStr;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use super::{
    broadcast_mark_values, broadcast_rows_sql, changes_range_sql, live_sql, BROADCAST_INBOX_COLS,
    FRIEND_USER_COLS, GROUP_COLS, INBOX_COLS, NOTIFICATION_COLS, USER_COLS, USER_COL_COUNT as U,
};
use crate::core::groups::{self, MemberOp, Transition};
use crate::core::metrics::WriterMetrics;
use crate::core::notifications::{Notification, NotificationUpdate};
use crate::core::store::{broadcast_copy_id, broadcast_copy_parts};
use crate::core::store::{
    ChannelStream, FriendChange, FriendEdge, FriendPosition, GroupFilter, GroupJoin, GroupLeave,
    GroupMembers, GroupRecord, GroupUpdate, InboxChanges, InboxCounts, InboxFilter, InboxItem,
    InboxMark, KeyedInsert, NewIdentity, RevokedToken, SendKeys, Store, StoreError, StoreResult,
    StoredMessage, UserRecord,
};
use crate::core::time::now_micros;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/001_init.sql"),
    include_str!("migrations/postgres/002_cluster.sql"),
    include_str!("migrations/postgres/003_presence.sql"),
    include_str!("migrations/postgres/004_inbox.sql"),
    include_str!("migrations/postgres/005_sync.sql"),
    include_str!("migrations/postgres/006_broadcast.sql"),
];
/// Connections per node.
const POOL_SIZE: usize = 16;
/// Advisory lock key for migrations ("tidings" in ASCII).
const MIGRATION_LOCK: i64 = 0x0074_6964_696e_6773;

pub struct PgStore {
    pool: Pool,
    /// This node's name, written with each notification it commits.
    node: String,
    /// The notification writer (group commit, see [`insert_writer`]).
    inserts: tokio::sync::mpsc::UnboundedSender<InsertJob>,
    writer_metrics: WriterMetrics,
}

type InsertJob = (
    Vec<Notification>,
    tokio::sync::oneshot::Sender<StoreResult<Vec<Notification>>>,
);

/// Most rows one group commit takes.
const MAX_GROUP_ROWS: usize = 10_000;

/// Commits notification inserts in groups: every job waiting when a commit starts goes into
/// it (a failing group is retried job by job, so a bad job fails alone). The clock row that
/// keeps create_time strictly increasing cluster-wide is locked until commit, so commits on
/// it are serial; one transaction per RPC made that the limit (550/s with 8 clients), one per
/// group carries every waiting RPC in one commit and four round trips.
async fn insert_writer(
    pool: Pool,
    node: String,
    mut jobs: tokio::sync::mpsc::UnboundedReceiver<InsertJob>,
    metrics: WriterMetrics,
) {
    while let Some(first) = jobs.recv().await {
        let mut group = vec![first];
        let mut rows = group[0].0.len();
        while rows < MAX_GROUP_ROWS {
            match jobs.try_recv() {
                Ok(job) => {
                    rows += job.0.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        metrics.queued.sub(group.len() as i64);
        metrics.batch.observe(group.len() as f64);
        let outcome = commit_group(&pool, &node, &mut group).await;
        for (i, (_, reply)) in group.into_iter().enumerate() {
            let answer = match &outcome {
                // One result per job; a missing one is an error, never a panic that would
                // stop this writer for every later insert.
                Ok(results) => results.get(i).cloned().unwrap_or_else(|| {
                    Err(StoreError::Internal("no result for an insert job".into()))
                }),
                Err(e) => Err(e.clone()),
            };
            let _ = reply.send(answer);
        }
    }
}

/// One transaction for a group of insert jobs (one clock update, one multi-row INSERT);
/// when it fails, each job again in its own transaction, so a bad job (an unknown user)
/// fails alone. Per-job results.
async fn commit_group(
    pool: &Pool,
    node: &str,
    group: &mut [InsertJob],
) -> StoreResult<Vec<StoreResult<Vec<Notification>>>> {
    let jobs: Vec<Vec<Notification>> = group
        .iter_mut()
        .map(|(rows, _)| std::mem::take(rows))
        .collect();
    let mut client = pool.get().await.map_err(pool_err)?;
    let all: Vec<Notification> = jobs.iter().flatten().cloned().collect();
    match insert_rows(&mut client, node, all).await {
        Ok(mut stored) => {
            let mut results = Vec::with_capacity(jobs.len());
            for job in &jobs {
                let rest = stored.split_off(job.len());
                results.push(Ok(std::mem::replace(&mut stored, rest)));
            }
            Ok(results)
        }
        Err(_) if jobs.len() > 1 => {
            let mut results = Vec::with_capacity(jobs.len());
            for job in jobs {
                results.push(insert_rows(&mut client, node, job).await.map_err(pg_err));
            }
            Ok(results)
        }
        Err(e) => Ok(vec![Err(pg_err(e))]),
    }
}

/// Inserts rows in one transaction with create_times from the cluster clock, in order.
async fn insert_rows(
    client: &mut deadpool_postgres::Object,
    node: &str,
    rows: Vec<Notification>,
) -> Result<Vec<Notification>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let rows = insert_in(&tx, node, rows).await?;
    tx.commit().await?;
    Ok(rows)
}

/// Inserts rows within `tx`, taking their create_times from the cluster clock (whose row
/// lock `tx` then holds until it ends).
async fn insert_in(
    tx: &deadpool_postgres::Transaction<'_>,
    node: &str,
    mut rows: Vec<Notification>,
) -> Result<Vec<Notification>, tokio_postgres::Error> {
    let n = rows.len() as i64;
    let last: i64 = tx
        .query_one(
            "UPDATE notification_clock SET last = GREATEST(last + $1, $2 + $1 - 1) RETURNING last",
            &[&n, &now_micros()],
        )
        .await?
        .get(0);
    for (i, row) in rows.iter_mut().enumerate() {
        row.create_time = last - n + 1 + i as i64;
    }
    let users: Vec<Uuid> = rows.iter().map(|r| r.user_id).collect();
    let times: Vec<i64> = rows.iter().map(|r| r.create_time).collect();
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let subjects: Vec<&str> = rows.iter().map(|r| r.subject.as_str()).collect();
    let contents: Vec<&str> = rows.iter().map(|r| r.content.as_str()).collect();
    let codes: Vec<i16> = rows.iter().map(|r| r.code as i16).collect();
    let senders: Vec<Uuid> = rows
        .iter()
        .map(|r| r.sender_id.unwrap_or_default())
        .collect();
    let expires: Vec<Option<i64>> = rows.iter().map(|r| r.expire_time).collect();
    tx.execute(
        "INSERT INTO notification (user_id, create_time, id, subject, content, code, sender_id, \
         expire_time, origin) \
         SELECT u, t, i, s, c, k, f, e, $9 FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], \
         $4::text[], $5::text[], $6::smallint[], $7::uuid[], $8::bigint[]) AS x(u, t, i, s, c, k, f, e)",
        &[&users, &times, &ids, &subjects, &contents, &codes, &senders, &expires, &node],
    )
    .await?;
    Ok(rows)
}

/// Locks the cluster clock for the rest of `tx` (every transaction that changes an inbox
/// takes it first, so sequences follow commit order and no two transactions deadlock over
/// it) and returns the value after which the transaction's sequences start.
async fn lock_clock(tx: &deadpool_postgres::Transaction<'_>) -> Result<i64, tokio_postgres::Error> {
    Ok(tx
        .query_one(
            "SELECT GREATEST(last, $1::bigint - 1) FROM notification_clock FOR UPDATE",
            &[&now_micros()],
        )
        .await?
        .get(0))
}

/// Records `last` as the last sequence handed out (after [`lock_clock`]).
async fn set_clock(
    tx: &deadpool_postgres::Transaction<'_>,
    last: i64,
) -> Result<(), tokio_postgres::Error> {
    tx.execute("UPDATE notification_clock SET last = $1", &[&last])
        .await?;
    Ok(())
}

/// Leaves a tombstone for each deleted (user, id), with sequences after `base`; returns the
/// last sequence used.
async fn bury(
    tx: &deadpool_postgres::Transaction<'_>,
    base: i64,
    gone: &[(Uuid, Uuid)],
) -> Result<i64, tokio_postgres::Error> {
    if gone.is_empty() {
        return Ok(base);
    }
    let users: Vec<Uuid> = gone.iter().map(|g| g.0).collect();
    let ids: Vec<Uuid> = gone.iter().map(|g| g.1).collect();
    let seqs: Vec<i64> = (1..=gone.len() as i64).map(|i| base + i).collect();
    tx.execute(
        "INSERT INTO notification_tombstone (user_id, seq, id) \
         SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::uuid[])",
        &[&users, &seqs, &ids],
    )
    .await?;
    Ok(base + gone.len() as i64)
}

/// Raises each user's sync floor to at least its paired sequence.
async fn raise_floors(
    tx: &deadpool_postgres::Transaction<'_>,
    users: &[Uuid],
    seqs: &[i64],
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO inbox_sync_floor (user_id, seq) \
         SELECT u, max(s) FROM unnest($1::uuid[], $2::bigint[]) AS x(u, s) GROUP BY u \
         ON CONFLICT (user_id) DO UPDATE \
         SET seq = GREATEST(inbox_sync_floor.seq, excluded.seq)",
        &[&users, &seqs],
    )
    .await?;
    Ok(())
}

/// The user's broadcasts as inbox rows (`broadcast_rows_sql`) with the user at `${u}` and
/// the current time at `${now}`.
fn broadcasts_of(u: usize, now: usize) -> String {
    broadcast_rows_sql(
        &format!("${u}::uuid"),
        &format!("${now}::bigint"),
        "GREATEST",
    )
}

/// A broadcast copy's id (`broadcast_copy_id`) -> (broadcast id, owner), when the broadcast
/// exists and so does exactly one user the id can name; `user`, when known, must be it.
async fn resolve_copy(
    c: &impl GenericClient,
    id: Uuid,
    user: Option<Uuid>,
) -> Result<Option<(Uuid, Uuid)>, tokio_postgres::Error> {
    let (key, lo, hi) = broadcast_copy_parts(id);
    let Some(broadcast) = c
        .query_opt(
            "SELECT id FROM notification_broadcast WHERE key = $1",
            &[&key.as_slice()],
        )
        .await?
        .map(|r| r.get::<_, Uuid>(0))
    else {
        return Ok(None);
    };
    let owner = match user {
        Some(u) => (broadcast_copy_id(broadcast, u) == id).then_some(u),
        None => {
            let found = c
                .query(
                    "SELECT id FROM users WHERE id BETWEEN $1 AND $2 LIMIT 2",
                    &[&lo, &hi],
                )
                .await?;
            (found.len() == 1).then(|| found[0].get(0))
        }
    };
    Ok(owner.map(|u| (broadcast, u)))
}

/// `n` as `user` sees it when `is_broadcast`: with the id of their copy.
/// Updates one player's copy of a broadcast, that player's only, as the SQLite store does
/// (`update_copy` there): the copy becomes a row of its own and the broadcast is hidden for
/// its owner. Takes the two sequence numbers after `seq`. The row carries this node as its
/// origin, so this node's catch-up never pushes it (an update pushes nothing, as in Nakama).
async fn update_copy(
    tx: &impl GenericClient,
    seq: &mut i64,
    node: &str,
    broadcast: Uuid,
    owner: Uuid,
    u: &NotificationUpdate,
) -> Result<u64, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {BROADCAST_INBOX_COLS} FROM ({}) bx WHERE id = $2 AND gone = 0",
        broadcasts_of(1, 3)
    );
    let Some(row) = tx
        .query_opt(&sql, &[&owner, &broadcast, &now_micros()])
        .await?
    else {
        return Ok(0);
    };
    let item = inbox_item_from(&row);
    tx.execute(
        "INSERT INTO notification_broadcast_state (user_id, broadcast_id, hidden, change_seq) \
         VALUES ($1, $2, 1, $3) ON CONFLICT (user_id, broadcast_id) DO UPDATE \
         SET hidden = 1, change_seq = excluded.change_seq",
        &[&owner, &broadcast, &(*seq + 1)],
    )
    .await?;
    let n = item.notification;
    let sender = u.sender_id.or(n.sender_id).unwrap_or_default();
    *seq += 2;
    tx.execute(
        "INSERT INTO notification (user_id, create_time, id, subject, content, code, sender_id, \
         expire_time, read_time, seen_time, change_seq, origin) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &owner,
            &n.create_time,
            &u.id,
            &u.subject.as_deref().unwrap_or(&n.subject),
            &u.content.as_deref().unwrap_or(&n.content),
            &(n.code as i16),
            &sender,
            &n.expire_time,
            &item.read_time,
            &item.seen_time,
            &*seq,
            &node,
        ],
    )
    .await
}

fn as_copy(mut n: Notification, user: Uuid, is_broadcast: bool) -> Notification {
    if is_broadcast {
        n.id = broadcast_copy_id(n.id, user);
        n.user_id = user;
    }
    n
}

fn inbox_item_from(row: &Row) -> InboxItem {
    InboxItem {
        notification: notification_from(row),
        read_time: row.get(8),
        seen_time: row.get(9),
        seq: row.get(10),
    }
}

fn pg_err(e: tokio_postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        return StoreError::Internal(e.to_string());
    };
    let constraint = db.constraint().unwrap_or_default();
    match *db.code() {
        SqlState::UNIQUE_VIOLATION => StoreError::Conflict(match constraint {
            "users_username_key" => "username",
            "user_device_pkey" => "device",
            "users_custom_id_key" => "custom_id",
            "users_email_key" => "email",
            "groups_name_key" => "group name",
            "user_social_pkey" | "user_social_user" => "social id",
            _ => "row",
        }),
        SqlState::FOREIGN_KEY_VIOLATION => StoreError::MissingReference("users"),
        SqlState::CHECK_VIOLATION | SqlState::STRING_DATA_RIGHT_TRUNCATION => {
            StoreError::Constraint(db.message().to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_err(e),
        other => StoreError::Internal(format!("PostgreSQL pool: {other}")),
    }
}

fn user_from(row: &Row) -> UserRecord {
    UserRecord {
        id: row.get(0),
        username: row.get(1),
        display_name: row.get(2),
        avatar_url: row.get(3),
        lang_tag: row.get(4),
        location: row.get(5),
        timezone: row.get(6),
        metadata: row.get(7),
        email: row.get(8),
        password_hash: row.get(9),
        custom_id: row.get(10),
        create_time: row.get(11),
        update_time: row.get(12),
        disable_time: row.get(13),
        edge_count: row.get(14),
    }
}

fn notification_from(row: &Row) -> Notification {
    Notification {
        id: row.get(0),
        user_id: row.get(1),
        subject: row.get(2),
        content: row.get(3),
        code: i32::from(row.get::<_, i16>(4)),
        sender_id: Some(row.get(5)),
        create_time: row.get(6),
        persistent: true,
        expire_time: row.get(7),
    }
}

fn group_from(row: &Row) -> GroupRecord {
    GroupRecord {
        id: row.get(0),
        creator_id: row.get(1),
        name: row.get(2),
        description: row.get(3),
        avatar_url: row.get(4),
        lang_tag: row.get(5),
        metadata: row.get(6),
        open: row.get(7),
        edge_count: row.get(8),
        max_count: row.get(9),
        create_time: row.get(10),
        update_time: row.get(11),
    }
}

/// Which `state` filter: `-1` for none (SMALLINT parameters cannot be NULL-typed easily).
fn state_param(state: Option<i32>) -> i16 {
    state.map_or(-1, |s| s as i16)
}

async fn group_for_update(
    tx: &impl GenericClient,
    group: Uuid,
) -> Result<Option<GroupRecord>, tokio_postgres::Error> {
    let sql = format!("SELECT {GROUP_COLS} FROM groups g WHERE g.id = $1 FOR UPDATE");
    Ok(tx.query_opt(&sql, &[&group]).await?.map(|r| group_from(&r)))
}

async fn edge_state(
    tx: &impl GenericClient,
    group: Uuid,
    user: Uuid,
) -> Result<Option<i32>, tokio_postgres::Error> {
    Ok(tx
        .query_opt(
            "SELECT state FROM group_edge WHERE group_id = $1 AND user_id = $2",
            &[&group, &user],
        )
        .await?
        .map(|r| i32::from(r.get::<_, i16>(0))))
}

/// One membership change with `edge_count` kept in step; false when it would overfill.
async fn set_edge(
    tx: &impl GenericClient,
    group: Uuid,
    user: Uuid,
    before: Option<i32>,
    after: Option<i32>,
    now: i64,
) -> Result<bool, tokio_postgres::Error> {
    let delta = i64::from(groups::is_member(after)) - i64::from(groups::is_member(before));
    if delta != 0 {
        let changed = tx
            .execute(
                "UPDATE groups SET edge_count = edge_count + $2 \
                 WHERE id = $1 AND edge_count + $2 <= max_count AND edge_count + $2 >= 0",
                &[&group, &delta],
            )
            .await?;
        if changed == 0 {
            return Ok(false);
        }
    }
    match (before, after) {
        (_, None) => {
            tx.execute(
                "DELETE FROM group_edge WHERE group_id = $1 AND user_id = $2",
                &[&group, &user],
            )
            .await?;
        }
        (None, Some(state)) => {
            tx.execute(
                "INSERT INTO group_edge (group_id, user_id, state, position) VALUES ($1, $2, $3, $4)",
                &[&group, &user, &(state as i16), &now],
            )
            .await?;
        }
        (Some(_), Some(state)) => {
            tx.execute(
                "UPDATE group_edge SET state = $3 WHERE group_id = $1 AND user_id = $2",
                &[&group, &user, &(state as i16)],
            )
            .await?;
        }
    }
    Ok(true)
}

impl PgStore {
    /// Connects, and migrates the schema. `schema` (tests) puts every table in that schema
    /// instead of the user's default search path; it is created when missing.
    pub async fn connect(url: &str, schema: Option<&str>, node: &str) -> StoreResult<PgStore> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Internal(format!("database.url: {e}")))?;
        if let Some(schema) = schema {
            if !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(StoreError::Internal("schema names are [A-Za-z0-9_]".into()));
            }
            let (client, conn) = config.connect(NoTls).await.map_err(pg_err)?;
            let driver = tokio::spawn(conn);
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await
                .map_err(pg_err)?;
            drop(client);
            let _ = driver.await;
            config.options(format!("-c search_path={schema}"));
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Internal(format!("PostgreSQL pool: {e}")))?;
        let (inserts, jobs) = tokio::sync::mpsc::unbounded_channel();
        let writer_metrics = WriterMetrics::default();
        tokio::spawn(insert_writer(
            pool.clone(),
            node.to_string(),
            jobs,
            writer_metrics.clone(),
        ));
        let store = PgStore {
            pool,
            node: node.to_string(),
            inserts,
            writer_metrics,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The connection pool, shared with this node's cluster bus.
    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS tidings_migrations (version INTEGER PRIMARY KEY)",
        )
        .await
        .map_err(pg_err)?;
        let done: i32 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM tidings_migrations",
                &[],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done.max(0) as usize) {
            tx.batch_execute(sql).await.map_err(pg_err)?;
            tx.execute(
                "INSERT INTO tidings_migrations (version) VALUES ($1)",
                &[&(i as i32 + 1)],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_err)
    }

    async fn user_where(&self, clause: &str, value: &str) -> StoreResult<Option<UserRecord>> {
        let c = self.client().await?;
        let sql = format!("SELECT {USER_COLS} FROM users u {clause}");
        Ok(c.query_opt(&sql, &[&value])
            .await
            .map_err(pg_err)?
            .map(|r| user_from(&r)))
    }
}

#[async_trait]
impl Store for PgStore {
    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<UserRecord>> {
        let c = self.client().await?;
        let sql = format!("SELECT {USER_COLS} FROM users u WHERE u.id = $1");
        Ok(c.query_opt(&sql, &[&id])
            .await
            .map_err(pg_err)?
            .map(|r| user_from(&r)))
    }

    async fn user_by_device(&self, device_id: &str) -> StoreResult<Option<UserRecord>> {
        self.user_where(
            "JOIN user_device d ON d.user_id = u.id WHERE d.id = $1",
            device_id,
        )
        .await
    }

    async fn user_by_custom_id(&self, custom_id: &str) -> StoreResult<Option<UserRecord>> {
        self.user_where("WHERE u.custom_id = $1", custom_id).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        self.user_where("WHERE u.email = $1", email).await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        self.user_where("WHERE u.username = $1", username).await
    }

    async fn users_by_username_prefix(
        &self,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> StoreResult<Vec<UserRecord>> {
        let c = self.client().await?;
        let sql = format!(
            "SELECT {USER_COLS} FROM users u WHERE starts_with(u.username, $1) \
             AND u.username COLLATE \"C\" > $2 ORDER BY u.username COLLATE \"C\" LIMIT $3"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(c.query(&sql, &[&prefix, &after, &limit])
            .await
            .map_err(pg_err)?
            .iter()
            .map(user_from)
            .collect())
    }

    async fn create_user(
        &self,
        id: Uuid,
        username: &str,
        identity: NewIdentity,
        now: i64,
    ) -> StoreResult<UserRecord> {
        let (email, password, custom_id, device) = match identity {
            NewIdentity::Device(d) => (None, None, None, Some(d)),
            NewIdentity::Custom(cid) => (None, None, Some(cid), None),
            NewIdentity::Email {
                email,
                password_hash,
            } => (Some(email), Some(password_hash), None, None),
        };
        {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(pg_err)?;
            tx.execute(
                "INSERT INTO users (id, username, email, password, custom_id, create_time, update_time) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
                &[&id, &username, &email, &password, &custom_id, &now],
            )
            .await
            .map_err(pg_err)?;
            if let Some(device) = device {
                tx.execute(
                    "INSERT INTO user_device (id, user_id) VALUES ($1, $2)",
                    &[&device, &id],
                )
                .await
                .map_err(pg_err)?;
            }
            tx.commit().await.map_err(pg_err)?;
        }
        self.user_by_id(id)
            .await?
            .ok_or_else(|| StoreError::Internal("created user vanished".into()))
    }

    async fn devices_of(&self, user_id: Uuid) -> StoreResult<Vec<String>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id FROM user_device WHERE user_id = $1 ORDER BY id",
                &[&user_id],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn revoke_tokens(&self, tokens: Vec<RevokedToken>) -> StoreResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        for t in tokens {
            tx.execute(
                "INSERT INTO session_revoked (token_id, refresh, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (token_id, refresh) DO UPDATE SET expires_at = excluded.expires_at",
                &[&t.token_id, &t.refresh, &t.expires_at],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)
    }

    async fn invalidate_user_sessions(&self, user_id: Uuid, at: i64) -> StoreResult<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO user_session_cutoff (user_id, invalidated_at) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE SET invalidated_at = excluded.invalidated_at",
            &[&user_id, &at],
        )
        .await
        .map_err(pg_err)?;
        Ok(())
    }

    async fn load_revocations(
        &self,
        now: i64,
    ) -> StoreResult<(Vec<RevokedToken>, Vec<(Uuid, i64)>)> {
        let c = self.client().await?;
        c.execute("DELETE FROM session_revoked WHERE expires_at < $1", &[&now])
            .await
            .map_err(pg_err)?;
        let tokens = c
            .query(
                "SELECT token_id, refresh, expires_at FROM session_revoked",
                &[],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| RevokedToken {
                token_id: r.get(0),
                refresh: r.get(1),
                expires_at: r.get(2),
            })
            .collect();
        let users = c
            .query(
                "SELECT user_id, invalidated_at FROM user_session_cutoff",
                &[],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok((tokens, users))
    }

    async fn insert_notifications(
        &self,
        rows: Vec<Notification>,
    ) -> StoreResult<Vec<Notification>> {
        if rows.is_empty() {
            return Ok(rows);
        }
        let (reply, wait) = tokio::sync::oneshot::channel();
        self.writer_metrics.queued.inc();
        self.inserts.send((rows, reply)).map_err(|_| {
            self.writer_metrics.queued.dec();
            StoreError::Internal("the notification writer has stopped".into())
        })?;
        wait.await.map_err(|_| {
            StoreError::Internal("the notification writer dropped the request".into())
        })?
    }

    async fn list_notifications(
        &self,
        user_id: Uuid,
        after: Option<(i64, Uuid)>,
        limit: usize,
    ) -> StoreResult<Vec<Notification>> {
        let c = self.client().await?;
        let (after_time, after_id) = after.unwrap_or((i64::MIN, Uuid::nil()));
        // The user's rows and the broadcasts they see, merged in list order.
        // create_time alone places a broadcast: one clock numbers both tables.
        let sql = format!(
            "SELECT {NOTIFICATION_COLS}, 0 AS copy FROM notification \
             WHERE user_id = $1 AND (create_time, id) > ($2, $3) AND {} \
             UNION ALL SELECT {NOTIFICATION_COLS}, 1 FROM ({}) bx \
             WHERE gone = 0 AND create_time > $2 \
             ORDER BY create_time, id LIMIT $4",
            live_sql("$5"),
            broadcasts_of(1, 5)
        );
        let rows = c
            .query(
                &sql,
                &[
                    &user_id,
                    &after_time,
                    &after_id,
                    &(limit as i64),
                    &now_micros(),
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| as_copy(notification_from(r), user_id, r.get::<_, i32>(8) == 1))
            .collect())
    }

    async fn insert_keyed(
        &self,
        row: Notification,
        keys: SendKeys,
        dedupe_after: i64,
    ) -> StoreResult<KeyedInsert> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        // Serialises keyed sends to one user across nodes, so two nodes cannot both find no
        // duplicate and both insert.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 7))",
            &[&row.user_id],
        )
        .await
        .map_err(pg_err)?;
        let base = lock_clock(&tx).await.map_err(pg_err)?;
        if let Some(key) = &keys.dedupe_key {
            let sql = format!(
                "SELECT {NOTIFICATION_COLS} FROM notification \
                 WHERE user_id = $1 AND dedupe_key = $2 AND create_time > $3 AND {} \
                 ORDER BY create_time DESC LIMIT 1",
                live_sql("$4")
            );
            let found = tx
                .query_opt(&sql, &[&row.user_id, key, &dedupe_after, &now_micros()])
                .await
                .map_err(pg_err)?;
            if let Some(original) = found {
                return Ok(KeyedInsert::Duplicate(notification_from(&original)));
            }
        }
        let mut replaced = Vec::new();
        if let Some(key) = &keys.collapse_key {
            let rows = tx
                .query(
                    "DELETE FROM notification WHERE user_id = $1 AND collapse_key = $2 RETURNING id",
                    &[&row.user_id, key],
                )
                .await
                .map_err(pg_err)?;
            replaced = rows.iter().map(|r| r.get(0)).collect();
            let gone: Vec<(Uuid, Uuid)> = replaced.iter().map(|id| (row.user_id, *id)).collect();
            let last = bury(&tx, base, &gone).await.map_err(pg_err)?;
            set_clock(&tx, last).await.map_err(pg_err)?;
        }
        let mut stored = insert_in(&tx, &self.node, vec![row])
            .await
            .map_err(pg_err)?;
        let row = stored
            .pop()
            .ok_or_else(|| StoreError::Internal("keyed insert stored nothing".into()))?;
        tx.execute(
            "UPDATE notification SET dedupe_key = $2, collapse_key = $3 WHERE id = $1",
            &[&row.id, &keys.dedupe_key, &keys.collapse_key],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(KeyedInsert::Stored { row, replaced })
    }

    async fn get_notifications(
        &self,
        ids: Vec<Uuid>,
        user_id: Option<Uuid>,
    ) -> StoreResult<Vec<Notification>> {
        let c = self.client().await?;
        let sql = format!(
            "SELECT {NOTIFICATION_COLS} FROM notification \
             WHERE id = ANY($1) AND ($2::uuid IS NULL OR user_id = $2) AND {}",
            live_sql("$3"),
        );
        let rows = c
            .query(&sql, &[&ids, &user_id, &now_micros()])
            .await
            .map_err(pg_err)?;
        let mut found: Vec<Notification> = rows.iter().map(notification_from).collect();
        // The rest may be broadcast copies: each as its owner sees it.
        let copy_sql = format!(
            "SELECT {NOTIFICATION_COLS} FROM ({}) bx WHERE id = $2 AND gone = 0",
            broadcasts_of(1, 3)
        );
        let rest: Vec<Uuid> = ids
            .iter()
            .filter(|id| !found.iter().any(|n| n.id == **id))
            .copied()
            .collect();
        for id in &rest {
            if let Some((b, u)) = resolve_copy(&c, *id, user_id).await.map_err(pg_err)? {
                let row = c
                    .query_opt(&copy_sql, &[&u, &b, &now_micros()])
                    .await
                    .map_err(pg_err)?;
                found.extend(row.map(|r| as_copy(notification_from(&r), u, true)));
            }
        }
        // In the order asked for, as the SQLite store answers.
        found.sort_by_key(|n| ids.iter().position(|id| *id == n.id));
        Ok(found)
    }

    async fn delete_notifications(
        &self,
        ids: Vec<Uuid>,
        user_id: Option<Uuid>,
    ) -> StoreResult<u64> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let base = lock_clock(&tx).await.map_err(pg_err)?;
        let gone: Vec<(Uuid, Uuid)> = tx
            .query(
                "DELETE FROM notification WHERE id = ANY($1) AND ($2::uuid IS NULL OR user_id = $2) \
                 RETURNING user_id, id",
                &[&ids, &user_id],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut last = bury(&tx, base, &gone).await.map_err(pg_err)?;
        // Broadcasts: hidden for the user, or deleted for everyone.
        let rest: Vec<Uuid> = ids
            .iter()
            .filter(|id| !gone.iter().any(|g| g.1 == **id))
            .copied()
            .collect();
        // Broadcast copies: hidden for their owners.
        let hide = format!(
            "INSERT INTO notification_broadcast_state (user_id, broadcast_id, hidden, change_seq) \
             SELECT $1::uuid, id, 1, $3 FROM ({}) bx WHERE id = $2 AND gone = 0 \
             ON CONFLICT (user_id, broadcast_id) DO UPDATE \
             SET hidden = 1, change_seq = excluded.change_seq",
            broadcasts_of(1, 4)
        );
        let mut hidden = 0;
        for id in rest {
            if let Some((b, u)) = resolve_copy(&tx, id, user_id).await.map_err(pg_err)? {
                let n = tx
                    .execute(&hide, &[&u, &b, &(last + 1), &now_micros()])
                    .await
                    .map_err(pg_err)?;
                last += n as i64;
                hidden += n;
            }
        }
        set_clock(&tx, last).await.map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(gone.len() as u64 + hidden)
    }

    async fn update_notifications(&self, updates: Vec<NotificationUpdate>) -> StoreResult<u64> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let mut seq = lock_clock(&tx).await.map_err(pg_err)?;
        let mut n = 0;
        for u in updates {
            seq += 1;
            let values: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                [&u.id, &u.subject, &u.content, &u.sender_id, &seq];
            let mut changed = tx
                .execute(
                    "UPDATE notification SET subject = coalesce($2, subject), \
                     content = coalesce($3, content), sender_id = coalesce($4, sender_id), \
                     change_seq = $5 WHERE id = $1",
                    &values,
                )
                .await
                .map_err(pg_err)?;
            if changed == 0 {
                if let Some((b, owner)) = resolve_copy(&tx, u.id, None).await.map_err(pg_err)? {
                    changed = update_copy(&tx, &mut seq, &self.node, b, owner, &u)
                        .await
                        .map_err(pg_err)?;
                }
            }
            n += changed;
        }
        set_clock(&tx, seq).await.map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(n)
    }

    async fn mark_notifications(
        &self,
        user_id: Uuid,
        ids: Option<Vec<Uuid>>,
        mark: InboxMark,
        now: i64,
    ) -> StoreResult<u64> {
        let (set, cond) = super::mark_sql(mark);
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let base = lock_clock(&tx).await.map_err(pg_err)?;
        // PostgreSQL refuses a parameter the statement does not use, so `now` is passed only
        // when the SET clause needs it, and the ids take the next number.
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&user_id, &base];
        let set = if set.contains("NOW") {
            params.push(&now);
            set.replace("NOW", "$3::bigint")
        } else {
            set.to_string()
        };
        let mut only = String::new();
        if let Some(ids) = &ids {
            only = format!(" AND id = ANY(${})", params.len() + 1);
            params.push(ids);
        }
        // One statement numbers the changed rows from the clock: base + 1, base + 2, …
        let sql = format!(
            "UPDATE notification SET {set}, change_seq = $2 + t.rn FROM \
             (SELECT id AS tid, row_number() OVER (ORDER BY create_time, id) AS rn \
              FROM notification WHERE user_id = $1 AND {cond}{only}) AS t \
             WHERE notification.id = t.tid"
        );
        let n = tx.execute(&sql, &params).await.map_err(pg_err)?;
        // Then the broadcasts the user sees: their own state rows, numbered after those.
        let next = base + n as i64;
        let (read, seen) = broadcast_mark_values(mark);
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            vec![&user_id, &next, &now];
        let mut only = String::new();
        let mut broadcasts: Vec<Uuid> = Vec::new();
        if let Some(ids) = &ids {
            for id in ids {
                if let Some((b, _)) = resolve_copy(&tx, *id, Some(user_id))
                    .await
                    .map_err(pg_err)?
                {
                    broadcasts.push(b);
                }
            }
            only = " AND bx.id = ANY($4)".into();
            params.push(&broadcasts);
        }
        let sql = format!(
            "INSERT INTO notification_broadcast_state \
             (user_id, broadcast_id, read_time, seen_time, hidden, change_seq) \
             SELECT $1::uuid, bx.id, {}, {}, 0, $2 + row_number() OVER (ORDER BY bx.create_time) \
             FROM ({}) bx WHERE bx.gone = 0 AND {cond}{only} \
             ON CONFLICT (user_id, broadcast_id) DO UPDATE SET read_time = excluded.read_time, \
             seen_time = excluded.seen_time, change_seq = excluded.change_seq",
            read.replace("NOW", "$3::bigint"),
            seen.replace("NOW", "$3::bigint"),
            broadcasts_of(1, 3)
        );
        let b = tx.execute(&sql, &params).await.map_err(pg_err)?;
        if n + b > 0 {
            set_clock(&tx, next + b as i64).await.map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(n + b)
    }

    async fn purge_candidates(
        &self,
        now: i64,
        created_before: Option<i64>,
        max_per_user: Option<usize>,
        limit: usize,
    ) -> StoreResult<Vec<Uuid>> {
        let c = self.client().await?;
        let limit = limit as i64;
        let cap = max_per_user.map(|n| n as i64);
        let rows = c
            .query(
                "(SELECT id FROM notification WHERE expire_time <= $1 LIMIT $4) \
                 UNION (SELECT id FROM notification WHERE create_time < $2 LIMIT $4) \
                 UNION (SELECT id FROM (SELECT id, row_number() OVER \
                   (PARTITION BY user_id ORDER BY create_time DESC, id DESC) AS rn \
                   FROM notification WHERE $3::bigint IS NOT NULL) ranked \
                   WHERE rn > $3 LIMIT $4) \
                 UNION (SELECT id FROM notification_broadcast \
                   WHERE expire_time <= $1 OR create_time < $2 LIMIT $4) \
                 LIMIT $4",
                &[&now, &created_before, &cap, &limit],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn inbox_counts(&self, user_id: Uuid) -> StoreResult<InboxCounts> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT code, count(*) FROM notification \
                     WHERE user_id = $1 AND read_time IS NULL AND {} GROUP BY code",
                    live_sql("$2")
                ),
                &[&user_id, &now_micros()],
            )
            .await
            .map_err(pg_err)?;
        let mut counts = InboxCounts::default();
        for row in rows {
            let (code, n): (i16, i64) = (row.get(0), row.get(1));
            counts.unread += n;
            counts.unread_by_code.insert(i32::from(code), n);
        }
        counts.unseen = c
            .query_one(
                &format!(
                    "SELECT count(*) FROM notification \
                     WHERE user_id = $1 AND seen_time IS NULL AND {}",
                    live_sql("$2")
                ),
                &[&user_id, &now_micros()],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        // The broadcasts the user sees and has not read (seen).
        let bx = broadcasts_of(1, 2);
        let rows = c
            .query(
                &format!(
                    "SELECT code, count(*) FROM ({bx}) bx \
                     WHERE gone = 0 AND read_time IS NULL GROUP BY code"
                ),
                &[&user_id, &now_micros()],
            )
            .await
            .map_err(pg_err)?;
        for row in rows {
            let (code, n): (i16, i64) = (row.get(0), row.get(1));
            counts.unread += n;
            *counts.unread_by_code.entry(i32::from(code)).or_default() += n;
        }
        let unseen: i64 = c
            .query_one(
                &format!("SELECT count(*) FROM ({bx}) bx WHERE gone = 0 AND seen_time IS NULL"),
                &[&user_id, &now_micros()],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        counts.unseen += unseen;
        Ok(counts)
    }

    async fn list_inbox(
        &self,
        user_id: Uuid,
        filter: InboxFilter,
        after: Option<(i64, Uuid)>,
        limit: usize,
    ) -> StoreResult<Vec<InboxItem>> {
        let c = self.client().await?;
        let (after_time, after_id) = after.unwrap_or((i64::MIN, Uuid::nil()));
        let sql = format!(
            "SELECT {INBOX_COLS}, 0 AS copy FROM notification \
             WHERE user_id = $1 AND (create_time, id) > ($2, $3) AND {filter} AND {} \
             UNION ALL SELECT {BROADCAST_INBOX_COLS}, 1 FROM ({}) bx \
             WHERE gone = 0 AND create_time > $2 AND {filter} \
             ORDER BY create_time, id LIMIT $4",
            live_sql("$8"),
            broadcasts_of(1, 8),
            filter = super::inbox_filter_sql(|n, t| format!("${n}::{t}"), 5),
        );
        let rows = c
            .query(
                &sql,
                &[
                    &user_id,
                    &after_time,
                    &after_id,
                    &(limit as i64),
                    &filter.read,
                    &filter.seen,
                    &filter.code,
                    &now_micros(),
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| {
                let mut item = inbox_item_from(r);
                item.notification = as_copy(item.notification, user_id, r.get::<_, i32>(11) == 1);
                item
            })
            .collect())
    }

    async fn purge_notifications(&self, ids: Vec<Uuid>, now: i64) -> StoreResult<u64> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let base = lock_clock(&tx).await.map_err(pg_err)?;
        let gone = tx
            .query(
                "DELETE FROM notification WHERE id = ANY($1) RETURNING user_id, expire_time",
                &[&ids],
            )
            .await
            .map_err(pg_err)?;
        // Broadcasts among them: every user who saw one may hold it (the nil user's floor).
        let broadcasts = tx
            .query(
                "DELETE FROM notification_broadcast WHERE id = ANY($1) RETURNING id, expire_time",
                &[&ids],
            )
            .await
            .map_err(pg_err)?;
        if !broadcasts.is_empty() {
            let gone_ids: Vec<Uuid> = broadcasts.iter().map(|r| r.get(0)).collect();
            tx.execute(
                "DELETE FROM notification_broadcast_state WHERE broadcast_id = ANY($1)",
                &[&gone_ids],
            )
            .await
            .map_err(pg_err)?;
        }
        let mut lost: Vec<Uuid> = gone
            .iter()
            .filter(|r| r.get::<_, Option<i64>>(1).is_none_or(|t| t > now))
            .map(|r| r.get(0))
            .chain(
                broadcasts
                    .iter()
                    .filter(|r| r.get::<_, Option<i64>>(1).is_none_or(|t| t > now))
                    .map(|_| Uuid::nil()),
            )
            .collect();
        lost.sort_unstable();
        lost.dedup();
        if !lost.is_empty() {
            let floor = base + 1;
            raise_floors(&tx, &lost, &vec![floor; lost.len()])
                .await
                .map_err(pg_err)?;
            set_clock(&tx, floor).await.map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok((gone.len() + broadcasts.len()) as u64)
    }

    async fn insert_broadcast(&self, mut row: Notification) -> StoreResult<Notification> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        row.create_time = tx
            .query_one(
                "UPDATE notification_clock SET last = GREATEST(last + 1, $1) RETURNING last",
                &[&now_micros()],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        row.user_id = Uuid::nil();
        // The key (the id's first 8 bytes) names the broadcast in its copies' ids.
        for _ in 0..8 {
            let taken = tx
                .query_opt(
                    "SELECT 1 FROM notification_broadcast WHERE key = $1",
                    &[&&row.id.as_bytes()[..8]],
                )
                .await
                .map_err(pg_err)?;
            if taken.is_none() {
                break;
            }
            row.id = Uuid::now_v7();
        }
        tx.execute(
            "INSERT INTO notification_broadcast (create_time, id, key, subject, content, code, \
             sender_id, expire_time, origin) VALUES ($1, $2, $9, $3, $4, $5, $6, $7, $8)",
            &[
                &row.create_time,
                &row.id,
                &row.subject,
                &row.content,
                &(row.code as i16),
                &row.sender_id.unwrap_or_default(),
                &row.expire_time,
                &self.node,
                &&row.id.as_bytes()[..8],
            ],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(row)
    }

    async fn prune_tombstones(&self, before: i64, limit: usize) -> StoreResult<u64> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let gone = tx
            .query(
                "DELETE FROM notification_tombstone WHERE (user_id, seq, id) IN \
                 (SELECT user_id, seq, id FROM notification_tombstone WHERE seq < $1 \
                  ORDER BY seq LIMIT $2) RETURNING user_id, seq",
                &[&before, &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        let users: Vec<Uuid> = gone.iter().map(|r| r.get(0)).collect();
        let seqs: Vec<i64> = gone.iter().map(|r| r.get(1)).collect();
        if !users.is_empty() {
            raise_floors(&tx, &users, &seqs).await.map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(users.len() as u64)
    }

    async fn inbox_changes(
        &self,
        user_id: Uuid,
        since: i64,
        limit: usize,
    ) -> StoreResult<InboxChanges> {
        let mut c = self.client().await?;
        // One snapshot for the three ranges, the floor and the clock: a sequence at or below
        // the clock it reads belongs to a committed transaction it sees.
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_err)?;
        let limit = limit as i64;
        let now = now_micros();
        let range = |column: &str| changes_range_sql("notification", column, |n| format!("${n}"));
        let values: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&user_id, &since, &limit, &now];
        let created = tx
            .query(&range("create_time"), &values)
            .await
            .map_err(pg_err)?;
        let changed = tx
            .query(&range("change_seq"), &values)
            .await
            .map_err(pg_err)?;
        let deleted = tx
            .query(
                "SELECT seq, id FROM notification_tombstone WHERE user_id = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3",
                &[&user_id, &since, &limit],
            )
            .await
            .map_err(pg_err)?;
        let broadcasts = tx
            .query(
                &format!(
                    "SELECT {BROADCAST_INBOX_COLS}, gone FROM ({}) bx WHERE seq > $2 \
                     ORDER BY seq LIMIT $3",
                    broadcasts_of(1, 4)
                ),
                &[&user_id, &since, &limit, &now],
            )
            .await
            .map_err(pg_err)?;
        // The user's own floor, or the one every user shares (a purged broadcast's).
        let floor: Option<i64> = tx
            .query_one(
                "SELECT max(seq) FROM inbox_sync_floor WHERE user_id IN ($1, $2)",
                &[&user_id, &Uuid::nil()],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        let high_water: i64 = tx
            .query_one("SELECT last FROM notification_clock", &[])
            .await
            .map_err(pg_err)?
            .get(0);
        tx.commit().await.map_err(pg_err)?;
        Ok(InboxChanges {
            created: created.iter().map(inbox_item_from).collect(),
            changed: changed.iter().map(inbox_item_from).collect(),
            deleted: deleted.iter().map(|r| (r.get(0), r.get(1))).collect(),
            broadcasts: broadcasts
                .iter()
                .map(|r| {
                    let mut item = inbox_item_from(r);
                    item.notification = as_copy(item.notification, user_id, true);
                    (item, r.get::<_, i32>(11) == 1)
                })
                .collect(),
            floor,
            high_water,
        })
    }

    async fn friends_add(
        &self,
        user: Uuid,
        targets: Vec<Uuid>,
        metadata: String,
        now: i64,
    ) -> StoreResult<Vec<(Uuid, FriendChange)>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let seconds = now / 1_000_000;
        let position = now.saturating_mul(1000);
        let mut out = Vec::with_capacity(targets.len());
        for other in targets {
            // Lock both users' edges in a fixed order so two nodes adding each other serialise.
            tx.execute(
                "SELECT 1 FROM users WHERE id IN ($1, $2) ORDER BY id FOR UPDATE",
                &[&user, &other],
            )
            .await
            .map_err(pg_err)?;
            let blocked: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM user_edge WHERE source_id = $1 AND destination_id = $2 AND state = 3)",
                    &[&user, &other],
                )
                .await
                .map_err(pg_err)?
                .get(0);
            if blocked {
                out.push((other, FriendChange::Nothing));
                continue;
            }
            let accepted = tx
                .execute(
                    "UPDATE user_edge SET state = 0, update_time = $3, \
                     metadata = CASE WHEN source_id = $1 THEN (metadata::jsonb || $4::text::jsonb)::text ELSE metadata END \
                     WHERE (source_id = $2 AND destination_id = $1 AND state = 1) \
                     OR (source_id = $1 AND destination_id = $2 AND state = 2)",
                    &[&user, &other, &seconds, &metadata],
                )
                .await
                .map_err(pg_err)?;
            if accepted == 2 {
                out.push((other, FriendChange::Accepted));
                continue;
            }
            let invited = tx
                .execute(
                    "INSERT INTO user_edge (source_id, destination_id, state, position, update_time, metadata) \
                     SELECT $1, $2, 1, $3, $4, $5 \
                     WHERE EXISTS (SELECT 1 FROM users WHERE id = $2) \
                     AND NOT EXISTS (SELECT 1 FROM user_edge WHERE source_id = $2 AND destination_id = $1 AND state = 3) \
                     ON CONFLICT (source_id, destination_id) DO NOTHING",
                    &[&user, &other, &position, &seconds, &metadata],
                )
                .await
                .map_err(pg_err)?;
            if invited == 0 {
                out.push((other, FriendChange::Nothing));
                continue;
            }
            tx.execute(
                "INSERT INTO user_edge (source_id, destination_id, state, position, update_time) \
                 VALUES ($2, $1, 2, $3, $4) ON CONFLICT (source_id, destination_id) DO NOTHING",
                &[&user, &other, &position, &seconds],
            )
            .await
            .map_err(pg_err)?;
            out.push((other, FriendChange::Invited));
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(out)
    }

    async fn friends_delete(
        &self,
        user: Uuid,
        targets: Vec<Uuid>,
    ) -> StoreResult<Vec<(Uuid, FriendChange)>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let mut out = Vec::with_capacity(targets.len());
        for other in targets {
            let gone = tx
                .execute(
                    "DELETE FROM user_edge WHERE (source_id = $1 AND destination_id = $2) \
                     OR (source_id = $2 AND destination_id = $1 AND state <> 3)",
                    &[&user, &other],
                )
                .await
                .map_err(pg_err)?;
            let change = if gone == 2 {
                FriendChange::Removed
            } else {
                FriendChange::Nothing
            };
            out.push((other, change));
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(out)
    }

    async fn friends_block(&self, user: Uuid, targets: Vec<Uuid>, now: i64) -> StoreResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let seconds = now / 1_000_000;
        let position = now.saturating_mul(1000);
        for other in targets {
            let updated = tx
                .execute(
                    "UPDATE user_edge SET state = 3, update_time = $3 \
                     WHERE source_id = $1 AND destination_id = $2",
                    &[&user, &other, &seconds],
                )
                .await
                .map_err(pg_err)?;
            if updated == 0 {
                let inserted = tx
                    .execute(
                        "INSERT INTO user_edge (source_id, destination_id, state, position, update_time) \
                         SELECT $1, $2, 3, $3, $4 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2) \
                         ON CONFLICT (source_id, destination_id) DO NOTHING",
                        &[&user, &other, &position, &seconds],
                    )
                    .await
                    .map_err(pg_err)?;
                if inserted == 0 {
                    continue;
                }
            }
            tx.execute(
                "DELETE FROM user_edge WHERE source_id = $2 AND destination_id = $1 AND state <> 3",
                &[&user, &other],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)
    }

    async fn friends_list(
        &self,
        user: Uuid,
        state: Option<i32>,
        from: Option<FriendPosition>,
        limit: usize,
    ) -> StoreResult<Vec<FriendEdge>> {
        let c = self.client().await?;
        let (from_state, from_position, from_other) = match from {
            Some(p) => (p.state as i16, p.position, p.other),
            None => (i16::MIN, i64::MIN, Uuid::nil()),
        };
        let sql = format!(
            "SELECT {FRIEND_USER_COLS}, e.state, e.position, e.update_time, e.metadata \
             FROM user_edge e JOIN users u ON u.id = e.destination_id \
             WHERE e.source_id = $1 AND ($2::smallint < 0 OR e.state = $2::smallint) \
             AND (e.state, e.position, e.destination_id) >= ($3, $4, $5) \
             ORDER BY e.state, e.position, e.destination_id LIMIT $6"
        );
        let rows = c
            .query(
                &sql,
                &[
                    &user,
                    &state_param(state),
                    &from_state,
                    &from_position,
                    &from_other,
                    &(limit as i64),
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| FriendEdge {
                user: user_from(r),
                state: i32::from(r.get::<_, i16>(U)),
                position: r.get(U + 1),
                update_time: r.get(U + 2),
                metadata: r.get(U + 3),
            })
            .collect())
    }

    async fn create_group(&self, group: GroupRecord, owner: Uuid, now: i64) -> StoreResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        tx.execute(
            "INSERT INTO groups (id, creator_id, name, description, avatar_url, lang_tag, metadata, \
             open, edge_count, max_count, position, create_time, update_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $11, $11)",
            &[
                &group.id,
                &group.creator_id,
                &group.name,
                &group.description,
                &group.avatar_url,
                &group.lang_tag,
                &group.metadata,
                &group.open,
                &group.max_count,
                &now,
                &group.create_time,
            ],
        )
        .await
        .map_err(pg_err)?;
        tx.execute(
            "INSERT INTO group_edge (group_id, user_id, state, position) VALUES ($1, $2, 0, $3)",
            &[&group.id, &owner, &now],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)
    }

    async fn group_edge_state(&self, group: Uuid, user: Uuid) -> StoreResult<Option<i32>> {
        let c = self.client().await?;
        edge_state(&c, group, user).await.map_err(pg_err)
    }

    async fn update_group(&self, group: Uuid, u: GroupUpdate, now: i64) -> StoreResult<bool> {
        let c = self.client().await?;
        let changed = c
            .execute(
                "UPDATE groups SET name = coalesce($2, name), description = coalesce($3, description), \
                 lang_tag = coalesce($4, lang_tag), avatar_url = coalesce($5, avatar_url), \
                 open = coalesce($6, open), metadata = coalesce($7, metadata), \
                 max_count = GREATEST(coalesce($8, max_count), edge_count), update_time = $9 WHERE id = $1",
                &[
                    &group,
                    &u.name,
                    &u.description,
                    &u.lang_tag,
                    &u.avatar_url,
                    &u.open,
                    &u.metadata,
                    &u.max_count,
                    &(now / 1_000_000),
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(changed > 0)
    }

    async fn delete_group(&self, group: Uuid) -> StoreResult<()> {
        let c = self.client().await?;
        c.execute("DELETE FROM groups WHERE id = $1", &[&group])
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    async fn join_group(&self, group: Uuid, user: Uuid, now: i64) -> StoreResult<GroupJoin> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let Some(g) = group_for_update(&tx, group).await.map_err(pg_err)? else {
            return Ok(GroupJoin::NotFound);
        };
        if g.edge_count >= g.max_count {
            return Ok(GroupJoin::Full);
        }
        if edge_state(&tx, group, user)
            .await
            .map_err(pg_err)?
            .is_some()
        {
            return Ok(GroupJoin::Nothing);
        }
        let outcome = if g.open {
            if !set_edge(&tx, group, user, None, Some(groups::MEMBER), now)
                .await
                .map_err(pg_err)?
            {
                return Ok(GroupJoin::Full);
            }
            GroupJoin::Joined
        } else {
            set_edge(&tx, group, user, None, Some(groups::JOIN_REQUEST), now)
                .await
                .map_err(pg_err)?;
            let admins = tx
                .query(
                    "SELECT user_id FROM group_edge WHERE group_id = $1 AND state <= 1 ORDER BY state, position",
                    &[&group],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            GroupJoin::Requested { admins }
        };
        tx.commit().await.map_err(pg_err)?;
        Ok(outcome)
    }

    async fn leave_group(&self, group: Uuid, user: Uuid) -> StoreResult<GroupLeave> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let Some(_) = group_for_update(&tx, group).await.map_err(pg_err)? else {
            return Ok(GroupLeave::Done);
        };
        let state = edge_state(&tx, group, user).await.map_err(pg_err)?;
        match state {
            None | Some(groups::BANNED) => return Ok(GroupLeave::Done),
            Some(groups::SUPERADMIN) => {
                let row = tx
                    .query_one(
                        "SELECT count(*) FILTER (WHERE state = 0), count(*) FILTER (WHERE state <= 2) \
                         FROM group_edge WHERE group_id = $1 AND user_id <> $2",
                        &[&group, &user],
                    )
                    .await
                    .map_err(pg_err)?;
                let (superadmins, members): (i64, i64) = (row.get(0), row.get(1));
                if superadmins > 0 {
                    set_edge(&tx, group, user, state, None, 0)
                        .await
                        .map_err(pg_err)?;
                } else if members == 0 {
                    tx.execute("DELETE FROM groups WHERE id = $1", &[&group])
                        .await
                        .map_err(pg_err)?;
                } else {
                    return Ok(GroupLeave::LastSuperadmin);
                }
            }
            Some(_) => {
                set_edge(&tx, group, user, state, None, 0)
                    .await
                    .map_err(pg_err)?;
            }
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(GroupLeave::Done)
    }

    async fn group_members(
        &self,
        group: Uuid,
        caller: Option<Uuid>,
        op: MemberOp,
        targets: Vec<Uuid>,
        now: i64,
    ) -> StoreResult<GroupMembers> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let Some(_) = group_for_update(&tx, group).await.map_err(pg_err)? else {
            return Ok(match caller {
                Some(_) => GroupMembers::Denied,
                None => GroupMembers::NotFound,
            });
        };
        let caller_state = match caller {
            None => None,
            Some(u) => match edge_state(&tx, group, u).await.map_err(pg_err)? {
                Some(s) if s <= groups::ADMIN => Some(s),
                _ => return Ok(GroupMembers::Denied),
            },
        };
        let mut added = Vec::new();
        for target in targets {
            if op == MemberOp::Add {
                let exists: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)",
                        &[&target],
                    )
                    .await
                    .map_err(pg_err)?
                    .get(0);
                if !exists {
                    return Ok(GroupMembers::UnknownUser); // dropping tx rolls back
                }
            }
            let before = edge_state(&tx, group, target).await.map_err(pg_err)?;
            let other_superadmins: i64 = tx
                .query_one(
                    "SELECT count(*) FROM group_edge WHERE group_id = $1 AND state = 0 AND user_id <> $2",
                    &[&group, &target],
                )
                .await
                .map_err(pg_err)?
                .get(0);
            let after =
                match groups::transition(op, caller_state, before, other_superadmins as usize) {
                    Transition::Skip => continue,
                    Transition::Set(s) => Some(s),
                    Transition::Remove => None,
                };
            if !set_edge(&tx, group, target, before, after, now)
                .await
                .map_err(pg_err)?
            {
                return Ok(GroupMembers::Full);
            }
            if op == MemberOp::Add {
                added.push(target);
            }
        }
        let g = group_for_update(&tx, group)
            .await
            .map_err(pg_err)?
            .ok_or_else(|| StoreError::Internal("group vanished".into()))?;
        tx.commit().await.map_err(pg_err)?;
        Ok(GroupMembers::Done {
            group: Box::new(g),
            added,
        })
    }

    async fn list_groups(
        &self,
        filter: GroupFilter,
        after: Option<(i64, i64)>,
        limit: usize,
    ) -> StoreResult<Vec<(GroupRecord, i64)>> {
        let c = self.client().await?;
        let sql = format!(
            "SELECT {GROUP_COLS} FROM groups g WHERE g.position >= $1 \
             AND ($2::text IS NULL OR g.name ILIKE $2) AND ($3::text IS NULL OR g.lang_tag = $3) \
             AND ($4::bool IS NULL OR g.open = $4) AND ($5::bigint IS NULL OR g.edge_count <= $5) \
             ORDER BY g.position, g.id LIMIT $6"
        );
        let rows = c
            .query(
                &sql,
                &[
                    &after.map_or(i64::MIN, |a| a.1),
                    &filter.name,
                    &filter.lang_tag,
                    &filter.open,
                    &filter.members,
                    &(limit as i64),
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows.iter().map(|r| (group_from(r), r.get(12))).collect())
    }

    async fn list_group_users(
        &self,
        group: Uuid,
        state: Option<i32>,
        after: Option<(i64, i64)>,
        limit: usize,
    ) -> StoreResult<Vec<(UserRecord, i32, i64)>> {
        let c = self.client().await?;
        let (from_state, from_position) = after.unwrap_or((i64::MIN, i64::MIN));
        let sql = format!(
            "SELECT {USER_COLS}, e.state, e.position FROM group_edge e JOIN users u ON u.id = e.user_id \
             WHERE e.group_id = $1 AND (CASE WHEN $2::smallint < 0 THEN e.state < 4 ELSE e.state = $2::smallint END) \
             AND (e.state::bigint, e.position) >= ($3, $4) ORDER BY e.state, e.position, e.user_id LIMIT $5"
        );
        let rows = c
            .query(
                &sql,
                &[
                    &group,
                    &state_param(state),
                    &from_state,
                    &from_position,
                    &(limit as i64),
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| (user_from(r), i32::from(r.get::<_, i16>(U)), r.get(U + 1)))
            .collect())
    }

    async fn list_user_groups(
        &self,
        user: Uuid,
        state: Option<i32>,
        after: Option<(i64, i64)>,
        limit: usize,
    ) -> StoreResult<Vec<(GroupRecord, i32, i64)>> {
        let c = self.client().await?;
        let (from_state, from_position) = after.unwrap_or((i64::MIN, i64::MIN));
        let sql = format!(
            "SELECT {GROUP_COLS}, e.state, e.position FROM group_edge e JOIN groups g ON g.id = e.group_id \
             WHERE e.user_id = $1 AND e.state < 4 AND ($2::smallint < 0 OR e.state = $2::smallint) \
             AND (e.state::bigint, e.position) >= ($3, $4) ORDER BY e.state, e.position, e.group_id LIMIT $5"
        );
        let rows = c
            .query(
                &sql,
                &[
                    &user,
                    &state_param(state),
                    &from_state,
                    &from_position,
                    &(limit as i64),
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| (group_from(r), i32::from(r.get::<_, i16>(13)), r.get(14)))
            .collect())
    }

    async fn import_social_friends(
        &self,
        user: Uuid,
        provider: String,
        social_id: String,
        friend_ids: Vec<String>,
        now: i64,
    ) -> StoreResult<Vec<Uuid>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let owner: Option<Uuid> = tx
            .query_opt(
                "SELECT user_id FROM user_social WHERE provider = $1 AND social_id = $2",
                &[&provider, &social_id],
            )
            .await
            .map_err(pg_err)?
            .map(|r| r.get(0));
        match owner {
            Some(owner) if owner != user => return Err(StoreError::Conflict("social id")),
            Some(_) => {}
            None => {
                tx.execute(
                    "INSERT INTO user_social (provider, social_id, user_id) VALUES ($1, $2, $3) \
                     ON CONFLICT (user_id, provider) DO UPDATE SET social_id = excluded.social_id",
                    &[&provider, &social_id, &user],
                )
                .await
                .map_err(pg_err)?;
            }
        }
        let seconds = now / 1_000_000;
        let position = now.saturating_mul(1000);
        let mut linked = Vec::new();
        for friend_social in friend_ids {
            let friend: Option<Uuid> = tx
                .query_opt(
                    "SELECT user_id FROM user_social WHERE provider = $1 AND social_id = $2",
                    &[&provider, &friend_social],
                )
                .await
                .map_err(pg_err)?
                .map(|r| r.get(0));
            let Some(friend) = friend.filter(|f| *f != user) else {
                continue;
            };
            let related: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM user_edge WHERE (source_id = $1 AND destination_id = $2) \
                     OR (source_id = $2 AND destination_id = $1))",
                    &[&user, &friend],
                )
                .await
                .map_err(pg_err)?
                .get(0);
            if related {
                continue;
            }
            for (a, b) in [(user, friend), (friend, user)] {
                tx.execute(
                    "INSERT INTO user_edge (source_id, destination_id, state, position, update_time) \
                     VALUES ($1, $2, 0, $3, $4)",
                    &[&a, &b, &position, &seconds],
                )
                .await
                .map_err(pg_err)?;
            }
            linked.push(friend);
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(linked)
    }

    async fn user_exists_unblocked(&self, user: Uuid, by: Uuid) -> StoreResult<bool> {
        let c = self.client().await?;
        Ok(c.query_one(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1) AND NOT EXISTS \
             (SELECT 1 FROM user_edge WHERE source_id = $1 AND destination_id = $2 AND state = 3)",
            &[&user, &by],
        )
        .await
        .map_err(pg_err)?
        .get(0))
    }

    async fn insert_message(
        &self,
        stream: ChannelStream,
        message: StoredMessage,
    ) -> StoreResult<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO message (stream_mode, stream_subject, stream_descriptor, stream_label, \
             create_time, id, code, sender_id, username, content, update_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &(stream.mode as i16),
                &stream.subject,
                &stream.descriptor,
                &stream.label,
                &message.create_time,
                &message.id,
                &(message.code as i16),
                &message.sender_id,
                &message.username,
                &message.content,
                &message.update_time,
            ],
        )
        .await
        .map_err(pg_err)?;
        Ok(())
    }

    async fn list_messages(
        &self,
        stream: ChannelStream,
        after: Option<(i64, Uuid)>,
        ascending: bool,
        limit: usize,
    ) -> StoreResult<Vec<StoredMessage>> {
        let c = self.client().await?;
        let (cmp, order) = if ascending {
            (">", "ASC")
        } else {
            ("<", "DESC")
        };
        let position = if after.is_some() {
            format!("AND (create_time, id) {cmp} ($5, $6)")
        } else {
            "AND $5::bigint IS NULL AND $6::uuid IS NULL".to_string()
        };
        let sql = format!(
            "SELECT id, code, sender_id, username, content, create_time, update_time FROM message \
             WHERE stream_mode = $1 AND stream_subject = $2 AND stream_descriptor = $3 \
             AND stream_label = $4 {position} \
             ORDER BY create_time {order}, id {order} LIMIT $7"
        );
        let (time, id) = match after {
            Some((t, id)) => (Some(t), Some(id)),
            None => (None, None),
        };
        let rows = c
            .query(
                &sql,
                &[
                    &(stream.mode as i16),
                    &stream.subject,
                    &stream.descriptor,
                    &stream.label,
                    &time,
                    &id,
                    &(limit as i64),
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| StoredMessage {
                id: r.get(0),
                code: i32::from(r.get::<_, i16>(1)),
                sender_id: r.get(2),
                username: r.get(3),
                content: r.get(4),
                create_time: r.get(5),
                update_time: r.get(6),
            })
            .collect())
    }

    async fn cluster_high_water(&self) -> StoreResult<i64> {
        let c = self.client().await?;
        Ok(c.query_one("SELECT last FROM notification_clock", &[])
            .await
            .map_err(pg_err)?
            .get(0))
    }

    async fn notifications_from_others(
        &self,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<Notification>> {
        let c = self.client().await?;
        // Broadcasts come with a nil user: the catch-up pushes them to every socket.
        let sql = format!(
            "SELECT {NOTIFICATION_COLS} FROM notification WHERE create_time > $1 AND origin <> $2 \
             AND {live} UNION ALL SELECT id, '00000000-0000-0000-0000-000000000000'::uuid, \
             subject, content, code, sender_id, create_time, expire_time \
             FROM notification_broadcast WHERE create_time > $1 AND origin <> $2 \
             AND {live} ORDER BY create_time LIMIT $3",
            live = live_sql("$4")
        );
        let rows = c
            .query(&sql, &[&after, &self.node, &(limit as i64), &now_micros()])
            .await
            .map_err(pg_err)?;
        Ok(rows.iter().map(notification_from).collect())
    }

    async fn set_disable_time(&self, ids: Vec<Uuid>, at: i64) -> StoreResult<()> {
        let c = self.client().await?;
        c.execute(
            "UPDATE users SET disable_time = $2 WHERE id = ANY($1)",
            &[&ids, &at],
        )
        .await
        .map_err(pg_err)?;
        Ok(())
    }

    /// Nothing to tidy: every commit is durable and PostgreSQL manages its own files.
    async fn close(&self) -> StoreResult<()> {
        self.pool.close();
        Ok(())
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        let mut all = self.writer_metrics.collectors();
        all.push(Box::new(PoolCollector::new(self.pool.clone())));
        all
    }

    async fn ping(&self) -> StoreResult<()> {
        self.client()
            .await?
            .simple_query("SELECT 1")
            .await
            .map_err(pg_err)?;
        Ok(())
    }
}

/// The connection pool's state, read when Prometheus scrapes.
struct PoolCollector {
    pool: Pool,
    connections: prometheus::IntGaugeVec,
}

impl PoolCollector {
    fn new(pool: Pool) -> PoolCollector {
        let connections = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "postgres_pool_connections",
                "PostgreSQL pool: max (its size), open, idle (open and free) and waiting \
                 (callers queued for a connection).",
            ),
            &["state"],
        )
        .expect("static metric");
        PoolCollector { pool, connections }
    }
}

impl prometheus::core::Collector for PoolCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.connections.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let s = self.pool.status();
        for (state, value) in [
            ("max", s.max_size),
            ("open", s.size),
            ("idle", s.available),
            ("waiting", s.waiting),
        ] {
            self.connections
                .with_label_values(&[state])
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
        self.connections.collect()
    }
}
