//! Transactions in a partition's log (KIP-98): commit/abort markers, the last stable offset,
//! the aborted transactions a read_committed reader must skip, and the transactions still open.
//!
//! (API skeleton; the real state lands with issue 14's storage work.)

use super::{AppendInfo, PartitionLog, ReadView};
use crate::storage::StorageError;
use crate::storage::control::{ControlType, marker_batch};

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
        self.high_watermark
    }

    /// The aborted transactions with data in `[from, upto)`, oldest first.
    pub fn aborted_transactions(&self, _from: i64, _upto: i64) -> Vec<AbortedTxn> {
        Vec::new()
    }

    /// The transactions with data here and no marker yet, oldest first.
    pub fn ongoing_transactions(&self) -> Vec<OngoingTxn> {
        Vec::new()
    }

    /// `read_view` bounded by what `isolation` may see (read_committed: the last stable offset).
    pub fn read_view_isolated(
        &self,
        offset: i64,
        _isolation: Isolation,
    ) -> Result<ReadView, StorageError> {
        self.read_view(offset)
    }
}
