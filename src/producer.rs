//! The embedded producer: encodes records into v2 batches and appends them through the broker.
//! Under fsync `always`, `send` returns only once the record is durable.
//!
//! A transactional producer (`Producer::transactional`, `transaction.rs`) sends only inside a
//! transaction; its records become durable and visible to read_committed readers when
//! `commit_transaction` returns.

mod transaction;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use self::transaction::Session;
pub use self::transaction::TransactionalConfig;

use crate::broker::Broker;
use crate::broker::partitioner::partition_for_key;
use crate::error::{Error, Result};
use crate::types::{Record, TopicPartition};

pub struct Producer {
    broker: Arc<Broker>,
    next_partition: AtomicU32,
    /// A transactional producer's state (`None`: a plain producer).
    txn: Option<Mutex<Session>>,
}

impl Producer {
    pub fn new(broker: Arc<Broker>) -> Self {
        Producer {
            broker,
            next_partition: AtomicU32::new(0),
            txn: None,
        }
    }

    /// A transactional producer: call `init_transactions` once, then send inside
    /// `begin_transaction` … `commit_transaction` (or `abort_transaction`).
    pub fn transactional(broker: Arc<Broker>, config: TransactionalConfig) -> Self {
        Producer {
            broker,
            next_partition: AtomicU32::new(0),
            txn: Some(Mutex::new(Session::new(config))),
        }
    }

    fn session(&self) -> Result<MutexGuard<'_, Session>> {
        let txn = self.txn.as_ref().ok_or_else(|| {
            Error::TransactionState("not a transactional producer (Producer::transactional)".into())
        })?;
        txn.lock()
            .map_err(|_| Error::TransactionState("producer lock poisoned".into()))
    }

    /// Gets this transactional id's producer id and a new epoch, fencing any previous
    /// instance (its open transaction is aborted first; this call waits for that).
    pub fn init_transactions(&self) -> Result<()> {
        self.session()?.init(&self.broker)
    }

    pub fn begin_transaction(&self) -> Result<()> {
        self.session()?.begin()
    }

    /// Puts `group`'s offsets in the transaction: they are committed with it, or dropped by
    /// an abort.
    pub fn send_offsets_to_transaction(
        &self,
        group: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<()> {
        let mut s = self.session()?;
        s.add_group(&self.broker, group)?;
        s.commit_offsets(&self.broker, group, offsets)
    }

    /// Commits the open transaction; returns once it is complete (its records visible to
    /// read_committed readers), or after the produce timeout once the commit is decided.
    pub fn commit_transaction(&self) -> Result<()> {
        self.session()?.end(&self.broker, true)
    }

    /// Aborts the open transaction: its records are never visible to read_committed readers.
    pub fn abort_transaction(&self) -> Result<()> {
        self.session()?.end(&self.broker, false)
    }

    /// Sends one record; returns `(partition, offset)`. Without an explicit partition, keyed
    /// records go where Kafka's murmur2 partitioner puts them and keyless ones round-robin
    /// (per call: `send_batch` keeps a call's keyless records on one partition).
    pub fn send(&self, topic: &str, record: Record, partition: Option<i32>) -> Result<(i32, i64)> {
        let p = self.choose_partition(topic, &record, partition)?;
        if self.txn.is_some() {
            let offset =
                self.session()?
                    .send(&self.broker, topic, p, std::slice::from_ref(&record))?;
            return Ok((p, offset));
        }
        let info = self
            .broker
            .produce(topic, p, std::slice::from_ref(&record))?;
        Ok((p, info.base_offset))
    }

    /// Sends many records, one batch per target partition; returns `(partition, offset)` for
    /// each record in input order.
    pub fn send_batch(
        &self,
        topic: &str,
        records: Vec<Record>,
        partition: Option<i32>,
    ) -> Result<Vec<(i32, i64)>> {
        let n = self.partition_count(topic)?;
        let mut by_partition: BTreeMap<i32, (Vec<usize>, Vec<Record>)> = BTreeMap::new();
        let total = records.len();
        // Keyless records of one call stay together on one partition (Kafka's sticky
        // partitioner, KIP-480): one batch instead of one sliver per partition.
        let sticky = (self.next_partition.fetch_add(1, Ordering::Relaxed) % n.max(1)) as i32;
        for (i, r) in records.into_iter().enumerate() {
            let p = match (partition, &r.key) {
                (None, None) => sticky,
                _ => self.pick(topic, n, &r, partition)?,
            };
            let entry = by_partition.entry(p).or_default();
            entry.0.push(i);
            entry.1.push(r);
        }
        let mut out = vec![(0, 0); total];
        for (p, (indexes, recs)) in by_partition {
            let base_offset = if self.txn.is_some() {
                self.session()?.send(&self.broker, topic, p, &recs)?
            } else {
                self.broker.produce(topic, p, &recs)?.base_offset
            };
            for (k, i) in indexes.into_iter().enumerate() {
                out[i] = (p, base_offset + k as i64);
            }
        }
        Ok(out)
    }

    /// The topic's partition count, creating the topic if auto-creation is on.
    fn partition_count(&self, topic: &str) -> Result<u32> {
        if !self.broker.ensure_topic(topic)? {
            return Err(Error::UnknownTopicOrPartition(topic.to_string()));
        }
        Ok(self.broker.partition_count(topic)? as u32)
    }

    fn choose_partition(&self, topic: &str, record: &Record, explicit: Option<i32>) -> Result<i32> {
        let n = self.partition_count(topic)?;
        self.pick(topic, n, record, explicit)
    }

    fn pick(&self, topic: &str, n: u32, record: &Record, explicit: Option<i32>) -> Result<i32> {
        match (explicit, &record.key) {
            (Some(p), _) if p >= 0 && (p as u32) < n => Ok(p),
            (Some(p), _) => Err(Error::UnknownTopicOrPartition(format!("{topic}-{p}"))),
            (None, Some(key)) => Ok(partition_for_key(key, n)),
            (None, None) => {
                Ok((self.next_partition.fetch_add(1, Ordering::Relaxed) % n.max(1)) as i32)
            }
        }
    }
}
