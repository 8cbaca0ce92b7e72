//! Cleaner tests over real logs in temporary directories: map semantics against a model,
//! tombstone horizons, offsets, a crash at every step of the swap, and the producer state.

use std::collections::HashMap;
use std::sync::Mutex;

use proptest::prelude::*;

use super::swap::{SWAP_STEPS, SwapStep};
use super::{CleanOutcome, CleanStats, CleanerOptions, clean_log};
use crate::protocol::records::{decode_records, encode_batch, encode_batch_with};
use crate::storage::batch::{BatchIter, rewrite_crc};
use crate::storage::{LogConfig, PartitionLog};
use crate::types::Record;
use kafka_protocol::records::Compression;

const RETENTION_MS: i64 = 1_000;

fn config() -> LogConfig {
    LogConfig {
        durable_hw: false,
        cleanup_compact: true,
        cleanup_delete: false,
        segment_ms: 10,
        index_interval_bytes: 64,
        delete_retention_ms: RETENTION_MS,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

/// One stored record: offset, key, value.
type Row = (i64, Option<Vec<u8>>, Option<Vec<u8>>);
/// Batches to append: (key, value or tombstone) records, and whether to roll first.
type Ops = Vec<(Vec<(u8, Option<u8>)>, bool)>;

fn batch(records: &[(u8, Option<u8>)]) -> Vec<u8> {
    batch_in(records, Compression::None)
}

/// `batch`, its records compressed with `codec`.
fn batch_in(records: &[(u8, Option<u8>)], codec: Compression) -> Vec<u8> {
    let rs: Vec<Record> = records
        .iter()
        .map(|(k, v)| Record {
            key: Some(vec![b'k', *k]),
            value: v.map(|v| vec![b'v', v]),
            headers: Vec::new(),
            timestamp: Some(1),
        })
        .collect();
    encode_batch_with(&rs, 1, codec).unwrap_or_else(|e| panic!("{e}"))
}

/// Every codec a producer may use, by attribute id.
const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// The headers of every stored batch, segment by segment.
fn stored_headers(log: &PartitionLog) -> Vec<crate::storage::batch::BatchHeader> {
    let mut out = Vec::new();
    let mut offset = log.offsets().log_start_offset;
    while offset < log.high_watermark() {
        let mut bytes = Vec::new();
        let view = log.read_view(offset).unwrap_or_else(|e| panic!("{e}"));
        view.read_into(&mut bytes, usize::MAX, true)
            .unwrap_or_else(|e| panic!("{e}"));
        let before = out.len();
        out.extend(BatchIter::new(&bytes).map(|(h, _)| h));
        match out[before..].last() {
            Some(h) => offset = h.last_offset() + 1,
            None => break,
        }
    }
    out
}

/// Marks an encoded batch as idempotent producer `pid`'s, starting at `seq`.
fn idempotent(mut b: Vec<u8>, pid: i64, seq: i32) -> Vec<u8> {
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let total = b.len();
    rewrite_crc(&mut b, total);
    b
}

fn sync(log: &mut PartitionLog) {
    if let Some(snap) = log.sync_snapshot() {
        for (_, f) in &snap.files {
            f.sync_data().unwrap_or_else(|e| panic!("{e}"));
        }
        log.complete_sync(&snap);
    }
}

/// Every visible record from the log start, following the segments.
fn read_all(log: &PartitionLog) -> Vec<Row> {
    let mut out = Vec::new();
    let mut offset = log.offsets().log_start_offset;
    while offset < log.high_watermark() {
        let mut bytes = Vec::new();
        let view = log.read_view(offset).unwrap_or_else(|e| panic!("{e}"));
        view.read_into(&mut bytes, usize::MAX, true)
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(last) = BatchIter::new(&bytes).map(|(h, _)| h.last_offset()).last() else {
            break;
        };
        for r in decode_records("t", 0, &bytes, offset).unwrap_or_else(|e| panic!("{e}")) {
            out.push((r.offset, r.key, r.value));
        }
        offset = last + 1;
    }
    out
}

/// What a clean that mapped `[0, end)` leaves of `rows` (everything from offset 0): below
/// `end`, the last record of each key, tombstones only if `keep_tombstone(offset)`; from `end`
/// on, everything.
fn expected(rows: &[Row], end: i64, keep_tombstone: impl Fn(i64) -> bool) -> Vec<Row> {
    let mut last: HashMap<&Option<Vec<u8>>, i64> = HashMap::new();
    for (o, k, _) in rows.iter().filter(|r| r.0 < end) {
        last.insert(k, *o);
    }
    rows.iter()
        .filter(|(o, k, v)| {
            *o >= end || (last.get(k) == Some(o) && (v.is_some() || keep_tombstone(*o)))
        })
        .cloned()
        .collect()
}

fn clean(log: &Mutex<PartitionLog>, options: &CleanerOptions, now: i64) -> CleanStats {
    match clean_log(log, options, now).unwrap_or_else(|e| panic!("{e}")) {
        CleanOutcome::Cleaned(s) => s,
        other => panic!("expected a clean, got {other:?}"),
    }
}

fn forced() -> CleanerOptions {
    CleanerOptions {
        force: true,
        ..CleanerOptions::default()
    }
}

/// Appends `ops` (each a batch: records and whether to roll before it), syncs, and rolls so
/// that all of it is in inactive segments. Returns the clock.
fn fill(log: &mut PartitionLog, ops: &Ops, now: i64) -> i64 {
    fill_in(log, ops, now, Compression::None)
}

/// `fill` with the batches of `ops` compressed with `codec`.
fn fill_in(log: &mut PartitionLog, ops: &Ops, mut now: i64, codec: Compression) -> i64 {
    for (records, roll) in ops {
        if *roll {
            now += 10;
        }
        log.append(&batch_in(records, codec), now)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    now += 10;
    log.append(&batch(&[(255, Some(0))]), now)
        .unwrap_or_else(|e| panic!("{e}"));
    sync(log);
    now
}

fn ops_strategy() -> impl Strategy<Value = Ops> {
    proptest::collection::vec(
        (
            proptest::collection::vec(
                (0u8..12, proptest::option::weighted(0.8, any::<u8>())),
                1..4,
            ),
            proptest::bool::weighted(0.3),
        ),
        1..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Reading from the start after a clean gives map semantics (the last record per key, in
    /// offset order) over the mapped range, tombstones kept before their horizon and gone after
    /// it; offsets are unchanged and increasing; the log end offset does not move; a reopen
    /// after a crash reads the same. Input batches in every codec: a rewritten batch keeps its
    /// codec (an emptied one, kept for its producer, is an uncompressed header).
    #[test]
    fn cleaning_gives_map_semantics(
        ops in ops_strategy(),
        codec_id in 0usize..CODECS.len(),
        small_map in any::<bool>(),
        // Small: segments roll by size too and cleaned runs are short (some clean to empty).
        segment_bytes in prop_oneof![Just(200u64), Just(1u64 << 30)],
    ) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cfg = LogConfig { segment_bytes, ..config() };
        let mut raw = PartitionLog::open(dir.path(), cfg.clone(), true, 0).unwrap_or_else(|e| panic!("{e}"));
        let now = fill_in(&mut raw, &ops, 0, CODECS[codec_id]);
        let before = read_all(&raw);
        let leo = raw.log_end_offset();
        let log = Mutex::new(raw);
        let options = CleanerOptions {
            // Room for about three keys: the dirty section is cleaned a prefix at a time.
            dedupe_buffer_bytes: if small_map { 4 * super::offset_map::SLOT_BYTES } else { 1 << 20 },
            ..forced()
        };
        let t0 = now + 1;
        let stats = clean(&log, &options, t0);
        let end = stats.mapped_to_offset;
        let stamped_below = stats.copied_to_offset;
        let want = expected(&before, end, |_| true);
        let mut guard = log.lock().unwrap_or_else(|e| panic!("{e}"));
        let got = read_all(&guard);
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(guard.log_end_offset(), leo);
        prop_assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        // The last batch `fill` wrote is uncompressed; every other keeps the input's codec.
        for h in stored_headers(&guard) {
            let last = h.last_offset() == leo - 1;
            let want = if last || h.record_count == 0 { 0 } else { codec_id as i16 };
            prop_assert_eq!(h.compression_codec(), want, "batch at {}", h.base_offset);
        }

        // After the horizon, with new dirty data past it, the tombstones go.
        let mut now2 = t0 + RETENTION_MS;
        now2 += 10;
        guard.append(&batch(&[(254, Some(1))]), now2).unwrap_or_else(|e| panic!("{e}"));
        now2 += 10;
        guard.append(&batch(&[(253, Some(1))]), now2).unwrap_or_else(|e| panic!("{e}"));
        sync(&mut guard);
        let before2 = read_all(&guard);
        let leo2 = guard.log_end_offset();
        drop(guard);
        let options = CleanerOptions { dedupe_buffer_bytes: 1 << 20, ..forced() };
        let stats2 = clean(&log, &options, now2);
        let guard = log.lock().unwrap_or_else(|e| panic!("{e}"));
        // Tombstones the first clean copied got its horizon (passed now); those it did not
        // copy get theirs from this clean.
        let want2 = expected(&before2, stats2.mapped_to_offset, |o| o >= stamped_below);
        let got2 = read_all(&guard);
        prop_assert_eq!(&got2, &want2);
        prop_assert_eq!(guard.log_end_offset(), leo2);
        drop(guard);
        drop(log);
        let reopened = PartitionLog::open(dir.path(), cfg, false, now2).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(read_all(&reopened), want2);
        prop_assert_eq!(reopened.log_end_offset(), leo2);
    }
}

/// A log of small segments (one batch each, rolled by age) with overwrites and tombstones.
fn small_segments(dir: &std::path::Path) -> (PartitionLog, i64) {
    let mut log = PartitionLog::open(dir, config(), true, 0).unwrap_or_else(|e| panic!("{e}"));
    let ops: Ops = (0..30u8)
        .map(|i| (vec![(i % 5, if i % 7 == 3 { None } else { Some(i) })], true))
        .collect();
    let now = fill(&mut log, &ops, 0);
    (log, now)
}

fn leftovers(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect()
}

/// A crash after every step of the swap: reopening with crash recovery gives either the log
/// before the clean (before the commit point) or the cleaned one (after it), never a lost
/// record or an offset twice, and no cleaner file is left behind.
#[test]
fn crash_at_every_swap_step_loses_nothing_and_duplicates_nothing() {
    for step in SWAP_STEPS {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (raw, now) = small_segments(dir.path());
        let before = read_all(&raw);
        let segments_before = raw.segment_count();
        let leo = raw.log_end_offset();
        let log = Mutex::new(raw);
        let options = CleanerOptions {
            stop_after: Some(step),
            ..forced()
        };
        let outcome = clean_log(&log, &options, now + 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(outcome, CleanOutcome::Stopped(step));
        drop(log); // the crash: nothing closed, nothing more written

        let reopened = PartitionLog::open(dir.path(), config(), false, now + 2)
            .unwrap_or_else(|e| panic!("{e}"));
        let got = read_all(&reopened);
        let end = reopened.log_end_offset() - 1; // the last segment stays dirty
        let cleaned = expected(&before, end, |_| true);
        if step == SwapStep::CleanedWritten {
            assert_eq!(
                got, before,
                "{step:?}: before the commit point nothing changes"
            );
            assert_eq!(reopened.segment_count(), segments_before, "{step:?}");
        } else {
            assert_eq!(got, cleaned, "{step:?}: after it the clean is completed");
            assert!(reopened.segment_count() < segments_before, "{step:?}");
        }
        assert_eq!(reopened.log_end_offset(), leo, "{step:?}");
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "{step:?}");
        assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "{step:?}");

        // And the log cleans on from there.
        let log = Mutex::new(reopened);
        let _ = clean_log(&log, &forced(), now + 3).unwrap_or_else(|e| panic!("{e}"));
        let guard = log.lock().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_all(&guard), cleaned, "{step:?}");
    }
}

/// Small cleaned segments are merged into one (up to `segment_bytes`); the clean point is
/// persisted, so a second pass with nothing new to map finds nothing to do.
#[test]
fn cleaned_segments_are_grouped_and_the_clean_point_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (raw, now) = small_segments(dir.path());
    let segments = raw.segment_count();
    let log = Mutex::new(raw);
    let stats = clean(&log, &forced(), now + 1);
    assert_eq!(stats.segments_before, segments - 1);
    assert_eq!(stats.segments_after, 1, "one run: all fit in segment_bytes");
    let mut guard = log.lock().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(guard.segment_count(), 2);
    guard.close().unwrap_or_else(|e| panic!("{e}"));
    drop(guard);
    drop(log);
    let reopened =
        PartitionLog::open(dir.path(), config(), true, now + 2).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reopened.clean_point(), Some(stats.mapped_to_offset));
    let log = Mutex::new(reopened);
    let outcome =
        clean_log(&log, &CleanerOptions::default(), now + 3).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome, CleanOutcome::NothingToClean);
}

