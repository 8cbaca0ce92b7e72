//! The records inside a stored v2 batch, as the cleaner sees them: parsed one by one (key,
//! whether the value is null, offset and timestamp deltas) and re-encoded into a rewritten
//! batch. Pure functions over bytes; no I/O.
//!
//! Record layout (Kafka's v2 record; varints are zigzag, `varlong` 64-bit):
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//! keyLength varint (-1: null) | key | valueLength varint (-1: null) | value
//! headerCount varint | headers (keyLength varint, key, valueLength varint, value)*
//! ```
//!
//! A rewritten batch (`write_batch`) keeps the original batch's base offset, last offset delta
//! (so the offsets a producer was told and its last sequence, `baseSequence + lastOffsetDelta`,
//! stay what they were, as Kafka's `MemoryRecordsBuilder.overrideLastOffset`), partition leader
//! epoch, producer id, epoch and base sequence; its records are compressed again with the
//! original batch's codec at that codec's default level (Kafka's `MemoryRecords.filterTo`;
//! the compressor is the produce path's, `validator::compress`), except that a batch keeping
//! no record is an uncompressed empty header, as Kafka's `writeEmptyHeader`. `recordCount` is
//! the records kept, so
//! `recordCount ≤ lastOffsetDelta + 1` (0 for the empty header kept for a producer's last
//! batch). With a delete horizon, attribute bit 6 (`0x40`, Kafka's `DELETE_HORIZON_FLAG`) is
//! set and `baseTimestamp` holds the horizon; every record's timestamp delta is re-based so
//! that `baseTimestamp + timestampDelta` is still the record's timestamp. The CRC-32C is
//! recomputed.

use byteorder::{BigEndian, ByteOrder};

use crate::storage::batch::{BATCH_HEADER_BYTES, BatchError, BatchHeader, LOG_OVERHEAD_BYTES};
use crate::storage::inflate::inflate;
use crate::storage::validator::{TargetCodec, compress};

/// Attribute bit: `baseTimestamp` is the batch's delete horizon (Kafka's `DELETE_HORIZON_FLAG`).
pub const DELETE_HORIZON_FLAG: i16 = 0x40;
/// Attribute bit: the batch's timestamps are the broker's log-append time.
const LOG_APPEND_TIME_FLAG: i16 = 0x08;
const COMPRESSION_MASK: i16 = 0x07;

/// One record of a batch, borrowed from the batch's (inflated) body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub has_value: bool,
    /// The record's bytes from `keyLength` to its end (copied as they are when rewriting).
    tail: &'a [u8],
}

/// The batch's records body, inflated when the batch is compressed.
pub fn records_body<'a>(
    header: &BatchHeader,
    batch: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>, BatchError> {
    let body =
        batch
            .get(BATCH_HEADER_BYTES..header.total_bytes())
            .ok_or(BatchError::Truncated {
                needed: header.total_bytes(),
                available: batch.len(),
            })?;
    Ok(match header.compression_codec() {
        0 => std::borrow::Cow::Borrowed(body),
        codec => std::borrow::Cow::Owned(inflate(codec, body)?),
    })
}

/// Parses every record of a records body (see `records_body`).
pub fn parse_records(mut body: &[u8]) -> Result<Vec<RecordRef<'_>>, BatchError> {
    let bad = || BatchError::InvalidRecordCount {
        count: -1,
        last_offset_delta: -1,
    };
    let mut out = Vec::new();
    while !body.is_empty() {
        let (len, used) = read_varint(body).ok_or_else(bad)?;
        let len = usize::try_from(len).map_err(|_| bad())?;
        let record = body.get(used..used + len).ok_or_else(bad)?;
        body = &body[used + len..];
        out.push(parse_record(record).ok_or_else(bad)?);
    }
    Ok(out)
}

fn parse_record(r: &[u8]) -> Option<RecordRef<'_>> {
    let attributes = *r.first()? as i8;
    let mut pos = 1;
    let (timestamp_delta, n) = read_varlong(r.get(pos..)?)?;
    pos += n;
    let (offset_delta, n) = read_varint(r.get(pos..)?)?;
    pos += n;
    let tail = r.get(pos..)?;
    let (key_len, n) = read_varint(tail)?;
    let mut p = n;
    let key = if key_len < 0 {
        None
    } else {
        let k = tail.get(p..p + key_len as usize)?;
        p += key_len as usize;
        Some(k)
    };
    let (value_len, _) = read_varint(tail.get(p..)?)?;
    Some(RecordRef {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        has_value: value_len >= 0,
        tail,
    })
}

