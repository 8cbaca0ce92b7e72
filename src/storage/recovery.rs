//! Opening segments at startup: the trusted path after a clean shutdown and the validating
//! scan after a crash.
//!
//! After `recover_segment` returns, the segment satisfies every invariant in `segment.rs`: the
//! file was read batch by batch from position 0, each batch's length, magic, CRC-32C and record
//! count were checked (as stored: a batch the cleaner rewrote may hold fewer records than its
//! offset range), base offsets were required to continue exactly from the previous batch (or,
//! in a log the cleaner has worked on, which has a `cleaner-checkpoint`, to increase: the
//! cleaner removes whole batches), and the file was truncated at the first batch that failed
//! (a torn write or corruption). Both
//! indexes are rebuilt from the surviving batches. Nothing before the first bad batch is dropped.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::StorageError;
use super::batch::{BATCH_HEADER_BYTES, BatchHeader, validate_stored_batch};
use super::index::OffsetIndex;
use super::segment::{Segment, segment_paths};
use super::time_index::TimeIndex;

/// What a recovery scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryOutcome {
    pub valid_bytes: u64,
    pub truncated_bytes: u64,
    pub next_offset: i64,
    /// Why the scan stopped early, if it did.
    pub reason: Option<String>,
}

use crate::limits::RECOVERY_BATCH_BYTES_MAX;

