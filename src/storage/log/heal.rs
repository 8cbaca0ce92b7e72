//! Poison and healing (see the parent module's docs for why an fsync is never retried).
//!
//! Invariants: a poisoned log refuses appends until `heal` has cut its files back to the
//! poison's `CutPoint` (the earliest one if poisoned twice) and reopened them through crash
//! recovery; heal attempts are at least `HEAL_RETRY_MS` apart on the append path; every heal
//! bumps the checkpoint gate first, so no checkpoint job taken before it is written after it.

use std::sync::Arc;

use super::checkpoints::lock_poisoned;
use super::{CutPoint, PartitionLog, remove_if_present, remove_segment_files};
use crate::storage::segment::segment_paths;
use crate::storage::{StorageError, sync_dir};

pub(super) use crate::limits::HEAL_RETRY_MS;

impl PartitionLog {
    /// Marks the log failed after an fsync error: it heals back to the last successful fsync.
    pub fn poison(&mut self) {
        self.poison_at(self.synced_to);
    }

    pub(super) fn poison_at(&mut self, cut: CutPoint) {
        let cut = match self.poisoned {
            Some(earlier) if earlier.offset <= cut.offset => earlier,
            _ => cut,
        };
        self.poisoned = Some(cut);
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Lifts the poison (see the module docs): cuts the files back to the cut point, syncs
    /// the cut, and reopens the log through crash recovery, which revalidates the tail and
    /// rebuilds its indexes and the producer state. Returns true once healed (or if it was not
    /// poisoned); false, with the error logged, if the disk still fails, in which case the
    /// log stays poisoned and a later call tries again. Every step is idempotent.
    pub fn heal(&mut self, now_ms: i64) -> bool {
        let Some(cut) = self.poisoned else {
            return true;
        };
        let gate = Arc::clone(&self.checkpoint_gate);
        let healed = match gate.0.lock() {
            Ok(mut epoch) => {
                *epoch += 1;
                self.cut_and_reopen(cut, now_ms)
            }
            Err(_) => Err(lock_poisoned(&self.dir)),
        };
        // Set after the reopen, which starts a fresh `PartitionLog`.
        self.heal_attempted_ms = now_ms;
        self.checkpoint_gate = gate;
        match healed {
            Ok(dropped) => {
                log::warn!(
                    "{}: healed; log cut back to offset {} ({dropped} records past it dropped)",
                    self.dir.display(),
                    self.log_end_offset()
                );
                true
            }
            Err(e) => {
                log::error!(
                    "{}: still failing, stays read-only: {e}",
                    self.dir.display()
                );
                false
            }
        }
    }

    /// Returns the number of records dropped past the cut.
    fn cut_and_reopen(&mut self, cut: CutPoint, now_ms: i64) -> Result<i64, StorageError> {
        let before = self.log_end_offset();
        // The segment holding the cut; if retention deleted it, the oldest one, emptied.
        let (keep, position) = match self
            .segments
            .iter()
            .rposition(|s| s.base_offset <= cut.segment_base)
        {
            Some(i) if self.segments[i].base_offset == cut.segment_base => (i, cut.position),
            Some(i) => (i, self.segments[i].size),
            None => (0, 0),
        };
        for seg in &self.segments[keep + 1..] {
            remove_segment_files(&self.dir, seg.base_offset)?;
        }
        let seg = &mut self.segments[keep];
        // Drops unwritten buffered bytes and shortens the file; the indexes go too (recovery
        // rebuilds them, and new files keep the old handles' buffers from landing in them).
        seg.cut_discarding_buffer(position)?;
        let (_, index, time_index) = segment_paths(&self.dir, seg.base_offset);
        for path in [index, time_index] {
            remove_if_present(&path)?;
        }
        let log_path = seg.log_path.clone();
        seg.sync_handle()
            .sync_data()
            .map_err(|e| StorageError::io(&log_path, e))?;
        sync_dir(&self.dir)?;
        // The kept segment is the last one now, so `open` rescans it whatever the checkpoint.
        let mut fresh = PartitionLog::open(&self.dir, self.config.clone(), false, now_ms)?;
        fresh.jitter_source = self.jitter_source;
        *self = fresh;
        Ok(before - self.log_end_offset())
    }
}
