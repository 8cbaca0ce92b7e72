//! The append-only partition log: segments of Kafka RecordBatch v2 bytes with sparse offset and
//! time indexes, crash recovery and retention. Knows nothing of topics, groups or the network.
//!
//! Directory layout per partition: `<data_dir>/<topic>-<partition>/` holding
//! `<20-digit base offset>.log|.index|.timeindex` per segment and a `recovery-point` checkpoint.

pub mod batch;
pub mod checkpoint;
pub mod cleaner;
pub mod control;
pub mod index;
pub mod inflate;
pub mod log;
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
    AbortedTxn, AppendInfo, Isolation, LogConfig, LogOffsets, OngoingTxn, PartitionLog, ReadView,
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

/// Cuts the file behind `writer` to `len` bytes and replaces `writer` with a fresh one
/// positioned there. Bytes still in the old buffer are discarded, not flushed (`into_parts`):
/// used to undo a failed append. Shrinking needs no free space.
pub(crate) fn cut_buffered(
    writer: &mut std::io::BufWriter<std::fs::File>,
    path: &Path,
    len: u64,
) -> Result<(), StorageError> {
    use std::io::Seek;
    let io = |e| StorageError::io(path, e);
    let mut file = writer.get_ref().try_clone().map_err(io)?;
    file.set_len(len).map_err(io)?;
    file.seek(std::io::SeekFrom::Start(len)).map_err(io)?;
    let capacity = writer.capacity();
    let old = std::mem::replace(writer, std::io::BufWriter::with_capacity(capacity, file));
    drop(old.into_parts());
    Ok(())
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
