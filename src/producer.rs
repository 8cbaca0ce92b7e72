//! The embedded producer: encodes records into v2 batches and appends them through the broker.
//! Under fsync `always`, `send` returns only once the record is durable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::broker::Broker;
use crate::broker::partitioner::partition_for_key;
use crate::error::{Error, Result};
use crate::types::Record;

pub struct Producer {
    broker: Arc<Broker>,
    next_partition: AtomicU32,
}

impl Producer {
    pub fn new(broker: Arc<Broker>) -> Self {
        Producer {
            broker,
            next_partition: AtomicU32::new(0),
        }
    }

    /// Sends one record; returns `(partition, offset)`. Without an explicit partition, keyed
    /// records go where Kafka's murmur2 partitioner puts them and keyless ones round-robin
    /// (per call: `send_batch` keeps a call's keyless records on one partition).
    pub fn send(&self, topic: &str, record: Record, partition: Option<i32>) -> Result<(i32, i64)> {
        let p = self.choose_partition(topic, &record, partition)?;
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
            let info = self.broker.produce(topic, p, &recs)?;
            for (k, i) in indexes.into_iter().enumerate() {
                out[i] = (p, info.base_offset + k as i64);
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
