//! The idempotent-producer table on disk: its snapshot (written at close and by checkpoint
//! jobs), its rebuild at open (snapshot plus a replay of the batch headers after it), and
//! expiry of idle producers.
//!
//! Invariants: a snapshot is trusted only at or below the log end offset (one past it describes
//! records a recovery or a heal cut away, and is deleted at open); the replay starts at the
//! snapshot's offset, or at the log start offset without one, so after `open` the table is what
//! the appends of the surviving records made it (open transactions included), and each
//! segment's `.txnindex` holds exactly the entries of its abort markers.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{PRODUCER_STATE_FILE, PRODUCER_STATE_FILE_V1, PartitionLog};
use crate::storage::control::{ControlType, MARKER_BATCH_BYTES, marker_type};
use crate::storage::producer_state::ProducerStateTable;
use crate::storage::segment::scan_headers;
use crate::storage::txn_index::AbortedEntry;
use crate::storage::{StorageError, checkpoint, producer_snapshot};

impl PartitionLog {
    pub fn producer_state(&self) -> &ProducerStateTable {
        &self.producers
    }

    /// Forgets idempotent producers idle for `expiration_ms` (see `producer_state`); the
    /// next checkpoint writes the smaller table. Returns how many were removed.
    pub fn expire_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let removed = self.producers.remove_expired(now_ms, expiration_ms);
        if removed > 0 {
            self.producers_expired = true;
        }
        removed
    }

    /// Writes the producer state as of the log end offset (a snapshot; the tail after it is
    /// re-read at startup).
    pub(super) fn save_producer_state(&mut self) -> Result<(), StorageError> {
        let leo = self.log_end_offset();
        let bytes = producer_snapshot::encode(leo, &self.producers)
            .map_err(|e| StorageError::io(&self.dir, e))?;
        checkpoint::write_bytes(&self.dir.join(PRODUCER_STATE_FILE), &bytes)?;
        self.producers_saved_at = leo;
        self.producers_expired = false;
        Ok(())
    }

    /// Loads the producer-state snapshot and replays batch headers after it: sequences, open
    /// transactions, and the `.txnindex` entries of the abort markers from the replay start on
    /// (dropped first, so a crash between a marker's append and its entry's write neither
    /// loses nor doubles one). A damaged `.txnindex` below the replay start is rebuilt from
    /// its segment (`txn_rebuild`).
    pub(super) fn rebuild_producer_state(&mut self) -> Result<(), StorageError> {
        let leo = self.log_end_offset();
        let legacy = self.dir.join(PRODUCER_STATE_FILE_V1);
        if legacy.exists() {
            std::fs::remove_file(&legacy).map_err(|e| StorageError::io(&legacy, e))?;
        }
        let path = self.dir.join(PRODUCER_STATE_FILE);
        let bytes = checkpoint::read_bytes(&path);
        // A snapshot in an older format is rewritten in the current one at the next close.
        let current_format = bytes.as_deref().is_some_and(producer_snapshot::is_current);
        let snapshot = bytes.and_then(|b| producer_snapshot::decode(&b, &path));
        // A snapshot past the log end describes records a recovery or a heal cut away. Once
        // the log grows past that offset again it would look valid, so it goes now.
        let snapshot = match snapshot {
            Some((at, _)) if at > leo => {
                std::fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
                None
            }
            other => other,
        };
        let (from, table) =
            snapshot.unwrap_or((self.log_start_offset, ProducerStateTable::default()));
        self.producers = table;
        for seg in &mut self.segments {
            if seg.next_offset <= from {
                continue;
            }
            seg.txn_index.truncate_from(from)?;
            let mut aborts = Vec::new();
            let mut opened = Vec::new();
            let scanned = seg
                .position_of(from.max(seg.base_offset), seg.size)
                .and_then(|start| match start {
                    None => Ok(()),
                    Some(start) => replay(
                        &seg.reader(),
                        &seg.log_path,
                        start,
                        seg.size,
                        from,
                        &mut self.producers,
                        &mut aborts,
                        &mut opened,
                    ),
                });
            for entry in aborts {
                seg.txn_index.append(entry)?;
            }
            for (first, position) in opened {
                self.txns.opened(first, seg.base_offset, position);
            }
            if seg.base_offset >= from {
                seg.txn_index.rebuilt();
            }
            if let Err(StorageError::Batch(e)) = &scanned {
                // A damaged batch in a segment that was not rescanned (clean shutdown, or below
                // the recovery point): reads report it; the partition must still open.
                log::warn!(
                    "{}: producer state rebuilt only up to a damaged batch: {e}",
                    seg.log_path.display()
                );
                break;
            }
            scanned?;
        }
        self.rebuild_damaged_txn_indexes(from)?;
        self.locate_open_txns()?;
        self.txns_moved();
        self.producers_saved_at = if from == leo && current_format {
            leo
        } else {
            -1
        };
        Ok(())
    }
}

/// Replays the batch headers of `file` in `[start, limit)` at offsets `from` and later into
/// `producers`: sequences, open transactions, end markers (whose type is read from the
/// record), into `aborts` the entry of each abort that closed a transaction with data, and
/// into `opened` the (first offset, position) of each transaction's first batch.
#[allow(clippy::too_many_arguments)]
pub(super) fn replay(
    file: &File,
    path: &Path,
    start: u64,
    limit: u64,
    from: i64,
    producers: &mut ProducerStateTable,
    aborts: &mut Vec<AbortedEntry>,
    opened: &mut Vec<(i64, u64)>,
) -> Result<(), StorageError> {
    let mut failed = None;
    scan_headers(file, path, start, limit, |pos, h| {
        if h.producer_id < 0 || h.base_offset < from {
            return false;
        }
        let pid = h.producer_id;
        if !h.is_control() {
            producers.update(pid, |e| {
                // The offset range, not `record_count`: a batch the cleaner emptied keeps its
                // range, so its last sequence too.
                e.record(
                    h.producer_epoch,
                    h.base_sequence,
                    h.last_offset_delta.saturating_add(1),
                    h.base_offset,
                    h.max_timestamp,
                );
                if h.is_transactional() && e.current_txn_first_offset.is_none() {
                    e.begin_txn(h.base_offset);
                    opened.push((h.base_offset, pos));
                }
            });
            return false;
        }
        let mut bytes = vec![0u8; h.total_bytes().min(MARKER_BATCH_BYTES)];
        if let Err(e) = file.read_exact_at(&mut bytes, pos) {
            failed = Some(StorageError::io(path, e));
            return true;
        }
        let Some(kind) = marker_type(&bytes) else {
            return false;
        };
        let offset = h.base_offset;
        let others = producers.first_open_txn_except(pid);
        let done = producers.update(pid, |e| {
            e.end_txn(
                pid,
                h.producer_epoch,
                offset,
                h.max_timestamp,
                kind == ControlType::Abort,
            )
        });
        if let Some(done) = done.filter(|d| d.aborted) {
            aborts.push(AbortedEntry {
                producer_id: pid,
                first_offset: done.first_offset,
                last_offset: offset,
                last_stable_offset: others.unwrap_or(offset + 1),
            });
        }
        false
    })?;
    failed.map_or(Ok(()), Err)
}
