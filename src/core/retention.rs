//! The background purge of the inbox extension: deletes stored notifications that expired
//! (`expire_time`), that are older than the server's retention, and a user's oldest ones
//! beyond the per-user cap. Expired rows are already hidden from every list, count and push,
//! so the purge only reclaims space; it never decides what a player sees. Rows removed by
//! retention or the cap leave no tombstone: their users' sync floor rises instead, and the
//! devices behind it resync (`core::sync`). Delete tombstones older than the sync window go
//! the same way.
//!
//! It must not stall sends: candidates are found on a read connection and deleted in small
//! batches, each its own short write, with a pause between batches. Several nodes may purge
//! at once; deleting an id that another node already deleted is a no-op.

use std::sync::Arc;
use std::time::Duration;

use super::store::Store;
use super::time::now_micros;

/// Rows deleted per write.
const BATCH: usize = 500;
/// Pause between two batches, so queued sends go first.
const BREATHE: Duration = Duration::from_millis(5);

/// What to purge and how often.
#[derive(Debug, Clone, Copy)]
pub struct RetentionSettings {
    /// Delete notifications older than this (None: keep them).
    pub retention: Option<Duration>,
    /// Keep at most this many per user, deleting the oldest (None: no cap).
    pub max_per_user: Option<usize>,
    pub interval: Duration,
    /// Delete tombstones are kept this long for gap-free sync.
    pub sync_window: Duration,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// One full pass: deletes until nothing is left to purge, then prunes tombstones older than
/// the sync window. Returns how many notifications went.
pub async fn purge_once(store: &Arc<dyn Store>, settings: RetentionSettings) -> u64 {
    let purged = purge_rows(store, settings).await;
    let horizon = now_micros().saturating_sub(micros(settings.sync_window));
    loop {
        match store.prune_tombstones(horizon, BATCH).await {
            Ok(n) if n as usize == BATCH => tokio::time::sleep(BREATHE).await,
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "purge: could not prune tombstones");
                break;
            }
        }
    }
    purged
}

async fn purge_rows(store: &Arc<dyn Store>, settings: RetentionSettings) -> u64 {
    let mut total = 0;
    loop {
        let now = now_micros();
        let before = settings.retention.map(|r| now.saturating_sub(micros(r)));
        let ids = match store
            .purge_candidates(now, before, settings.max_per_user, BATCH)
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "purge: could not find candidates");
                return total;
            }
        };
        if ids.is_empty() {
            return total;
        }
        let found = ids.len();
        match store.purge_notifications(ids, now).await {
            Ok(n) => total += n,
            Err(e) => {
                tracing::warn!(error = %e, "purge: could not delete");
                return total;
            }
        }
        if found < BATCH {
            return total;
        }
        tokio::time::sleep(BREATHE).await;
    }
}

/// Runs [`purge_once`] every `settings.interval` for as long as the store lives.
pub fn spawn(store: Arc<dyn Store>, settings: RetentionSettings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let purged = purge_once(&store, settings).await;
            if purged > 0 {
                tracing::info!(purged, "purged expired and retained-out notifications");
            }
        }
    })
}
