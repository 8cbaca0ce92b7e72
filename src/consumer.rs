//! The embedded consumer: assign or subscribe, poll, seek, commit — Kafka's consumer model
//! over direct broker calls.
//!
//! Positions: the next offset `poll` returns per assigned partition. A new assignment starts
//! at the group's committed offset if there is one, else per `auto_offset_reset` (default
//! `Earliest` for the embedded consumer, so a consumer created after a producer sees its
//! records; Kafka's Java default is `latest`). `poll` waits in the broker's wait set on its
//! partitions (and its group), never spinning.
//!
//! Fetched records are kept: a read returns whole batches, `poll` hands out at most
//! `max_poll_records`, and the rest stay buffered per partition for the next `poll` instead of
//! being read and decoded again. Invariant: a partition's buffer starts exactly at its
//! position; a buffer whose start no longer matches (a seek, a reset, a new assignment) is
//! dropped.
//!
//! Groups: with a group id, `subscribe` makes the consumer a member of the broker's group
//! coordinator, the same one wire clients join (see `broker::group::embedded`). `poll` drives
//! the membership (join, range assignment as leader, sync, heartbeats, rebalances) between
//! fetches; waits for other members happen inside `poll`'s timeout, in the same wait.
//! A lone member gets every partition at once. Commits are fenced by the member's generation.
//! Eager rebalancing: on a rebalance the consumer stops fetching; a partition it keeps into
//! the directly following generation keeps its position, any other starts at the committed
//! offset (commit before a rebalance to avoid reading records twice).
//!
//! Isolation (Kafka's `isolation.level`, default read_uncommitted as Kafka's): transaction
//! markers are never returned as records; under read_committed `poll` reads only below each
//! partition's last stable offset and skips the records of aborted transactions (Kafka
//! consumer's rule, `protocol::records::decode_committed`), and `Latest` / `seek_to_end`
//! mean the last stable offset. A read that returned only skipped batches moves the position
//! past them and reads again at once. A read_committed group consumer starts a partition only
//! once no transaction holds pending offsets of its group for it (KIP-447, Kafka's
//! `require_stable` OffsetFetch): until then `poll` returns nothing for it, waits for the
//! transaction's end, and `commit` leaves it out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::group::GroupError;
use crate::broker::group::embedded::{Change, EmbeddedMember, MemberConfig};
use crate::broker::wait::{WaitKey, Wake};
use crate::broker::{Broker, CommitFence, OffsetCommitEntry};
use crate::error::{Error, Result};
use crate::storage::Isolation;
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

/// What a consumer reads (Kafka's `isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Every record below the high watermark, of open and aborted transactions too.
    #[default]
    ReadUncommitted,
    /// Records below the last stable offset, without those of aborted transactions.
    ReadCommitted,
}

pub struct Consumer {
    broker: Arc<Broker>,
    isolation: Isolation,
    group_id: Option<String>,
    subscription: Vec<String>,
    positions: BTreeMap<TopicPartition, i64>,
    auto_offset_reset: OffsetReset,
    max_poll_records: usize,
    max_partition_fetch_bytes: usize,
    next_start: usize,
    /// Records read but not yet returned, per partition (see the module invariant).
    buffered: BTreeMap<TopicPartition, Buffered>,
    /// Assigned partitions whose committed offset a transaction still holds pending
    /// (read_committed): not read until it ends, their position is a placeholder.
    unstable: BTreeSet<TopicPartition>,
    group: GroupSettings,
    /// Group membership: `Some` after `subscribe` with a group id.
    member: Option<EmbeddedMember>,
    /// Generation of the current assignment, and positions set aside at a revocation.
    assigned_generation: Option<i32>,
    revoked: Option<(Option<i32>, BTreeMap<TopicPartition, i64>)>,
}

/// Decoded records of one partition not yet returned by `poll`.
#[derive(Debug, Default)]
struct Buffered {
    /// The position these records start at.
    start: i64,
    records: VecDeque<StoredRecord>,
    /// The position after the last batch read (past any records a batch skipped).
    next: i64,
}

