//! Replacing old segments by a cleaned one, crash-safely, and finishing or undoing a swap that
//! a crash interrupted (run by `PartitionLog::open` before it lists the segments).
//!
//! A cleaned segment replaces the run of old segments with base offsets in `[base, end)`
//! (`end` is the base of the first segment after the run); it takes the base offset `base`.
//! Its files, named with both offsets so that recovery knows exactly what it replaces:
//! ```text
//! <base:020>-<end:020>.log.cleaned        RecordBatch v2 bytes, as a `.log` (being written)
//! <base:020>-<end:020>.index.cleaned      offset index for it, as a `.index`
//! <base:020>-<end:020>.timeindex.cleaned  time index for it, as a `.timeindex`
//! <base:020>-<end:020>.txnindex.cleaned   the replaced segments' aborted-txn entries, as a `.txnindex`
//! <base:020>-<end:020>.log.swap           the same log bytes, once committed
//! ```
//! The protocol (`commit`, under the partition lock; the data was written and fsynced
//! before, without it), with what a crash after each step leaves and what open does:
//! 1. `CleanedWritten` — the `.cleaned` files exist (log fsynced). Open deletes every
//!    `.cleaned` file: the old segments are untouched, the clean is simply lost.
//! 2. `SwapRenamed` — `.log.cleaned` renamed to `.log.swap`, directory fsynced. **This is the
//!    commit point**: from here on open completes the swap: it deletes every `.log`, `.index`,
//!    `.timeindex` and `.txnindex` whose base is in `[base, end)`, then renames the `.swap` to
//!    `<base>.log` (its indexes are rebuilt from it, they were deleted with the old ones; the
//!    `.txnindex` from the log, as a missing one is).
//! 3. `OldPartlyDeleted` / `OldDeleted` — the old segments' four files are deleted one
//!    segment at a time (first one only / all), then the directory is fsynced, so the old
//!    files are durably gone before a `.log` can cover their offsets again.
//! 4. `IndexesRenamed` — the three `.index.cleaned`/`.timeindex.cleaned`/`.txnindex.cleaned`
//!    files are renamed to `<base>.index`/`<base>.timeindex`/`<base>.txnindex` (open deletes
//!    and rebuilds them anyway: they are caches).
//! 5. `Done` — `.log.swap` renamed to `<base>.log`, directory fsynced.
//!
//! So at any crash point either every old segment is present and no `.swap` exists (nothing
//! happened), or a `.swap` exists and open finishes the replacement: no record is lost (the
//! `.swap` was fsynced before it was named) and no offset is held twice (old files in the
//! range are deleted before the `.swap` becomes a `.log`).

use std::path::{Path, PathBuf};

use crate::storage::segment::segment_paths;
use crate::storage::txn_index::txn_index_path;
use crate::storage::{StorageError, sync_dir};

/// A step of `commit`, after which a test may stop it (a simulated crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapStep {
    CleanedWritten,
    SwapRenamed,
    OldPartlyDeleted,
    OldDeleted,
    IndexesRenamed,
    Done,
}

/// Every step, in order.
pub const SWAP_STEPS: [SwapStep; 6] = [
    SwapStep::CleanedWritten,
    SwapStep::SwapRenamed,
    SwapStep::OldPartlyDeleted,
    SwapStep::OldDeleted,
    SwapStep::IndexesRenamed,
    SwapStep::Done,
];

/// The files of one cleaned segment replacing the segments in `[base, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanedFiles {
    pub dir: PathBuf,
    pub base: i64,
    pub end: i64,
}

impl CleanedFiles {
    fn stem(&self) -> String {
        format!("{:020}-{:020}", self.base, self.end)
    }

    pub fn log_cleaned(&self) -> PathBuf {
        self.dir.join(format!("{}.log.cleaned", self.stem()))
    }

    pub fn index_cleaned(&self) -> PathBuf {
        self.dir.join(format!("{}.index.cleaned", self.stem()))
    }

    pub fn time_index_cleaned(&self) -> PathBuf {
        self.dir.join(format!("{}.timeindex.cleaned", self.stem()))
    }

    pub fn txn_index_cleaned(&self) -> PathBuf {
        self.dir.join(format!("{}.txnindex.cleaned", self.stem()))
    }

    pub fn log_swap(&self) -> PathBuf {
        self.dir.join(format!("{}.log.swap", self.stem()))
    }

