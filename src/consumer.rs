//! The embedded consumer: assign or subscribe, poll, seek, commit — Kafka's consumer model
//! over direct broker calls.
//!
//! Positions: the next offset `poll` returns per assigned partition. A new assignment starts
//! at the group's committed offset if there is one, else per `auto_offset_reset` (default
//! `Earliest` for the embedded consumer, so a consumer created after a producer sees its
//! records; Kafka's Java default is `latest`). `poll` waits on the broker's high-watermark
//! notifications, never spinning.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::Broker;
use crate::error::{Error, Result};
use crate::storage::batch::BatchIter;
use crate::types::{StoredRecord, TopicPartition};

/// Where to start when there is no committed offset (or it is out of range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Report `Error::OffsetOutOfRange` instead of moving.
    None,
}

pub struct Consumer {
    broker: Arc<Broker>,
    group_id: Option<String>,
    subscription: Vec<String>,
    positions: BTreeMap<TopicPartition, i64>,
    auto_offset_reset: OffsetReset,
    max_poll_records: usize,
    max_partition_fetch_bytes: usize,
    next_start: usize,
}

impl Consumer {
    pub fn new(broker: Arc<Broker>) -> Self {
        Consumer {
            broker,
            group_id: None,
            subscription: Vec::new(),
            positions: BTreeMap::new(),
            auto_offset_reset: OffsetReset::Earliest,
            max_poll_records: 500,
            max_partition_fetch_bytes: 1024 * 1024,
            next_start: 0,
        }
    }

    pub fn set_group_id(&mut self, group_id: &str) {
        self.group_id = Some(group_id.to_string());
    }

    pub fn set_auto_offset_reset(&mut self, reset: OffsetReset) {
        self.auto_offset_reset = reset;
    }

    pub fn set_max_poll_records(&mut self, n: usize) {
        self.max_poll_records = n.max(1);
    }

    /// Subscribes to topics: every partition of each is assigned to this consumer (creating the
    /// topic if auto-creation is on).
    pub fn subscribe(&mut self, topics: Vec<String>) -> Result<()> {
        for t in &topics {
            if !self.broker.ensure_topic(t)? {
                return Err(Error::UnknownTopicOrPartition(t.clone()));
            }
        }
        self.subscription = topics;
        self.refresh_subscription()
    }

    fn refresh_subscription(&mut self) -> Result<()> {
        let mut wanted = Vec::new();
        for t in &self.subscription {
            for p in 0..self.broker.partition_count(t)? as i32 {
                wanted.push(TopicPartition::new(t.clone(), p));
            }
        }
        self.positions.retain(|tp, _| wanted.contains(tp));
        for tp in wanted {
            if !self.positions.contains_key(&tp) {
                let pos = self.initial_position(&tp)?;
                self.positions.insert(tp, pos);
            }
        }
        Ok(())
    }

    /// Assigns exactly these partitions (replacing any subscription).
    pub fn assign(&mut self, partitions: Vec<TopicPartition>) -> Result<()> {
        self.subscription.clear();
        let mut positions = BTreeMap::new();
        for tp in partitions {
            let pos = match self.positions.get(&tp) {
                Some(&p) => p,
                None => self.initial_position(&tp)?,
            };
            positions.insert(tp, pos);
        }
        self.positions = positions;
        Ok(())
    }

    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    fn initial_position(&self, tp: &TopicPartition) -> Result<i64> {
        if let Some(g) = &self.group_id
            && let Some(c) = self.broker.committed_offset(g, &tp.topic, tp.partition)
        {
            return Ok(c.offset);
        }
        self.reset_position(tp)
    }

    fn reset_position(&self, tp: &TopicPartition) -> Result<i64> {
        let o = self.broker.offsets(&tp.topic, tp.partition)?;
        match self.auto_offset_reset {
            OffsetReset::Earliest => Ok(o.log_start_offset),
            OffsetReset::Latest => Ok(o.high_watermark),
            OffsetReset::None => Err(Error::OffsetOutOfRange {
                partition: tp.to_string(),
                offset: -1,
                log_start_offset: o.log_start_offset,
                log_end_offset: o.log_end_offset,
            }),
        }
    }

