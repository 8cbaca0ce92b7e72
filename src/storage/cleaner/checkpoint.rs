//! The cleaner's per-partition checkpoint `cleaner-checkpoint`: the clean point (first dirty
//! offset), so a restart does not re-clean what was cleaned.
//!
//! Framing: `storage::checkpoint` (body, then CRC-32 of the body, u32 big-endian; written to
//! `cleaner-checkpoint.tmp`, fsynced, renamed, directory fsynced). Body, 16 bytes:
//! ```text
//! 0  "TSCL"                 4 bytes, magic
//! 4  version u8             1
//! 5  reserved [u8; 3]       0
//! 8  first_dirty_offset i64 big-endian
//! ```
//! A file that is missing, damaged (CRC), of another magic or an unknown version reads as
//! absent: the cleaner then starts from the log start, which is always correct (cleaning is
//! idempotent), only slower. The clean point is only a hint for how much to map: a stale one
//! (a crash after a swap, before this file moved) re-cleans a section that is already clean.
//! The file's existence also means "this log has been cleaned": it is written before the
//! first swap, and crash recovery then accepts offsets that skip ahead between batches
//! (`storage::recovery`); it is never deleted while the log exists.

use std::path::Path;

use byteorder::{BigEndian, ByteOrder};

use crate::storage::{StorageError, checkpoint};

pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-checkpoint";
const MAGIC: &[u8; 4] = b"TSCL";
const VERSION: u8 = 1;
const BODY_BYTES: usize = 16;

pub fn encode(first_dirty_offset: i64) -> [u8; BODY_BYTES] {
    let mut b = [0u8; BODY_BYTES];
    b[..4].copy_from_slice(MAGIC);
    b[4] = VERSION;
    BigEndian::write_i64(&mut b[8..16], first_dirty_offset);
    b
}

pub fn decode(body: &[u8]) -> Option<i64> {
    (body.len() == BODY_BYTES && &body[..4] == MAGIC && body[4] == VERSION)
        .then(|| BigEndian::read_i64(&body[8..16]))
}

/// The clean point stored in `dir`, if any.
pub fn read(dir: &Path) -> Option<i64> {
    checkpoint::read_bytes(&dir.join(CLEANER_CHECKPOINT_FILE)).and_then(|b| decode(&b))
}

/// Stores the clean point of `dir` durably.
pub fn write(dir: &Path, first_dirty_offset: i64) -> Result<(), StorageError> {
    checkpoint::write_bytes(
        &dir.join(CLEANER_CHECKPOINT_FILE),
        &encode(first_dirty_offset),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_versions() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(dir.path()), None);
        write(dir.path(), 1234).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(dir.path()), Some(1234));
        let mut body = encode(7);
        assert_eq!(decode(&body), Some(7));
        body[4] = 2;
        assert_eq!(decode(&body), None);
    }
}
