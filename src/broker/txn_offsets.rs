//! Transactional offsets on the `Broker` (KIP-98 / KIP-447): TxnOffsetCommit writes a
//! group's offsets pending in a producer's transaction; the transaction coordinator ends them
//! with the transaction's markers (`complete_txn_offsets`); OffsetFetch's `require_stable`
//! asks whether any are pending (`has_pending_txn_offsets`).
//!
//! Invariants:
//! - a TxnOffsetCommit is fenced like an OffsetCommit when it names a member or a generation
//!   (v3+, KIP-447), under the group coordinator's lock with its write
//!   (`GroupService::txn_commit_fenced`, Kafka's transactional rules: a commit without member
//!   id and generation is accepted while the group has members); a producer epoch below the
//!   one of that producer's pending offsets for the group is refused (INVALID_PRODUCER_EPOCH);
//! - the write is made durable by the flusher as an OffsetCommit's is; pending offsets are
//!   never visible to OffsetFetch or the embedded consumer, and become visible (commit) or are
//!   dropped (abort) once the end record is durable;
//! - `complete_txn_offsets` returns only once its end record is durable (or there was nothing
//!   pending): when it returns the outcome survives a crash. It blocks its thread on the
//!   flusher's fsync (`end_txn_offsets` is the non-blocking form).
//!
//! This module checks no transaction state: that the producer added the group to its
//! transaction (AddOffsetsToTxn) is the coordinator's business (Kafka's KIP-890 verification
//! is not done).

use super::Broker;
use super::offset_store::WriteSeq;
use super::offsets::{CommitOutcome, OffsetCommitEntry, fence_error};
use super::wait::WaitKey;
use crate::broker::group::GroupError;
use crate::error::Result;
use crate::limits::GROUP_ID_BYTES_MAX;

/// Who commits transactionally: the producer and, from TxnOffsetCommit v3, the consumer group
/// member whose offsets they are (`member_id` empty and `generation` -1 when not given).
#[derive(Debug, Clone, Copy)]
pub struct TxnCommitFence<'a> {
    pub group_id: &'a str,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    pub generation: i32,
}

impl Broker {
    /// Checks and writes a TxnOffsetCommit (see the module invariants); does not wait for
    /// durability. `Err` if the group fence refuses the whole commit.
    pub fn txn_commit_offsets_fenced(
        &self,
        fence: TxnCommitFence<'_>,
        entries: &[OffsetCommitEntry],
    ) -> Result<CommitOutcome, GroupError> {
        if fence.group_id.is_empty() || fence.group_id.len() > GROUP_ID_BYTES_MAX {
            return Err(GroupError::InvalidGroupId);
        }
        let (partitions, accepted) = self.check_entries(entries);
        let store = &self.inner.offsets;
        let written = self.inner.groups.txn_commit_fenced(
            fence.group_id,
            fence.member_id,
            fence.instance_id,
            fence.generation,
            || {
                if accepted.is_empty() {
                    Ok(None)
                } else {
                    store.txn_commit(
                        fence.group_id,
                        fence.producer_id,
                        fence.producer_epoch,
                        accepted,
                    )
                }
            },
        )?;
        Ok(self.written(fence.group_id, partitions, written))
    }

    /// Sends `entries` as `group`'s offsets in `producer_id`'s transaction (the embedded
    /// transactional producer's `send_offsets`, after the coordinator added the group to the
    /// transaction), without a member fence; blocks until the write is durable. The first
    /// refused partition's error, if any.
    pub fn txn_commit_offsets(
        &self,
        group: &str,
        producer_id: i64,
        producer_epoch: i16,
        entries: &[OffsetCommitEntry],
    ) -> Result<()> {
        let fence = TxnCommitFence {
            group_id: group,
            producer_id,
            producer_epoch,
            member_id: "",
            instance_id: None,
            generation: -1,
        };
        let seen = self.inner.waits.epochs(&[WaitKey::Offsets]);
        let outcome = self
            .txn_commit_offsets_fenced(fence, entries)
            .map_err(|e| fence_error(group, e))?;
        self.wait_outcome(outcome, seen)
    }

