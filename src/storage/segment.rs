//! One log segment: a `.log` file of whole RecordBatch v2 batches plus its two indexes and
//! its aborted-transaction index (`txn_index.rs`).
//!
//! Invariants (true after `create`, after every `append`, and after `recover`):
//! - the `.log` holds whole, validated batches back to back, the first with base offset
//!   `base_offset`, each next one starting at the previous one's last offset + 1;
//! - `size` is the byte length of those batches (including bytes still in the write buffer);
//!   `next_offset` is the last batch's last offset + 1 (or `base_offset` when empty);
//! - positions stored in the indexes are batch starts below `size`;
//! - the transaction index holds one entry per abort marker in the segment that closed a
//!   transaction with data, in offset order (rolled back with the append that wrote it).
//!
//! Appends go through a `LogWriter` (the caller holds the partition lock): buffered, or direct
//! around the page cache (`log_writer.rs`); reads use positional reads on a shared handle of
//! the same file and need no lock once their bounds are known.
//!
//! File handles: a segment holds one descriptor, its `.log` (`Arc<File>`, shared by the write
//! buffer, which writes positionally at `size`, by in-flight reads and by the flusher's
//! fsyncs), and under direct I/O a second one, `O_DIRECT`, from its first direct write or
//! read on. A direct writer may leave the file up to a block longer than `size` (zero
//! padding): `finish_writes` (the roll) and `sync_all` (a clean stop) cut it, and recovery
//! cuts it after a crash. The offset and time indexes keep no handle: their entries are in
//! memory and are written out a buffer's worth at a time, on roll and on sync, through a
//! short-lived handle. The `.txnindex` holds a handle only from a write until it is fsynced
//! and closed (`seal`, on roll; see `txn_index.rs`). So under buffered I/O a sealed segment
//! and an idle one hold exactly one descriptor, and the active segment two while it holds
//! abort entries written since its last seal; direct I/O adds one to each segment it touched.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{BATCH_HEADER_BYTES, BatchHeader};
use super::index::OffsetIndex;
use super::log_writer::LogWriter;
use super::time_index::TimeIndex;
use super::txn_index::{TxnIndex, txn_index_path};
use super::{StorageError, segment_file_name};

/// A segment's append state at one moment (see `Segment::mark` / `Segment::rollback`).
#[derive(Debug, Clone, Copy)]
pub struct SegmentMark {
    size: u64,
    next_offset: i64,
    max_timestamp: i64,
    bytes_since_index_entry: u64,
    index_entries: usize,
    time_index_entries: usize,
    txn_index_entries: usize,
}

/// Test-only fault injection: make the next N segment writes of this thread fail.
impl SegmentMark {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
}

#[cfg(test)]
pub(crate) mod failpoint {
    use std::cell::Cell;

    // (writes to let through first, writes to fail after them)
    thread_local!(static PLAN: Cell<(u32, u32)> = const { Cell::new((0, 0)) });

    /// Lets `skip` writes succeed, then fails the next `fail` writes (this thread only).
    pub fn fail_writes(skip: u32, fail: u32) {
        PLAN.with(|c| c.set((skip, fail)));
    }

    pub fn should_fail() -> bool {
        PLAN.with(|c| match c.get() {
            (0, 0) => false,
            (0, fail) => {
                c.set((0, fail - 1));
                true
            }
            (skip, fail) => {
                c.set((skip - 1, fail));
                false
            }
        })
    }
}

#[derive(Debug)]
pub struct Segment {
    pub(crate) base_offset: i64,
    pub(crate) log_path: PathBuf,
    /// Opened at the first append, closed by `finish_writes` (the roll).
    writer: Option<LogWriter>,
    /// Appends and reads go around the page cache (`log_writer.rs`) when the file system
    /// allows it.
    pub(crate) direct_io: bool,
    /// The `.log` opened with `O_DIRECT` at its first direct write or read (`None` inside:
    /// the file system refuses it).
    direct: std::sync::OnceLock<Option<Arc<File>>>,
    reader: Arc<File>,
    pub(crate) size: u64,
    pub(crate) next_offset: i64,
    pub(crate) max_timestamp: i64,
    /// Wall-clock ms when the segment was created or, after a restart, loaded (for `segment_ms`).
    pub(crate) created_ms: i64,
    bytes_since_index_entry: u64,
    index_interval_bytes: u64,
    pub(crate) index: OffsetIndex,
    pub(crate) time_index: TimeIndex,
    pub(crate) txn_index: TxnIndex,
}

