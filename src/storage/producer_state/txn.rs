//! Transactions in the producer state, as Kafka's `ProducerAppendInfo` for transactional
//! batches and end markers (KIP-98):
//! - a transactional data batch from a producer with no open transaction opens one at its base
//!   offset (`ProducerEntry::begin_txn`); later batches of the same transaction change nothing;
//! - an end marker (commit or abort) whose epoch is below the producer's is fenced
//!   (`InvalidEpoch`); a higher epoch bumps the entry's (and, as a new epoch does, forgets its
//!   sequences); the marker closes the open transaction and returns it (`CompletedTxn`), or
//!   returns nothing when none is open (a marker re-sent after a coordinator recovery, or a
//!   transaction with no data here): such a marker is appended and harmless;
//! - every change of an entry's open transaction goes through `ProducerStateTable::reindex`,
//!   so the table's `open_txns` index always matches the entries.

use super::{ProducerEntry, ProducerError, ProducerStateTable, ProducerUpdates};

/// A transaction an end marker closed: its producer, first offset, the marker's offset, and
/// whether it was aborted (Kafka's `CompletedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub aborted: bool,
}

impl ProducerEntry {
    /// A transactional data batch starting at `first_offset` was appended.
    pub fn begin_txn(&mut self, first_offset: i64) {
        if self.current_txn_first_offset.is_none() {
            self.current_txn_first_offset = Some(first_offset);
        }
    }

    /// An end marker of `epoch` (checked by `check_marker`) was appended at `offset`.
    pub fn end_txn(
        &mut self,
        producer_id: i64,
        epoch: i16,
        offset: i64,
        timestamp: i64,
        aborted: bool,
    ) -> Option<CompletedTxn> {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        self.last_timestamp = self.last_timestamp.max(timestamp);
        self.current_txn_first_offset
            .take()
            .map(|first_offset| CompletedTxn {
                producer_id,
                first_offset,
                last_offset: offset,
                aborted,
            })
    }
}

/// An end marker of `epoch` for the producer whose entry is `entry` may be appended.
fn check_marker(
    entry: Option<&ProducerEntry>,
    producer_id: i64,
    epoch: i16,
) -> Result<(), ProducerError> {
    match entry {
        Some(e) if epoch < e.epoch => Err(ProducerError::InvalidEpoch {
            producer_id,
            epoch,
            current: e.epoch,
        }),
        _ => Ok(()),
    }
}

impl ProducerStateTable {
    /// Keeps `open_txns` in step with producer `id`'s open transaction moving from `old` to
    /// `new`.
    pub(super) fn reindex(&mut self, id: i64, old: Option<i64>, new: Option<i64>) {
        if old == new {
            return;
        }
        if let Some(first) = old
            && self.open_txns.get(&first) == Some(&id)
        {
            self.open_txns.remove(&first);
        }
        if let Some(first) = new {
            self.open_txns.insert(first, id);
        }
    }

    /// First offset of the oldest open transaction.
    pub fn first_open_txn(&self) -> Option<i64> {
        self.open_txns.keys().next().copied()
    }

    /// Open transactions, oldest first: (first offset, producer id).
    pub fn open_txns(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.open_txns.iter().map(|(&first, &id)| (first, id))
    }

    /// Changes producer `id`'s entry (created if new) with `f`, keeping the index (replay).
    pub fn update<R>(&mut self, id: i64, f: impl FnOnce(&mut ProducerEntry) -> R) -> R {
        let entry = self.producers.entry(id).or_default();
        let old = entry.current_txn_first_offset;
        let out = f(entry);
        let new = entry.current_txn_first_offset;
        self.reindex(id, old, new);
        out
    }

    /// Whether an end marker of `epoch` for `producer_id` may be appended.
    pub fn check_marker(&self, producer_id: i64, epoch: i16) -> Result<(), ProducerError> {
        check_marker(self.producers.get(&producer_id), producer_id, epoch)
    }

    /// First offset of the oldest open transaction of a producer other than `producer_id`.
    pub fn first_open_txn_except(&self, producer_id: i64) -> Option<i64> {
        self.open_txns
            .iter()
            .find(|(_, id)| **id != producer_id)
            .map(|(first, _)| *first)
    }
}

impl ProducerUpdates {
    /// `ProducerStateTable::check_marker` as if the updates so far were applied.
    pub fn check_marker(
        &self,
        table: &ProducerStateTable,
        producer_id: i64,
        epoch: i16,
    ) -> Result<(), ProducerError> {
        check_marker(self.entry(table, producer_id), producer_id, epoch)
    }

