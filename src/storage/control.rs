//! Control batches: the commit/abort markers a transaction coordinator writes to every
//! partition of a transaction (KIP-98), built byte for byte as Kafka's `EndTransactionMarker`
//! inside a RecordBatch v2, and read back.
//!
//! Layout (big-endian; the batch header as in `batch.rs`):
//! - header: base offset 0 (assigned at append), partition leader epoch -1, magic 2,
//!   attributes 0x30 (transactional | control, no codec, CreateTime), last offset delta 0,
//!   base and max timestamp = the write time, the producer's id and epoch, base sequence -1,
//!   one record;
//! - the record: attributes 0, timestamp delta 0, offset delta 0;
//!   key (4 bytes) = version i16 (0) | type i16 (0 abort, 1 commit);
//!   value (6 bytes) = version i16 (0) | coordinator epoch i32; no headers.

use crate::storage::batch::BATCH_HEADER_BYTES;

/// Bytes of a marker batch: the 61-byte header, the 1-byte length and a 16-byte record.
pub const MARKER_BATCH_BYTES: usize = BATCH_HEADER_BYTES + 17;

/// A marker's type (the record key's second field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

/// Builds one marker batch for `producer_id`/`producer_epoch` (base offset 0).
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    kind: ControlType,
    coordinator_epoch: i32,
    now_ms: i64,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(MARKER_BATCH_BYTES);
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((MARKER_BATCH_BYTES - 12) as i32).to_be_bytes()); // batch length
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, filled in below
    b.extend_from_slice(&0x30i16.to_be_bytes()); // attributes: transactional | control
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&now_ms.to_be_bytes()); // base timestamp
    b.extend_from_slice(&now_ms.to_be_bytes()); // max timestamp
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&1i32.to_be_bytes()); // record count
    // The record: length 16 (zigzag varint 32), then its fields.
    b.push(32);
    b.push(0); // attributes
    b.push(0); // timestamp delta
    b.push(0); // offset delta
    b.push(8); // key length 4
    b.extend_from_slice(&0i16.to_be_bytes()); // key version
    let kind: i16 = match kind {
        ControlType::Abort => 0,
        ControlType::Commit => 1,
    };
    b.extend_from_slice(&kind.to_be_bytes());
    b.push(12); // value length 6
    b.extend_from_slice(&0i16.to_be_bytes()); // value version
    b.extend_from_slice(&coordinator_epoch.to_be_bytes());
    b.push(0); // no headers
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The marker type of a control batch's bytes (whole batch, uncompressed, as written by
/// `marker_batch` or by Kafka), or `None` if it holds no recognisable marker.
pub fn marker_type(batch: &[u8]) -> Option<ControlType> {
    // Record: length varint at 61, attributes, ts delta, offset delta, key length, key.
    let rec = batch.get(BATCH_HEADER_BYTES..)?;
    // Skip the length varint (1 byte for any marker record) and three 1-byte fields.
    if rec.first()? & 0x80 != 0 {
        return None;
    }
    let key_len = *rec.get(4)?;
    if key_len != 8 {
        return None;
    }
    let kind = i16::from_be_bytes([*rec.get(7)?, *rec.get(8)?]);
    match kind {
        0 => Some(ControlType::Abort),
        1 => Some(ControlType::Commit),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::validate_batches;

    #[test]
    fn marker_is_a_valid_control_batch() {
        for kind in [ControlType::Abort, ControlType::Commit] {
            let b = marker_batch(42, 3, kind, 0, 1_700_000_000_000);
            assert_eq!(b.len(), MARKER_BATCH_BYTES);
            let headers = validate_batches(&b, 1 << 20).expect("valid");
            assert_eq!(headers.len(), 1);
            let h = headers[0];
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.record_count),
                (42, 3, 1)
            );
            assert_eq!(marker_type(&b), Some(kind));
        }
    }
}
