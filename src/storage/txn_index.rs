//! A segment's aborted-transaction index (`<base>.txnindex`, Kafka's `TransactionIndex`): one
//! entry per aborted transaction whose abort marker is in the segment, in marker order.
//!
//! Entry layout, 34 bytes, big-endian, back to back, no header (Kafka's layout byte for byte):
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..2 | version `i16` (0) |
//! | 2..10 | producer id `i64` |
//! | 10..18 | first offset `i64` (the transaction's first batch in this partition) |
//! | 18..26 | last offset `i64` (the abort marker's offset, inside this segment) |
//! | 26..34 | last stable offset `i64` when the marker was appended (first offset of the oldest other open transaction, else the marker's offset + 1) |
//!
//! Invariants: every entry's last offset is in `[base, next_offset)` of its segment and entries
//! are sorted by last offset; the in-memory entries equal the file's. The file is a cache of the
//! log: a missing or malformed one (length not a multiple of 34, an unknown version, an entry out
//! of order or outside the segment) is rebuilt from the log (`needs_rebuild`); entries at or past
//! the segment's end (a truncated tail) are cut at open. Appends are unbuffered writes made with
//! the marker's append (undone with it on failure) and fsynced with the segment.
//!
//! File handle: the index holds a descriptor only while its file may hold bytes not yet known
//! durable, i.e. from a write (`append`, `truncate`) until `seal` fsyncs and closes it (on roll,
//! and at open once the replay is done). `create` makes (or empties) the file and closes it;
//! `open` reads it and closes it after fsyncing what it read (it may be a crashed process's
//! unsynced pages); `replace_all` and `truncate_from` fsync and close. So with no handle open
//! the file on disk holds exactly the entries, durably, and `sync_handle` is `None`: the
//! flusher and the producer-state checkpoint have nothing to fsync there.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{StorageError, segment_file_name};

/// Bytes of one entry.
pub const TXN_ENTRY_BYTES: usize = 34;
const VERSION: i16 = 0;

/// One aborted transaction (Kafka's `AbortedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedEntry {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedEntry {
    pub fn encode(&self) -> [u8; TXN_ENTRY_BYTES] {
        let mut b = [0u8; TXN_ENTRY_BYTES];
        b[0..2].copy_from_slice(&VERSION.to_be_bytes());
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        b
    }

    /// `None` for an unknown version.
    pub fn decode(b: &[u8; TXN_ENTRY_BYTES]) -> Option<AbortedEntry> {
        let i64_at = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(x)
        };
        (i16::from_be_bytes([b[0], b[1]]) == VERSION).then(|| AbortedEntry {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

/// Path of a segment's transaction index.
pub fn txn_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(segment_file_name(base_offset, "txnindex"))
}

#[derive(Debug)]
pub struct TxnIndex {
    path: PathBuf,
    /// Open from a write until `seal` (see the module doc on file handles).
    file: Option<Arc<File>>,
    entries: Vec<AbortedEntry>,
    /// The file was missing or malformed when opened: its entries must be rebuilt from the log.
    needs_rebuild: bool,
}

fn open_rw(path: &Path, truncate: bool) -> Result<File, StorageError> {
    OpenOptions::new()
        .create(true)
        .truncate(truncate)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io(path, e))
}

impl TxnIndex {
    /// A new, empty index (truncating a leftover file).
    pub fn create(path: &Path) -> Result<TxnIndex, StorageError> {
        drop(open_rw(path, true)?);
        Ok(TxnIndex {
            path: path.to_path_buf(),
            file: None,
            entries: Vec::new(),
            needs_rebuild: false,
        })
    }

    /// Opens the index of the segment `[base, next_offset)`: entries at or past `next_offset`
    /// are cut; a missing or malformed file is replaced by an empty one marked `needs_rebuild`.
    pub fn open(path: &Path, base: i64, next_offset: i64) -> Result<TxnIndex, StorageError> {
        let existed = path.exists();
        let file = open_rw(path, false)?;
        let mut bytes = Vec::new();
        (&file)
            .read_to_end(&mut bytes)
            .map_err(|e| StorageError::io(path, e))?;
        let parsed = parse(&bytes, base);
        let mut index = TxnIndex {
            path: path.to_path_buf(),
            file: Some(Arc::new(file)),
            entries: Vec::new(),
            needs_rebuild: false,
        };
        match parsed {
            Some(entries) if existed => {
                index.entries = entries;
                index.truncate_from(next_offset)?;
                if index.entries.is_empty() {
                    index.file = None; // nothing to make durable
                } else {
                    index.seal()?; // what was read may be a crashed process's unsynced pages
                }
            }
            _ => {
                if existed {
                    log::warn!(
                        "{}: malformed transaction index; rebuilding it from the log",
                        path.display()
                    );
                }
                // Emptied, not fsynced: the rebuild at open rewrites and fsyncs it (the handle
                // stays open until then).
                index
                    .handle()?
                    .set_len(0)
                    .map_err(|e| StorageError::io(path, e))?;
                index.needs_rebuild = true;
            }
        }
        Ok(index)
    }

