//! Committed offsets on the `Broker`: OffsetCommit (fenced, written and made durable),
//! OffsetFetch, and the store itself for the group handlers.
//!
//! Invariants:
//! - a commit's fence check (generation, member) and its write are one step under the group
//!   coordinator's lock (`GroupService::commit_fenced`), so a member fenced by a rebalance
//!   can never land a commit; the lock order is coordinator → offset store (`offset_store`);
//! - one commit call is one write of every accepted partition's record; no caller fsyncs it:
//!   the flusher does (`Flusher::mark_offsets`), and the caller waits for `WaitKey::Offsets`
//!   (a wire OffsetCommit parks, an embedded commit blocks its own thread);
//! - a partition is refused before anything is written if its topic or partition does not
//!   exist or its metadata is over `OFFSET_METADATA_BYTES_MAX` (OFFSET_METADATA_TOO_LARGE, as
//!   Kafka's `offset.metadata.max.bytes`); a group id over `GROUP_ID_BYTES_MAX` refuses the
//!   whole commit. So every record written fits `METADATA_RECORD_BYTES_MAX` (`limits`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Broker;
use super::offset_store::{CommittedOffset, OffsetStore, WriteSeq};
use super::wait::WaitKey;
use crate::broker::group::GroupError;
use crate::error::{Error, Result};
use crate::limits::{GROUP_ID_BYTES_MAX, OFFSET_COMMIT_TIMEOUT_MS, OFFSET_METADATA_BYTES_MAX};
use crate::storage::now_ms;

/// Offsets a commit's checks accepted: (topic, partition, offset), as the store takes them.
pub(crate) type Accepted = Vec<(String, i32, CommittedOffset)>;

/// Who commits: what an OffsetCommit is fenced by.
#[derive(Debug, Clone, Copy)]
pub struct CommitFence<'a> {
    pub group_id: &'a str,
    /// Empty for a simple commit.
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    /// -1 for a simple commit (accepted only while the group has no members).
    pub generation: i32,
}

impl<'a> CommitFence<'a> {
    /// A simple commit (no membership: `assign()` consumers, admin tools).
    pub fn simple(group_id: &'a str) -> CommitFence<'a> {
        CommitFence {
            group_id,
            member_id: "",
            instance_id: None,
            generation: -1,
        }
    }
}

/// One partition's offset to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The leader epoch the client saw at `offset` (-1: none), returned by OffsetFetch.
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// What a commit did, partition by partition (in the order given).
#[derive(Debug)]
pub struct CommitOutcome {
    /// Refused partitions carry their error; accepted ones are `Ok` (written, but durable only
    /// once `pending` is).
    pub partitions: Vec<Result<()>>,
    /// The write to wait for (`Broker::offsets_durable`), if the accepted partitions are not
    /// durable yet; `None` if nothing was written or under fsync `never`.
    pub pending: Option<WriteSeq>,
}

impl Broker {
    /// Checks and writes an OffsetCommit (see the module invariants); does not wait for
    /// durability. `Err` if the fence refuses the whole commit.
    pub fn commit_offsets(
        &self,
        fence: CommitFence<'_>,
        entries: &[OffsetCommitEntry],
    ) -> Result<CommitOutcome, GroupError> {
        if fence.group_id.len() > GROUP_ID_BYTES_MAX {
            return Err(GroupError::InvalidGroupId);
        }
        let (partitions, accepted) = self.check_entries(entries);
        let store = &self.inner.offsets;
        let written = self.inner.groups.commit_fenced(
            fence.group_id,
            fence.member_id,
            fence.instance_id,
            fence.generation,
            || {
                if accepted.is_empty() {
                    Ok(None)
                } else {
                    store.commit(fence.group_id, accepted)
                }
            },
        )?;
        Ok(self.written(fence.group_id, partitions, written))
    }

