//! The cleaner's I/O, all of it without the partition lock: reading segments in bounded
//! chunks, building the offset map from the dirty section, and copying a run of segments into
//! a `.cleaned` segment keeping only what the map and the tombstone rule allow.
//!
//! The segments read here are inactive and below the high watermark and the last fsync: no
//! append, flush or heal writes them. Retention, DeleteRecords or a topic deletion may delete
//! them meanwhile; the handles taken under the lock keep the bytes readable, and the swap
//! re-checks that they are still the log's before it replaces them.
//!
//! What is kept of a batch (Kafka's `Cleaner.shouldRetainRecord` and `MemoryRecords.filterTo`):
//! - control batches, whole;
//! - a transactional data batch of an aborted transaction (`aborted`), never (nor is it
//!   mapped), except as the empty header of a producer's last batch (below);
//! - a record past the map's latest offset (not mapped this pass), always;
//! - a record without a key, never (a compacted topic refuses them; older ones are dropped);
//! - a keyed record if no later offset of its key is in the map and, for a tombstone, the
//!   batch has no delete horizon yet or `now` is before it;
//! - a batch that keeps every record and needs no new horizon is copied byte for byte (even
//!   compressed); a batch that keeps some is rewritten in its own codec (`records::write_batch`); one that keeps
//!   none disappears, unless it is the last batch of a producer the producer state knows (its
//!   header is kept with no records, so that the producer's sequence survives a rebuild of the
//!   state from the log); a rewritten batch with tombstones gets the horizon `now +
//!   delete_retention_ms` if it had none.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::aborted::AbortedRanges;
use super::offset_map::OffsetMap;
use super::records::{Rewrite, delete_horizon_ms, parse_records, records_body, write_batch};
use super::swap::CleanedFiles;
use super::throttle::Throttle;
use crate::limits::RECOVERY_BATCH_BYTES_MAX;
use crate::storage::StorageError;
use crate::storage::batch::{BATCH_HEADER_BYTES, BatchHeader, validate_stored_batch};
use crate::storage::index::OffsetIndex;
use crate::storage::time_index::TimeIndex;
use crate::storage::txn_index::{AbortedEntry, TxnIndex};

/// One segment as the cleaner reads it: its bounds and a handle taken under the lock.
#[derive(Debug, Clone)]
pub struct SegmentSource {
    pub base_offset: i64,
    pub size: u64,
    pub largest_timestamp: i64,
    pub path: PathBuf,
    pub file: Arc<File>,
    /// The segment's `.txnindex` entries (carried into the cleaned segment).
    pub aborted: Vec<AbortedEntry>,
}

/// Reads a segment's batches in chunks of `io_buffer_bytes` (a larger batch is read alone,
/// up to the recovery bound), calling `f` with each CRC-checked batch until it returns false.
pub fn for_each_batch(
    src: &SegmentSource,
    from_position: u64,
    io_buffer_bytes: usize,
    throttle: &mut Throttle,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<bool, StorageError>,
) -> Result<(), StorageError> {
    let mut buf = vec![0u8; io_buffer_bytes.max(BATCH_HEADER_BYTES)];
    let mut pos = from_position;
    while pos < src.size {
        let want = (src.size - pos).min(io_buffer_bytes.max(BATCH_HEADER_BYTES) as u64) as usize;
        buf.resize(want, 0);
        src.file
            .read_exact_at(&mut buf, pos)
            .map_err(|e| StorageError::io(&src.path, e))?;
        throttle.add(want as u64);
        let mut at = 0usize;
        while at + BATCH_HEADER_BYTES <= buf.len() {
            let header = BatchHeader::parse(&buf[at..])?;
            let total = header.total_bytes();
            if at + total > buf.len() {
                break;
            }
            validate_stored_batch(&buf[at..at + total])?;
            if !f(&header, &buf[at..at + total])? {
                return Ok(());
            }
            at += total;
        }
        if at == 0 {
            // One batch larger than the buffer: read it alone.
            let header = BatchHeader::parse(&buf)?;
            let total = header.total_bytes();
            if total > RECOVERY_BATCH_BYTES_MAX || pos + total as u64 > src.size {
                return Err(crate::storage::BatchError::InvalidLength(header.batch_length).into());
            }
            let mut big = vec![0u8; total];
            src.file
                .read_exact_at(&mut big, pos)
                .map_err(|e| StorageError::io(&src.path, e))?;
            throttle.add(total as u64);
            validate_stored_batch(&big)?;
            if !f(&header, &big)? {
                return Ok(());
            }
            at = total;
        }
        pos += at as u64;
    }
    Ok(())
}