    pub fn entries(&self) -> &[AbortedEntry] {
        &self.entries
    }

    pub fn needs_rebuild(&self) -> bool {
        self.needs_rebuild
    }

    /// The entries were rebuilt from the log by the caller (appended since `open`).
    pub fn rebuilt(&mut self) {
        self.needs_rebuild = false;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle that can be fsynced without the partition lock, `None` when no handle is open:
    /// then the file on disk already holds the entries durably (see the module doc).
    pub fn sync_handle(&self) -> Option<Arc<File>> {
        self.file.clone()
    }

    /// Whether a handle is open.
    #[cfg(test)]
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// The open handle, opened first if there is none (the file exists: `create` and `open`
    /// made it; a missing one is recreated and, being shorter than the entries, rewritten by
    /// the caller's write or found malformed at the next open).
    fn handle(&mut self) -> Result<&Arc<File>, StorageError> {
        match &mut self.file {
            Some(f) => Ok(f),
            slot => {
                let file = open_rw(&self.path, false)?;
                Ok(slot.insert(Arc::new(file)))
            }
        }
    }

    /// Appends one entry (an unbuffered positional write after the last entry: on return it is
    /// in the OS).
    pub fn append(&mut self, entry: AbortedEntry) -> Result<(), StorageError> {
        let at = (self.entries.len() * TXN_ENTRY_BYTES) as u64;
        self.handle()?
            .write_all_at(&entry.encode(), at)
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.entries.push(entry);
        Ok(())
    }

    /// Keeps the first `count` entries (undoing appends after a failed write).
    pub fn truncate(&mut self, count: usize) -> Result<(), StorageError> {
        if count >= self.entries.len() {
            return Ok(());
        }
        self.handle()?
            .set_len((count * TXN_ENTRY_BYTES) as u64)
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.entries.truncate(count);
        Ok(())
    }

    /// Drops the entries whose marker is at or past `offset`; a shortened file is fsynced (a
    /// truncation that did not reach the disk would bring back entries the log no longer has)
    /// and its handle closed.
    pub fn truncate_from(&mut self, offset: i64) -> Result<(), StorageError> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        if keep < self.entries.len() {
            self.truncate(keep)?;
            self.seal()?;
        }
        Ok(())
    }

    /// Rewrites the file with `entries` (sorted by last offset), fsyncs and closes it, and
    /// clears `needs_rebuild`.
    pub fn replace_all(&mut self, entries: Vec<AbortedEntry>) -> Result<(), StorageError> {
        let path = self.path.clone();
        let io = |e| StorageError::io(&path, e);
        let file = self.handle()?;
        file.set_len(0).map_err(io)?;
        let mut bytes = Vec::with_capacity(entries.len() * TXN_ENTRY_BYTES);
        for e in &entries {
            bytes.extend_from_slice(&e.encode());
        }
        file.write_all_at(&bytes, 0).map_err(io)?;
        self.seal()?;
        self.entries = entries;
        self.needs_rebuild = false;
        Ok(())
    }

    /// fsyncs the file (through a short-lived handle when none is open).
    pub fn sync(&self) -> Result<(), StorageError> {
        match &self.file {
            Some(f) => f.sync_data().map_err(|e| StorageError::io(&self.path, e)),
            None => super::sync_closed(&self.path),
        }
    }

    /// fsyncs and closes the handle, if one is open: afterwards the entries are durable and
    /// the index holds no descriptor. On a failed fsync the handle is kept (the caller's error
    /// path decides; an fsync is never retried as if it had succeeded).
    pub fn seal(&mut self) -> Result<(), StorageError> {
        if let Some(f) = &self.file {
            f.sync_data().map_err(|e| StorageError::io(&self.path, e))?;
            self.file = None;
        }
        Ok(())
    }
}

