//! Transactions in a partition log (issue 14): a real `PartitionLog` in a temporary directory,
//! fed transactional batches and commit/abort markers. Checks the last stable offset, the
//! aborted and ongoing transactions, read_committed views, the `.txnindex` bytes, and that all
//! of it survives a clean close, a crash (drop without close, a cut tail), a lost or damaged
//! `.txnindex`, retention, an old producer-snapshot version and the cleaner. A property test
//! runs random sequences with reopens against a model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use proptest::prelude::*;
use thorstream::Record;
use thorstream::internals::protocol::records::{decode_records, encode_batch};
use thorstream::internals::storage::batch::{BatchIter, rewrite_crc};
use thorstream::internals::storage::checkpoint::write_bytes;
use thorstream::internals::storage::cleaner::{
    CleanOutcome, CleanerOptions, SWAP_STEPS, clean_log,
};
use thorstream::internals::storage::{
    AbortedTxn, Isolation, LogConfig, OngoingTxn, PartitionLog, StorageError,
};

fn config() -> LogConfig {
    LogConfig {
        durable_hw: false,
        segment_ms: 1_000_000,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, clean: bool) -> PartitionLog {
    PartitionLog::open(dir, config(), clean, 1).unwrap()
}

/// One batch of `keys` from producer `pid` (epoch, first sequence), transactional if `txn`.
fn batch(pid: i64, epoch: i16, seq: i32, keys: &[&str], txn: bool) -> Vec<u8> {
    let records: Vec<Record> = keys
        .iter()
        .map(|k| Record {
            key: Some(k.as_bytes().to_vec()),
            value: Some(format!("{k}@{pid}.{seq}").into_bytes()),
            headers: Vec::new(),
            timestamp: Some(5),
        })
        .collect();
    let mut b = encode_batch(&records, 5).unwrap();
    if txn {
        b[22] |= 0x10;
    }
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let len = b.len();
    rewrite_crc(&mut b, len);
    b
}

fn txn(pid: i64, seq: i32, keys: &[&str]) -> Vec<u8> {
    batch(pid, 0, seq, keys, true)
}

fn aborted(pid: i64, first_offset: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset,
    }
}

fn ongoing(log: &PartitionLog) -> Vec<(i64, i64)> {
    log.ongoing_transactions()
        .iter()
        .map(|t| (t.producer_id, t.first_offset))
        .collect()
}

/// The offsets of the records a view from `offset` holds under `isolation`.
fn visible(log: &PartitionLog, offset: i64, isolation: Isolation) -> Vec<i64> {
    let mut out = Vec::new();
    let mut bytes = Vec::new();
    log.read_view_isolated(offset, isolation)
        .unwrap()
        .read_into(&mut bytes, usize::MAX, false)
        .unwrap();
    for (h, _) in BatchIter::new(&bytes) {
        if !h.is_control() {
            out.extend(h.base_offset..=h.last_offset());
        }
    }
    out
}

/// A stored record: offset, key, value.
type Row = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Every data record below the high watermark.
fn records(log: &PartitionLog) -> Vec<Row> {
    let mut bytes = Vec::new();
    let mut offset = log.offsets().log_start_offset;
    let mut out = Vec::new();
    while offset < log.high_watermark() {
        bytes.clear();
        log.read_view(offset)
            .unwrap()
            .read_into(&mut bytes, usize::MAX, true)
            .unwrap();
        let Some(last) = BatchIter::new(&bytes).map(|(h, _)| h.last_offset()).last() else {
            break;
        };
        let data: Vec<u8> = BatchIter::new(&bytes)
            .filter(|(h, _)| !h.is_control())
            .flat_map(|(_, b)| b.to_vec())
            .collect();
        for r in decode_records("t", 0, &data, offset).unwrap() {
            out.push((r.offset, r.key, r.value));
        }
        offset = last + 1;
    }
    out
}

fn txn_index(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.txnindex"))
}

