//! The shell's state log: replay across a reopen, compaction at open and while running, and
//! the `<N>ms` policy's deferred fsync.

use std::sync::Arc;

use super::*;
use crate::broker::txn::effects::ProducerIdAndEpoch;

fn open(dir: &Path, fsync: FsyncPolicy) -> TxnService {
    TxnService::open(dir, fsync, TxnConfig::default(), Arc::new(Waits::default())).expect("open")
}

/// Starts InitProducerId of `id` through the shell (its record written, maybe not applied).
fn start_init(s: &TxnService, id: &str, next_pid: &mut i64) -> Executed {
    let step = s
        .with(|c, now| {
            c.init_producer_id(id, 60_000, None, now, &mut || {
                *next_pid += 1;
                Ok(*next_pid)
            })
        })
        .expect("lock");
    s.execute(step)
}

fn init_reply(r: Option<Reply>) -> ProducerIdAndEpoch {
    match r {
        Some(Reply::InitProducerId(Ok(p))) => p,
        other => panic!("{other:?}"),
    }
}

/// InitProducerId of `id` through the shell, fsynced as the flusher would; the producer id
/// it got.
fn init(s: &TxnService, id: &str, next_pid: &mut i64) -> ProducerIdAndEpoch {
    match start_init(s, id, next_pid) {
        Executed::Done(r, None) => init_reply(r),
        Executed::Syncing(seq) => {
            assert_eq!(s.collect(seq), None, "not applied before its fsync");
            s.sync_log();
            init_reply(s.collect(seq).expect("applied by the fsync"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn one_fsync_applies_every_waiting_record_and_nothing_is_answered_before_it() {
    let dir = tempfile::tempdir().expect("dir");
    let s = open(dir.path(), FsyncPolicy::Always);
    let mut pid = 0;
    let seqs: Vec<u64> = ["a", "b", "c"]
        .iter()
        .map(|id| match start_init(&s, id, &mut pid) {
            Executed::Syncing(seq) => seq,
            other => panic!("{other:?}"),
        })
        .collect();
    // Written, not applied: no reply, no state, and the id refuses another transition.
    assert!(s.lock().expect("lock").snapshot().is_empty());
    assert!(seqs.iter().all(|&q| s.collect(q).is_none()));
    match start_init(&s, "a", &mut pid) {
        Executed::Done(Some(Reply::InitProducerId(Err(e))), None) => {
            assert_eq!(e, crate::error::TxnError::ConcurrentTransactions)
        }
        other => panic!("{other:?}"),
    }
    s.sync_log();
    for q in seqs {
        init_reply(s.collect(q).expect("applied"));
    }
    assert_eq!(s.lock().expect("lock").snapshot().len(), 3);
    drop(s);
    let s = open(dir.path(), FsyncPolicy::Always);
    assert_eq!(s.lock().expect("lock").snapshot().len(), 3, "durable");
}

#[test]
fn a_failed_fsync_fails_every_waiting_record_and_none_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("dir");
    let s = open(dir.path(), FsyncPolicy::Always);
    let mut pid = 0;
    let first = init(&s, "a", &mut pid);
    let seqs: Vec<u64> = ["a", "b"]
        .iter()
        .map(|id| match start_init(&s, id, &mut pid) {
            Executed::Syncing(seq) => seq,
            other => panic!("{other:?}"),
        })
        .collect();
    crate::broker::flusher::failpoint::fail_syncs_under(dir.path(), true);
    s.sync_log();
    crate::broker::flusher::failpoint::fail_syncs_under(dir.path(), false);
    for q in seqs {
        match s.collect(q) {
            Some(Some(Reply::InitProducerId(Err(e)))) => {
                assert_eq!(e, crate::error::TxnError::CoordinatorNotAvailable)
            }
            other => panic!("{other:?}"),
        }
    }
    let snap = s.lock().expect("lock").snapshot();
    assert_eq!(snap.len(), 1, "only the fsynced id: {snap:?}");
    assert_eq!(snap["a"].producer_epoch, first.producer_epoch);
    // The next write rewrites the file from the applied state: the failed records are gone.
    let again = init(&s, "c", &mut pid);
    drop(s);
    let s = open(dir.path(), FsyncPolicy::Always);
    let snap = s.lock().expect("lock").snapshot();
    assert_eq!(snap.len(), 2, "{snap:?}");
    assert_eq!(snap["a"].producer_epoch, first.producer_epoch);
    assert_eq!(snap["c"].producer_id, again.producer_id);
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
