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
//!
//! Files, one seam each; every one adds methods to `PartitionLog`, whose fields (and the
//! helpers of this file) they share:
//! - `mod.rs`: the struct, `open` (segments loaded or recovered, checkpoints read) and `close`;
//! - `append.rs`: `append`, validated against the producer state before anything is written;
//! - `roll_retention.rs`: rolling segments, retention, DeleteRecords (the log start offset);
//! - `read.rs`: `ReadView`, the bounds of a read taken under the lock and used outside it;
//! - `max_timestamp.rs`: the batch with the largest timestamp (ListOffsets -3);
//! - `sync.rs`: what the flusher fsyncs and publishing its result;
//! - `heal.rs`: poison after a failed fsync or an undoable append, and healing;
//! - `checkpoints.rs`: checkpoint jobs written outside the lock, ordered against `heal`;
//! - `producers.rs`: the idempotent-producer table's snapshot, replay at open, and expiry;
//! - `compaction.rs`: the log cleaner's snapshot of the segments and the swap of a cleaned one;
//! - `txn.rs`: transactions: the last stable offset, aborted and ongoing transactions,
//!   read_committed views; `txn_rebuild.rs`: rebuilding a lost or damaged `.txnindex`.
//!
//! Open first finishes or undoes a swap of cleaned segments a crash interrupted
//! (`cleaner::swap::complete_at_open`), so the segments it lists never hold an offset twice.
//!
//! Between siblings, calls go one way only: `append` → `roll_retention` (`maybe_roll`) and
//! `heal` (`heal`, `poison_at`); `heal` → `checkpoints` (the gate) and back to `open` here.

mod append;
mod checkpoints;
mod compaction;
pub use self::compaction::{CleanerView, Installed};
mod heal;
mod max_timestamp;
mod producers;
mod read;
pub use self::read::{FileRange, ReadView, Unread};
mod roll_retention;
mod sync;
mod txn;
pub use self::txn::{AbortedTxn, Isolation, OngoingTxn};
#[cfg(test)]
mod tests;
mod txn_rebuild;
#[cfg(test)]
mod txn_tests;

#[cfg(test)]
mod direct_tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::checkpoints::CheckpointGate;
use super::checkpoint;
use super::producer_state::ProducerStateTable;
use super::recovery::{load_segment, recover_segment};
use super::segment::Segment;
use super::{StorageError, sync_dir};

