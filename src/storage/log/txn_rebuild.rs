//! Rebuilding a segment's `.txnindex` that was missing or malformed at open and lies (at least
//! partly) below the producer-state replay start, so the replay did not re-derive it: the
//! index is a cache of the log, rebuilt by replaying the batch headers of every segment from
//! the first one up to it into a scratch producer table (an abort's first offset may be in an
//! earlier segment).
//!
//! Invariant: afterwards no segment is marked `needs_rebuild`; a rebuilt index holds the
//! entries the scratch replay derived below the replay start, then those the replay derived
//! from it on. A transaction that began before the log start offset gets its first surviving
//! batch as its first offset (readers never start below the log start).

use super::PartitionLog;
use super::producers::replay;
use crate::storage::StorageError;
use crate::storage::producer_state::ProducerStateTable;

impl PartitionLog {
    /// Rebuilds the `.txnindex` of every segment marked `needs_rebuild` (see the module doc);
    /// `from` is where the producer-state replay started.
    pub(super) fn rebuild_damaged_txn_indexes(&mut self, from: i64) -> Result<(), StorageError> {
        let Some(last) = self
            .segments
            .iter()
            .rposition(|s| s.txn_index.needs_rebuild())
        else {
            return Ok(());
        };
        let mut scratch = ProducerStateTable::default();
        let mut damaged = false;
        for seg in &mut self.segments[..=last] {
            let mut aborts = Vec::new();
            if !damaged {
                let scanned = replay(
                    &seg.reader(),
                    &seg.log_path,
                    0,
                    seg.size,
                    i64::MIN,
                    &mut scratch,
                    &mut aborts,
                    &mut Vec::new(),
                );
                if let Err(StorageError::Batch(e)) = &scanned {
                    log::warn!(
                        "{}: transaction index rebuilt only up to a damaged batch: {e}",
                        seg.log_path.display()
                    );
                    damaged = true;
                } else {
                    scanned?;
                }
            }
            if seg.txn_index.needs_rebuild() {
                log::debug!(
                    "{}: transaction index rebuilt",
                    seg.txn_index.path().display()
                );
                aborts.retain(|e| e.last_offset < from);
                aborts.extend_from_slice(seg.txn_index.entries());
                seg.txn_index.replace_all(aborts)?;
            }
        }
        Ok(())
    }
}
