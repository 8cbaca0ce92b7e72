//! Each transition of the coordinator and the Kafka error code it answers.

use super::coordinator::TxnCoordinator;
use super::effects::{Effects, ProducerIdAndEpoch, Reply, Step, TxnConfig};
use super::record::TxnRecord;
use super::state::TxnState;
use crate::error::TxnError;
use crate::types::TopicPartition;

const ID: &str = "tx";
const T_MS: i32 = 60_000;

struct Fixture {
    c: TxnCoordinator,
    next_pid: i64,
    /// Every record written, in order.
    log: Vec<TxnRecord>,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            c: TxnCoordinator::new(TxnConfig::default()),
            next_pid: 1000,
            log: Vec::new(),
        }
    }

    fn init(&mut self, expected: Option<ProducerIdAndEpoch>, now_ms: i64) -> Step {
        let next = &mut self.next_pid;
        let mut alloc = || {
            *next += 1;
            Ok(*next)
        };
        self.c
            .init_producer_id(ID, T_MS, expected, now_ms, &mut alloc)
    }

    /// Writes the pending record of `step` and hands back what `appended` answers.
    fn write(&mut self, step: Step) -> Effects {
        match step {
            Step::Append(r) => {
                let id = r.transactional_id.clone();
                self.log.push(r);
                self.c.appended(&id, true)
            }
            other => panic!("expected an append, got {other:?}"),
        }
    }

    fn init_ok(&mut self, now_ms: i64) -> ProducerIdAndEpoch {
        let step = self.init(None, now_ms);
        match self.write(step).reply {
            Some(Reply::InitProducerId(Ok(p))) => p,
            r => panic!("{r:?}"),
        }
    }

    fn state(&self) -> TxnState {
        self.c.get(ID).map_or(TxnState::Dead, |m| m.state)
    }

    /// Init, then a transaction on partition t-0 left `Ongoing`.
    fn ongoing(&mut self, now_ms: i64) -> ProducerIdAndEpoch {
        let p = self.init_ok(now_ms);
        let step = self
            .c
            .add_partitions(ID, p.producer_id, p.producer_epoch, &[tp(0)], now_ms);
        assert_eq!(self.write(step).reply, Some(Reply::AddPartitions(Ok(()))));
        p
    }
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

