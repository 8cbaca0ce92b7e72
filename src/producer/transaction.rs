//! The embedded producer's transactions (KIP-98), against the same coordinator as the wire
//! face (`broker::txn`): `init_transactions` (a producer id and epoch for the transactional
//! id, fencing any previous instance), `begin_transaction`, sends (transactional batches
//! with the producer's id, epoch and per-partition sequences; each new partition added to
//! the transaction first), `send_offsets_to_transaction`, `commit_transaction` and
//! `abort_transaction`.
//!
//! Blocking calls wait in the broker's wait set (for a transaction's markers to become
//! durable), never spin. A commit returns once the transaction is complete (or, after the
//! broker's produce timeout, once its decision is durable: it completes in the background).
//!
//! Invariants: at most one transaction open; a producer fenced by a newer instance (or by
//! its transaction timing out) fails every later call with `Error::Transaction(
//! ProducerFenced)`; after a failed send the transaction can only be aborted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::broker::Broker;
use crate::broker::txn::{ProducerIdAndEpoch, Progress};
use crate::broker::wait::WaitKey;
use crate::error::{Error, Result, TxnError};
use crate::protocol::records::{TxnProducer, encode_transactional_batch};
use crate::storage::now_ms;
use crate::types::{Record, TopicPartition};

/// A transactional producer's settings (Kafka's `transactional.id` and
/// `transaction.timeout.ms`, default 60 s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionalConfig {
    pub transactional_id: String,
    pub transaction_timeout_ms: i32,
}

impl TransactionalConfig {
    pub fn new(transactional_id: impl Into<String>) -> Self {
        TransactionalConfig {
            transactional_id: transactional_id.into(),
            transaction_timeout_ms: 60_000,
        }
    }
}

/// One transactional producer's state.
#[derive(Debug)]
pub(super) struct Session {
    config: TransactionalConfig,
    ids: Option<ProducerIdAndEpoch>,
    open: bool,
    partitions: BTreeSet<TopicPartition>,
    groups: BTreeSet<String>,
    /// The next sequence per partition, for this epoch.
    sequences: BTreeMap<TopicPartition, i32>,
    /// A send failed: the transaction may only be aborted.
    abortable: Option<String>,
    /// Fenced (or another fatal refusal): every later call fails.
    fatal: Option<TxnError>,
}

impl Session {
    pub(super) fn new(config: TransactionalConfig) -> Session {
        Session {
            config,
            ids: None,
            open: false,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            sequences: BTreeMap::new(),
            abortable: None,
            fatal: None,
        }
    }

    fn id(&self) -> &str {
        &self.config.transactional_id
    }

    fn usable(&self) -> Result<ProducerIdAndEpoch> {
        if let Some(e) = self.fatal {
            return Err(Error::Transaction(e));
        }
        self.ids
            .ok_or_else(|| Error::TransactionState("call init_transactions first".into()))
    }

    fn in_transaction(&self) -> Result<ProducerIdAndEpoch> {
        let ids = self.usable()?;
        if !self.open {
            return Err(Error::TransactionState(
                "no transaction open: call begin_transaction first".into(),
            ));
        }
        Ok(ids)
    }

    /// A coordinator refusal: fencing is fatal, the rest is returned as it is.
    fn refused(&mut self, e: TxnError) -> Error {
        if matches!(
            e,
            TxnError::ProducerFenced | TxnError::InvalidProducerIdMapping
        ) {
            self.fatal = Some(e);
        }
        Error::Transaction(e)
    }

    fn reset(&mut self) {
        self.open = false;
        self.partitions.clear();
        self.groups.clear();
        self.abortable = None;
    }

    pub(super) fn init(&mut self, broker: &Broker) -> Result<()> {
        if let Some(e) = self.fatal {
            return Err(Error::Transaction(e));
        }
        let deadline = deadline(broker);
        let id = self.config.transactional_id.clone();
        let timeout_ms = self.config.transaction_timeout_ms;
        let ids = retry_concurrent(broker, &id, deadline, || {
            broker.init_transactional_producer(&id, timeout_ms, None)
        })
        .map_err(|e| self.refused(e))?;
        self.ids = Some(ids);
        self.sequences.clear();
        self.reset();
        Ok(())
    }

    pub(super) fn begin(&mut self) -> Result<()> {
        self.usable()?;
        if self.open {
            return Err(Error::TransactionState(
                "a transaction is already open".into(),
            ));
        }
        self.open = true;
        Ok(())
    }