/// Retention deleting a segment while a pass copies it: the swap sees the change and gives up
/// without touching the log; the next pass cleans.
#[test]
fn a_segment_deleted_during_the_copy_abandons_the_swap() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut raw, now) = small_segments(dir.path());
    // Stand-in for the race: the pass's snapshot is taken, then the log changes before the
    // swap. `begin_clean` is what the pass calls first; a DeleteRecords past the first
    // segment deletes it, as retention would.
    let view = raw.begin_clean().unwrap_or_else(|| panic!("cleanable"));
    raw.end_clean(None);
    let second = view.segments[1].base_offset;
    raw.delete_records_before(second)
        .unwrap_or_else(|e| panic!("{e}"));
    let files = super::swap::CleanedFiles {
        dir: dir.path().to_path_buf(),
        base: view.segments[0].base_offset,
        end: second,
    };
    std::fs::write(files.log_cleaned(), b"").unwrap_or_else(|e| panic!("{e}"));
    let run = [(view.segments[0].base_offset, view.segments[0].size)];
    let installed = raw
        .install_cleaned(&run, &files, None, now)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(installed, crate::storage::log::Installed::Changed);
    let log = Mutex::new(raw);
    let stats = clean(&log, &forced(), now + 1);
    assert!(stats.segments_after >= 1);
}

