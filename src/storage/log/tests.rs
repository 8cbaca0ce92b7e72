//! `PartitionLog` behaviour across its files: failed writes, failed fsyncs and heals.

use super::heal::HEAL_RETRY_MS;
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

/// A generated batch: producer (0: not idempotent), epoch, how its sequence is chosen (0: the
/// next one, 1: a retry of the producer's last batch, else `any`), and `any`.
type GenBatch = (u8, i16, u8, i32);

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Appends of a few idempotent and plain batches, some refused for their sequences, some
    /// failing at a random write: a refused or failed append leaves the producer state (and
    /// the log end) exactly as before; a successful one leaves what checking and recording
    /// its batches one by one would.
    #[test]
    fn failed_or_refused_appends_leave_the_producer_state_as_it_was(
        appends in proptest::collection::vec(
            (
                proptest::collection::vec((0u8..4, 0i16..2, 0u8..3, 0i32..6), 1..4),
                proptest::option::of(0u32..4),
            ),
            1..24,
        ),
        segment_bytes in proptest::prop_oneof![proptest::strategy::Just(1u64 << 30), 300u64..700],
    ) {
        use crate::storage::batch::tests::make_idempotent_batch;
        use crate::storage::producer_state::SequenceCheck;
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = LogConfig { segment_bytes, ..config() };
        let mut log = PartitionLog::open(dir.path(), cfg, true, 0).expect("open");
        for (step, (specs, fail_at)) in appends.iter().enumerate() {
            let now = (step as i64 + 1) * HEAL_RETRY_MS;
            let before = log.producer_state().clone();
            let leo_before = log.log_end_offset();
            // What the append should do, worked out batch by batch on a copy of the table.
            let mut expected = before.clone();
            let (mut next_offset, mut writes, mut refused) = (leo_before, 0u32, false);
            let mut bytes = Vec::new();
            for &(producer, epoch, how, any) in specs as &Vec<GenBatch> {
                if producer == 0 {
                    bytes.extend(make_batch(1, b"plain", now));
                    if !refused {
                        (next_offset, writes) = (next_offset + 1, writes + 1);
                    }
                    continue;
                }
                let pid = i64::from(producer);
                let last = expected.get(pid).and_then(|e| e.batches.back().map(|b| (e.epoch, *b)));
                let seq = match (how, last) {
                    (0, Some((e, b))) if e == epoch => b.last_seq + 1,
                    (1, Some((_, b))) => b.first_seq,
                    (0 | 1, _) => 0,
                    _ => any,
                };
                bytes.extend(make_idempotent_batch(pid, epoch, seq, now));
                if refused {
                    continue;
                }
                match expected.check(pid, epoch, seq, 1) {
                    Ok(SequenceCheck::Append) => {
                        expected.record(pid, epoch, seq, 1, next_offset, now);
                        (next_offset, writes) = (next_offset + 1, writes + 1);
                    }
                    Ok(SequenceCheck::Duplicate { .. }) => {}
                    Err(_) => refused = true,
                }
            }
            if let Some(k) = fail_at {
                failpoint::fail_writes(*k, 1);
            }
            let result = log.append(&bytes, now);
            failpoint::fail_writes(0, 0);
            if refused {
                proptest::prop_assert!(matches!(result, Err(StorageError::Producer(_))), "{result:?}");
                proptest::prop_assert_eq!(log.producer_state(), &before);
                proptest::prop_assert_eq!(log.log_end_offset(), leo_before);
            } else if fail_at.is_some_and(|k| k < writes) {
                proptest::prop_assert!(matches!(result, Err(StorageError::Io { .. })), "{result:?}");
                proptest::prop_assert_eq!(log.producer_state(), &before);
                if log.is_poisoned() {
                    // The write had rolled a segment: healing cuts back to where it began and
                    // rebuilds the producer state from the log, to the same state.
                    proptest::prop_assert!(log.heal(now));
                    proptest::prop_assert_eq!(log.producer_state(), &before);
                }
                proptest::prop_assert_eq!(log.log_end_offset(), leo_before);
            } else {
                let info = result.expect("append");
                proptest::prop_assert_eq!(log.producer_state(), &expected);
                proptest::prop_assert_eq!(log.log_end_offset(), next_offset);
                proptest::prop_assert!(info.is_visible(), "not durable_hw: visible at once");
            }
        }
    }
}

