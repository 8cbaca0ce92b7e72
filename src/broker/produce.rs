//! The write path: appending stored batches (wire Produce) or records (embedded producer),
//! waiting for durability, and handing out producer ids.
//!
//! Invariants:
//! - every append marks its partition for the flusher per its fsync policy, and fires the
//!   partition's wait-set event when the high watermark moved;
//! - a producer id is handed out only from a block whose end is durably recorded, so a
//!   restart never reuses one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::partition::Partition;
use super::wait::WaitKey;
use super::{Broker, PRODUCER_ID_BLOCK_FILE, PRODUCER_ID_BLOCK_LEN};
use crate::config::FsyncPolicy;
use crate::error::{Error, Result};
use crate::storage::{AppendInfo, now_ms};
use crate::types::Record;

/// The attribute bits of zstd.
const ZSTD_CODEC: i16 = 4;

impl Broker {
    /// Appends already-encoded v2 batches (validated here; offsets assigned in place). Does not
    /// wait for durability: the result says whether the records are visible already
    /// (`AppendInfo::is_visible`); if not, see `is_durable` / `wait_durable`.
    /// Compressed batches are inflated (streaming, bounded) to check their record counts
    /// before the partition lock is taken.
    ///
    /// The topic's config applies first (`storage::validator`): CreateTime timestamps outside
    /// its bounds are refused (`InvalidTimestamp`), LogAppendTime batches are stamped with the
    /// broker's clock (returned as `log_append_time_ms`), and batches in another codec than
    /// its `compression.type` are recompressed.
    pub fn append(&self, topic: &str, partition: i32, batches: &[u8]) -> Result<AppendInfo> {
        let p = self.partition(topic, partition)?;
        self.append_to(&p, batches)
    }

    /// `append` for a wire Produce of a version that may predate zstd (Kafka's
    /// `ProduceRequest.validateRecords`): with `zstd_allowed` false (Produce < v7) a zstd batch
    /// is refused with `UnsupportedCompressionType`, after the partition was found. A topic
    /// whose `compression.type` is zstd still takes other codecs and recompresses them, as Kafka.
    pub fn append_wire(
        &self,
        topic: &str,
        partition: i32,
        batches: &[u8],
        zstd_allowed: bool,
        version: i16,
    ) -> Result<AppendInfo> {
        let p = self.partition(topic, partition)?;
        if !zstd_allowed
            && crate::storage::batch::BatchIter::new(batches)
                .any(|(h, _)| h.compression_codec() == ZSTD_CODEC)
        {
            return Err(Error::UnsupportedCompressionType(format!(
                "Produce requests with version {version} are not allowed to use ZStandard \
                 compression"
            )));
        }
        self.append_to(&p, batches)
    }

    /// Whether Fetch below v10 must be refused for this partition (Kafka's rule, in
    /// `KafkaApis`: the topic's `compression.type` is zstd, whatever codec its batches use).
    pub(crate) fn stores_zstd(&self, topic: &str, partition: i32) -> Result<bool> {
        let p = self.partition(topic, partition)?;
        Ok(matches!(
            p.settings().rules.codec,
            crate::storage::validator::TargetCodec::Zstd(_)
        ))
    }

    /// `append` to a partition already looked up; locks it once.
    fn append_to(&self, p: &Arc<Partition>, batches: &[u8]) -> Result<AppendInfo> {
        let settings = p.settings();
        crate::storage::batch::check_compressed_record_counts(batches)?;
        let now = now_ms();
        let prepared = crate::storage::validator::prepare(batches, &settings.rules, now)?;
        let mut info = p.log()?.append(&prepared, now)?;
        if settings.rules.log_append_time && !info.duplicate {
            info.log_append_time_ms = now;
        }
        self.appended_to(p, settings.fsync, &info);
        Ok(info)
    }

    /// Appends a transaction's commit or abort marker for `producer_id` (coordinator epoch 0:
    /// one broker), marked for the flusher and announced to waiters as any append.
    pub(crate) fn append_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<AppendInfo> {
        let p = self.partition(topic, partition)?;
        let fsync = p.fsync();
        let info = p
            .log()?
            .append_marker(producer_id, producer_epoch, commit, 0, now_ms())?;
        self.appended_to(&p, fsync, &info);
        Ok(info)
    }

