//! The transaction coordinator: every transactional id's `TxnMetadata`, the requests that
//! move it and the decisions over time (transaction timeout, id expiration). Sans-IO: fed
//! `now_ms`, handing back what to write and what to answer.
//!
//! A request that changes state never changes it at once. It returns `Step::Append(record)`
//! and leaves a pending transition; the shell writes the record to the state log durably,
//! then calls `appended(id, ok)`, which applies the transition (or drops it if the write
//! failed) and hands back the reply and the markers to write. So:
//! - no reply is ever given for a state the log does not hold (a commit is answered only
//!   after its `PrepareCommit` record is durable);
//! - while a transition is pending every other request on that id gets
//!   `CONCURRENT_TRANSACTIONS` (Kafka's `pendingState`);
//! - the markers of a decision are handed out once its `Prepare*` record is durable; the shell
//!   writes them to every partition (and the offsets of every group) and then calls
//!   `markers_written`, whose `Complete*` record ends the transaction.
//!
//! Transaction protocol v1 (KIP-98, KIP-360, KIP-447). Where v2 (KIP-890) differs: EndTxn
//! bumps the epoch on every end (the client gets the new one in the reply), an abort with
//! no transaction open is allowed, and AddPartitionsToTxn comes from the partition leader.

use std::collections::BTreeMap;

use super::effects::{Effects, MarkerWrite, ProducerIdAndEpoch, Reply, Step, TxnConfig};
use super::record::TxnRecord;
use super::state::{NO_PRODUCER_EPOCH, TxnMetadata, TxnState};
use crate::error::TxnError;
use crate::types::TopicPartition;

#[derive(Debug)]
struct Pending {
    /// `None`: the id expires (tombstone).
    target: Option<TxnMetadata>,
    reply: Option<Reply>,
}

#[derive(Debug)]
struct Entry {
    meta: TxnMetadata,
    /// The log holds a record of this id (a new id is not durable until its first append).
    durable: bool,
    pending: Option<Pending>,
}

#[derive(Debug, Default)]
pub(crate) struct TxnCoordinator {
    config: TxnConfig,
    entries: BTreeMap<String, Entry>,
}

impl TxnCoordinator {
    pub(crate) fn new(config: TxnConfig) -> Self {
        TxnCoordinator {
            config,
            entries: BTreeMap::new(),
        }
    }

    /// The durable state of an id (what the log holds), if any.
    pub(crate) fn get(&self, id: &str) -> Option<&TxnMetadata> {
        self.entries.get(id).filter(|e| e.durable).map(|e| &e.meta)
    }