#[test]
fn an_append_reports_what_its_caller_would_otherwise_lock_again_for() {
    let dir = tempfile::tempdir().expect("tmp");
    let durable = LogConfig {
        durable_hw: true,
        segment_bytes: 150,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), durable, true, 0).expect("open");
    let first = log.append(&idempotent(7, 0), 1).expect("append");
    assert_eq!((first.base_offset, first.last_offset), (0, 0));
    assert!(!first.is_visible(), "durable_hw: waits for the fsync");
    assert!(!first.high_watermark_moved && !first.rolled);
    // A retry of a record not yet fsynced is not visible either.
    let retry = log.append(&idempotent(7, 0), 1).expect("retry");
    assert!(retry.duplicate && !retry.is_visible());
    sync(&mut log);
    let retry = log.append(&idempotent(7, 0), 1).expect("retry");
    assert!(retry.duplicate && retry.is_visible(), "{retry:?}");
    log.append(&make_batch(1, b"x", 2), 2).expect("append");
    let rolled = log.append(&make_batch(1, b"y", 2), 2).expect("append");
    assert!(rolled.rolled, "150-byte segments hold two batches");
    assert_eq!(rolled.high_watermark, 1);

    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), config(), true, 0).expect("open");
    let info = log.append(&make_batch(3, b"z", 1), 1).expect("append");
    assert!(info.is_visible() && info.high_watermark_moved);
    assert_eq!(info.high_watermark, 3);
}

#[test]
fn leaving_durable_hw_publishes_the_log_end_and_entering_it_keeps_what_is_visible() {
    let dir = tempfile::tempdir().expect("tmp");
    let durable = LogConfig {
        durable_hw: true,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), durable.clone(), true, 0).expect("open");
    let info = log.append(&make_batch(3, b"a", 1), 1).expect("append");
    assert!(
        !info.is_visible(),
        "fsync always: not visible before an fsync"
    );
    // fsync always -> never: what was written is visible at once, as under the new policy.
    assert!(log.set_config(config()));
    assert_eq!(log.high_watermark(), 3);
    // never -> always: nothing visible is taken back; the next append waits for an fsync.
    assert!(!log.set_config(durable));
    assert_eq!(log.high_watermark(), 3);
    let info = log.append(&make_batch(2, b"b", 2), 2).expect("append");
    assert_eq!((info.high_watermark, info.is_visible()), (3, false));
    sync(&mut log);
    assert_eq!(log.high_watermark(), 5);
}

#[test]
fn roll_jitter_is_kafkas_random_segment_jitter() {
    use super::roll_retention::roll_jitter_ms;
    assert_eq!(roll_jitter_ms(0, 1_000, 12_345), 0);
    assert_eq!(roll_jitter_ms(400, 1_000, 7_301), 101);
    // Bounded by segment.ms when the jitter is larger.
    assert_eq!(roll_jitter_ms(5_000, 1_000, 12_345), 345);
    assert_eq!(
        roll_jitter_ms(400, 1_000, u64::MAX),
        (u64::MAX % 400) as i64
    );
    for r in [0, 1, 399, 400, 1 << 40] {
        assert!((0..400).contains(&roll_jitter_ms(400, 1_000, r)));
    }
}

#[test]
fn a_segment_rolls_by_age_its_own_jitter_before_segment_ms() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = LogConfig {
        segment_ms: 1_000,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone(), true, 0).expect("open");
    assert_eq!(log.roll_jitter(), 0, "segment.jitter.ms 0: no jitter");
    log.set_config(LogConfig {
        segment_jitter_ms: 400,
        ..cfg.clone()
    });
    log.set_jitter_source(|| 7_301);
    log.append(&make_batch(1, b"a", 1), 0).expect("append");
    // The active segment keeps the jitter it was created with (none).
    log.roll_if_expired(999).expect("roll");
    assert_eq!(log.segment_count(), 1);
    log.roll_if_expired(1_000).expect("roll");
    assert_eq!(log.segment_count(), 2);
    // The new segment (created at 1000) drew 7301 % 400 = 101: it rolls at 1000 + 1000 - 101.
    assert_eq!(log.roll_jitter(), 101);
    log.append(&make_batch(1, b"b", 1), 1_000).expect("append");
    log.roll_if_expired(1_898).expect("roll");
    assert_eq!(log.segment_count(), 2);
    // A change applies from the next segment; a jitter over segment.ms is bounded by it:
    // 12345 % 1000 = 345.
    log.set_config(LogConfig {
        segment_jitter_ms: 5_000,
        ..cfg
    });
    log.set_jitter_source(|| 12_345);
    log.roll_if_expired(1_899).expect("roll");
    assert_eq!(log.segment_count(), 3);
    log.append(&make_batch(1, b"c", 1), 1_899).expect("append");
    log.roll_if_expired(1_899 + 1_000 - 346).expect("roll");
    assert_eq!(log.segment_count(), 3);
    log.roll_if_expired(1_899 + 1_000 - 345).expect("roll");
    assert_eq!(log.segment_count(), 4);
    assert_eq!(log.roll_jitter(), 345);
    log.close().expect("close");
}

