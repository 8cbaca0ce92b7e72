//! Appending batches: validate, assign offsets, write, and undo a write that fails part-way.
//!
//! Invariants: an append takes effect whole or not at all, as far as a reader or the producer
//! state can tell. Every batch is validated (framing, CRC, sizes) and every idempotent batch's
//! sequence checked before the first byte is written; the producer-state changes are collected
//! in a `ProducerUpdates` overlay holding only the producers this append touches and applied
//! only after the write and flush succeeded, so a failed write leaves the table exactly as it
//! was. A write that fails part-way is cut back to the mark taken before it (or, if that cannot
//! be done, the log is poisoned at the append's start and `heal` cuts it there). Offsets are
//! dense: each written batch's base offset is the previous one's last offset + 1 (the cleaner
//! may later remove whole batches below the active segment, never renumber them). A
//! compacted log refuses a batch holding a record without a key (INVALID_RECORD).
//!
//! The result (`AppendInfo`) carries what a caller needs afterwards — offsets, the log start,
//! the high watermark and whether it moved, whether a segment was rolled — so it never has to
//! lock the partition again to learn them.

use super::heal::HEAL_RETRY_MS;
use super::{CutPoint, PartitionLog};
use crate::storage::StorageError;
use crate::storage::batch::{BatchHeader, validate_batches};
use crate::storage::cleaner::records::all_records_keyed;
use crate::storage::control::{ControlType, marker_type};
use crate::storage::producer_state::{CompletedTxn, ProducerUpdates, SequenceCheck};
use crate::storage::segment::SegmentMark;
use crate::storage::txn_index::AbortedEntry;

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
    /// The high watermark once the append returned. Under `durable_hw` it moves only after an
    /// fsync, so it is below `last_offset + 1` unless the records were already durable (a
    /// duplicate of durable records); otherwise it is the log end offset.
    pub high_watermark: i64,
    /// The append moved the high watermark (readers and waiters are to be told).
    pub high_watermark_moved: bool,
    /// The append rolled at least one new segment.
    pub rolled: bool,
    /// The broker's timestamp the batches were stamped with (topic `message.timestamp.type`
    /// LogAppendTime, set by the broker's write path), else -1.
    pub log_append_time_ms: i64,
}

impl AppendInfo {
    /// The appended records are readable now (below the high watermark; under `durable_hw`,
    /// fsynced). If not, `last_offset` is the offset that must become durable.
    pub fn is_visible(&self) -> bool {
        self.high_watermark > self.last_offset
    }
}

/// What an append will do, decided before anything is written.
struct AppendPlan {
    /// Batches to write: their position in the request and their header with the assigned
    /// base offset.
    writes: Vec<(usize, BatchHeader)>,
    /// The producer-state changes of those writes.
    producers: ProducerUpdates,
    /// Transactions the writes' end markers close (oldest first).
    completed: Vec<CompletedTxn>,
    /// The writes (indexes into `writes`) whose batch opens a transaction.
    opened: Vec<usize>,
    /// The `.txnindex` entry of each abort marker that closed a transaction with data, and
    /// which write (index into `writes`) it goes with.
    aborted: Vec<(usize, AbortedEntry)>,
    /// Offsets of the last batch found to be a retry already in the log.
    duplicate: Option<(i64, i64)>,
    /// Log end offset after the writes.
    next_offset: i64,
    max_timestamp: i64,
    records: i64,
}

