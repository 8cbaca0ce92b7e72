//! Transactions across a `PartitionLog`'s failure paths: a failed write changes neither the
//! producer state nor the `.txnindex`, and a heal cuts the entries past its cut point.

use super::*;
use crate::storage::batch::rewrite_crc;
use crate::storage::batch::tests::make_idempotent_batch;
use crate::storage::control::{ControlType, marker_batch};
use crate::storage::segment::failpoint;

fn config() -> LogConfig {
    LogConfig {
        durable_hw: false,
        ..LogConfig::default()
    }
}

/// One transactional record from `pid` (epoch 0) with sequence `seq`.
fn txn_batch(pid: i64, seq: i32) -> Vec<u8> {
    let mut b = make_idempotent_batch(pid, 0, seq, 1);
    b[22] |= 0x10;
    let len = b.len();
    rewrite_crc(&mut b, len);
    b
}

fn txn_index_len(dir: &Path) -> u64 {
    std::fs::metadata(crate::storage::txn_index::txn_index_path(dir, 0)).map_or(0, |m| m.len())
}

#[test]
fn a_failed_append_of_an_abort_leaves_the_transaction_open_and_no_entry() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), config(), true, 0).expect("open");
    log.append(&txn_batch(1, 0), 1).expect("data");
    // The marker is written (and its entry appended), then the next batch of the same call
    // fails: both are undone.
    failpoint::fail_writes(1, 1);
    let mut two = marker_batch(1, 0, ControlType::Abort, 0, 2);
    two.extend(txn_batch(2, 0));
    assert!(log.append(&two, 2).is_err());
    assert!(!log.is_poisoned());
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.ongoing_transactions().len(), 1);
    assert!(log.aborted_transactions(0, 10).is_empty());
    assert_eq!(txn_index_len(dir.path()), 0);
    // A failed single marker: the same.
    failpoint::fail_writes(0, 1);
    assert!(log.append_marker(1, 0, false, 0, 3).is_err());
    assert_eq!(log.last_stable_offset(), 0);
    // Space is back.
    log.append_marker(1, 0, false, 0, 4).expect("marker");
    assert_eq!(
        log.aborted_transactions(0, 10),
        vec![AbortedTxn {
            producer_id: 1,
            first_offset: 0
        }]
    );
    assert_eq!(txn_index_len(dir.path()), 34);
}

#[test]
fn a_heal_cuts_the_abort_entries_past_the_last_fsync_and_reopens_their_transactions() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = PartitionLog::open(dir.path(), config(), true, 0).expect("open");
    log.append(&txn_batch(1, 0), 1).expect("data"); // 0
    log.append(&txn_batch(2, 0), 1).expect("data"); // 1
    log.append_marker(1, 0, false, 0, 1).expect("abort 1"); // 2
    let snap = log.sync_snapshot().expect("snapshot");
    assert!(
        snap.files
            .iter()
            .any(|(p, _)| p.extension().is_some_and(|e| e == "txnindex")),
        "the .txnindex is fsynced with its segment"
    );
    log.complete_sync(&snap);
    log.append_marker(2, 0, false, 0, 1).expect("abort 2"); // 3
    assert_eq!(log.aborted_transactions(0, 4).len(), 2);
    log.poison();
    assert!(log.heal(10_000));
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(
        log.aborted_transactions(0, 4),
        vec![AbortedTxn {
            producer_id: 1,
            first_offset: 0
        }]
    );
    assert_eq!(
        log.last_stable_offset(),
        1,
        "producer 2's transaction is open again"
    );
    assert_eq!(txn_index_len(dir.path()), 34);
}

/// Descriptors this process holds on files in `dir`, by extension.
fn open_files_in(dir: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("fds").flatten() {
        if let Ok(target) = std::fs::read_link(entry.path())
            && target.starts_with(dir)
        {
            let ext = target
                .extension()
                .map_or(String::new(), |e| e.to_string_lossy().into_owned());
            *out.entry(ext).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn a_txn_index_holds_a_handle_only_from_an_abort_until_the_roll_and_stays_durable() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = LogConfig {
        segment_bytes: 200,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone(), true, 0).expect("open");
    let only_logs = |n: usize| std::collections::BTreeMap::from([("log".to_string(), n)]);
    assert_eq!(open_files_in(dir.path()), only_logs(1));
    log.append(&txn_batch(1, 0), 1).expect("data");
    assert_eq!(open_files_in(dir.path()), only_logs(1));
    log.append_marker(1, 0, false, 0, 2).expect("abort");
    assert!(log.active().txn_index.is_open());
    let mut files = only_logs(1);
    files.insert("txnindex".to_string(), 1);
    assert_eq!(open_files_in(dir.path()), files);
    assert!(log.sync_snapshot().is_some_and(|s| s.files.len() == 2));
    // Roll: the sealed segment keeps only its `.log`; its entry is on disk.
    let mut seq = 0;
    while log.segments.len() == 1 {
        log.append(&make_idempotent_batch(7, 0, seq, 1), 3)
            .expect("fill");
        seq += 1;
    }
    assert!(!log.segments[0].txn_index.is_open());
    assert_eq!(open_files_in(dir.path()), only_logs(log.segments.len()));
    assert_eq!(txn_index_len(dir.path()), 34);
    let snap = log.sync_snapshot().expect("unsynced");
    assert!(
        snap.files
            .iter()
            .all(|(p, _)| p.extension().is_some_and(|e| e == "log"))
    );
    drop(snap); // (it holds `.log` handles)
    log.close().expect("close");
    drop(log);
    // Reopened (clean and after a crash): the entry is there, and only the `.log`s are open.
    for clean in [true, false] {
        let log = PartitionLog::open(dir.path(), cfg.clone(), clean, 10).expect("reopen");
        assert_eq!(
            log.aborted_transactions(0, 10),
            vec![AbortedTxn {
                producer_id: 1,
                first_offset: 0
            }]
        );
        assert_eq!(open_files_in(dir.path()), only_logs(log.segments.len()));
    }
}