#[test]
fn a_committed_transaction_becomes_visible_to_read_committed_at_its_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), true);
    log.append(&batch(-1, -1, -1, &["a"], false), 1).unwrap(); // offset 0
    log.append(&txn(7, 0, &["b", "c"]), 1).unwrap(); // 1..=2
    assert_eq!(log.last_stable_offset(), 1);
    assert_eq!(log.offsets().last_stable_offset, 1);
    assert_eq!(
        log.ongoing_transactions(),
        vec![OngoingTxn {
            producer_id: 7,
            producer_epoch: 0,
            first_offset: 1
        }]
    );
    assert_eq!(visible(&log, 0, Isolation::ReadCommitted), vec![0]);
    assert_eq!(
        visible(&log, 1, Isolation::ReadCommitted),
        Vec::<i64>::new()
    );
    assert_eq!(visible(&log, 0, Isolation::ReadUncommitted), vec![0, 1, 2]);
    let info = log.append_marker(7, 0, true, 0, 2).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (3, 3));
    assert_eq!(log.last_stable_offset(), 4);
    assert!(log.ongoing_transactions().is_empty());
    assert!(log.aborted_transactions(0, 4).is_empty());
    assert_eq!(visible(&log, 0, Isolation::ReadCommitted), vec![0, 1, 2]);
    assert_eq!(
        std::fs::metadata(txn_index(tmp.path(), 0)).unwrap().len(),
        0
    );
}

#[test]
fn an_abort_writes_its_entry_to_the_segments_txnindex_in_kafkas_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), true);
    log.append(&txn(7, 0, &["a"]), 1).unwrap(); // 0
    log.append(&txn(8, 0, &["b"]), 1).unwrap(); // 1
    log.append(&txn(7, 1, &["c"]), 1).unwrap(); // 2
    log.append_marker(7, 0, false, 0, 2).unwrap(); // 3
    assert_eq!(log.aborted_transactions(0, 4), vec![aborted(7, 0)]);
    assert_eq!(log.last_stable_offset(), 1, "producer 8 is still open");
    let bytes = std::fs::read(txn_index(tmp.path(), 0)).unwrap();
    let mut expected = Vec::new();
    expected.extend_from_slice(&0i16.to_be_bytes());
    expected.extend_from_slice(&7i64.to_be_bytes());
    expected.extend_from_slice(&0i64.to_be_bytes()); // first offset
    expected.extend_from_slice(&3i64.to_be_bytes()); // the abort marker
    expected.extend_from_slice(&1i64.to_be_bytes()); // LSO then: producer 8's first offset
    assert_eq!(bytes, expected);
    // An abort of a transaction with no data here writes no entry.
    log.append_marker(9, 0, false, 0, 3).unwrap(); // 4
    assert_eq!(
        std::fs::metadata(txn_index(tmp.path(), 0)).unwrap().len(),
        34
    );
    log.append_marker(8, 0, false, 0, 3).unwrap(); // 5
    assert_eq!(
        log.aborted_transactions(0, 6),
        vec![aborted(7, 0), aborted(8, 1)]
    );
    assert_eq!(log.aborted_transactions(4, 6), vec![aborted(8, 1)]);
    assert_eq!(log.aborted_transactions(0, 1), vec![aborted(7, 0)]);
    assert_eq!(log.last_stable_offset(), 6);
}

#[test]
fn interleaved_producers_hold_the_lso_at_the_oldest_open_transaction() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), true);
    log.append(&txn(1, 0, &["a"]), 1).unwrap(); // 0
    log.append(&txn(2, 0, &["b"]), 1).unwrap(); // 1
    log.append(&batch(-1, -1, -1, &["c"], false), 1).unwrap(); // 2
    log.append(&txn(1, 1, &["d"]), 1).unwrap(); // 3
    assert_eq!(ongoing(&log), vec![(1, 0), (2, 1)]);
    assert_eq!(log.last_stable_offset(), 0);
    log.append_marker(1, 0, true, 0, 1).unwrap(); // 4
    assert_eq!(log.last_stable_offset(), 1);
    assert_eq!(visible(&log, 0, Isolation::ReadCommitted), vec![0]);
    log.append(&txn(1, 2, &["e"]), 1).unwrap(); // 5: producer 1's next transaction
    assert_eq!(ongoing(&log), vec![(2, 1), (1, 5)]);
    log.append_marker(2, 0, false, 0, 1).unwrap(); // 6
    assert_eq!(log.last_stable_offset(), 5);
    assert_eq!(log.aborted_transactions(0, 7), vec![aborted(2, 1)]);
    assert_eq!(
        visible(&log, 0, Isolation::ReadCommitted),
        vec![0, 1, 2, 3],
        "aborted records are readable; the reader skips them with the list"
    );
}

