//! Group-commit fsync support: the flusher snapshots what to fsync under the lock, fsyncs
//! without it, and publishes the result under it again.
//!
//! Invariants: a snapshot names every segment holding bytes past the recovery point; publishing
//! moves the recovery point (and `synced_to`, the cut `heal` would return to) only forward, and
//! under `durable_hw` the high watermark only to an offset that snapshot covered. A poisoned
//! log yields no snapshot: an fsync is never retried after one failed. A segment's
//! `.txnindex` is fsynced in the same round as its `.log` when it holds entries and a handle;
//! one without a handle was fsynced before it was closed (`TxnIndex::seal`).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use super::{CutPoint, PartitionLog};

/// What the flusher must fsync, taken under the lock and used outside it.
#[derive(Debug)]
pub struct SyncSnapshot {
    pub files: Vec<(PathBuf, Arc<File>)>,
    pub log_end_offset: i64,
    segment_base: i64,
    segment_position: u64,
}

impl PartitionLog {
    /// Snapshot of what needs an fsync, or `None` when everything is already durable.
    pub fn sync_snapshot(&self) -> Option<SyncSnapshot> {
        let leo = self.log_end_offset();
        if leo <= self.recovery_point || self.poisoned.is_some() {
            return None;
        }
        // A segment's aborted-transaction index is fsynced with it.
        let files = self
            .segments
            .iter()
            .filter(|s| s.next_offset > self.recovery_point && !s.is_empty())
            .flat_map(|s| {
                // No handle open: the index is durable already (closed only after an fsync).
                let txn = s
                    .txn_index
                    .sync_handle()
                    .filter(|_| !s.txn_index.entries().is_empty())
                    .map(|h| (s.txn_index.path().to_path_buf(), h));
                std::iter::once((s.log_path.clone(), s.sync_handle())).chain(txn)
            })
            .collect();
        Some(SyncSnapshot {
            files,
            log_end_offset: leo,
            segment_base: self.active().base_offset,
            segment_position: self.active().size,
        })
    }

    /// Publishes a successful fsync: moves the recovery point and, under `durable_hw`, the
    /// high watermark. Returns true if the high watermark moved.
    pub fn complete_sync(&mut self, snap: &SyncSnapshot) -> bool {
        if snap.log_end_offset > self.recovery_point {
            self.recovery_point = snap.log_end_offset;
            self.synced_to = CutPoint {
                offset: snap.log_end_offset,
                segment_base: snap.segment_base,
                position: snap.segment_position,
            };
        }
        if self.config.durable_hw && snap.log_end_offset > self.high_watermark {
            self.high_watermark = snap.log_end_offset;
            self.hw_segment_base = snap.segment_base;
            self.hw_position = snap.segment_position;
            self.txns_moved();
            return true;
        }
        false
    }
}