/// True when every record of the batch has a key (a compacted topic refuses the others).
/// Control batches are not records of the user's and pass.
pub fn all_records_keyed(header: &BatchHeader, batch: &[u8]) -> Result<bool, BatchError> {
    if header.is_control() {
        return Ok(true);
    }
    let body = records_body(header, batch)?;
    Ok(parse_records(&body)?.iter().all(|r| r.key.is_some()))
}

/// How a rewritten batch is stamped.
#[derive(Debug, Clone, Copy)]
pub struct Rewrite {
    /// Set the delete horizon (bit 6, `baseTimestamp`) to this, when the batch has none yet.
    pub delete_horizon_ms: Option<i64>,
}

/// Encodes a batch holding `kept` (records of the batch `header` describes, in order) under
/// the rules of this module's doc. `kept` may be empty (a producer's last batch). Fails only
/// if the compressor does, or the batch's codec is unknown (it was inflated, so never).
pub fn write_batch(
    header: &BatchHeader,
    kept: &[RecordRef<'_>],
    rewrite: Rewrite,
) -> Result<Vec<u8>, BatchError> {
    let had_horizon = header.attributes & DELETE_HORIZON_FLAG != 0;
    let horizon = if had_horizon {
        None
    } else {
        rewrite.delete_horizon_ms
    };
    let old_base_ts = header.base_timestamp;
    let new_base_ts = horizon.unwrap_or(old_base_ts);
    let codec = if kept.is_empty() {
        0
    } else {
        header.compression_codec()
    };
    let target = TargetCodec::of_id(codec).ok_or(BatchError::Inflate(
        crate::storage::inflate::InflateError::UnknownCodec(codec),
    ))?;
    let mut attributes = (header.attributes & !COMPRESSION_MASK) | codec;
    if horizon.is_some() {
        attributes |= DELETE_HORIZON_FLAG;
    }
    let log_append_time = header.attributes & LOG_APPEND_TIME_FLAG != 0;
    let mut body = Vec::new();
    let mut max_ts = if kept.is_empty() || log_append_time {
        header.max_timestamp
    } else {
        i64::MIN
    };
    let mut record = Vec::new();
    for r in kept {
        let ts = old_base_ts.saturating_add(r.timestamp_delta);
        if !log_append_time {
            max_ts = max_ts.max(ts);
        }
        record.clear();
        record.push(r.attributes as u8);
        write_varlong(&mut record, ts.saturating_sub(new_base_ts));
        write_varlong(&mut record, i64::from(r.offset_delta));
        record.extend_from_slice(r.tail);
        write_varlong(&mut body, record.len() as i64);
        body.extend_from_slice(&record);
    }
    let mut out = vec![0u8; BATCH_HEADER_BYTES];
    compress(target, &body, &mut out)?;
    BigEndian::write_i64(&mut out[0..8], header.base_offset);
    let batch_length = (out.len() - LOG_OVERHEAD_BYTES) as i32;
    BigEndian::write_i32(&mut out[8..12], batch_length);
    BigEndian::write_i32(&mut out[12..16], header.partition_leader_epoch);
    out[16] = 2;
    BigEndian::write_i16(&mut out[21..23], attributes);
    BigEndian::write_i32(&mut out[23..27], header.last_offset_delta);
    BigEndian::write_i64(&mut out[27..35], new_base_ts);
    BigEndian::write_i64(&mut out[35..43], max_ts);
    BigEndian::write_i64(&mut out[43..51], header.producer_id);
    BigEndian::write_i16(&mut out[51..53], header.producer_epoch);
    BigEndian::write_i32(&mut out[53..57], header.base_sequence);
    BigEndian::write_i32(&mut out[57..61], kept.len() as i32);
    let total = out.len();
    crate::storage::batch::rewrite_crc(&mut out, total);
    Ok(out)
}

/// The batch's delete horizon, if one was set by an earlier clean.
pub fn delete_horizon_ms(header: &BatchHeader) -> Option<i64> {
    (header.attributes & DELETE_HORIZON_FLAG != 0).then_some(header.base_timestamp)
}

/// A zigzag varint (32-bit) and its length in bytes.
fn read_varint(buf: &[u8]) -> Option<(i32, usize)> {
    let (v, n) = read_varlong(buf)?;
    (n <= 5).then_some(())?;
    i32::try_from(v).ok().map(|v| (v, n))
}

/// A zigzag varlong and its length in bytes.
fn read_varlong(buf: &[u8]) -> Option<(i64, usize)> {
    let mut raw = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(((raw >> 1) as i64 ^ -((raw & 1) as i64), i + 1));
        }
    }
    None
}

fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::records::encode_batch_with;
    use crate::storage::batch::validate_batch;
    use crate::types::Record;
    use kafka_protocol::records::Compression;
    use proptest::prelude::*;

    fn batch(records: &[Record], compression: Compression) -> Vec<u8> {
        encode_batch_with(records, 1_000, compression).unwrap_or_else(|e| panic!("{e}"))
    }

    proptest! {
        #[test]
        fn varlongs_round_trip(v in any::<i64>()) {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            prop_assert_eq!(read_varlong(&out), Some((v, out.len())));
        }

        /// Any subset of a batch's records, rewritten, decodes (with kafka-protocol, as a
        /// consumer would) to exactly those records with their offsets and timestamps, in the
        /// batch's own codec (uncompressed when none is kept), its stored form valid.
        #[test]
        fn rewritten_batches_keep_offsets_and_timestamps(
            n in 1usize..20,
            keep_mask in any::<u32>(),
            codec_id in 0i16..5,
            horizon in proptest::option::of(0i64..1_000_000),
        ) {
            let records: Vec<Record> = (0..n)
                .map(|i| {
                    let r = Record::new(format!("v{i}").into_bytes()).key(format!("k{i}"));
                    if i % 3 == 0 { Record { value: None, ..r } } else { r }
                })
                .collect();
            let codec = [
                Compression::None,
                Compression::Gzip,
                Compression::Snappy,
                Compression::Lz4,
                Compression::Zstd,
            ][codec_id as usize];
            let mut bytes = batch(&records, codec);
            crate::storage::batch::set_base_offset(&mut bytes, 100);
            let header = validate_batch(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let body = records_body(&header, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let parsed = parse_records(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parsed.len(), n);
            let kept: Vec<RecordRef<'_>> = parsed
                .iter()
                .enumerate()
                .filter(|(i, _)| keep_mask & (1 << i) != 0)
                .map(|(_, r)| *r)
                .collect();
            prop_assert_eq!(header.compression_codec(), codec_id);
            let out = write_batch(&header, &kept, Rewrite { delete_horizon_ms: horizon })
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let h = crate::storage::batch::validate_stored_batch(&out)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            crate::storage::batch::check_compressed_record_counts(&out)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let want_codec = if kept.is_empty() { 0 } else { codec_id };
            prop_assert_eq!(h.compression_codec(), want_codec);
            // Every other attribute bit is the original's, or the horizon flag.
            let other_bits = !(COMPRESSION_MASK | DELETE_HORIZON_FLAG);
            prop_assert_eq!(h.attributes & other_bits, header.attributes & other_bits);
            prop_assert_eq!(h.base_offset, 100);
            prop_assert_eq!(h.last_offset_delta, header.last_offset_delta);
            prop_assert_eq!(h.record_count as usize, kept.len());
            prop_assert_eq!(delete_horizon_ms(&h), horizon);
            let decoded = crate::protocol::records::decode_records("t", 0, &out, 0)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let want: Vec<(i64, Option<Vec<u8>>)> = kept
                .iter()
                .map(|r| (100 + i64::from(r.offset_delta), r.key.map(<[u8]>::to_vec)))
                .collect();
            let got: Vec<(i64, Option<Vec<u8>>)> = decoded
                .iter()
                .map(|r| (r.offset, r.key.as_ref().map(|k| k.to_vec())))
                .collect();
            prop_assert_eq!(got, want);
            for r in &decoded {
                let original = &records[(r.offset - 100) as usize];
                prop_assert_eq!(r.timestamp, original.timestamp.unwrap_or(1_000));
                prop_assert_eq!(r.value.is_none(), original.value.is_none());
            }
        }
    }

    #[test]
    fn keyless_records_are_found_in_plain_and_compressed_batches() {
        for codec in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let keyed = batch(&[Record::new(b"v".to_vec()).key("k")], codec);
            let keyless = batch(
                &[
                    Record::new(b"v".to_vec()).key("k"),
                    Record::new(b"w".to_vec()),
                ],
                codec,
            );
            let check = |b: &[u8]| {
                let h = validate_batch(b).unwrap_or_else(|e| panic!("{e}"));
                all_records_keyed(&h, b).unwrap_or_else(|e| panic!("{e}"))
            };
            assert!(check(&keyed), "{codec:?}");
            assert!(!check(&keyless), "{codec:?}");
        }
    }
}