/// Entries of a file's bytes, `None` if malformed (see the module doc).
fn parse(bytes: &[u8], base: i64) -> Option<Vec<AbortedEntry>> {
    if !bytes.len().is_multiple_of(TXN_ENTRY_BYTES) {
        return None;
    }
    let mut out: Vec<AbortedEntry> = Vec::with_capacity(bytes.len() / TXN_ENTRY_BYTES);
    for chunk in bytes.chunks_exact(TXN_ENTRY_BYTES) {
        let mut b = [0u8; TXN_ENTRY_BYTES];
        b.copy_from_slice(chunk);
        let e = AbortedEntry::decode(&b)?;
        let ordered = out.last().is_none_or(|p| p.last_offset < e.last_offset);
        if !ordered || e.last_offset < base || e.first_offset > e.last_offset {
            return None;
        }
        out.push(e);
    }
    Some(out)
}

/// Collects from `entries` those overlapping `[from, upto)` into `out`; true when no later
/// segment can hold one (an entry whose last stable offset reaches `upto`: every transaction
/// aborted after it began at or after that offset), as Kafka's `collectAbortedTxns`.
pub fn collect(
    entries: &[AbortedEntry],
    from: i64,
    upto: i64,
    out: &mut Vec<AbortedEntry>,
) -> bool {
    // Entries ending before `from` neither overlap nor end the search (their last stable
    // offset is at most their last offset + 1, so at most `from`, below `upto`).
    let start = entries.partition_point(|e| e.last_offset < from);
    for e in &entries[start..] {
        if e.first_offset < upto {
            out.push(*e);
        }
        if e.last_stable_offset >= upto {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(pid: i64, first: i64, last: i64) -> AbortedEntry {
        AbortedEntry {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn entries_survive_a_reopen_and_a_cut_tail_loses_only_its_entries() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = txn_index_path(dir.path(), 10);
        let mut idx = TxnIndex::create(&path).unwrap_or_else(|e| panic!("{e}"));
        for (pid, first, last) in [(1, 10, 12), (2, 11, 15), (1, 16, 20)] {
            idx.append(entry(pid, first, last))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        drop(idx);
        assert_eq!(std::fs::metadata(&path).map(|m| m.len()).ok(), Some(3 * 34));
        let idx = TxnIndex::open(&path, 10, 100).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(idx.entries().len(), 3);
        assert!(!idx.needs_rebuild());
        drop(idx);
        let idx = TxnIndex::open(&path, 10, 16).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(idx.entries(), &[entry(1, 10, 12), entry(2, 11, 15)]);
        assert_eq!(std::fs::metadata(&path).map(|m| m.len()).ok(), Some(2 * 34));
    }

    #[test]
    fn a_missing_or_garbled_file_asks_for_a_rebuild() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = txn_index_path(dir.path(), 0);
        let idx = TxnIndex::open(&path, 0, 10).unwrap_or_else(|e| panic!("{e}"));
        assert!(idx.needs_rebuild() && idx.entries().is_empty());
        std::fs::write(&path, [1u8; 35]).unwrap_or_else(|e| panic!("{e}"));
        let idx = TxnIndex::open(&path, 0, 10).unwrap_or_else(|e| panic!("{e}"));
        assert!(idx.needs_rebuild());
        let mut bad = entry(1, 0, 3).encode();
        bad[1] = 7; // version 7
        std::fs::write(&path, bad).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            TxnIndex::open(&path, 0, 10)
                .map(|i| i.needs_rebuild())
                .unwrap_or(false)
        );
    }

    #[test]
    fn collect_stops_at_an_entry_whose_stable_offset_reaches_the_bound() {
        let entries = [
            entry(1, 0, 5),
            AbortedEntry {
                last_stable_offset: 3,
                ..entry(2, 3, 8)
            },
            entry(3, 9, 12),
        ];
        let mut out = Vec::new();
        assert!(collect(&entries, 6, 9, &mut out));
        assert_eq!(out, vec![entries[1]]);
        out.clear();
        assert!(!collect(&entries, 0, 100, &mut out));
        assert_eq!(out.len(), 3);
    }

    proptest! {
        #[test]
        fn entries_round_trip(pid in any::<i64>(), first in any::<i64>(), last in any::<i64>(), lso in any::<i64>()) {
            let e = AbortedEntry { producer_id: pid, first_offset: first, last_offset: last, last_stable_offset: lso };
            prop_assert_eq!(AbortedEntry::decode(&e.encode()), Some(e));
        }
    }
}