/// The last batch of an idempotent producer survives as an empty header when all its records
/// are overwritten, so the producer's sequence is intact after a clean and after a restart
/// that rebuilds the state from the log alone.
#[test]
fn producer_state_survives_cleaning_and_a_rebuild_from_the_log() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut raw =
        PartitionLog::open(dir.path(), config(), true, 0).unwrap_or_else(|e| panic!("{e}"));
    // Producer 7 writes keys 1 and 2 (sequences 0..=1, 2..=3); a keyless-free overwrite of
    // both by a non-idempotent writer follows, so every record of producer 7 is stale.
    raw.append(&idempotent(batch(&[(1, Some(1)), (2, Some(1))]), 7, 0), 10)
        .unwrap_or_else(|e| panic!("{e}"));
    raw.append(&idempotent(batch(&[(1, Some(2)), (2, Some(2))]), 7, 2), 20)
        .unwrap_or_else(|e| panic!("{e}"));
    raw.append(&batch(&[(1, Some(3)), (2, Some(3))]), 30)
        .unwrap_or_else(|e| panic!("{e}"));
    raw.append(&batch(&[(9, Some(9))]), 40)
        .unwrap_or_else(|e| panic!("{e}"));
    sync(&mut raw);
    let log = Mutex::new(raw);
    let stats = clean(&log, &forced(), 50);
    assert_eq!(stats.records_removed, 4);
    let guard = log.lock().unwrap_or_else(|e| panic!("{e}"));
    let rows: Vec<i64> = read_all(&guard).iter().map(|r| r.0).collect();
    assert_eq!(rows, vec![4, 5, 6]);
    drop(guard);
    drop(log);
    // A crash, and the producer-state snapshot lost: the state is rebuilt from the batches
    // alone, where producer 7 survives only as the empty header of its last batch.
    let _ = std::fs::remove_file(dir.path().join("producer-state.v2"));
    let mut reopened =
        PartitionLog::open(dir.path(), config(), false, 60).unwrap_or_else(|e| panic!("{e}"));
    // A retry of that last batch is recognised (nothing appended), the next one is in order.
    let retry = reopened
        .append(&idempotent(batch(&[(1, Some(2)), (2, Some(2))]), 7, 2), 70)
        .unwrap_or_else(|e| panic!("retry after a rebuild: {e}"));
    assert!(retry.duplicate);
    assert_eq!((retry.base_offset, retry.last_offset), (2, 3));
    let next = reopened
        .append(&idempotent(batch(&[(3, Some(1))]), 7, 4), 80)
        .unwrap_or_else(|e| panic!("in order after a rebuild: {e}"));
    assert!(!next.duplicate);
    let err = reopened.append(&idempotent(batch(&[(3, Some(3))]), 7, 9), 90);
    assert!(err.is_err(), "a gap in the sequence is still refused");
}

