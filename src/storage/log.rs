//! The log of one partition: an ordered list of segments, the last one active.
//!
//! Offsets: `log_start_offset ≤ high_watermark ≤ log_end_offset`. Consumers read below the high
//! watermark only. When `durable_hw` is set (fsync policy `always`) the high watermark moves
//! only after an fsync covering it (`complete_sync`), so no reader ever sees a record a crash
//! could take back; otherwise it follows the log end offset as soon as bytes reach the OS.
//! `recovery_point` is the offset below which everything has been fsynced; recovery after a
//! crash re-validates only segments that reach past it.
//!
//! Poison and healing: a failed fsync, or an append that failed and could not be undone,
//! poisons the log. Its page cache may then hold bytes the disk never got (Linux marks pages
//! clean after a failed writeback, so a second fsync would report success without writing
//! them), so an fsync is never retried. Instead `heal` cuts the files back to a `CutPoint`
//! known to be on disk — the last successful fsync, or where the failed append began — and
//! reopens them through crash recovery. Under `always` the cut never goes below the high
//! watermark, so no record a consumer saw or a producer had acknowledged is lost; under
//! `never`/`<N>ms` the records after the last fsync go, exactly as a crash would take them.
//!
//! Concurrency: the owner wraps a `PartitionLog` in a mutex. Appends happen under it; reads
//! take it only to build a `ReadView` (file handle + byte bounds) and read outside it; the
//! flusher takes it to snapshot what needs syncing and again to publish the result, never
//! across the fsync itself.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::batch::{BATCH_HEADER_BYTES, BatchError, BatchHeader, validate_batches};
use super::checkpoint;
use super::producer_snapshot;
use super::producer_state::{ProducerStateTable, SequenceCheck};
use super::recovery::{load_segment, recover_segment};
use super::segment::{Segment, SegmentMark, scan_headers};
use super::{StorageError, sync_dir};

const RECOVERY_POINT_FILE: &str = "recovery-point";
const LOG_START_FILE: &str = "log-start-offset";
/// `v2`: entries carry their last timestamp (expiry). The unversioned file of earlier builds is
/// deleted at open and the state rebuilt from the log.
const PRODUCER_STATE_FILE: &str = "producer-state.v2";
const PRODUCER_STATE_FILE_V1: &str = "producer-state";

/// Per-partition storage settings (derived from the topic config).
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    /// Negative: keep forever.
    pub retention_ms: i64,
    /// Negative: unlimited.
    pub retention_bytes: i64,
    pub index_interval_bytes: u64,
    pub max_batch_bytes: usize,
    /// High watermark waits for fsync (fsync policy `always`).
    pub durable_hw: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            max_batch_bytes: 1024 * 1024 + 12,
            durable_hw: true,
        }
    }
}

/// A point in the log that is known to be on disk: an offset and where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutPoint {
    pub offset: i64,
    pub segment_base: i64,
    pub position: u64,
}

/// Orders checkpoint writes made outside the partition lock (`CheckpointJob`) against `heal`,
/// which rewrites the files underneath them: every heal bumps the counter under this mutex,
/// and a job taken before a heal is dropped rather than written over the healed state.
#[derive(Debug, Default)]
struct CheckpointGate(Mutex<u64>);

/// Checkpoints to write, taken under the partition lock and written without it (housekeeping),
/// so a checkpoint's fsyncs never stall appends and reads of the partition.
pub struct CheckpointJob {
    gate: Arc<CheckpointGate>,
    epoch: u64,
    dir: PathBuf,
    recovery_point: Option<i64>,
    /// Producer-state snapshot: the log end offset it is taken at, and its encoding.
    producers: Option<(i64, Vec<u8>)>,
}

impl CheckpointJob {
    /// Writes the checkpoint files. Returns false, writing nothing, if the log healed since
    /// the job was taken.
    pub fn write(&self) -> Result<bool, StorageError> {
        let epoch = self.gate.0.lock().map_err(|_| lock_poisoned(&self.dir))?;
        if *epoch != self.epoch {
            return Ok(false);
        }
        if let Some(rp) = self.recovery_point {
            checkpoint::write_i64(&self.dir.join(RECOVERY_POINT_FILE), rp)?;
        }
        if let Some((_, bytes)) = &self.producers {
            checkpoint::write_bytes(&self.dir.join(PRODUCER_STATE_FILE), bytes)?;
        }
        Ok(true)
    }
}

