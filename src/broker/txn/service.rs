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
use crate::broker::wait::Waits;
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
}

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

    /// Carries out a step: answers it, or writes its record and applies it. Returns the reply
    /// (if any) and the markers of a decision just made durable.
    pub(super) fn execute(&self, step: Step) -> (Option<Reply>, Option<MarkerWrite>) {
        let record = match step {
            Step::Reply(r) => return (Some(r), None),
            Step::Nothing => return (None, None),
            Step::Append(r) => r,
        };
        let id = record.transactional_id.clone();
        let sync = self.must_sync(&record);
        let Ok(mut log) = self.log_lock() else {
            // Poisoned: nothing can be written; drop the transition.
            let fx = self.lock().map(|mut c| c.appended(&id, false));
            return (fx.ok().and_then(|f| f.reply), None);
        };
        let written = self.write(&mut log, &record, sync);
        if let Err(e) = &written {
            log::error!("{TXN_FILE}: writing the record of transactional id {id:?}: {e}");
        }
        let Ok(mut c) = self.lock() else {
            return (None, None);
        };
        let fx = c.appended(&id, written.is_ok());
        if written.is_ok() {
            self.maybe_compact(&mut log, &c);
        }
        // Its timeout or its expiry: the txn thread must wake for it.
        let deadline = c.deadline_ms(&id);
        drop(c);
        drop(log);
        if let Some(at) = deadline {
            self.arm(at);
        }
        (fx.reply, fx.markers)
    }

    /// Writes records the coordinator has already applied (`recover`'s), fsynced per policy.
    pub(super) fn append_applied(&self, records: &[TxnRecord]) -> Result<()> {
        let mut log = self
            .log_lock()
            .map_err(|_| Error::Metadata("transaction state log lock poisoned".into()))?;
        for r in records {
            let sync = self.must_sync(r);
            self.write(&mut log, r, sync)?;
        }
        Ok(())
    }

    fn write(&self, log: &mut StateLog, record: &TxnRecord, sync: bool) -> Result<()> {
        if log.damaged {
            let c = self
                .lock()
                .map_err(|_| Error::Metadata("transaction coordinator lock poisoned".into()))?;
            let live = live_records(&c);
            drop(c);
            log.file.rewrite(&live)?;
            log.records = live.len();
            log.damaged = false;
        }
        match log.file.append(record, sync) {
            Ok(()) => {
                log.records += 1;
                if sync {
                    log.unsynced_since_ms = None;
                } else if let FsyncPolicy::Interval(ms) = self.fsync
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