    /// Per partition: refused (unknown partition, metadata too large) or accepted, with the
    /// accepted ones as the store takes them.
    pub(crate) fn check_entries(
        &self,
        entries: &[OffsetCommitEntry],
    ) -> (Vec<Result<()>>, Accepted) {
        let now = now_ms();
        let mut partitions = Vec::with_capacity(entries.len());
        let mut accepted = Vec::with_capacity(entries.len());
        for e in entries {
            let checked = match &e.metadata {
                Some(m) if m.len() > OFFSET_METADATA_BYTES_MAX => {
                    Err(Error::OffsetMetadataTooLarge(m.len()))
                }
                _ => self.partition(&e.topic, e.partition).map(|_| ()),
            };
            if checked.is_ok() {
                accepted.push((
                    e.topic.clone(),
                    e.partition,
                    CommittedOffset {
                        offset: e.offset,
                        leader_epoch: e.leader_epoch,
                        metadata: e.metadata.clone(),
                        commit_timestamp_ms: now,
                    },
                ));
            }
            partitions.push(checked);
        }
        (partitions, accepted)
    }

    /// The outcome of a store write of the accepted partitions: a failed write fails each of
    /// them (an epoch refusal as itself, anything else as a storage error); a pending one
    /// marks the flusher.
    pub(crate) fn written(
        &self,
        group: &str,
        mut partitions: Vec<Result<()>>,
        written: Result<Option<WriteSeq>>,
    ) -> CommitOutcome {
        let pending = match written {
            Ok(pending) => pending,
            Err(e) => {
                let each = |e: &Error| match e {
                    Error::InvalidProducerEpoch(m) => Error::InvalidProducerEpoch(m.clone()),
                    e => Error::Metadata(e.to_string()),
                };
                if !matches!(e, Error::InvalidProducerEpoch(_)) {
                    log::error!("offset commit of group {group}: {e}");
                }
                for p in partitions.iter_mut().filter(|p| p.is_ok()) {
                    *p = Err(each(&e));
                }
                None
            }
        };
        if pending.is_some() {
            self.inner.flusher.mark_offsets();
        }
        CommitOutcome {
            partitions,
            pending,
        }
    }

    /// True once the commit write `seq` is durable (and visible to OffsetFetch); an error if
    /// the fsync meant to cover it failed.
    pub fn offsets_durable(&self, seq: WriteSeq) -> Result<bool> {
        self.inner.offsets.is_durable(seq)
    }

    /// `commit_offsets`, then blocks the calling thread (embedded API only) until the commit
    /// is durable: `Ok(Err(_))` carries the first refused partition's error, or the wait's.
    pub fn commit_offsets_and_wait(
        &self,
        fence: CommitFence<'_>,
        entries: &[OffsetCommitEntry],
    ) -> Result<Result<()>, GroupError> {
        // Read before the write: an fsync published after it ends the wait at once.
        let seen = self.inner.waits.epochs(&[WaitKey::Offsets]);
        let outcome = self.commit_offsets(fence, entries)?;
        Ok(self.wait_outcome(outcome, seen))
    }

    /// Blocks (embedded API only) until `outcome`'s write is durable: the first refused
    /// partition's error, or the wait's. `seen`: the `WaitKey::Offsets` epochs read before
    /// the write.
    pub(crate) fn wait_outcome(&self, outcome: CommitOutcome, seen: Vec<u64>) -> Result<()> {
        let refused = outcome.partitions.into_iter().find_map(Result::err);
        if let Some(seq) = outcome.pending {
            self.wait_offsets_durable(seq, seen)?;
        }
        refused.map_or(Ok(()), Err)
    }

    /// Blocks until the offsets write `seq` is durable (at most `OFFSET_COMMIT_TIMEOUT_MS`).
    pub(crate) fn wait_offsets_durable(&self, seq: WriteSeq, mut seen: Vec<u64>) -> Result<()> {
        let keys = [WaitKey::Offsets];
        let timeout = Duration::from_millis(OFFSET_COMMIT_TIMEOUT_MS);
        let deadline = Instant::now() + timeout;
        loop {
            if self.offsets_durable(seq)? {
                return Ok(());
            }
            if self.inner.stop.load(Ordering::Acquire) {
                return Err(Error::ShuttingDown);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(OFFSET_COMMIT_TIMEOUT_MS));
            }
            self.inner.waits.wait(keys.to_vec(), &seen, deadline);
            seen = self.inner.waits.epochs(&keys);
        }
    }