/// Validates the whole segment, truncates a bad tail and rebuilds its indexes.
pub fn recover_segment(
    dir: &Path,
    base_offset: i64,
    index_interval_bytes: u64,
    now_ms: i64,
) -> Result<(Segment, RecoveryOutcome), StorageError> {
    let (log_path, index_path, time_path) = segment_paths(dir, base_offset);
    let file = File::open(&log_path).map_err(|e| StorageError::io(&log_path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| StorageError::io(&log_path, e))?
        .len();
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut index = OffsetIndex::create(&index_path)?;
    let mut time_index = TimeIndex::create(&time_path)?;
    let mut pos: u64 = 0;
    let mut next_offset = base_offset;
    let mut max_timestamp = -1i64;
    let mut since_index: u64 = 0;
    let mut buf: Vec<u8> = Vec::new();
    let mut reason = None;
    let gaps_allowed = may_have_gaps(dir);
    while pos < file_len {
        let remaining = file_len - pos;
        if remaining < BATCH_HEADER_BYTES as u64 {
            reason = Some(format!(
                "torn batch header ({remaining} bytes) at position {pos}"
            ));
            break;
        }
        buf.resize(BATCH_HEADER_BYTES, 0);
        reader
            .read_exact(&mut buf[..BATCH_HEADER_BYTES])
            .map_err(|e| StorageError::io(&log_path, e))?;
        let header = match BatchHeader::parse(&buf) {
            Ok(h) => h,
            Err(e) => {
                reason = Some(format!("bad batch header at position {pos}: {e}"));
                break;
            }
        };
        let total = header.total_bytes();
        if total as u64 > remaining || total > RECOVERY_BATCH_BYTES_MAX {
            reason = Some(format!(
                "torn batch at position {pos}: claims {total} bytes, {remaining} remain"
            ));
            break;
        }
        buf.resize(total, 0);
        reader
            .read_exact(&mut buf[BATCH_HEADER_BYTES..total])
            .map_err(|e| StorageError::io(&log_path, e))?;
        if let Err(e) = validate_stored_batch(&buf) {
            reason = Some(format!("corrupt batch at position {pos}: {e}"));
            break;
        }
        if header.base_offset < next_offset || (!gaps_allowed && header.base_offset != next_offset)
        {
            reason = Some(format!(
                "offset discontinuity at position {pos}: expected {next_offset}, found {}",
                header.base_offset
            ));
            break;
        }
        if pos == 0 || since_index >= index_interval_bytes {
            let rel = (header.base_offset - base_offset) as u32;
            index.append(rel, pos as u32)?;
            time_index.maybe_append(max_timestamp.max(header.max_timestamp), rel)?;
            since_index = 0;
        }
        since_index += total as u64;
        pos += total as u64;
        next_offset = header.last_offset() + 1;
        max_timestamp = max_timestamp.max(header.max_timestamp);
    }
    index.flush()?;
    time_index.flush()?;
    if reason.is_some() && is_direct_write_padding(reader.get_ref(), pos, file_len) {
        reason = Some(format!(
            "zero padding of a direct write ({} bytes), not data",
            file_len - pos
        ));
    }
    let outcome = RecoveryOutcome {
        valid_bytes: pos,
        truncated_bytes: file_len - pos,
        next_offset,
        reason,
    };
    if outcome.truncated_bytes > 0 {
        log::warn!(
            "recovery of {}: truncating {} bytes after offset {} ({})",
            log_path.display(),
            outcome.truncated_bytes,
            next_offset - 1,
            outcome.reason.as_deref().unwrap_or("unknown")
        );
    }
    let segment = Segment::open_recovered(
        log_path,
        base_offset,
        pos,
        next_offset,
        max_timestamp,
        index,
        time_index,
        index_interval_bytes,
        now_ms,
    )?;
    Ok((segment, outcome))
}

/// Whether `[pos, file_len)` is what a direct write leaves after the last batch of an active
/// segment (`log_writer.rs`): fewer zero bytes than a block, up to a block boundary. Recovery
/// cuts it like any bad tail; this only names it in the log.
fn is_direct_write_padding(file: &File, pos: u64, file_len: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let align = super::log_writer::DIRECT_IO_ALIGN_BYTES as u64;
    let n = file_len - pos;
    if n == 0 || n >= align || !file_len.is_multiple_of(align) {
        return false;
    }
    let mut tail = vec![0u8; n as usize];
    file.read_exact_at(&mut tail, pos).is_ok() && tail.iter().all(|&b| b == 0)
}

/// Whether the log in `dir` may skip offsets between batches: only once the cleaner has
/// worked on it (its checkpoint is written before its first swap, see `storage::cleaner`).
/// Elsewhere offsets are dense, and a batch starting past the expected offset is damage (its
/// base offset is outside the CRC) and is cut like any other.
fn may_have_gaps(dir: &Path) -> bool {
    dir.join(super::cleaner::checkpoint::CLEANER_CHECKPOINT_FILE)
        .exists()
}

/// Opens a segment after a clean shutdown: trusts the log bytes, loads the indexes (rebuilding
/// them if missing or invalid), and reads only the tail after the last index entry to find the
/// next offset. Falls back to a full recovery scan if the tail does not parse or its offsets
/// do not continue from the last index entry.
pub fn load_segment(
    dir: &Path,
    base_offset: i64,
    index_interval_bytes: u64,
    now_ms: i64,
) -> Result<Segment, StorageError> {
    let (log_path, index_path, time_path) = segment_paths(dir, base_offset);
    let file_len = std::fs::metadata(&log_path)
        .map_err(|e| StorageError::io(&log_path, e))?
        .len();
    let Some(index) = OffsetIndex::load(&index_path, file_len.max(1))? else {
        return recover_segment(dir, base_offset, index_interval_bytes, now_ms).map(|(s, _)| s);
    };
    let last_entry = index.entries().last().copied();
    let start = last_entry.map_or(0, |e| u64::from(e.position));
    let file = File::open(&log_path).map_err(|e| StorageError::io(&log_path, e))?;
    // The batch an index entry points at has the offset the entry names.
    let mut next_offset = last_entry.map_or(base_offset, |e| {
        base_offset.saturating_add(i64::from(e.relative_offset))
    });
    let mut max_ts = -1i64;
    let mut pos = start;
    let mut header = [0u8; BATCH_HEADER_BYTES];
    let gaps_allowed = may_have_gaps(dir);
    use std::os::unix::fs::FileExt;
    while pos < file_len {
        if file_len - pos < BATCH_HEADER_BYTES as u64
            || file.read_exact_at(&mut header, pos).is_err()
        {
            return recover_segment(dir, base_offset, index_interval_bytes, now_ms).map(|(s, _)| s);
        }
        let Ok(h) = BatchHeader::parse(&header) else {
            return recover_segment(dir, base_offset, index_interval_bytes, now_ms).map(|(s, _)| s);
        };
        // A batch past the end, or offsets that do not continue (a damaged base offset, outside
        // the CRC): the tail is not what a clean shutdown leaves, so validate the segment.
        if pos + h.total_bytes() as u64 > file_len
            || h.base_offset < next_offset
            || (!gaps_allowed && h.base_offset != next_offset)
            || h.last_offset_delta < 0
        {
            return recover_segment(dir, base_offset, index_interval_bytes, now_ms).map(|(s, _)| s);
        }
        next_offset = h.last_offset() + 1;
        max_ts = max_ts.max(h.max_timestamp);
        pos += h.total_bytes() as u64;
    }
    let rel_end = (next_offset - base_offset).max(0) as u32;
    let time_index = match TimeIndex::load(&time_path, rel_end.max(1))? {
        Some(t) => t,
        None => {
            return recover_segment(dir, base_offset, index_interval_bytes, now_ms).map(|(s, _)| s);
        }
    };
    if let Some(last) = time_index.entries().last() {
        max_ts = max_ts.max(last.timestamp);
    }
    Segment::open_recovered(
        log_path,
        base_offset,
        file_len,
        next_offset,
        max_ts,
        index,
        time_index,
        index_interval_bytes,
        now_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::tests::make_batch;

    /// A batch whose base offset (outside the CRC) was damaged upwards is cut in a log that
    /// was never cleaned; once the cleaner has worked on the log such gaps are legitimate.
    #[test]
    fn an_offset_gap_is_damage_unless_the_log_was_cleaned() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut bytes = Vec::new();
        for (i, base) in [0i64, 1, 10].iter().enumerate() {
            let mut b = make_batch(1, b"r", i as i64);
            crate::storage::batch::set_base_offset(&mut b, *base);
            bytes.extend(b);
        }
        let (log_path, _, _) = segment_paths(dir.path(), 0);
        std::fs::write(&log_path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let (_, outcome) =
            recover_segment(dir.path(), 0, 4096, 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(outcome.next_offset, 2, "cut at the gap: {outcome:?}");
        std::fs::write(&log_path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        super::super::cleaner::checkpoint::write(dir.path(), 0).unwrap_or_else(|e| panic!("{e}"));
        let (_, outcome) =
            recover_segment(dir.path(), 0, 4096, 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            outcome.next_offset, 11,
            "kept in a cleaned log: {outcome:?}"
        );
    }

    /// The largest batch the configuration lets a topic accept (`max.message.bytes` =
    /// `RECOVERY_BATCH_BYTES_MAX`, see `TopicConfig::validate`) is kept by the crash-recovery
    /// scan; only the torn batch written after it is cut.
    #[test]
    fn batch_of_the_largest_accepted_size_survives_crash_recovery() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // One record: header, a 5-byte varint length (the body is over 2^28 / 2 bytes), body.
        let body_bytes = RECOVERY_BATCH_BYTES_MAX - BATCH_HEADER_BYTES - 5;
        let mut bytes = make_batch(1, &vec![7u8; body_bytes], 1);
        assert_eq!(bytes.len(), RECOVERY_BATCH_BYTES_MAX);
        // An unclean stop in the middle of the next append: half a batch header.
        let torn = make_batch(1, b"next", 2);
        bytes.extend_from_slice(&torn[..BATCH_HEADER_BYTES / 2]);
        let (log_path, _, _) = segment_paths(dir.path(), 0);
        std::fs::write(&log_path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        drop(bytes);

        let (_segment, outcome) =
            recover_segment(dir.path(), 0, 4096, 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            outcome.valid_bytes, RECOVERY_BATCH_BYTES_MAX as u64,
            "{outcome:?}"
        );
        assert_eq!(outcome.next_offset, 1);
        assert_eq!(outcome.truncated_bytes, (BATCH_HEADER_BYTES / 2) as u64);
    }
}