fn reply_err(step: Step) -> TxnError {
    match step {
        Step::Reply(
            Reply::InitProducerId(Err(e))
            | Reply::AddPartitions(Err(e))
            | Reply::AddOffsets(Err(e))
            | Reply::EndTxn(Err(e)),
        ) => e,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[test]
fn init_allocates_then_bumps_the_epoch() {
    let mut f = Fixture::new();
    let first = f.init_ok(0);
    assert_eq!(first.producer_epoch, 0);
    let second = f.init_ok(1);
    assert_eq!(second.producer_id, first.producer_id);
    assert_eq!(second.producer_epoch, 1);
    assert_eq!(f.state(), TxnState::Empty);
}

#[test]
fn init_checks_the_request() {
    let mut f = Fixture::new();
    let mut alloc = || Ok(1);
    let bad = |c: &mut TxnCoordinator, id, t, a: &mut dyn FnMut() -> Result<i64, TxnError>| {
        reply_err(c.init_producer_id(id, t, None, 0, a))
    };
    assert_eq!(
        bad(&mut f.c, "", T_MS, &mut alloc),
        TxnError::InvalidRequest
    );
    assert_eq!(
        bad(&mut f.c, ID, 0, &mut alloc),
        TxnError::InvalidTransactionTimeout
    );
    assert_eq!(
        bad(&mut f.c, ID, 900_001, &mut alloc),
        TxnError::InvalidTransactionTimeout
    );
    assert_eq!(TxnError::InvalidTransactionTimeout.code(), 50);
    assert!(
        f.c.snapshot().is_empty(),
        "nothing is kept of a refused request"
    );
}

#[test]
fn a_failed_first_write_leaves_no_id() {
    let mut f = Fixture::new();
    let Step::Append(r) = f.init(None, 0) else {
        panic!("append expected")
    };
    let fx = f.c.appended(&r.transactional_id, false);
    assert_eq!(
        fx.reply,
        Some(Reply::InitProducerId(Err(
            TxnError::CoordinatorNotAvailable
        )))
    );
    assert!(f.c.get(ID).is_none());
    assert_eq!(f.init_ok(1).producer_epoch, 0);
}

#[test]
fn a_pending_transition_makes_others_concurrent() {
    let mut f = Fixture::new();
    let p = f.init_ok(0);
    let step =
        f.c.add_partitions(ID, p.producer_id, p.producer_epoch, &[tp(0)], 1);
    assert!(matches!(step, Step::Append(_)));
    let again =
        f.c.add_partitions(ID, p.producer_id, p.producer_epoch, &[tp(1)], 1);
    assert_eq!(reply_err(again), TxnError::ConcurrentTransactions);
    assert_eq!(reply_err(f.init(None, 1)), TxnError::ConcurrentTransactions);
    assert_eq!(TxnError::ConcurrentTransactions.code(), 51);
    assert_eq!(
        f.state(),
        TxnState::Empty,
        "not applied before it is durable"
    );
}

#[test]
fn commit_is_answered_after_prepare_commit_is_durable_then_completes() {
    let mut f = Fixture::new();
    let p = f.ongoing(10);
    let offsets =
        f.c.add_offsets(ID, p.producer_id, p.producer_epoch, "g", 11);
    f.write(offsets);
    let step = f.c.end_txn(ID, p.producer_id, p.producer_epoch, true, 12);
    let Step::Append(r) = &step else {
        panic!("append expected")
    };
    assert_eq!(
        r.value.as_ref().map(|m| m.state),
        Some(TxnState::PrepareCommit)
    );
    assert_eq!(f.state(), TxnState::Ongoing);
    let fx = f.write(step);
    assert_eq!(fx.reply, Some(Reply::EndTxn(Ok(()))));
    let markers = fx.markers.expect("markers after the decision");
    assert!(markers.commit);
    assert_eq!(markers.partitions, vec![tp(0)]);
    assert_eq!(markers.groups, vec!["g".to_string()]);
    assert_eq!(markers.producer_epoch, p.producer_epoch);
    // Markers outstanding: a new transaction must wait.
    let add =
        f.c.add_partitions(ID, p.producer_id, p.producer_epoch, &[tp(1)], 13);
    assert_eq!(reply_err(add), TxnError::ConcurrentTransactions);
    let retry = f.c.end_txn(ID, p.producer_id, p.producer_epoch, true, 13);
    assert_eq!(reply_err(retry), TxnError::ConcurrentTransactions);
    let contra = f.c.end_txn(ID, p.producer_id, p.producer_epoch, false, 13);
    assert_eq!(reply_err(contra), TxnError::InvalidTxnState);
    let done = f.c.markers_written(ID, 14);
    assert!(f.write(done).markers.is_none());
    assert_eq!(f.state(), TxnState::CompleteCommit);
    let m = f.c.get(ID).expect("id");
    assert!(m.partitions.is_empty() && m.groups.is_empty());
    // A retried commit is answered as it was; an abort now contradicts it.
    let retry = f.c.end_txn(ID, p.producer_id, p.producer_epoch, true, 15);
    assert_eq!(retry, Step::Reply(Reply::EndTxn(Ok(()))));
    let contra = f.c.end_txn(ID, p.producer_id, p.producer_epoch, false, 15);
    assert_eq!(reply_err(contra), TxnError::InvalidTxnState);
    assert_eq!(TxnError::InvalidTxnState.code(), 48);
}

#[test]
fn abort_then_a_new_transaction() {
    let mut f = Fixture::new();
    let p = f.ongoing(0);
    let step = f.c.end_txn(ID, p.producer_id, p.producer_epoch, false, 1);
    let markers = f.write(step).markers.expect("markers");
    assert!(!markers.commit);
    let step = f.c.markers_written(ID, 2);
    f.write(step);
    assert_eq!(f.state(), TxnState::CompleteAbort);
    let step =
        f.c.add_partitions(ID, p.producer_id, p.producer_epoch, &[tp(3)], 5);
    f.write(step);
    let m = f.c.get(ID).expect("id");
    assert_eq!(m.state, TxnState::Ongoing);
    assert_eq!(m.txn_start_ms, 5);
    assert_eq!(m.partitions.len(), 1);
}

#[test]
fn end_without_a_transaction_is_invalid_state() {
    let mut f = Fixture::new();
    let p = f.init_ok(0);
    let step = f.c.end_txn(ID, p.producer_id, p.producer_epoch, true, 1);
    assert_eq!(reply_err(step), TxnError::InvalidTxnState);
}

#[test]
fn wrong_producer_id_or_epoch() {
    let mut f = Fixture::new();
    let unknown = f.c.add_partitions("other", 1, 0, &[tp(0)], 0);
    assert_eq!(reply_err(unknown), TxnError::InvalidProducerIdMapping);
    let p = f.init_ok(0);
    let wrong_pid = f.c.add_partitions(ID, p.producer_id + 1, 0, &[tp(0)], 0);
    assert_eq!(reply_err(wrong_pid), TxnError::InvalidProducerIdMapping);
    assert_eq!(TxnError::InvalidProducerIdMapping.code(), 49);
    let old_epoch =
        f.c.end_txn(ID, p.producer_id, p.producer_epoch - 1, true, 0);
    assert_eq!(reply_err(old_epoch), TxnError::ProducerFenced);
    assert_eq!(TxnError::ProducerFenced.code(), 90);
    assert_eq!(TxnError::ProducerFenced.for_old_client().code(), 47);
    let empty = f.c.end_txn("", p.producer_id, p.producer_epoch, true, 0);
    assert_eq!(reply_err(empty), TxnError::InvalidRequest);
}

#[test]
fn a_new_instance_fences_the_old_and_aborts_its_transaction() {
    let mut f = Fixture::new();
    let old = f.ongoing(0);
    let step = f.init(None, 1);
    let Step::Append(r) = &step else {
        panic!("append expected")
    };
    let m = r.value.as_ref().expect("value");
    assert_eq!(m.state, TxnState::PrepareAbort);
    assert_eq!(m.producer_epoch, old.producer_epoch + 1);
    let fx = f.write(step);
    assert_eq!(
        fx.reply,
        Some(Reply::InitProducerId(Err(TxnError::ConcurrentTransactions)))
    );
    let markers = fx.markers.expect("abort markers");
    assert_eq!(markers.producer_epoch, old.producer_epoch + 1);
    let zombie =
        f.c.add_partitions(ID, old.producer_id, old.producer_epoch, &[tp(1)], 2);
    assert_eq!(reply_err(zombie), TxnError::ProducerFenced);
    assert_eq!(reply_err(f.init(None, 2)), TxnError::ConcurrentTransactions);
    let step = f.c.markers_written(ID, 3);
    f.write(step);
    let new = f.init_ok(4);
    assert_eq!(new.producer_epoch, old.producer_epoch + 2);
}

#[test]
fn kip360_reinit_with_the_current_epoch_and_its_retry() {
    let mut f = Fixture::new();
    let p = f.init_ok(0);
    let step = f.init(Some(p), 1);
    let Some(Reply::InitProducerId(Ok(bumped))) = f.write(step).reply else {
        panic!("bump expected")
    };
    assert_eq!(bumped.producer_epoch, p.producer_epoch + 1);
    // The same request again (its answer was lost): same answer, no second bump.
    let step = f.init(Some(p), 2);
    assert_eq!(f.write(step).reply, Some(Reply::InitProducerId(Ok(bumped))));
    let stale = ProducerIdAndEpoch {
        producer_id: p.producer_id,
        producer_epoch: 7,
    };
    assert_eq!(reply_err(f.init(Some(stale), 3)), TxnError::ProducerFenced);
    let other = ProducerIdAndEpoch {
        producer_id: 1,
        producer_epoch: bumped.producer_epoch,
    };
    assert_eq!(reply_err(f.init(Some(other), 3)), TxnError::ProducerFenced);
}

#[test]
fn an_exhausted_epoch_rotates_the_producer_id() {
    let mut f = Fixture::new();
    let p = f.init_ok(0);
    let mut m = f.c.get(ID).expect("id").clone();
    m.producer_epoch = i16::MAX - 1;
    f.c.replay(TxnRecord {
        transactional_id: ID.into(),
        value: Some(m),
    });
    let next = f.init_ok(1);
    assert_ne!(next.producer_id, p.producer_id);
    assert_eq!(next.producer_epoch, 0);
    assert_eq!(
        f.c.get(ID).map(|m| m.previous_producer_id),
        Some(p.producer_id)
    );
}

#[test]
fn timeout_aborts_and_fences() {
    let mut f = Fixture::new();
    let p = f.ongoing(100);
    assert!(f.c.tick(100 + i64::from(T_MS)).is_empty(), "not yet past");
    let due = f.c.tick(101 + i64::from(T_MS));
    assert_eq!(due.len(), 1);
    let m = due[0].value.as_ref().expect("value");
    assert_eq!(m.state, TxnState::PrepareAbort);
    assert_eq!(m.producer_epoch, p.producer_epoch + 1);
    f.log.extend(due);
    let fx = f.c.appended(ID, true);
    assert_eq!(fx.reply, None);
    assert!(fx.markers.is_some_and(|m| !m.commit));
    let late =
        f.c.end_txn(ID, p.producer_id, p.producer_epoch, true, 200_000);
    assert_eq!(reply_err(late), TxnError::ProducerFenced);
}

#[test]
fn idle_ids_expire() {
    let mut f = Fixture::new();
    f.init_ok(0);
    let exp = TxnConfig::default().transactional_id_expiration_ms;
    assert!(f.c.tick(exp - 1).is_empty());
    let due = f.c.tick(exp);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].value, None);
    f.c.appended(ID, true);
    assert!(f.c.get(ID).is_none());
    // An Ongoing transaction is never expired, only timed out.
    let mut g = Fixture::new();
    g.ongoing(0);
    let due = g.c.tick(exp);
    assert!(due.iter().all(|r| r.value.is_some()));
}

