//! The one read path for consumers — the wire Fetch and the embedded `Consumer` — and the
//! byte positions a waiting Fetch decides from.
//!
//! A long-poll Fetch below `min_bytes` must learn when enough bytes have arrived without
//! reading them: `fetch_mark` records where the wanted batch starts (segment, byte position;
//! headers are read to find it, never records), and `fetch_progress` compares that with the
//! high watermark's position under the partition lock, without I/O. The request reads once,
//! when it completes. Kafka's DelayedFetch decides the same way: bytes between two positions
//! in one segment, and "enough" once the high watermark is in a later segment.
//!
//! Isolation (KIP-98): a read_committed read ends before the last stable offset (the
//! storage's `read_view_isolated`) and carries the aborted transactions overlapping what it
//! returned, for the reader to skip (`FetchData::aborted`). A read_committed wait decides from
//! the LSO's byte position (`last_stable_offset_position`, as Kafka's DelayedFetch uses the
//! LSO's offset metadata for read_committed) the way read_uncommitted decides from the high
//! watermark's; while the LSO is not past the fetch offset nothing counts as readable.
//!
//! Invariant: `bytes_read` counts every stored byte read for a consumer through here.

use std::sync::atomic::Ordering;

use super::Broker;
use crate::error::Error;
use crate::storage::batch::{BatchHeader, BatchIter};
use crate::storage::{
    AbortedTxn, FileRange, Isolation, LogOffsets, PartitionLog, ReadView, Unread,
};

/// Stored batches read for one partition, and its offsets when they were read.
#[derive(Debug, Clone, Default)]
pub struct FetchData {
    pub records: Vec<u8>,
    /// `fetch_unread`: the stored batches as a range of their segment file, not read
    /// (`records` is then empty).
    pub(crate) file: Option<FileRange>,
    pub offsets: LogOffsets,
    /// read_committed: the aborted transactions with data in the batches read, oldest first
    /// (`None` for read_uncommitted, as Kafka answers).
    pub(crate) aborted: Option<Vec<AbortedTxn>>,
}

/// A failed partition read, with the partition's offsets when they are known.
#[derive(Debug)]
pub struct FetchError {
    pub error: Error,
    pub offsets: Option<LogOffsets>,
}

/// Where a waiting Fetch's bytes start, and how many it could read at the last look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchMark {
    segment_base: i64,
    position: u64,
    /// Readable bytes from the mark at the last look (capped by nothing).
    pub bytes: u64,
    /// More than `bytes` is readable: the high watermark is in a later segment (or the log
    /// changed under the mark). The Fetch should complete and read.
    pub moved: bool,
    /// The fetch offset and isolation (read_committed decides from the LSO).
    offset: i64,
    isolation: Isolation,
}

/// What `fetch_progress` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchProgress {
    /// Readable bytes from the mark.
    Bytes(u64),
    /// The high watermark is in a later segment, or the log changed under the mark
    /// (truncated, deleted, poisoned): read to find out.
    Moved,
}