#[test]
fn a_marker_below_the_producers_epoch_is_fenced_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), true);
    log.append(&batch(4, 3, 0, &["a"], true), 1).unwrap();
    let err = log.append_marker(4, 2, false, 0, 1).unwrap_err();
    assert!(matches!(err, StorageError::Producer(_)), "{err:?}");
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(ongoing(&log), vec![(4, 0)]);
    // A higher epoch (the coordinator fencing the producer) is accepted and bumps it.
    log.append_marker(4, 5, false, 0, 1).unwrap();
    assert_eq!(log.aborted_transactions(0, 2), vec![aborted(4, 0)]);
    assert!(log.append(&batch(4, 3, 1, &["b"], true), 1).is_err());
    // A re-sent marker for a producer with nothing open is appended and harmless.
    log.append_marker(4, 5, false, 0, 1).unwrap();
    assert_eq!(log.aborted_transactions(0, 3).len(), 1);
    assert_eq!(log.last_stable_offset(), 3);
}

#[test]
fn under_fsync_always_a_decided_transaction_holds_the_lso_until_its_marker_is_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        durable_hw: true,
        ..config()
    };
    let mut log = PartitionLog::open(tmp.path(), config, true, 1).unwrap();
    log.append(&txn(1, 0, &["a"]), 1).unwrap();
    let snap = log.sync_snapshot().unwrap();
    log.complete_sync(&snap);
    assert_eq!(log.last_stable_offset(), 0);
    log.append_marker(1, 0, true, 0, 1).unwrap();
    assert_eq!(log.high_watermark(), 1);
    assert_eq!(log.last_stable_offset(), 0, "the commit is not visible yet");
    let snap = log.sync_snapshot().unwrap();
    log.complete_sync(&snap);
    assert_eq!(log.last_stable_offset(), 2);
}

/// State that must survive every kind of reopen.
fn state(log: &PartitionLog) -> (i64, Vec<(i64, i64)>, Vec<AbortedTxn>) {
    (
        log.last_stable_offset(),
        ongoing(log),
        log.aborted_transactions(0, log.log_end_offset()),
    )
}

fn some_transactions(log: &mut PartitionLog) {
    log.append(&txn(1, 0, &["a"]), 1).unwrap(); // 0
    log.append(&txn(2, 0, &["b"]), 1).unwrap(); // 1
    log.append_marker(1, 0, false, 0, 1).unwrap(); // 2
    log.append(&txn(3, 0, &["c"]), 1).unwrap(); // 3
    log.append_marker(2, 0, false, 0, 1).unwrap(); // 4
}

#[test]
fn transactions_survive_a_clean_close_and_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), true);
    some_transactions(&mut log);
    let before = state(&log);
    assert_eq!(
        before,
        (3, vec![(3, 3)], vec![aborted(1, 0), aborted(2, 1)])
    );
    log.close().unwrap();
    drop(log);
    let mut log = open(tmp.path(), true);
    assert_eq!(state(&log), before, "after a clean close");
    log.append_marker(3, 0, false, 0, 1).unwrap(); // 5
    let before = state(&log);
    drop(log); // a crash: no close, no snapshot past offset 5
    let log = open(tmp.path(), false);
    assert_eq!(state(&log), before, "after a crash");
    assert_eq!(
        std::fs::metadata(txn_index(tmp.path(), 0)).unwrap().len(),
        3 * 34
    );
}

