//! Transactions in a partition's log (KIP-98): commit/abort markers, the last stable offset,
//! the aborted transactions a read_committed reader must skip, and the transactions still open.
//!
//! The producer state (`producer_state::txn`) knows each producer's open transaction; markers
//! are appended through `append` (`append.rs` checks their epoch and closes the transaction in
//! the same overlay as the sequences, so a failed write changes nothing); an abort that closed a
//! transaction with data writes its entry to the marker segment's `.txnindex`.
//!
//! Last stable offset (Kafka's): the smallest of the first offset of the oldest open
//! transaction, the first offset of any transaction completed at or above the high watermark
//! (its marker is not yet visible: `TxnLog::unreplicated`), and the high watermark; never below
//! the log start offset. It is a batch start (or the high watermark's position), so a
//! read_committed view ends at a batch boundary and holds no byte at or past it.
//!
//! Invariants: once pruned (`txns_moved`, after every append and high-watermark move)
//! `unreplicated` holds only transactions whose marker is at or above the high watermark, and
//! `positions` only first offsets at or above the LSO; those name batch starts in segments
//! that neither the cleaner (it stops below the LSO) nor retention (likewise) replace.

use std::collections::BTreeMap;

use super::{AppendInfo, PartitionLog, ReadView};
use crate::storage::StorageError;
use crate::storage::control::{ControlType, marker_batch};
use crate::storage::producer_state::CompletedTxn;
use crate::storage::txn_index::{AbortedEntry, collect};

/// An aborted transaction a read_committed fetch must skip: its producer and first offset
/// (Kafka's `FetchResponse.AbortedTransaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// A transaction with data in this partition and no marker yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OngoingTxn {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub first_offset: i64,
}

/// What a reader may see (Kafka's `IsolationLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    #[default]
    ReadUncommitted,
    ReadCommitted,
}

/// The log's transaction state beside the producer table.
#[derive(Debug, Default)]
pub(super) struct TxnLog {
    /// Transactions whose marker is at or above the high watermark (Kafka's
    /// `unreplicatedTxns`): they hold the LSO at their first offset until it is visible.
    unreplicated: Vec<CompletedTxn>,
    /// First offset → (segment base, byte position) of the first batch of every transaction
    /// at or above the LSO (open, or in `unreplicated`), so the LSO's position needs no I/O.
    positions: BTreeMap<i64, (i64, u64)>,
}

impl TxnLog {
    /// Records the transactions an append closed (`high_watermark`: after the append).
    pub(super) fn completed(&mut self, done: Vec<CompletedTxn>, high_watermark: i64) {
        self.unreplicated
            .extend(done.into_iter().filter(|c| c.last_offset >= high_watermark));
    }

    /// Records where a transaction's first batch is.
    pub(super) fn opened(&mut self, first_offset: i64, segment_base: i64, position: u64) {
        self.positions
            .insert(first_offset, (segment_base, position));
    }

    /// Forgets what no longer holds the LSO back (the high watermark or the LSO moved).
    fn prune(&mut self, high_watermark: i64, last_stable_offset: i64) {
        self.unreplicated
            .retain(|c| c.last_offset >= high_watermark);
        if self
            .positions
            .first_key_value()
            .is_some_and(|(&first, _)| first < last_stable_offset)
        {
            self.positions = self.positions.split_off(&last_stable_offset);
        }
    }
}

impl PartitionLog {
    /// Appends a commit or abort marker for `producer_id` (a control batch, one offset). Its
    /// epoch must not be below the producer's (`InvalidEpoch`); it closes the producer's open
    /// transaction in this partition, if any.
    pub fn append_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let kind = if commit {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        let batch = marker_batch(producer_id, producer_epoch, kind, coordinator_epoch, now_ms);
        self.append(&batch, now_ms)
    }

    /// The last stable offset: no offset at or above it may be read by read_committed (the
    /// first offset of the oldest open transaction, else the high watermark).
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark;
        let unreplicated = self
            .txns
            .unreplicated
            .iter()
            .filter(|c| c.last_offset >= hw)
            .map(|c| c.first_offset)
            .min();
        let first_unstable = match (self.producers.first_open_txn(), unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        first_unstable
            .map_or(hw, |f| f.min(hw))
            .max(self.log_start_offset)
    }

    /// Segment base and byte position of the last stable offset (the high watermark's when they
    /// are equal; else the recorded position of the transaction's first batch, no I/O); a
    /// read_committed reader compares positions against it, as a reader does against
    /// `high_watermark_position`. Falls back to an index lookup for an offset it has not
    /// recorded (an LSO clamped to the log start).
    pub fn last_stable_offset_position(&self) -> Result<(i64, u64), StorageError> {
        let lso = self.last_stable_offset();
        if lso == self.high_watermark {
            return Ok((self.hw_segment_base, self.hw_position));
        }
        if let Some(&at) = self.txns.positions.get(&lso) {
            return Ok(at);
        }
        self.position_of_offset(lso)
    }

