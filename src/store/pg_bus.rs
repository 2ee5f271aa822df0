//! The cluster bus on PostgreSQL: `NOTIFY tidings_<schema>` after a commit, `LISTEN` on one
//! dedicated connection per node (`core::cluster` says what travels and why). A payload
//! names its node, so a node ignores its own; one too large for a NOTIFY (PostgreSQL's limit
//! is 8000 bytes) goes into `bus_outbox` and the NOTIFY carries only its id. When the
//! listening connection drops, the node reconnects with a back-off and catches up from the
//! notification table, so nothing stored is missed and nothing is pushed twice (the catch-up
//! reads strictly after the last create_time this node pushed).

use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::core::cluster::{Bus, ClusterEvent};
use crate::core::time::now_micros;
use crate::core::Core;

/// Payloads above this go through the outbox table.
const MAX_INLINE: usize = 7000;
/// How long an outbox row is kept for slow listeners.
const OUTBOX_KEEP_MICROS: i64 = 60_000_000;
/// Wait before reconnecting the listener after it lost its connection.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

#[derive(Serialize, Deserialize)]
struct Envelope {
    node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<ClusterEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outbox: Option<i64>,
}

pub struct PgBus {
    pool: Pool,
    url: String,
    node: String,
    /// `tidings_<schema>`: nodes share a channel exactly when they share the tables, so two
    /// clusters in two schemas of one database do not wake each other.
    channel: String,
}

impl PgBus {
    pub async fn new(pool: Pool, url: &str, node: &str) -> Result<PgBus, String> {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        let schema: String = client
            .query_one("SELECT current_schema()", &[])
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        let channel = format!(
            "tidings_{}",
            schema
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                })
                .collect::<String>()
        );
        Ok(PgBus {
            pool: pool.clone(),
            url: url.to_string(),
            node: node.to_string(),
            channel,
        })
    }

    async fn send(&self, event: ClusterEvent) -> Result<(), String> {
        let client = self.pool.get().await.map_err(|e| e.to_string())?;
        let inline = serde_json::to_string(&Envelope {
            node: self.node.clone(),
            event: Some(event.clone()),
            outbox: None,
        })
        .map_err(|e| e.to_string())?;
        let payload = if inline.len() <= MAX_INLINE {
            inline
        } else {
            let body = serde_json::to_string(&event).map_err(|e| e.to_string())?;
            let now = now_micros();
            let id: i64 = client
                .query_one(
                    "INSERT INTO bus_outbox (payload, created) VALUES ($1, $2) RETURNING id",
                    &[&body, &now],
                )
                .await
                .map_err(|e| e.to_string())?
                .get(0);
            client
                .execute(
                    "DELETE FROM bus_outbox WHERE created < $1",
                    &[&(now - OUTBOX_KEEP_MICROS)],
                )
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_string(&Envelope {
                node: self.node.clone(),
                event: None,
                outbox: Some(id),
            })
            .map_err(|e| e.to_string())?
        };
        client
            .execute("SELECT pg_notify($1, $2)", &[&self.channel, &payload])
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Listens until `core` is gone: applies other nodes' events, reconnecting (and catching
    /// up) whenever the connection drops. Returns once the first LISTEN is in place (or
    /// failed; the task keeps retrying), so a node serves only after it hears the others.
    pub async fn listen(self: Arc<Self>, core: Weak<Core>) {
        let (ready, listening) = tokio::sync::oneshot::channel();
        let mut ready = Some(ready);
        tokio::spawn(async move {
            loop {
                if core.upgrade().is_none() {
                    return;
                }
                if let Err(e) = self.listen_once(&core, &mut ready).await {
                    tracing::warn!(error = %e, "cluster listener lost its connection; reconnecting");
                }
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                tokio::time::sleep(RECONNECT_AFTER).await;
            }
        });
        let _ = listening.await;
    }

    async fn listen_once(
        &self,
        core: &Weak<Core>,
        ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<(), String> {
        let config = tokio_postgres::Config::from_str(&self.url).map_err(|e| e.to_string())?;
        let (client, mut connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if tx.send(n.payload().to_string()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster listener connection failed");
                        break;
                    }
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {}", self.channel))
            .await
            .map_err(|e| e.to_string())?;
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
        // Whatever was committed while this node was not listening.
        match core.upgrade() {
            Some(core) => core.apply_remote(ClusterEvent::Stored).await,
            None => return Ok(()),
        }
        while let Some(payload) = rx.recv().await {
            let Some(core) = core.upgrade() else {
                return Ok(());
            };
            match self.decode(&payload).await {
                Ok(Some(event)) => core.apply_remote(event).await,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "unreadable cluster event"),
            }
        }
        driver.abort();
        Err("the listening connection closed".into())
    }

    /// The event in a payload, or `None` for this node's own.
    async fn decode(&self, payload: &str) -> Result<Option<ClusterEvent>, String> {
        let envelope: Envelope = serde_json::from_str(payload).map_err(|e| e.to_string())?;
        if envelope.node == self.node {
            return Ok(None);
        }
        if let Some(event) = envelope.event {
            return Ok(Some(event));
        }
        let Some(id) = envelope.outbox else {
            return Ok(None);
        };
        let client = self.pool.get().await.map_err(|e| e.to_string())?;
        let row = client
            .query_opt("SELECT payload FROM bus_outbox WHERE id = $1", &[&id])
            .await
            .map_err(|e| e.to_string())?;
        match row {
            Some(row) => serde_json::from_str(row.get::<_, &str>(0))
                .map(Some)
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl Bus for PgBus {
    async fn publish(&self, event: ClusterEvent) {
        if let Err(e) = self.send(event).await {
            tracing::warn!(error = %e, "could not publish a cluster event");
        }
    }
}