#[test]
fn a_cut_tail_reopens_the_transaction_its_marker_closed_and_cuts_the_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), true);
    some_transactions(&mut log);
    log.close().unwrap();
    drop(log);
    // Lose most of the last marker (producer 2's abort, 78 bytes) as a crash before its fsync
    // would: a torn batch.
    let path = tmp.path().join(format!("{:020}.log", 0));
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 78 + 10)
        .unwrap();
    let log = open(tmp.path(), false);
    assert_eq!(log.log_end_offset(), 4, "the torn marker is cut");
    assert_eq!(state(&log), (1, vec![(2, 1), (3, 3)], vec![aborted(1, 0)]));
    assert_eq!(
        std::fs::metadata(txn_index(tmp.path(), 0)).unwrap().len(),
        34
    );
}

#[test]
fn a_lost_or_damaged_txnindex_below_the_snapshot_is_rebuilt_from_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), true);
    some_transactions(&mut log);
    let before = state(&log);
    log.close().unwrap(); // the snapshot is at the log end: no replay covers the markers
    drop(log);
    let path = txn_index(tmp.path(), 0);
    let good = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let log = open(tmp.path(), true);
    assert_eq!(state(&log), before, "missing");
    drop(log);
    assert_eq!(std::fs::read(&path).unwrap(), good);
    std::fs::write(&path, &good[..40]).unwrap();
    let log = open(tmp.path(), true);
    assert_eq!(state(&log), before, "garbled");
    drop(log);
    assert_eq!(std::fs::read(&path).unwrap(), good);
}

#[test]
fn retention_deletes_a_segment_with_its_txnindex_and_never_an_open_transaction() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 10,
        ..config()
    };
    let mut log = PartitionLog::open(tmp.path(), config, true, 1).unwrap();
    log.append(&txn(1, 0, &["a"]), 1).unwrap(); // 0
    log.append_marker(1, 0, false, 0, 1).unwrap(); // 1
    log.append(&txn(2, 0, &["b"]), 1).unwrap(); // 2: stays open for now
    log.roll_if_expired(2_000_000).unwrap();
    log.append(&batch(-1, -1, -1, &["c"], false), 2_000_000)
        .unwrap(); // 3, segment 3
    log.roll_if_expired(4_000_000).unwrap();
    log.append(&batch(-1, -1, -1, &["d"], false), 4_000_000)
        .unwrap(); // 4, segment 4
    assert_eq!(log.segment_count(), 3);
    assert!(txn_index(tmp.path(), 0).exists());
    assert_eq!(log.aborted_transactions(0, 5), vec![aborted(1, 0)]);
    // Every record is old, but the segment holding the LSO (producer 2's first batch) stays.
    assert_eq!(log.last_stable_offset(), 2);
    assert_eq!(log.apply_retention(i64::MAX / 2).unwrap(), 0);
    log.append_marker(2, 0, true, 0, 4_000_000).unwrap(); // 5
    assert_eq!(log.apply_retention(i64::MAX / 2).unwrap(), 2);
    assert!(!txn_index(tmp.path(), 0).exists());
    assert!(!txn_index(tmp.path(), 3).exists());
    assert!(txn_index(tmp.path(), 4).exists());
    assert!(log.aborted_transactions(0, 6).is_empty());
    assert_eq!(log.offsets().log_start_offset, 4);
}

#[test]
fn delete_records_hides_entries_below_the_log_start() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), true);
    some_transactions(&mut log);
    log.append_marker(3, 0, true, 0, 1).unwrap(); // 5
    log.delete_records_before(3).unwrap();
    assert_eq!(log.aborted_transactions(0, 6), vec![aborted(2, 1)]);
    log.delete_records_before(5).unwrap();
    assert!(log.aborted_transactions(0, 6).is_empty());
}