/// Maps the keys of the dirty section `[from, to)` of `sources` (the segments holding it)
/// into `map`, whole batches only, stopping before a batch that might not fit; records of
/// `aborted` transactions are not mapped. Returns the end of what was mapped (exclusive):
/// `from` if nothing could be.
pub fn build_offset_map(
    sources: &[SegmentSource],
    from: i64,
    to: i64,
    aborted: &AbortedRanges,
    map: &mut OffsetMap,
    io_buffer_bytes: usize,
    throttle: &mut Throttle,
) -> Result<i64, StorageError> {
    let mut end = from;
    let mut full = false;
    for src in sources {
        if full || src.base_offset >= to {
            break;
        }
        for_each_batch(src, 0, io_buffer_bytes, throttle, |h, batch| {
            if h.last_offset() < from {
                return Ok(true);
            }
            if h.base_offset >= to {
                return Ok(false);
            }
            if !h.is_control() && !aborted.is_aborted(h) {
                if !map.has_room_for(h.record_count.max(0) as usize) {
                    full = true;
                    return Ok(false);
                }
                let body = records_body(h, batch)?;
                for r in parse_records(&body)? {
                    let offset = h.base_offset + i64::from(r.offset_delta);
                    if let Some(key) = r.key
                        && offset >= from
                    {
                        map.put(key, offset);
                    }
                }
            }
            map.scanned_to(h.last_offset());
            end = h.last_offset() + 1;
            Ok(true)
        })?;
    }
    Ok(end)
}

/// What decides which records survive a copy.
#[derive(Debug)]
pub struct CopyRules<'a> {
    pub map: &'a OffsetMap,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    /// Last offset of each producer's last batch (from the producer state).
    pub producer_last_offsets: &'a HashMap<i64, i64>,
    /// Aborted transactions: their data batches are dropped.
    pub aborted: &'a AbortedRanges,
    pub index_interval_bytes: u64,
    pub io_buffer_bytes: usize,
}

/// Counts of one copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
}

enum Fate {
    Keep,
    Rewrite(Vec<u8>),
    Drop,
}

fn decide(
    h: &BatchHeader,
    batch: &[u8],
    rules: &CopyRules<'_>,
) -> Result<(Fate, u64), StorageError> {
    if h.is_control() {
        return Ok((Fate::Keep, 0));
    }
    let aborted = rules.aborted.is_aborted(h);
    let body = records_body(h, batch)?;
    let records = if aborted {
        Vec::new()
    } else {
        parse_records(&body)?
    };
    let retain_deletes = delete_horizon_ms(h).is_none_or(|horizon| rules.now_ms < horizon);
    let latest = rules.map.latest_offset();
    let kept: Vec<_> = records
        .iter()
        .filter(|r| {
            let offset = h.base_offset + i64::from(r.offset_delta);
            if offset > latest {
                return true;
            }
            let Some(key) = r.key else { return false };
            let newest = rules.map.get(key).is_none_or(|m| offset >= m);
            newest && (r.has_value || retain_deletes)
        })
        .copied()
        .collect();
    let removed = if aborted {
        h.record_count.max(0) as u64
    } else {
        (records.len() - kept.len()) as u64
    };
    let needs_horizon = delete_horizon_ms(h).is_none() && kept.iter().any(|r| !r.has_value);
    if kept.len() == records.len() && !needs_horizon && !aborted {
        return Ok((Fate::Keep, 0));
    }
    if kept.is_empty() {
        let last_of_producer = h.producer_id >= 0
            && rules.producer_last_offsets.get(&h.producer_id) == Some(&h.last_offset());
        return Ok(if last_of_producer {
            (
                Fate::Rewrite(write_batch(
                    h,
                    &[],
                    Rewrite {
                        delete_horizon_ms: None,
                    },
                )?),
                removed,
            )
        } else {
            (Fate::Drop, removed)
        });
    }
    let horizon = needs_horizon.then(|| rules.now_ms.saturating_add(rules.delete_retention_ms));
    let out = write_batch(
        h,
        &kept,
        Rewrite {
            delete_horizon_ms: horizon,
        },
    )?;
    // Recompressed, a batch may still grow (a codec compresses fewer records worse); past
    // what recovery accepts it is kept as it was (its stale records stay; reading still ends
    // with each key's latest value).
    if out.len() > RECOVERY_BATCH_BYTES_MAX {
        return Ok((Fate::Keep, 0));
    }
    Ok((Fate::Rewrite(out), removed))
}

