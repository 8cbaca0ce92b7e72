//! The batch holding the log's largest timestamp (Kafka's ListOffsets MAX_TIMESTAMP, -3,
//! `UnifiedLog.fetchOffsetByTimestamp`): the segment with the largest `max_timestamp` (the
//! first on ties), then its first batch reaching that timestamp, found through the time index
//! as a timestamp lookup is.
//!
//! As Kafka, the maximum is taken over the whole log: if its batch is not below the high
//! watermark yet, there is no answer (`None`), not a smaller visible maximum. A maximum in
//! records already below the log start offset (DeleteRecords) is not answered either: Kafka
//! would name an offset a consumer can no longer read.

use super::PartitionLog;
use crate::storage::StorageError;

impl PartitionLog {
    /// The stored bytes of the batch with the largest timestamp (from its start, at least the
    /// whole batch) and that timestamp; `None` for an empty log or a maximum not readable.
    pub fn batch_at_max_timestamp(&self) -> Result<Option<(Vec<u8>, i64)>, StorageError> {
        let mut best = None;
        for seg in &self.segments {
            if seg.next_offset <= self.log_start_offset || seg.max_timestamp < 0 {
                continue;
            }
            if best.is_none_or(|b: &crate::storage::segment::Segment| {
                seg.max_timestamp > b.max_timestamp
            }) {
                best = Some(seg);
            }
        }
        let Some(seg) = best else { return Ok(None) };
        if seg.base_offset >= self.high_watermark {
            return Ok(None);
        }
        let limit = if seg.base_offset == self.hw_segment_base {
            self.hw_position.min(seg.size)
        } else {
            seg.size
        };
        let Some((base, max_timestamp)) = seg.find_by_timestamp(seg.max_timestamp, limit)? else {
            return Ok(None);
        };
        if base < self.log_start_offset {
            return Ok(None);
        }
        let view = self.read_view(base)?;
        let mut out = Vec::new();
        view.read_into(&mut out, 0, true)?;
        Ok(Some((out, max_timestamp)))
    }
}