/// Membership settings (Kafka's consumer defaults).
#[derive(Debug, Clone)]
struct GroupSettings {
    client_id: String,
    group_instance_id: Option<String>,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    heartbeat_interval_ms: i64,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            client_id: "thorstream-embedded".to_string(),
            group_instance_id: None,
            session_timeout_ms: 45_000,
            // Kafka's max.poll.interval.ms: how long a rebalance waits for `poll`.
            rebalance_timeout_ms: 300_000,
            heartbeat_interval_ms: 3_000,
        }
    }
}

/// Membership failures as the embedded API reports them.
fn group_error(group: &str, e: GroupError) -> Error {
    match e {
        GroupError::InvalidGroupId => Error::InvalidGroupId(group.to_string()),
        other => Error::InvalidConfig(format!("group {group}: {other}")),
    }
}

impl Consumer {
    pub fn new(broker: Arc<Broker>) -> Self {
        Consumer {
            broker,
            isolation: Isolation::ReadUncommitted,
            group_id: None,
            subscription: Vec::new(),
            positions: BTreeMap::new(),
            auto_offset_reset: OffsetReset::Earliest,
            max_poll_records: 500,
            max_partition_fetch_bytes: 1024 * 1024,
            next_start: 0,
            buffered: BTreeMap::new(),
            unstable: BTreeSet::new(),
            group: GroupSettings::default(),
            member: None,
            assigned_generation: None,
            revoked: None,
        }
    }

    /// Client id reported to the coordinator (DescribeGroups) and used in member ids.
    pub fn set_client_id(&mut self, client_id: &str) {
        self.group.client_id = client_id.to_string();
    }

    /// Static membership (KIP-345): a restarted consumer with the same instance id takes its
    /// place back without a rebalance, and `close` does not leave the group.
    pub fn set_group_instance_id(&mut self, instance_id: &str) {
        self.group.group_instance_id = Some(instance_id.to_string());
    }

    /// How long the coordinator keeps this member without a `poll` (default 45 s).
    pub fn set_session_timeout_ms(&mut self, ms: i32) {
        self.group.session_timeout_ms = ms;
    }

    /// How long a rebalance waits for this member to rejoin (default 300 s).
    pub fn set_rebalance_timeout_ms(&mut self, ms: i32) {
        self.group.rebalance_timeout_ms = ms;
    }

    pub fn set_heartbeat_interval_ms(&mut self, ms: i64) {
        self.group.heartbeat_interval_ms = ms.max(1);
    }

    /// The member id and generation while this consumer is a group member.
    pub fn group_membership(&self) -> Option<(String, i32)> {
        self.member
            .as_ref()
            .filter(|m| m.is_stable())
            .map(|m| (m.member_id().to_string(), m.generation()))
    }

    pub fn set_group_id(&mut self, group_id: &str) {
        self.group_id = Some(group_id.to_string());
    }

    pub fn set_isolation_level(&mut self, level: IsolationLevel) {
        self.isolation = match level {
            IsolationLevel::ReadUncommitted => Isolation::ReadUncommitted,
            IsolationLevel::ReadCommitted => Isolation::ReadCommitted,
        };
    }

    /// The end a reader at this isolation level may reach: the high watermark, or the last
    /// stable offset under read_committed.
    fn end_of(&self, o: crate::storage::LogOffsets) -> i64 {
        match self.isolation {
            Isolation::ReadUncommitted => o.high_watermark,
            Isolation::ReadCommitted => o.last_stable_offset,
        }
    }

    pub fn set_auto_offset_reset(&mut self, reset: OffsetReset) {
        self.auto_offset_reset = reset;
    }

    pub fn set_max_poll_records(&mut self, n: usize) {
        self.max_poll_records = n.max(1);
    }

