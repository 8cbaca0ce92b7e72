//! Kafka RecordBatch v2 headers: parsing, validation and offset assignment.
//!
//! A batch on disk is byte-for-byte the batch a producer sent, except the first eight bytes
//! (`baseOffset`), which the broker overwrites with the offset it assigns. `baseOffset` is not
//! covered by the CRC, so assigning offsets never re-encodes or re-checksums a batch.
//!
//! Layout (big-endian), offsets in bytes from the start of the batch:
//! ```text
//!  0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8
//! 17 crc u32 (CRC-32C of bytes 21..end) | 21 attributes i16 | 23 lastOffsetDelta i32
//! 27 baseTimestamp i64 | 35 maxTimestamp i64 | 43 producerId i64 | 51 producerEpoch i16
//! 53 baseSequence i32 | 57 recordCount i32 | 61 records...
//! ```
//! Invariant: every batch this module accepts has magic 2, a `batchLength` that covers at least
//! the header and stays inside the buffer, a matching CRC-32C, and `recordCount ==
//! lastOffsetDelta + 1 > 0` (as produced) or `0 ≤ recordCount ≤ lastOffsetDelta + 1` (as stored:
//! the log cleaner removes records from a batch without changing its offset range).

use byteorder::{BigEndian, ByteOrder};

use super::varint::{MIN_RECORD_BYTES, record_length};

/// Bytes of the fixed batch header.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes before `batchLength`'s coverage starts (baseOffset + batchLength).
pub const LOG_OVERHEAD_BYTES: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;

/// Why a batch was refused. The wire layer maps each to a Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported record batch magic {0} (only v2 is accepted)")]
    UnsupportedMagic(i8),
    #[error("record batch length {0} is invalid")]
    InvalidLength(i32),
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record batch has record count {count} but last offset delta {last_offset_delta}")]
    InvalidRecordCount { count: i32, last_offset_delta: i32 },
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("produce request carried no record batch")]
    Empty,
    #[error("compressed record batch claims {count} records but holds {found}")]
    CompressedRecordCount { count: i32, found: usize },
    #[error("compressed record batch: {0}")]
    Inflate(#[from] super::inflate::InflateError),
    /// A CreateTime timestamp outside the topic's bounds (`storage::validator`).
    #[error("{0}")]
    InvalidTimestamp(String),
    /// A produced control batch: only the broker writes transaction markers (Kafka's
    /// `LogValidator`, INVALID_RECORD).
    #[error("Clients are not allowed to write control records")]
    ControlBatchFromClient,
}

/// The parsed fixed header of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `buf` without checking the CRC.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < BATCH_HEADER_BYTES {
            // Report magic first when we have it: a v0/v1 message set is shorter than a v2 header.
            if buf.len() > MAGIC_OFFSET && buf[MAGIC_OFFSET] as i8 != 2 {
                return Err(BatchError::UnsupportedMagic(buf[MAGIC_OFFSET] as i8));
            }
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_BYTES,
                available: buf.len(),
            });
        }
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let batch_length = BigEndian::read_i32(&buf[8..12]);
        if (batch_length as i64) < (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i64 {
            return Err(BatchError::InvalidLength(batch_length));
        }
        Ok(BatchHeader {
            base_offset: BigEndian::read_i64(&buf[0..8]),
            batch_length,
            partition_leader_epoch: BigEndian::read_i32(&buf[12..16]),
            magic,
            crc: BigEndian::read_u32(&buf[17..21]),
            attributes: BigEndian::read_i16(&buf[21..23]),
            last_offset_delta: BigEndian::read_i32(&buf[23..27]),
            base_timestamp: BigEndian::read_i64(&buf[27..35]),
            max_timestamp: BigEndian::read_i64(&buf[35..43]),
            producer_id: BigEndian::read_i64(&buf[43..51]),
            producer_epoch: BigEndian::read_i16(&buf[51..53]),
            base_sequence: BigEndian::read_i32(&buf[53..57]),
            record_count: BigEndian::read_i32(&buf[57..61]),
        })
    }

    /// Total bytes of the batch including the 12-byte log overhead.
    pub fn total_bytes(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD_BYTES
    }

    /// Offset of the last record in the batch (saturating: a damaged base offset near
    /// `i64::MAX`, outside the CRC, must not overflow).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(self.last_offset_delta as i64)
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression_codec(&self) -> i16 {
        self.attributes & 0x07
    }

    /// True when the batch is part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    /// True for control batches (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// Producer-side timestamp used for time-based lookups and retention.
    pub fn timestamp_for_index(&self) -> i64 {
        self.max_timestamp
    }
}

