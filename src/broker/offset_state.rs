//! The offset store's in-memory state: what the replay of `__consumer_offsets.meta`'s durable
//! records gives (`OffsetState::apply`), committed offsets per group and the transactional
//! offsets still pending per (group, producer id).
//!
//! Invariants:
//! - a pending transactional offset (TxnOffsetCommit) is never a committed offset: readers
//!   (OffsetFetch, the embedded consumer) see it only after its transaction's end record
//!   commits it; an abort drops it; without an end record it stays pending (across restarts:
//!   the transaction coordinator's recovery ends it);
//! - every live offset carries the ordinal of the record that set it (`seq`). A committed
//!   transaction's offset replaces a partition's committed offset only if its record is the
//!   newer one (Kafka's rule, so a plain commit written while the transaction was open wins);
//! - `live_records` lists every live offset in `seq` order, so replaying them (the file
//!   compacted at open) gives this same state, comparisons included;
//! - deleting a group or a partition's offset drops its pending transactional offsets too.

use std::collections::BTreeMap;

use super::metadata::offset_record::OffsetRecord;
use crate::types::CommittedOffset;

/// An offset and the ordinal of the record that set it.
#[derive(Debug, Clone)]
struct Entry {
    value: CommittedOffset,
    seq: u64,
}

type Offsets = BTreeMap<(String, i32), Entry>;

/// One producer's pending offsets for one group.
#[derive(Debug, Default)]
struct TxnOffsets {
    /// The highest epoch the producer committed offsets with.
    producer_epoch: i16,
    offsets: Offsets,
}

#[derive(Debug, Default)]
pub(crate) struct OffsetState {
    groups: BTreeMap<String, Offsets>,
    /// Pending transactional offsets by (group, producer id).
    txns: BTreeMap<(String, i64), TxnOffsets>,
    /// Records applied so far (the next record's `seq`).
    applied: u64,
}

impl OffsetState {
    pub(crate) fn apply(&mut self, rec: OffsetRecord) {
        self.applied += 1;
        let seq = self.applied;
        match rec {
            OffsetRecord::Commit {
                group,
                topic,
                partition,
                value,
            } => {
                self.groups
                    .entry(group)
                    .or_default()
                    .insert((topic, partition), Entry { value, seq });
            }
            OffsetRecord::DeleteOffset {
                group,
                topic,
                partition,
            } => {
                let key = (topic, partition);
                if let Some(g) = self.groups.get_mut(&group) {
                    g.remove(&key);
                    if g.is_empty() {
                        self.groups.remove(&group);
                    }
                }
                self.txns.retain(|(g, _), t| {
                    if *g == group {
                        t.offsets.remove(&key);
                    }
                    !t.offsets.is_empty()
                });
            }
            OffsetRecord::DeleteGroup { group } => {
                self.groups.remove(&group);
                self.txns.retain(|(g, _), _| *g != group);
            }
            OffsetRecord::TxnCommit {
                group,
                topic,
                partition,
                producer_id,
                producer_epoch,
                value,
            } => {
                let t = self.txns.entry((group, producer_id)).or_default();
                t.producer_epoch = t.producer_epoch.max(producer_epoch);
                t.offsets.insert((topic, partition), Entry { value, seq });
            }
            OffsetRecord::TxnEnd {
                group,
                producer_id,
                commit,
            } => {
                let Some(t) = self.txns.remove(&(group.clone(), producer_id)) else {
                    return;
                };
                if !commit {
                    return;
                }
                let committed = self.groups.entry(group).or_default();
                for (key, pending) in t.offsets {
                    if committed.get(&key).is_none_or(|c| c.seq < pending.seq) {
                        committed.insert(key, pending);
                    }
                }
            }
        }
    }

    /// Every live offset as the record that recreates it, in record order.
    pub(crate) fn live_records(&self) -> Vec<OffsetRecord> {
        let committed = self.groups.iter().flat_map(|(g, offs)| {
            offs.iter().map(move |((t, p), e)| {
                let rec = OffsetRecord::Commit {
                    group: g.clone(),
                    topic: t.clone(),
                    partition: *p,
                    value: e.value.clone(),
                };
                (e.seq, rec)
            })
        });
        let pending = self.txns.iter().flat_map(|((g, pid), txn)| {
            txn.offsets.iter().map(move |((t, p), e)| {
                let rec = OffsetRecord::TxnCommit {
                    group: g.clone(),
                    topic: t.clone(),
                    partition: *p,
                    producer_id: *pid,
                    producer_epoch: txn.producer_epoch,
                    value: e.value.clone(),
                };
                (e.seq, rec)
            })
        });
        let mut all: Vec<(u64, OffsetRecord)> = committed.chain(pending).collect();
        all.sort_by_key(|(seq, _)| *seq);
        all.into_iter().map(|(_, r)| r).collect()
    }

