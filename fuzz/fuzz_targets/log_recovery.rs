//! Opening a partition log from arbitrary segment bytes (`PartitionLog::open`: the recovery
//! scan of `storage::recovery` after a crash, the trusted load after a clean shutdown).
//!
//! Input: two flag bytes, then per segment a u32-LE-length-prefixed `.log` (and, with flag
//! 0x40, u16-prefixed `.index` and `.timeindex` contents), written into a fresh directory with
//! the log's naming (`<20-digit base offset>.log`).
//! Flags (byte 0): 0x01 clean shutdown (trusted load); 0x02 write a `recovery-point`
//! checkpoint and 0x04 a `log-start-offset` one (i64 values from the input); 0x08 fix the
//! batches (dense base offsets from the segment's base, CRCs recomputed) so that mutations go
//! deeper than the checksum; 0x30 number of segments - 1; 0x40 index files; 0x80 a base offset
//! near 2^62 instead of 0. Byte 1: 0x01 index every batch; 0x02 tiny segments (appends roll).
//! Each further segment starts where the batches of the one before end (no gaps: the log never
//! makes them, and an empty segment is not written).
//!
//! Invariants, always: nothing panics; log start <= high watermark <= log end. After a crash
//! recovery with no recovery point (every segment validated): the log reads end to end, every
//! batch read validates, offsets only grow; a valid batch appends at the log end and reads back
//! byte for byte (offset aside); closing and reopening (trusted and validated) keeps it all.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thorstream::internals::storage::batch::{BatchIter, validate_batch};
use thorstream::internals::storage::{LogConfig, PartitionLog, StorageError, segment_file_name};

#[path = "../common/mod.rs"]
mod common;

const NOW_MS: i64 = 1_700_000_000_000;

/// Reads from `from` to the high watermark. Returns the batches' (base, last) offsets, or the
/// first error.
fn read_all(log: &PartitionLog, from: i64) -> Result<Vec<(i64, i64)>, String> {
    let hw = log.high_watermark();
    let mut offset = from;
    let mut seen = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..100_000 {
        if offset >= hw {
            return Ok(seen);
        }
        let view = log.read_view(offset).map_err(|e| e.to_string())?;
        buf.clear();
        let n = view
            .read_into(&mut buf, 1 << 20, true)
            .map_err(|e: StorageError| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "read at {offset} < high watermark {hw} returned nothing"
            ));
        }
        let mut progressed = false;
        for (h, bytes) in BatchIter::new(&buf) {
            validate_batch(bytes).map_err(|e| format!("batch at {offset}: {e}"))?;
            if h.last_offset() < offset {
                return Err(format!(
                    "read at {offset} returned batch ending {}",
                    h.last_offset()
                ));
            }
            seen.push((h.base_offset, h.last_offset()));
            offset = h.last_offset() + 1;
            progressed = true;
        }
        if !progressed {
            return Err(format!(
                "read at {offset} returned no whole batch ({n} bytes)"
            ));
        }
    }
    Err("read did not finish".into())
}