/// Copies `group` (consecutive segments replacing `[files.base, files.end)`) into the
/// `.cleaned` files of `files`, writing its indexes (the `.txnindex` holds every entry of the
/// group's segments); the log file and the transaction index are fsynced.
pub fn copy_group(
    group: &[SegmentSource],
    files: &CleanedFiles,
    rules: &CopyRules<'_>,
    throttle: &mut Throttle,
) -> Result<CopyStats, StorageError> {
    let path = files.log_cleaned();
    let file = File::create(&path).map_err(|e| StorageError::io(&path, e))?;
    let mut out = BufWriter::with_capacity(rules.io_buffer_bytes.max(4096), file);
    let mut index = OffsetIndex::create(&files.index_cleaned())?;
    let mut time_index = TimeIndex::create(&files.time_index_cleaned())?;
    let mut stats = CopyStats::default();
    let (mut position, mut since_index, mut max_ts) = (0u64, 0u64, -1i64);
    let mut last_rel = None;
    for src in group {
        stats.bytes_read += src.size;
        let written_before = position;
        for_each_batch(src, 0, rules.io_buffer_bytes, throttle, |h, batch| {
            let (fate, removed) = decide(h, batch, rules)?;
            stats.records_removed += removed;
            let bytes: &[u8] = match &fate {
                Fate::Keep => batch,
                Fate::Rewrite(b) => b,
                Fate::Drop => return Ok(true),
            };
            let rel = u32::try_from(h.base_offset - files.base)
                .map_err(|_| crate::storage::BatchError::InvalidLength(h.batch_length))?;
            if position + bytes.len() as u64 > i32::MAX as u64 {
                return Err(crate::storage::BatchError::TooLarge {
                    size: bytes.len(),
                    max: i32::MAX as usize,
                }
                .into());
            }
            let written_max_ts = BatchHeader::parse(bytes)?.max_timestamp;
            if position == 0 || since_index >= rules.index_interval_bytes {
                index.append(rel, position as u32)?;
                time_index.maybe_append(max_ts.max(written_max_ts), rel)?;
                since_index = 0;
            }
            out.write_all(bytes)
                .map_err(|e| StorageError::io(&path, e))?;
            position += bytes.len() as u64;
            since_index += bytes.len() as u64;
            max_ts = max_ts.max(written_max_ts);
            last_rel = Some(rel + h.last_offset_delta.max(0) as u32);
            Ok(true)
        })?;
        throttle.add(position - written_before);
    }
    if let Some(rel) = last_rel {
        time_index.maybe_append(max_ts, rel)?;
    }
    let mut txn_index = TxnIndex::create(&files.txn_index_cleaned())?;
    txn_index.replace_all(
        group
            .iter()
            .flat_map(|s| s.aborted.iter().copied())
            .collect(),
    )?;
    index.flush()?;
    time_index.flush()?;
    let file = out
        .into_inner()
        .map_err(|e| StorageError::io(&path, e.into_error()))?;
    file.sync_all().map_err(|e| StorageError::io(&path, e))?;
    stats.bytes_written = position;
    Ok(stats)
}
