//! Append-only file of CRC-framed metadata records (`__topics.meta`, `__consumer_offsets.meta`).
//!
//! Layout (byte by byte in `super`'s docs): a sequence of frames
//! `length: u32 BE | crc32: u32 BE (crc32fast over the payload) | payload`; in the current
//! format the first frame is the header frame (`FILE_MAGIC`, format version, file kind) and
//! every other payload starts with its record's version byte. A file whose first intact frame
//! is not a header frame is a legacy file (written before the header existed): its records are
//! decoded with the frozen legacy layout and the file is rewritten in the current format
//! before `open` returns.
//!
//! Invariants:
//! - `open` returns exactly the records of the longest prefix of whole, checksummed frames and
//!   cuts the file to that prefix: a short frame, a length past the end (or over
//!   `METADATA_RECORD_BYTES_MAX`), a zero length (zero-filled bytes) or a CRC mismatch ends the
//!   prefix, wherever it is (a torn tail from a crash, as a log's is: what follows is cut);
//! - a frame whose CRC matches but whose payload does not decode (unknown version, bad field,
//!   bad config value) is never cut: `open` fails naming the file and the frame's byte offset
//!   and leaves the file unchanged;
//! - after `open` the file is in the current format (header frame first), so appends never mix
//!   formats;
//! - the writer never writes a frame the reader would cut: a record whose payload is over
//!   `METADATA_RECORD_BYTES_MAX` is refused with an error (`append`, `append_all`, `rewrite`)
//!   and nothing is written;
//! - `append_all` writes all its records with one `write` of their frames (one fsync, by the
//!   caller or the flusher, covers them all);
//! - `rewrite` replaces the file atomically (temp file, fsync, rename, fsync dir), so a crash
//!   during compaction leaves either the old or the new file, never a mix.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use byteorder::{BigEndian, ByteOrder};

use crate::error::Error;
use crate::storage::sync_dir;

pub use crate::limits::METADATA_RECORD_BYTES_MAX;
const FRAME_HEADER_BYTES: usize = 8;
/// First bytes of the header frame's payload. A legacy file's first payload starts with a
/// bincode enum tag (`u32` LE 0..=2), so it never starts with these.
pub(crate) const FILE_MAGIC: [u8; 4] = *b"TSMD";
/// The header frame's format version: the framing and the per-record version byte.
pub(crate) const FILE_FORMAT_VERSION: u8 = 1;
const HEADER_PAYLOAD_BYTES: usize = 6;

/// A record type stored in a metadata file: its on-disk encoding, current and legacy.
pub(crate) trait MetaRecord: Sized {
    /// The header frame's file-kind byte: a file of another kind is refused.
    const FILE_KIND: u8;
    /// The payload in the current format: the record's version byte, then its fields.
    fn encode(&self) -> Result<Vec<u8>, String>;
    /// Decodes a current-format payload (every record version this build knows).
    fn decode(payload: &[u8]) -> Result<Self, String>;
    /// Decodes a payload of a legacy file (the bincode layout written before the header).
    fn decode_legacy(payload: &[u8]) -> Result<Self, String>;
}

/// Which format a file's bytes are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileFormat {
    /// No intact frame at all (new, empty, or cut to nothing).
    Empty,
    /// Frames without a header frame: written before records were versioned.
    Legacy,
    /// Header frame, then versioned records.
    Current,
}

/// The decodable prefix of a metadata file.
#[derive(Debug)]
pub(crate) struct Decoded<T> {
    pub records: Vec<T>,
    /// Length of the prefix of whole, checksummed frames (header frame included).
    pub valid_bytes: usize,
    pub format: FileFormat,
}

/// A frame whose CRC matches but whose payload does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UndecodableRecord {
    /// Byte offset of the frame (its length field) in the file.
    pub offset: usize,
    pub reason: String,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Metadata(format!("{}: {e}", path.display()))
}

/// Frames one payload.
pub(crate) fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; FRAME_HEADER_BYTES];
    BigEndian::write_u32(&mut frame[0..4], payload.len() as u32);
    BigEndian::write_u32(&mut frame[4..8], crc32fast::hash(payload));
    frame.extend_from_slice(payload);
    frame
}

/// The header frame of a file of `kind`.
pub(crate) fn header_frame(kind: u8) -> Vec<u8> {
    let mut payload = FILE_MAGIC.to_vec();
    payload.push(FILE_FORMAT_VERSION);
    payload.push(kind);
    encode_frame(&payload)
}

/// The payload of the whole, checksummed frame at `pos`, or `None` where the valid prefix ends.
fn frame_at(bytes: &[u8], pos: usize) -> Option<&[u8]> {
    let rest = bytes.get(pos..)?;
    if rest.len() < FRAME_HEADER_BYTES {
        return None;
    }
    let len = BigEndian::read_u32(&rest[0..4]) as usize;
    let crc = BigEndian::read_u32(&rest[4..8]);
    // A zero length is never written (every payload holds at least a version byte or an enum
    // tag) and its CRC would match (CRC-32 of nothing is 0): zeros are a torn tail, e.g. a
    // zero-filled block after a power loss.
    if len == 0 || len > METADATA_RECORD_BYTES_MAX || rest.len() - FRAME_HEADER_BYTES < len {
        return None;
    }
    let payload = &rest[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len];
    (crc32fast::hash(payload) == crc).then_some(payload)
}

fn check_header(payload: &[u8], kind: u8) -> Result<(), String> {
    if payload.len() != HEADER_PAYLOAD_BYTES {
        return Err(format!(
            "header frame of {} bytes, expected {HEADER_PAYLOAD_BYTES}",
            payload.len()
        ));
    }
    if payload[4] != FILE_FORMAT_VERSION {
        return Err(format!(
            "metadata format version {} (this build reads {FILE_FORMAT_VERSION}): written by a newer Thorstream?",
            payload[4]
        ));
    }
    if payload[5] != kind {
        return Err(format!(
            "file kind {} in the header, expected {kind}: not this metadata file",
            payload[5]
        ));
    }
    Ok(())
}