/// The log refuses a keyless record while compacted, and takes it when not.
#[test]
fn compacted_log_refuses_keyless_records_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut log =
        PartitionLog::open(dir.path(), config(), true, 0).unwrap_or_else(|e| panic!("{e}"));
    let mut both = batch(&[(1, Some(1))]);
    both.extend(
        encode_batch(&[Record::new(b"no key".to_vec())], 1).unwrap_or_else(|e| panic!("{e}")),
    );
    let err = log.append(&both, 1).expect_err("refused");
    assert!(
        err.to_string()
            .contains("Compacted topic cannot accept message without key"),
        "{err}"
    );
    assert_eq!(log.log_end_offset(), 0, "nothing partial is written");
    log.set_config(LogConfig {
        cleanup_compact: false,
        ..config()
    });
    log.append(&both, 2).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(log.log_end_offset(), 2);
}

/// Retention deletes old segments only when the policy contains `delete`: `compact` alone
/// keeps them, `compact,delete` deletes them as `delete` does.
#[test]
fn retention_applies_only_with_the_delete_policy() {
    for (delete, deleted) in [(false, false), (true, true)] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (mut log, now) = small_segments(dir.path());
        log.set_config(LogConfig {
            cleanup_delete: delete,
            retention_ms: 1,
            ..config()
        });
        let segments = log.segment_count();
        let n = log
            .apply_retention(now + 1_000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n > 0, deleted, "cleanup_delete {delete}");
        assert_eq!(log.segment_count() < segments, deleted);
    }
}

