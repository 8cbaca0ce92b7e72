//! Log compaction, as Kafka's log cleaner: for a partition with `cleanup.policy` containing
//! `compact`, keep the latest record of every key, drop tombstones once their delete horizon
//! has passed, and never change an offset.
//!
//! One pass over one log (`clean_log`):
//! 1. Under the partition lock, briefly: mark the log as being cleaned and snapshot its
//!    segments (bounds + file handles), log start/end, stable offset, clean point and the
//!    producers' last batch offsets (`PartitionLog::begin_clean`).
//! 2. Without the lock: plan (`plan::cleanable`, sans-IO, fed `now`); build the bounded offset
//!    map (`offset_map`) from the dirty section, whole batches, stopping when it is full (then
//!    only the mapped prefix is cleaned this pass, as Kafka); copy every segment from the log
//!    start to the end of the mapped section, grouped into runs of at most `segment.bytes`,
//!    each run into one `.cleaned` segment with its indexes (`copy`). Reads go in chunks of
//!    `io_buffer_bytes`, optionally throttled.
//! 3. Under the lock, per run: check the run is unchanged and swap it in (`swap`, crash-safe;
//!    `PartitionLog::install_cleaned`). A changed run is abandoned and its files deleted.
//! 4. Without the lock: write the new clean point (`checkpoint`), then record it in the log
//!    (`PartitionLog::end_clean`).
//!
//! Tombstones follow Kafka 3.x (KIP-534): the first clean that copies a batch holding a
//! tombstone stamps it with a delete horizon `now + delete.retention.ms` (attribute bit 6,
//! `baseTimestamp`); a later clean at or after the horizon drops the tombstone. A tombstone
//! therefore lives at least `delete.retention.ms` after the clean that first saw it.
//!
//! Transactions: nothing at or above the last stable offset is cleaned (the stable offset is
//! at most it); the data of aborted transactions is neither mapped nor copied, control
//! batches (markers) are always kept, and each cleaned segment's `.txnindex` holds the entries
//! of the segments it replaces (`aborted`).
//!
//! Invariants: offsets never change (a rewritten batch keeps its base and last offset); every
//! record a reader could see before a pass is still there after it unless a later record of
//! the same key is (or it is a tombstone past its horizon, or keyless); the active segment and
//! everything at or above the stable offset are never read or written; the partition lock is
//! never held while segment bytes are read or written.

pub mod aborted;
pub mod checkpoint;
pub mod copy;
pub mod offset_map;
pub mod plan;
pub mod records;
pub mod swap;
#[cfg(test)]
mod tests;
pub mod throttle;

use std::sync::Mutex;

use std::os::unix::fs::FileExt;

use self::aborted::AbortedRanges;
use self::copy::{CopyRules, SegmentSource, build_offset_map, copy_group};
use self::offset_map::OffsetMap;
use self::plan::{CleanPolicy, LogSummary, SegmentSummary};
use self::swap::{CleanedFiles, SwapStep};
use self::throttle::Throttle;
use super::StorageError;
use super::batch::{BATCH_HEADER_BYTES, BatchHeader};
use super::log::{CleanerView, Installed, PartitionLog};

/// How a pass runs.
#[derive(Debug, Clone)]
pub struct CleanerOptions {
    /// Memory of the key → offset map (Kafka's `log.cleaner.dedupe.buffer.size`).
    pub dedupe_buffer_bytes: usize,
    /// Read chunk and write buffer size (Kafka's `log.cleaner.io.buffer.size`).
    pub io_buffer_bytes: usize,
    /// Bound on read+write bytes per second (`None`: unbounded; `throttle`).
    pub io_bytes_per_sec: Option<f64>,
    /// Set when the broker is stopping: a throttled pass stops sleeping.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Clean whatever is cleanable, ignoring the dirty ratio (tests, benchmarks).
    pub force: bool,
    /// Test hook: stop the swap after this step, as a crash there would.
    pub stop_after: Option<SwapStep>,
}