/// Decodes the valid prefix of a metadata file's bytes (see the module invariants).
pub(crate) fn decode_file<T: MetaRecord>(bytes: &[u8]) -> Result<Decoded<T>, UndecodableRecord> {
    let mut records = Vec::new();
    let Some(first) = frame_at(bytes, 0) else {
        return Ok(Decoded {
            records,
            valid_bytes: 0,
            format: FileFormat::Empty,
        });
    };
    let (format, mut pos) = if first.starts_with(&FILE_MAGIC) {
        check_header(first, T::FILE_KIND)
            .map_err(|reason| UndecodableRecord { offset: 0, reason })?;
        (FileFormat::Current, FRAME_HEADER_BYTES + first.len())
    } else {
        (FileFormat::Legacy, 0)
    };
    while let Some(payload) = frame_at(bytes, pos) {
        let record = match format {
            FileFormat::Legacy => T::decode_legacy(payload),
            _ => T::decode(payload),
        }
        .map_err(|reason| UndecodableRecord {
            offset: pos,
            reason,
        })?;
        records.push(record);
        pos += FRAME_HEADER_BYTES + payload.len();
    }
    Ok(Decoded {
        records,
        valid_bytes: pos,
        format,
    })
}

pub(crate) struct RecordLog<T> {
    path: PathBuf,
    writer: BufWriter<File>,
    _record: PhantomData<fn(T)>,
}

impl<T: MetaRecord> RecordLog<T> {
    /// Opens the file (creating it if missing), returning the records it holds. A legacy file
    /// is rewritten in the current format; a torn tail is cut; an intact frame that does not
    /// decode fails the open and changes nothing.
    pub fn open(path: &Path) -> Result<(RecordLog<T>, Vec<T>), Error> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(|e| io_err(path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path, e)),
        }
        let decoded = decode_file::<T>(&bytes).map_err(|u| {
            Error::Metadata(format!(
                "{}: the record at byte offset {} is intact (its CRC-32 matches) but does not \
                 decode: {}; the file is left unchanged",
                path.display(),
                u.offset,
                u.reason
            ))
        })?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io_err(path, e))?;
        let valid = decoded.valid_bytes;
        if valid < bytes.len() {
            log::warn!(
                "{}: cutting {} bytes of torn or corrupt metadata after {} records",
                path.display(),
                bytes.len() - valid,
                decoded.records.len()
            );
            file.set_len(valid as u64).map_err(|e| io_err(path, e))?;
            file.sync_all().map_err(|e| io_err(path, e))?;
        }
        let mut log = RecordLog {
            path: path.to_path_buf(),
            writer: BufWriter::new(file),
            _record: PhantomData,
        };
        match decoded.format {
            FileFormat::Current => {}
            FileFormat::Empty => log.write_frame(&header_frame(T::FILE_KIND), true)?,
            FileFormat::Legacy => {
                log::info!(
                    "{}: rewriting {} records of the legacy (unversioned) format",
                    path.display(),
                    decoded.records.len()
                );
                log.rewrite(&decoded.records)?;
            }
        }
        Ok((log, decoded.records))
    }

    fn write_frame(&mut self, frame: &[u8], sync: bool) -> Result<(), Error> {
        self.writer
            .write_all(frame)
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

    /// The record's frame; a payload over `METADATA_RECORD_BYTES_MAX` (which the reader would
    /// treat as damage and cut, with everything after it) is refused.
    fn encode(&self, record: &T) -> Result<Vec<u8>, Error> {
        let payload = record.encode().map_err(|e| io_err(&self.path, e))?;
        if payload.len() > METADATA_RECORD_BYTES_MAX {
            return Err(io_err(
                &self.path,
                format!(
                    "a record of {} bytes is over the {METADATA_RECORD_BYTES_MAX} bytes a \
                     metadata record may have; not written",
                    payload.len()
                ),
            ));
        }
        Ok(encode_frame(&payload))
    }

    /// Appends a record; with `sync` it is fsynced before returning.
    pub fn append(&mut self, record: &T, sync: bool) -> Result<(), Error> {
        let frame = self.encode(record)?;
        self.write_frame(&frame, sync)
    }

    /// Appends every record with one write of their frames, handed to the OS (not fsynced:
    /// see `sync_handle`). Nothing is written if any record cannot be encoded.
    pub fn append_all(&mut self, records: &[T]) -> Result<(), Error> {
        let mut frames = Vec::new();
        for r in records {
            frames.extend_from_slice(&self.encode(r)?);
        }
        self.write_frame(&frames, false)
    }

    /// A second handle on the file, so a caller can fsync what was appended without holding
    /// whatever lock guards this log.
    pub fn sync_handle(&self) -> Result<File, Error> {
        self.writer
            .get_ref()
            .try_clone()
            .map_err(|e| io_err(&self.path, e))
    }

    /// Atomically replaces the file with exactly `records` (compaction), in the current format.
    pub fn rewrite(&mut self, records: &[T]) -> Result<(), Error> {
        let tmp = self.path.with_extension("compact");
        {
            let mut w = BufWriter::new(File::create(&tmp).map_err(|e| io_err(&tmp, e))?);
            w.write_all(&header_frame(T::FILE_KIND))
                .map_err(|e| io_err(&tmp, e))?;
            for r in records {
                w.write_all(&self.encode(r)?).map_err(|e| io_err(&tmp, e))?;
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
#[path = "record_log_tests.rs"]
mod tests;