impl Broker {
    /// Reads stored batches of `topic`-`partition` from the batch holding `offset`, up to
    /// `max_bytes` (at least one whole batch when `min_one_batch`), as stored; what
    /// `isolation` may see only.
    pub(crate) fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        isolation: Isolation,
    ) -> Result<FetchData, FetchError> {
        let (view, _) = self.view_at(topic, partition, offset, isolation)?;
        let mut records = Vec::new();
        let n = view
            .read_into(&mut records, max_bytes, min_one_batch)
            .map_err(|e| FetchError {
                error: Error::from(e),
                offsets: Some(view.offsets),
            })?;
        self.inner.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        let aborted = match isolation {
            Isolation::ReadUncommitted => None,
            Isolation::ReadCommitted => {
                Some(self.aborted_in_read(topic, partition, offset, &records))
            }
        };
        Ok(FetchData {
            records,
            file: None,
            offsets: view.offsets,
            aborted,
        })
    }

    /// `fetch`, but the stored batches of at least `file_bytes_min` bytes are left unread, as
    /// a range of their segment file (`FetchData::file`), for a connection that sends them
    /// from the page cache (`sendfile`); smaller ones, and those of a segment read through
    /// `O_DIRECT`, are read as `fetch` reads them. read_committed: a range's aborted list is
    /// bounded by an offset-index lookup at its end (`aborted_transactions_before`), not by
    /// its last batch (unread), so it can name a few transactions past it, as Kafka's does.
    pub(crate) fn fetch_unread(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        (max_bytes, min_one_batch): (usize, bool),
        file_bytes_min: usize,
        isolation: Isolation,
    ) -> Result<FetchData, FetchError> {
        let (view, _) = self.view_at(topic, partition, offset, isolation)?;
        let failed = |e| FetchError {
            error: Error::from(e),
            offsets: Some(view.offsets),
        };
        let mut records = Vec::new();
        let (n, range) = match view
            .read_or_range(&mut records, max_bytes, min_one_batch, file_bytes_min)
            .map_err(failed)?
        {
            Unread::Read(n) => (n, None),
            Unread::Range(r) => (r.len, Some(r)),
        };
        self.inner.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        let aborted = match (isolation, &range) {
            (Isolation::ReadUncommitted, _) => None,
            (Isolation::ReadCommitted, Some(r)) => {
                let end = r.position + r.len as u64;
                Some(self.aborted_in(topic, partition, |log| {
                    log.aborted_transactions_before(offset, view.segment_base(), end)
                }))
            }
            (Isolation::ReadCommitted, None) => {
                Some(self.aborted_in_read(topic, partition, offset, &records))
            }
        };
        Ok(FetchData {
            records,
            file: range,
            offsets: view.offsets,
            aborted,
        })
    }

    /// The aborted transactions with data in `records`, stored batches read from `from` (the
    /// last one possibly cut; none if the partition is gone).
    fn aborted_in_read(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        records: &[u8],
    ) -> Vec<AbortedTxn> {
        match upper_bound(records) {
            Some(upto) => {
                self.aborted_in(topic, partition, |log| log.aborted_transactions(from, upto))
            }
            None => Vec::new(),
        }
    }

    /// What `list` answers from the partition's log (none if the partition is gone).
    fn aborted_in(
        &self,
        topic: &str,
        partition: i32,
        list: impl FnOnce(&PartitionLog) -> Vec<AbortedTxn>,
    ) -> Vec<AbortedTxn> {
        self.partition(topic, partition)
            .ok()
            .and_then(|p| p.log().ok().map(|log| list(&log)))
            .unwrap_or_default()
    }

    /// Where the bytes from `offset` start and how many are readable now (headers are read to
    /// find the batch; no records).
    pub(crate) fn fetch_mark(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        isolation: Isolation,
    ) -> Result<FetchMark, FetchError> {
        let (view, (hw_base, hw_position)) = self.view_at(topic, partition, offset, isolation)?;
        let at = view.position().map_err(|e| FetchError {
            error: Error::from(e),
            offsets: Some(view.offsets),
        })?;
        Ok(match at {
            // Nothing readable yet: the next batch will start where the readable end (the
            // high watermark, or the LSO) is.
            None => FetchMark {
                segment_base: hw_base,
                position: hw_position,
                bytes: 0,
                moved: false,
                offset,
                isolation,
            },
            Some(at) => FetchMark {
                segment_base: at.segment_base,
                position: at.position,
                bytes: at.limit.saturating_sub(at.position),
                moved: at.segment_base != hw_base,
                offset,
                isolation,
            },
        })
    }

    /// How many bytes are readable from `mark` now, decided from the high watermark's byte
    /// position (read_committed: the LSO's) under the partition lock (no I/O).
    pub(crate) fn fetch_progress(
        &self,
        topic: &str,
        partition: i32,
        mark: &FetchMark,
    ) -> FetchProgress {
        let Ok(p) = self.partition(topic, partition) else {
            return FetchProgress::Moved;
        };
        let Ok(log) = p.log() else {
            return FetchProgress::Moved;
        };
        if log.is_poisoned() {
            return FetchProgress::Moved;
        }
        if mark.isolation == Isolation::ReadCommitted && log.last_stable_offset() <= mark.offset {
            return FetchProgress::Bytes(0);
        }
        let Ok((hw_base, hw_position)) = end_position(&log, mark.isolation) else {
            return FetchProgress::Moved;
        };
        if hw_base == mark.segment_base && hw_position >= mark.position {
            FetchProgress::Bytes(hw_position - mark.position)
        } else {
            FetchProgress::Moved
        }
    }

    /// A read view from `offset` and the position of the readable end (the high watermark's,
    /// read_committed: the LSO's), taken under the lock.
    fn view_at(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        isolation: Isolation,
    ) -> Result<(ReadView, (i64, u64)), FetchError> {
        let no_offsets = |error| FetchError {
            error,
            offsets: None,
        };
        let p = self.partition(topic, partition).map_err(no_offsets)?;
        let log = p.log().map_err(no_offsets)?;
        let offsets = log.offsets();
        let failed = |e| FetchError {
            error: named(Error::from(e), topic, partition),
            offsets: Some(offsets),
        };
        let view = log.read_view_isolated(offset, isolation).map_err(failed)?;
        let end = end_position(&log, isolation).map_err(failed)?;
        Ok((view, end))
    }

    /// Stored bytes read for consumers since the broker opened (wire Fetch and embedded
    /// consumers alike).
    pub(crate) fn bytes_read(&self) -> u64 {
        self.inner.bytes_read.load(Ordering::Relaxed)
    }
}