    /// Ends `producer_id`'s transactional offsets for `group`: on commit they become the
    /// group's committed offsets, on abort they are dropped. Called by the transaction
    /// coordinator for every group of a transaction when it writes the markers; idempotent;
    /// returns once the outcome is durable (blocking on the flusher's fsync).
    pub(crate) fn complete_txn_offsets(
        &self,
        group: &str,
        producer_id: i64,
        commit: bool,
    ) -> Result<()> {
        let seen = self.inner.waits.epochs(&[WaitKey::Offsets]);
        match self.end_txn_offsets(group, producer_id, commit)? {
            Some(seq) => self.wait_offsets_durable(seq, seen),
            None => Ok(()),
        }
    }

    /// `complete_txn_offsets` without the wait: `Some(seq)` is done once
    /// `offsets_durable(seq)` (`WaitKey::Offsets` fires); the flusher is marked.
    pub(crate) fn end_txn_offsets(
        &self,
        group: &str,
        producer_id: i64,
        commit: bool,
    ) -> Result<Option<WriteSeq>> {
        let seq = self.inner.offsets.end_txn(group, producer_id, commit)?;
        if seq.is_some() {
            self.inner.flusher.mark_offsets();
        }
        Ok(seq)
    }

    /// True if some transaction holds a pending offset of `group` for this partition
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for it).
    pub fn has_pending_txn_offsets(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.inner.offsets.has_pending_txn(group, topic, partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrokerConfig, TopicConfig};
    use crate::error::Error;

    fn broker(dir: &std::path::Path) -> Broker {
        let b = Broker::new(BrokerConfig::with_data_dir(dir)).expect("broker");
        b.create_topic("t", Some(TopicConfig::with_partitions(2)))
            .expect("topic");
        b
    }

    fn entry(partition: i32, offset: i64) -> OffsetCommitEntry {
        OffsetCommitEntry {
            topic: "t".into(),
            partition,
            offset,
            leader_epoch: -1,
            metadata: None,
        }
    }

    fn committed(b: &Broker, partition: i32) -> Option<i64> {
        b.committed_offset("g", "t", partition).map(|c| c.offset)
    }

    #[test]
    fn pending_offsets_become_visible_on_commit_and_vanish_on_abort() {
        let dir = tempfile::tempdir().expect("tmp");
        let b = broker(dir.path());
        b.txn_commit_offsets("g", 7, 0, &[entry(0, 5)])
            .expect("txn commit");
        assert_eq!(committed(&b, 0), None);
        assert!(b.has_pending_txn_offsets("g", "t", 0));
        assert!(!b.has_pending_txn_offsets("g", "t", 1));
        b.complete_txn_offsets("g", 7, true).expect("complete");
        assert_eq!(committed(&b, 0), Some(5));
        assert!(!b.has_pending_txn_offsets("g", "t", 0));
        // Idempotent: ending again writes nothing and changes nothing.
        let writes = b.offset_store().io_counts().writes;
        b.complete_txn_offsets("g", 7, false).expect("again");
        assert_eq!(b.offset_store().io_counts().writes, writes);
        assert_eq!(committed(&b, 0), Some(5));
        b.txn_commit_offsets("g", 7, 0, &[entry(0, 9)])
            .expect("txn commit");
        b.complete_txn_offsets("g", 7, false).expect("abort");
        assert_eq!(committed(&b, 0), Some(5));
        assert!(!b.has_pending_txn_offsets("g", "t", 0));
    }

    #[test]
    fn a_member_fence_follows_kafkas_transactional_rules() {
        use crate::broker::CommitFence;
        use crate::broker::group::{JoinRequest, Protocol, Reply};
        let dir = tempfile::tempdir().expect("tmp");
        let b = broker(dir.path());
        // A lone member joined (generation 1) and has not synced: CompletingRebalance.
        let Reply::Done(joined) = b.groups().join(JoinRequest {
            group_id: "g".into(),
            member_id: String::new(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 30_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![Protocol {
                name: "range".into(),
                metadata: bytes::Bytes::from_static(b"m"),
            }],
            require_known_member_id: false,
        }) else {
            panic!("a lone member's join is answered at once")
        };
        let fence = |member_id, generation| TxnCommitFence {
            group_id: "g",
            producer_id: 7,
            producer_epoch: 0,
            member_id,
            instance_id: None,
            generation,
        };
        let member = joined.member_id.as_str();
        // The same member and generation: a plain commit waits for the sync, a
        // transactional one is accepted (Kafka does not enforce the state for it).
        let plain = b.commit_offsets(
            CommitFence {
                group_id: "g",
                member_id: member,
                instance_id: None,
                generation: 1,
            },
            &[entry(0, 1)],
        );
        assert!(
            matches!(plain, Err(GroupError::RebalanceInProgress)),
            "{plain:?}"
        );
        let ok = b.txn_commit_offsets_fenced(fence(member, 1), &[entry(0, 2)]);
        assert!(ok.is_ok_and(|o| o.partitions.iter().all(Result::is_ok)));
        // A stale generation or an unknown member is refused, writing nothing.
        let stale = b.txn_commit_offsets_fenced(fence(member, 0), &[entry(1, 3)]);
        assert!(
            matches!(stale, Err(GroupError::IllegalGeneration)),
            "{stale:?}"
        );
        let unknown = b.txn_commit_offsets_fenced(fence("nobody", 1), &[entry(1, 3)]);
        assert!(
            matches!(unknown, Err(GroupError::UnknownMemberId)),
            "{unknown:?}"
        );
        // Without member and generation (TxnOffsetCommit v0-2) it is accepted although the
        // group has a member.
        b.txn_commit_offsets("g", 7, 0, &[entry(1, 4)])
            .expect("simple txn commit");
        b.complete_txn_offsets("g", 7, true).expect("complete");
        assert_eq!((committed(&b, 0), committed(&b, 1)), (Some(2), Some(4)));
    }

    #[test]
    fn a_lower_producer_epoch_is_fenced_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let b = broker(dir.path());
        b.txn_commit_offsets("g", 7, 3, &[entry(0, 5)])
            .expect("txn commit");
        let writes = b.offset_store().io_counts().writes;
        let zombie = b.txn_commit_offsets("g", 7, 2, &[entry(0, 6)]);
        assert!(
            matches!(zombie, Err(Error::InvalidProducerEpoch(_))),
            "{zombie:?}"
        );
        assert_eq!(b.offset_store().io_counts().writes, writes);
        b.complete_txn_offsets("g", 7, true).expect("complete");
        assert_eq!(committed(&b, 0), Some(5));
    }

    #[test]
    fn pending_and_ended_offsets_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let b = broker(dir.path());
            b.txn_commit_offsets("g", 1, 0, &[entry(0, 5)]).expect("a");
            b.txn_commit_offsets("g", 2, 0, &[entry(1, 8)]).expect("b");
            b.complete_txn_offsets("g", 2, true).expect("end b");
        }
        let b = Broker::new(BrokerConfig::with_data_dir(dir.path())).expect("reopen");
        assert_eq!((committed(&b, 0), committed(&b, 1)), (None, Some(8)));
        assert!(b.has_pending_txn_offsets("g", "t", 0));
        b.complete_txn_offsets("g", 1, true).expect("end a");
        assert_eq!(committed(&b, 0), Some(5));
    }

    #[test]
    fn deleting_the_group_drops_its_pending_offsets() {
        let dir = tempfile::tempdir().expect("tmp");
        let b = broker(dir.path());
        b.commit_offset("g", "t", 1, 3, None).expect("plain");
        b.txn_commit_offsets("g", 1, 0, &[entry(0, 5)])
            .expect("txn");
        b.groups()
            .delete_group("g", b.offset_store())
            .expect("delete");
        assert!(!b.has_pending_txn_offsets("g", "t", 0));
        b.complete_txn_offsets("g", 1, true).expect("end");
        assert_eq!((committed(&b, 0), committed(&b, 1)), (None, None));
        // A group with pending offsets is not expired (retention -1: anything else is due).
        b.commit_offset("k", "t", 0, 1, None).expect("plain");
        b.commit_offset("h", "t", 1, 1, None).expect("plain");
        b.txn_commit_offsets("h", 2, 0, &[entry(0, 5)])
            .expect("txn");
        let expired = b.groups().expire_offsets(b.offset_store(), -1);
        assert_eq!(expired, vec!["k".to_string()]);
        // DeleteGroups drops them; a group with nothing but pending offsets exists for it.
        b.txn_commit_offsets("j", 3, 0, &[entry(0, 5)])
            .expect("txn");
        b.groups()
            .delete_group("j", b.offset_store())
            .expect("delete");
        assert!(!b.has_pending_txn_offsets("j", "t", 0));
        b.groups()
            .delete_group("h", b.offset_store())
            .expect("delete");
        assert!(!b.has_pending_txn_offsets("h", "t", 0));
        let gone = b.groups().delete_group("h", b.offset_store());
        assert_eq!(gone, Err(GroupError::GroupIdNotFound));
    }
}