fn check_offsets(log: &PartitionLog) {
    let o = log.offsets();
    assert!(
        o.log_start_offset <= o.high_watermark && o.high_watermark <= o.log_end_offset,
        "{o:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (flags, flags2) = (data[0], data[1]);
    let mut rest = &data[2..];
    let clean = flags & 0x01 != 0;
    let take_i64 = |rest: &mut &[u8]| -> i64 {
        let mut b = [0u8; 8];
        let n = rest.len().min(8);
        b[..n].copy_from_slice(&rest[..n]);
        *rest = &rest[n..];
        i64::from_le_bytes(b)
    };
    let recovery_point = (flags & 0x02 != 0).then(|| take_i64(&mut rest));
    let log_start = (flags & 0x04 != 0).then(|| take_i64(&mut rest));
    let fix = flags & 0x08 != 0;
    let segments = usize::from((flags >> 4) & 0x03) + 1;
    let indexes = flags & 0x40 != 0;
    let first_base: i64 = if flags & 0x80 != 0 { 1 << 62 } else { 0 };

    let dir = common::tempdir();
    let path = dir.path().join("t-0");
    std::fs::create_dir_all(&path).expect("mkdir");
    let mut base = first_base;
    for s in 0..segments {
        let mut log_bytes = common::take_part(&mut rest, 4).to_vec();
        let (index, time_index) = if indexes {
            (
                Some(common::take_part(&mut rest, 2)),
                Some(common::take_part(&mut rest, 2)),
            )
        } else {
            (None, None)
        };
        let next = if fix {
            common::fix_batches(&mut log_bytes, Some(base))
        } else {
            BatchIter::new(&log_bytes)
                .filter_map(|(h, _)| h.base_offset.checked_add(i64::from(h.last_offset_delta)))
                .max()
                .and_then(|l| l.checked_add(1))
        };
        if log_bytes.is_empty() && s + 1 < segments {
            continue;
        }
        std::fs::write(path.join(segment_file_name(base, "log")), &log_bytes).expect("write");
        if let Some(b) = index {
            std::fs::write(path.join(segment_file_name(base, "index")), b).expect("write");
        }
        if let Some(b) = time_index {
            std::fs::write(path.join(segment_file_name(base, "timeindex")), b).expect("write");
        }
        if s + 1 == segments {
            break;
        }
        base = match next {
            Some(n) if n > base => n,
            _ => base.saturating_add(1),
        };
    }
    if let Some(rp) = recovery_point {
        std::fs::write(
            path.join("recovery-point"),
            common::checkpoint_bytes(&rp.to_be_bytes()),
        )
        .expect("write");
    }
    if let Some(ls) = log_start {
        std::fs::write(
            path.join("log-start-offset"),
            common::checkpoint_bytes(&ls.to_be_bytes()),
        )
        .expect("write");
    }

    let config = LogConfig {
        segment_bytes: if flags2 & 0x02 != 0 { 200 } else { 1 << 30 },
        index_interval_bytes: if flags2 & 0x01 != 0 { 1 } else { 4096 },
        durable_hw: false,
        ..LogConfig::default()
    };
    let Ok(mut log) = PartitionLog::open(&path, config.clone(), clean, NOW_MS) else {
        // Only I/O errors may fail an open; on tmpfs there are none to expect.
        panic!(
            "open failed: {:?}",
            PartitionLog::open(&path, config, clean, NOW_MS).err()
        );
    };
    check_offsets(&log);
    // Validated from scratch: no recovery point (or one at 0) and not trusted.
    let strict = !clean && recovery_point.is_none_or(|rp| rp <= 0);
    let start = log.offsets().log_start_offset;
    let before = read_all(&log, start);
    if strict {
        let before = before.as_ref().expect("a recovered log reads end to end");
        for w in before.windows(2) {
            assert!(w[0].1 < w[1].0, "offsets go back: {before:?}");
        }
    }

    let leo = log.log_end_offset();
    let mut batch = common::batch(&[b"fuzz-appended"], NOW_MS);
    let appended = log.append(&mut batch, NOW_MS);
    check_offsets(&log);
    if !strict {
        let _ = read_all(&log, start);
        let _ = log.close();
        return;
    }
    let info = appended.expect("a recovered log takes appends");
    assert_eq!(info.base_offset, leo);
    assert_eq!(log.log_end_offset(), leo + 1);
    let read_back = |log: &PartitionLog| {
        let view = log.read_view(leo).expect("read view");
        let mut buf = Vec::new();
        view.read_into(&mut buf, 1 << 20, true).expect("read");
        let (h, bytes) = BatchIter::new(&buf).next().expect("the appended batch");
        assert_eq!(h.base_offset, leo);
        assert_eq!(
            &bytes[8..],
            &batch[8..],
            "appended batch reads back changed"
        );
    };
    read_back(&log);
    let after = read_all(&log, start).expect("reads end to end after an append");
    log.close().expect("close");
    drop(log);

    for clean in [true, false] {
        let log = PartitionLog::open(&path, config.clone(), clean, NOW_MS).expect("reopen");
        check_offsets(&log);
        assert_eq!(log.log_end_offset(), leo + 1, "reopen (clean: {clean})");
        read_back(&log);
        assert_eq!(read_all(&log, start).as_ref(), Ok(&after));
    }
});
