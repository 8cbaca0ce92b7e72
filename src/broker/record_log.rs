//! Append-only file of serde records, the broker's own metadata format.
//!
//! Frame: `length: u32 BE | crc32: u32 BE (crc32fast over the payload) | payload (bincode)`.
//! Invariants: `open` returns exactly the records of the longest prefix of whole, checksummed,
//! decodable frames and truncates the file to that prefix (a torn tail from a crash is cut, as
//! a log's is); `rewrite` replaces the file atomically (temp file, fsync, rename, fsync dir), so a
//! crash during compaction leaves either the old or the new file, never a mix.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use byteorder::{BigEndian, ByteOrder};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::storage::sync_dir;

pub use crate::limits::METADATA_RECORD_BYTES_MAX;
const FRAME_HEADER_BYTES: usize = 8;

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Metadata(format!("{}: {e}", path.display()))
}

/// Encodes one record as a frame.
pub fn encode_frame<T: Serialize>(record: &T) -> Result<Vec<u8>, Error> {
    let payload = bincode::serialize(record).map_err(|e| Error::Metadata(e.to_string()))?;
    let mut frame = vec![0u8; FRAME_HEADER_BYTES];
    BigEndian::write_u32(&mut frame[0..4], payload.len() as u32);
    BigEndian::write_u32(&mut frame[4..8], crc32fast::hash(&payload));
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Decodes the longest valid prefix of frames; returns the records and the prefix length.
pub fn decode_frames<T: DeserializeOwned>(bytes: &[u8]) -> (Vec<T>, usize) {
    let mut records = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= FRAME_HEADER_BYTES {
        let len = BigEndian::read_u32(&bytes[pos..pos + 4]) as usize;
        let crc = BigEndian::read_u32(&bytes[pos + 4..pos + 8]);
        if len > METADATA_RECORD_BYTES_MAX || bytes.len() - pos - FRAME_HEADER_BYTES < len {
            break;
        }
        let payload = &bytes[pos + FRAME_HEADER_BYTES..pos + FRAME_HEADER_BYTES + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        let opts = bincode::config::DefaultOptions::new()
            .with_fixint_encoding()
            .allow_trailing_bytes()
            .with_limit(len as u64);
        use bincode::Options;
        let Ok(record) = opts.deserialize::<T>(payload) else {
            break;
        };
        records.push(record);
        pos += FRAME_HEADER_BYTES + len;
    }
    (records, pos)
}

pub struct RecordLog<T> {
    path: PathBuf,
    writer: BufWriter<File>,
    _record: PhantomData<fn(T)>,
}

impl<T: Serialize + DeserializeOwned> RecordLog<T> {
    /// Opens the file (creating it if missing), returning the records it holds.
    pub fn open(path: &Path) -> Result<(RecordLog<T>, Vec<T>), Error> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(|e| io_err(path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path, e)),
        }
        let (records, valid) = decode_frames::<T>(&bytes);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io_err(path, e))?;
        if valid < bytes.len() {
            log::warn!(
                "{}: cutting {} bytes of torn or corrupt metadata after {} records",
                path.display(),
                bytes.len() - valid,
                records.len()
            );
            file.set_len(valid as u64).map_err(|e| io_err(path, e))?;
            file.sync_all().map_err(|e| io_err(path, e))?;
        }
        Ok((
            RecordLog {
                path: path.to_path_buf(),
                writer: BufWriter::new(file),
                _record: PhantomData,
            },
            records,
        ))
    }

    /// Appends a record; with `sync` it is fsynced before returning.
    pub fn append(&mut self, record: &T, sync: bool) -> Result<(), Error> {
        let frame = encode_frame(record)?;
        self.writer
            .write_all(&frame)
            .and_then(|_| self.writer.flush())
            .map_err(|e| io_err(&self.path, e))?;
        if sync {
            self.writer
                .get_ref()
                .sync_data()
                .map_err(|e| io_err(&self.path, e))?;
        }
        Ok(())
    }

    /// Atomically replaces the file with exactly `records` (compaction).
    pub fn rewrite(&mut self, records: &[T]) -> Result<(), Error> {
        let tmp = self.path.with_extension("compact");
        {
            let mut w = BufWriter::new(File::create(&tmp).map_err(|e| io_err(&tmp, e))?);
            for r in records {
                w.write_all(&encode_frame(r)?)
                    .map_err(|e| io_err(&tmp, e))?;
            }
            let f = w.into_inner().map_err(|e| io_err(&tmp, e.error()))?;
            f.sync_all().map_err(|e| io_err(&tmp, e))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| io_err(&self.path, e))?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir).map_err(|e| io_err(dir, e))?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| io_err(&self.path, e))?;
        self.writer = BufWriter::new(file);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn torn_tail_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("m.log");
        {
            let (mut log, recs) = RecordLog::<String>::open(&path).expect("open");
            assert!(recs.is_empty());
            log.append(&"one".to_string(), true).expect("append");
            log.append(&"two".to_string(), true).expect("append");
        }
        let len = std::fs::metadata(&path).expect("meta").len();
        let f = OpenOptions::new().write(true).open(&path).expect("open");
        f.set_len(len - 2).expect("truncate");
        let (mut log, recs) = RecordLog::<String>::open(&path).expect("open");
        assert_eq!(recs, vec!["one".to_string()]);
        log.append(&"three".to_string(), true).expect("append");
        let (_, recs) = RecordLog::<String>::open(&path).expect("open");
        assert_eq!(recs, vec!["one".to_string(), "three".to_string()]);
    }

    #[test]
    fn rewrite_replaces_contents() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("m.log");
        let (mut log, _) = RecordLog::<u64>::open(&path).expect("open");
        for i in 0..10 {
            log.append(&i, false).expect("append");
        }
        log.rewrite(&[7, 8]).expect("rewrite");
        log.append(&9, true).expect("append");
        let (_, recs) = RecordLog::<u64>::open(&path).expect("open");
        assert_eq!(recs, vec![7, 8, 9]);
    }

    proptest! {
        #[test]
        fn frames_round_trip(records in proptest::collection::vec(("[a-z]{0,12}", any::<i64>()), 0..20)) {
            let mut bytes = Vec::new();
            for r in &records { bytes.extend(encode_frame(r).expect("encode")); }
            let (decoded, used) = decode_frames::<(String, i64)>(&bytes);
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(decoded, records);
        }

        #[test]
        fn any_prefix_decodes_to_a_prefix(records in proptest::collection::vec(any::<u32>(), 1..10), cut in any::<prop::sample::Index>()) {
            let mut bytes = Vec::new();
            for r in &records { bytes.extend(encode_frame(r).expect("encode")); }
            let cut = cut.index(bytes.len());
            let (decoded, _) = decode_frames::<u32>(&bytes[..cut]);
            prop_assert!(decoded.len() <= records.len());
            prop_assert_eq!(&records[..decoded.len()], &decoded[..]);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_frames::<(String, Vec<u8>, i64)>(&bytes);
        }
    }
}
