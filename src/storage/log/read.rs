//! Reads: a `ReadView` (file handle + byte bounds) is built under the partition lock and read
//! outside it.
//!
//! Invariants: a view never reaches past the high watermark (its `limit` is the high
//! watermark's byte position in its segment), so a reader only sees records that are visible;
//! a read_committed view (`txn.rs`) never past the last stable offset either;
//! a view holds its own handle to the segment file, so retention deleting the segment while a
//! read is in flight does not affect the read.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{LogOffsets, PartitionLog};
use crate::storage::StorageError;
use crate::storage::batch::{BATCH_HEADER_BYTES, BatchError, BatchHeader};
use crate::storage::segment::scan_headers;

/// Bounds of a read, taken under the lock; `read` runs outside it.
#[derive(Debug)]
pub struct ReadView {
    file: Option<(PathBuf, Arc<File>)>,
    /// The segment's `O_DIRECT` handle, if it has one: record bytes are read through it (headers
    /// still through `file`).
    direct: Option<Arc<File>>,
    start_position: u64,
    /// Base offset the offset index says the batch at `start_position` has (`None`: position
    /// 0 of the segment, not taken from an index entry).
    start_base: Option<i64>,
    limit: u64,
    offset: i64,
    /// Base offset of the segment the view reads from.
    segment_base: i64,
    pub offsets: LogOffsets,
}

/// Stored bytes of a segment file, not read: `len` bytes from `position`. The handle is the
/// view's own, so the range stays readable if retention or the cleaner removes the segment
/// meanwhile. Appends only add bytes past a view's limit; the file is cut below it only when
/// the log heals after a failed write (`PartitionLog::heal`), so whoever sends a range must
/// treat an early end of file as an error (a frame is never sent short).
#[derive(Debug, Clone)]
pub struct FileRange {
    pub file: Arc<File>,
    pub path: PathBuf,
    pub position: u64,
    pub len: usize,
}

impl FileRange {
    /// Reads the range into memory (for a transport that cannot send from a file).
    pub fn read_to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut out = vec![0u8; self.len];
        self.file.read_exact_at(&mut out, self.position)?;
        Ok(out)
    }
}

/// What `ReadView::read_or_range` did.
#[derive(Debug)]
pub enum Unread {
    /// This many bytes were appended.
    Read(usize),
    /// Nothing was read: the bytes are this range of the segment file.
    Range(FileRange),
}

/// Where a read starts, in bytes: the batch holding the wanted offset begins at `position` of
/// segment `segment_base`, and `limit` is the readable end of that segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPosition {
    pub segment_base: i64,
    pub position: u64,
    pub limit: u64,
}

impl ReadView {
    fn empty(offsets: LogOffsets, offset: i64) -> ReadView {
        ReadView {
            file: None,
            direct: None,
            start_position: 0,
            start_base: None,
            limit: 0,
            offset,
            segment_base: 0,
            offsets,
        }
    }

    /// Narrows the view to end at `end` (segment base, byte position of a batch start): a view
    /// of a later segment reads nothing, one of that segment stops there. `None`: nothing.
    pub(super) fn cap(&mut self, end: Option<(i64, u64)>) {
        match end {
            Some((base, position)) if self.segment_base <= base => {
                if self.segment_base == base {
                    self.limit = self.limit.min(position);
                }
            }
            _ => {
                self.file = None;
                self.limit = 0;
            }
        }
    }

    /// Base offset of the segment the view reads from.
    pub fn segment_base(&self) -> i64 {
        self.segment_base
    }

    /// Where the batch holding the wanted offset starts (headers are read to find it, no
    /// records); `None` when there is nothing to read yet.
    pub fn position(&self) -> Result<Option<ReadPosition>, StorageError> {
        let Some((path, file)) = &self.file else {
            return Ok(None);
        };
        Ok(self
            .find_batch(file, path)?
            .map(|(position, _)| ReadPosition {
                segment_base: self.segment_base,
                position,
                limit: self.limit,
            }))
    }