    /// Segment base and position of the batch holding `offset` (or the end of the segment
    /// `offset` falls after).
    fn position_of_offset(&self, offset: i64) -> Result<(i64, u64), StorageError> {
        let seg = &self.segments[self.segment_index_for(offset)];
        let pos = seg.position_of(offset, seg.size)?.unwrap_or(seg.size);
        Ok((seg.base_offset, pos))
    }

    /// After the high watermark, the LSO or the open transactions moved: forget what no longer
    /// holds the LSO back.
    pub(super) fn txns_moved(&mut self) {
        let (hw, lso) = (self.high_watermark, self.last_stable_offset());
        self.txns.prune(hw, lso);
    }

    /// Records the positions of the open transactions' first batches that are not known yet
    /// (after a rebuild from a snapshot: an index lookup each, at open).
    pub(super) fn locate_open_txns(&mut self) -> Result<(), StorageError> {
        let missing: Vec<i64> = self
            .producers
            .open_txns()
            .map(|(first, _)| first)
            .filter(|first| !self.txns.positions.contains_key(first))
            .collect();
        for first in missing {
            if first >= self.log_start_offset {
                let (base, pos) = self.position_of_offset(first)?;
                self.txns.opened(first, base, pos);
            }
        }
        Ok(())
    }

    /// The aborted transactions with data in `[from, upto)`, oldest first.
    pub fn aborted_transactions(&self, from: i64, upto: i64) -> Vec<AbortedTxn> {
        self.aborted_entries(from, upto)
            .into_iter()
            .map(|e| AbortedTxn {
                producer_id: e.producer_id,
                first_offset: e.first_offset,
            })
            .collect()
    }

    /// The aborted transactions with data in what a read from `from` left unread as a file
    /// range ending at byte `end_position` of the segment based at `segment_base` (no batch
    /// header of its end is at hand to bound it, as `aborted_transactions`' callers have).
    /// The bound is an offset-index lookup, as Kafka's (`fetchUpperBoundOffset`): the list
    /// may name transactions up to one index interval past the range, which a reader skips.
    pub fn aborted_transactions_before(
        &self,
        from: i64,
        segment_base: i64,
        end_position: u64,
    ) -> Vec<AbortedTxn> {
        self.aborted_transactions(from, self.offset_bound(segment_base, end_position))
    }

    /// An offset above every one stored before byte `end_position` of the segment based at
    /// `segment_base`: the base offset of the first indexed batch at or after that position,
    /// else the segment's next offset. Still a bound if the segment changed since the read
    /// took its range: a cleaned copy holds the same offsets in fewer bytes (its batch at a
    /// position has a higher offset than the original's there), and a segment merged into an
    /// earlier one or deleted leaves the next segment's base offset above all of its offsets.
    fn offset_bound(&self, segment_base: i64, end_position: u64) -> i64 {
        let after = self
            .segments
            .partition_point(|s| s.base_offset <= segment_base);
        match after.checked_sub(1).map(|i| &self.segments[i]) {
            Some(seg) if seg.base_offset == segment_base => {
                let entries = seg.index.entries();
                let i = entries.partition_point(|e| u64::from(e.position) < end_position);
                entries.get(i).map_or(seg.next_offset, |e| {
                    seg.base_offset + i64::from(e.relative_offset)
                })
            }
            _ => self
                .segments
                .get(after)
                .map_or(self.log_end_offset(), |s| s.base_offset),
        }
    }

    /// The `.txnindex` entries overlapping `[from, upto)` (none below the log start), oldest
    /// first, read from the segment holding `from` on, as Kafka's `collectAbortedTransactions`.
    fn aborted_entries(&self, from: i64, upto: i64) -> Vec<AbortedEntry> {
        let from = from.max(self.log_start_offset);
        let mut out = Vec::new();
        if from >= upto {
            return out;
        }
        for seg in &self.segments[self.segment_index_for(from)..] {
            if collect(seg.txn_index.entries(), from, upto, &mut out) {
                break;
            }
        }
        out
    }

    /// The transactions with data here and no marker yet, oldest first.
    pub fn ongoing_transactions(&self) -> Vec<OngoingTxn> {
        self.producers
            .open_txns()
            .map(|(first_offset, producer_id)| OngoingTxn {
                producer_id,
                producer_epoch: self.producers.get(producer_id).map_or(-1, |e| e.epoch),
                first_offset,
            })
            .collect()
    }

    /// `read_view` bounded by what `isolation` may see (read_committed: the last stable offset;
    /// an offset in `[LSO, log end]` reads nothing yet).
    pub fn read_view_isolated(
        &self,
        offset: i64,
        isolation: Isolation,
    ) -> Result<ReadView, StorageError> {
        let mut view = self.read_view(offset)?;
        if isolation == Isolation::ReadCommitted {
            let lso = self.last_stable_offset();
            if offset >= lso {
                view.cap(None);
            } else if lso < self.high_watermark {
                view.cap(Some(self.last_stable_offset_position()?));
            }
        }
        Ok(view)
    }
}