/// Paths of a segment's three files.
pub fn segment_paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join(segment_file_name(base_offset, "log")),
        dir.join(segment_file_name(base_offset, "index")),
        dir.join(segment_file_name(base_offset, "timeindex")),
    )
}

impl Segment {
    /// Creates a new, empty segment (truncating leftovers with the same base offset).
    pub fn create(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        now_ms: i64,
    ) -> Result<Segment, StorageError> {
        let (log_path, index_path, time_path) = segment_paths(dir, base_offset);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| StorageError::io(&log_path, e))?;
        let file = Arc::new(file);
        Ok(Segment {
            base_offset,
            log_path,
            writer: None,
            direct_io: false,
            direct: std::sync::OnceLock::new(),
            reader: file,
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            created_ms: now_ms,
            bytes_since_index_entry: 0,
            index_interval_bytes,
            index: OffsetIndex::create(&index_path)?,
            time_index: TimeIndex::create(&time_path)?,
            txn_index: TxnIndex::create(&txn_index_path(dir, base_offset))?,
        })
    }

    /// Opens an existing segment whose first `size` bytes are known-good batches ending at
    /// `next_offset`, with indexes that have been loaded or rebuilt by the caller. Any bytes
    /// past `size` are truncated away.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open_recovered(
        log_path: PathBuf,
        base_offset: i64,
        size: u64,
        next_offset: i64,
        max_timestamp: i64,
        index: OffsetIndex,
        time_index: TimeIndex,
        index_interval_bytes: u64,
        now_ms: i64,
    ) -> Result<Segment, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| StorageError::io(&log_path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(&log_path, e))?
            .len();
        if len != size {
            file.set_len(size)
                .map_err(|e| StorageError::io(&log_path, e))?;
            file.sync_all()
                .map_err(|e| StorageError::io(&log_path, e))?;
        }
        let file = Arc::new(file);
        let last_indexed = index.entries().last().map_or(0, |e| u64::from(e.position));
        let txn_path = log_path.with_extension("txnindex");
        let txn_index = TxnIndex::open(&txn_path, base_offset, next_offset)?;
        Ok(Segment {
            base_offset,
            log_path,
            writer: None,
            direct_io: false,
            direct: std::sync::OnceLock::new(),
            reader: file,
            size,
            next_offset,
            max_timestamp,
            created_ms: now_ms,
            bytes_since_index_entry: size.saturating_sub(last_indexed),
            index_interval_bytes,
            index,
            time_index,
            txn_index,
        })
    }

    /// Cuts the `.log` to `len` bytes and restarts the write buffer there; bytes still in the
    /// old buffer are discarded, not written (`into_parts`). Shrinking needs no free space.
    fn cut_log(&mut self, len: u64) -> Result<(), StorageError> {
        self.reader
            .set_len(len)
            .map_err(|e| StorageError::io(&self.log_path, e))?;
        if let Some(old) = self.writer.take() {
            old.discard();
        }
        Ok(())
    }

    /// The state to return to if the appends that follow fail (see `rollback`).
    pub fn mark(&self) -> SegmentMark {
        SegmentMark {
            size: self.size,
            next_offset: self.next_offset,
            max_timestamp: self.max_timestamp,
            bytes_since_index_entry: self.bytes_since_index_entry,
            index_entries: self.index.entries().len(),
            time_index_entries: self.time_index.entries().len(),
            txn_index_entries: self.txn_index.entries().len(),
        }
    }

    /// Cuts the file to `size` bytes, discarding unwritten buffered bytes (used by
    /// `PartitionLog::heal`, which rebuilds the rest of the segment's state by recovery).
    pub fn cut_discarding_buffer(&mut self, size: u64) -> Result<(), StorageError> {
        self.cut_log(size)?;
        self.size = self.size.min(size);
        Ok(())
    }

    /// Undoes everything appended since `mark` after a failed write (e.g. ENOSPC): bytes still
    /// in the write buffer are discarded unwritten, the file is cut back to the marked size and
    /// index entries added since are dropped. Shrinking needs no free space, so this works on
    /// a full disk; if it fails anyway the caller must stop trusting the segment.
    pub fn rollback(&mut self, mark: &SegmentMark) -> Result<(), StorageError> {
        self.cut_log(mark.size)?;
        self.size = mark.size;
        self.next_offset = mark.next_offset;
        self.max_timestamp = mark.max_timestamp;
        self.bytes_since_index_entry = mark.bytes_since_index_entry;
        self.index.truncate(mark.index_entries)?;
        self.time_index.truncate(mark.time_index_entries)?;
        self.txn_index.truncate(mark.txn_index_entries)
    }

    /// Appends one validated batch, with `header.base_offset` written over the batch's own first
    /// eight bytes (the base offset field, outside the CRC). Returns its position.
    pub fn append(&mut self, batch: &[u8], header: &BatchHeader) -> Result<u64, StorageError> {
        #[cfg(test)]
        if failpoint::should_fail() {
            return Err(StorageError::io(
                &self.log_path,
                std::io::Error::from_raw_os_error(28), // ENOSPC
            ));
        }
        let position = self.size;
        if self.size == 0 || self.bytes_since_index_entry >= self.index_interval_bytes {
            let rel = (header.base_offset - self.base_offset) as u32;
            self.index.append(rel, position as u32)?;
            self.time_index
                .maybe_append(self.max_timestamp.max(header.max_timestamp), rel)?;
            self.bytes_since_index_entry = 0;
        }
        let rest = batch.get(8..).ok_or_else(|| {
            StorageError::io(
                &self.log_path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "batch shorter than its header",
                ),
            )
        })?;
        let writer = self.writer_mut()?;
        writer
            .write_all(&header.base_offset.to_be_bytes())
            .and_then(|()| writer.write_all(rest))
            .map_err(|e| StorageError::io(&self.log_path, e))?;
        self.size += batch.len() as u64;
        self.bytes_since_index_entry += batch.len() as u64;
        self.next_offset = header.last_offset() + 1;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        Ok(position)
    }

    /// The writer at `size`, opened on first use: direct where `direct_io` asks for it and the
    /// file system allows it.
    fn writer_mut(&mut self) -> Result<&mut LogWriter, StorageError> {
        let w = match self.writer.take() {
            Some(w) => w,
            None => match self.direct_handle()? {
                Some(direct) => LogWriter::direct(direct, &self.reader, self.size)
                    .map_err(|e| StorageError::io(&self.log_path, e))?,
                None => LogWriter::buffered(&self.reader, self.size),
            },
        };
        Ok(self.writer.insert(w))
    }

    /// The `O_DIRECT` handle when `direct_io` is set and the file system allows it (opened on
    /// first use; readers' page-cache handle is told to expect random reads from then on, so
    /// header reads do not read ahead what direct reads will bring).
    pub fn direct_handle(&self) -> Result<Option<Arc<File>>, StorageError> {
        if !self.direct_io {
            return Ok(None);
        }
        if let Some(h) = self.direct.get() {
            return Ok(h.clone());
        }
        let opened = super::log_writer::open_direct(&self.log_path)
            .map_err(|e| StorageError::io(&self.log_path, e))?
            .map(Arc::new);
        if opened.is_some() {
            let _ = rustix::fs::fadvise(&*self.reader, 0, None, rustix::fs::Advice::Random);
        }
        Ok(self.direct.get_or_init(|| opened).clone())
    }

    /// Pushes buffered bytes to the OS so positional readers see them.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        match self.writer.as_mut() {
            Some(w) => w.flush().map_err(|e| StorageError::io(&self.log_path, e)),
            None => Ok(()),
        }
    }

    /// Ends this segment's appends (on roll): flushes, closes the writer and, if direct
    /// writes left the file longer than the log (the zero padding of its last block), cuts
    /// the padding and fsyncs that, so the file a later start trusts ends at its last batch.
    pub fn finish_writes(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        if self.writer.take().is_some_and(|w| w.is_direct()) && self.cut_padding()? {
            self.reader
                .sync_data()
                .map_err(|e| StorageError::io(&self.log_path, e))?;
        }
        Ok(())
    }

    /// Cuts the zero padding direct writes leave past `size`; returns whether there was any.
    fn cut_padding(&self) -> Result<bool, StorageError> {
        let io = |e| StorageError::io(&self.log_path, e);
        let longer = self.reader.metadata().map_err(io)?.len() > self.size;
        if longer {
            self.reader.set_len(self.size).map_err(io)?;
        }
        Ok(longer)
    }

    /// Flushes the indexes' buffers (they are caches; they are never fsynced on the hot path).
    pub fn flush_indexes(&mut self) -> Result<(), StorageError> {
        self.index.flush()?;
        self.time_index.flush()
    }

    /// Makes the segment inactive (on roll): pushes the log's buffer to the OS, writes the
    /// indexes' pending entries, and fsyncs and closes the `.txnindex` handle if one is open
    /// (see `TxnIndex::seal`). Afterwards the segment holds only its `.log` descriptor.
    pub fn seal(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        self.flush_indexes()?;
        self.txn_index.seal()
    }

    /// A handle that can be fsynced without holding the partition lock.
    pub fn sync_handle(&self) -> Arc<File> {
        Arc::clone(&self.reader)
    }

    pub fn reader(&self) -> Arc<File> {
        Arc::clone(&self.reader)
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// File position of the batch containing `offset` (or the first batch after it), scanning
    /// forward from the index entry. Returns `None` when `offset >= next_offset`.
    pub fn position_of(&self, offset: i64, limit: u64) -> Result<Option<u64>, StorageError> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let rel = (offset.max(self.base_offset) - self.base_offset) as u32;
        let start = u64::from(self.index.lookup(rel));
        let found = scan_headers(&self.reader, &self.log_path, start, limit, |_, h| {
            h.last_offset() >= offset
        })?;
        Ok(found.map(|(pos, _)| pos))
    }

    /// First batch (base offset, max timestamp) whose max timestamp is ≥ `timestamp`.
    pub fn find_by_timestamp(
        &self,
        timestamp: i64,
        limit: u64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let rel = self.time_index.lookup(timestamp);
        let start = u64::from(self.index.lookup(rel));
        let found = scan_headers(&self.reader, &self.log_path, start, limit, |_, h| {
            h.max_timestamp >= timestamp
        })?;
        Ok(found.map(|(_, h)| (h.base_offset, h.max_timestamp)))
    }

    /// Flushes everything, fsyncs the log and indexes (used on roll and close). The file ends
    /// at its last batch afterwards (direct writes' padding is cut).
    pub fn sync_all(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        if self.writer.as_ref().is_some_and(|w| w.is_direct()) {
            self.cut_padding()?;
        }
        self.reader
            .sync_data()
            .map_err(|e| StorageError::io(&self.log_path, e))?;
        self.sync_indexes()
    }

    /// Flushes everything and fsyncs the indexes that changed since their last fsync, not the
    /// `.log` (for a segment whose bytes an fsync already covers).
    pub fn sync_indexes(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        if self.next_offset > self.base_offset {
            let rel = (self.next_offset - 1 - self.base_offset) as u32;
            self.time_index.maybe_append(self.max_timestamp, rel)?;
        }
        self.index.sync()?;
        self.time_index.sync()?;
        self.txn_index.sync()
    }

    /// Deletes the segment's files.
    pub fn delete_files(&self, dir: &Path) -> Result<(), StorageError> {
        let (log, index, time) = segment_paths(dir, self.base_offset);
        for p in [log, index, time, txn_index_path(dir, self.base_offset)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(&p, e)),
            }
        }
        Ok(())
    }
}

/// Walks batch headers of a log file from `start` while a whole header fits below `limit`,
/// returning the first batch (position, header) for which `stop` is true. Positional reads:
/// no lock needed for bytes below a snapshotted limit.
pub fn scan_headers(
    file: &File,
    path: &Path,
    start: u64,
    limit: u64,
    mut stop: impl FnMut(u64, &BatchHeader) -> bool,
) -> Result<Option<(u64, BatchHeader)>, StorageError> {
    let mut pos = start;
    let mut header = [0u8; BATCH_HEADER_BYTES];
    while pos + BATCH_HEADER_BYTES as u64 <= limit {
        file.read_exact_at(&mut header, pos)
            .map_err(|e| StorageError::io(path, e))?;
        let h = BatchHeader::parse(&header)?;
        if stop(pos, &h) {
            return Ok(Some((pos, h)));
        }
        pos += h.total_bytes() as u64;
    }
    Ok(None)
}
