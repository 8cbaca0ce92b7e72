//! The idempotent-producer table on disk: its snapshot (written at close and by checkpoint
//! jobs), its rebuild at open (snapshot plus a replay of the batch headers after it), and
//! expiry of idle producers.
//!
//! Invariants: a snapshot is trusted only at or below the log end offset (one past it describes
//! records a recovery or a heal cut away, and is deleted at open); the replay starts at the
//! snapshot's offset, or at the log start offset without one, so after `open` the table is what
//! the appends of the surviving records made it.

use super::{PRODUCER_STATE_FILE, PRODUCER_STATE_FILE_V1, PartitionLog};
use crate::storage::producer_state::ProducerStateTable;
use crate::storage::segment::scan_headers;
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

    /// Loads the producer-state snapshot and replays batch headers after it.
    pub(super) fn rebuild_producer_state(&mut self) -> Result<(), StorageError> {
        let leo = self.log_end_offset();
        let legacy = self.dir.join(PRODUCER_STATE_FILE_V1);
        if legacy.exists() {
            std::fs::remove_file(&legacy).map_err(|e| StorageError::io(&legacy, e))?;
        }
        let path = self.dir.join(PRODUCER_STATE_FILE);
        let snapshot =
            checkpoint::read_bytes(&path).and_then(|b| producer_snapshot::decode(&b, &path));
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
        for seg in &self.segments {
            if seg.next_offset <= from {
                continue;
            }
            let producers = &mut self.producers;
            let scanned = seg
                .position_of(from.max(seg.base_offset), seg.size)
                .and_then(|start| match start {
                    None => Ok(None),
                    Some(start) => {
                        scan_headers(&seg.reader(), &seg.log_path, start, seg.size, |_, h| {
                            if h.producer_id >= 0 && !h.is_control() && h.base_offset >= from {
                                // The offset range, not `record_count`: a batch the cleaner
                                // emptied keeps its range, so its last sequence too.
                                producers.record(
                                    h.producer_id,
                                    h.producer_epoch,
                                    h.base_sequence,
                                    h.last_offset_delta.saturating_add(1),
                                    h.base_offset,
                                    h.max_timestamp,
                                );
                            }
                            false
                        })
                    }
                });
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
        self.producers_saved_at = if from == leo { leo } else { -1 };
        Ok(())
    }
}