    /// Where the bytes `read_into` would read are: from the batch that contains the
    /// requested offset, up to `max_bytes` (the last batch may be cut, as Kafka does), but
    /// always at least one whole batch when `min_one_batch` is set. `None` when there is
    /// nothing to read.
    fn extent(
        &self,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Option<(u64, u64)>, StorageError> {
        let Some((path, file)) = &self.file else {
            return Ok(None);
        };
        let Some((pos, first)) = self.find_batch(file, path)? else {
            return Ok(None);
        };
        let first_len = first.total_bytes() as u64;
        let available = self.limit - pos;
        let mut len = available.min(max_bytes as u64);
        if min_one_batch {
            len = len.max(first_len.min(available));
        }
        Ok((len > 0).then_some((pos, len)))
    }

    /// What `read_into` reads, but left unread as a range of the segment file when it is at
    /// least `range_bytes_min` long: for a connection that sends it from the file
    /// (`sendfile`). A segment read through `O_DIRECT` is always read (its bytes are not in
    /// the page cache to be sent from). Returns the range, or the number of bytes appended to
    /// `out`.
    pub fn read_or_range(
        &self,
        out: &mut Vec<u8>,
        max_bytes: usize,
        min_one_batch: bool,
        range_bytes_min: usize,
    ) -> Result<Unread, StorageError> {
        let Some((path, file)) = &self.file else {
            return Ok(Unread::Read(0));
        };
        let Some((pos, len)) = self.extent(max_bytes, min_one_batch)? else {
            return Ok(Unread::Read(0));
        };
        if self.direct.is_none() && len >= range_bytes_min as u64 {
            return Ok(Unread::Range(FileRange {
                file: file.clone(),
                path: path.clone(),
                position: pos,
                len: len as usize,
            }));
        }
        self.read_at(out, path, file, pos, len).map(Unread::Read)
    }

    /// Appends to `out` the stored bytes starting at the batch that contains the requested
    /// offset, up to `max_bytes` (the last batch may be cut, as Kafka does), but always at least
    /// one whole batch when `min_one_batch` is set. Returns the number of bytes appended.
    pub fn read_into(
        &self,
        out: &mut Vec<u8>,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<usize, StorageError> {
        let Some((path, file)) = &self.file else {
            return Ok(0);
        };
        let Some((pos, len)) = self.extent(max_bytes, min_one_batch)? else {
            return Ok(0);
        };
        self.read_at(out, path, file, pos, len)
    }

    /// Appends `len` bytes from `pos` of the segment to `out`.
    fn read_at(
        &self,
        out: &mut Vec<u8>,
        path: &Path,
        file: &File,
        pos: u64,
        len: u64,
    ) -> Result<usize, StorageError> {
        let start = out.len();
        out.resize(start + len as usize, 0);
        match &self.direct {
            Some(direct) => {
                crate::storage::log_writer::read_exact_direct(direct, &mut out[start..], pos)
            }
            None => file.read_exact_at(&mut out[start..], pos),
        }
        .map_err(|e| StorageError::io(path, e))?;
        Ok(len as usize)
    }

    /// Position and header of the batch holding the wanted offset. The offset index is a
    /// cache, and segments below the recovery point are not rescanned at startup: if the
    /// indexed position does not hold the batch the entry names, the segment is scanned from
    /// its start instead. Running past the readable end before finding the offset means a
    /// damaged batch length: that is an error, not "no data" (which a consumer would retry
    /// forever).
    fn find_batch(
        &self,
        file: &File,
        path: &Path,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        // Scans from `from`; returns the result, how many headers were read, and whether the
        // first one had the `expected` base offset.
        let scan = |from: u64, expected: Option<i64>| {
            let (mut headers, mut index_ok) = (0u32, true);
            let found = scan_headers(file, path, from, self.limit, |_, h| {
                headers += 1;
                if headers == 1 && expected.is_some_and(|e| e != h.base_offset) {
                    index_ok = false;
                    return true;
                }
                h.last_offset() >= self.offset
            });
            (found, headers, index_ok)
        };
        let (mut found, mut headers, index_ok) = scan(self.start_position, self.start_base);
        if self.start_base.is_some() && (!index_ok || headers == 0) {
            log::warn!(
                "{}: offset index entry for offset {:?} does not point at that batch \
                 (position {}); scanning the segment from its start",
                path.display(),
                self.start_base,
                self.start_position
            );
            (found, headers, _) = scan(0, None);
        }
        match found? {
            None if headers > 0 => Err(BatchError::Truncated {
                needed: BATCH_HEADER_BYTES,
                available: 0,
            }
            .into()),
            other => Ok(other),
        }
    }
}

impl PartitionLog {
    /// Builds a read view starting at `offset`. Offsets above the log end offset or below the
    /// log start offset are out of range; offsets in `[high_watermark, log_end_offset]` read
    /// nothing yet.
    pub fn read_view(&self, offset: i64) -> Result<ReadView, StorageError> {
        let offsets = self.offsets();
        if offset < self.log_start_offset || offset > offsets.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: offsets.log_end_offset,
            });
        }
        if offset >= self.high_watermark {
            return Ok(ReadView::empty(offsets, offset));
        }
        // Past segments that end before `offset`, and past empty inactive ones (the cleaner
        // can empty a segment whose range reaches beyond `offset`).
        let mut idx = self.segment_index_for(offset);
        let last = self.segments.len() - 1;
        while idx < self.segments.len()
            && (self.segments[idx].next_offset <= offset
                || (idx < last && self.segments[idx].is_empty()))
        {
            idx += 1;
        }
        let Some(seg) = self.segments.get(idx) else {
            return Ok(ReadView::empty(offsets, offset));
        };
        let limit = if seg.base_offset < self.hw_segment_base {
            seg.size
        } else if seg.base_offset == self.hw_segment_base {
            self.hw_position.min(seg.size)
        } else {
            0
        };
        let rel = (offset.max(seg.base_offset) - seg.base_offset) as u32;
        let entry = seg.index.floor(rel).filter(|e| e.position > 0);
        Ok(ReadView {
            direct: seg.direct_handle()?,
            file: Some((seg.log_path.clone(), seg.reader())),
            start_position: entry.map_or(0, |e| u64::from(e.position)),
            start_base: entry.map(|e| seg.base_offset + i64::from(e.relative_offset)),
            limit,
            offset,
            segment_base: seg.base_offset,
            offsets,
        })
    }

    /// Where the high watermark is: the base offset of its segment and its byte position in
    /// it. Stored bytes below it are readable; a reader compares positions, not offsets, to
    /// know how many bytes it could read without reading them.
    pub fn high_watermark_position(&self) -> (i64, u64) {
        (self.hw_segment_base, self.hw_position)
    }

    /// Reads the first stored batch whose max timestamp is ≥ `timestamp` (visible part only).
    pub fn batch_at_timestamp(&self, timestamp: i64) -> Result<Option<Vec<u8>>, StorageError> {
        for seg in &self.segments {
            if seg.base_offset >= self.high_watermark {
                break;
            }
            let limit = if seg.base_offset == self.hw_segment_base {
                self.hw_position.min(seg.size)
            } else {
                seg.size
            };
            if let Some((base, _)) = seg.find_by_timestamp(timestamp, limit)? {
                if base < self.log_start_offset && seg.next_offset <= self.log_start_offset {
                    continue;
                }
                let view = self.read_view(base.max(self.log_start_offset))?;
                let mut out = Vec::new();
                view.read_into(&mut out, 0, true)?;
                return Ok(Some(out));
            }
        }
        Ok(None)
    }
}
