//! What the log cleaner (`storage::cleaner`) needs from a `PartitionLog`, each call a short
//! critical section: a snapshot of the segments to read without the lock (`begin_clean`), and
//! the swap of a cleaned segment for the run it replaces (`install_cleaned`), which re-checks
//! that the run is still exactly what was read.
//!
//! Invariants: at most one clean of a log runs at a time (`cleaning`, set by `begin_clean`,
//! cleared by `end_clean`); only segments wholly below the stable offset (see `stable_offset`)
//! (at most the last stable offset) are handed out, so nothing the append, flush or heal paths
//! write is ever read or replaced
//! by the cleaner; a run is replaced only if every segment of it is still in the log with the
//! base offset and size it had when read, followed by a segment at the run's end.

use std::collections::HashMap;

use super::{LogConfig, PartitionLog};
use crate::storage::StorageError;
use crate::storage::cleaner::copy::SegmentSource;
use crate::storage::cleaner::swap::{self, CleanedFiles, SwapStep};
use crate::storage::recovery::load_segment;

/// A log as the cleaner reads it, taken under the lock.
#[derive(Debug, Clone)]
pub struct CleanerView {
    pub config: LogConfig,
    /// Every segment, the active one last.
    pub segments: Vec<SegmentSource>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// Nothing at or above this offset is cleaned.
    pub stable_offset: i64,
    pub clean_point: Option<i64>,
    /// Last offset of each known producer's last batch.
    pub producer_last_offsets: HashMap<i64, i64>,
}

/// What `install_cleaned` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    Swapped,
    /// The run changed meanwhile (retention, DeleteRecords, a heal): nothing was replaced.
    Changed,
    /// The test hook stopped the swap after this step (files left as a crash would).
    Stopped(SwapStep),
}

impl PartitionLog {
    /// Marks a clean as running and returns what it reads; `None` if the log is not
    /// compacted, is poisoned, or is being cleaned already.
    pub fn begin_clean(&mut self) -> Option<CleanerView> {
        if !self.config.cleanup_compact || self.poisoned.is_some() || self.cleaning {
            return None;
        }
        self.cleaning = true;
        let segments = self
            .segments
            .iter()
            .map(|s| SegmentSource {
                base_offset: s.base_offset,
                size: s.size,
                largest_timestamp: s.max_timestamp,
                path: s.log_path.clone(),
                file: s.reader(),
                aborted: s.txn_index.entries().to_vec(),
            })
            .collect();
        Some(CleanerView {
            config: self.config.clone(),
            segments,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset(),
            stable_offset: self.stable_offset(),
            clean_point: self.clean_point,
            producer_last_offsets: self
                .producers
                .entries()
                .filter_map(|(id, e)| e.batches.back().map(|b| (*id, b.last_offset)))
                .collect(),
        })
    }

    /// Ends the clean `begin_clean` started; `clean_point` is the new first dirty offset.
    pub fn end_clean(&mut self, clean_point: Option<i64>) {
        self.cleaning = false;
        if clean_point.is_some() {
            self.clean_point = clean_point;
        }
    }

    /// The first dirty offset the cleaner last recorded (`None`: never cleaned).
    pub fn clean_point(&self) -> Option<i64> {
        self.clean_point
    }

    /// The offset below which segments may be cleaned: under the last stable offset (so every
    /// transaction there is decided and its abort entry written), the high watermark and the
    /// recovery point, and before the segments the high watermark and the last fsync point
    /// are positions in (the flusher and `heal` address those by base offset and position).
    fn stable_offset(&self) -> i64 {
        self.last_stable_offset()
            .min(self.high_watermark)
            .min(self.recovery_point)
            .min(self.hw_segment_base)
            .min(self.synced_to.segment_base)
            .min(self.active().base_offset)
    }

    /// Replaces the run of segments `run` (base offset, size) by the cleaned segment `files`,
    /// following the swap protocol of `cleaner::swap`.
    pub fn install_cleaned(
        &mut self,
        run: &[(i64, u64)],
        files: &CleanedFiles,
        stop_after: Option<SwapStep>,
        now_ms: i64,
    ) -> Result<Installed, StorageError> {
        let Some(first) = self
            .segments
            .iter()
            .position(|s| Some(s.base_offset) == run.first().map(|r| r.0))
        else {
            return Ok(Installed::Changed);
        };
        let end = first + run.len();
        let same = end < self.segments.len()
            && self.segments[first..end]
                .iter()
                .zip(run)
                .all(|(s, &(base, size))| s.base_offset == base && s.size == size)
            && self.segments[end].base_offset == files.end
            && files.end <= self.stable_offset();
        if !same || self.poisoned.is_some() {
            return Ok(Installed::Changed);
        }
        let bases: Vec<i64> = run.iter().map(|r| r.0).collect();
        match swap::commit(files, &bases, stop_after) {
            Ok(Some(step)) => return Ok(Installed::Stopped(step)),
            Ok(None) => {}
            Err(e) => {
                // The files may be half swapped: reopening (a heal, or the next start)
                // finishes or undoes the swap from what is on disk (`swap::complete_at_open`).
                log::error!(
                    "{}: swapping a cleaned segment failed, the log reopens: {e}",
                    self.dir.display()
                );
                self.poison();
                return Err(e);
            }
        }
        let seg = load_segment(
            &self.dir,
            files.base,
            self.config.index_interval_bytes,
            now_ms,
        )?;
        self.segments.splice(first..end, [seg]);
        Ok(Installed::Swapped)
    }
}