/// A version 1 producer snapshot (written before transactions) still opens: its producers
/// keep their sequences, with no open transaction.
#[test]
fn a_version_1_producer_snapshot_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), true);
    log.append(&batch(-1, -1, -1, &["a"], false), 1).unwrap();
    log.close().unwrap();
    drop(log);
    // Producer 9, epoch 3, one retained batch (sequences 0..=4 at offsets 100..=104), taken
    // at offset 1: only the snapshot knows it.
    let mut body = b"TSPSNAP".to_vec();
    body.push(0x81);
    body.extend_from_slice(&1i64.to_le_bytes());
    body.extend_from_slice(&1u64.to_le_bytes());
    body.extend_from_slice(&9i64.to_le_bytes());
    body.extend_from_slice(&3i16.to_le_bytes());
    body.extend_from_slice(&5i64.to_le_bytes());
    body.extend_from_slice(&1u64.to_le_bytes());
    for v in [0i32, 4] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    for v in [100i64, 104] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    write_bytes(&tmp.path().join("producer-state.v2"), &body).unwrap();
    let mut log = open(tmp.path(), true);
    assert!(log.ongoing_transactions().is_empty());
    let info = log.append(&batch(9, 3, 5, &["b"], false), 1).unwrap();
    assert_eq!(info.base_offset, 1, "sequence 5 follows the snapshot's 4");
    assert!(log.append(&batch(9, 3, 0, &["c"], false), 1).is_err());
    log.close().unwrap();
    drop(log);
    // Rewritten in the current version, which still opens.
    let log = open(tmp.path(), true);
    assert!(log.producer_state().get(9).is_some());
}

fn compacted() -> LogConfig {
    LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        ..config()
    }
}

/// A compacted log: k committed at 0, k aborted at 3 (marker 4), producer 3 open at 5, two
/// more segments (6, 7).
fn build_compacted(dir: &Path) {
    let mut log = PartitionLog::open(dir, compacted(), true, 1).unwrap();
    log.append(&txn(1, 0, &["k", "x"]), 1).unwrap(); // 0..=1
    log.append_marker(1, 0, true, 0, 1).unwrap(); // 2
    log.append(&txn(2, 0, &["k"]), 1).unwrap(); // 3: aborted later value of k
    log.append_marker(2, 0, false, 0, 1).unwrap(); // 4
    log.append(&txn(3, 0, &["y"]), 1).unwrap(); // 5: still open
    log.roll_if_expired(2_000_000).unwrap();
    log.append(&batch(-1, -1, -1, &["z"], false), 2_000_000)
        .unwrap(); // 6, segment 6
    log.roll_if_expired(4_000_000).unwrap();
    log.append(&batch(-1, -1, -1, &["w"], false), 4_000_000)
        .unwrap(); // 7, segment 7
    log.close().unwrap();
}

#[test]
fn the_cleaner_drops_aborted_data_and_keeps_the_committed_value_markers_and_entries() {
    let tmp = tempfile::tempdir().unwrap();
    build_compacted(tmp.path());
    let log = Mutex::new(PartitionLog::open(tmp.path(), compacted(), true, 5_000_000).unwrap());
    let options = CleanerOptions {
        force: true,
        ..CleanerOptions::default()
    };
    // The open transaction of producer 3 holds the LSO at 5: the first segment may not be
    // cleaned yet.
    let outcome = clean_log(&log, &options, 5_000_000).unwrap();
    assert!(!matches!(outcome, CleanOutcome::Cleaned(_)), "{outcome:?}");
    log.lock()
        .unwrap()
        .append_marker(3, 0, true, 0, 5_000_000)
        .unwrap(); // 8
    let outcome = clean_log(&log, &options, 5_000_000).unwrap();
    assert!(matches!(outcome, CleanOutcome::Cleaned(_)), "{outcome:?}");
    let guard = log.lock().unwrap();
    let rows = records(&guard);
    let k: Vec<_> = rows
        .iter()
        .filter(|r| r.1.as_deref() == Some(&b"k"[..]))
        .collect();
    assert_eq!(k.len(), 1, "{rows:?}");
    assert_eq!(
        k[0].2.as_deref(),
        Some(&b"k@1.0"[..]),
        "the committed value of k"
    );
    assert!(rows.iter().all(|r| r.0 != 3), "the aborted batch is gone");
    assert_eq!(guard.aborted_transactions(0, 9), vec![aborted(2, 3)]);
    // The markers are kept: reading uncommitted from 0 still shows control batches.
    let mut bytes = Vec::new();
    guard
        .read_view(0)
        .unwrap()
        .read_into(&mut bytes, usize::MAX, false)
        .unwrap();
    let controls: Vec<i64> = BatchIter::new(&bytes)
        .filter(|(h, _)| h.is_control())
        .map(|(h, _)| h.base_offset)
        .collect();
    assert_eq!(controls, vec![2, 4]);
    drop(guard);
    // The cleaned segment's entries survive a reopen.
    let mut log = log.into_inner().unwrap();
    log.close().unwrap();
    drop(log);
    let log = open(tmp.path(), true);
    assert_eq!(log.aborted_transactions(0, 9), vec![aborted(2, 3)]);
}