    /// Subscribes to topics (creating them if auto-creation is on). Without a group id every
    /// partition is assigned to this consumer; with one, the consumer joins the group and gets
    /// the partitions the group's assignment gives it (all of them when it is alone: the
    /// first join is attempted here, without waiting).
    pub fn subscribe(&mut self, topics: Vec<String>) -> Result<()> {
        for t in &topics {
            if !self.broker.ensure_topic(t)? {
                return Err(Error::UnknownTopicOrPartition(t.clone()));
            }
        }
        self.subscription = topics.clone();
        let Some(group_id) = self.group_id.clone() else {
            return self.refresh_subscription();
        };
        match &mut self.member {
            Some(m) => {
                if m.set_topics(topics, &self.broker) {
                    self.revoke();
                }
            }
            None => {
                let g = &self.group;
                let config = MemberConfig {
                    group_id,
                    group_instance_id: g.group_instance_id.clone(),
                    client_id: g.client_id.clone(),
                    session_timeout_ms: g.session_timeout_ms,
                    rebalance_timeout_ms: g.rebalance_timeout_ms,
                    heartbeat_interval_ms: g.heartbeat_interval_ms,
                };
                self.positions.clear();
                self.member = Some(EmbeddedMember::new(config, topics));
            }
        }
        self.drive_group()
    }

    /// Leaves the group (if a member) and drops the subscription and assignment.
    pub fn unsubscribe(&mut self) {
        self.leave_group();
        self.subscription.clear();
        self.positions.clear();
    }

    /// Leaves the group now instead of at drop (static members stay, as in Kafka).
    pub fn close(&mut self) {
        self.unsubscribe();
    }

    fn leave_group(&mut self) {
        if let Some(mut m) = self.member.take() {
            m.leave(&self.broker);
        }
        self.assigned_generation = None;
        self.revoked = None;
    }

    /// One non-blocking membership step; applies a revocation or a new assignment.
    fn drive_group(&mut self) -> Result<()> {
        let Some(m) = self.member.as_mut() else {
            return Ok(());
        };
        let change = m
            .step(&self.broker)
            .map_err(|e| group_error(m.group_id(), e))?;
        match change {
            Change::None => Ok(()),
            Change::Revoked => {
                self.revoke();
                Ok(())
            }
            Change::Assigned {
                partitions,
                generation,
            } => self.apply_assignment(partitions, generation),
        }
    }

    fn revoke(&mut self) {
        if self.revoked.is_none() {
            let positions = std::mem::take(&mut self.positions);
            self.revoked = Some((self.assigned_generation.take(), positions));
        }
        self.positions.clear();
    }

