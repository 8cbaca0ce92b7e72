//! Random operation sequences over several transactional ids, with random write failures,
//! time steps and crashes, checking the coordinator's invariants after every step.

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;

use super::coordinator::TxnCoordinator;
use super::effects::{Effects, MarkerWrite, ProducerIdAndEpoch, Reply, Step, TxnConfig};
use super::record::TxnRecord;
use super::state::TxnState;
use crate::types::TopicPartition;

const IDS: [&str; 3] = ["a", "b", "c"];
const TIMEOUT_MS: i32 = 10_000;

#[derive(Debug, Clone)]
enum Op {
    Init {
        id: usize,
        expected: bool,
    },
    Add {
        id: usize,
        partition: i32,
        stale: bool,
    },
    Offsets {
        id: usize,
    },
    End {
        id: usize,
        commit: bool,
        stale: bool,
    },
    Write {
        ok: bool,
    },
    Markers {
        id: usize,
    },
    Advance {
        ms: i64,
    },
    Tick,
    /// `torn`: the oldest record handed out reached the disk, its acknowledgement did not.
    Crash {
        torn: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0..IDS.len();
    prop_oneof![
        1 => (id.clone(), any::<bool>()).prop_map(|(id, expected)| Op::Init { id, expected }),
        1 => (id.clone(), 0..4i32, prop::bool::weighted(0.1))
            .prop_map(|(id, partition, stale)| Op::Add { id, partition, stale }),
        1 => id.clone().prop_map(|id| Op::Offsets { id }),
        1 => (id.clone(), any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(id, commit, stale)| Op::End { id, commit, stale }),
        4 => prop::bool::weighted(0.9).prop_map(|ok| Op::Write { ok }),
        2 => id.prop_map(|id| Op::Markers { id }),
        1 => prop_oneof![0..3_000i64, Just(8 * 24 * 3600 * 1000)].prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Tick),
        1 => any::<bool>().prop_map(|torn| Op::Crash { torn }),
    ]
}

struct Harness {
    c: TxnCoordinator,
    config: TxnConfig,
    now_ms: i64,
    next_pid: i64,
    /// The durable state log.
    log: Vec<TxnRecord>,
    /// Records handed out, not yet written, each with the EndTxn commit flag that asked for it.
    queue: VecDeque<(TxnRecord, Option<bool>)>,
    /// Decisions whose markers are handed out and not yet completed.
    outstanding: BTreeMap<String, MarkerWrite>,
    /// What each client was last told.
    producers: BTreeMap<String, ProducerIdAndEpoch>,
    /// Last seen (producer id, epoch) per id.
    seen: BTreeMap<String, (i64, i16)>,
}

impl Harness {
    fn new() -> Self {
        let config = TxnConfig {
            transaction_max_timeout_ms: 60_000,
            transactional_id_expiration_ms: 7 * 24 * 3600 * 1000,
        };
        Harness {
            c: TxnCoordinator::new(config),
            config,
            now_ms: 0,
            next_pid: 0,
            log: Vec::new(),
            queue: VecDeque::new(),
            outstanding: BTreeMap::new(),
            producers: BTreeMap::new(),
            seen: BTreeMap::new(),
        }
    }

    fn latest(&self, id: &str) -> Option<TxnState> {
        let r = self.log.iter().rev().find(|r| r.transactional_id == id)?;
        r.value.as_ref().map(|m| m.state)
    }

    fn on_reply(&mut self, id: &str, reply: Reply, commit: Option<bool>) {
        match reply {
            Reply::InitProducerId(Ok(p)) => {
                self.producers.insert(id.to_owned(), p);
            }
            Reply::EndTxn(Ok(())) => {
                let commit = commit.unwrap_or(false);
                let want = if commit {
                    [TxnState::PrepareCommit, TxnState::CompleteCommit]
                } else {
                    [TxnState::PrepareAbort, TxnState::CompleteAbort]
                };
                let latest = self.latest(id);
                assert!(
                    latest.is_some_and(|s| want.contains(&s)),
                    "EndTxn(commit={commit}) of {id} answered with {latest:?} durable"
                );
            }
            _ => {}
        }
    }

    fn on_step(&mut self, id: &str, step: Step, commit: Option<bool>) {
        match step {
            Step::Append(r) => {
                assert_eq!(r.transactional_id, id);
                self.queue.push_back((r, commit));
            }
            Step::Reply(reply) => self.on_reply(id, reply, commit),
            Step::Nothing => {}
        }
    }

    fn on_effects(&mut self, id: &str, fx: Effects, commit: Option<bool>) {
        if let Some(reply) = fx.reply {
            self.on_reply(id, reply, commit);
        }
        if let Some(m) = fx.markers {
            assert!(
                !self.outstanding.contains_key(id),
                "two decisions of {id} at once"
            );
            self.outstanding.insert(id.to_owned(), m);
        }
    }