    /// Returns available records, waiting up to `timeout` (no wait for `None`) when there are
    /// none yet. At most `max_poll_records` per call; partitions are served round-robin.
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<Vec<StoredRecord>> {
        if !self.subscription.is_empty() {
            self.refresh_subscription()?;
        }
        let deadline = Instant::now() + timeout.unwrap_or(Duration::ZERO);
        loop {
            let seen = self.broker.notifier().current();
            let records = self.fetch_once()?;
            if !records.is_empty() || Instant::now() >= deadline || self.positions.is_empty() {
                return Ok(records);
            }
            self.broker.notifier().wait_past(seen, deadline);
        }
    }

    fn fetch_once(&mut self) -> Result<Vec<StoredRecord>> {
        let tps: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        let mut out = Vec::new();
        if tps.is_empty() {
            return Ok(out);
        }
        let start = self.next_start % tps.len();
        self.next_start = self.next_start.wrapping_add(1);
        for i in 0..tps.len() {
            let tp = &tps[(start + i) % tps.len()];
            let quota = self.max_poll_records - out.len();
            if quota == 0 {
                break;
            }
            let pos = self.positions.get(tp).copied().unwrap_or(0);
            let data =
                match self
                    .broker
                    .read(&tp.topic, tp.partition, pos, self.max_partition_fetch_bytes)
                {
                    Ok(d) => d,
                    Err(Error::OffsetOutOfRange { .. })
                        if self.auto_offset_reset != OffsetReset::None =>
                    {
                        let reset = self.reset_position(tp)?;
                        log::info!("{tp}: position {pos} out of range, reset to {reset}");
                        self.positions.insert(tp.clone(), reset);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
            let mut records = crate::protocol::records::decode_records(
                &tp.topic,
                tp.partition,
                &data.records,
                pos,
            )?;
            let next = if records.len() > quota {
                records.truncate(quota);
                records.last().map_or(pos, |r| r.offset + 1)
            } else {
                BatchIter::new(&data.records)
                    .last()
                    .map_or(pos, |(h, _)| (h.last_offset() + 1).max(pos))
            };
            self.positions.insert(tp.clone(), next);
            out.extend(records);
        }
        Ok(out)
    }

    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        let pos = self
            .positions
            .get_mut(tp)
            .ok_or_else(|| Error::NotAssigned(tp.to_string()))?;
        *pos = offset;
        Ok(())
    }

    /// Seeks the given partitions (all assigned ones if empty) to their log start offset.
    pub fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_with(partitions, |o| o.log_start_offset)
    }

    /// Seeks the given partitions (all assigned ones if empty) to their high watermark.
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_with(partitions, |o| o.high_watermark)
    }

    fn seek_with(
        &mut self,
        partitions: &[TopicPartition],
        f: impl Fn(crate::storage::LogOffsets) -> i64,
    ) -> Result<()> {
        let tps: Vec<TopicPartition> = if partitions.is_empty() {
            self.assignment()
        } else {
            partitions.to_vec()
        };
        for tp in tps {
            let o = self.broker.offsets(&tp.topic, tp.partition)?;
            self.seek(&tp, f(o))?;
        }
        Ok(())
    }

    pub fn position(&self, tp: &TopicPartition) -> Result<i64> {
        self.positions
            .get(tp)
            .copied()
            .ok_or_else(|| Error::NotAssigned(tp.to_string()))
    }

    /// Commits the current position of every assigned partition for the group.
    pub fn commit(&mut self) -> Result<()> {
        let group = self.group_id.clone().ok_or(Error::NoGroupId)?;
        for (tp, &pos) in &self.positions {
            self.broker
                .commit_offset(&group, &tp.topic, tp.partition, pos, None)?;
        }
        Ok(())
    }

    /// Commits explicit offsets (the next offset to read, as in Kafka).
    pub fn commit_offsets(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        let group = self.group_id.clone().ok_or(Error::NoGroupId)?;
        for (tp, off) in offsets {
            self.broker
                .commit_offset(&group, &tp.topic, tp.partition, *off, None)?;
        }
        Ok(())
    }

    /// The group's committed offset for `tp`, if any.
    pub fn committed(&self, tp: &TopicPartition) -> Result<Option<i64>> {
        let group = self.group_id.as_deref().ok_or(Error::NoGroupId)?;
        Ok(self
            .broker
            .committed_offset(group, &tp.topic, tp.partition)
            .map(|c| c.offset))
    }
}
