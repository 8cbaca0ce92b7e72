//! Sparse time index of one segment: max timestamp so far → relative offset.
//!
//! Entries are 12 bytes, big-endian: `timestamp: i64`, `relative_offset: u32`. An entry is
//! added alongside each offset-index entry when the segment's max timestamp has grown since the
//! last entry. Invariants: timestamps and offsets are both strictly increasing; the entry
//! `(t, o)` means no batch before relative offset `o` has a timestamp above... more precisely,
//! the first batch whose max timestamp is ≥ `t` starts at or after the entry preceding it, so
//! a lookup for `t` starts scanning at the last entry with timestamp < `t`. Like the offset
//! index this file is a cache, rebuilt from the log when missing or invalid.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use byteorder::{BigEndian, ByteOrder};

use super::StorageError;

pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

#[derive(Debug)]
pub struct TimeIndex {
    path: PathBuf,
    entries: Vec<TimeEntry>,
    writer: BufWriter<File>,
}

impl TimeIndex {
    pub fn create(path: &Path) -> Result<TimeIndex, StorageError> {
        let file = File::create(path).map_err(|e| StorageError::io(path, e))?;
        Ok(TimeIndex {
            path: path.to_path_buf(),
            entries: Vec::new(),
            writer: BufWriter::new(file),
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
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| StorageError::io(path, e))?;
        Ok(Some(TimeIndex {
            path: path.to_path_buf(),
            entries,
            writer: BufWriter::new(file),
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
        let mut buf = [0u8; TIME_INDEX_ENTRY_BYTES];
        BigEndian::write_i64(&mut buf[0..8], timestamp);
        BigEndian::write_u32(&mut buf[8..12], relative_offset);
        self.writer
            .write_all(&buf)
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.entries.push(TimeEntry {
            timestamp,
            relative_offset,
        });
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
        let len = (entries * TIME_INDEX_ENTRY_BYTES) as u64;
        super::cut_buffered(&mut self.writer, &self.path, len)?;
        self.entries.truncate(entries);
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.writer
            .flush()
            .map_err(|e| StorageError::io(&self.path, e))
    }

    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        self.writer
            .get_ref()
            .sync_data()
            .map_err(|e| StorageError::io(&self.path, e))
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
