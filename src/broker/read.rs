//! Partition reads beside the consumer fetch path (`fetch.rs`): a partition's offsets, whole
//! batches or decoded records from an offset (the embedded consumer), the offset for a
//! timestamp (ListOffsets), and moving the log start forward (DeleteRecords).
//!
//! Invariants:
//! - `read` and `read_records` go through `fetch`: they never see past the high watermark and
//!   count in `bytes_read`; `offset_for_timestamp` reads one batch below the high watermark,
//!   found by the time index, and does not count (it is not a consumer read);
//! - `delete_records` never moves the log start past the high watermark (`-1` means it;
//!   beyond it the storage layer refuses with OffsetOutOfRange) nor backwards.

use super::Broker;
use super::FetchData;
use crate::error::Result;
use crate::storage::{Isolation, LogOffsets};
use crate::types::StoredRecord;

impl Broker {
    pub fn offsets(&self, topic: &str, partition: i32) -> Result<LogOffsets> {
        Ok(self.partition(topic, partition)?.log()?.offsets())
    }

    /// Reads stored batches from `offset` (at least one whole batch): `fetch` without the
    /// partition's offsets on error.
    pub fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<FetchData> {
        self.read_isolated(
            topic,
            partition,
            offset,
            max_bytes,
            Isolation::ReadUncommitted,
        )
    }

    /// `read` of what `isolation` may see (read_committed: below the last stable offset, with
    /// the aborted transactions to skip in `FetchData::aborted`).
    pub(crate) fn read_isolated(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<FetchData> {
        self.fetch(topic, partition, offset, max_bytes, true, isolation)
            .map_err(|e| e.error)
    }

    /// Reads and decodes records (embedded consumer).
    pub fn read_records(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<(Vec<StoredRecord>, LogOffsets)> {
        let data = self.read(topic, partition, offset, max_bytes)?;
        let records =
            crate::protocol::records::decode_records(topic, partition, &data.records, offset)?;
        Ok((records, data.offsets))
    }

    /// The first offset whose record timestamp is ≥ `timestamp`, with that timestamp
    /// (Kafka's ListOffsets by time). `None` when every record is older.
    pub fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>> {
        let p = self.partition(topic, partition)?;
        let (batch, log_start) = {
            let log = p.log()?;
            (
                log.batch_at_timestamp(timestamp)?,
                log.offsets().log_start_offset,
            )
        };
        let Some(batch) = batch else { return Ok(None) };
        let records =
            crate::protocol::records::decode_records(topic, partition, &batch, log_start)?;
        Ok(records
            .iter()
            .find(|r| r.timestamp >= timestamp)
            .map(|r| (r.offset, r.timestamp)))
    }

    /// The offset and timestamp of the record with the largest timestamp (the first such
    /// record; Kafka's ListOffsets MAX_TIMESTAMP). `None` for an empty log, or when that record
    /// is not below the high watermark yet (as Kafka).
    pub fn offset_for_max_timestamp(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<(i64, i64)>> {
        let p = self.partition(topic, partition)?;
        let (batch, log_start) = {
            let log = p.log()?;
            (
                log.batch_at_max_timestamp()?,
                log.offsets().log_start_offset,
            )
        };
        let Some((batch, max_timestamp)) = batch else {
            return Ok(None);
        };
        let records =
            crate::protocol::records::decode_records(topic, partition, &batch, log_start)?;
        // In a LogAppendTime batch every record carries the batch's timestamp (the decoder
        // gives their create times): the first record is the answer then.
        Ok(records
            .iter()
            .find(|r| r.timestamp == max_timestamp)
            .or(records.first())
            .map(|r| (r.offset, max_timestamp)))
    }

    /// Moves the log start offset forward (Kafka's DeleteRecords). `-1` means the high watermark.
    pub fn delete_records(&self, topic: &str, partition: i32, before_offset: i64) -> Result<i64> {
        let p = self.partition(topic, partition)?;
        let mut log = p.log()?;
        let target = if before_offset == -1 {
            log.high_watermark()
        } else {
            before_offset
        };
        Ok(log.delete_records_before(target)?)
    }
}