/// A crash after any step of the cleaned segment's swap loses no aborted transaction: the
/// carried `.txnindex` is swapped in, or rebuilt from the log at open.
#[test]
fn a_crash_at_any_swap_step_keeps_the_aborted_transactions() {
    for step in SWAP_STEPS {
        let tmp = tempfile::tempdir().unwrap();
        build_compacted(tmp.path());
        let mut log = PartitionLog::open(tmp.path(), compacted(), true, 5_000_000).unwrap();
        log.append_marker(3, 0, true, 0, 5_000_000).unwrap(); // 8
        log.close().unwrap();
        let log = Mutex::new(log);
        let options = CleanerOptions {
            force: true,
            stop_after: Some(step),
            ..CleanerOptions::default()
        };
        let outcome = clean_log(&log, &options, 5_000_000).unwrap();
        assert!(
            matches!(outcome, CleanOutcome::Stopped(_) | CleanOutcome::Cleaned(_)),
            "{step:?}: {outcome:?}"
        );
        drop(log); // the crash
        let log = PartitionLog::open(tmp.path(), compacted(), false, 6_000_000).unwrap();
        assert_eq!(log.log_end_offset(), 9, "{step:?}");
        assert_eq!(
            log.aborted_transactions(0, 9),
            vec![aborted(2, 3)],
            "{step:?}"
        );
        assert_eq!(log.last_stable_offset(), 9, "{step:?}");
        let k: Vec<_> = records(&log)
            .into_iter()
            .filter(|r| r.1.as_deref() == Some(&b"k"[..]) && r.0 != 3)
            .collect();
        assert_eq!(k.len(), 1, "{step:?}: {k:?}");
    }
}

// ---- Property test: random operations and reopens against a model. ----

#[derive(Debug, Clone)]
enum Op {
    Data(i64),
    Marker(i64, bool),
    Plain,
    Roll,
    CloseReopen,
    CrashReopen,
    /// A crash that loses the last appended batch (if it is in the active segment).
    CrashLosingLast,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1i64..4).prop_map(Op::Data),
        3 => (1i64..4, any::<bool>()).prop_map(|(p, c)| Op::Marker(p, c)),
        1 => Just(Op::Plain),
        1 => Just(Op::Roll),
        1 => Just(Op::CloseReopen),
        1 => Just(Op::CrashReopen),
        1 => Just(Op::CrashLosingLast),
    ]
}

/// What was appended, in order: `(kind, bytes)`; the model is folded from it.
#[derive(Debug, Clone, Copy)]
enum Appended {
    Data(i64),
    Marker(i64, bool),
    Plain,
}

#[derive(Debug, Default, PartialEq)]
struct Model {
    lso: i64,
    ongoing: Vec<(i64, i64)>,
    aborted: Vec<AbortedTxn>,
}

fn fold(history: &[Appended]) -> (Model, BTreeMap<i64, i32>) {
    let mut open: BTreeMap<i64, i64> = BTreeMap::new();
    let mut seqs: BTreeMap<i64, i32> = BTreeMap::new();
    let mut aborted_txns = Vec::new();
    for (offset, a) in history.iter().enumerate() {
        let offset = offset as i64;
        match *a {
            Appended::Data(p) => {
                open.entry(p).or_insert(offset);
                *seqs.entry(p).or_default() += 1;
            }
            Appended::Marker(p, commit) => {
                if let Some(first) = open.remove(&p)
                    && !commit
                {
                    aborted_txns.push(aborted(p, first));
                }
            }
            Appended::Plain => {}
        }
    }
    let mut ongoing: Vec<(i64, i64)> = open.iter().map(|(&p, &f)| (p, f)).collect();
    ongoing.sort_by_key(|&(_, f)| f);
    let model = Model {
        lso: ongoing.first().map_or(history.len() as i64, |&(_, f)| f),
        ongoing,
        aborted: aborted_txns,
    };
    (model, seqs)
}

