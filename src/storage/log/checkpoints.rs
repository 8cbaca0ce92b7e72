//! Checkpoints taken under the partition lock and written outside it (housekeeping).
//!
//! Invariants: a job is written only if no `heal` happened since it was taken (the gate's
//! epoch), because a heal rewrites the files a stale job describes; a job is recorded as
//! written (`checkpoint_written`) only for the gate and epoch it was taken under, so a skipped
//! job leaves the checkpoint out of date and the next job rewrites it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{PRODUCER_STATE_FILE, PartitionLog, RECOVERY_POINT_FILE};
use crate::storage::{StorageError, checkpoint, producer_snapshot};

/// Orders checkpoint writes made outside the partition lock (`CheckpointJob`) against `heal`,
/// which rewrites the files underneath them: every heal bumps the counter under this mutex,
/// and a job taken before a heal is dropped rather than written over the healed state.
#[derive(Debug, Default)]
pub(super) struct CheckpointGate(pub(super) Mutex<u64>);

/// Checkpoints to write, taken under the partition lock and written without it (housekeeping),
/// so a checkpoint's fsyncs never stall appends and reads of the partition.
pub struct CheckpointJob {
    gate: Arc<CheckpointGate>,
    epoch: u64,
    dir: PathBuf,
    recovery_point: Option<i64>,
    /// Producer-state snapshot: the log end offset it is taken at, and its encoding.
    producers: Option<(i64, Vec<u8>)>,
    /// `.txnindex` files fsynced before the snapshot is written: a snapshot at offset X on
    /// disk means every abort entry below X is too (the replay at open re-derives only from X).
    txn_indexes: Vec<(PathBuf, Arc<File>)>,
}

impl CheckpointJob {
    /// Writes the checkpoint files. Returns false, writing nothing, if the log healed since
    /// the job was taken.
    pub fn write(&self) -> Result<bool, StorageError> {
        let epoch = self.gate.0.lock().map_err(|_| lock_poisoned(&self.dir))?;
        if *epoch != self.epoch {
            return Ok(false);
        }
        if let Some(rp) = self.recovery_point {
            checkpoint::write_i64(&self.dir.join(RECOVERY_POINT_FILE), rp)?;
        }
        if let Some((_, bytes)) = &self.producers {
            for (path, file) in &self.txn_indexes {
                file.sync_data().map_err(|e| StorageError::io(path, e))?;
            }
            checkpoint::write_bytes(&self.dir.join(PRODUCER_STATE_FILE), bytes)?;
        }
        Ok(true)
    }
}

pub(super) fn lock_poisoned(dir: &Path) -> StorageError {
    StorageError::io(dir, std::io::Error::other("checkpoint lock poisoned"))
}

impl PartitionLog {
    /// The checkpoints that are out of date (the recovery point, and the producer state when
    /// there is one), for housekeeping to write outside the lock; `None` if all are current.
    /// A recovery point written late is still one that was durable, so at worst it makes a
    /// later recovery rescan more.
    pub fn checkpoint_job(&self) -> Result<Option<CheckpointJob>, StorageError> {
        let leo = self.log_end_offset();
        let recovery_point =
            (self.recovery_point_saved != self.recovery_point).then_some(self.recovery_point);
        let producers = if self.producers_expired
            || (!self.producers.is_empty() && self.producers_saved_at != leo)
        {
            let bytes = producer_snapshot::encode(leo, &self.producers)
                .map_err(|e| StorageError::io(&self.dir, e))?;
            Some((leo, bytes))
        } else {
            None
        };
        if recovery_point.is_none() && producers.is_none() {
            return Ok(None);
        }
        let txn_indexes = if producers.is_some() {
            self.segments
                .iter()
                .filter(|s| {
                    s.next_offset > self.producers_saved_at && !s.txn_index.entries().is_empty()
                })
                // Without a handle the index was fsynced before it was closed.
                .filter_map(|s| {
                    let handle = s.txn_index.sync_handle()?;
                    Some((s.txn_index.path().to_path_buf(), handle))
                })
                .collect()
        } else {
            Vec::new()
        };
        let epoch = *self
            .checkpoint_gate
            .0
            .lock()
            .map_err(|_| lock_poisoned(&self.dir))?;
        Ok(Some(CheckpointJob {
            gate: Arc::clone(&self.checkpoint_gate),
            epoch,
            dir: self.dir.clone(),
            recovery_point,
            producers,
            txn_indexes,
        }))
    }

    /// Records a written job (unless the log healed in between: then the next job rewrites).
    pub fn checkpoint_written(&mut self, job: &CheckpointJob) {
        let current = self.checkpoint_gate.0.lock().map(|e| *e).ok();
        if !Arc::ptr_eq(&self.checkpoint_gate, &job.gate) || current != Some(job.epoch) {
            return;
        }
        if let Some(rp) = job.recovery_point {
            self.recovery_point_saved = rp;
        }
        if let Some((at, _)) = job.producers {
            self.producers_saved_at = at;
            self.producers_expired = false;
        }
    }

    /// Writes the out-of-date checkpoints while holding the log (see `checkpoint_job`).
    pub fn checkpoint_recovery_point(&mut self) -> Result<(), StorageError> {
        if let Some(job) = self.checkpoint_job()?
            && job.write()?
        {
            self.checkpoint_written(&job);
        }
        Ok(())
    }
}