    /// Appends `records` to `topic`-`partition` as one transactional batch; returns its base
    /// offset. The records become visible to read_committed readers at commit.
    pub(super) fn send(
        &mut self,
        broker: &Broker,
        topic: &str,
        partition: i32,
        records: &[Record],
    ) -> Result<i64> {
        let ids = self.in_transaction()?;
        if let Some(why) = &self.abortable {
            return Err(Error::TransactionState(format!(
                "an earlier send failed ({why}): abort the transaction"
            )));
        }
        let tp = TopicPartition::new(topic, partition);
        if !self.partitions.contains(&tp) {
            let id = self.id().to_owned();
            let add = std::slice::from_ref(&tp);
            retry_concurrent(broker, &id, deadline(broker), || {
                broker.add_partitions_to_txn(&id, ids.producer_id, ids.producer_epoch, add)
            })
            .map_err(|e| self.refused(e))?;
            self.partitions.insert(tp.clone());
        }
        let seq = self.sequences.get(&tp).copied().unwrap_or(0);
        let producer = TxnProducer {
            producer_id: ids.producer_id,
            producer_epoch: ids.producer_epoch,
            base_sequence: seq,
        };
        let appended = encode_transactional_batch(records, now_ms(), producer)
            .and_then(|batch| broker.append(topic, partition, &batch));
        match appended {
            Ok(info) => {
                let n = i32::try_from(records.len()).unwrap_or(i32::MAX);
                self.sequences.insert(tp, seq.wrapping_add(n) & i32::MAX);
                Ok(info.base_offset)
            }
            Err(e) => {
                self.abortable = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Adds `group` to the transaction: its offsets commit or abort with it.
    pub(super) fn add_group(&mut self, broker: &Broker, group: &str) -> Result<()> {
        let ids = self.in_transaction()?;
        if self.groups.contains(group) {
            return Ok(());
        }
        let id = self.id().to_owned();
        retry_concurrent(broker, &id, deadline(broker), || {
            broker.add_offsets_to_txn(&id, ids.producer_id, ids.producer_epoch, group)
        })
        .map_err(|e| self.refused(e))?;
        self.groups.insert(group.to_owned());
        Ok(())
    }

    /// Writes `offsets` as `group`'s offsets pending in this transaction (after `add_group`).
    pub(super) fn commit_offsets(
        &mut self,
        broker: &Broker,
        group: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<()> {
        let ids = self.in_transaction()?;
        let entries: Vec<crate::broker::OffsetCommitEntry> = offsets
            .iter()
            .map(|(tp, offset)| crate::broker::OffsetCommitEntry {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset: *offset,
                leader_epoch: -1,
                metadata: None,
            })
            .collect();
        broker.txn_commit_offsets(group, ids.producer_id, ids.producer_epoch, &entries)
    }

    /// Ends the open transaction; waits until it is complete (or the produce timeout).
    pub(super) fn end(&mut self, broker: &Broker, commit: bool) -> Result<()> {
        let ids = self.in_transaction()?;
        if commit && let Some(why) = &self.abortable {
            return Err(Error::TransactionState(format!(
                "an earlier send failed ({why}): abort the transaction"
            )));
        }
        if self.partitions.is_empty() && self.groups.is_empty() {
            // Nothing reached the coordinator: nothing to end (as Kafka's client).
            self.reset();
            return Ok(());
        }
        let id = self.id().to_owned();
        broker
            .end_txn(&id, ids.producer_id, ids.producer_epoch, commit)
            .map_err(|e| self.refused(e))?;
        await_completion(broker, &id, deadline(broker));
        self.reset();
        Ok(())
    }
}

/// How long a call refused with `CONCURRENT_TRANSACTIONS` waits before it tries again when
/// there is no completion to wait for (Kafka's client retries after `retry.backoff.ms`).
const CONCURRENT_BACKOFF: Duration = Duration::from_millis(20);

fn deadline(broker: &Broker) -> Instant {
    Instant::now()
        + Duration::from_millis(
            broker
                .config()
                .produce_timeout_ms
                .min(crate::limits::TXN_COMPLETION_WAIT_MS_MAX),
        )
}

/// Runs `call`; while it is refused with `CONCURRENT_TRANSACTIONS` (a previous transaction
/// of the id still completing), waits for that completion and runs it again.
fn retry_concurrent<T>(
    broker: &Broker,
    id: &str,
    deadline: Instant,
    mut call: impl FnMut() -> std::result::Result<T, TxnError>,
) -> std::result::Result<T, TxnError> {
    let keys = [WaitKey::TxnCoordinator];
    loop {
        let seen = broker.waits().epochs(&keys);
        match call() {
            Err(TxnError::ConcurrentTransactions) if Instant::now() < deadline => {
                let before = Instant::now();
                await_completion(broker, id, deadline);
                if Instant::now() >= deadline {
                    // Completion timed out: one more try decides.
                    return call();
                }
                if before.elapsed() < CONCURRENT_BACKOFF {
                    // Nothing to wait for yet (the decision's markers not registered, or
                    // another caller's transition pending): back off, woken early by a new
                    // marker job.
                    let until = (Instant::now() + CONCURRENT_BACKOFF).min(deadline);
                    broker.waits().wait(keys.to_vec(), &seen, until);
                }
            }
            r => return r,
        }
    }
}

/// Blocks until `id`'s decision is complete or `deadline`; true if complete.
fn await_completion(broker: &Broker, id: &str, deadline: Instant) -> bool {
    loop {
        let now = Instant::now();
        match broker.txn_progress(id) {
            Progress::Done => return true,
            _ if now >= deadline => return false,
            Progress::Waiting { keys, seen } => {
                broker.waits().wait(keys, &seen, deadline);
            }
            Progress::Failed => {
                // The txn thread retries the write; look again when it may have.
                let retry = now + Duration::from_millis(crate::limits::TXN_MARKER_RETRY_MS as u64);
                broker.waits().wait(Vec::new(), &[], retry.min(deadline));
            }
        }
    }
}
