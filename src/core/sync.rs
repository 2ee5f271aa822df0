//! Gap-free sync of the inbox extension: "what changed in my inbox after sequence S".
//!
//! Every change to a user's inbox takes a number from the store's one strictly increasing
//! clock (the same clock that gives create_time): an insert is numbered by its create_time,
//! an update or a read/seen change by a later `change_seq` on the row, a delete by a
//! tombstone. A device keeps the `seq` of the last page it applied and asks for what came
//! after; the answer is the current state of every row that changed (not each intermediate
//! step) plus the ids deleted, in sequence order, and the `seq` to ask from next time.
//! Sequences are monotonic per user but not contiguous (one clock serves every user).
//!
//! A broadcast (one row every user sees, `Store::insert_broadcast`) is numbered by its
//! create_time, a later update of it, or the user's own read/seen/hide of it, whichever is
//! newest; hidden or deleted for everyone, it is reported as deleted.
//!
//! The store reads four ranges in one snapshot (created, changed, deleted after S, and the
//! user's broadcasts), each cut at the page size; [`merge`] keeps only what lies at or below the lowest cut, so a
//! page never skips anything and the next page starts exactly where this one ended.
//!
//! When something may have gone without a tombstone (a retention purge, or tombstones older
//! than the sync window), the user's floor rises: a device below it gets `resync` and the
//! sequence to resume from after relisting its inbox.

use std::sync::Arc;

use uuid::Uuid;

use super::error::{CoreError, CoreResult};
use super::store::{InboxChanges, InboxItem, Store};

/// Largest page of changes.
pub const MAX_PAGE: usize = 1000;

/// One change, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEntry {
    /// A notification created or changed: its state now.
    Upsert(InboxItem),
    /// A notification deleted (by a player, a script, or replaced by a collapse key).
    Deleted { seq: i64, id: Uuid },
}

impl SyncEntry {
    pub fn seq(&self) -> i64 {
        match self {
            SyncEntry::Upsert(item) => item.seq,
            SyncEntry::Deleted { seq, .. } => *seq,
        }
    }
}

/// A page of changes after `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPage {
    pub since: i64,
    /// Where the next request starts: every change up to it is in this page (or, with
    /// `resync`, in a fresh list of the inbox).
    pub seq: i64,
    /// The device missed changes that left no trace: relist the inbox, then continue from
    /// `seq`.
    pub resync: bool,
    /// More changes wait after `seq`.
    pub more: bool,
    pub entries: Vec<SyncEntry>,
}

/// Whether any of the ranges holds a change numbered past `high_water`.
fn beyond(
    high_water: i64,
    created: &[InboxItem],
    changed: &[InboxItem],
    deleted: &[(i64, Uuid)],
    broadcasts: &[(InboxItem, bool)],
) -> bool {
    created.iter().chain(changed).any(|i| i.seq > high_water)
        || deleted.iter().any(|d| d.0 > high_water)
        || broadcasts.iter().any(|b| b.0.seq > high_water)
}

/// Orders the store's three ranges into one page of at most `limit` entries (see the
/// module docs for why it cuts where it does).
pub fn merge(since: i64, limit: usize, changes: InboxChanges) -> SyncPage {
    let InboxChanges {
        created,
        changed,
        deleted,
        broadcasts,
        floor,
        high_water,
    } = changes;
    if since > high_water || floor.is_some_and(|f| since < f) {
        return SyncPage {
            since,
            seq: high_water,
            resync: true,
            more: false,
            entries: Vec::new(),
        };
    }
    // A range that came back full may continue past its last key; nothing beyond the lowest
    // such key is certain to be complete.
    let full = |n: usize| n >= limit;
    let cut = [
        full(created.len()).then(|| created.last().map(|i| i.notification.create_time)),
        full(changed.len()).then(|| changed.last().map(|i| i.seq)),
        full(deleted.len()).then(|| deleted.last().map(|d| d.0)),
        full(broadcasts.len()).then(|| broadcasts.last().map(|b| b.0.seq)),
    ]
    .into_iter()
    .flatten()
    .flatten()
    // The snapshot may hold changes past its high-water mark (SQLite takes the mark just
    // before the snapshot starts); those wait for the next page.
    .chain(beyond(high_water, &created, &changed, &deleted, &broadcasts).then_some(high_water))
    .min();
    let within = |seq: i64| cut.is_none_or(|c| seq <= c);
    let mut entries: Vec<SyncEntry> =
        created
            .into_iter()
            // A row changed since its insert is reported at its change, from the second range.
            .filter(|i| i.seq == i.notification.create_time && within(i.seq))
            .chain(changed.into_iter().filter(|i| within(i.seq)))
            .map(SyncEntry::Upsert)
            .chain(
                deleted
                    .into_iter()
                    .filter(|d| within(d.0))
                    .map(|(seq, id)| SyncEntry::Deleted { seq, id }),
            )
            .chain(broadcasts.into_iter().filter(|b| within(b.0.seq)).map(
                |(item, gone)| match gone {
                    true => SyncEntry::Deleted {
                        seq: item.seq,
                        id: item.notification.id,
                    },
                    false => SyncEntry::Upsert(item),
                },
            ))
            .collect();
    entries.sort_by_key(SyncEntry::seq);
    let mut cut = cut;
    if entries.len() > limit {
        entries.truncate(limit);
        cut = entries.last().map(SyncEntry::seq);
    }
    let seq = cut.unwrap_or(high_water).max(since);
    SyncPage {
        since,
        seq,
        resync: false,
        more: cut.is_some(),
        entries,
    }
}

