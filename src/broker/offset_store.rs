//! Committed consumer-group offsets, persisted in `<data_dir>/__consumer_offsets.meta`.
//!
//! Invariants:
//! - the in-memory map equals the replay of the file's records up to the last fsync (under
//!   fsync `never`: of every record written); a commit is visible to readers (OffsetFetch,
//!   `fetch`) only once durable, like a produced record below the high watermark;
//! - one `commit` (one OffsetCommit request, any number of partitions) is one write of all its
//!   records; callers never fsync it. Under `always` / `interval` the commit stays pending
//!   until the broker's flusher calls `sync`, which fsyncs a second handle on the file outside
//!   the store lock, applies every commit written before that fsync, in write order, and fires
//!   `WaitKey::Offsets`. Callers wait for `is_durable(seq)` (a parked OffsetCommit, a blocking
//!   embedded commit). Under `never` a commit is applied at once and nothing waits;
//! - a failed fsync poisons the store: the commits it should have covered are never applied
//!   (their waiters get an error) and later commits and deletes are refused until a restart
//!   (the unsynced records may or may not be in the file then: a commit reported as failed can
//!   reappear, as in Kafka);
//! - deletes (DeleteGroups, OffsetDelete, topic deletion, expiry) are rare and are still
//!   written and fsynced by their caller, under the store lock; that fsync also covers every
//!   pending commit before them, which are applied first so the map keeps write order;
//! - the file is compacted at startup to one record per live offset (committed, or pending in
//!   a transaction; `offset_state`). Its records are `metadata::offset_record::OffsetRecord`
//!   (private, versioned; byte layout in `broker::metadata`), not this module's public
//!   `CommittedOffset`;
//! - transactional offsets (`txn_commit`, TxnOffsetCommit) are written and made durable like
//!   commits, and stay pending, invisible to `fetch`, until `end_txn`'s record is durable
//!   (`offset_state` has the rules). A transactional commit whose producer epoch is below the
//!   epoch of that producer's pending offsets for the group is refused (a zombie).
//!
//! Lock order: the group coordinator's lock (`GroupService`) may be held while this store's
//! lock is taken (a fenced commit, DeleteGroups, expiry), never the other way round; the wait
//! set is told only after this lock is released.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::metadata::offset_record::OffsetRecord;
use super::metadata::record_log::RecordLog;
use super::offset_state::OffsetState;
use super::wait::{WaitKey, Waits};
use crate::error::Error;

pub use crate::types::CommittedOffset;

/// Identifies one write to the offsets file: every write numbered up to `synced_seq` is
/// durable.
pub type WriteSeq = u64;

struct Inner {
    state: OffsetState,
    file: RecordLog<OffsetRecord>,
    /// Number of the last write (a commit batch or a delete).
    written_seq: WriteSeq,
    /// Every write numbered up to this one is fsynced.
    synced_seq: WriteSeq,
    /// Commits written but not yet fsynced, in write order; applied once synced.
    pending: VecDeque<(WriteSeq, Vec<OffsetRecord>)>,
    /// Why the store refuses writes (a failed fsync), if it does.
    poisoned: Option<String>,
    #[cfg(test)]
    counts: IoCounts,
}

/// Writes and fsyncs of the offsets file (tests count them).
#[cfg(test)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct IoCounts {
    pub writes: u64,
    pub syncs: u64,
}

pub struct OffsetStore {
    inner: Mutex<Inner>,
    /// False under fsync `never`: commits are applied when written and nothing is fsynced.
    durable: bool,
    waits: Arc<Waits>,
    /// Test-only fault injection: `sync`'s fsync fails while set.
    #[cfg(test)]
    pub(crate) fail_syncs: std::sync::atomic::AtomicBool,
}

impl OffsetStore {
    /// Opens the store; with `durable` (fsync `always` or `interval`) commits wait for `sync`.
    pub fn open(path: &Path, durable: bool) -> Result<OffsetStore, Error> {
        OffsetStore::open_with(path, durable, Arc::default())
    }

