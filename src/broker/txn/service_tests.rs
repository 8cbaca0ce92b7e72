//! The shell's state log: replay across a reopen, compaction at open and while running, and
//! the `<N>ms` policy's deferred fsync.

use std::sync::Arc;

use super::*;
use crate::broker::txn::effects::ProducerIdAndEpoch;

fn open(dir: &Path, fsync: FsyncPolicy) -> TxnService {
    TxnService::open(dir, fsync, TxnConfig::default(), Arc::new(Waits::default())).expect("open")
}

/// InitProducerId of `id` through the shell; the producer id it got.
fn init(s: &TxnService, id: &str, next_pid: &mut i64) -> ProducerIdAndEpoch {
    let step = s
        .with(|c, now| {
            c.init_producer_id(id, 60_000, None, now, &mut || {
                *next_pid += 1;
                Ok(*next_pid)
            })
        })
        .expect("lock");
    match s.execute(step) {
        (Some(Reply::InitProducerId(Ok(p))), None) => p,
        other => panic!("{other:?}"),
    }
}

fn records(s: &TxnService) -> usize {
    s.log.lock().expect("log").records
}

#[test]
fn the_state_survives_a_reopen_and_is_compacted_at_open() {
    let dir = tempfile::tempdir().expect("dir");
    let mut pid = 0;
    let before = {
        let s = open(dir.path(), FsyncPolicy::Always);
        for id in ["a", "b"] {
            for _ in 0..3 {
                init(&s, id, &mut pid);
            }
        }
        assert_eq!(records(&s), 6);
        s.lock().expect("lock").snapshot()
    };
    assert_eq!(before["a"].producer_epoch, 2);
    let s = open(dir.path(), FsyncPolicy::Always);
    assert_eq!(s.lock().expect("lock").snapshot(), before);
    assert_eq!(records(&s), 2, "one record per live id after open");
    // And the compacted file still reads back the same.
    drop(s);
    let s = open(dir.path(), FsyncPolicy::Always);
    assert_eq!(s.lock().expect("lock").snapshot(), before);
}

#[test]
fn a_long_running_log_is_compacted_while_it_runs() {
    let dir = tempfile::tempdir().expect("dir");
    let s = open(dir.path(), FsyncPolicy::Never);
    let mut pid = 0;
    let mut last = None;
    for _ in 0..TXN_LOG_COMPACT_RECORDS_MIN + 10 {
        last = Some(init(&s, "x", &mut pid));
    }
    assert!(records(&s) < 100, "compacted: {} records", records(&s));
    let snapshot = s.lock().expect("lock").snapshot();
    drop(s);
    let s = open(dir.path(), FsyncPolicy::Never);
    assert_eq!(s.lock().expect("lock").snapshot(), snapshot);
    let epoch = last.map(|p| p.producer_epoch);
    assert_eq!(snapshot.get("x").map(|m| m.producer_epoch), epoch);
}

#[test]
fn under_an_interval_only_decisions_are_fsynced_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let s = open(dir.path(), FsyncPolicy::Interval(50));
    let mut pid = 0;
    init(&s, "x", &mut pid);
    let since = s
        .log
        .lock()
        .expect("log")
        .unsynced_since_ms
        .expect("unsynced");
    assert_eq!(s.sync_if_due(since), Some(since + 50), "not due yet");
    assert_eq!(s.sync_if_due(since + 50), None, "fsynced when due");
    assert_eq!(s.log.lock().expect("log").unsynced_since_ms, None);
    let prepare = TxnRecord {
        transactional_id: "x".into(),
        value: Some({
            let mut m = crate::broker::txn::state::TxnMetadata::new(1, 1000, 0);
            m.state = TxnState::PrepareCommit;
            m
        }),
    };
    assert!(s.must_sync(&prepare));
    let mut ongoing = prepare.clone();
    if let Some(m) = ongoing.value.as_mut() {
        m.state = TxnState::Ongoing;
    }
    assert!(!s.must_sync(&ongoing));
    let always = open(
        tempfile::tempdir().expect("dir").path(),
        FsyncPolicy::Always,
    );
    assert!(always.must_sync(&ongoing) && always.must_sync(&prepare));
    let mut complete = prepare;
    if let Some(m) = complete.value.as_mut() {
        m.state = TxnState::CompleteCommit;
    }
    assert!(
        !always.must_sync(&complete),
        "no reply waits for a Complete record"
    );
}
