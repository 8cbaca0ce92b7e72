//! Appending batches: validate, assign offsets, write, and undo a write that fails part-way.
//!
//! Invariants: an append either takes effect whole or not at all, as far as a reader or the
//! producer state can tell: the batches are validated (framing, CRC, sizes, and every
//! idempotent producer's sequence) before the first byte is written, and a write that fails
//! part-way is cut back to the mark taken before it (or, if that cannot be done, the log is
//! poisoned at the append's start and `heal` cuts it there). Offsets are dense: each written
//! batch's base offset is the previous batch's last offset + 1.

use super::heal::HEAL_RETRY_MS;
use super::{CutPoint, PartitionLog};
use crate::storage::StorageError;
use crate::storage::batch::validate_batches;
use crate::storage::producer_state::{ProducerStateTable, SequenceCheck};
use crate::storage::segment::SegmentMark;

/// Result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub log_start_offset: i64,
    pub batches: usize,
    pub records: i64,
    /// The batch was a producer retry already in the log: nothing was appended and the
    /// offsets are the original ones.
    pub duplicate: bool,
}

impl PartitionLog {
    /// Validates `batches` (whole v2 batches), assigns offsets in place and appends them.
    /// A poisoned log first tries to `heal` (at most once per `HEAL_RETRY_MS`).
    pub fn append(&mut self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, StorageError> {
        if self.poisoned.is_some()
            && (now_ms.saturating_sub(self.heal_attempted_ms) < HEAL_RETRY_MS || !self.heal(now_ms))
        {
            return Err(StorageError::Poisoned(self.dir.clone()));
        }
        let headers = validate_batches(batches, self.config.max_batch_bytes)?;
        let base_offset = self.log_end_offset();
        let mut next = base_offset;
        let mut pos = 0usize;
        let mut max_timestamp = -1;
        let mut records = 0i64;
        let mut duplicate = None;
        // What to return to if a write fails part-way (e.g. ENOSPC): the batches of this call
        // are undone so the log stays writable once space returns.
        let mark = self.active().mark();
        let segments_before = self.segments.len();
        let producers_before = headers
            .iter()
            .any(|h| h.producer_id >= 0)
            .then(|| self.producers.clone());
        for mut header in headers.iter().copied() {
            let total = header.total_bytes();
            let idempotent = header.producer_id >= 0 && !header.is_control();
            if idempotent {
                let check = self.producers.check(
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence,
                    header.record_count,
                )?;
                if let SequenceCheck::Duplicate {
                    first_offset,
                    last_offset,
                } = check
                {
                    duplicate = Some((first_offset, last_offset));
                    pos += total;
                    continue;
                }
            }
            if let Err(e) = self.maybe_roll(total as u64, now_ms) {
                return Err(self.undo_append(&mark, segments_before, producers_before, e));
            }
            // The assigned base offset is written by the segment in place of the client's
            // (the CRC does not cover it), so the request's bytes are never copied to patch it.
            header.base_offset = next;
            let batch = &batches[pos..pos + total];
            if let Err(e) = self.active_mut().append(batch, &header) {
                return Err(self.undo_append(&mark, segments_before, producers_before, e));
            }
            if idempotent {
                self.producers.record(
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence,
                    header.record_count,
                    next,
                    header.max_timestamp,
                );
            }
            next = header.last_offset() + 1;
            max_timestamp = max_timestamp.max(header.max_timestamp);
            records += i64::from(header.record_count);
            pos += total;
        }
        if let (true, Some((first, last))) = (next == base_offset, duplicate) {
            return Ok(AppendInfo {
                base_offset: first,
                last_offset: last,
                max_timestamp: -1,
                log_start_offset: self.log_start_offset,
                batches: 0,
                records: 0,
                duplicate: true,
            });
        }
        if let Err(e) = self.active_mut().flush() {
            return Err(self.undo_append(&mark, segments_before, producers_before, e));
        }
        if !self.config.durable_hw {
            self.high_watermark = next;
            self.hw_segment_base = self.active().base_offset;
            self.hw_position = self.active().size;
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            max_timestamp,
            log_start_offset: self.log_start_offset,
            batches: headers.len(),
            records,
            duplicate: false,
        })
    }

    /// Undoes a failed append (see `append`) and returns its error. If the append had rolled
    /// to a new segment, or cutting the segment back fails, the log is poisoned instead, with
    /// the append's starting point as the place `heal` cuts back to.
    fn undo_append(
        &mut self,
        mark: &SegmentMark,
        segments_before: usize,
        producers_before: Option<ProducerStateTable>,
        error: StorageError,
    ) -> StorageError {
        if let Some(p) = producers_before {
            self.producers = p;
        }
        let rolled = self.segments.len() != segments_before;
        let start = CutPoint {
            offset: mark.next_offset(),
            segment_base: self.segments[segments_before - 1].base_offset,
            position: mark.size(),
        };
        let undone = !rolled && self.active_mut().rollback(mark).is_ok();
        if undone {
            log::error!(
                "{}: append failed and was rolled back; the partition stays writable: {error}",
                self.dir.display()
            );
        } else {
            log::error!(
                "{}: append failed and could not be rolled back; partition is read-only until \
                 it heals: {error}",
                self.dir.display()
            );
            self.poison_at(start);
        }
        error
    }
}