    /// `open`, firing `WaitKey::Offsets` on the broker's wait set.
    pub(crate) fn open_with(
        path: &Path,
        durable: bool,
        waits: Arc<Waits>,
    ) -> Result<OffsetStore, Error> {
        let (mut file, records) = RecordLog::<OffsetRecord>::open(path)?;
        let mut state = OffsetState::default();
        let replayed = records.len();
        for r in records {
            state.apply(r);
        }
        let live = state.live_records();
        if live.len() != replayed {
            file.rewrite(&live)?;
        }
        Ok(OffsetStore {
            inner: Mutex::new(Inner {
                state,
                file,
                written_seq: 0,
                synced_seq: 0,
                pending: VecDeque::new(),
                poisoned: None,
                #[cfg(test)]
                counts: IoCounts::default(),
            }),
            durable,
            waits,
            #[cfg(test)]
            fail_syncs: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, Error> {
        self.inner
            .lock()
            .map_err(|_| Error::Metadata("offset store lock poisoned".into()))
    }

    fn refuse_if_poisoned(inner: &Inner) -> Result<(), Error> {
        match &inner.poisoned {
            Some(why) => Err(Error::Metadata(format!(
                "committed offsets are read-only until a restart: {why}"
            ))),
            None => Ok(()),
        }
    }

    /// Writes the commits of one request as one write. `Ok(None)`: applied already (fsync
    /// `never`); `Ok(Some(seq))`: applied once `is_durable(seq)`, after the flusher's next
    /// `sync` (the caller marks the flusher). Nothing is written if any record is refused.
    pub fn commit(
        &self,
        group: &str,
        commits: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<Option<WriteSeq>, Error> {
        let records: Vec<OffsetRecord> = commits
            .into_iter()
            .map(|(topic, partition, value)| OffsetRecord::Commit {
                group: group.to_string(),
                topic,
                partition,
                value,
            })
            .collect();
        let mut inner = self.lock()?;
        Self::refuse_if_poisoned(&inner)?;
        self.write(&mut inner, records)
    }

    /// A TxnOffsetCommit's offsets, pending in `producer_id`'s transaction until `end_txn`;
    /// written and made durable as `commit` is. `InvalidProducerEpoch` (nothing written) if the
    /// producer has pending offsets for the group with a higher epoch.
    pub fn txn_commit(
        &self,
        group: &str,
        producer_id: i64,
        producer_epoch: i16,
        commits: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<Option<WriteSeq>, Error> {
        let mut inner = self.lock()?;
        Self::refuse_if_poisoned(&inner)?;
        let queued = inner
            .pending
            .iter()
            .flat_map(|(_, recs)| recs)
            .filter_map(|r| match r {
                OffsetRecord::TxnCommit {
                    group: g,
                    producer_id: p,
                    producer_epoch: e,
                    ..
                } if g == group && *p == producer_id => Some(*e),
                _ => None,
            });
        let highest = queued
            .chain(inner.state.txn_epoch(group, producer_id))
            .max();
        if let Some(e) = highest.filter(|&e| e > producer_epoch) {
            return Err(Error::InvalidProducerEpoch(format!(
                "producer {producer_id} has transactional offsets for group {group} at epoch \
                 {e}; epoch {producer_epoch} is fenced"
            )));
        }
        let records = commits
            .into_iter()
            .map(|(topic, partition, value)| OffsetRecord::TxnCommit {
                group: group.to_string(),
                topic,
                partition,
                producer_id,
                producer_epoch,
                value,
            })
            .collect();
        self.write(&mut inner, records)
    }

    /// Ends `producer_id`'s transaction for `group`: its pending offsets become committed
    /// (`commit`) or are dropped once the end record is durable. Idempotent: with nothing
    /// pending nothing is written (`Ok(None)`); an end already written and not yet durable is
    /// waited for rather than written again. `Ok(Some(seq))`: done once `is_durable(seq)`
    /// (the caller marks the flusher).
    pub fn end_txn(
        &self,
        group: &str,
        producer_id: i64,
        commit: bool,
    ) -> Result<Option<WriteSeq>, Error> {
        let mut inner = self.lock()?;
        Self::refuse_if_poisoned(&inner)?;
        // The newest queued record of this transaction decides.
        let queued = inner.pending.iter().rev().find_map(|(seq, recs)| {
            recs.iter().rev().find_map(|r| match r {
                OffsetRecord::TxnCommit {
                    group: g,
                    producer_id: p,
                    ..
                } if g == group && *p == producer_id => Some((*seq, false)),
                OffsetRecord::TxnEnd {
                    group: g,
                    producer_id: p,
                    ..
                } if g == group && *p == producer_id => Some((*seq, true)),
                _ => None,
            })
        });
        match queued {
            Some((seq, true)) => return Ok(Some(seq)),
            None if inner.state.txn_epoch(group, producer_id).is_none() => return Ok(None),
            _ => {}
        }
        let end = OffsetRecord::TxnEnd {
            group: group.to_string(),
            producer_id,
            commit,
        };
        self.write(&mut inner, vec![end])
    }

    /// True if a transaction holds an offset of this partition for `group` not yet ended
    /// (OffsetFetch's `require_stable`), counting writes not yet durable.
    pub fn has_pending_txn(&self, group: &str, topic: &str, partition: i32) -> bool {
        let Ok(inner) = self.lock() else {
            return true;
        };
        inner.state.has_pending(group, topic, partition)
            || inner.pending.iter().flat_map(|(_, recs)| recs).any(|r| {
                matches!(r, OffsetRecord::TxnCommit { group: g, topic: t, partition: p, .. }
                    if g == group && t == topic && *p == partition)
            })
    }

    /// True if a transaction holds offsets of `group` not yet ended (Kafka neither expires
    /// such a group's offsets nor forgets the group), counting writes not yet durable.
    pub fn has_open_txn(&self, group: &str) -> bool {
        let Ok(inner) = self.lock() else {
            return true;
        };
        inner.state.has_open_txn(group)
            || inner
                .pending
                .iter()
                .flat_map(|(_, recs)| recs)
                .any(|r| matches!(r, OffsetRecord::TxnCommit { group: g, .. } if g == group))
    }

    /// Writes `records` as one write (the lock held, not poisoned); see `commit`.
    fn write(
        &self,
        inner: &mut Inner,
        records: Vec<OffsetRecord>,
    ) -> Result<Option<WriteSeq>, Error> {
        inner.file.append_all(&records)?;
        inner.written_seq += 1;
        #[cfg(test)]
        {
            inner.counts.writes += 1;
        }
        if !self.durable {
            // Nothing waits for an fsync under `never`: the write counts as done.
            inner.synced_seq = inner.written_seq;
            for r in records {
                inner.state.apply(r);
            }
            return Ok(None);
        }
        let seq = inner.written_seq;
        inner.pending.push_back((seq, records));
        Ok(Some(seq))
    }

    /// True once the write `seq` is durable (and applied); an error if the fsync meant to
    /// cover it failed.
    pub fn is_durable(&self, seq: WriteSeq) -> Result<bool, Error> {
        let inner = self.lock()?;
        if inner.synced_seq >= seq {
            return Ok(true);
        }
        Self::refuse_if_poisoned(&inner)?;
        Ok(false)
    }

    /// True if a write is waiting for `sync`.
    pub fn needs_sync(&self) -> bool {
        self.lock()
            .is_ok_and(|i| i.synced_seq < i.written_seq && i.poisoned.is_none())
    }

    /// The flusher's step: fsyncs what was written so far, outside the store lock, then
    /// applies the commits it covered and fires `WaitKey::Offsets`.
    pub fn sync(&self) {
        let (seq, file) = {
            let Ok(inner) = self.lock() else { return };
            if inner.synced_seq >= inner.written_seq || inner.poisoned.is_some() {
                return;
            }
            (inner.written_seq, inner.file.sync_handle())
        };
        let result = file.and_then(|f| {
            #[cfg(test)]
            if self.fail_syncs.load(std::sync::atomic::Ordering::Acquire) {
                return Err(Error::Metadata("injected fsync failure".into()));
            }
            f.sync_data()
                .map_err(|e| Error::Metadata(format!("fsync of the offsets file: {e}")))
        });
        {
            let Ok(mut inner) = self.lock() else { return };
            match result {
                Ok(()) => {
                    #[cfg(test)]
                    {
                        inner.counts.syncs += 1;
                    }
                    Self::synced_to(&mut inner, seq);
                }
                Err(e) => {
                    log::error!("{e}; committed offsets are read-only until a restart");
                    inner.poisoned = Some(e.to_string());
                    inner.pending.clear();
                }
            }
        }
        self.waits.event(&WaitKey::Offsets);
    }

    /// Every write up to `seq` is durable: applies the pending commits it covers.
    fn synced_to(inner: &mut Inner, seq: WriteSeq) {
        inner.synced_seq = inner.synced_seq.max(seq);
        while inner.pending.front().is_some_and(|(s, _)| *s <= seq) {
            if let Some((_, records)) = inner.pending.pop_front() {
                for r in records {
                    inner.state.apply(r);
                }
            }
        }
    }

    /// Appends a delete, fsynced here (under `always` / `interval`) before it is applied.
    fn delete(&self, rec: OffsetRecord) -> Result<(), Error> {
        let covered_pending = {
            let mut inner = self.lock()?;
            Self::refuse_if_poisoned(&inner)?;
            inner.file.append(&rec, self.durable)?;
            inner.written_seq += 1;
            let seq = inner.written_seq;
            let had_pending = !inner.pending.is_empty();
            // Fsynced above (`durable`), or nothing waits for an fsync (`never`).
            Self::synced_to(&mut inner, seq);
            inner.state.apply(rec);
            had_pending
        };
        if covered_pending {
            self.waits.event(&WaitKey::Offsets);
        }
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn io_counts(&self) -> IoCounts {
        self.lock().map(|i| i.counts).unwrap_or_default()
    }

    pub fn fetch(&self, group: &str, topic: &str, partition: i32) -> Option<CommittedOffset> {
        self.lock().ok()?.state.committed(group, topic, partition)
    }

    /// All committed offsets of a group.
    pub fn group_offsets(&self, group: &str) -> Vec<((String, i32), CommittedOffset)> {
        self.lock()
            .map(|inner| inner.state.group_offsets(group))
            .unwrap_or_default()
    }

    pub fn groups(&self) -> Vec<String> {
        self.lock().map(|i| i.state.groups()).unwrap_or_default()
    }

    pub fn delete_group(&self, group: &str) -> Result<(), Error> {
        self.delete(OffsetRecord::DeleteGroup {
            group: group.to_string(),
        })
    }

    pub fn delete_offset(&self, group: &str, topic: &str, partition: i32) -> Result<(), Error> {
        self.delete(OffsetRecord::DeleteOffset {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
        })
    }

    /// Drops every offset of `topic` (after the topic is deleted), pending commits and
    /// transactional offsets included.
    pub fn delete_topic(&self, topic: &str) -> Result<(), Error> {
        let doomed: std::collections::BTreeSet<(String, i32)> = {
            let inner = self.lock()?;
            let live = inner.state.topic_offsets(topic);
            let pending = inner
                .pending
                .iter()
                .flat_map(|(_, recs)| recs)
                .filter_map(|r| match r {
                    OffsetRecord::Commit {
                        group,
                        topic: t,
                        partition,
                        ..
                    }
                    | OffsetRecord::TxnCommit {
                        group,
                        topic: t,
                        partition,
                        ..
                    } if t == topic => Some((group.clone(), *partition)),
                    _ => None,
                });
            live.into_iter().chain(pending).collect()
        };
        for (g, p) in doomed {
            self.delete_offset(&g, topic, p)?;
        }
        Ok(())
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

    /// Commits one partition and makes it durable (the flusher's part done here).
    fn commit_one(s: &OffsetStore, g: &str, t: &str, p: i32, o: i64) {
        s.commit(g, vec![(t.to_string(), p, off(o))])
            .expect("commit");
        s.sync();
    }

    #[test]
    fn commits_survive_reopen_and_compaction() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("o.meta");
        {
            let s = OffsetStore::open(&path, true).expect("open");
            for i in 0..10 {
                commit_one(&s, "g", "t", 0, i);
            }
            commit_one(&s, "g", "t", 1, 5);
            commit_one(&s, "h", "t", 0, 1);
            s.delete_group("h").expect("delete");
        }
        let s = OffsetStore::open(&path, true).expect("reopen");
        assert_eq!(s.fetch("g", "t", 0).map(|c| c.offset), Some(9));
        assert_eq!(s.fetch("g", "t", 1).map(|c| c.offset), Some(5));
        assert_eq!(s.fetch("h", "t", 0), None);
        assert_eq!(s.groups(), vec!["g".to_string()]);
    }

    #[test]
    fn one_commit_of_many_partitions_is_one_write_and_one_fsync() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("o.meta");
        let s = OffsetStore::open(&path, true).expect("open");
        let commits = (0..50).map(|p| ("t".to_string(), p, off(i64::from(p) + 7)));
        let seq = s
            .commit("g", commits.collect())
            .expect("commit")
            .expect("pending");
        assert_eq!(
            s.io_counts(),
            IoCounts {
                writes: 1,
                syncs: 0
            }
        );
        // Written, not yet durable: not visible to readers, and the waiter must wait.
        assert!(!s.is_durable(seq).expect("durable?"));
        assert_eq!(s.fetch("g", "t", 3), None);
        assert!(s.needs_sync());
        s.sync();
        assert_eq!(
            s.io_counts(),
            IoCounts {
                writes: 1,
                syncs: 1
            }
        );
        assert!(s.is_durable(seq).expect("durable?"));
        assert!(!s.needs_sync());
        // Nothing new written: another flusher round does not fsync again.
        s.sync();
        assert_eq!(s.io_counts().syncs, 1);
        assert_eq!(s.fetch("g", "t", 3).map(|c| c.offset), Some(10));
        drop(s);
        let s = OffsetStore::open(&path, true).expect("reopen");
        assert_eq!(s.group_offsets("g").len(), 50);
    }

    #[test]
    fn one_fsync_covers_every_commit_written_before_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = OffsetStore::open(&dir.path().join("o.meta"), true).expect("open");
        let a = s
            .commit("g", vec![("t".into(), 0, off(1))])
            .expect("a")
            .expect("pending");
        let b = s
            .commit("g", vec![("t".into(), 0, off(2))])
            .expect("b")
            .expect("pending");
        s.sync();
        assert_eq!(
            s.io_counts(),
            IoCounts {
                writes: 2,
                syncs: 1
            }
        );
        assert!(s.is_durable(a).expect("a") && s.is_durable(b).expect("b"));
        // Applied in write order: the later commit wins.
        assert_eq!(s.fetch("g", "t", 0).map(|c| c.offset), Some(2));
    }

    #[test]
    fn under_fsync_never_a_commit_is_applied_at_once_and_never_fsynced() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = OffsetStore::open(&dir.path().join("o.meta"), false).expect("open");
        let pending = s
            .commit("g", vec![("t".into(), 0, off(4))])
            .expect("commit");
        assert_eq!(pending, None);
        assert_eq!(s.fetch("g", "t", 0).map(|c| c.offset), Some(4));
        assert!(!s.needs_sync());
        s.sync();
        assert_eq!(
            s.io_counts(),
            IoCounts {
                writes: 1,
                syncs: 0
            }
        );
    }

    #[test]
    fn a_failed_fsync_fails_its_waiters_and_refuses_later_writes() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = OffsetStore::open(&dir.path().join("o.meta"), true).expect("open");
        commit_one(&s, "g", "t", 0, 1);
        let seq = s
            .commit("g", vec![("t".into(), 0, off(2))])
            .expect("commit")
            .expect("pending");
        s.fail_syncs
            .store(true, std::sync::atomic::Ordering::Release);
        s.sync();
        assert!(s.is_durable(seq).is_err());
        assert_eq!(s.fetch("g", "t", 0).map(|c| c.offset), Some(1));
        assert!(s.commit("g", vec![("t".into(), 0, off(3))]).is_err());
        assert!(s.delete_group("g").is_err());
    }

    #[test]
    fn a_delete_applies_the_pending_commits_before_it_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = OffsetStore::open(&dir.path().join("o.meta"), true).expect("open");
        let seq = s.commit("g", vec![("t".into(), 0, off(1)), ("t".into(), 1, off(1))]);
        let seq = seq.expect("commit").expect("pending");
        s.delete_offset("g", "t", 1).expect("delete");
        assert!(s.is_durable(seq).expect("durable?"));
        assert_eq!(s.fetch("g", "t", 0).map(|c| c.offset), Some(1));
        assert_eq!(s.fetch("g", "t", 1), None);
        // A pending commit of a deleted topic is deleted too.
        s.commit("g", vec![("u".into(), 0, off(1))])
            .expect("commit");
        s.delete_topic("u").expect("delete topic");
        assert_eq!(s.fetch("g", "u", 0), None);
    }
}
