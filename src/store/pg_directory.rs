//! The cluster directory on PostgreSQL (`core::cluster::Directory`): who is online on which
//! node, and who is in which chat channel, in `cluster_presence`; which nodes are alive, in
//! `cluster_node` (migration 003 says how the tables are shaped).
//!
//! A node never waits for its own presence writes: sockets and channel joins record their
//! changes on a queue, and one writer task applies them in order, batching whatever queued up
//! meanwhile into one DELETE and one INSERT. The writer keeps a mirror of this node's rows;
//! when a write fails (PostgreSQL unreachable) or other nodes reaped this one after a long
//! silence, it rewrites all of them from the mirror once the database answers again, so the
//! table converges on the truth instead of drifting.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::core::cluster::{Directory, NodeStatus, PresenceRow, PresenceUpdate};

/// How often a node says it is alive, and how long a silent node still counts.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    pub heartbeat: Duration,
    pub timeout: Duration,
}

/// At most this many queued updates go into one write.
const MAX_BATCH: usize = 10_000;

enum Msg {
    Update(PresenceUpdate),
    Close(oneshot::Sender<()>),
}

pub struct PgDirectory {
    pool: Pool,
    node: String,
    timeout_secs: f64,
    queue: mpsc::UnboundedSender<Msg>,
}

type Key = (String, Uuid);

fn key_of(row: &PresenceRow) -> Key {
    (row.stream.clone(), row.session_id)
}

impl PgDirectory {
    /// Registers this node (so it is alive from the start) and starts its writer.
    pub async fn start(
        pool: Pool,
        node: &str,
        name: &str,
        liveness: Liveness,
    ) -> Result<PgDirectory, String> {
        let mut writer = Writer {
            pool: pool.clone(),
            node: node.to_string(),
            name: name.to_string(),
            timeout_secs: liveness.timeout.as_secs_f64(),
            mirror: HashMap::new(),
            up: HashMap::new(),
            down: HashSet::new(),
            dirty: false,
        };
        writer.heartbeat().await?;
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer.run(rx, liveness.heartbeat));
        Ok(PgDirectory {
            pool,
            node: node.to_string(),
            timeout_secs: liveness.timeout.as_secs_f64(),
            queue,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, String> {
        self.pool.get().await.map_err(|e| e.to_string())
    }
}

/// Only rows of nodes that heartbeated within the timeout count.
const LIVE: &str = "JOIN cluster_node n ON n.node = p.node \
     AND n.heartbeat_at > now() - make_interval(secs => $3)";

#[async_trait]
impl Directory for PgDirectory {
    fn record(&self, update: PresenceUpdate) {
        // Fails only after close, when nothing is recorded any more.
        let _ = self.queue.send(Msg::Update(update));
    }

    async fn online_elsewhere(&self, users: &[Uuid]) -> Result<Vec<Uuid>, String> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT DISTINCT p.user_id FROM cluster_presence p {LIVE} \
                     WHERE p.stream = '' AND p.user_id = ANY($1) AND p.node <> $2"
                ),
                &[&users, &self.node, &self.timeout_secs],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn members_elsewhere(&self, stream: &str) -> Result<Vec<PresenceRow>, String> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT p.session_id, p.user_id, p.username, p.persistence, p.hidden \
                     FROM cluster_presence p {LIVE} \
                     WHERE p.stream = $1 AND p.node <> $2 ORDER BY p.session_id LIMIT 10000"
                ),
                &[&stream, &self.node, &self.timeout_secs],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .map(|r| PresenceRow {
                stream: stream.to_string(),
                session_id: r.get(0),
                user_id: r.get(1),
                username: r.get(2),
                persistence: r.get(3),
                hidden: r.get(4),
            })
            .collect())
    }

    async fn nodes(&self) -> Result<Vec<NodeStatus>, String> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT n.node, n.name, \
                 (extract(epoch FROM n.started_at) * 1000000)::bigint, \
                 (extract(epoch FROM n.heartbeat_at) * 1000000)::bigint, \
                 (SELECT count(*) FROM cluster_presence p WHERE p.node = n.node AND p.stream = '') \
                 FROM cluster_node n \
                 WHERE n.heartbeat_at > now() - make_interval(secs => $1) \
                 ORDER BY n.name, n.node",
                &[&self.timeout_secs],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .map(|r| NodeStatus {
                node: r.get(0),
                name: r.get(1),
                started_at: r.get(2),
                heartbeat_at: r.get(3),
                sessions: r.get(4),
            })
            .collect())
    }

    async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.queue.send(Msg::Close(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), closed).await;
        }
    }
}

