//! Sparse offset index of one segment: relative offset → byte position in the `.log` file.
//!
//! Entries are 8 bytes, big-endian: `relative_offset: u32`, `position: u32`. One entry is added
//! for the first batch after every `index_interval_bytes` of log, so a lookup lands at most that
//! many bytes before the wanted batch. Invariants: entries are strictly increasing in both
//! offset and position; every position is the start of a batch whose base offset is
//! `segment_base + relative_offset`; positions lie inside the segment's valid length (recovery
//! drops entries past a truncation point). The file is a cache: if it is missing or fails these
//! checks, it is rebuilt from the log.
//!
//! The index keeps no file handle: entries live in memory and `entry_file.rs` writes them out
//! (a crash loses at most the pending ones, which leaves a valid, sparser index).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use byteorder::{BigEndian, ByteOrder};

use super::StorageError;
use super::entry_file::{Entry, EntryFile};

pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl IndexEntry {
    pub fn encode(&self) -> [u8; OFFSET_INDEX_ENTRY_BYTES] {
        let mut buf = [0u8; OFFSET_INDEX_ENTRY_BYTES];
        BigEndian::write_u32(&mut buf[0..4], self.relative_offset);
        BigEndian::write_u32(&mut buf[4..8], self.position);
        buf
    }
}

impl Entry for IndexEntry {
    const BYTES: usize = OFFSET_INDEX_ENTRY_BYTES;
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.encode());
    }
}

/// In-memory copy of the index and the file it is written to.
#[derive(Debug)]
pub struct OffsetIndex {
    entries: Vec<IndexEntry>,
    file: EntryFile,
}

impl OffsetIndex {
    /// Creates an empty index file (truncating any old one).
    pub fn create(path: &Path) -> Result<OffsetIndex, StorageError> {
        drop(File::create(path).map_err(|e| StorageError::io(path, e))?);
        Ok(OffsetIndex {
            entries: Vec::new(),
            file: EntryFile::new(path, 0),
        })
    }

    /// Loads and sanity-checks an index file. Returns `Ok(None)` when it is missing or invalid
    /// for a log of `log_bytes` bytes, in which case the caller rebuilds it.
    pub fn load(path: &Path, log_bytes: u64) -> Result<Option<OffsetIndex>, StorageError> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)
                    .map_err(|e| StorageError::io(path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io(path, e)),
        }
        let Some(entries) = decode_entries(&bytes, log_bytes) else {
            log::warn!(
                "offset index {} is corrupt; it will be rebuilt",
                path.display()
            );
            return Ok(None);
        };
        Ok(Some(OffsetIndex {
            file: EntryFile::new(path, entries.len()),
            entries,
        }))
    }

    pub fn append(&mut self, relative_offset: u32, position: u32) -> Result<(), StorageError> {
        if let Some(last) = self.entries.last()
            && (relative_offset <= last.relative_offset || position <= last.position)
        {
            return Ok(()); // keep the file strictly monotonic
        }
        self.entries.push(IndexEntry {
            relative_offset,
            position,
        });
        self.file.added(&self.entries)
    }

    /// Position of the last indexed batch starting at or before `relative_offset`, or 0.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        self.floor(relative_offset).map_or(0, |e| e.position)
    }

    /// The last entry whose relative offset is at most `relative_offset`, if any.
    pub fn floor(&self, relative_offset: u32) -> Option<IndexEntry> {
        let idx = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        idx.checked_sub(1).map(|i| self.entries[i])
    }

    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Keeps only the first `entries` entries, in memory and in the file (after a failed append
    /// was rolled back). Buffered, unwritten entries are discarded.
    pub fn truncate(&mut self, entries: usize) -> Result<(), StorageError> {
        if entries >= self.entries.len() {
            return Ok(());
        }
        self.file.truncate::<IndexEntry>(entries)?;
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

    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Decodes index bytes, returning `None` if they break an invariant.
pub fn decode_entries(bytes: &[u8], log_bytes: u64) -> Option<Vec<IndexEntry>> {
    if !bytes.len().is_multiple_of(OFFSET_INDEX_ENTRY_BYTES) {
        return None;
    }
    let mut entries = Vec::with_capacity(bytes.len() / OFFSET_INDEX_ENTRY_BYTES);
    for chunk in bytes.chunks_exact(OFFSET_INDEX_ENTRY_BYTES) {
        let e = IndexEntry {
            relative_offset: BigEndian::read_u32(&chunk[0..4]),
            position: BigEndian::read_u32(&chunk[4..8]),
        };
        if u64::from(e.position) >= log_bytes {
            return None;
        }
        if let Some(last) = entries.last() {
            let last: &IndexEntry = last;
            if e.relative_offset <= last.relative_offset || e.position <= last.position {
                return None;
            }
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
    fn lookup_finds_floor_entry() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut idx = OffsetIndex::create(&dir.path().join("a.index")).expect("create");
        idx.append(10, 4000).expect("append");
        idx.append(20, 8100).expect("append");
        assert_eq!(idx.lookup(0), 0);
        assert_eq!(idx.lookup(10), 4000);
        assert_eq!(idx.lookup(15), 4000);
        assert_eq!(idx.lookup(99), 8100);
    }

    #[test]
    fn reload_round_trips_and_rejects_out_of_range_positions() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("a.index");
        let mut idx = OffsetIndex::create(&path).expect("create");
        idx.append(1, 100).expect("append");
        idx.append(2, 200).expect("append");
        idx.flush().expect("flush");
        let loaded = OffsetIndex::load(&path, 1000).expect("io").expect("valid");
        assert_eq!(loaded.entries(), idx.entries());
        assert!(OffsetIndex::load(&path, 150).expect("io").is_none());
    }

    proptest! {
        #[test]
        fn lookup_matches_linear_scan(mut offsets in proptest::collection::btree_set(0u32..10_000, 0..200), probe in 0u32..11_000) {
            offsets.remove(&0);
            let entries: Vec<IndexEntry> = offsets.iter().map(|&o| IndexEntry { relative_offset: o, position: o * 10 }).collect();
            let dir = tempfile::tempdir().expect("tmp");
            let mut idx = OffsetIndex::create(&dir.path().join("p.index")).expect("create");
            for e in &entries { idx.append(e.relative_offset, e.position).expect("append"); }
            let expected = entries.iter().rev().find(|e| e.relative_offset <= probe).map_or(0, |e| e.position);
            prop_assert_eq!(idx.lookup(probe), expected);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100), log_bytes in any::<u64>()) {
            let _ = decode_entries(&bytes, log_bytes);
        }
    }
}
