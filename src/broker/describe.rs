//! Read-only descriptions for admin APIs: the partitions of the one log directory with their
//! sizes and the file system's space (DescribeLogDirs) and a partition's active idempotent producers (DescribeProducers).
//! Each partition is read under its lock for a moment, one at a time; nothing is changed.

use super::Broker;
use crate::error::Result;

/// One partition's stored bytes (all its segments, indexes not counted, as Kafka's
/// `UnifiedLog.size`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSize {
    pub topic: String,
    pub partition: i32,
    pub size_bytes: u64,
}

/// An idempotent producer a partition remembers (Kafka's DescribeProducers `ProducerState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// Sequence of the last record appended (-1 if none is remembered).
    pub last_sequence: i32,
    /// Largest batch timestamp seen from it.
    pub last_timestamp: i64,
    /// First offset of its open transaction in this partition (-1 if none), Kafka's
    /// `currentTxnStartOffset` (what `kafka-transactions find-hanging` reads).
    pub current_txn_start_offset: i64,
}

/// The file system holding the data directory (Java's `File.getTotalSpace` /
/// `getUsableSpace`, which Kafka reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirSpace {
    pub total_bytes: u64,
    /// Available to this (unprivileged) process.
    pub usable_bytes: u64,
}

impl Broker {
    /// Total and usable bytes of the data directory's file system; `None` if the OS cannot
    /// tell.
    pub fn log_dir_space(&self) -> Option<DirSpace> {
        let st = rustix::fs::statvfs(&self.inner.config.data_dir).ok()?;
        Some(DirSpace {
            total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
            usable_bytes: st.f_bavail.saturating_mul(st.f_frsize),
        })
    }

    /// Every partition of every topic with its size, by topic name then partition.
    pub fn partition_sizes(&self) -> Vec<PartitionSize> {
        let mut out = Vec::new();
        for name in self.topics() {
            let Ok(topic) = self.topic(&name) else {
                continue; // deleted meanwhile
            };
            let parts = topic.partitions_snapshot();
            for p in parts {
                let Ok(log) = p.log() else { continue };
                out.push(PartitionSize {
                    topic: name.clone(),
                    partition: p.index,
                    size_bytes: log.size_bytes(),
                });
            }
        }
        out
    }

    /// The idempotent producers `topic`-`partition` remembers, by producer id.
    pub fn active_producers(&self, topic: &str, partition: i32) -> Result<Vec<ActiveProducer>> {
        let p = self.partition(topic, partition)?;
        let log = p.log()?;
        let mut producers: Vec<ActiveProducer> = log
            .producer_state()
            .entries()
            .map(|(id, e)| ActiveProducer {
                producer_id: *id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                current_txn_start_offset: e.current_txn_first_offset.unwrap_or(-1),
            })
            .collect();
        producers.sort_by_key(|a| a.producer_id);
        Ok(producers)
    }
}
