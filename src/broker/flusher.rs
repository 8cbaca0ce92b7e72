//! The flusher thread: applies the fsync policy with group commit.
//!
//! Appends mark their partition dirty with a due time (now for `always`, last sync + interval
//! for `Interval`). The flusher takes every due partition, snapshots what needs syncing under
//! the partition lock, fsyncs with the lock released (appends continue meanwhile and are
//! covered by the next round), then publishes the new recovery point and high watermark. One
//! fsync therefore covers every append made since the previous one. A failed fsync poisons the
//! log (see `PartitionLog::poison`): it is never retried as if the data were safe; the next
//! append heals the log by cutting it back to the last successful fsync.
//!
//! The committed-offsets file is one more thing to sync: an OffsetCommit marks it
//! (`mark_offsets`, due at once), and each round that finds it marked calls
//! `OffsetStore::sync`, which fsyncs every commit written so far with one fsync and fires
//! `WaitKey::Offsets`. So no worker ever fsyncs a commit; concurrent commits share an fsync.
//!
//! The transaction state log likewise (`mark_txn_log`, due at once): each round that finds it
//! marked calls `TxnService::sync_log` first, before the offsets and the partitions, which
//! fsyncs every coordinator record written so far, applies them and fires `WaitKey::TxnLog`.
//! Concurrent transactions share that fsync too.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::offset_store::OffsetStore;
use super::partition::Partition;
use super::txn::TxnService;
use super::wait::{WaitKey, Waits};

#[derive(Default)]
struct State {
    dirty: HashMap<(String, i32), (Instant, Arc<Partition>)>,
    /// The offsets file has commits waiting for an fsync (always due at once).
    offsets_dirty: bool,
    /// The transaction state log has records waiting for an fsync (always due at once).
    txn_dirty: bool,
    shutdown: bool,
}

#[derive(Default)]
pub struct Flusher {
    state: Mutex<State>,
    cv: Condvar,
}

impl Flusher {
    /// Marks `partition` as needing an fsync no later than `due`.
    pub fn mark(&self, partition: &Arc<Partition>, due: Instant) {
        if let Ok(mut st) = self.state.lock() {
            st.dirty
                .entry((partition.topic.clone(), partition.index))
                .or_insert_with(|| (due, Arc::clone(partition)));
        }
        self.cv.notify_one();
    }

    /// Marks the committed-offsets file as needing an fsync now.
    pub fn mark_offsets(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.offsets_dirty = true;
        }
        self.cv.notify_one();
    }

    /// Marks the transaction state log as needing an fsync now.
    pub fn mark_txn_log(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.txn_dirty = true;
        }
        self.cv.notify_one();
    }

    pub fn shutdown(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.shutdown = true;
        }
        self.cv.notify_all();
    }

    /// Waits for due partitions (and whether the offsets file and the transaction state log
    /// are due); returns `None` once shut down with nothing left to do.
    fn next_round(&self) -> Option<Round> {
        let mut st = self.state.lock().ok()?;
        loop {
            let now = Instant::now();
            let mut ready = Vec::new();
            let mut earliest: Option<Instant> = None;
            st.dirty.retain(|_, (due, p)| {
                if *due <= now {
                    ready.push(Arc::clone(p));
                    false
                } else {
                    earliest = Some(earliest.map_or(*due, |e: Instant| e.min(*due)));
                    true
                }
            });
            let offsets = std::mem::take(&mut st.offsets_dirty);
            let txn_log = std::mem::take(&mut st.txn_dirty);
            let round = |partitions| Round {
                partitions,
                offsets,
                txn_log,
            };
            if st.shutdown {
                // Flush everything still pending, due or not.
                ready.extend(st.dirty.drain().map(|(_, (_, p))| p));
                return if ready.is_empty() && !offsets && !txn_log {
                    None
                } else {
                    Some(round(ready))
                };
            }
            if !ready.is_empty() || offsets || txn_log {
                return Some(round(ready));
            }
            let wait =
                earliest.map_or(Duration::from_secs(1), |e| e.saturating_duration_since(now));
            st = match self.cv.wait_timeout(st, wait) {
                Ok((s, _)) => s,
                Err(_) => return None,
            };
        }
    }

    /// The flusher thread's body.
    pub(crate) fn run(&self, waits: &Waits, offsets: &OffsetStore, txn: &TxnService) {
        while let Some(round) = self.next_round() {
            // The coordinator's records first: a decision is durable before the round fsyncs
            // any partition.
            if round.txn_log {
                txn.sync_log();
            }
            if round.offsets {
                offsets.sync();
            }
            for p in round.partitions {
                sync_partition(&p, waits);
            }
        }
    }
}

/// What one flusher round fsyncs.
struct Round {
    partitions: Vec<Arc<Partition>>,
    offsets: bool,
    txn_log: bool,
}

/// Fsyncs one partition outside its lock and publishes the result.
pub fn sync_partition(p: &Partition, waits: &Waits) {
    let snap = match p.log() {
        Ok(log) => log.sync_snapshot(),
        Err(_) => return,
    };
    let Some(snap) = snap else { return };
    let mut failed = false;
    for (path, file) in &snap.files {
        #[cfg(test)]
        let file = &failpoint::FailingFile(path, file);
        if let Err(e) = file.sync_data() {
            log::error!(
                "fsync of {} failed: {e}; partition is read-only until it heals",
                path.display()
            );
            failed = true;
            break;
        }
    }
    let Ok(mut log) = p.log() else { return };
    if failed {
        log.poison();
        drop(log);
        waits.event(&WaitKey::partition(&p.topic, p.index));
        return;
    }
    if log.complete_sync(&snap) {
        drop(log);
        waits.event(&WaitKey::partition(&p.topic, p.index));
    }
}

/// Test-only fault injection: fail the flusher's fsyncs of files under chosen directories
/// (a directory per test, so tests running in parallel do not see each other's faults).
#[cfg(test)]
pub(crate) mod failpoint {
    use std::fs::File;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static FAILING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    /// Makes every later flusher fsync of a file under `dir` fail with EIO (or stop failing).
    pub fn fail_syncs_under(dir: &Path, fail: bool) {
        if let Ok(mut dirs) = FAILING.lock() {
            dirs.retain(|d| d != dir);
            if fail {
                dirs.push(dir.to_path_buf());
            }
        }
    }

    pub struct FailingFile<'a>(pub &'a Path, pub &'a File);

    impl FailingFile<'_> {
        pub fn sync_data(&self) -> std::io::Result<()> {
            let failing = FAILING
                .lock()
                .map(|dirs| dirs.iter().any(|d| self.0.starts_with(d)))
                .unwrap_or(false);
            if failing {
                return Err(std::io::Error::from_raw_os_error(5)); // EIO
            }
            self.1.sync_data()
        }
    }
}
