//! Segment lifecycle: rolling a new active segment, deleting old ones by retention, and moving
//! the log start offset (DeleteRecords).
//!
//! A segment rolls by age when it has been active for `segment_ms` less its roll jitter, as
//! Kafka's `LogSegment.shouldRoll`: a random amount in `[0, min(segment.jitter.ms,
//! segment.ms))` chosen when the segment became active (`LogConfig.randomSegmentJitter`), so
//! partitions created together do not all roll at the same instant. A config change applies
//! from the next segment.
//!
//! Retention applies only when `cleanup.policy` contains `delete` (`LogConfig::cleanup_delete`):
//! with `compact,delete` both the cleaner and retention run, as in Kafka.
//!
//! Invariants: the active (last) segment is never deleted, nor one holding offsets at or above
//! the last stable offset (at most the high watermark); an empty active segment is never rolled; the log start offset only
//! grows, and it is checkpointed before the segments below it are deleted by DeleteRecords (a
//! crash in between leaves files the next retention pass deletes, never a start that went
//! back).

use std::hash::{BuildHasher, Hasher};

use super::{LOG_START_FILE, PartitionLog};
use crate::storage::segment::Segment;
use crate::storage::{StorageError, checkpoint, sync_dir};

/// A source of random 64-bit values for roll jitters.
pub(super) type JitterSource = fn() -> u64;

/// A random value, from the standard library's per-process random hash keys (no crate needed
/// for a jitter that only has to differ between segments).
pub(super) fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Kafka's `randomSegmentJitter`: `random` reduced into `[0, min(jitter_ms, segment_ms))`; 0
/// when either is not positive.
pub(super) fn roll_jitter_ms(jitter_ms: i64, segment_ms: i64, random: u64) -> i64 {
    let bound = jitter_ms.min(segment_ms);
    if bound <= 0 {
        return 0;
    }
    (random % bound as u64) as i64
}

impl PartitionLog {
    /// Rolls to a new segment if the next `incoming_bytes` would overflow the active one, or it
    /// has been open longer than `segment_ms`. An empty active segment is never rolled.
    pub(super) fn maybe_roll(
        &mut self,
        incoming_bytes: u64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let full = active.size + incoming_bytes > self.config.segment_bytes;
        let old = now_ms.saturating_sub(active.created_ms)
            >= self.config.segment_ms.saturating_sub(self.roll_jitter_ms);
        if full || old {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    fn roll(&mut self, now_ms: i64) -> Result<(), StorageError> {
        let next = self.log_end_offset();
        let interval = self.config.index_interval_bytes;
        let direct_io = self.config.direct_io;
        let old = self.active_mut();
        old.finish_writes()?;
        old.flush_indexes()?;
        // The sealed segment keeps only its `.log` open: a `.txnindex` with abort entries is
        // fsynced and closed now. A failed fsync is never retried (its pages may be marked
        // clean), so it poisons the log like a failed flusher round.
        if let Err(e) = old.txn_index.seal() {
            self.poison();
            return Err(e);
        }
        let mut seg = Segment::create(&self.dir, next, interval, now_ms)?;
        seg.direct_io = direct_io;
        sync_dir(&self.dir)?;
        log::debug!(
            "{}: rolled new segment at offset {next}",
            self.dir.display()
        );
        self.segments.push(seg);
        self.roll_jitter_ms = roll_jitter_ms(
            self.config.segment_jitter_ms,
            self.config.segment_ms,
            (self.jitter_source)(),
        );
        Ok(())
    }

    /// Fixes where the roll jitters of the next segments come from (deterministic tests).
    #[cfg(test)]
    pub(crate) fn set_jitter_source(&mut self, source: JitterSource) {
        self.jitter_source = source;
    }

    /// The active segment's roll jitter.
    #[cfg(test)]
    pub(crate) fn roll_jitter(&self) -> i64 {
        self.roll_jitter_ms
    }

    /// Rolls the active segment if it is older than `segment_ms` (called by housekeeping).
    pub fn roll_if_expired(&mut self, now_ms: i64) -> Result<(), StorageError> {
        self.maybe_roll(0, now_ms)
    }

    /// Deletes whole segments past `retention_ms` / `retention_bytes`, never the active one nor
    /// anything at or above the last stable offset. Returns the number of segments deleted.
    /// Only under `cleanup.policy` `delete` or `compact,delete`; a `compact`-only log keeps
    /// every segment (the cleaner shrinks them instead).
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, StorageError> {
        if !self.config.cleanup_delete {
            return Ok(0);
        }
        let mut deleted = 0;
        let mut total: i64 = self.size_bytes() as i64;
        // Never a segment holding the last stable offset: an open transaction's first batch
        // stays until its marker (and read_committed positions stay valid).
        let stable = self.last_stable_offset();
        while self.segments.len() > 1 {
            let seg = &self.segments[0];
            if seg.next_offset > stable {
                break;
            }
            let by_time = self.config.retention_ms >= 0
                && seg.max_timestamp >= 0
                && now_ms - seg.max_timestamp > self.config.retention_ms;
            let by_size = self.config.retention_bytes >= 0
                && total - seg.size as i64 >= self.config.retention_bytes;
            if !(by_time || by_size) {
                break;
            }
            total -= seg.size as i64;
            self.delete_first_segment()?;
            deleted += 1;
        }
        if deleted > 0 {
            log::info!(
                "{}: retention deleted {deleted} segment(s); log start offset now {}",
                self.dir.display(),
                self.log_start_offset
            );
        }
        Ok(deleted)
    }

    fn delete_first_segment(&mut self) -> Result<(), StorageError> {
        let seg = self.segments.remove(0);
        seg.delete_files(&self.dir)?;
        sync_dir(&self.dir)?;
        let next_base = self.segments[0].base_offset;
        if self.log_start_offset < next_base {
            self.log_start_offset = next_base;
            checkpoint::write_i64(&self.dir.join(LOG_START_FILE), next_base)?;
        }
        Ok(())
    }

    /// Moves the log start offset to `offset` (Kafka's DeleteRecords) and deletes the segments
    /// wholly below it. `offset` must not exceed the high watermark. Returns the new start.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, StorageError> {
        if offset > self.high_watermark || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset(),
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.log_start_offset = offset;
        checkpoint::write_i64(&self.dir.join(LOG_START_FILE), offset)?;
        while self.segments.len() > 1 && self.segments[0].next_offset <= offset {
            self.delete_first_segment()?;
        }
        Ok(self.log_start_offset)
    }
}