    /// A simple commit of one partition (no group membership: refused while the group has
    /// members), blocking until durable.
    pub fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
        offset: i64,
        metadata: Option<String>,
    ) -> Result<()> {
        let entry = OffsetCommitEntry {
            topic: topic.to_string(),
            partition,
            offset,
            leader_epoch: -1,
            metadata,
        };
        self.commit_offsets_and_wait(CommitFence::simple(group), &[entry])
            .map_err(|e| fence_error(group, e))?
    }

    pub fn committed_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Option<CommittedOffset> {
        self.inner.offsets.fetch(group, topic, partition)
    }

    pub fn group_offsets(&self, group: &str) -> Vec<((String, i32), CommittedOffset)> {
        self.inner.offsets.group_offsets(group)
    }

    pub(crate) fn offset_store(&self) -> &OffsetStore {
        &self.inner.offsets
    }
}

/// The library error of a commit the group fence refused.
pub(crate) fn fence_error(group: &str, e: GroupError) -> Error {
    match e {
        GroupError::InvalidGroupId => Error::InvalidGroupId(group.to_string()),
        e => Error::NotAssigned(format!(
            "commit to group {group} refused ({e}): the group rebalanced and the partitions \
             may belong to another member now"
        )),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::broker::group::{JoinRequest, Protocol, Reply, SyncRequest};
    use crate::config::{BrokerConfig, TopicConfig};

    fn broker(dir: &std::path::Path) -> Broker {
        let b = Broker::new(BrokerConfig::with_data_dir(dir)).expect("broker");
        b.create_topic("t", Some(TopicConfig::with_partitions(8)))
            .expect("topic");
        b
    }

    fn join(b: &Broker, member_id: &str) -> Reply<crate::broker::group::JoinResponse> {
        b.groups().join(JoinRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 30_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![Protocol {
                name: "range".into(),
                metadata: Bytes::from_static(b"m"),
            }],
            require_known_member_id: false,
        })
    }

    /// A lone member, Stable at generation 1.
    fn lone_member(b: &Broker) -> String {
        let Reply::Done(r) = join(b, "") else {
            panic!("a lone member's join is answered at once")
        };
        assert_eq!((r.error, r.generation_id), (None, 1));
        let sync = b.groups().sync(SyncRequest {
            group_id: "g".into(),
            member_id: r.member_id.clone(),
            group_instance_id: None,
            generation_id: 1,
            protocol_type: None,
            protocol_name: None,
            assignments: vec![(r.member_id.clone(), Bytes::new())],
        });
        assert!(matches!(sync, Reply::Done(s) if s.error.is_none()));
        r.member_id
    }

    fn entry(partition: i32, offset: i64, metadata: Option<String>) -> OffsetCommitEntry {
        OffsetCommitEntry {
            topic: "t".into(),
            partition,
            offset,
            leader_epoch: -1,
            metadata,
        }
    }

    fn member<'a>(id: &'a str, generation: i32) -> CommitFence<'a> {
        CommitFence {
            group_id: "g",
            member_id: id,
            instance_id: None,
            generation,
        }
    }

    fn committed(b: &Broker, partition: i32) -> Option<i64> {
        b.committed_offset("g", "t", partition).map(|c| c.offset)
    }

    #[test]
    fn a_commit_from_a_fenced_generation_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let b = broker(dir.path());
        let a = lone_member(&b);
        let ok = b.commit_offsets_and_wait(member(&a, 1), &[entry(0, 5, None)]);
        assert!(matches!(ok, Ok(Ok(()))), "{ok:?}");
        // B joins and A rejoins: generation 2. A commit still carrying generation 1 (sent
        // before A saw the rebalance) must not land.
        assert!(matches!(join(&b, ""), Reply::Wait(_)));
        assert!(matches!(join(&b, &a), Reply::Done(r) if r.generation_id == 2));
        let writes = b.offset_store().io_counts().writes;
        let fenced = b.commit_offsets(member(&a, 1), &[entry(0, 9, None)]);
        assert!(
            matches!(fenced, Err(GroupError::IllegalGeneration)),
            "{fenced:?}"
        );
        assert_eq!(b.offset_store().io_counts().writes, writes);
        assert_eq!(committed(&b, 0), Some(5));
        // A simple commit is refused while the group has members.
        let simple = b.commit_offset("g", "t", 0, 11, None);
        assert!(matches!(simple, Err(Error::NotAssigned(_))), "{simple:?}");
        assert_eq!(committed(&b, 0), Some(5));
    }

    #[test]
    fn the_fence_check_and_the_write_are_one_step_under_the_group_lock() {
        let dir = tempfile::tempdir().expect("tmp");
        let b = broker(dir.path());
        let a = lone_member(&b);
        // The write runs while the coordinator lock is held, so no join, leave or session
        // expiry (all of which take that lock) can fence the member between check and write.
        let held = b
            .groups()
            .commit_fenced("g", &a, None, 1, || b.groups().is_locked());
        assert_eq!(held, Ok(true));
        let refused = b
            .groups()
            .commit_fenced("g", &a, None, 0, || panic!("must not write"));
        assert_eq!(refused, Err(GroupError::IllegalGeneration));
    }

    #[test]
    fn one_commit_of_many_partitions_is_one_write_and_one_flusher_fsync() {
        let dir = tempfile::tempdir().expect("tmp");
        let b = broker(dir.path());
        let entries: Vec<_> = (0..8).map(|p| entry(p, i64::from(p) * 10, None)).collect();
        let done = b.commit_offsets_and_wait(CommitFence::simple("g"), &entries);
        assert!(matches!(done, Ok(Ok(()))), "{done:?}");
        let counts = b.offset_store().io_counts();
        assert_eq!((counts.writes, counts.syncs), (1, 1));
        assert_eq!(committed(&b, 7), Some(70));
    }

    #[test]
    fn metadata_over_the_limit_is_refused_per_partition_and_not_written() {
        let dir = tempfile::tempdir().expect("tmp");
        let b = broker(dir.path());
        let big = "m".repeat(OFFSET_METADATA_BYTES_MAX + 1);
        let at_limit = "m".repeat(OFFSET_METADATA_BYTES_MAX);
        let outcome = b
            .commit_offsets(
                CommitFence::simple("g"),
                &[entry(0, 1, Some(big)), entry(1, 2, Some(at_limit.clone()))],
            )
            .expect("not fenced");
        assert!(matches!(
            outcome.partitions[0],
            Err(Error::OffsetMetadataTooLarge(n)) if n == OFFSET_METADATA_BYTES_MAX + 1
        ));
        assert!(outcome.partitions[1].is_ok());
        let seq = outcome.pending.expect("partition 1 was written");
        let key = [WaitKey::Offsets];
        let deadline = Instant::now() + Duration::from_secs(10);
        while !b.offsets_durable(seq).expect("durable?") && Instant::now() < deadline {
            let seen = b.waits().epochs(&key);
            if b.offsets_durable(seq).expect("durable?") {
                break;
            }
            b.waits().wait(key.to_vec(), &seen, deadline);
        }
        assert_eq!(committed(&b, 0), None);
        assert_eq!(
            b.committed_offset("g", "t", 1).and_then(|c| c.metadata),
            Some(at_limit)
        );
        drop(b);
        let b = Broker::new(BrokerConfig::with_data_dir(dir.path())).expect("reopen");
        assert_eq!(committed(&b, 1), Some(2));
        assert_eq!(committed(&b, 0), None);
    }

    #[test]
    fn a_group_id_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let b = broker(dir.path());
        let long = "g".repeat(GROUP_ID_BYTES_MAX + 1);
        let r = b.commit_offset(&long, "t", 0, 1, None);
        assert!(matches!(r, Err(Error::InvalidGroupId(_))), "{r:?}");
        assert!(b.offset_store().groups().is_empty());
    }

    #[test]
    fn under_fsync_never_a_commit_is_visible_at_once_without_an_fsync() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut config = BrokerConfig::with_data_dir(dir.path());
        config.fsync = crate::config::FsyncPolicy::Never;
        let b = Broker::new(config).expect("broker");
        b.create_topic("t", None).expect("topic");
        let outcome = b
            .commit_offsets(CommitFence::simple("g"), &[entry(0, 3, None)])
            .expect("not fenced");
        assert!(outcome.pending.is_none());
        assert_eq!(committed(&b, 0), Some(3));
        assert_eq!(b.offset_store().io_counts().syncs, 0);
    }
}