/// Segment base and byte position of what `isolation` may read up to.
fn end_position(
    log: &crate::storage::PartitionLog,
    isolation: Isolation,
) -> Result<(i64, u64), crate::storage::StorageError> {
    match isolation {
        Isolation::ReadUncommitted => Ok(log.high_watermark_position()),
        Isolation::ReadCommitted => log.last_stable_offset_position(),
    }
}

/// The offset after the last batch in `records` whose header is there (a trailing batch cut
/// by `max_bytes` counts: its header is whole or it is not counted), `None` if none is.
fn upper_bound(records: &[u8]) -> Option<i64> {
    let mut batches = BatchIter::new(records);
    let mut last = None;
    for (h, _) in batches.by_ref() {
        last = Some(h.last_offset() + 1);
    }
    let rest = records.get(batches.position()..).unwrap_or_default();
    match BatchHeader::parse(rest) {
        Ok(h) => Some(h.last_offset() + 1),
        Err(_) => last,
    }
}

/// Names the partition in an out-of-range error (storage does not know it).
fn named(e: Error, topic: &str, partition: i32) -> Error {
    match e {
        Error::OffsetOutOfRange {
            offset,
            log_start_offset,
            log_end_offset,
            ..
        } => Error::OffsetOutOfRange {
            partition: format!("{topic}-{partition}"),
            offset,
            log_start_offset,
            log_end_offset,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrokerConfig, FsyncPolicy};
    use crate::protocol::records::{TxnProducer, encode_batch, encode_transactional_batch};
    use crate::types::Record;

    #[test]
    fn a_read_committed_wait_counts_only_bytes_below_the_lso() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut config = BrokerConfig::with_data_dir(dir.path());
        config.fsync = FsyncPolicy::Never;
        let b = Broker::new(config).expect("broker");
        b.create_topic("t", None).expect("topic");
        let plain = || encode_batch(&[Record::new(b"p".to_vec())], 1).expect("batch");
        let producer = TxnProducer {
            producer_id: 9,
            producer_epoch: 0,
            base_sequence: 0,
        };
        let txn = encode_transactional_batch(&[Record::new(b"x".to_vec())], 1, producer);
        b.append("t", 0, &plain()).expect("append");
        b.append("t", 0, &txn.expect("batch")).expect("append");
        // Waiting at the open transaction's first offset: nothing is readable, whatever
        // arrives after it, until the transaction ends.
        let committed = b
            .fetch_mark("t", 0, 1, Isolation::ReadCommitted)
            .expect("mark");
        let uncommitted = b
            .fetch_mark("t", 0, 1, Isolation::ReadUncommitted)
            .expect("mark");
        assert_eq!(committed.bytes, 0);
        assert!(uncommitted.bytes > 0);
        b.append("t", 0, &plain()).expect("append");
        assert_eq!(
            b.fetch_progress("t", 0, &committed),
            FetchProgress::Bytes(0)
        );
        b.append_marker("t", 0, 9, 0, true).expect("append");
        let hw = b.fetch_progress("t", 0, &uncommitted);
        assert_eq!(b.fetch_progress("t", 0, &committed), hw);
        assert!(matches!(hw, FetchProgress::Bytes(n) if n > 0));
    }
}