/// Validates the complete batch at the start of `buf` (header, length, CRC, counts) and returns
/// its header. `buf` may hold further bytes after the batch.
pub fn validate_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    validate(buf, true)
}

/// `validate_batch` for a batch read back from a segment: a batch the log cleaner rewrote
/// keeps its offset range but may hold fewer records (`0 ≤ recordCount ≤ lastOffsetDelta +
/// 1`; 0 for the header kept for a producer's last batch). Everything else is checked alike.
pub fn validate_stored_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    validate(buf, false)
}

fn validate(buf: &[u8], as_produced: bool) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    let total = header.total_bytes();
    if total > buf.len() {
        return Err(BatchError::Truncated {
            needed: total,
            available: buf.len(),
        });
    }
    let computed = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..total]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    let count_ok = if as_produced {
        header.record_count > 0 && header.record_count as i64 == header.last_offset_delta as i64 + 1
    } else {
        header.record_count >= 0
            && header.record_count as i64 <= header.last_offset_delta as i64 + 1
    };
    if header.last_offset_delta < 0 || !count_ok {
        return Err(BatchError::InvalidRecordCount {
            count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    // An uncompressed v2 record is at least 7 bytes (length, attributes, timestamp delta,
    // offset delta, key length, value length, header count), so a count the body cannot hold
    // is a lie that would otherwise claim a huge range of offsets. Past that cheap check, the
    // records' length prefixes must frame exactly `record_count` records (a CRC only proves
    // the bytes arrived as the client sent them, not that they are consistent). Compressed
    // bodies are stored without being inflated, so their count is taken on trust.
    let body = &buf[BATCH_HEADER_BYTES..total];
    if header.compression_codec() == 0
        && (header.record_count as usize > body.len() / MIN_RECORD_BYTES
            || count_records(body) != Some(header.record_count as usize))
    {
        return Err(BatchError::InvalidRecordCount {
            count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Inflates every compressed batch in `buf` (streaming, bounded; see `inflate`) and checks
/// that it holds the records its header counts. Uncompressed batches are checked by
/// `validate_batch`; bytes that do not parse as batches are left for it to report. Run on
/// produce, outside the partition lock; not at recovery (a stored batch passed it already).
pub fn check_compressed_record_counts(buf: &[u8]) -> Result<(), BatchError> {
    let mut pos = 0;
    while let Some(rest) = buf.get(pos..).filter(|r| !r.is_empty()) {
        let Ok(header) = BatchHeader::parse(rest) else {
            return Ok(());
        };
        let total = header.total_bytes();
        let Some(body) = rest.get(BATCH_HEADER_BYTES..total) else {
            return Ok(());
        };
        let codec = header.compression_codec();
        if codec != 0 {
            let found = super::inflate::count_compressed_records(codec, body)?;
            if found != header.record_count as usize || header.record_count < 0 {
                return Err(BatchError::CompressedRecordCount {
                    count: header.record_count,
                    found,
                });
            }
        }
        pos += total;
    }
    Ok(())
}

/// Counts the records of an uncompressed batch body by their length prefixes (zigzag
/// varints); `None` if a prefix is malformed, shorter than the smallest record, or runs past
/// the end of the body.
fn count_records(mut body: &[u8]) -> Option<usize> {
    let mut count = 0usize;
    while !body.is_empty() {
        let mut bytes = body.iter().copied();
        let (len, used) =
            record_length(|| Ok::<_, std::convert::Infallible>(bytes.next())).ok()??;
        body = body.get(used..)?.get(len..)?;
        count += 1;
    }
    Some(count)
}

/// Validates every batch in `buf`, which must consist of whole batches only, and returns their
/// headers in order. `max_batch_bytes` bounds each batch (Kafka's `message.max.bytes`).
pub fn validate_batches(
    buf: &[u8],
    max_batch_bytes: usize,
) -> Result<Vec<BatchHeader>, BatchError> {
    if buf.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut headers = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let header = validate_batch(&buf[pos..])?;
        let total = header.total_bytes();
        if total > max_batch_bytes {
            return Err(BatchError::TooLarge {
                size: total,
                max: max_batch_bytes,
            });
        }
        headers.push(header);
        pos += total;
    }
    Ok(headers)
}

/// Writes the broker-assigned base offset into the batch at the start of `buf`.
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) {
    BigEndian::write_i64(&mut buf[0..8], base_offset);
}

/// Recomputes and stores the CRC of the batch at the start of `buf` (used when the broker
/// rewrites covered fields, e.g. the partition leader epoch is not covered, but timestamps are).
pub fn rewrite_crc(buf: &mut [u8], total_bytes: usize) {
    let crc = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..total_bytes]);
    BigEndian::write_u32(&mut buf[CRC_OFFSET..CRC_OFFSET + 4], crc);
}

/// Iterates over whole batches in a byte slice, stopping at the first incomplete one.
/// Only headers are parsed; CRCs are not checked (the bytes were validated when appended).
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter { buf, pos: 0 }
    }

    /// Bytes consumed by the batches yielded so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = (BatchHeader, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.pos..];
        let header = BatchHeader::parse(rest).ok()?;
        let total = header.total_bytes();
        if total > rest.len() {
            return None;
        }
        self.pos += total;
        Some((header, &rest[..total]))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Builds a syntactically valid batch of `count` records (test helper): each record is a
    /// length prefix and opaque bytes, `body` (padded to the smallest record size) in the
    /// first and minimal records after it.
    pub(crate) fn make_batch(count: i32, body: &[u8], ts: i64) -> Vec<u8> {
        let mut b = vec![0u8; BATCH_HEADER_BYTES];
        for i in 0..count.max(0) {
            let mut record = if i == 0 { body.to_vec() } else { Vec::new() };
            record.resize(record.len().max(MIN_RECORD_BYTES - 1), 0);
            let mut zigzag = (record.len() as u64) << 1;
            while zigzag >= 0x80 {
                b.push((zigzag as u8 & 0x7f) | 0x80);
                zigzag >>= 7;
            }
            b.push(zigzag as u8);
            b.extend_from_slice(&record);
        }
        let len = (b.len() - LOG_OVERHEAD_BYTES) as i32;
        BigEndian::write_i32(&mut b[8..12], len);
        b[16] = 2;
        BigEndian::write_i32(&mut b[23..27], count - 1);
        BigEndian::write_i64(&mut b[27..35], ts);
        BigEndian::write_i64(&mut b[35..43], ts);
        BigEndian::write_i64(&mut b[43..51], -1);
        BigEndian::write_i16(&mut b[51..53], -1);
        BigEndian::write_i32(&mut b[53..57], -1);
        BigEndian::write_i32(&mut b[57..61], count);
        let total = b.len();
        rewrite_crc(&mut b, total);
        b
    }

    /// One record from idempotent producer `pid` with sequence `seq` at timestamp `ts`.
    pub(crate) fn make_idempotent_batch(pid: i64, epoch: i16, seq: i32, ts: i64) -> Vec<u8> {
        let mut b = make_batch(1, b"idem", ts);
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        b[53..57].copy_from_slice(&seq.to_be_bytes());
        let total = b.len();
        rewrite_crc(&mut b, total);
        b
    }

    #[test]
    fn accepts_a_well_formed_batch() {
        let b = make_batch(3, b"abc", 7);
        let h = validate_batch(&b).expect("valid");
        assert_eq!(h.record_count, 3);
        assert_eq!(h.total_bytes(), b.len());
        assert_eq!(h.max_timestamp, 7);
    }

    #[test]
    fn rejects_flipped_byte_with_crc_mismatch() {
        let mut b = make_batch(1, b"payload", 1);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(matches!(
            validate_batch(&b),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn rejects_old_magic() {
        let mut b = make_batch(1, b"x", 1);
        b[16] = 1;
        assert_eq!(validate_batch(&b), Err(BatchError::UnsupportedMagic(1)));
    }

    #[test]
    fn rejects_count_mismatch() {
        let mut b = make_batch(2, b"x", 1);
        BigEndian::write_i32(&mut b[57..61], 5);
        let total = b.len();
        rewrite_crc(&mut b, total);
        assert!(matches!(
            validate_batch(&b),
            Err(BatchError::InvalidRecordCount { .. })
        ));
    }

    #[test]
    fn base_offset_is_outside_the_crc() {
        let mut b = make_batch(2, b"x", 1);
        set_base_offset(&mut b, 12345);
        let h = validate_batch(&b).expect("still valid");
        assert_eq!(h.base_offset, 12345);
        assert_eq!(h.last_offset(), 12346);
    }

    #[test]
    fn rejects_record_count_the_body_cannot_hold() {
        let mut b = make_batch(1, b"0123456", 1);
        BigEndian::write_i32(&mut b[57..61], i32::MAX);
        BigEndian::write_i32(&mut b[23..27], i32::MAX - 1);
        let total = b.len();
        rewrite_crc(&mut b, total);
        assert!(matches!(
            validate_batch(&b),
            Err(BatchError::InvalidRecordCount { .. })
        ));
    }

    #[test]
    fn rejects_a_count_the_records_do_not_frame() {
        for (count, delta) in [(4, 3), (2, 1)] {
            let mut b = make_batch(3, b"abcdefg", 1);
            BigEndian::write_i32(&mut b[57..61], count);
            BigEndian::write_i32(&mut b[23..27], delta);
            let total = b.len();
            rewrite_crc(&mut b, total);
            assert!(matches!(
                validate_batch(&b),
                Err(BatchError::InvalidRecordCount { .. })
            ));
        }
        let mut b = make_batch(2, b"abcdefg", 1);
        b[BATCH_HEADER_BYTES] = 0x01; // a negative record length
        let total = b.len();
        rewrite_crc(&mut b, total);
        assert!(validate_batch(&b).is_err());
    }

    #[test]
    fn too_large_batch_is_refused() {
        let b = make_batch(1, &[0u8; 100], 1);
        assert!(matches!(
            validate_batches(&b, 50),
            Err(BatchError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn validate_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = validate_batches(&bytes, 1 << 20);
            let _ = BatchIter::new(&bytes).count();
        }

        #[test]
        fn valid_batches_round_trip(bodies in proptest::collection::vec((1i32..50, proptest::collection::vec(any::<u8>(), 0..64), any::<i64>()), 1..8)) {
            let made: Vec<Vec<u8>> = bodies.iter().map(|(count, body, ts)| make_batch(*count, body, *ts)).collect();
            let all = made.concat();
            let headers = validate_batches(&all, 1 << 20).expect("valid");
            prop_assert_eq!(headers.len(), bodies.len());
            for ((h, (count, _, ts)), batch) in headers.iter().zip(&bodies).zip(&made) {
                prop_assert_eq!(h.record_count, *count);
                prop_assert_eq!(h.total_bytes(), batch.len());
                prop_assert_eq!(h.max_timestamp, *ts);
            }
            prop_assert_eq!(BatchIter::new(&all).count(), bodies.len());
        }

        #[test]
        fn any_single_byte_flip_in_covered_region_is_detected(body in proptest::collection::vec(any::<u8>(), 1..64), idx in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut b = make_batch(1, &body, 0);
            let pos = ATTRIBUTES_OFFSET + idx.index(b.len() - ATTRIBUTES_OFFSET);
            b[pos] ^= 1 << bit;
            prop_assert!(validate_batch(&b).is_err());
        }
    }
}