    fn apply_assignment(&mut self, partitions: Vec<TopicPartition>, generation: i32) -> Result<()> {
        self.revoke();
        let (previous, old) = self.revoked.take().unwrap_or_default();
        // Kept into the very next generation: nobody else can have consumed it meanwhile.
        let keep = previous.is_some_and(|g| g + 1 == generation);
        let mut positions = BTreeMap::new();
        for tp in partitions {
            let pos = match old.get(&tp) {
                Some(&p) if keep => p,
                _ => self.initial_position(&tp)?,
            };
            positions.insert(tp, pos);
        }
        self.positions = positions;
        self.assigned_generation = Some(generation);
        Ok(())
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

    /// Assigns exactly these partitions (replacing any subscription; a group member leaves its
    /// group first).
    pub fn assign(&mut self, partitions: Vec<TopicPartition>) -> Result<()> {
        self.leave_group();
        self.subscription.clear();
        let mut positions = BTreeMap::new();
        for tp in partitions {
            let known = self.positions.get(&tp).copied();
            let pos = match known {
                Some(p) => p,
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

    /// The committed offset, else the reset position; under read_committed a partition with
    /// pending transactional offsets is marked unstable (see the module docs).
    fn initial_position(&mut self, tp: &TopicPartition) -> Result<i64> {
        self.unstable.remove(tp);
        if let Some(g) = &self.group_id {
            if self.isolation == Isolation::ReadCommitted
                && self
                    .broker
                    .has_pending_txn_offsets(g, &tp.topic, tp.partition)
            {
                self.unstable.insert(tp.clone());
            }
            if let Some(c) = self.broker.committed_offset(g, &tp.topic, tp.partition) {
                return Ok(c.offset);
            }
        }
        self.reset_position(tp)
    }

    /// Starts the unstable partitions whose pending offsets have ended; true if some are
    /// still waiting.
    fn resolve_unstable(&mut self) -> Result<bool> {
        let positions = &self.positions;
        self.unstable.retain(|tp| positions.contains_key(tp));
        let waiting: Vec<TopicPartition> = self.unstable.iter().cloned().collect();
        for tp in waiting {
            let pos = self.initial_position(&tp)?;
            self.positions.insert(tp, pos);
        }
        Ok(!self.unstable.is_empty())
    }

    fn reset_position(&self, tp: &TopicPartition) -> Result<i64> {
        let o = self.broker.offsets(&tp.topic, tp.partition)?;
        match self.auto_offset_reset {
            OffsetReset::Earliest => Ok(o.log_start_offset),
            OffsetReset::Latest => Ok(self.end_of(o)),
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
    /// As a group member, `poll` also joins, heartbeats and follows rebalances, waiting for
    /// the group within `timeout` (group changes wake it like new records do).
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<Vec<StoredRecord>> {
        if self.member.is_none() && !self.subscription.is_empty() {
            self.refresh_subscription()?;
        }
        let deadline = Instant::now() + timeout.unwrap_or(Duration::ZERO);
        loop {
            // Epochs first, so a record or group change landing meanwhile ends the wait.
            let mut keys: Vec<WaitKey> = self
                .positions
                .keys()
                .map(|tp| WaitKey::partition(&tp.topic, tp.partition))
                .collect();
            if let Some(g) = self.group_id.as_deref().filter(|_| self.member.is_some()) {
                keys.push(WaitKey::group(g));
            }
            if !self.unstable.is_empty() {
                // A transaction's end makes its offsets durable and fires this.
                keys.push(WaitKey::Offsets);
            }
            let seen = self.broker.waits().epochs(&keys);
            self.drive_group()?;
            self.resolve_unstable()?;
            let (records, skipped) = self.fetch_once()?;
            let idle = self.positions.is_empty() && self.member.is_none();
            if !records.is_empty() || Instant::now() >= deadline || idle {
                return Ok(records);
            }
            if skipped {
                // Only markers or aborted batches were read: more may be readable now.
                continue;
            }
            let wake = match &self.member {
                Some(m) => deadline.min(self.broker.groups().instant_at(m.next_wakeup_ms())),
                None => deadline,
            };
            if self.broker.waits().wait(keys, &seen, wake) == Wake::Shutdown {
                // The broker is closing: nothing more will arrive (and waiting again would
                // return at once, a spin).
                return Ok(Vec::new());
            }
        }
    }

    /// One read round; also whether some partition's position moved past batches that gave
    /// no records (markers, aborted transactions).
    fn fetch_once(&mut self) -> Result<(Vec<StoredRecord>, bool)> {
        let tps: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        let mut out = Vec::new();
        let mut skipped = false;
        if tps.is_empty() {
            return Ok((out, skipped));
        }
        let positions = &self.positions;
        self.buffered
            .retain(|tp, b| positions.get(tp) == Some(&b.start) && !b.records.is_empty());
        let start = self.next_start % tps.len();
        self.next_start = self.next_start.wrapping_add(1);
        for i in 0..tps.len() {
            let tp = &tps[(start + i) % tps.len()];
            let quota = self.max_poll_records - out.len();
            if quota == 0 {
                break;
            }
            if self.unstable.contains(tp) {
                continue;
            }
            if let Some(b) = self.buffered.get_mut(tp) {
                let n = quota.min(b.records.len());
                out.extend(b.records.drain(..n));
                let next = b.records.front().map_or(b.next, |r| r.offset);
                b.start = next;
                self.positions.insert(tp.clone(), next);
                continue;
            }
            let pos = self.positions.get(tp).copied().unwrap_or(0);
            let read = self.broker.read_isolated(
                &tp.topic,
                tp.partition,
                pos,
                self.max_partition_fetch_bytes,
                self.isolation,
            );
            let data = match read {
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
            let mut records = crate::protocol::records::decode_committed(
                &tp.topic,
                tp.partition,
                &data.records,
                pos,
                data.aborted.as_deref(),
            )?;
            let end = BatchIter::new(&data.records)
                .last()
                .map_or(pos, |(h, _)| (h.last_offset() + 1).max(pos));
            skipped |= records.is_empty() && end > pos;
            let next = if records.len() > quota {
                let rest: VecDeque<StoredRecord> = records.split_off(quota).into();
                let next = rest.front().map_or(end, |r| r.offset);
                self.buffered.insert(
                    tp.clone(),
                    Buffered {
                        start: next,
                        records: rest,
                        next: end,
                    },
                );
                next
            } else {
                end
            };
            self.positions.insert(tp.clone(), next);
            out.extend(records);
        }
        Ok((out, skipped))
    }

    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        let pos = self
            .positions
            .get_mut(tp)
            .ok_or_else(|| Error::NotAssigned(tp.to_string()))?;
        *pos = offset;
        self.unstable.remove(tp);
        Ok(())
    }

    /// Seeks the given partitions (all assigned ones if empty) to their log start offset.
    pub fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_with(partitions, |o| o.log_start_offset)
    }

    /// Seeks the given partitions (all assigned ones if empty) to their high watermark (the
    /// last stable offset under read_committed).
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let isolation = self.isolation;
        self.seek_with(partitions, move |o| match isolation {
            Isolation::ReadUncommitted => o.high_watermark,
            Isolation::ReadCommitted => o.last_stable_offset,
        })
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
        let offsets: Vec<(TopicPartition, i64)> = self
            .positions
            .iter()
            .filter(|(tp, _)| !self.unstable.contains(*tp))
            .map(|(tp, &p)| (tp.clone(), p))
            .collect();
        self.commit_offsets(&offsets)
    }

    /// Commits explicit offsets (the next offset to read, as in Kafka). A group member
    /// commits with its generation: after the group moved on (a rebalance this consumer has
    /// not followed yet) the commit is refused with `Error::NotAssigned` and the consumer
    /// rejoins at its next `poll`. Without membership the commit is a simple one, refused
    /// while the group has members.
    pub fn commit_offsets(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        let group = self.group_id.clone().ok_or(Error::NoGroupId)?;
        if offsets.is_empty() {
            return Ok(());
        }
        let (member_id, instance_id, generation) = match &self.member {
            Some(m) => (
                m.member_id().to_string(),
                m.group_instance_id().map(str::to_string),
                m.generation(),
            ),
            None => (String::new(), None, -1),
        };
        let fence = CommitFence {
            group_id: &group,
            member_id: &member_id,
            instance_id: instance_id.as_deref(),
            generation,
        };
        let entries: Vec<OffsetCommitEntry> = offsets
            .iter()
            .map(|(tp, off)| OffsetCommitEntry {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset: *off,
                leader_epoch: -1,
                metadata: None,
            })
            .collect();
        // Fenced and written as one step under the group lock; blocks until durable.
        match self.broker.commit_offsets_and_wait(fence, &entries) {
            Ok(written) => written,
            Err(e) => {
                if let Some(m) = self.member.as_mut()
                    && e != GroupError::RebalanceInProgress
                {
                    m.rejoin(&self.broker);
                    self.revoke();
                }
                Err(crate::broker::fence_error(&group, e))
            }
        }
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

impl Drop for Consumer {
    /// A dynamic group member leaves its group, so the others rebalance at once.
    fn drop(&mut self) {
        self.leave_group();
    }
}