/// The one task that writes this node's rows.
struct Writer {
    pool: Pool,
    node: String,
    name: String,
    timeout_secs: f64,
    /// This node's presences as they are now.
    mirror: HashMap<Key, PresenceRow>,
    /// Changes not yet written: rows to (re)insert, keys to delete first.
    up: HashMap<Key, PresenceRow>,
    down: HashSet<Key>,
    /// The table may disagree with the mirror: rewrite every row on the next write.
    dirty: bool,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let mut next = msg;
                    let mut taken = 0;
                    while let Some(msg) = next.take() {
                        match msg {
                            Msg::Update(u) => self.note(u),
                            Msg::Close(done) => {
                                self.leave().await;
                                let _ = done.send(());
                                return;
                            }
                        }
                        taken += 1;
                        if taken < MAX_BATCH {
                            next = rx.try_recv().ok();
                        }
                    }
                    if taken == 0 {
                        // Every sender is gone: the node is shutting down without close().
                        return;
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = self.heartbeat().await {
                        tracing::warn!(error = %e, "cluster heartbeat failed");
                    }
                }
            }
            self.flush().await;
        }
    }

    fn note(&mut self, update: PresenceUpdate) {
        match update {
            PresenceUpdate::Up(row) => {
                let key = key_of(&row);
                self.mirror.insert(key.clone(), row.clone());
                self.up.insert(key, row);
            }
            PresenceUpdate::Down { stream, session_id } => {
                let key = (stream, session_id);
                self.mirror.remove(&key);
                self.up.remove(&key);
                self.down.insert(key);
            }
        }
    }

    /// Says this node is alive and forgets nodes that stopped saying so. A node row that had
    /// to be inserted again (this node was reaped) means its presences are gone too.
    async fn heartbeat(&mut self) -> Result<(), String> {
        let client = self.pool.get().await.map_err(|e| e.to_string())?;
        let inserted: bool = client
            .query_one(
                "INSERT INTO cluster_node (node, name) VALUES ($1, $2) \
                 ON CONFLICT (node) DO UPDATE SET heartbeat_at = now() \
                 RETURNING (xmax = 0)",
                &[&self.node, &self.name],
            )
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        if inserted && !self.mirror.is_empty() {
            self.dirty = true;
        }
        client
            .execute(
                "DELETE FROM cluster_node \
                 WHERE heartbeat_at < now() - make_interval(secs => $1)",
                &[&self.timeout_secs],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Writes the pending changes (or everything, when dirty). On failure the mirror is
    /// rewritten on a later attempt.
    async fn flush(&mut self) {
        if !self.dirty && self.up.is_empty() && self.down.is_empty() {
            return;
        }
        let (deletes, inserts, all) = if self.dirty {
            (Vec::new(), self.mirror.values().cloned().collect(), true)
        } else {
            (
                self.down.drain().collect::<Vec<_>>(),
                self.up.drain().map(|(_, r)| r).collect::<Vec<_>>(),
                false,
            )
        };
        self.up.clear();
        self.down.clear();
        match self.write(&deletes, &inserts, all).await {
            Ok(()) => self.dirty = false,
            Err(e) => {
                tracing::warn!(error = %e, "could not record presences; will rewrite them");
                self.dirty = true;
            }
        }
    }

    async fn write(
        &self,
        deletes: &[Key],
        inserts: &[PresenceRow],
        all: bool,
    ) -> Result<(), String> {
        let mut client = self.pool.get().await.map_err(|e| e.to_string())?;
        let tx = client.transaction().await.map_err(|e| e.to_string())?;
        if all {
            tx.execute(
                "DELETE FROM cluster_presence WHERE node = $1",
                &[&self.node],
            )
            .await
            .map_err(|e| e.to_string())?;
        } else if !deletes.is_empty() {
            let streams: Vec<&str> = deletes.iter().map(|k| k.0.as_str()).collect();
            let sessions: Vec<Uuid> = deletes.iter().map(|k| k.1).collect();
            tx.execute(
                "DELETE FROM cluster_presence p USING unnest($2::text[], $3::uuid[]) AS d(s, i) \
                 WHERE p.node = $1 AND p.stream = d.s AND p.session_id = d.i",
                &[&self.node, &streams, &sessions],
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        if !inserts.is_empty() {
            let streams: Vec<&str> = inserts.iter().map(|r| r.stream.as_str()).collect();
            let sessions: Vec<Uuid> = inserts.iter().map(|r| r.session_id).collect();
            let users: Vec<Uuid> = inserts.iter().map(|r| r.user_id).collect();
            let names: Vec<&str> = inserts.iter().map(|r| r.username.as_str()).collect();
            let persistence: Vec<bool> = inserts.iter().map(|r| r.persistence).collect();
            let hidden: Vec<bool> = inserts.iter().map(|r| r.hidden).collect();
            tx.execute(
                "INSERT INTO cluster_presence \
                 (stream, session_id, node, user_id, username, persistence, hidden) \
                 SELECT s, i, $1, u, n, p, h FROM unnest($2::text[], $3::uuid[], $4::uuid[], \
                 $5::text[], $6::bool[], $7::bool[]) AS x(s, i, u, n, p, h) \
                 ON CONFLICT (stream, session_id) DO UPDATE SET node = excluded.node, \
                 user_id = excluded.user_id, username = excluded.username, \
                 persistence = excluded.persistence, hidden = excluded.hidden",
                &[
                    &self.node,
                    &streams,
                    &sessions,
                    &users,
                    &names,
                    &persistence,
                    &hidden,
                ],
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        tx.commit().await.map_err(|e| e.to_string())
    }

    /// Clean shutdown: the node and (by cascade) its presences go at once.
    async fn leave(&self) {
        let result = match self.pool.get().await {
            Ok(client) => client
                .execute("DELETE FROM cluster_node WHERE node = $1", &[&self.node])
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not remove this node from the cluster directory");
        }
    }
}
