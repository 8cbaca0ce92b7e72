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
//! The index keeps no file handle: entries live in memory and `entry_file.rs` writes them out
//! (a crash loses at most the pending ones, which leaves a valid, sparser index).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use byteorder::{BigEndian, ByteOrder};

use super::StorageError;
use super::entry_file::{Entry, EntryFile};

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

impl Entry for TimeEntry {
    const BYTES: usize = TIME_INDEX_ENTRY_BYTES;
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.encode());
    }
}

#[derive(Debug)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
    file: EntryFile,
}

impl TimeIndex {
    pub fn create(path: &Path) -> Result<TimeIndex, StorageError> {
        drop(File::create(path).map_err(|e| StorageError::io(path, e))?);
        Ok(TimeIndex {
            entries: Vec::new(),
            file: EntryFile::new(path, 0),
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
            file: EntryFile::new(path, entries.len()),
            entries,
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
        self.file.added(&self.entries)
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
        self.file.truncate::<TimeEntry>(entries)?;
        self.entries.truncate(entries);
        Ok(())
    }

    /// Writes the pending entries to the file (opened for this write only).
    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.file.flush(&self.entries)
    }

    /// Writes the pending entries and fsyncs the file, unless nothing changed since its last
    /// fsync (see `entry_file.rs`).
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.file.sync(&self.entries)
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
