#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Regression tests for crashes found by the fuzz targets in `fuzz/` (see RELIABILITY.md,
//! Fuzzing). Each crashing input is also kept in the target's seed corpus.

use thorstream::Record;
use thorstream::internals::protocol::records::{decode_records, encode_batch};
use thorstream::internals::storage::batch::{rewrite_crc, validate_batches};
use thorstream::internals::storage::{LogConfig, PartitionLog, checkpoint, segment_file_name};

/// `batch_validate`: a batch whose base timestamp is near `i64::MAX` (any client may produce
/// one; it passes validation and is stored) made the record decoder overflow computing
/// `baseTimestamp + timestampDelta`: a panic wherever overflow checks are on, on ListOffsets
/// by timestamp or in the embedded consumer. Kafka's arithmetic wraps; so does ours now.
#[test]
fn record_timestamps_near_i64_max_decode_without_overflow() {
    let records = [
        Record::new(b"a".to_vec()).timestamp(0),
        Record::new(b"b".to_vec()).timestamp(5),
    ];
    let mut batch = encode_batch(&records, 0).unwrap();
    batch[27..35].copy_from_slice(&i64::MAX.to_be_bytes());
    let len = batch.len();
    rewrite_crc(&mut batch, len);
    validate_batches(&batch, 1 << 20).expect("a valid batch");
    let decoded = decode_records("t", 0, &batch, 0).expect("decodes");
    assert_eq!(decoded.len(), 2);
    assert_eq!(decoded[0].timestamp, i64::MAX);
    assert_eq!(decoded[1].timestamp, i64::MAX.wrapping_add(5));

    // The same through the offset: base offset near i64::MAX, offset delta 1.
    let mut batch = encode_batch(&records, 0).unwrap();
    batch[0..8].copy_from_slice(&i64::MAX.to_be_bytes());
    assert!(decode_records("t", 0, &batch, i64::MIN).is_ok());
}

/// `log_recovery`: a `log-start-offset` checkpoint past the log end (the records it hid were
/// lost, e.g. a damaged tail cut by recovery) was clamped to the log end in memory but left on
/// disk, so after the next restart it hid the records appended in between: acknowledged
/// records vanished. Now the clamped start is written back.
#[test]
fn log_start_checkpoint_past_the_log_end_does_not_hide_later_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    std::fs::create_dir_all(&path).unwrap();
    // The fuzzer's input: an empty segment at offset 0 (a tail cut back to nothing) and a
    // start checkpoint at 10.
    std::fs::write(path.join(segment_file_name(0, "log")), b"").unwrap();
    checkpoint::write_i64(&path.join("log-start-offset"), 10).unwrap();
    let config = LogConfig {
        durable_hw: false,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(&path, config.clone(), false, 0).unwrap();
    assert_eq!(log.offsets().log_start_offset, 0);
    let batch = encode_batch(&[Record::new(b"acknowledged".to_vec())], 0).unwrap();
    let info = log.append(&batch, 0).unwrap();
    assert_eq!(info.base_offset, 0);
    log.close().unwrap();
    drop(log);
    for clean in [true, false] {
        let log = PartitionLog::open(&path, config.clone(), clean, 0).unwrap();
        assert_eq!(log.offsets().log_start_offset, 0, "clean: {clean}");
        assert_eq!(log.log_end_offset(), 1);
        let mut out = Vec::new();
        let n = log
            .read_view(0)
            .unwrap()
            .read_into(&mut out, 1 << 20, true)
            .unwrap();
        assert!(n > 0, "the acknowledged record reads back");
    }
}

