//! Helpers shared by the fuzz targets and the corpus generator (included with `#[path]`).
#![allow(dead_code)]

use std::path::Path;

use thorstream::Record;
use thorstream::internals::storage::batch::{
    BATCH_HEADER_BYTES, BatchHeader, rewrite_crc, set_base_offset,
};

/// A temporary directory on tmpfs when there is one (the targets fsync a lot).
pub fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::Builder::new()
            .prefix("thorstream-fuzz")
            .tempdir_in(shm)
    {
        return d;
    }
    match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("cannot create a temporary directory: {e}"),
    }
}

/// A valid uncompressed batch of `values`, base offset 0.
pub fn batch(values: &[&[u8]], now_ms: i64) -> Vec<u8> {
    let records: Vec<Record> = values.iter().map(|v| Record::new(v.to_vec())).collect();
    match thorstream::internals::protocol::records::encode_batch(&records, now_ms) {
        Ok(b) => b,
        Err(e) => panic!("cannot encode a batch: {e}"),
    }
}

/// `batch` as an idempotent producer's batch (producer id, epoch, first sequence).
pub fn idempotent_batch(values: &[&[u8]], pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
    let mut b = batch(values, 1_700_000_000_000);
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let len = b.len();
    rewrite_crc(&mut b, len);
    b
}

/// Walks the batches in `buf` by their length fields and recomputes each CRC (and, with
/// `assign_from`, overwrites base offsets with dense ones as the broker assigns them), so
/// mutations get past the checksum. Stops at the first header that does not parse or whose
/// length runs past the end. Returns the offset after the last batch touched.
pub fn fix_batches(buf: &mut [u8], assign_from: Option<i64>) -> Option<i64> {
    let mut pos = 0;
    let mut next = assign_from;
    while buf.len() - pos >= BATCH_HEADER_BYTES {
        let Ok(h) = BatchHeader::parse(&buf[pos..]) else {
            break;
        };
        let total = h.total_bytes();
        if total > buf.len() - pos {
            break;
        }
        if let Some(n) = next {
            set_base_offset(&mut buf[pos..], n);
            next = n.checked_add(i64::from(h.last_offset_delta.max(0)) + 1);
        }
        rewrite_crc(&mut buf[pos..], total);
        pos += total;
    }
    next
}

/// Recomputes the CRC-32 of every `len u32 BE | crc u32 BE | payload` frame of a metadata
/// record log (`__topics.meta`, `__consumer_offsets.meta`).
pub fn fix_record_frames(buf: &mut [u8]) {
    let mut pos = 0;
    while buf.len() - pos >= 8 {
        let len = u32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]) as usize;
        if len > buf.len() - pos - 8 {
            break;
        }
        let crc = crc32fast::hash(&buf[pos + 8..pos + 8 + len]);
        buf[pos + 4..pos + 8].copy_from_slice(&crc.to_be_bytes());
        pos += 8 + len;
    }
}

/// A checkpoint file's bytes: `body` then its CRC-32 (as `storage::checkpoint::write_bytes`).
pub fn checkpoint_bytes(body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    b.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
    b
}

/// Splits off a little-endian length-prefixed part (length clamped to what is left).
pub fn take_part<'a>(data: &mut &'a [u8], len_bytes: usize) -> &'a [u8] {
    if data.len() < len_bytes {
        let all = *data;
        *data = &[];
        return all;
    }
    let mut n = 0usize;
    for (i, b) in data[..len_bytes].iter().enumerate() {
        n |= usize::from(*b) << (8 * i);
    }
    let rest = &data[len_bytes..];
    let n = n.min(rest.len());
    let (part, tail) = rest.split_at(n);
    *data = tail;
    part
}

/// Encodes a length-prefixed part for `take_part` (corpus generation).
pub fn put_part(out: &mut Vec<u8>, part: &[u8], len_bytes: usize) {
    let n = part.len();
    for i in 0..len_bytes {
        out.push((n >> (8 * i)) as u8);
    }
    out.extend_from_slice(part);
}
