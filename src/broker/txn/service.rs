//! The broker's shell around the sans-IO `TxnCoordinator`: its mutex, its state log
//! (`__transactions.meta`, `metadata::record_log` frames of `record::TxnRecord`, file kind 3),
//! and the step every request goes through: ask the coordinator, write the record it asks
//! for, tell it the write's outcome (`appended`), start the markers of a decision
//! (`markers.rs`).
//!
//! Lock order: the marker jobs' lock (`markers.rs`), then the state log's, then the
//! coordinator's; the wait set's is a leaf. `appended` is called with the state log still
//! locked, so a compaction (which rewrites the file from the coordinator's snapshot under both
//! locks) never drops a record that is written but not yet applied.
//!
//! Durability of the state log, per the broker's fsync policy (every record is written to
//! the OS before `appended`, so a process crash loses nothing under any policy):
//! The fsync a reply waits for is the flusher's (`sync_log`, first in its round): `execute`
//! writes the record, queues it as unapplied and answers `Executed::Syncing`; one fsync then
//! applies every record queued since the last (group commit across producers), and the
//! request collects its reply (`collect`, on `WaitKey::TxnLog`). Compaction waits until
//! nothing is queued, so it never drops a written record not yet applied.
//! - `always`: every record is fsynced before `appended(id, true)`, except the `Complete*`
//!   records and id-expiry tombstones, which no reply depends on: a lost one is redone at
//!   recovery (the markers are written again, which is idempotent; the id expires again), and
//!   the next fsynced record covers it anyway. So a reply never promises a state the disk
//!   does not hold, and a decision is durable before any of its markers is written;
//! - `<N>ms`: the decisions (`Prepare*` records) are fsynced before `appended`, so a marker
//!   never reaches the disk before its decision; every other record is fsynced by the txn
//!   thread within N ms (as the partitions' data under this policy, a power loss may lose the
//!   latest transitions acknowledged in that window);
//! - `never`: nothing is fsynced but at a clean close (`close`), as the partitions.
//!
//! A write that fails leaves the file's tail unknown: the file is rewritten from the
//! coordinator's snapshot before the next append (and the failed transition is dropped, the
//! client told `COORDINATOR_NOT_AVAILABLE`, which it retries).

use std::path::Path;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard};

use super::coordinator::TxnCoordinator;
use super::effects::{MarkerWrite, Reply, Step, TxnConfig};
use super::job::MarkerJob;
use super::record::TxnRecord;
use super::state::TxnState;
use crate::broker::metadata::record_log::RecordLog;
use crate::broker::wait::{WaitKey, Waits};
use crate::config::FsyncPolicy;
use crate::error::{Error, Result, TxnError};
use crate::limits::TXN_LOG_COMPACT_RECORDS_MIN;

/// The coordinator's state log in the data directory.
pub(crate) const TXN_FILE: &str = "__transactions.meta";

struct StateLog {
    file: RecordLog<TxnRecord>,
    /// Records in the file since it was last rewritten.
    records: usize,
    /// A write failed: the file is rewritten before the next append.
    damaged: bool,
    /// Wall-clock ms of the oldest write not fsynced yet (under `<N>ms`), if any.
    unsynced_since_ms: Option<i64>,
    /// Sequence number of the last record written (every write counts, synced or not).
    written_seq: u64,
    /// Records written but not applied: they wait for the flusher's fsync (`sync_log`),
    /// by sequence number, with their transactional id.
    unapplied: Vec<(u64, String)>,
}

/// What `execute` did with a step.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Executed {
    /// Answered (and applied): the reply, the markers of a decision just made durable.
    Done(Option<Reply>, Option<MarkerWrite>),
    /// Its record is written and waits for the flusher's fsync of the state log; the result
    /// is `collect`ed under this sequence number once `WaitKey::TxnLog` fires.
    Syncing(u64),
}