impl PartitionLog {
    /// Validates `batches` (whole v2 batches), assigns offsets in place and appends them.
    /// A poisoned log first tries to `heal` (at most once per `HEAL_RETRY_MS`).
    pub fn append(&mut self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, StorageError> {
        let high_watermark_before = self.high_watermark;
        if self.poisoned.is_some()
            && (now_ms.saturating_sub(self.heal_attempted_ms) < HEAL_RETRY_MS || !self.heal(now_ms))
        {
            return Err(StorageError::Poisoned(self.dir.clone()));
        }
        let headers = validate_batches(batches, self.config.max_batch_bytes)?;
        if self.config.cleanup_compact {
            self.check_keys(batches, &headers)?;
        }
        let base_offset = self.log_end_offset();
        let plan = self.plan(batches, &headers, base_offset)?;
        // What to return to if a write fails part-way (e.g. ENOSPC): the batches of this call
        // are undone so the log stays writable once space returns.
        let mark = self.active().mark();
        let segments_before = self.segments.len();
        // (first offset, segment base, position) of each transaction this append opens.
        let mut opened = Vec::new();
        for (i, &(pos, header)) in plan.writes.iter().enumerate() {
            let total = header.total_bytes();
            if let Err(e) = self.maybe_roll(total as u64, now_ms) {
                return Err(self.undo_append(&mark, segments_before, e));
            }
            // The assigned base offset is written by the segment in place of the client's
            // (the CRC does not cover it), so the request's bytes are never copied to patch it.
            let position = match self
                .active_mut()
                .append(&batches[pos..pos + total], &header)
            {
                Ok(p) => p,
                Err(e) => return Err(self.undo_append(&mark, segments_before, e)),
            };
            if plan.opened.contains(&i) {
                opened.push((header.base_offset, self.active().base_offset, position));
            }
            // The abort's entry goes in the marker's segment; undone with the append.
            if let Some(&(_, entry)) = plan.aborted.iter().find(|(w, _)| *w == i)
                && let Err(e) = self.active_mut().txn_index.append(entry)
            {
                return Err(self.undo_append(&mark, segments_before, e));
            }
        }
        let mut info = AppendInfo {
            base_offset,
            last_offset: plan.next_offset - 1,
            max_timestamp: plan.max_timestamp,
            log_start_offset: self.log_start_offset,
            batches: headers.len(),
            records: plan.records,
            duplicate: false,
            high_watermark: self.high_watermark,
            high_watermark_moved: false,
            rolled: self.segments.len() != segments_before,
            log_append_time_ms: -1,
        };
        if let (true, Some((first, last))) = (plan.writes.is_empty(), plan.duplicate) {
            info.base_offset = first;
            info.last_offset = last;
            info.max_timestamp = -1;
            info.batches = 0;
            info.duplicate = true;
            info.high_watermark_moved = self.high_watermark != high_watermark_before;
            return Ok(info);
        }
        if let Err(e) = self.active_mut().flush() {
            return Err(self.undo_append(&mark, segments_before, e));
        }
        self.producers.apply(plan.producers);
        if !self.config.durable_hw {
            self.high_watermark = plan.next_offset;
            self.hw_segment_base = self.active().base_offset;
            self.hw_position = self.active().size;
        }
        self.txns.completed(plan.completed, self.high_watermark);
        for (first, base, position) in opened {
            self.txns.opened(first, base, position);
        }
        self.txns_moved();
        info.high_watermark = self.high_watermark;
        info.high_watermark_moved = self.high_watermark != high_watermark_before;
        Ok(info)
    }

    /// Decides every batch's fate before anything is written: a retry already in the log is
    /// skipped, the others get consecutive offsets from `base_offset`, and each idempotent
    /// batch's sequence is checked against the producer state plus the batches before it in
    /// this append. Changes nothing; a refused sequence refuses the whole append.
    fn plan(
        &self,
        batches: &[u8],
        headers: &[BatchHeader],
        base_offset: i64,
    ) -> Result<AppendPlan, StorageError> {
        let mut plan = AppendPlan {
            writes: Vec::with_capacity(headers.len()),
            producers: ProducerUpdates::default(),
            completed: Vec::new(),
            opened: Vec::new(),
            aborted: Vec::new(),
            duplicate: None,
            next_offset: base_offset,
            max_timestamp: -1,
            records: 0,
        };
        let mut pos = 0usize;
        for mut header in headers.iter().copied() {
            let total = header.total_bytes();
            let idempotent = header.producer_id >= 0 && !header.is_control();
            if idempotent {
                let check = plan.producers.check(
                    &self.producers,
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
                    plan.duplicate = Some((first_offset, last_offset));
                    pos += total;
                    continue;
                }
                let entry = plan
                    .producers
                    .entry_mut(&self.producers, header.producer_id);
                entry.record(
                    header.producer_epoch,
                    header.base_sequence,
                    header.record_count,
                    plan.next_offset,
                    header.max_timestamp,
                );
                if header.is_transactional() && entry.current_txn_first_offset.is_none() {
                    entry.begin_txn(plan.next_offset);
                    plan.opened.push(plan.writes.len());
                }
            } else if header.is_control() && header.producer_id >= 0 {
                self.plan_marker(&mut plan, &header, &batches[pos..pos + total])?;
            }
            header.base_offset = plan.next_offset;
            plan.writes.push((pos, header));
            plan.next_offset = header.last_offset() + 1;
            plan.max_timestamp = plan.max_timestamp.max(header.max_timestamp);
            plan.records += i64::from(header.record_count);
            pos += total;
        }
        Ok(plan)
    }

    /// An end marker (control batch) at `plan.next_offset`: fenced below the producer's epoch;
    /// closes the producer's open transaction (see `producer_state::txn`), and an abort that
    /// closed one gets a `.txnindex` entry. A control batch holding no recognisable marker
    /// changes no state.
    fn plan_marker(
        &self,
        plan: &mut AppendPlan,
        header: &BatchHeader,
        batch: &[u8],
    ) -> Result<(), StorageError> {
        let (pid, epoch) = (header.producer_id, header.producer_epoch);
        plan.producers.check_marker(&self.producers, pid, epoch)?;
        let Some(kind) = marker_type(batch) else {
            return Ok(());
        };
        let offset = plan.next_offset;
        let others = plan.producers.first_open_txn_except(&self.producers, pid);
        let done = plan.producers.entry_mut(&self.producers, pid).end_txn(
            pid,
            epoch,
            offset,
            header.max_timestamp,
            kind == ControlType::Abort,
        );
        if let Some(done) = done {
            if done.aborted {
                let entry = AbortedEntry {
                    producer_id: pid,
                    first_offset: done.first_offset,
                    last_offset: offset,
                    last_stable_offset: others.unwrap_or(offset + 1),
                };
                plan.aborted.push((plan.writes.len(), entry));
            }
            plan.completed.push(done);
        }
        Ok(())
    }

    /// A compacted log refuses a record without a key (Kafka's `LogValidator`), before anything
    /// is written. Compressed batches are inflated to look (bounded, see `inflate`).
    fn check_keys(&self, batches: &[u8], headers: &[BatchHeader]) -> Result<(), StorageError> {
        let mut pos = 0;
        for h in headers {
            let batch = &batches[pos..pos + h.total_bytes()];
            if !all_records_keyed(h, batch)? {
                let name = self.dir.file_name().map_or_else(
                    || self.dir.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                return Err(StorageError::KeylessRecordInCompactedTopic(name));
            }
            pos += h.total_bytes();
        }
        Ok(())
    }

    /// Undoes a failed append (see `append`) and returns its error. The producer state was not
    /// touched yet, so only the files need undoing. If the append had rolled to a new segment,
    /// or cutting the segment back fails, the log is poisoned instead, with the append's
    /// starting point as the place `heal` cuts back to.
    fn undo_append(
        &mut self,
        mark: &SegmentMark,
        segments_before: usize,
        error: StorageError,
    ) -> StorageError {
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
