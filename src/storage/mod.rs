//! The append-only partition log: segments of Kafka RecordBatch v2 bytes with sparse offset and
//! time indexes, crash recovery and retention. Knows nothing of topics, groups or the network.
//!
//! Directory layout per partition: `<data_dir>/<topic>-<partition>/` holding
//! `<20-digit base offset>.log|.index|.timeindex` per segment and a `recovery-point` checkpoint.

pub mod batch;
pub mod checkpoint;
pub mod cleaner;
pub mod control;
mod entry_file;
pub mod index;
pub mod inflate;
pub mod log;
pub(crate) mod log_writer;
pub mod producer_snapshot;
pub mod producer_state;
pub mod recovery;
pub mod segment;
pub mod time_index;
pub mod txn_index;
pub mod validator;
pub(crate) mod varint;

use std::path::{Path, PathBuf};

pub use self::batch::BatchError;
pub use self::log::{
    AbortedTxn, AppendInfo, FileRange, Isolation, LogConfig, LogOffsets, OngoingTxn, PartitionLog,
    ReadView, Unread,
};

/// Errors of the storage layer. Every I/O error carries the path it happened on.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error(transparent)]
    Producer(#[from] producer_state::ProducerError),
    #[error("log {0} failed an fsync earlier and is read-only until the broker restarts")]
    Poisoned(PathBuf),
    /// A record without a key sent to a compacted topic (Kafka's INVALID_RECORD).
    #[error("Compacted topic cannot accept message without key in topic partition {0}.")]
    KeylessRecordInCompactedTopic(String),
}

impl StorageError {
    pub fn io(path: &Path, source: std::io::Error) -> StorageError {
        StorageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// File name of a segment file: base offset as 20 zero-padded digits plus the extension.
pub fn segment_file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// Cuts a file no handle is open on to `len` bytes (open, shorten, close).
pub(crate) fn cut_closed(path: &Path, len: u64) -> Result<(), StorageError> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len))
        .map_err(|e| StorageError::io(path, e))
}

/// fsyncs a file no handle is open on through a short-lived read-only one (on Linux an fsync
/// through any descriptor writes back the file's dirty pages). A missing file has nothing to
/// sync.
pub(crate) fn sync_closed(path: &Path) -> Result<(), StorageError> {
    match std::fs::File::open(path).and_then(|f| f.sync_data()) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other.map_err(|e| StorageError::io(path, e)),
    }
}

/// Writes `bytes` at `at` into a file no handle is kept open on (an index's pending entries),
/// creating it if missing. If the write fails, the file is cut back to `at` (best effort), so
/// no partial entry is left where the next write would not overwrite it.
pub(crate) fn write_closed_at(path: &Path, at: u64, bytes: &[u8]) -> Result<(), StorageError> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StorageError::io(path, e))?;
    file.write_all_at(bytes, at).map_err(|e| {
        let _ = file.set_len(at);
        StorageError::io(path, e)
    })
}

/// fsyncs a directory so that file creations, renames and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
