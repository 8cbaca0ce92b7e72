//! The file behind an in-memory index (`index.rs`, `time_index.rs`): fixed-size entries, no
//! handle kept open between writes.
//!
//! The index owns its entries in memory; `EntryFile` knows how many of them the file holds
//! (`written`) and whether the file changed since its last fsync (`unsynced`). Pending entries
//! are written about 8 KiB at a time, on `flush` (roll) and on `sync` (close, open), each time
//! through a short-lived handle. Invariants: the file holds exactly `entries[..written]`
//! (encoded in order); `sync` fsyncs only a file that changed since its last fsync. Entries a
//! load read count as on disk: if a process crash left them only in the page cache, the worst
//! a later OS crash does is a shorter index, which is still valid (or is rebuilt).

use std::path::{Path, PathBuf};

use super::StorageError;

/// One fixed-size entry of an index file.
pub(crate) trait Entry {
    const BYTES: usize;
    fn encode_to(&self, out: &mut Vec<u8>);
}

/// Bytes of entries kept in memory before they are written out (what a `BufWriter` held
/// before the indexes stopped keeping their files open).
const PENDING_BYTES_MAX: usize = 8192;

#[derive(Debug)]
pub(crate) struct EntryFile {
    path: PathBuf,
    /// How many entries are in the file.
    written: usize,
    /// Bytes were written to (or cut from) the file since its last fsync.
    unsynced: bool,
}

impl EntryFile {
    /// The file at `path`, which holds `written` entries (0 for a new, empty one).
    pub fn new(path: &Path, written: usize) -> EntryFile {
        EntryFile {
            path: path.to_path_buf(),
            written,
            unsynced: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// After an entry was added: writes the pending ones once a buffer's worth waits.
    pub fn added<E: Entry>(&mut self, entries: &[E]) -> Result<(), StorageError> {
        if (entries.len() - self.written) * E::BYTES >= PENDING_BYTES_MAX {
            self.flush(entries)?;
        }
        Ok(())
    }

    /// Writes `entries[written..]` to the file (opened for this write only).
    pub fn flush<E: Entry>(&mut self, entries: &[E]) -> Result<(), StorageError> {
        if self.written >= entries.len() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity((entries.len() - self.written) * E::BYTES);
        for e in &entries[self.written..] {
            e.encode_to(&mut bytes);
        }
        super::write_closed_at(&self.path, (self.written * E::BYTES) as u64, &bytes)?;
        self.written = entries.len();
        self.unsynced = true;
        Ok(())
    }

    /// The index keeps only its first `keep` entries: the file is cut if it holds more.
    pub fn truncate<E: Entry>(&mut self, keep: usize) -> Result<(), StorageError> {
        if keep < self.written {
            super::cut_closed(&self.path, (keep * E::BYTES) as u64)?;
            self.written = keep;
            self.unsynced = true;
        }
        Ok(())
    }

    /// Writes the pending entries and fsyncs the file, unless nothing changed since its last
    /// fsync.
    pub fn sync<E: Entry>(&mut self, entries: &[E]) -> Result<(), StorageError> {
        self.flush(entries)?;
        if self.unsynced {
            super::sync_closed(&self.path)?;
            self.unsynced = false;
        }
        Ok(())
    }
}