/// Every batch offset (control batches too) a read_committed reader gets, reading views from
/// the log start until one is empty.
fn read_committed_offsets(log: &PartitionLog) -> Vec<i64> {
    let mut out = Vec::new();
    let mut offset = log.offsets().log_start_offset;
    loop {
        let mut bytes = Vec::new();
        log.read_view_isolated(offset, Isolation::ReadCommitted)
            .unwrap()
            .read_into(&mut bytes, usize::MAX, false)
            .unwrap();
        let Some(last) = BatchIter::new(&bytes).map(|(h, _)| h.last_offset()).last() else {
            return out;
        };
        out.extend(BatchIter::new(&bytes).map(|(h, _)| h.base_offset));
        offset = last + 1;
    }
}

fn observed(log: &PartitionLog) -> Model {
    Model {
        lso: log.last_stable_offset(),
        ongoing: ongoing(log),
        aborted: log.aborted_transactions(0, log.log_end_offset()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn recovery_rebuilds_transactions_as_the_model_says(ops in proptest::collection::vec(op(), 1..40)) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut log = Some(open(dir, true));
        let mut history: Vec<Appended> = Vec::new();
        // Byte length of each batch in the active segment, oldest first.
        let mut active_lengths: Vec<u64> = Vec::new();
        let mut active_base = 0i64;
        let mut now = 1i64;
        for op in ops {
            now += 1;
            let l = log.as_mut().unwrap();
            let (segments_before, end_before) = (l.segment_count(), l.log_end_offset());
            let (_, seqs) = fold(&history);
            let appended = match op {
                Op::Data(p) => {
                    let seq = seqs.get(&p).copied().unwrap_or(0);
                    let b = txn(p, seq, &["k"]);
                    l.append(&b, now).unwrap();
                    Some((Appended::Data(p), b.len() as u64))
                }
                Op::Marker(p, commit) => {
                    l.append_marker(p, 0, commit, 0, now).unwrap();
                    Some((Appended::Marker(p, commit), 78))
                }
                Op::Plain => {
                    let b = batch(-1, -1, -1, &["p"], false);
                    l.append(&b, now).unwrap();
                    Some((Appended::Plain, b.len() as u64))
                }
                Op::Roll => {
                    now += 2_000_000;
                    l.roll_if_expired(now).unwrap();
                    None
                }
                Op::CloseReopen => {
                    l.close().unwrap();
                    drop(log.take());
                    log = Some(open(dir, true));
                    None
                }
                Op::CrashReopen => {
                    drop(log.take());
                    log = Some(open(dir, false));
                    None
                }
                Op::CrashLosingLast => {
                    drop(log.take());
                    if let Some(len) = active_lengths.pop() {
                        let path = dir.join(format!("{active_base:020}.log"));
                        let size = std::fs::metadata(&path).unwrap().len();
                        std::fs::OpenOptions::new().write(true).open(&path).unwrap()
                            .set_len(size - len).unwrap();
                        history.pop();
                    }
                    log = Some(open(dir, false));
                    None
                }
            };
            let l = log.as_ref().unwrap();
            // A roll (an append rolls too, a segment older than `segment.ms` after a reopen)
            // starts the new active segment at the log end before the op.
            if l.segment_count() != segments_before {
                active_base = end_before;
                active_lengths.clear();
            }
            if let Some((a, len)) = appended {
                history.push(a);
                active_lengths.push(len);
            }
            prop_assert_eq!(l.log_end_offset(), history.len() as i64);
            let (model, _) = fold(&history);
            // read_committed reads every batch below the LSO and nothing at or past it.
            let below: Vec<i64> = (0..model.lso).collect();
            prop_assert_eq!(read_committed_offsets(l), below);
            prop_assert_eq!(observed(l), model, "after {:?}", history);
        }
    }
}