pub use self::append::AppendInfo;
use self::roll_retention::{JitterSource, random_u64, roll_jitter_ms};

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
    /// `segment.jitter.ms`: each segment rolls up to this much before `segment_ms` (a random
    /// amount in `[0, min(jitter, segment_ms))`, chosen when it becomes active; 0: none).
    pub segment_jitter_ms: i64,
    /// Negative: keep forever.
    pub retention_ms: i64,
    /// Negative: unlimited.
    pub retention_bytes: i64,
    pub index_interval_bytes: u64,
    pub max_batch_bytes: usize,
    /// High watermark waits for fsync (fsync policy `always`).
    pub durable_hw: bool,
    /// `cleanup.policy` contains `delete`: retention (`retention_ms`, `retention_bytes`)
    /// deletes old segments.
    pub cleanup_delete: bool,
    /// `cleanup.policy` contains `compact`: the cleaner keeps the latest record per key, and a
    /// record without a key is refused.
    pub cleanup_compact: bool,
    /// A tombstone (null value) is kept this long after its segment was cleaned
    /// (`delete.retention.ms`).
    pub delete_retention_ms: i64,
    /// A record younger than this is never compacted (`min.compaction.lag.ms`).
    pub min_compaction_lag_ms: i64,
    /// A record older than this is compacted even under the dirty ratio
    /// (`max.compaction.lag.ms`).
    pub max_compaction_lag_ms: i64,
    /// Clean when dirty bytes / all bytes of the cleanable part is at least this
    /// (`min.cleanable.dirty.ratio`).
    pub min_cleanable_dirty_ratio: f64,
    /// Appends and record reads go around the page cache (`O_DIRECT`, see
    /// `storage/log_writer.rs`) where the file system allows it; batch headers are still read
    /// through it.
    pub direct_io: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_jitter_ms: 0,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            max_batch_bytes: crate::limits::DEFAULT_MESSAGE_BYTES_MAX as usize,
            durable_hw: true,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: 24 * 3600 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            direct_io: false,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
    /// Offsets below it hold no open transaction's records (Kafka's last stable offset).
    pub last_stable_offset: i64,
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
    /// The cleaner's first dirty offset (`cleaner-checkpoint`); `None`: never cleaned.
    clean_point: Option<i64>,
    /// A cleaning pass holds this log's snapshot (at most one at a time).
    cleaning: bool,
    /// The active segment's roll jitter (`roll_retention::roll_jitter_ms`), chosen when it
    /// became active (created, or loaded at open).
    roll_jitter_ms: i64,
    /// Where roll jitters come from: random, or fixed by a test.
    jitter_source: JitterSource,
    /// Transactions completed but not yet below the high watermark, and a cached position.
    txns: txn::TxnLog,
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
        super::cleaner::swap::complete_at_open(dir)?;
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
                        let txn = super::txn_index::txn_index_path(dir, later);
                        for p in [l, x, t, txn] {
                            let _ = std::fs::remove_file(p);
                        }
                    }
                    bases.truncate(i + 1);
                }
                seg
            } else {
                load_segment(dir, base, config.index_interval_bytes, now_ms)?
            };
            // A cleaned segment may end before the next one begins (its last batches were
            // removed); only overlapping offsets are a problem.
            if let Some(prev) = segments.last()
                && prev.next_offset > seg.base_offset
                && !seg.is_empty()
            {
                log::warn!(
                    "{}: segments {} (ends {}) and {} overlap",
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
        for seg in &mut segments {
            seg.direct_io = config.direct_io;
        }
        let first_base = segments[0].base_offset;
        // Whatever survived recovery is on disk now; make it durable before exposing it and
        // before the recovery point moves past it: the active segment and every segment the
        // old checkpoint did not cover (a crash under `never` leaves them unsynced).
        // After a clean shutdown `close` fsynced all of it (and wrote the recovery point at the
        // log end), so there is nothing to do: with 10,000 partitions those fsyncs were most
        // of a restart.
        let last = segments.len() - 1;
        for (i, seg) in segments.iter_mut().enumerate() {
            if !clean_shutdown && (i == last || seg.next_offset > recovery_point) {
                seg.sync_all()?;
            }
        }
        let active = segments
            .last_mut()
            .ok_or_else(|| StorageError::io(dir, std::io::Error::other("log has no segments")))?;
        let leo = active.next_offset;
        let (hw_base, hw_pos) = (active.base_offset, active.size);
        let log_start_offset = stored_start.clamp(first_base, leo);
        let config_jitter = (config.segment_jitter_ms, config.segment_ms);
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
            clean_point: super::cleaner::checkpoint::read(dir),
            cleaning: false,
            roll_jitter_ms: roll_jitter_ms(config_jitter.0, config_jitter.1, random_u64()),
            jitter_source: random_u64,
            txns: txn::TxnLog::default(),
        };
        let mut log = log;
        log.rebuild_producer_state()?;
        // The replay and rebuilds may have written `.txnindex` files: fsync and close them, so
        // that every segment holds only its `.log` open (the first abort reopens the active
        // segment's index).
        for seg in &mut log.segments {
            seg.seal()?;
        }
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

    /// Replaces the settings while the log runs (AlterConfigs). Rolling, retention and the
    /// batch bound read them at their next use. Leaving `durable_hw` (fsync `always` → another
    /// policy) publishes the log end as the high watermark at once, as the new policy would
    /// have; returns whether the high watermark moved (waiters are to be told). Entering it
    /// needs nothing: what is visible stays visible, later appends wait for an fsync.
    pub fn set_config(&mut self, config: LogConfig) -> bool {
        let was_durable = self.config.durable_hw;
        // A writer already open keeps its mode until the segment rolls.
        self.active_mut().direct_io = config.direct_io;
        self.config = config;
        if was_durable
            && !self.config.durable_hw
            && self.poisoned.is_none()
            && self.high_watermark < self.log_end_offset()
        {
            self.high_watermark = self.log_end_offset();
            self.hw_segment_base = self.active().base_offset;
            self.hw_position = self.active().size;
            self.txns_moved();
            return true;
        }
        false
    }

    pub fn offsets(&self) -> LogOffsets {
        LogOffsets {
            log_start_offset: self.log_start_offset,
            high_watermark: self.high_watermark,
            log_end_offset: self.log_end_offset(),
            last_stable_offset: self.last_stable_offset(),
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

    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    /// Flushes, fsyncs and checkpoints everything (clean shutdown).
    pub fn close(&mut self) -> Result<(), StorageError> {
        if self.poisoned.is_some() && !self.heal(super::now_ms()) {
            return Err(StorageError::Poisoned(self.dir.clone()));
        }
        // Segments rolled since the last fsync (under `never`, all of them) are synced too:
        // the clean-shutdown marker written after this tells the next start to trust them.
        // What an fsync already covers (the recovery point is past it) and checkpoints that
        // are current are not written again: an idle partition's close costs no fsync, so
        // 10,000 of them stop in well under a second instead of tens of seconds.
        let (last, synced_below) = (self.segments.len() - 1, self.recovery_point);
        for (i, seg) in self.segments.iter_mut().enumerate() {
            if seg.next_offset > synced_below {
                seg.sync_all()?;
            } else if i == last {
                seg.sync_indexes()?;
            }
        }
        let leo = self.log_end_offset();
        self.recovery_point = leo;
        self.synced_to = CutPoint {
            offset: leo,
            segment_base: self.active().base_offset,
            position: self.active().size,
        };
        // An empty log with no producers has nothing a snapshot would spare the next start.
        let nothing_to_replay = self.producers.is_empty() && leo == self.log_start_offset;
        if self.producers_expired || (self.producers_saved_at != leo && !nothing_to_replay) {
            self.save_producer_state()?;
        }
        if self.recovery_point_saved != leo {
            checkpoint::write_i64(&self.dir.join(RECOVERY_POINT_FILE), leo)?;
            self.recovery_point_saved = leo;
        }
        Ok(())
    }
}

/// Deletes a segment's four files, ignoring those already gone.
fn remove_segment_files(dir: &Path, base_offset: i64) -> Result<(), StorageError> {
    let (log, index, time_index) = super::segment::segment_paths(dir, base_offset);
    let txn_index = super::txn_index::txn_index_path(dir, base_offset);
    for path in [log, index, time_index, txn_index] {
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