    /// `ProducerStateTable::first_open_txn_except` as if the updates so far were applied.
    pub fn first_open_txn_except(
        &self,
        table: &ProducerStateTable,
        producer_id: i64,
    ) -> Option<i64> {
        let touched = |id: i64| self.entries.iter().any(|(x, _)| *x == id);
        let in_overlay = self
            .entries
            .iter()
            .filter(|(id, _)| *id != producer_id)
            .filter_map(|(_, e)| e.current_txn_first_offset)
            .min();
        let in_table = table
            .open_txns
            .iter()
            .find(|(_, id)| **id != producer_id && !touched(**id))
            .map(|(first, _)| *first);
        match (in_overlay, in_table) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(t: &mut ProducerStateTable, pid: i64, epoch: i16, seq: i32, offset: i64) {
        let mut u = ProducerUpdates::default();
        u.check(t, pid, epoch, seq, 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let e = u.entry_mut(t, pid);
        e.record(epoch, seq, 1, offset, 0);
        e.begin_txn(offset);
        t.apply(u);
    }

    fn marker(
        t: &mut ProducerStateTable,
        pid: i64,
        epoch: i16,
        offset: i64,
        aborted: bool,
    ) -> Result<Option<CompletedTxn>, ProducerError> {
        let mut u = ProducerUpdates::default();
        u.check_marker(t, pid, epoch)?;
        let done = u.entry_mut(t, pid).end_txn(pid, epoch, offset, 0, aborted);
        t.apply(u);
        Ok(done)
    }

    #[test]
    fn a_transaction_opens_at_its_first_batch_and_a_marker_closes_it() {
        let mut t = ProducerStateTable::default();
        data(&mut t, 1, 0, 0, 10);
        data(&mut t, 2, 0, 0, 11);
        data(&mut t, 1, 0, 1, 12);
        assert_eq!(t.open_txns().collect::<Vec<_>>(), vec![(10, 1), (11, 2)]);
        assert_eq!(t.first_open_txn_except(1), Some(11));
        assert_eq!(
            marker(&mut t, 1, 0, 13, true),
            Ok(Some(CompletedTxn {
                producer_id: 1,
                first_offset: 10,
                last_offset: 13,
                aborted: true
            }))
        );
        assert_eq!(t.first_open_txn(), Some(11));
        // A re-sent marker finds nothing open.
        assert_eq!(marker(&mut t, 1, 0, 14, true), Ok(None));
        assert_eq!(
            marker(&mut t, 2, 0, 15, false).map(|c| c.is_some()),
            Ok(true)
        );
        assert_eq!(t.first_open_txn(), None);
    }

    #[test]
    fn a_stale_marker_is_fenced_and_a_newer_one_bumps_the_epoch() {
        let mut t = ProducerStateTable::default();
        data(&mut t, 1, 3, 0, 0);
        assert!(matches!(
            marker(&mut t, 1, 2, 1, true),
            Err(ProducerError::InvalidEpoch { current: 3, .. })
        ));
        assert_eq!(
            t.first_open_txn(),
            Some(0),
            "the refused marker changed nothing"
        );
        assert_eq!(marker(&mut t, 1, 4, 1, true).map(|c| c.is_some()), Ok(true));
        assert_eq!(t.get(1).map(|e| e.epoch), Some(4));
        assert!(t.check(1, 3, 1, 1).is_err(), "the old epoch is fenced now");
        assert_eq!(t.check(1, 4, 0, 1), Ok(super::super::SequenceCheck::Append));
    }

    #[test]
    fn an_overlay_sees_its_own_open_transactions() {
        let mut t = ProducerStateTable::default();
        data(&mut t, 1, 0, 0, 5);
        let mut u = ProducerUpdates::default();
        u.entry_mut(&t, 2).begin_txn(3);
        assert_eq!(u.first_open_txn_except(&t, 9), Some(3));
        assert_eq!(u.first_open_txn_except(&t, 2), Some(5));
        u.entry_mut(&t, 1).end_txn(1, 0, 6, 0, false);
        assert_eq!(u.first_open_txn_except(&t, 2), None);
        assert_eq!(t.first_open_txn(), Some(5), "the table waits for apply");
    }

    #[test]
    fn producers_with_an_open_transaction_do_not_expire() {
        let mut t = ProducerStateTable::default();
        data(&mut t, 1, 0, 0, 0);
        assert_eq!(t.remove_expired(i64::MAX, 1), 0);
        marker(&mut t, 1, 0, 1, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.remove_expired(i64::MAX, 1), 1);
    }

    #[test]
    fn truncation_reopens_nothing_past_the_cut() {
        let mut t = ProducerStateTable::default();
        data(&mut t, 1, 0, 0, 4);
        data(&mut t, 2, 0, 0, 8);
        t.truncate_from(6);
        assert_eq!(t.open_txns().collect::<Vec<_>>(), vec![(4, 1)]);
        assert!(t.get(2).is_none());
    }
}