/// A tombstone outlives the clean that first copied it by exactly `delete_retention_ms`: a
/// later clean just before that horizon keeps it, one at the horizon drops it (and the key's
/// older values went with the first clean).
#[test]
fn tombstones_are_dropped_at_their_delete_horizon_not_before() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut raw =
        PartitionLog::open(dir.path(), config(), true, 0).unwrap_or_else(|e| panic!("{e}"));
    let ops: Ops = vec![
        (vec![(1, Some(1)), (2, Some(1))], false),
        (vec![(1, None)], true),
    ];
    let now = fill(&mut raw, &ops, 0);
    let log = Mutex::new(raw);
    let t0 = now + 1;
    clean(&log, &forced(), t0);
    let keys = |log: &Mutex<PartitionLog>| -> Vec<(Option<Vec<u8>>, bool)> {
        let guard = log.lock().unwrap_or_else(|e| panic!("{e}"));
        read_all(&guard)
            .into_iter()
            .map(|(_, k, v)| (k, v.is_some()))
            .collect()
    };
    let k = |n: u8| Some(vec![b'k', n]);
    assert_eq!(
        keys(&log),
        vec![(k(2), true), (k(1), false), (k(255), true)]
    );
    let mut t = t0;
    for (at, tombstone_kept) in [(t0 + RETENTION_MS - 1, true), (t0 + RETENTION_MS, false)] {
        // New dirty data, so that the pass maps past the tombstone.
        {
            let mut guard = log.lock().unwrap_or_else(|e| panic!("{e}"));
            t += 10;
            guard
                .append(&batch(&[(200, Some(1))]), t)
                .unwrap_or_else(|e| panic!("{e}"));
            t += 10;
            guard
                .append(&batch(&[(201, Some(1))]), t)
                .unwrap_or_else(|e| panic!("{e}"));
            sync(&mut guard);
        }
        clean(&log, &forced(), at);
        let has_tombstone = keys(&log).contains(&(k(1), false));
        assert_eq!(
            has_tombstone,
            tombstone_kept,
            "clean at {at} (horizon {})",
            t0 + RETENTION_MS
        );
    }
}