    fn client(&self, id: &str, stale: bool) -> (i64, i16) {
        let p = self
            .producers
            .get(id)
            .copied()
            .unwrap_or(ProducerIdAndEpoch {
                producer_id: 999,
                producer_epoch: 0,
            });
        let epoch = if stale {
            p.producer_epoch - 1
        } else {
            p.producer_epoch
        };
        (p.producer_id, epoch)
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now_ms;
        match *op {
            Op::Init { id, expected } => {
                let id = IDS[id];
                let exp = if expected {
                    self.producers.get(id).copied()
                } else {
                    None
                };
                let next = &mut self.next_pid;
                let mut alloc = || {
                    *next += 1;
                    Ok(*next)
                };
                let step = self
                    .c
                    .init_producer_id(id, TIMEOUT_MS, exp, now, &mut alloc);
                self.on_step(id, step, None);
            }
            Op::Add {
                id,
                partition,
                stale,
            } => {
                let id = IDS[id];
                let (pid, epoch) = self.client(id, stale);
                let tp = TopicPartition::new("t", partition);
                let step = self.c.add_partitions(id, pid, epoch, &[tp], now);
                self.on_step(id, step, None);
            }
            Op::Offsets { id } => {
                let id = IDS[id];
                let (pid, epoch) = self.client(id, false);
                let step = self.c.add_offsets(id, pid, epoch, "g", now);
                self.on_step(id, step, None);
            }
            Op::End { id, commit, stale } => {
                let id = IDS[id];
                let (pid, epoch) = self.client(id, stale);
                let step = self.c.end_txn(id, pid, epoch, commit, now);
                self.on_step(id, step, Some(commit));
            }
            Op::Write { ok } => {
                if let Some((r, commit)) = self.queue.pop_front() {
                    let id = r.transactional_id.clone();
                    let completes = r.value.as_ref().is_some_and(|m| {
                        matches!(m.state, TxnState::CompleteCommit | TxnState::CompleteAbort)
                    });
                    if ok {
                        self.log.push(r);
                        if completes {
                            self.outstanding.remove(&id);
                        }
                    }
                    let fx = self.c.appended(&id, ok);
                    self.on_effects(&id, fx, commit);
                }
            }
            Op::Markers { id } => {
                let id = IDS[id];
                if self.outstanding.contains_key(id) {
                    let step = self.c.markers_written(id, now);
                    self.on_step(id, step, None);
                }
            }
            Op::Advance { ms } => self.now_ms += ms,
            Op::Tick => {
                for r in self.c.tick(now) {
                    let id = r.transactional_id.clone();
                    self.on_step(&id, Step::Append(r), None);
                }
            }
            Op::Crash { torn } => {
                if torn && let Some((r, _)) = self.queue.pop_front() {
                    self.log.push(r);
                }
                let mut c = TxnCoordinator::new(self.config);
                for r in &self.log {
                    c.replay(r.clone());
                }
                let (records, markers) = c.recover(now);
                self.log.extend(records);
                self.queue.clear();
                self.outstanding = markers
                    .into_iter()
                    .map(|m| (m.transactional_id.clone(), m))
                    .collect();
                self.c = c;
                for m in self.c.snapshot().values() {
                    assert_ne!(m.state, TxnState::Ongoing, "Ongoing after recover");
                }
            }
        }
    }

    fn check(&mut self) {
        let snap = self.c.snapshot();
        let mut replayed = TxnCoordinator::new(self.config);
        for r in &self.log {
            replayed.replay(r.clone());
        }
        assert_eq!(
            replayed.snapshot(),
            snap,
            "replay differs from the live state"
        );
        for (id, m) in &snap {
            if let Some(&(pid, epoch)) = self.seen.get(id)
                && pid == m.producer_id
            {
                assert!(m.producer_epoch >= epoch, "epoch of {id} went back");
            }
            self.seen
                .insert(id.clone(), (m.producer_id, m.producer_epoch));
            if m.state == TxnState::Ongoing {
                assert!(
                    !self.outstanding.contains_key(id),
                    "{id} open with a decision pending"
                );
            }
            if m.state.is_prepared() {
                assert!(
                    self.outstanding.contains_key(id),
                    "{id} decided, no markers out"
                );
            }
        }
        self.seen.retain(|id, _| snap.contains_key(id));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_the_invariants(ops in prop::collection::vec(op(), 1..120)) {
        let mut h = Harness::new();
        for op in &ops {
            h.apply(op);
            h.check();
        }
        // The same log, recovered, leaves nothing open.
        h.apply(&Op::Crash { torn: false });
        h.check();
    }
}