impl Default for CleanerOptions {
    fn default() -> Self {
        CleanerOptions {
            dedupe_buffer_bytes: crate::limits::CLEANER_DEDUPE_BUFFER_BYTES,
            io_buffer_bytes: crate::limits::CLEANER_IO_BUFFER_BYTES,
            io_bytes_per_sec: None,
            stop: None,
            force: false,
            stop_after: None,
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, PartialEq)]
pub enum CleanOutcome {
    /// Not compacted, poisoned, or being cleaned by another pass.
    Skipped,
    /// Under the dirty ratio and not overdue, or nothing cleanable.
    NothingToClean,
    Cleaned(CleanStats),
    /// The log changed under the pass (retention, DeleteRecords, a heal); nothing replaced.
    Abandoned,
    /// The test hook stopped the swap (the log must be reopened).
    Stopped(SwapStep),
}

/// Figures of one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CleanStats {
    pub first_dirty_offset: i64,
    /// The new clean point.
    pub mapped_to_offset: i64,
    /// End of the last segment copied (every segment below it was rewritten or kept).
    pub copied_to_offset: i64,
    pub dirty_ratio: f64,
    pub map_keys: usize,
    pub map_memory_bytes: usize,
    pub segments_before: usize,
    pub segments_after: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
}

fn lock(
    log: &Mutex<PartitionLog>,
) -> Result<std::sync::MutexGuard<'_, PartitionLog>, StorageError> {
    log.lock().map_err(|_| {
        StorageError::io(
            std::path::Path::new("<partition>"),
            std::io::Error::other("log lock poisoned"),
        )
    })
}

/// Runs one cleaning pass over `log` at `now_ms` (see the module doc).
pub fn clean_log(
    log: &Mutex<PartitionLog>,
    options: &CleanerOptions,
    now_ms: i64,
) -> Result<CleanOutcome, StorageError> {
    let (view, dir) = {
        let mut guard = lock(log)?;
        let Some(view) = guard.begin_clean() else {
            return Ok(CleanOutcome::Skipped);
        };
        (view, guard.dir().to_path_buf())
    };
    let result = run(log, &view, &dir, options, now_ms);
    let clean_point = match &result {
        Ok((_, point)) => *point,
        Err(_) => None,
    };
    if let Ok(mut guard) = log.lock() {
        guard.end_clean(clean_point);
    }
    result.map(|(outcome, _)| outcome)
}