    /// After an append: marks the partition for the flusher per its fsync policy and fires
    /// its wait-set event if the high watermark moved.
    fn appended_to(&self, p: &Arc<Partition>, fsync: FsyncPolicy, info: &AppendInfo) {
        match fsync {
            FsyncPolicy::Always => self.inner.flusher.mark(p, Instant::now()),
            FsyncPolicy::Interval(ms) => self
                .inner
                .flusher
                .mark(p, Instant::now() + Duration::from_millis(ms)),
            // `never` still fsyncs a segment once it is rolled (in the flusher, off this path).
            FsyncPolicy::Never if info.rolled => self.inner.flusher.mark(p, Instant::now()),
            FsyncPolicy::Never => {}
        }
        if info.high_watermark_moved {
            self.inner
                .waits
                .event(&WaitKey::partition(&p.topic, p.index));
        }
    }

    /// True once `offset` is below the high watermark (readable, and durable under `always`).
    /// Fails if the partition's log was poisoned by a failed fsync.
    pub fn is_durable(&self, topic: &str, partition: i32, offset: i64) -> Result<bool> {
        let p = self.partition(topic, partition)?;
        let log = p.log()?;
        if log.high_watermark() > offset {
            return Ok(true);
        }
        if log.is_poisoned() {
            return Err(Error::Storage(crate::storage::StorageError::Poisoned(
                log.dir().to_path_buf(),
            )));
        }
        Ok(false)
    }

    /// Blocks the calling thread (embedded API only) until `offset` is durable.
    pub fn wait_durable(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        timeout: Duration,
    ) -> Result<()> {
        let seen = self
            .inner
            .waits
            .epochs(&[WaitKey::partition(topic, partition)]);
        if self.is_durable(topic, partition, offset)? {
            return Ok(());
        }
        self.wait_durable_past(topic, partition, offset, timeout, seen)
    }

    /// `wait_durable` for an offset known not to be durable when the partition's wait-set
    /// epoch was `seen`.
    fn wait_durable_past(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        timeout: Duration,
        mut seen: Vec<u64>,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let keys = [WaitKey::partition(topic, partition)];
        loop {
            if self.inner.stop.load(Ordering::Acquire) {
                return Err(Error::ShuttingDown);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(timeout.as_millis() as u64));
            }
            self.inner.waits.wait(keys.to_vec(), &seen, deadline);
            seen = self.inner.waits.epochs(&keys);
            if self.is_durable(topic, partition, offset)? {
                return Ok(());
            }
        }
    }

    /// Encodes and appends records as one batch; under fsync `always` waits until durable.
    pub fn produce(&self, topic: &str, partition: i32, records: &[Record]) -> Result<AppendInfo> {
        if records.is_empty() {
            return Err(Error::InvalidRecord("no records to send".into()));
        }
        let batch = crate::protocol::records::encode_batch(records, now_ms())?;
        let p = self.partition(topic, partition)?;
        // Read before the append: a high watermark published after it ends the wait, so the
        // append's own report stands in for the first durability check.
        let seen = self
            .inner
            .waits
            .epochs(&[WaitKey::partition(topic, partition)]);
        let info = self.append_to(&p, &batch)?;
        if p.fsync() == FsyncPolicy::Always && !info.is_visible() {
            let timeout = Duration::from_millis(self.inner.config.produce_timeout_ms);
            self.wait_durable_past(topic, partition, info.last_offset, timeout, seen)?;
        }
        Ok(info)
    }

    /// A producer id never handed out before (Kafka's InitProducerId for idempotence).
    pub(crate) fn allocate_producer_id(&self) -> Result<i64> {
        let mut ids = self
            .inner
            .producer_ids
            .lock()
            .map_err(|_| Error::Metadata("producer id lock poisoned".into()))?;
        if ids.0 >= ids.1 {
            let end = ids.1 + PRODUCER_ID_BLOCK_LEN;
            crate::storage::checkpoint::write_i64(
                &self.inner.config.data_dir.join(PRODUCER_ID_BLOCK_FILE),
                end,
            )?;
            ids.1 = end;
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }
}