/// The page of `user_id`'s changes after `since`.
pub async fn changes(
    store: &Arc<dyn Store>,
    user_id: Uuid,
    since: i64,
    limit: usize,
) -> CoreResult<SyncPage> {
    if since < 0 {
        return Err(CoreError::invalid("since must not be negative"));
    }
    if limit == 0 || limit > MAX_PAGE {
        return Err(CoreError::invalid(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let found = store
        .inbox_changes(user_id, since, limit)
        .await
        .map_err(|e| CoreError::internal("Error retrieving notification changes.", e))?;
    Ok(merge(since, limit, found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::notifications::Notification;

    fn item(create_time: i64, seq: i64) -> InboxItem {
        InboxItem {
            notification: Notification {
                id: Uuid::from_u128(create_time as u128),
                user_id: Uuid::nil(),
                subject: String::new(),
                content: "{}".into(),
                code: 1,
                sender_id: None,
                create_time,
                persistent: true,
                expire_time: None,
            },
            read_time: None,
            seen_time: None,
            seq,
        }
    }

    fn seqs(page: &SyncPage) -> Vec<i64> {
        page.entries.iter().map(SyncEntry::seq).collect()
    }

    #[test]
    fn orders_the_three_ranges_by_sequence() {
        let page = merge(
            0,
            10,
            InboxChanges {
                created: vec![item(1, 1), item(2, 7), item(3, 3)],
                changed: vec![item(2, 7)],
                deleted: vec![(5, Uuid::from_u128(99))],
                broadcasts: vec![],
                floor: None,
                high_water: 9,
            },
        );
        assert_eq!(seqs(&page), vec![1, 3, 5, 7]);
        assert_eq!((page.seq, page.more, page.resync), (9, false, false));
    }

    #[test]
    fn a_full_range_cuts_the_page_where_it_may_continue() {
        // created is full at create_time 4: a row created at 5 may exist, so the change at
        // 6 waits for the next page even though it was read.
        let page = merge(
            0,
            2,
            InboxChanges {
                created: vec![item(2, 2), item(4, 4)],
                changed: vec![item(1, 6)],
                deleted: vec![(3, Uuid::from_u128(9))],
                broadcasts: vec![],
                floor: None,
                high_water: 20,
            },
        );
        assert_eq!(
            seqs(&page),
            vec![2, 3],
            "truncated to the limit after the cut"
        );
        assert!(page.more);
        assert_eq!(page.seq, 3);
    }

    #[test]
    fn changes_past_the_high_water_mark_wait_for_the_next_page() {
        // A commit landed between taking the mark (8) and starting the snapshot: its
        // changes (9, 10) are read but not yet covered by the mark.
        let page = merge(
            0,
            10,
            InboxChanges {
                created: vec![item(1, 1), item(9, 9)],
                changed: vec![],
                deleted: vec![(4, Uuid::from_u128(8)), (10, Uuid::from_u128(7))],
                broadcasts: vec![],
                floor: None,
                high_water: 8,
            },
        );
        assert_eq!(seqs(&page), vec![1, 4]);
        assert_eq!((page.seq, page.more), (8, true));
    }

    #[test]
    fn below_the_floor_or_above_the_clock_is_a_resync() {
        let changes = InboxChanges {
            floor: Some(10),
            high_water: 50,
            ..Default::default()
        };
        let page = merge(9, 10, changes.clone());
        assert!(page.resync && page.entries.is_empty());
        assert_eq!(page.seq, 50);
        assert!(!merge(10, 10, changes.clone()).resync);
        assert!(
            merge(51, 10, changes).resync,
            "a sequence from another database"
        );
    }
}