/// The pass after `begin_clean`; returns the outcome and the clean point to record.
fn run(
    log: &Mutex<PartitionLog>,
    view: &CleanerView,
    dir: &std::path::Path,
    options: &CleanerOptions,
    now_ms: i64,
) -> Result<(CleanOutcome, Option<i64>), StorageError> {
    let mut throttle = Throttle::new(options.io_bytes_per_sec, options.stop.clone());
    let policy = CleanPolicy {
        min_cleanable_dirty_ratio: view.config.min_cleanable_dirty_ratio,
        min_compaction_lag_ms: view.config.min_compaction_lag_ms,
        max_compaction_lag_ms: view.config.max_compaction_lag_ms,
    };
    let summary = LogSummary {
        segments: view
            .segments
            .iter()
            .map(|s| summarize(s, &mut throttle))
            .collect(),
        log_start_offset: view.log_start_offset,
        log_end_offset: view.log_end_offset,
        stable_offset: view.stable_offset,
        clean_point: view.clean_point,
    };
    let cleanable = plan::cleanable(&summary, &policy, now_ms);
    if cleanable.reset_clean_point {
        checkpoint::write(dir, cleanable.first_dirty_offset)?;
    }
    let wanted =
        cleanable.should_clean(&policy) || (options.force && cleanable.cleanable_bytes > 0);
    if !wanted {
        return Ok((CleanOutcome::NothingToClean, None));
    }
    let (from, to) = (
        cleanable.first_dirty_offset,
        cleanable.first_uncleanable_offset,
    );
    // Whole segments below the first uncleanable offset: the only ones read or replaced.
    // A segment's range ends where the next one begins.
    let ends: Vec<i64> = view
        .segments
        .iter()
        .skip(1)
        .map(|s| s.base_offset)
        .collect();
    let cleanable_segs: Vec<(&SegmentSource, i64)> = view
        .segments
        .iter()
        .zip(ends)
        .filter(|(_, end)| *end <= to)
        .collect();
    let dirty: Vec<SegmentSource> = cleanable_segs
        .iter()
        .filter(|(_, end)| *end > from)
        .map(|(s, _)| (*s).clone())
        .collect();
    let aborted = AbortedRanges::new(view.segments.iter().flat_map(|s| s.aborted.iter()));
    let mut map = OffsetMap::with_memory(options.dedupe_buffer_bytes);
    let end = build_offset_map(
        &dirty,
        from,
        to,
        &aborted,
        &mut map,
        options.io_buffer_bytes,
        &mut throttle,
    )?;
    if end <= from {
        log::warn!(
            "{}: the cleaner's map ({} bytes) cannot hold one batch of the dirty section at {from}",
            dir.display(),
            map.memory_bytes()
        );
        return Ok((CleanOutcome::NothingToClean, None));
    }
    // Every cleanable segment holding offsets below `end` is copied (the clean section too:
    // a key overwritten in the dirty section loses its older records there).
    let copied: Vec<(&SegmentSource, i64)> = cleanable_segs
        .iter()
        .filter(|(s, _)| s.base_offset < end)
        .copied()
        .collect();
    let sized: Vec<(i64, u64)> = copied
        .iter()
        .map(|(s, _)| (s.base_offset, s.size))
        .collect();
    let next_base = copied.last().map_or(to, |(_, end)| *end);
    let rules = CopyRules {
        map: &map,
        now_ms,
        delete_retention_ms: view.config.delete_retention_ms,
        producer_last_offsets: &view.producer_last_offsets,
        aborted: &aborted,
        index_interval_bytes: view.config.index_interval_bytes,
        io_buffer_bytes: options.io_buffer_bytes,
    };
    let mut stats = CleanStats {
        first_dirty_offset: from,
        mapped_to_offset: end,
        copied_to_offset: next_base,
        dirty_ratio: cleanable.dirty_ratio,
        map_keys: map.len(),
        map_memory_bytes: map.memory_bytes(),
        segments_before: copied.len(),
        ..CleanStats::default()
    };
    // Before the first swap: the checkpoint's presence tells recovery that this log may skip
    // offsets between batches (`recovery::may_have_gaps`).
    if !dir.join(checkpoint::CLEANER_CHECKPOINT_FILE).exists() {
        checkpoint::write(dir, from)?;
    }
    for group in plan::group_segments(&sized, next_base, view.config.segment_bytes) {
        let run = &sized[group.clone()];
        let sources: Vec<SegmentSource> = copied[group.clone()]
            .iter()
            .map(|(s, _)| (*s).clone())
            .collect();
        let files = CleanedFiles {
            dir: dir.to_path_buf(),
            base: run[0].0,
            end: sized.get(group.end).map_or(next_base, |s| s.0),
        };
        let copy = match copy_group(&sources, &files, &rules, &mut throttle) {
            Ok(c) => c,
            Err(e) => {
                files.discard();
                return Err(e);
            }
        };
        stats.bytes_read += copy.bytes_read;
        stats.bytes_written += copy.bytes_written;
        stats.records_removed += copy.records_removed;
        let installed = lock(log)?.install_cleaned(run, &files, options.stop_after, now_ms);
        match installed {
            Ok(Installed::Swapped) => stats.segments_after += 1,
            Ok(Installed::Changed) => {
                files.discard();
                log::info!(
                    "{}: log changed during cleaning; pass abandoned",
                    dir.display()
                );
                return Ok((CleanOutcome::Abandoned, None));
            }
            Ok(Installed::Stopped(step)) => return Ok((CleanOutcome::Stopped(step), None)),
            Err(e) => return Err(e),
        }
    }
    checkpoint::write(dir, end)?;
    log::info!(
        "{}: cleaned offsets [{}, {end}): {} segment(s) into {}, {} → {} bytes, {} records removed",
        dir.display(),
        view.log_start_offset,
        stats.segments_before,
        stats.segments_after,
        stats.bytes_read,
        stats.bytes_written,
        stats.records_removed
    );
    Ok((CleanOutcome::Cleaned(stats), Some(end)))
}

/// A segment's summary for the planner; reads its first batch header (outside the lock).
fn summarize(s: &SegmentSource, throttle: &mut Throttle) -> SegmentSummary {
    let mut header = [0u8; BATCH_HEADER_BYTES];
    let first_batch_timestamp =
        if s.size >= BATCH_HEADER_BYTES as u64 && s.file.read_exact_at(&mut header, 0).is_ok() {
            throttle.add(BATCH_HEADER_BYTES as u64);
            BatchHeader::parse(&header).map_or(-1, |h| h.max_timestamp)
        } else {
            -1
        };
    SegmentSummary {
        base_offset: s.base_offset,
        size_bytes: s.size,
        largest_timestamp: s.largest_timestamp,
        first_batch_timestamp,
    }
}