fn lock_poisoned(dir: &Path) -> StorageError {
    StorageError::io(dir, std::io::Error::other("checkpoint lock poisoned"))
}

/// Least time between two attempts to heal a poisoned log (each one rescans its tail).
const HEAL_RETRY_MS: i64 = 1000;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
}

/// What the flusher must fsync, taken under the lock and used outside it.
#[derive(Debug)]
pub struct SyncSnapshot {
    pub files: Vec<(PathBuf, Arc<File>)>,
    pub log_end_offset: i64,
    segment_base: i64,
    segment_position: u64,
}

/// Bounds of a read, taken under the lock; `read` runs outside it.
#[derive(Debug)]
pub struct ReadView {
    file: Option<(PathBuf, Arc<File>)>,
    start_position: u64,
    /// Base offset the offset index says the batch at `start_position` has (`None`: position
    /// 0 of the segment, not taken from an index entry).
    start_base: Option<i64>,
    limit: u64,
    offset: i64,
    pub offsets: LogOffsets,
}

impl ReadView {
    fn empty(offsets: LogOffsets, offset: i64) -> ReadView {
        ReadView {
            file: None,
            start_position: 0,
            start_base: None,
            limit: 0,
            offset,
            offsets,
        }
    }

    /// Appends to `out` the stored bytes starting at the batch that contains the requested
    /// offset, up to `max_bytes` (the last batch may be cut, as Kafka does), but always at least
    /// one whole batch when `min_one_batch` is set. Returns the number of bytes appended.
    pub fn read_into(
        &self,
        out: &mut Vec<u8>,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<usize, StorageError> {
        let Some((path, file)) = &self.file else {
            return Ok(0);
        };
        let Some((pos, first)) = self.find_batch(file, path)? else {
            return Ok(0);
        };
        let first_len = first.total_bytes() as u64;
        let available = self.limit - pos;
        let mut len = available.min(max_bytes as u64);
        if min_one_batch {
            len = len.max(first_len.min(available));
        }
        if len == 0 {
            return Ok(0);
        }
        let start = out.len();
        out.resize(start + len as usize, 0);
        file.read_exact_at(&mut out[start..], pos)
            .map_err(|e| StorageError::io(path, e))?;
        Ok(len as usize)
    }

    /// Position and header of the batch holding the wanted offset. The offset index is a
    /// cache, and segments below the recovery point are not rescanned at startup: if the
    /// indexed position does not hold the batch the entry names, the segment is scanned from
    /// its start instead. Running past the readable end before finding the offset means a
    /// damaged batch length: that is an error, not "no data" (which a consumer would retry
    /// forever).
    fn find_batch(
        &self,
        file: &File,
        path: &Path,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        // Scans from `from`; returns the result, how many headers were read, and whether the
        // first one had the `expected` base offset.
        let scan = |from: u64, expected: Option<i64>| {
            let (mut headers, mut index_ok) = (0u32, true);
            let found = scan_headers(file, path, from, self.limit, |_, h| {
                headers += 1;
                if headers == 1 && expected.is_some_and(|e| e != h.base_offset) {
                    index_ok = false;
                    return true;
                }
                h.last_offset() >= self.offset
            });
            (found, headers, index_ok)
        };
        let (mut found, mut headers, index_ok) = scan(self.start_position, self.start_base);
        if self.start_base.is_some() && (!index_ok || headers == 0) {
            log::warn!(
                "{}: offset index entry for offset {:?} does not point at that batch \
                 (position {}); scanning the segment from its start",
                path.display(),
                self.start_base,
                self.start_position
            );
            (found, headers, _) = scan(0, None);
        }
        match found? {
            None if headers > 0 => Err(BatchError::Truncated {
                needed: BATCH_HEADER_BYTES,
                available: 0,
            }
            .into()),
            other => Ok(other),
        }
    }
}

#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Sorted by base offset; never empty; the last one is active.
    segments: Vec<Segment>,
    log_start_offset: i64,
    high_watermark: i64,
    /// Segment base offset and byte position of the high watermark.
    hw_segment_base: i64,
    hw_position: u64,
    recovery_point: i64,
    /// Where `recovery_point` sits in the files (what `heal` cuts back to after a failed fsync).
    synced_to: CutPoint,
    /// Set after a failed fsync or an append that could not be undone: the log refuses writes
    /// until `heal` has cut the files back to this point (we never retry an fsync).
    poisoned: Option<CutPoint>,
    /// When `heal` last tried (ms), to bound how often a retrying client triggers a rescan.
    heal_attempted_ms: i64,
    /// Shared with checkpoint jobs in flight; kept across a heal.
    checkpoint_gate: Arc<CheckpointGate>,
    /// Idempotent-producer sequences (see `producer_state`).
    producers: ProducerStateTable,
    /// Log end offset when the producer state was last written to disk.
    producers_saved_at: i64,
    /// Producers expired since the state was last written (it must be rewritten even if the
    /// log did not move, and even if the table is now empty).
    producers_expired: bool,
    /// Recovery point last written to the checkpoint file.
    recovery_point_saved: i64,
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`. With `clean_shutdown` false, every segment that
    /// reaches past the recovery point is validated and a bad tail truncated.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
        now_ms: i64,
    ) -> Result<PartitionLog, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
            let entry = entry.map_err(|e| StorageError::io(dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(stem) = name.strip_suffix(".log")
                && let Ok(base) = stem.parse::<i64>()
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let recovery_point = checkpoint::read_i64(&dir.join(RECOVERY_POINT_FILE)).unwrap_or(0);
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len().max(1));
        let mut i = 0;
        while i < bases.len() {
            let base = bases[i];
            let next_base = bases.get(i + 1).copied().unwrap_or(i64::MAX);
            let needs_scan = !clean_shutdown && next_base > recovery_point;
            let seg = if needs_scan {
                let (seg, outcome) =
                    recover_segment(dir, base, config.index_interval_bytes, now_ms)?;
                if outcome.truncated_bytes > 0 && i + 1 < bases.len() {
                    for &later in &bases[i + 1..] {
                        log::warn!(
                            "recovery of {}: deleting segment {later} after a truncated segment",
                            dir.display()
                        );
                        let (l, x, t) = super::segment::segment_paths(dir, later);
                        for p in [l, x, t] {
                            let _ = std::fs::remove_file(p);
                        }
                    }
                    bases.truncate(i + 1);
                }
                seg
            } else {
                load_segment(dir, base, config.index_interval_bytes, now_ms)?
            };
            if let Some(prev) = segments.last()
                && prev.next_offset != seg.base_offset
                && !seg.is_empty()
            {
                log::warn!(
                    "{}: gap between segments {} (ends {}) and {}",
                    dir.display(),
                    prev.base_offset,
                    prev.next_offset,
                    seg.base_offset
                );
            }
            segments.push(seg);
            i += 1;
        }
        let stored_start = checkpoint::read_i64(&dir.join(LOG_START_FILE)).unwrap_or(0);
        if segments.is_empty() {
            segments.push(Segment::create(
                dir,
                stored_start.max(0),
                config.index_interval_bytes,
                now_ms,
            )?);
            sync_dir(dir)?;
        }
        let first_base = segments[0].base_offset;
        // Whatever survived recovery is on disk now; make it durable before exposing it and
        // before the recovery point moves past it: the active segment and every segment the
        // old checkpoint did not cover (a crash under `never` leaves them unsynced).
        let last = segments.len() - 1;
        for (i, seg) in segments.iter_mut().enumerate() {
            if i == last || seg.next_offset > recovery_point {
                seg.sync_all()?;
            }
        }
        let active = segments
            .last_mut()
            .ok_or_else(|| StorageError::io(dir, std::io::Error::other("log has no segments")))?;
        let leo = active.next_offset;
        let (hw_base, hw_pos) = (active.base_offset, active.size);
        let log_start_offset = stored_start.clamp(first_base, leo);
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            high_watermark: leo,
            hw_segment_base: hw_base,
            hw_position: hw_pos,
            recovery_point: leo,
            synced_to: CutPoint {
                offset: leo,
                segment_base: hw_base,
                position: hw_pos,
            },
            poisoned: None,
            heal_attempted_ms: i64::MIN,
            checkpoint_gate: Arc::default(),
            producers: ProducerStateTable::default(),
            producers_saved_at: -1,
            producers_expired: false,
            recovery_point_saved: leo,
        };
        let mut log = log;
        log.rebuild_producer_state()?;
        if recovery_point != leo {
            checkpoint::write_i64(&dir.join(RECOVERY_POINT_FILE), leo)?;
        }
        if stored_start > leo {
            // The records a start past the log end hid are gone (a cut tail): keep the clamped
            // start, or the next open would hide the records appended from here on.
            checkpoint::write_i64(&dir.join(LOG_START_FILE), log_start_offset)?;
        }
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn offsets(&self) -> LogOffsets {
        LogOffsets {
            log_start_offset: self.log_start_offset,
            high_watermark: self.high_watermark,
            log_end_offset: self.log_end_offset(),
        }
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    fn active(&self) -> &Segment {
        // Invariant: `segments` is never empty (open creates one; deletion keeps the active).
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

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

    /// Rolls to a new segment if the next `incoming_bytes` would overflow the active one, or it
    /// has been open longer than `segment_ms`. An empty active segment is never rolled.
    fn maybe_roll(&mut self, incoming_bytes: u64, now_ms: i64) -> Result<(), StorageError> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let full = active.size + incoming_bytes > self.config.segment_bytes;
        let old = now_ms - active.created_ms >= self.config.segment_ms;
        if full || old {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    fn roll(&mut self, now_ms: i64) -> Result<(), StorageError> {
        let next = self.log_end_offset();
        let interval = self.config.index_interval_bytes;
        let old = self.active_mut();
        old.flush()?;
        old.flush_indexes()?;
        let seg = Segment::create(&self.dir, next, interval, now_ms)?;
        sync_dir(&self.dir)?;
        log::debug!(
            "{}: rolled new segment at offset {next}",
            self.dir.display()
        );
        self.segments.push(seg);
        Ok(())
    }

    /// Rolls the active segment if it is older than `segment_ms` (called by housekeeping).
    pub fn roll_if_expired(&mut self, now_ms: i64) -> Result<(), StorageError> {
        self.maybe_roll(0, now_ms)
    }

    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    /// Builds a read view starting at `offset`. Offsets above the log end offset or below the
    /// log start offset are out of range; offsets in `[high_watermark, log_end_offset]` read
    /// nothing yet.
    pub fn read_view(&self, offset: i64) -> Result<ReadView, StorageError> {
        let offsets = self.offsets();
        if offset < self.log_start_offset || offset > offsets.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: offsets.log_end_offset,
            });
        }
        if offset >= self.high_watermark {
            return Ok(ReadView::empty(offsets, offset));
        }
        let mut idx = self.segment_index_for(offset);
        while idx < self.segments.len() && self.segments[idx].next_offset <= offset {
            idx += 1;
        }
        let Some(seg) = self.segments.get(idx) else {
            return Ok(ReadView::empty(offsets, offset));
        };
        let limit = if seg.base_offset < self.hw_segment_base {
            seg.size
        } else if seg.base_offset == self.hw_segment_base {
            self.hw_position.min(seg.size)
        } else {
            0
        };
        let rel = (offset.max(seg.base_offset) - seg.base_offset) as u32;
        let entry = seg.index.floor(rel).filter(|e| e.position > 0);
        Ok(ReadView {
            file: Some((seg.log_path.clone(), seg.reader())),
            start_position: entry.map_or(0, |e| u64::from(e.position)),
            start_base: entry.map(|e| seg.base_offset + i64::from(e.relative_offset)),
            limit,
            offset,
            offsets,
        })
    }

    /// Reads the first stored batch whose max timestamp is ≥ `timestamp` (visible part only).
    pub fn batch_at_timestamp(&self, timestamp: i64) -> Result<Option<Vec<u8>>, StorageError> {
        for seg in &self.segments {
            if seg.base_offset >= self.high_watermark {
                break;
            }
            let limit = if seg.base_offset == self.hw_segment_base {
                self.hw_position.min(seg.size)
            } else {
                seg.size
            };
            if let Some((base, _)) = seg.find_by_timestamp(timestamp, limit)? {
                if base < self.log_start_offset && seg.next_offset <= self.log_start_offset {
                    continue;
                }
                let view = self.read_view(base.max(self.log_start_offset))?;
                let mut out = Vec::new();
                view.read_into(&mut out, 0, true)?;
                return Ok(Some(out));
            }
        }
        Ok(None)
    }

    /// Snapshot of what needs an fsync, or `None` when everything is already durable.
    pub fn sync_snapshot(&self) -> Option<SyncSnapshot> {
        let leo = self.log_end_offset();
        if leo <= self.recovery_point || self.poisoned.is_some() {
            return None;
        }
        let files = self
            .segments
            .iter()
            .filter(|s| s.next_offset > self.recovery_point && !s.is_empty())
            .map(|s| (s.log_path.clone(), s.sync_handle()))
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
            return true;
        }
        false
    }

    /// Marks the log failed after an fsync error: it heals back to the last successful fsync.
    pub fn poison(&mut self) {
        self.poison_at(self.synced_to);
    }

    fn poison_at(&mut self, cut: CutPoint) {
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
        let (_, index, time_index) = super::segment::segment_paths(&self.dir, seg.base_offset);
        for path in [index, time_index] {
            remove_if_present(&path)?;
        }
        let log_path = seg.log_path.clone();
        seg.sync_handle()
            .sync_data()
            .map_err(|e| StorageError::io(&log_path, e))?;
        sync_dir(&self.dir)?;
        // The kept segment is the last one now, so `open` rescans it whatever the checkpoint.
        let fresh = PartitionLog::open(&self.dir, self.config.clone(), false, now_ms)?;
        *self = fresh;
        Ok(before - self.log_end_offset())
    }

    /// Deletes whole segments past `retention_ms` / `retention_bytes`, never the active one nor
    /// anything at or above the high watermark. Returns the number of segments deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, StorageError> {
        let mut deleted = 0;
        let mut total: i64 = self.size_bytes() as i64;
        while self.segments.len() > 1 {
            let seg = &self.segments[0];
            if seg.next_offset > self.high_watermark {
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

    /// Flushes, fsyncs and checkpoints everything (clean shutdown).
    pub fn close(&mut self) -> Result<(), StorageError> {
        if self.poisoned.is_some() && !self.heal(super::now_ms()) {
            return Err(StorageError::Poisoned(self.dir.clone()));
        }
        // Segments rolled since the last fsync (under `never`, all of them) are synced too:
        // the clean-shutdown marker written after this tells the next start to trust them.
        let (last, synced_below) = (self.segments.len() - 1, self.recovery_point);
        for (i, seg) in self.segments.iter_mut().enumerate() {
            if i == last || seg.next_offset > synced_below {
                seg.sync_all()?;
            }
        }
        let leo = self.log_end_offset();
        self.recovery_point = leo;
        self.synced_to = CutPoint {
            offset: leo,
            segment_base: self.active().base_offset,
            position: self.active().size,
        };
        self.save_producer_state()?;
        checkpoint::write_i64(&self.dir.join(RECOVERY_POINT_FILE), leo)?;
        self.recovery_point_saved = leo;
        Ok(())
    }

    /// The checkpoints that are out of date (the recovery point, and the producer state when
    /// there is one), for housekeeping to write outside the lock; `None` if all are current.
    /// A recovery point written late is still one that was durable, so at worst it makes a
    /// later recovery rescan more.
    pub fn checkpoint_job(&self) -> Result<Option<CheckpointJob>, StorageError> {
        let leo = self.log_end_offset();
        let recovery_point =
            (self.recovery_point_saved != self.recovery_point).then_some(self.recovery_point);
        let producers = if self.producers_expired
            || (!self.producers.is_empty() && self.producers_saved_at != leo)
        {
            let bytes = producer_snapshot::encode(leo, &self.producers)
                .map_err(|e| StorageError::io(&self.dir, e))?;
            Some((leo, bytes))
        } else {
            None
        };
        if recovery_point.is_none() && producers.is_none() {
            return Ok(None);
        }
        let epoch = *self
            .checkpoint_gate
            .0
            .lock()
            .map_err(|_| lock_poisoned(&self.dir))?;
        Ok(Some(CheckpointJob {
            gate: Arc::clone(&self.checkpoint_gate),
            epoch,
            dir: self.dir.clone(),
            recovery_point,
            producers,
        }))
    }

    /// Records a written job (unless the log healed in between: then the next job rewrites).
    pub fn checkpoint_written(&mut self, job: &CheckpointJob) {
        let current = self.checkpoint_gate.0.lock().map(|e| *e).ok();
        if !Arc::ptr_eq(&self.checkpoint_gate, &job.gate) || current != Some(job.epoch) {
            return;
        }
        if let Some(rp) = job.recovery_point {
            self.recovery_point_saved = rp;
        }
        if let Some((at, _)) = job.producers {
            self.producers_saved_at = at;
            self.producers_expired = false;
        }
    }

    /// Writes the out-of-date checkpoints while holding the log (see `checkpoint_job`).
    pub fn checkpoint_recovery_point(&mut self) -> Result<(), StorageError> {
        if let Some(job) = self.checkpoint_job()?
            && job.write()?
        {
            self.checkpoint_written(&job);
        }
        Ok(())
    }

    pub fn producer_state(&self) -> &ProducerStateTable {
        &self.producers
    }

    /// Forgets idempotent producers idle for `expiration_ms` (see `producer_state`); the
    /// next checkpoint writes the smaller table. Returns how many were removed.
    pub fn expire_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let removed = self.producers.remove_expired(now_ms, expiration_ms);
        if removed > 0 {
            self.producers_expired = true;
        }
        removed
    }

    /// Writes the producer state as of the log end offset (a snapshot; the tail after it is
    /// re-read at startup).
    fn save_producer_state(&mut self) -> Result<(), StorageError> {
        let leo = self.log_end_offset();
        let bytes = producer_snapshot::encode(leo, &self.producers)
            .map_err(|e| StorageError::io(&self.dir, e))?;
        checkpoint::write_bytes(&self.dir.join(PRODUCER_STATE_FILE), &bytes)?;
        self.producers_saved_at = leo;
        self.producers_expired = false;
        Ok(())
    }

    /// Loads the producer-state snapshot and replays batch headers after it.
    fn rebuild_producer_state(&mut self) -> Result<(), StorageError> {
        let leo = self.log_end_offset();
        let legacy = self.dir.join(PRODUCER_STATE_FILE_V1);
        if legacy.exists() {
            std::fs::remove_file(&legacy).map_err(|e| StorageError::io(&legacy, e))?;
        }
        let path = self.dir.join(PRODUCER_STATE_FILE);
        let snapshot =
            checkpoint::read_bytes(&path).and_then(|b| producer_snapshot::decode(&b, &path));
        // A snapshot past the log end describes records a recovery or a heal cut away. Once
        // the log grows past that offset again it would look valid, so it goes now.
        let snapshot = match snapshot {
            Some((at, _)) if at > leo => {
                std::fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
                None
            }
            other => other,
        };
        let (from, table) =
            snapshot.unwrap_or((self.log_start_offset, ProducerStateTable::default()));
        self.producers = table;
        for seg in &self.segments {
            if seg.next_offset <= from {
                continue;
            }
            let producers = &mut self.producers;
            let scanned = seg
                .position_of(from.max(seg.base_offset), seg.size)
                .and_then(|start| match start {
                    None => Ok(None),
                    Some(start) => {
                        scan_headers(&seg.reader(), &seg.log_path, start, seg.size, |_, h| {
                            if h.producer_id >= 0 && !h.is_control() && h.base_offset >= from {
                                producers.record(
                                    h.producer_id,
                                    h.producer_epoch,
                                    h.base_sequence,
                                    h.record_count,
                                    h.base_offset,
                                    h.max_timestamp,
                                );
                            }
                            false
                        })
                    }
                });
            if let Err(StorageError::Batch(e)) = &scanned {
                // A damaged batch in a segment that was not rescanned (clean shutdown, or below
                // the recovery point): reads report it; the partition must still open.
                log::warn!(
                    "{}: producer state rebuilt only up to a damaged batch: {e}",
                    seg.log_path.display()
                );
                break;
            }
            scanned?;
        }
        self.producers_saved_at = if from == leo { leo } else { -1 };
        Ok(())
    }
}

/// Deletes a segment's three files, ignoring those already gone.
fn remove_segment_files(dir: &Path, base_offset: i64) -> Result<(), StorageError> {
    let (log, index, time_index) = super::segment::segment_paths(dir, base_offset);
    for path in [log, index, time_index] {
        remove_if_present(&path)?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::io(path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::tests::make_batch;
    use crate::storage::segment::failpoint;

    fn config() -> LogConfig {
        LogConfig {
            durable_hw: false,
            index_interval_bytes: 1,
            ..LogConfig::default()
        }
    }

    #[test]
    fn failed_write_is_rolled_back_and_the_log_stays_writable() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PartitionLog::open(dir.path(), config(), true, 0).expect("open");
        log.append(&make_batch(3, b"first", 1), 1).expect("append");
        let (size, index_len) = (log.size_bytes(), log.active().index.entries().len());

        // Disk full on a single-batch append: error, nothing written, not poisoned.
        failpoint::fail_writes(0, 1);
        let err = log
            .append(&make_batch(2, b"second", 2), 2)
            .expect_err("ENOSPC");
        assert!(matches!(err, StorageError::Io { .. }), "{err}");
        assert!(!log.is_poisoned());
        assert_eq!((log.log_end_offset(), log.size_bytes()), (3, size));
        assert_eq!(log.active().index.entries().len(), index_len);

        // Two batches in one call, the second fails: the first (still in the write buffer)
        // is undone too, and the file is cut back.
        failpoint::fail_writes(1, 1);
        let mut two = make_batch(1, b"a", 3);
        two.extend(make_batch(1, b"b", 3));
        assert!(log.append(&two, 3).is_err());
        assert_eq!((log.log_end_offset(), log.size_bytes()), (3, size));

        // Space is back: appends continue at the right offset and the file is clean.
        let info = log.append(&make_batch(2, b"third", 4), 4).expect("append");
        assert_eq!(info.base_offset, 3);
        log.close().expect("close");
        drop(log);
        let len = std::fs::metadata(dir.path().join(crate::storage::segment_file_name(0, "log")))
            .expect("meta")
            .len();
        let reopened = PartitionLog::open(dir.path(), config(), false, 5).expect("reopen");
        assert_eq!(
            reopened.log_end_offset(),
            5,
            "every surviving batch validates"
        );
        assert_eq!(reopened.size_bytes(), len, "recovery cut nothing");
    }

    /// Every byte stored from `offset` to the high watermark.
    fn stored_from(log: &PartitionLog, offset: i64) -> Vec<u8> {
        let mut out = Vec::new();
        log.read_view(offset)
            .expect("view")
            .read_into(&mut out, usize::MAX, true)
            .expect("read");
        out
    }

    /// Runs one flusher round by hand: snapshot, fsync, publish.
    fn sync(log: &mut PartitionLog) {
        let snap = log.sync_snapshot().expect("something to sync");
        for (_, f) in &snap.files {
            f.sync_data().expect("fsync");
        }
        log.complete_sync(&snap);
    }

    #[test]
    fn failed_fsync_heals_back_to_the_last_successful_one() {
        let dir = tempfile::tempdir().expect("tmp");
        let durable = LogConfig {
            durable_hw: true,
            segment_bytes: 300,
            index_interval_bytes: 1,
            ..LogConfig::default()
        };
        let mut log = PartitionLog::open(dir.path(), durable.clone(), true, 0).expect("open");
        // Two segments' worth synced, then one more append the fsync of which fails.
        for i in 0..4u8 {
            log.append(&make_batch(2, &[i; 100], 1), 1).expect("append");
        }
        sync(&mut log);
        let acked = stored_from(&log, 0);
        assert_eq!(log.high_watermark(), 8);
        log.append(&make_batch(3, &[9; 100], 2), 2).expect("append");
        log.append(&make_batch(3, &[8; 100], 2), 2).expect("append");
        assert!(log.segment_count() >= 3, "the unsynced appends rolled");
        assert!(log.sync_snapshot().is_some());
        log.poison();
        assert!(
            log.sync_snapshot().is_none(),
            "never fsynced again while poisoned"
        );
        // Reads below the high watermark keep working while poisoned.
        assert_eq!(stored_from(&log, 0), acked);

        // The next append heals: the unsynced records are dropped and offsets continue from
        // the last fsync, as after a crash.
        let info = log.append(&make_batch(1, b"after", 3), 3).expect("healed");
        assert!(!log.is_poisoned());
        assert_eq!(info.base_offset, 8);
        sync(&mut log);
        assert_eq!(log.high_watermark(), 9);
        assert_eq!(&stored_from(&log, 0)[..acked.len()], &acked[..]);
        log.close().expect("close");
        drop(log);
        let reopened = PartitionLog::open(dir.path(), durable, false, 4).expect("reopen");
        assert_eq!(reopened.log_end_offset(), 9);
        assert_eq!(&stored_from(&reopened, 0)[..acked.len()], &acked[..]);
        let bases: Vec<i64> = reopened.segments.iter().map(|s| s.base_offset).collect();
        assert!(
            bases.iter().all(|&b| b <= 8),
            "segments past the cut deleted: {bases:?}"
        );
    }

    /// One record from idempotent producer `pid` (epoch 0) with sequence `seq`.
    fn idempotent(pid: i64, seq: i32) -> Vec<u8> {
        crate::storage::batch::tests::make_idempotent_batch(pid, 0, seq, 1)
    }

    #[test]
    fn producer_state_from_past_a_heal_is_never_trusted_again() {
        let dir = tempfile::tempdir().expect("tmp");
        let durable = LogConfig {
            durable_hw: true,
            ..config()
        };
        let mut log = PartitionLog::open(dir.path(), durable.clone(), true, 0).expect("open");
        log.append(&idempotent(7, 0), 1).expect("seq 0");
        sync(&mut log);
        log.append(&idempotent(7, 1), 1).expect("seq 1");
        // Housekeeping snapshots the producer state at offset 2 (seq 1 included), and takes
        // another job it has not written yet when the fsync fails.
        log.checkpoint_recovery_point().expect("checkpoint");
        log.append(&make_batch(1, b"x", 1), 1).expect("append");
        let late = log
            .checkpoint_job()
            .expect("job")
            .expect("something to write");
        log.poison();
        // Healing cuts seq 1 away (it was never durable) and drops the snapshot past the cut.
        let info = log.append(&make_batch(1, b"plain", 2), 2).expect("healed");
        assert_eq!(info.base_offset, 1);
        assert!(
            !late.write().expect("write"),
            "a job from before the heal is dropped"
        );
        log.append(&make_batch(1, b"plain", 2), 2).expect("append");
        log.append(&make_batch(1, b"plain", 2), 2).expect("append");
        sync(&mut log);
        // Crash (no close), so the next open rebuilds producer state from what is on disk.
        drop(log);
        let mut log = PartitionLog::open(dir.path(), durable, false, 3).expect("reopen");
        assert_eq!(log.log_end_offset(), 4);
        // The producer's retry of seq 1 is new data, not a duplicate of a record that is gone.
        let retry = log.append(&idempotent(7, 1), 4).expect("retry");
        assert!(!retry.duplicate);
        assert_eq!(retry.base_offset, 4);
    }

    #[test]
    fn append_that_rolled_and_failed_heals_back_to_where_it_began() {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = LogConfig {
            segment_bytes: 250,
            ..config()
        };
        let mut log = PartitionLog::open(dir.path(), cfg.clone(), true, 0).expect("open");
        log.append(&make_batch(2, &[1; 100], 1), 1).expect("append");
        log.append(&make_batch(2, &[2; 100], 1), 1).expect("append");
        let kept = stored_from(&log, 0);
        let segments = log.segment_count();
        // This append rolls to a new segment, then its write fails: it cannot be undone in
        // place, so the log is poisoned with the append's start as the cut point.
        failpoint::fail_writes(0, 1);
        assert!(log.append(&make_batch(2, &[3; 100], 2), 2).is_err());
        assert!(log.is_poisoned());
        assert_eq!(log.segment_count(), segments + 1);

        // Nothing acknowledged is lost (this log is not `durable_hw`; nothing was fsynced):
        // the cut is where the failed append began, not the last fsync.
        let info = log.append(&make_batch(1, b"next", 3), 3).expect("healed");
        assert_eq!(info.base_offset, 4);
        assert_eq!(&stored_from(&log, 0)[..kept.len()], &kept[..]);
        // A retry inside the same second after a new poison does not rescan.
        log.poison();
        let err = log.append(&make_batch(1, b"x", 3), 3 + HEAL_RETRY_MS - 1);
        assert!(matches!(err, Err(StorageError::Poisoned(_))), "{err:?}");
        assert!(
            log.append(&make_batch(1, b"x", 3), 3 + HEAL_RETRY_MS)
                .is_ok()
        );
        log.close().expect("close");
    }
}
