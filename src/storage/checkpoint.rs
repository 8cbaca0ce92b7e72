//! Small checkpoint files: an i64 or a short blob written atomically (temp file, fsync, rename, fsync dir) with a
//! CRC-32 so a damaged checkpoint reads as absent rather than as a wrong value.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use byteorder::{BigEndian, ByteOrder};

use super::{StorageError, sync_dir};

/// Reads a checkpoint; `None` if missing or damaged.
pub fn read_i64(path: &Path) -> Option<i64> {
    let body = read_bytes(path)?;
    (body.len() == 8).then(|| BigEndian::read_i64(&body))
}

/// Writes a checkpoint durably (same framing as `write_bytes`: value, then CRC-32).
pub fn write_i64(path: &Path, value: i64) -> Result<(), StorageError> {
    write_bytes(path, &value.to_be_bytes())
}

/// Reads a CRC-framed byte blob; `None` if missing or damaged.
pub fn read_bytes(path: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < 4 {
        return None;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    (crc32fast::hash(body) == BigEndian::read_u32(crc)).then(|| body.to_vec())
}

/// Writes a CRC-framed byte blob atomically and durably.
pub fn write_bytes(path: &Path, body: &[u8]) -> Result<(), StorageError> {
    let mut bytes = body.to_vec();
    let mut crc = [0u8; 4];
    BigEndian::write_u32(&mut crc, crc32fast::hash(body));
    bytes.extend_from_slice(&crc);
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
    f.write_all(&bytes).map_err(|e| StorageError::io(&tmp, e))?;
    f.sync_all().map_err(|e| StorageError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| StorageError::io(path, e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_reads_as_absent() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("cp");
        assert_eq!(read_i64(&p), None);
        write_i64(&p, 42).expect("write");
        assert_eq!(read_i64(&p), Some(42));
        let mut b = std::fs::read(&p).expect("read");
        b[3] ^= 1;
        std::fs::write(&p, b).expect("write");
        assert_eq!(read_i64(&p), None);
    }
}