#[test]
fn recovery_completes_decided_and_aborts_undecided() {
    let mut f = Fixture::new();
    let p = f.ongoing(0);
    let step = f.c.end_txn(ID, p.producer_id, p.producer_epoch, true, 1);
    f.write(step);
    let mut f2 = Fixture::new();
    let q = {
        let step = f2.init(None, 0);
        f2.write(step);
        let q = f2.c.get(ID).expect("id").clone();
        let step =
            f2.c.add_partitions(ID, q.producer_id, q.producer_epoch, &[tp(2)], 0);
        f2.write(step);
        q
    };
    for (fixture, commit) in [(&f, Some(true)), (&f2, None)] {
        let mut c = TxnCoordinator::new(TxnConfig::default());
        for r in &fixture.log {
            c.replay(r.clone());
        }
        assert_eq!(
            c.snapshot(),
            fixture.c.snapshot(),
            "replay rebuilds the state"
        );
        let (records, markers) = c.recover(5);
        assert_eq!(markers.len(), 1);
        match commit {
            Some(true) => {
                assert!(records.is_empty() && markers[0].commit);
                assert_eq!(c.get(ID).map(|m| m.state), Some(TxnState::PrepareCommit));
            }
            _ => {
                assert_eq!(records.len(), 1);
                assert!(!markers[0].commit);
                let m = c.get(ID).expect("id");
                assert_eq!(m.state, TxnState::PrepareAbort);
                assert_eq!(m.producer_epoch, q.producer_epoch + 1);
            }
        }
    }
}

#[test]
fn a_failed_decision_write_changes_nothing() {
    let mut f = Fixture::new();
    let p = f.ongoing(0);
    let step = f.c.end_txn(ID, p.producer_id, p.producer_epoch, true, 1);
    assert!(matches!(step, Step::Append(_)));
    let fx = f.c.appended(ID, false);
    assert_eq!(
        fx.reply,
        Some(Reply::EndTxn(Err(TxnError::CoordinatorNotAvailable)))
    );
    assert!(
        fx.markers.is_none(),
        "no markers for a decision not durable"
    );
    assert_eq!(f.state(), TxnState::Ongoing);
    // The client retries and the retry goes through.
    let step = f.c.end_txn(ID, p.producer_id, p.producer_epoch, true, 2);
    assert_eq!(f.write(step).reply, Some(Reply::EndTxn(Ok(()))));
    assert_eq!(f.state(), TxnState::PrepareCommit);
}
