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
//! the LSO, which the storage layer does not give a byte position for: while the LSO is at the
//! high watermark the high watermark's position is the LSO's; while it is below, a waiting
//! Fetch learns nothing from positions and reads (completes) once the LSO passes its offset,
//! so it never waits on bytes it may not return, and never spins on a transaction left open.
//!
//! Invariant: `bytes_read` counts every stored byte read for a consumer through here.

use std::sync::atomic::Ordering;

use super::Broker;
use crate::error::Error;
use crate::storage::batch::{BatchHeader, BatchIter};
use crate::storage::{AbortedTxn, Isolation, LogOffsets, ReadView};

/// Stored batches read for one partition, and its offsets when they were read.
#[derive(Debug, Clone, Default)]
pub struct FetchData {
    pub records: Vec<u8>,
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
            Isolation::ReadCommitted => Some(match upper_bound(&records) {
                Some(upto) => self.aborted_between(topic, partition, offset, upto),
                None => Vec::new(),
            }),
        };
        Ok(FetchData {
            records,
            offsets: view.offsets,
            aborted,
        })
    }

    /// The aborted transactions with data in `[from, upto)` (none if the partition is gone).
    fn aborted_between(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        upto: i64,
    ) -> Vec<AbortedTxn> {
        self.partition(topic, partition)
            .ok()
            .and_then(|p| p.log().ok().map(|log| log.aborted_transactions(from, upto)))
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
        let o = view.offsets;
        Ok(match at {
            // Nothing readable yet: the next batch will start where the high watermark is
            // (read_committed below an open transaction: somewhere before it, which the
            // progress check handles from offsets, see the module docs).
            None => FetchMark {
                segment_base: hw_base,
                position: hw_position,
                bytes: 0,
                moved: false,
                offset,
                isolation: match isolation {
                    Isolation::ReadCommitted if o.last_stable_offset < o.high_watermark => {
                        Isolation::ReadCommitted
                    }
                    // The LSO is at the high watermark: its position is exact.
                    _ => Isolation::ReadUncommitted,
                },
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
    /// position (read_committed: and the LSO) under the partition lock (no I/O).
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
        if mark.isolation == Isolation::ReadCommitted {
            let lso = log.last_stable_offset();
            if lso <= mark.offset {
                return FetchProgress::Bytes(0);
            }
            if lso < log.high_watermark() {
                // Readable bytes below the LSO have no known position: read them.
                return FetchProgress::Moved;
            }
        }
        let (hw_base, hw_position) = log.high_watermark_position();
        if hw_base == mark.segment_base && hw_position >= mark.position {
            FetchProgress::Bytes(hw_position - mark.position)
        } else {
            FetchProgress::Moved
        }
    }

    /// A read view from `offset` and the high watermark's position, taken under the lock.
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
        let view = log
            .read_view_isolated(offset, isolation)
            .map_err(|e| FetchError {
                error: named(Error::from(e), topic, partition),
                offsets: Some(offsets),
            })?;
        Ok((view, log.high_watermark_position()))
    }

    /// Stored bytes read for consumers since the broker opened (wire Fetch and embedded
    /// consumers alike).
    pub(crate) fn bytes_read(&self) -> u64 {
        self.inner.bytes_read.load(Ordering::Relaxed)
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