/// `log_recovery`: after a clean shutdown segments are trusted (not rescanned). A damaged batch
/// header in one (bit rot) made rebuilding the producer state fail, so the partition, and with
/// it the whole broker, failed to open. Now the rebuild stops at the damage and the partition
/// opens; reads report the damaged batch and serve the others.
#[test]
fn damaged_batch_in_a_trusted_segment_does_not_stop_the_log_from_opening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    std::fs::create_dir_all(&path).unwrap();
    let mut log_bytes = Vec::new();
    let mut positions = Vec::new();
    for (offset, value) in [(0i64, "a"), (1, "b"), (2, "c")] {
        let mut b = encode_batch(&[Record::new(value.as_bytes().to_vec())], 0).unwrap();
        b[0..8].copy_from_slice(&offset.to_be_bytes());
        positions.push(log_bytes.len() as u32);
        log_bytes.extend(b);
    }
    log_bytes[positions[1] as usize + 16] = 0; // batch 1's magic byte
    std::fs::write(path.join(segment_file_name(0, "log")), &log_bytes).unwrap();
    // An index entry past the damage, so the trusted load does not walk over it.
    let mut index = 2u32.to_be_bytes().to_vec();
    index.extend(positions[2].to_be_bytes());
    std::fs::write(path.join(segment_file_name(0, "index")), index).unwrap();
    std::fs::write(path.join(segment_file_name(0, "timeindex")), b"").unwrap();

    let config = LogConfig {
        durable_hw: false,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(&path, config, true, 0).expect("the partition opens");
    assert_eq!(log.log_end_offset(), 3);
    let mut out = Vec::new();
    let n = log
        .read_view(0)
        .unwrap()
        .read_into(&mut out, 1, true)
        .unwrap();
    assert_eq!(
        &out[..n],
        &log_bytes[..positions[1] as usize],
        "records before the damage"
    );
    out.clear();
    let n = log
        .read_view(2)
        .unwrap()
        .read_into(&mut out, 1 << 20, true)
        .unwrap();
    assert_eq!(&out[..n], &log_bytes[positions[2] as usize..]);
    assert!(
        log.read_view(1)
            .unwrap()
            .read_into(&mut out, 1 << 20, true)
            .is_err()
    );
}

/// `log_recovery`: the trusted load after a clean shutdown took the next offset from the last
/// batch header of a segment without checking that offsets continue, so a damaged base offset
/// (outside the CRC) could put the log end below the segment's base offset, and opening the
/// log panicked (`clamp` with min > max), in release builds too. Now a tail whose offsets do
/// not continue from the last index entry sends the segment through the validating scan.
#[test]
fn damaged_base_offset_in_a_trusted_segment_is_recovered_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    std::fs::create_dir_all(&path).unwrap();
    let base = 1i64 << 40;
    let mut good = encode_batch(&[Record::new(b"kept".to_vec())], 0).unwrap();
    good[0..8].copy_from_slice(&base.to_be_bytes());
    let mut damaged = encode_batch(&[Record::new(b"damaged".to_vec())], 0).unwrap();
    damaged[0..8].copy_from_slice(&7i64.to_be_bytes()); // should be base + 1
    let mut log_bytes = good.clone();
    log_bytes.extend(&damaged);
    std::fs::write(path.join(segment_file_name(base, "log")), &log_bytes).unwrap();
    std::fs::write(path.join(segment_file_name(base, "index")), b"").unwrap();
    std::fs::write(path.join(segment_file_name(base, "timeindex")), b"").unwrap();

    let config = LogConfig {
        durable_hw: false,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(&path, config, true, 0).expect("the partition opens");
    let o = log.offsets();
    assert_eq!(
        (o.log_start_offset, o.log_end_offset),
        (base, base + 1),
        "{o:?}"
    );
    let mut out = Vec::new();
    let n = log
        .read_view(base)
        .unwrap()
        .read_into(&mut out, 1 << 20, true)
        .unwrap();
    assert_eq!(&out[..n], &good[..]);
    let info = log
        .append(
            &encode_batch(&[Record::new(b"next".to_vec())], 0).unwrap(),
            0,
        )
        .unwrap();
    assert_eq!(info.base_offset, base + 1);
}