pub(crate) struct TxnService {
    coordinator: Mutex<TxnCoordinator>,
    log: Mutex<StateLog>,
    pub(super) waits: Arc<Waits>,
    fsync: FsyncPolicy,
    /// Decisions whose markers are not all written and durable yet, by transactional id.
    pub(super) jobs: Mutex<std::collections::BTreeMap<String, MarkerJob>>,
    /// The wall-clock ms the txn thread waits until (`thread.rs`).
    pub(super) armed_ms: AtomicI64,
    /// Results of records applied by `sync_log`, by sequence number, until collected.
    results: Mutex<std::collections::BTreeMap<u64, Option<Reply>>>,
    /// Decisions `sync_log` made durable, to become jobs (`take_pending_markers`: the jobs'
    /// lock comes before the state log's, so `sync_log` cannot register them itself).
    pending_markers: Mutex<Vec<MarkerWrite>>,
    /// The state log's path (the test build's fsync fault injection matches on it).
    #[cfg_attr(not(test), allow(dead_code))]
    path: std::path::PathBuf,
}

/// Results kept for requests that never collect theirs (a closed connection): the oldest
/// are dropped past this many.
const RESULTS_KEPT_MAX: usize = 65_536;

impl TxnService {
    /// Opens the state log in `dir` and replays it (recovery is `recover`, once the broker's
    /// partitions are open).
    pub(crate) fn open(
        dir: &Path,
        fsync: FsyncPolicy,
        config: TxnConfig,
        waits: Arc<Waits>,
    ) -> Result<TxnService> {
        let (file, records) = RecordLog::<TxnRecord>::open(&dir.join(TXN_FILE))?;
        let mut c = TxnCoordinator::new(config);
        let replayed = records.len();
        for r in records {
            c.replay(r);
        }
        let mut log = StateLog {
            file,
            records: replayed,
            damaged: false,
            unsynced_since_ms: None,
            written_seq: 0,
            unapplied: Vec::new(),
        };
        if replayed > c.snapshot().len() {
            let live = live_records(&c);
            log.file.rewrite(&live)?;
            log.records = live.len();
        }
        Ok(TxnService {
            coordinator: Mutex::new(c),
            log: Mutex::new(log),
            waits,
            fsync,
            jobs: Mutex::new(Default::default()),
            armed_ms: AtomicI64::new(i64::MAX),
            results: Mutex::new(Default::default()),
            pending_markers: Mutex::new(Vec::new()),
            path: dir.join(TXN_FILE),
        })
    }