    /// Removes the `.cleaned` files (an abandoned clean).
    pub fn discard(&self) {
        for p in [
            self.log_cleaned(),
            self.index_cleaned(),
            self.time_index_cleaned(),
            self.txn_index_cleaned(),
        ] {
            if let Err(e) = std::fs::remove_file(&p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                log::warn!("cannot remove {}: {e}", p.display());
            }
        }
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), StorageError> {
    std::fs::rename(from, to).map_err(|e| StorageError::io(from, e))
}

fn remove(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::io(path, e)),
        _ => Ok(()),
    }
}

fn remove_segment(dir: &Path, base: i64) -> Result<(), StorageError> {
    let (log, index, time) = segment_paths(dir, base);
    for p in [index, time, txn_index_path(dir, base), log] {
        remove(&p)?;
    }
    Ok(())
}

/// Runs the protocol of the module doc for `files`, replacing the segments `old_bases`.
/// Returns the step it stopped after when `stop_after` names one (test hook), else `None`.
pub fn commit(
    files: &CleanedFiles,
    old_bases: &[i64],
    stop_after: Option<SwapStep>,
) -> Result<Option<SwapStep>, StorageError> {
    let stop = |step| (stop_after == Some(step)).then_some(step);
    if let Some(s) = stop(SwapStep::CleanedWritten) {
        return Ok(Some(s));
    }
    let dir = &files.dir;
    rename(&files.log_cleaned(), &files.log_swap())?;
    sync_dir(dir)?;
    if let Some(s) = stop(SwapStep::SwapRenamed) {
        return Ok(Some(s));
    }
    for (i, &base) in old_bases.iter().enumerate() {
        remove_segment(dir, base)?;
        if i == 0
            && old_bases.len() > 1
            && let Some(s) = stop(SwapStep::OldPartlyDeleted)
        {
            return Ok(Some(s));
        }
    }
    sync_dir(dir)?;
    if let Some(s) = stop(SwapStep::OldDeleted).or(stop(SwapStep::OldPartlyDeleted)) {
        return Ok(Some(s));
    }
    let (log, index, time) = segment_paths(dir, files.base);
    rename(&files.index_cleaned(), &index)?;
    rename(&files.time_index_cleaned(), &time)?;
    rename(&files.txn_index_cleaned(), &txn_index_path(dir, files.base))?;
    if let Some(s) = stop(SwapStep::IndexesRenamed) {
        return Ok(Some(s));
    }
    rename(&files.log_swap(), &log)?;
    sync_dir(dir)?;
    Ok(stop(SwapStep::Done))
}

/// Parses `<base:020>-<end:020>.<rest>` into (base, end).
fn parse_range(name: &str, suffix: &str) -> Option<(i64, i64)> {
    let stem = name.strip_suffix(suffix)?;
    let (base, end) = stem.split_once('-')?;
    Some((base.parse().ok()?, end.parse().ok()?))
}

/// Finishes or rolls back interrupted swaps in `dir` (see the module doc). Returns how many
/// swaps it completed.
pub fn complete_at_open(dir: &Path) -> Result<usize, StorageError> {
    let mut swaps = Vec::new();
    let mut bases = Vec::new();
    let mut changed = false;
    for entry in std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".cleaned") {
            log::info!(
                "{}: removing unfinished cleaner output {name}",
                dir.display()
            );
            remove(&entry.path())?;
            changed = true;
        } else if let Some(range) = parse_range(name, ".log.swap") {
            swaps.push(range);
        } else if let Some(stem) = [".log", ".index", ".timeindex", ".txnindex"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            && let Ok(base) = stem.parse::<i64>()
        {
            bases.push(base);
        }
    }
    swaps.sort_unstable();
    bases.sort_unstable();
    bases.dedup();
    for &(base, end) in &swaps {
        log::warn!(
            "{}: completing the swap of a cleaned segment for offsets [{base}, {end})",
            dir.display()
        );
        for &old in bases.iter().filter(|&&b| b >= base && b < end) {
            remove_segment(dir, old)?;
        }
        sync_dir(dir)?;
        let files = CleanedFiles {
            dir: dir.to_path_buf(),
            base,
            end,
        };
        rename(&files.log_swap(), &segment_paths(dir, base).0)?;
        changed = true;
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(swaps.len())
}
