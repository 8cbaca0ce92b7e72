//! Completing a decision: one commit/abort marker per partition of the transaction
//! (`Broker::append_marker`), the pending offsets of each group made visible or dropped
//! (`Broker::complete_txn_offsets`), then, once every marker is durable (per its partition's
//! fsync policy: below the high watermark), `markers_written` and its `Complete*` record.
//!
//! Whoever is waiting drives it (`progress`): the EndTxn handler on a worker (never
//! blocking: it parks on the partitions' wait keys), an embedded `commit_transaction`, and
//! the `thorstream-txn` thread, which finishes what nobody waits for (recovery, timeouts, an
//! EndTxn answered at its deadline, a marker write that failed and is retried). The groups'
//! offsets are completed by the txn thread only (`complete_groups`: it blocks until they are
//! durable), outside the jobs' lock; a caller waiting for them waits on
//! `WaitKey::TxnCoordinator`, fired when a job with groups completes.
//!
//! Invariants:
//! - at most one job per transactional id (the coordinator refuses every other transition
//!   while a decision is `Prepare*`), and a job is dropped only once its `Complete*` record
//!   is applied;
//! - each partition gets its marker once per job (its offset is kept), whoever writes it; a
//!   deleted topic's partition is skipped; a failed append is retried later;
//! - the jobs' lock is taken before the state log's and the partitions' locks, never after.

use super::job::{GroupsPending, MarkerJob, Progress};
use super::service::TxnService;
use crate::broker::Broker;
use crate::broker::wait::WaitKey;

use super::effects::MarkerWrite;

impl TxnService {
    /// A decision is durable: registers its job and writes its markers now.
    pub(super) fn start_markers(&self, broker: &Broker, write: MarkerWrite) {
        if let Ok(mut jobs) = self.jobs.lock() {
            let mut job = MarkerJob::new(write);
            job.write_missing(broker);
            jobs.insert(job.write.transactional_id.clone(), job);
        }
        self.waits.event(&WaitKey::TxnCoordinator);
    }

    /// Registers decisions made durable by `sync_log` as jobs (their markers not written
    /// yet); an id's job already there is kept (at most one decision per id is pending).
    pub(super) fn register(
        jobs: &mut std::collections::BTreeMap<String, MarkerJob>,
        writes: Vec<MarkerWrite>,
    ) {
        for w in writes {
            jobs.entry(w.transactional_id.clone())
                .or_insert_with(|| MarkerJob::new(w));
        }
    }

    /// Registers what `sync_log` left (the txn thread, before it looks at the jobs).
    pub(super) fn register_pending(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            Self::register(&mut jobs, self.take_pending_markers());
        }
    }

    /// Moves `id`'s decision on as far as it goes now: writes what is missing and, once every
    /// marker is durable, applies `markers_written` (its `Complete*` record).
    pub(crate) fn progress(&self, broker: &Broker, id: &str) -> Progress {
        let Ok(mut jobs) = self.jobs.lock() else {
            return Progress::Failed;
        };
        Self::register(&mut jobs, self.take_pending_markers());
        let Some(job) = jobs.get_mut(id) else {
            return Progress::Done;
        };
        let mut keys = job.keys();
        keys.push(WaitKey::TxnCoordinator);
        let seen = self.waits.epochs(&keys);
        if !job.write_missing(broker) {
            return Progress::Failed;
        }
        let Some(mut waiting) = job.not_durable(broker) else {
            return Progress::Failed;
        };
        let has_groups = !job.write.groups.is_empty();
        if !job.groups_done() {
            waiting.push(keys.len() - 1);
        }
        if !waiting.is_empty() {
            let (keys, seen) = waiting
                .into_iter()
                .filter_map(|i| Some((keys.get(i)?.clone(), *seen.get(i)?)))
                .unzip();
            return Progress::Waiting { keys, seen };
        }
        let step = self.with(|c, now| c.markers_written(id, now));
        let Ok(step) = step else {
            return Progress::Failed;
        };
        // A `Complete*` record is never fsynced before it is applied, so this is `Done`; were
        // it not, the flusher would apply it (the txn thread marks it for every round).
        if let super::service::Executed::Syncing(_) = self.execute(step) {
            broker.mark_txn_log();
        }
        let prepared = self
            .lock()
            .map(|c| c.get(id).is_some_and(|m| m.state.is_prepared()));
        match prepared {
            Ok(false) => {
                jobs.remove(id);
                drop(jobs);
                if has_groups {
                    // Whoever waits for the groups (they wait on this key) looks again.
                    self.waits.event(&WaitKey::TxnCoordinator);
                }
                Progress::Done
            }
            _ => Progress::Failed,
        }
    }

    /// Completes the groups' offsets of every job (the txn thread's; blocks until each is
    /// durable). False if one failed (retried later).
    pub(super) fn complete_groups(&self, broker: &Broker) -> bool {
        let pending: Vec<(String, GroupsPending)> = match self.jobs.lock() {
            Ok(jobs) => jobs
                .iter()
                .filter_map(|(id, j)| Some((id.clone(), j.groups_pending()?)))
                .collect(),
            Err(_) => return false,
        };
        let mut ok = true;
        for (id, p) in pending {
            let mut all = true;
            for g in &p.groups {
                if let Err(e) = broker.complete_txn_offsets(g, p.producer_id, p.commit) {
                    log::error!(
                        "transactional id {id:?}: completing the offsets of group {g}: {e} \
                         (retried)"
                    );
                    all = false;
                }
            }
            if all
                && let Ok(mut jobs) = self.jobs.lock()
                && let Some(j) = jobs.get_mut(&id)
            {
                j.set_groups_done();
            }
            ok &= all;
        }
        ok
    }

    /// The transactional ids with a decision being completed.
    pub(super) fn job_ids(&self) -> Vec<String> {
        self.jobs
            .lock()
            .map(|j| j.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The wait keys of every job (the txn thread waits on all of them).
    pub(super) fn job_keys(&self) -> Vec<WaitKey> {
        self.jobs
            .lock()
            .map(|j| j.values().flat_map(MarkerJob::keys).collect())
            .unwrap_or_default()
    }
}