    pub(crate) fn committed(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Option<CommittedOffset> {
        self.groups
            .get(group)?
            .get(&(topic.to_string(), partition))
            .map(|e| e.value.clone())
    }

    pub(crate) fn group_offsets(&self, group: &str) -> Vec<((String, i32), CommittedOffset)> {
        self.groups
            .get(group)
            .map(|m| {
                m.iter()
                    .map(|(k, e)| (k.clone(), e.value.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Groups with committed offsets.
    pub(crate) fn groups(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// True if some producer's transaction holds pending offsets of `group`.
    pub(crate) fn has_open_txn(&self, group: &str) -> bool {
        self.txns
            .range((group.to_string(), i64::MIN)..=(group.to_string(), i64::MAX))
            .next()
            .is_some()
    }

    /// True if some producer's transaction holds a pending offset of this partition.
    pub(crate) fn has_pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.txns
            .range((group.to_string(), i64::MIN)..=(group.to_string(), i64::MAX))
            .any(|(_, t)| t.offsets.contains_key(&key))
    }

    /// The epoch of `producer_id`'s pending offsets for `group`, if it has any.
    pub(crate) fn txn_epoch(&self, group: &str, producer_id: i64) -> Option<i16> {
        self.txns
            .get(&(group.to_string(), producer_id))
            .map(|t| t.producer_epoch)
    }

    /// (group, partition) of every offset of `topic`, committed or pending.
    pub(crate) fn topic_offsets(&self, topic: &str) -> Vec<(String, i32)> {
        let committed = self.groups.iter().flat_map(|(g, offs)| {
            offs.keys()
                .filter(|(t, _)| t == topic)
                .map(move |(_, p)| (g.clone(), *p))
        });
        let pending = self.txns.iter().flat_map(|((g, _), txn)| {
            txn.offsets
                .keys()
                .filter(|(t, _)| t == topic)
                .map(move |(_, p)| (g.clone(), *p))
        });
        committed.chain(pending).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn off(o: i64) -> CommittedOffset {
        CommittedOffset {
            offset: o,
            leader_epoch: -1,
            metadata: None,
            commit_timestamp_ms: 0,
        }
    }

    fn plain(o: i64) -> OffsetRecord {
        OffsetRecord::Commit {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: off(o),
        }
    }

    fn txn(pid: i64, o: i64) -> OffsetRecord {
        OffsetRecord::TxnCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            producer_id: pid,
            producer_epoch: 0,
            value: off(o),
        }
    }

    fn end(pid: i64, commit: bool) -> OffsetRecord {
        OffsetRecord::TxnEnd {
            group: "g".into(),
            producer_id: pid,
            commit,
        }
    }

    fn replay(records: &[OffsetRecord]) -> OffsetState {
        let mut s = OffsetState::default();
        for r in records {
            s.apply(r.clone());
        }
        s
    }

    fn at(s: &OffsetState) -> Option<i64> {
        s.committed("g", "t", 0).map(|c| c.offset)
    }

    #[test]
    fn the_newer_record_wins_when_a_transaction_commits() {
        // Plain commit written after the transactional one: it stays.
        let s = replay(&[txn(1, 5), plain(9), end(1, true)]);
        assert_eq!(at(&s), Some(9));
        // Plain commit before: the transaction's offset replaces it.
        let s = replay(&[plain(9), txn(1, 5), end(1, true)]);
        assert_eq!(at(&s), Some(5));
        // An abort drops the pending offset; an end without pending offsets changes nothing.
        let s = replay(&[plain(9), txn(1, 5), end(1, false), end(1, true)]);
        assert_eq!(at(&s), Some(9));
        assert!(!s.has_pending("g", "t", 0));
    }

    #[test]
    fn live_records_replay_to_the_same_state() {
        let records = [plain(1), txn(1, 5), plain(9), txn(2, 7), end(3, true)];
        let s = replay(&records);
        let again = replay(&s.live_records());
        assert!(again.has_pending("g", "t", 0));
        assert_eq!(at(&again), Some(9));
        // The order survived: producer 1's commit still loses to the later plain commit,
        // producer 2's still wins.
        let mut a = replay(&s.live_records());
        a.apply(end(1, true));
        assert_eq!(at(&a), Some(9));
        a.apply(end(2, true));
        assert_eq!(at(&a), Some(7));
    }

    #[test]
    fn deletes_drop_pending_offsets() {
        let s = replay(&[txn(1, 5), OffsetRecord::DeleteGroup { group: "g".into() }]);
        assert!(!s.has_pending("g", "t", 0) && s.txn_epoch("g", 1).is_none());
        let del = OffsetRecord::DeleteOffset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        };
        let s = replay(&[txn(1, 5), del, end(1, true)]);
        assert_eq!(at(&s), None);
    }
}