    pub(super) fn lock(&self) -> Result<MutexGuard<'_, TxnCoordinator>, TxnError> {
        self.coordinator
            .lock()
            .map_err(|_| TxnError::CoordinatorNotAvailable)
    }

    fn log_lock(&self) -> Result<MutexGuard<'_, StateLog>, TxnError> {
        self.log
            .lock()
            .map_err(|_| TxnError::CoordinatorNotAvailable)
    }

    /// Runs `f` on the coordinator (under its lock) at wall-clock `now_ms`.
    pub(super) fn with<R>(
        &self,
        f: impl FnOnce(&mut TxnCoordinator, i64) -> R,
    ) -> Result<R, TxnError> {
        let now = crate::storage::now_ms();
        let mut c = self.lock()?;
        Ok(f(&mut c, now))
    }

    fn must_sync(&self, record: &TxnRecord) -> bool {
        let state = record.value.as_ref().map(|m| m.state);
        match self.fsync {
            FsyncPolicy::Never => false,
            FsyncPolicy::Interval(_) => state.is_some_and(TxnState::is_prepared),
            FsyncPolicy::Always => state
                .is_some_and(|s| !matches!(s, TxnState::CompleteCommit | TxnState::CompleteAbort)),
        }
    }

    /// Under `<N>ms`: fsyncs the state log once its oldest unsynced write is N ms old; returns
    /// when it is next due (the txn thread's deadline).
    pub(super) fn sync_if_due(&self, now_ms: i64) -> Option<i64> {
        let FsyncPolicy::Interval(ms) = self.fsync else {
            return None;
        };
        let mut log = self.log_lock().ok()?;
        let since = log.unsynced_since_ms?;
        let due = since.saturating_add(ms as i64);
        if due > now_ms {
            return Some(due);
        }
        match log.file.sync_handle().and_then(|f| {
            f.sync_data()
                .map_err(|e| Error::Metadata(format!("{TXN_FILE}: {e}")))
        }) {
            Ok(()) => log.unsynced_since_ms = None,
            Err(e) => {
                log::error!("{TXN_FILE}: fsync failed: {e} (retried)");
                return Some(now_ms.saturating_add(ms as i64));
            }
        }
        None
    }

    /// Clean shutdown: fsyncs whatever the policy left unsynced.
    pub(crate) fn close(&self) -> Result<()> {
        let log = self
            .log_lock()
            .map_err(|_| Error::Metadata("transaction state log lock poisoned".into()))?;
        log.file
            .sync_handle()?
            .sync_data()
            .map_err(|e| Error::Metadata(format!("{TXN_FILE}: {e}")))
    }

    /// Carries out a step: answers it, or writes its record and applies it. A record that
    /// must be fsynced first is applied by the flusher's `sync_log` (group commit: one fsync
    /// for every record written since the last): `Syncing`, and the caller marks the
    /// flusher (`Flusher::mark_txn_log`) and collects the result later.
    pub(super) fn execute(&self, step: Step) -> Executed {
        let record = match step {
            Step::Reply(r) => return Executed::Done(Some(r), None),
            Step::Nothing => return Executed::Done(None, None),
            Step::Append(r) => r,
        };
        let id = record.transactional_id.clone();
        let sync = self.must_sync(&record);
        let Ok(mut log) = self.log_lock() else {
            // Poisoned: nothing can be written; drop the transition.
            let fx = self.lock().map(|mut c| c.appended(&id, false));
            return Executed::Done(fx.ok().and_then(|f| f.reply), None);
        };
        let written = self.write(&mut log, &record);
        if let Err(e) = &written {
            log::error!("{TXN_FILE}: writing the record of transactional id {id:?}: {e}");
            // The file's tail is unknown: what waits for an fsync fails too (the file is
            // rewritten from the applied state before the next append).
            self.apply(&mut log, false, u64::MAX);
        } else if sync {
            let seq = log.written_seq;
            log.unapplied.push((seq, id));
            return Executed::Syncing(seq);
        }
        let Ok(mut c) = self.lock() else {
            return Executed::Done(None, None);
        };
        let fx = c.appended(&id, written.is_ok());
        if written.is_ok() && log.unapplied.is_empty() {
            self.maybe_compact(&mut log, &c);
        }
        // Its timeout or its expiry: the txn thread must wake for it.
        let deadline = c.deadline_ms(&id);
        drop(c);
        drop(log);
        if let Some(at) = deadline {
            self.arm(at);
        }
        Executed::Done(fx.reply, fx.markers)
    }

    /// The result of the record written as `seq` (`Executed::Syncing`), once `sync_log` has
    /// applied it (or failed it); `None` while it waits for the fsync. Read
    /// `WaitKey::TxnLog`'s epoch before calling, and wait on it if `None`.
    pub(crate) fn collect(&self, seq: u64) -> Option<Option<Reply>> {
        self.results.lock().ok()?.remove(&seq)
    }

    /// The flusher's step (before the partitions, so a record fsynced here is durable before
    /// any marker its decision leads to is even written): fsyncs the state log outside its
    /// lock, then applies every record the fsync covered and fires `WaitKey::TxnLog`; a
    /// decision's markers are registered as a job (written by whoever drives it next: the
    /// EndTxn waiting for it, or the txn thread). A failed fsync fails every waiting record
    /// (the file is rewritten from the applied state before the next append).
    pub(crate) fn sync_log(&self) {
        let (upto, file) = {
            let Ok(log) = self.log_lock() else { return };
            if log.unapplied.is_empty() {
                return;
            }
            (log.written_seq, log.file.sync_handle())
        };
        let result = file.and_then(|f| {
            #[cfg(test)]
            let f = crate::broker::flusher::failpoint::FailingFile(&self.path, &f);
            f.sync_data()
                .map_err(|e| Error::Metadata(format!("{TXN_FILE}: {e}")))
        });
        let Ok(mut log) = self.log_lock() else { return };
        let ok = match result {
            Ok(()) => true,
            Err(e) => {
                log::error!("{TXN_FILE}: fsync failed: {e}; the waiting transitions fail");
                log.damaged = true;
                false
            }
        };
        if ok && upto == log.written_seq {
            log.unsynced_since_ms = None;
        }
        // A failed fsync leaves the whole tail unknown: everything waiting fails, also what
        // was written after the fsync began.
        self.apply(&mut log, ok, if ok { upto } else { u64::MAX });
    }

    /// The decisions `sync_log` made durable since the last call (the caller, holding the
    /// jobs' lock, registers them).
    pub(super) fn take_pending_markers(&self) -> Vec<MarkerWrite> {
        self.pending_markers
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }

    /// Applies (`ok`) or fails every waiting record up to `upto`, keeps their results for
    /// `collect`, registers the decisions' jobs and wakes whoever waits (`WaitKey::TxnLog`;
    /// `TxnCoordinator` for a new job). Called with the state log locked.
    fn apply(&self, log: &mut StateLog, ok: bool, upto: u64) {
        let (done, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut log.unapplied)
            .into_iter()
            .partition(|(seq, _)| *seq <= upto);
        log.unapplied = rest;
        if done.is_empty() {
            return;
        }
        let mut results = Vec::with_capacity(done.len());
        let mut markers = Vec::new();
        let mut deadlines = Vec::new();
        if let Ok(mut c) = self.lock() {
            for (seq, id) in &done {
                let fx = c.appended(id, ok);
                results.push((*seq, fx.reply));
                markers.extend(fx.markers);
                deadlines.extend(c.deadline_ms(id));
            }
            if ok && log.unapplied.is_empty() {
                self.maybe_compact(log, &c);
            }
        }
        if let Ok(mut r) = self.results.lock() {
            r.extend(results);
            while r.len() > RESULTS_KEPT_MAX {
                r.pop_first();
            }
        }
        let new_jobs = !markers.is_empty();
        if new_jobs && let Ok(mut p) = self.pending_markers.lock() {
            p.extend(markers);
        }
        for at in deadlines {
            self.arm(at);
        }
        self.waits.event(&WaitKey::TxnLog);
        if new_jobs {
            self.waits.event(&WaitKey::TxnCoordinator);
        }
    }

    /// Writes records the coordinator has already applied (`recover`'s), fsynced per policy.
    pub(super) fn append_applied(&self, records: &[TxnRecord]) -> Result<()> {
        let mut log = self
            .log_lock()
            .map_err(|_| Error::Metadata("transaction state log lock poisoned".into()))?;
        for r in records {
            self.write(&mut log, r)?;
        }
        if records.iter().any(|r| self.must_sync(r)) {
            log.file
                .sync_handle()?
                .sync_data()
                .map_err(|e| Error::Metadata(format!("{TXN_FILE}: {e}")))?;
            log.unsynced_since_ms = None;
        }
        Ok(())
    }

    /// Writes `record` to the OS (the fsync is `sync_log`'s, or `<N>ms`'s `sync_if_due`).
    fn write(&self, log: &mut StateLog, record: &TxnRecord) -> Result<()> {
        if log.damaged {
            // Nothing may wait for an fsync of a tail about to be replaced.
            self.apply(log, false, u64::MAX);
            let c = self
                .lock()
                .map_err(|_| Error::Metadata("transaction coordinator lock poisoned".into()))?;
            let live = live_records(&c);
            drop(c);
            log.file.rewrite(&live)?;
            log.records = live.len();
            log.damaged = false;
        }
        match log.file.append(record, false) {
            Ok(()) => {
                log.records += 1;
                log.written_seq += 1;
                if let FsyncPolicy::Interval(ms) = self.fsync
                    && log.unsynced_since_ms.is_none()
                {
                    let now = crate::storage::now_ms();
                    log.unsynced_since_ms = Some(now);
                    self.arm(now.saturating_add(ms as i64));
                }
                Ok(())
            }
            Err(e) => {
                log.damaged = true;
                Err(e)
            }
        }
    }

    /// Rewrites the file from the live state once it holds mostly superseded records.
    fn maybe_compact(&self, log: &mut StateLog, c: &TxnCoordinator) {
        let live = c.snapshot().len();
        if log.records < TXN_LOG_COMPACT_RECORDS_MIN.max(live.saturating_mul(2)) {
            return;
        }
        let records = live_records(c);
        match log.file.rewrite(&records) {
            Ok(()) => log.records = records.len(),
            Err(e) => {
                log::error!("{TXN_FILE}: compaction failed: {e}");
                log.damaged = true;
            }
        }
    }
}

/// One record per live id: what a compacted state log holds.
fn live_records(c: &TxnCoordinator) -> Vec<TxnRecord> {
    c.snapshot()
        .into_iter()
        .map(|(id, m)| TxnRecord {
            transactional_id: id,
            value: Some(m),
        })
        .collect()
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