/// Every file of a log directory with its inode, length and modification time.
fn file_states(dir: &std::path::Path) -> Vec<(String, u64, u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            let m = e.metadata().expect("metadata");
            let modified = m.modified().expect("mtime");
            (
                e.file_name().to_string_lossy().into_owned(),
                m.ino(),
                m.len(),
                modified,
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_clean_reopen_and_close_of_an_unchanged_log_rewrites_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), config(), true, 0).expect("open");
    log.append(&make_batch(3, b"kept", 1), 1).expect("append");
    log.close().expect("close");
    drop(log);
    let before = file_states(dir.path());
    assert!(
        before.iter().any(|(n, ..)| n == RECOVERY_POINT_FILE),
        "the first close wrote the recovery point: {before:?}"
    );

    // A clean start and stop with nothing appended in between: no checkpoint or index is
    // written again (with 10,000 partitions those writes and fsyncs made a stop take ~40 s).
    let mut log = PartitionLog::open(dir.path(), config(), true, 5).expect("clean reopen");
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(file_states(dir.path()), before, "after open");
    log.close().expect("close");
    drop(log);
    assert_eq!(file_states(dir.path()), before);

    // And what is there still opens whole after an unclean start.
    let log = PartitionLog::open(dir.path(), config(), false, 6).expect("unclean reopen");
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(
        log.size_bytes(),
        before
            .iter()
            .find(|(n, ..)| n.ends_with(".log"))
            .map_or(0, |f| f.2)
    );
}

/// A read left unread as a file range (`read_or_range`) names exactly the bytes a read
/// returns, from any offset and for any size bound; under the threshold, or through
/// `O_DIRECT`, it reads them instead.
#[test]
fn a_range_left_unread_holds_the_bytes_a_read_returns() {
    for direct_io in [false, true] {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = LogConfig {
            direct_io,
            segment_bytes: 4096,
            ..config()
        };
        let mut log = PartitionLog::open(dir.path(), cfg, true, 0).expect("open");
        for i in 0..40i64 {
            let body = vec![i as u8; 50 + 13 * i as usize];
            log.append(&make_batch(1 + i as i32 % 3, &body, i), i)
                .expect("append");
        }
        if direct_io {
            sync(&mut log);
        }
        let end = log.high_watermark();
        assert!(end > 40, "{end}");
        for offset in (0..end).step_by(7) {
            for (max_bytes, min_one) in [(0, true), (300, false), (300, true), (usize::MAX, true)] {
                let view = log.read_view(offset).expect("view");
                let mut read = Vec::new();
                view.read_into(&mut read, max_bytes, min_one).expect("read");
                let mut out = Vec::new();
                match view
                    .read_or_range(&mut out, max_bytes, min_one, 1)
                    .expect("range")
                {
                    Unread::Range(r) => {
                        assert!(!direct_io, "a direct segment is always read");
                        assert!(out.is_empty());
                        assert_eq!(r.read_to_vec().expect("pread"), read);
                    }
                    Unread::Read(n) => {
                        assert!(direct_io || read.is_empty(), "offset {offset}");
                        assert_eq!((n, &out), (read.len(), &read));
                    }
                }
                let mut out = Vec::new();
                match view
                    .read_or_range(&mut out, max_bytes, min_one, usize::MAX)
                    .expect("read")
                {
                    Unread::Read(n) => assert_eq!((n, &out), (read.len(), &read)),
                    Unread::Range(_) => panic!("under the threshold a read is read"),
                }
            }
        }
    }
}
