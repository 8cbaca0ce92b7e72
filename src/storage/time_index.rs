//! Sparse time index of one segment: max timestamp so far → relative offset.
//!
//! Entries are 12 bytes, big-endian: `timestamp: i64`, `relative_offset: u32`. An entry is
//! added alongside each offset-index entry when the segment's max timestamp has grown since the
//! last entry. Invariants: timestamps and offsets are both strictly increasing; the entry
//! `(t, o)` means no batch before relative offset `o` has a timestamp above... more precisely,
//! the first batch whose max timestamp is ≥ `t` starts at or after the entry preceding it, so
//! a lookup for `t` starts scanning at the last entry with timestamp < `t`. Like the offset
//! index this file is a cache, rebuilt from the log when missing or invalid.
//!
//! The index keeps no file handle: entries live in memory (`entries`) and the ones not yet in
//! the file are written about 8 KiB at a time, and on `flush` (roll) and `sync` (close, open),
//! each time through a short-lived handle. A crash loses at most those pending entries, which
//! leaves a valid, sparser index (or one recovery rebuilds).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use byteorder::{BigEndian, ByteOrder};

use super::StorageError;

pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl TimeEntry {
    pub fn encode(&self) -> [u8; TIME_INDEX_ENTRY_BYTES] {
        let mut buf = [0u8; TIME_INDEX_ENTRY_BYTES];
        BigEndian::write_i64(&mut buf[0..8], self.timestamp);
        BigEndian::write_u32(&mut buf[8..12], self.relative_offset);
        buf
    }
}

/// Entries kept in memory before they are written out (about 8 KiB, what a `BufWriter` held
/// before the index stopped keeping its file open).
const PENDING_ENTRIES_MAX: usize = 8192 / TIME_INDEX_ENTRY_BYTES;

#[derive(Debug)]
pub struct TimeIndex {
    path: PathBuf,
    entries: Vec<TimeEntry>,
    /// How many of `entries` are in the file; the rest are written by the next `flush` (or
    /// when a buffer's worth is pending). The index holds no file handle between writes.
    written: usize,
    /// Bytes were written to (or cut from) the file since its last fsync.
    unsynced: bool,
}

impl TimeIndex {
    pub fn create(path: &Path) -> Result<TimeIndex, StorageError> {
        drop(File::create(path).map_err(|e| StorageError::io(path, e))?);
        Ok(TimeIndex {
            path: path.to_path_buf(),
            entries: Vec::new(),
            written: 0,
            unsynced: false,
        })
    }

    /// Loads an index, or `Ok(None)` if it is missing or invalid for a segment whose next
    /// relative offset is `relative_end`.
    pub fn load(path: &Path, relative_end: u32) -> Result<Option<TimeIndex>, StorageError> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)
                    .map_err(|e| StorageError::io(path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io(path, e)),
        }
        let Some(entries) = decode_entries(&bytes, relative_end) else {
            log::warn!(
                "time index {} is corrupt; it will be rebuilt",
                path.display()
            );
            return Ok(None);
        };
        Ok(Some(TimeIndex {
            path: path.to_path_buf(),
            written: entries.len(),
            entries,
            unsynced: false,
        }))
    }

    pub fn maybe_append(
        &mut self,
        timestamp: i64,
        relative_offset: u32,
    ) -> Result<(), StorageError> {
        if let Some(last) = self.entries.last()
            && (timestamp <= last.timestamp || relative_offset <= last.relative_offset)
        {
            return Ok(());
        }
        self.entries.push(TimeEntry {
            timestamp,
            relative_offset,
        });
        if self.entries.len() - self.written >= PENDING_ENTRIES_MAX {
            self.flush()?;
        }
        Ok(())
    }

    /// Relative offset from which to scan for the first batch with max timestamp ≥ `timestamp`.
    pub fn lookup(&self, timestamp: i64) -> u32 {
        let idx = self.entries.partition_point(|e| e.timestamp < timestamp);
        if idx == 0 {
            0
        } else {
            self.entries[idx - 1].relative_offset
        }
    }

    pub fn entries(&self) -> &[TimeEntry] {
        &self.entries
    }

    /// Keeps only the first `entries` entries, in memory and in the file (after a failed append
    /// was rolled back). Buffered, unwritten entries are discarded.
    pub fn truncate(&mut self, entries: usize) -> Result<(), StorageError> {
        if entries >= self.entries.len() {
            return Ok(());
        }
        if entries < self.written {
            super::cut_closed(&self.path, (entries * TIME_INDEX_ENTRY_BYTES) as u64)?;
            self.written = entries;
            self.unsynced = true;
        }
        self.entries.truncate(entries);
        Ok(())
    }

    /// Writes the pending entries to the file (opened for this write only).
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.written == self.entries.len() {
            return Ok(());
        }
        let bytes: Vec<u8> = self.entries[self.written..]
            .iter()
            .flat_map(|e| e.encode())
            .collect();
        super::write_closed_at(
            &self.path,
            (self.written * TIME_INDEX_ENTRY_BYTES) as u64,
            &bytes,
        )?;
        self.written = self.entries.len();
        self.unsynced = true;
        Ok(())
    }

    /// Writes the pending entries and fsyncs the file, unless nothing was written to it since
    /// its last fsync. Entries read by `load` count as on disk: if a process crash left them
    /// only in the page cache, the worst a later OS crash does is a shorter index, which is
    /// still valid (or is rebuilt).
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        if self.unsynced {
            super::sync_closed(&self.path)?;
            self.unsynced = false;
        }
        Ok(())
    }
}

pub fn decode_entries(bytes: &[u8], relative_end: u32) -> Option<Vec<TimeEntry>> {
    if !bytes.len().is_multiple_of(TIME_INDEX_ENTRY_BYTES) {
        return None;
    }
    let mut entries: Vec<TimeEntry> = Vec::with_capacity(bytes.len() / TIME_INDEX_ENTRY_BYTES);
    for chunk in bytes.chunks_exact(TIME_INDEX_ENTRY_BYTES) {
        let e = TimeEntry {
            timestamp: BigEndian::read_i64(&chunk[0..8]),
            relative_offset: BigEndian::read_u32(&chunk[8..12]),
        };
        if e.relative_offset >= relative_end {
            return None;
        }
        if let Some(last) = entries.last()
            && (e.timestamp <= last.timestamp || e.relative_offset <= last.relative_offset)
        {
            return None;
        }
        entries.push(e);
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lookup_starts_before_first_larger_timestamp() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut idx = TimeIndex::create(&dir.path().join("t")).expect("create");
        idx.maybe_append(100, 5).expect("a");
        idx.maybe_append(200, 10).expect("a");
        idx.maybe_append(150, 12).expect("ignored: not increasing");
        assert_eq!(idx.entries().len(), 2);
        assert_eq!(idx.lookup(50), 0);
        assert_eq!(idx.lookup(100), 0);
        assert_eq!(idx.lookup(101), 5);
        assert_eq!(idx.lookup(250), 10);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100), end in any::<u32>()) {
            let _ = decode_entries(&bytes, end);
        }
    }
}