    /// Every id's durable state, for DescribeTransactions/ListTransactions and the tests.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, TxnMetadata> {
        self.entries
            .iter()
            .filter(|(_, e)| e.durable)
            .map(|(id, e)| (id.clone(), e.meta.clone()))
            .collect()
    }

    /// Records a pending transition of `id` to `target` and asks for its record.
    fn transit(&mut self, id: &str, target: Option<TxnMetadata>, reply: Option<Reply>) -> Step {
        let Some(entry) = self.entries.get_mut(id) else {
            return Step::Nothing;
        };
        let to = target.as_ref().map_or(TxnState::Dead, |t| t.state);
        if !to.can_follow(entry.meta.state) {
            return reply.map_or(Step::Nothing, |r| {
                Step::Reply(r.with_error(TxnError::InvalidTxnState))
            });
        }
        let record = TxnRecord {
            transactional_id: id.to_owned(),
            value: target.clone(),
        };
        entry.pending = Some(Pending { target, reply });
        Step::Append(record)
    }

    /// The record of `id`'s pending transition was written (`ok`) or not.
    pub(crate) fn appended(&mut self, id: &str, ok: bool) -> Effects {
        let Some(entry) = self.entries.get_mut(id) else {
            return Effects::default();
        };
        let Some(pending) = entry.pending.take() else {
            return Effects::default();
        };
        if !ok {
            let reply = pending
                .reply
                .map(|r| r.with_error(TxnError::CoordinatorNotAvailable));
            if !entry.durable {
                self.entries.remove(id);
            }
            return Effects {
                reply,
                markers: None,
            };
        }
        let Some(target) = pending.target else {
            self.entries.remove(id);
            return Effects {
                reply: pending.reply,
                markers: None,
            };
        };
        entry.meta = target;
        entry.durable = true;
        let markers = entry
            .meta
            .state
            .is_prepared()
            .then(|| MarkerWrite::of(id, &entry.meta));
        Effects {
            reply: pending.reply,
            markers,
        }
    }

    /// InitProducerId with a transactional id. `expected` is the producer's current id and
    /// epoch when it re-initialises after an abortable error (KIP-360). `allocate` hands out
    /// a fresh producer id (a new id, or an exhausted epoch).
    pub(crate) fn init_producer_id(
        &mut self,
        id: &str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
        now_ms: i64,
        allocate: &mut dyn FnMut() -> Result<i64, TxnError>,
    ) -> Step {
        let fail = |e| Step::Reply(Reply::InitProducerId(Err(e)));
        if id.is_empty() {
            return fail(TxnError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.transaction_max_timeout_ms {
            return fail(TxnError::InvalidTransactionTimeout);
        }
        if !self.entries.contains_key(id) {
            let producer_id = match allocate() {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            let entry = Entry {
                meta: TxnMetadata::new(producer_id, timeout_ms, now_ms),
                durable: false,
                pending: None,
            };
            self.entries.insert(id.to_owned(), entry);
        }
        let Some(entry) = self.entries.get(id) else {
            return fail(TxnError::CoordinatorNotAvailable);
        };
        let m = &entry.meta;
        if entry.pending.is_some() {
            return fail(TxnError::ConcurrentTransactions);
        }
        let valid_expected = |e: &ProducerIdAndEpoch| {
            m.producer_epoch == NO_PRODUCER_EPOCH
                || e.producer_id == m.producer_id
                || (e.producer_id == m.previous_producer_id && e.producer_epoch >= i16::MAX - 1)
        };
        if !expected.iter().all(valid_expected) {
            return fail(TxnError::ProducerFenced);
        }
        let ok = |m: &TxnMetadata| {
            Some(Reply::InitProducerId(Ok(ProducerIdAndEpoch {
                producer_id: m.producer_id,
                producer_epoch: m.producer_epoch,
            })))
        };
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                fail(TxnError::ConcurrentTransactions)
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let mut next = m.moved_to(TxnState::Empty, now_ms);
                next.timeout_ms = timeout_ms;
                if m.epoch_exhausted()
                    && expected.is_none_or(|e| e.producer_epoch == m.producer_epoch)
                {
                    next.producer_id = match allocate() {
                        Ok(p) => p,
                        Err(e) => return fail(e),
                    };
                    next.previous_producer_id = m.producer_id;
                    next.producer_epoch = 0;
                    next.last_producer_epoch = if expected.is_some() {
                        m.producer_epoch
                    } else {
                        NO_PRODUCER_EPOCH
                    };
                } else {
                    match expected {
                        None => {
                            next.producer_epoch = m.producer_epoch.saturating_add(1);
                            next.last_producer_epoch = NO_PRODUCER_EPOCH;
                        }
                        Some(e)
                            if m.producer_epoch == NO_PRODUCER_EPOCH
                                || e.producer_epoch == m.producer_epoch =>
                        {
                            next.producer_epoch = m.producer_epoch.saturating_add(1);
                            next.last_producer_epoch = m.producer_epoch;
                        }
                        // A retry of the InitProducerId that made the current epoch.
                        Some(e) if e.producer_epoch == m.last_producer_epoch => {}
                        Some(_) => return fail(TxnError::ProducerFenced),
                    }
                }
                let reply = ok(&next);
                self.transit(id, Some(next), reply)
            }
            TxnState::Ongoing => {
                // A new instance: fence the old one and abort its transaction; this instance
                // retries (CONCURRENT_TRANSACTIONS) until the abort completes.
                let next = Self::fenced_abort(m, now_ms);
                let reply = Some(Reply::InitProducerId(Err(TxnError::ConcurrentTransactions)));
                self.transit(id, Some(next), reply)
            }
            TxnState::PrepareEpochFence | TxnState::Dead => fail(TxnError::InvalidTxnState),
        }
    }

    /// `Ongoing` → (`PrepareEpochFence`) → `PrepareAbort` with the epoch bumped, so the
    /// fenced producer's next request is refused with `PRODUCER_FENCED`.
    fn fenced_abort(m: &TxnMetadata, now_ms: i64) -> TxnMetadata {
        let mut next = m.moved_to(TxnState::PrepareAbort, now_ms);
        next.producer_epoch = m.fenced_epoch();
        next.last_producer_epoch = NO_PRODUCER_EPOCH;
        next
    }

    /// The checks AddPartitionsToTxn, AddOffsetsToTxn and EndTxn share, in Kafka's order.
    fn check_producer(&self, id: &str, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
        if id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        let Some(entry) = self.entries.get(id).filter(|e| e.durable) else {
            return Err(TxnError::InvalidProducerIdMapping);
        };
        if entry.meta.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if entry.meta.producer_epoch != epoch {
            return Err(TxnError::ProducerFenced);
        }
        if entry.pending.is_some() {
            return Err(TxnError::ConcurrentTransactions);
        }
        Ok(())
    }

    /// Adds partitions (or, with `group`, a group's offsets) to the transaction, beginning it
    /// if none is open.
    fn add(&mut self, id: &str, pid: i64, epoch: i16, add: Add<'_>, now_ms: i64) -> Step {
        let reply = |r| match add {
            Add::Partitions(_) => Reply::AddPartitions(r),
            Add::Group(_) => Reply::AddOffsets(r),
        };
        if let Err(e) = self.check_producer(id, pid, epoch) {
            return Step::Reply(reply(Err(e)));
        }
        let Some(m) = self.get(id) else {
            return Step::Reply(reply(Err(TxnError::InvalidProducerIdMapping)));
        };
        if m.state.is_prepared() {
            return Step::Reply(reply(Err(TxnError::ConcurrentTransactions)));
        }
        let already = match add {
            Add::Partitions(ps) => ps.iter().all(|p| m.partitions.contains(p)),
            Add::Group(g) => m.groups.contains(g),
        };
        if m.state == TxnState::Ongoing && already {
            return Step::Reply(reply(Ok(())));
        }
        let mut next = m.moved_to(TxnState::Ongoing, now_ms);
        if m.state != TxnState::Ongoing {
            next.txn_start_ms = now_ms;
        }
        match add {
            Add::Partitions(ps) => next.partitions.extend(ps.iter().cloned()),
            Add::Group(g) => {
                next.groups.insert(g.to_owned());
            }
        }
        self.transit(id, Some(next), Some(reply(Ok(()))))
    }

    pub(crate) fn add_partitions(
        &mut self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
        now_ms: i64,
    ) -> Step {
        self.add(id, producer_id, epoch, Add::Partitions(partitions), now_ms)
    }

    /// AddOffsetsToTxn: the group's offsets (TxnOffsetCommit) commit or abort with the
    /// transaction.
    pub(crate) fn add_offsets(
        &mut self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        now_ms: i64,
    ) -> Step {
        self.add(id, producer_id, epoch, Add::Group(group), now_ms)
    }

    /// EndTxn (v1): `Ongoing` → `PrepareCommit`/`PrepareAbort`; a retry of a finished end is
    /// answered as it was, a contradicting one is `INVALID_TXN_STATE`.
    pub(crate) fn end_txn(
        &mut self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Step {
        let fail = |e| Step::Reply(Reply::EndTxn(Err(e)));
        if let Err(e) = self.check_producer(id, producer_id, epoch) {
            return fail(e);
        }
        let Some(m) = self.get(id) else {
            return fail(TxnError::InvalidProducerIdMapping);
        };
        let same =
            |s: TxnState| (s == TxnState::PrepareCommit || s == TxnState::CompleteCommit) == commit;
        match m.state {
            TxnState::Ongoing => {
                let target = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                let next = m.moved_to(target, now_ms);
                self.transit(id, Some(next), Some(Reply::EndTxn(Ok(()))))
            }
            s @ (TxnState::CompleteCommit | TxnState::CompleteAbort) if same(s) => {
                Step::Reply(Reply::EndTxn(Ok(())))
            }
            s @ (TxnState::PrepareCommit | TxnState::PrepareAbort) if same(s) => {
                fail(TxnError::ConcurrentTransactions)
            }
            _ => fail(TxnError::InvalidTxnState),
        }
    }

    /// Every marker of `id`'s decision is written: `Prepare*` → `Complete*`.
    pub(crate) fn markers_written(&mut self, id: &str, now_ms: i64) -> Step {
        let Some(entry) = self.entries.get(id).filter(|e| e.pending.is_none()) else {
            return Step::Nothing;
        };
        let target = match entry.meta.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return Step::Nothing,
        };
        let next = entry.meta.moved_to(target, now_ms);
        self.transit(id, Some(next), None)
    }

    /// The decisions time makes: an `Ongoing` transaction past its timeout is aborted with
    /// its producer fenced; an idle id not used for `transactional.id.expiration.ms` expires.
    /// Each returned record is pending, to be written and passed to `appended`.
    pub(crate) fn tick(&mut self, now_ms: i64) -> Vec<TxnRecord> {
        let expiration_ms = self.config.transactional_id_expiration_ms;
        let due: Vec<(String, Option<TxnMetadata>)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.durable && e.pending.is_none())
            .filter_map(|(id, e)| {
                let m = &e.meta;
                if m.state == TxnState::Ongoing
                    && m.txn_start_ms.saturating_add(i64::from(m.timeout_ms)) < now_ms
                {
                    Some((id.clone(), Some(Self::fenced_abort(m, now_ms))))
                } else if m.state.is_idle()
                    && m.last_update_ms.saturating_add(expiration_ms) <= now_ms
                {
                    Some((id.clone(), None))
                } else {
                    None
                }
            })
            .collect();
        due.into_iter()
            .filter_map(|(id, target)| match self.transit(&id, target, None) {
                Step::Append(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// The earliest time `tick` has something to do (a transaction's timeout passing, an
    /// idle id expiring), if any: the txn thread sleeps until then.
    pub(crate) fn next_deadline_ms(&self) -> Option<i64> {
        self.entries.values().filter_map(|e| self.deadline(e)).min()
    }

    /// When `tick` will have something to do for `id`, if ever.
    pub(crate) fn deadline_ms(&self, id: &str) -> Option<i64> {
        self.entries.get(id).and_then(|e| self.deadline(e))
    }

    fn deadline(&self, e: &Entry) -> Option<i64> {
        if !e.durable || e.pending.is_some() {
            return None;
        }
        let m = &e.meta;
        if m.state == TxnState::Ongoing {
            Some(m.txn_start_ms.saturating_add(i64::from(m.timeout_ms)) + 1)
        } else if m.state.is_idle() {
            Some(
                m.last_update_ms
                    .saturating_add(self.config.transactional_id_expiration_ms),
            )
        } else {
            None
        }
    }

    /// Start-up: applies one record of the state log, in log order.
    pub(crate) fn replay(&mut self, record: TxnRecord) {
        match record.value {
            None => {
                self.entries.remove(&record.transactional_id);
            }
            Some(meta) => {
                let entry = Entry {
                    meta,
                    durable: true,
                    pending: None,
                };
                self.entries.insert(record.transactional_id, entry);
            }
        }
    }

    /// After replay: every `Ongoing` transaction (no durable decision) is aborted with its
    /// producer fenced, and every decided one has its markers handed out again. The returned
    /// records are already applied: the shell writes them durably before the markers (a
    /// crash in between replays `Ongoing` again and aborts it again).
    pub(crate) fn recover(&mut self, now_ms: i64) -> (Vec<TxnRecord>, Vec<MarkerWrite>) {
        let mut records = Vec::new();
        let mut markers = Vec::new();
        for (id, entry) in &mut self.entries {
            entry.pending = None;
            if entry.meta.state == TxnState::Ongoing {
                entry.meta = Self::fenced_abort(&entry.meta, now_ms);
                records.push(TxnRecord {
                    transactional_id: id.clone(),
                    value: Some(entry.meta.clone()),
                });
            }
            if entry.meta.state.is_prepared() {
                markers.push(MarkerWrite::of(id, &entry.meta));
            }
        }
        (records, markers)
    }
}

#[derive(Clone, Copy)]
enum Add<'a> {
    Partitions(&'a [TopicPartition]),
    Group(&'a str),
}
