//! What a topic's settings make of produced batches before they are appended, as Kafka's
//! `LogValidator` decides it: CreateTime timestamps checked against the topic's bounds,
//! LogAppendTime stamped by the broker, and batches recompressed when the topic's
//! `compression.type` names another codec than the producer used.
//!
//! Invariants:
//! - nothing is copied when nothing changes (`Cow::Borrowed`): the common case (producer
//!   codec, CreateTime) stays zero-copy;
//! - a rewritten batch keeps its records byte for byte (offset and timestamp deltas, keys,
//!   values, headers), its producer id, epoch, sequence and record count; only the
//!   attributes (codec, timestamp type), the max timestamp, the length and the CRC change;
//! - every batch is validated (`validate_batch`: framing, CRC, counts of uncompressed bodies)
//!   before it is rewritten, so the CRC computed here never blesses bytes that were corrupt;
//!   a request passed on unchanged is validated once, by `PartitionLog::append`;
//!   compressed bodies were counted by `check_compressed_record_counts` before this runs;
//! - timestamps are checked on the batch's first (base) and max timestamps, not record by
//!   record (Kafka checks each record; a v2 producer's records lie between the two);
//! - a control batch (transaction marker) is refused: only the broker writes them
//!   (`PartitionLog::append_marker`), as Kafka refuses them from clients.

use std::borrow::Cow;
use std::io::Write;

use byteorder::{BigEndian, ByteOrder};

use super::batch::{
    BATCH_HEADER_BYTES, BatchError, BatchHeader, LOG_OVERHEAD_BYTES, rewrite_crc, validate_batch,
};
use super::inflate;

/// Codec the topic wants batches stored with (its `compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetCodec {
    /// Keep whatever the producer used.
    #[default]
    Producer,
    None,
    Gzip(i32),
    Snappy,
    Lz4(i32),
    Zstd(i32),
}

impl TargetCodec {
    /// The codec of attribute bits `id` (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd) at its
    /// default level (Kafka's `Compression.of(type).build()`), `None` for an unknown id.
    pub fn of_id(id: i16) -> Option<TargetCodec> {
        Some(match id {
            0 => TargetCodec::None,
            1 => TargetCodec::Gzip(-1),
            2 => TargetCodec::Snappy,
            3 => TargetCodec::Lz4(9),
            4 => TargetCodec::Zstd(3),
            _ => return None,
        })
    }

    /// The attribute bits of the codec, or `None` for `Producer`.
    fn id(self) -> Option<i16> {
        match self {
            TargetCodec::Producer => None,
            TargetCodec::None => Some(0),
            TargetCodec::Gzip(_) => Some(1),
            TargetCodec::Snappy => Some(2),
            TargetCodec::Lz4(_) => Some(3),
            TargetCodec::Zstd(_) => Some(4),
        }
    }
}

/// A topic's rules for produced batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceRules {
    pub codec: TargetCodec,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// `max.message.bytes`: a rewritten batch over it is refused at once (the append would
    /// refuse it anyway), so a request never accumulates more than one oversized batch.
    pub max_batch_bytes: usize,
}

impl Default for ProduceRules {
    fn default() -> Self {
        ProduceRules {
            codec: TargetCodec::Producer,
            log_append_time: false,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            max_batch_bytes: usize::MAX,
        }
    }
}

const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const LENGTH_OFFSET: usize = 8;
const CODEC_MASK: i16 = 0x07;
const LOG_APPEND_TIME_BIT: i16 = 0x08;

/// Applies `rules` to `batches` (whole v2 batches) at `now_ms`. Errors are those `append`
/// would report for a bad batch, or `InvalidTimestamp`.
pub fn prepare<'a>(
    batches: &'a [u8],
    rules: &ProduceRules,
    now_ms: i64,
) -> Result<Cow<'a, [u8]>, BatchError> {
    let mut headers = Vec::new();
    let mut pos = 0;
    let mut changes = false;
    // The first pass reads headers only: a batch passed on unchanged has its CRC checked once,
    // by `PartitionLog::append`. A batch is CRC-checked here only before it is rewritten, or
    // before a timestamp refusal (a corrupt batch is reported as corrupt, as Kafka).
    while pos < batches.len() {
        let header = BatchHeader::parse(&batches[pos..])?;
        let total = header.total_bytes();
        if total > batches.len() - pos {
            return Err(BatchError::Truncated {
                needed: total,
                available: batches.len() - pos,
            });
        }
        if header.is_control() {
            return Err(BatchError::ControlBatchFromClient);
        }
        if !rules.log_append_time
            && let Err(e) = check_timestamps(&header, rules, now_ms)
        {
            validate_batch(&batches[pos..])?;
            return Err(e);
        }
        changes |= rules.log_append_time || recompress_to(&header, rules).is_some();
        pos += total;
        headers.push(header);
    }
    if !changes {
        return Ok(Cow::Borrowed(batches));
    }
    let mut pos = 0;
    for header in &headers {
        validate_batch(&batches[pos..])?;
        pos += header.total_bytes();
    }
    let mut out = Vec::with_capacity(batches.len());
    let mut pos = 0;
    for header in headers {
        let total = header.total_bytes();
        let bytes = &batches[pos..pos + total];
        pos += total;
        let start = out.len();
        match recompress_to(&header, rules) {
            Some(target) => {
                let body = &bytes[BATCH_HEADER_BYTES..];
                let inflated;
                let records = match header.compression_codec() {
                    0 => body,
                    codec => {
                        inflated = inflate::inflate(codec, body)?;
                        &inflated[..]
                    }
                };
                out.extend_from_slice(&bytes[..BATCH_HEADER_BYTES]);
                compress(target, records, &mut out)?;
                let length = out.len() - start - LOG_OVERHEAD_BYTES;
                let length = i32::try_from(length).map_err(|_| BatchError::TooLarge {
                    size: length,
                    max: i32::MAX as usize,
                })?;
                BigEndian::write_i32(&mut out[start + LENGTH_OFFSET..], length);
                let attributes = BigEndian::read_i16(&out[start + ATTRIBUTES_OFFSET..]);
                let codec = target.id().unwrap_or(0);
                BigEndian::write_i16(
                    &mut out[start + ATTRIBUTES_OFFSET..],
                    (attributes & !CODEC_MASK) | codec,
                );
            }
            None => out.extend_from_slice(bytes),
        }
        if rules.log_append_time {
            let attributes = BigEndian::read_i16(&out[start + ATTRIBUTES_OFFSET..]);
            BigEndian::write_i16(
                &mut out[start + ATTRIBUTES_OFFSET..],
                attributes | LOG_APPEND_TIME_BIT,
            );
            BigEndian::write_i64(&mut out[start + MAX_TIMESTAMP_OFFSET..], now_ms);
        }
        let len = out.len() - start;
        if len > rules.max_batch_bytes {
            return Err(BatchError::TooLarge {
                size: len,
                max: rules.max_batch_bytes,
            });
        }
        rewrite_crc(&mut out[start..], len);
    }
    Ok(Cow::Owned(out))
}

/// The codec a batch must be rewritten to, if any.
fn recompress_to(header: &BatchHeader, rules: &ProduceRules) -> Option<TargetCodec> {
    let target = rules.codec.id()?;
    (target != header.compression_codec()).then_some(rules.codec)
}

/// Kafka's CreateTime bounds: `[now - before, now + after]`.
fn check_timestamps(
    header: &BatchHeader,
    rules: &ProduceRules,
    now_ms: i64,
) -> Result<(), BatchError> {
    let low = now_ms.saturating_sub(rules.timestamp_before_max_ms);
    let high = now_ms.saturating_add(rules.timestamp_after_max_ms);
    for (ts, delta) in [
        (header.base_timestamp, 0i64),
        (header.max_timestamp, i64::from(header.last_offset_delta)),
    ] {
        if ts < low || ts > high {
            return Err(BatchError::InvalidTimestamp(format!(
                "Timestamp {ts} of message with offset {} is out of range. The timestamp should \
                 be within [{low}, {high}]",
                header.base_offset.saturating_add(delta)
            )));
        }
    }
    Ok(())
}

/// Appends `body` compressed with `target` (Kafka's framings: gzip stream, xerial snappy,
/// LZ4 frame with independent blocks, zstd frame). Also the log cleaner's, for the batches
/// it rewrites.
pub(crate) fn compress(
    target: TargetCodec,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), BatchError> {
    let failed = |codec: &'static str| {
        move |e: std::io::Error| {
            BatchError::Inflate(inflate::InflateError::Corrupt {
                codec,
                reason: format!("compressing: {e}"),
            })
        }
    };
    match target {
        TargetCodec::Producer | TargetCodec::None => out.extend_from_slice(body),
        TargetCodec::Gzip(level) => {
            let level = if level < 0 { 6 } else { level as u32 };
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
            enc.write_all(body).map_err(failed("gzip"))?;
            enc.finish().map_err(failed("gzip"))?;
        }
        TargetCodec::Snappy => {
            // xerial framing, as the Java client writes it: magic, version 1, compatible 1,
            // then (length, raw snappy block) per 32 KiB of input.
            out.extend_from_slice(&[
                0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
            ]);
            let mut enc = snap::raw::Encoder::new();
            for chunk in body.chunks(32 * 1024) {
                let block = enc
                    .compress_vec(chunk)
                    .map_err(|e| failed("snappy")(std::io::Error::other(e)))?;
                let mut len = [0u8; 4];
                BigEndian::write_u32(&mut len, block.len() as u32);
                out.extend_from_slice(&len);
                out.extend_from_slice(&block);
            }
        }
        TargetCodec::Lz4(level) => {
            let mut enc = lz4::EncoderBuilder::new()
                .level(level.max(0) as u32)
                .block_mode(lz4::BlockMode::Independent)
                .build(out)
                .map_err(failed("lz4"))?;
            enc.write_all(body).map_err(failed("lz4"))?;
            let (_, r) = enc.finish();
            r.map_err(failed("lz4"))?;
        }
        TargetCodec::Zstd(level) => {
            let mut enc = zstd::stream::write::Encoder::new(out, level).map_err(failed("zstd"))?;
            enc.write_all(body).map_err(failed("zstd"))?;
            enc.finish().map_err(failed("zstd"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::{check_compressed_record_counts, tests::make_batch};

    fn rules(codec: TargetCodec) -> ProduceRules {
        ProduceRules {
            codec,
            ..ProduceRules::default()
        }
    }

    /// An uncompressed batch of three small records (as `make_batch` frames them).
    fn batch(ts: i64) -> Vec<u8> {
        make_batch(3, &[], ts)
    }

    #[test]
    fn a_produced_control_batch_is_refused() {
        let marker = crate::storage::control::marker_batch(
            1,
            0,
            crate::storage::control::ControlType::Commit,
            0,
            5,
        );
        assert!(matches!(
            prepare(&marker, &ProduceRules::default(), 5),
            Err(BatchError::ControlBatchFromClient)
        ));
    }

    #[test]
    fn nothing_changes_without_rules() {
        let b = batch(1_000);
        let out = prepare(&b, &ProduceRules::default(), 1_000).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(out, Cow::Borrowed(_)));
    }

    #[test]
    fn recompression_keeps_records_and_round_trips_every_codec() {
        let b = batch(1_000);
        let original = validate_batch(&b).unwrap_or_else(|e| panic!("{e}"));
        let plain_body = b[BATCH_HEADER_BYTES..].to_vec();
        for (target, id) in [
            (TargetCodec::Gzip(-1), 1),
            (TargetCodec::Gzip(9), 1),
            (TargetCodec::Snappy, 2),
            (TargetCodec::Lz4(9), 3),
            (TargetCodec::Zstd(3), 4),
            (TargetCodec::Zstd(-5), 4),
        ] {
            let out = prepare(&b, &rules(target), 1_000).unwrap_or_else(|e| panic!("{e}"));
            let h = validate_batch(&out).unwrap_or_else(|e| panic!("{target:?}: {e}"));
            assert_eq!(h.compression_codec(), id);
            assert_eq!(
                (h.record_count, h.max_timestamp, h.base_sequence),
                (
                    original.record_count,
                    original.max_timestamp,
                    original.base_sequence
                )
            );
            check_compressed_record_counts(&out).unwrap_or_else(|e| panic!("{target:?}: {e}"));
            let body =
                inflate::inflate(id, &out[BATCH_HEADER_BYTES..]).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(body, plain_body, "{target:?}");
            // And back to uncompressed: the very bytes we started from.
            let back =
                prepare(&out, &rules(TargetCodec::None), 1_000).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&*back, &b[..], "{target:?}");
        }
    }

    #[test]
    fn a_batch_already_in_the_target_codec_is_not_touched() {
        let b = batch(1_000);
        let out = prepare(&b, &rules(TargetCodec::None), 1_000).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(out, Cow::Borrowed(_)));
    }

    #[test]
    fn log_append_time_sets_the_type_bit_and_the_max_timestamp() {
        let b = batch(5);
        let r = ProduceRules {
            log_append_time: true,
            // Bounds do not apply to LogAppendTime.
            timestamp_before_max_ms: 0,
            ..ProduceRules::default()
        };
        let out = prepare(&b, &r, 777_000).unwrap_or_else(|e| panic!("{e}"));
        let h = validate_batch(&out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.max_timestamp, 777_000);
        assert_ne!(h.attributes & LOG_APPEND_TIME_BIT, 0);
        assert_eq!(h.base_timestamp, 5);
    }

    #[test]
    fn create_time_out_of_bounds_is_refused_with_kafkas_message() {
        let r = ProduceRules {
            timestamp_before_max_ms: 1_000,
            timestamp_after_max_ms: 500,
            ..ProduceRules::default()
        };
        let now = 10_000;
        for ok in [9_000, 10_000, 10_500] {
            assert!(prepare(&batch(ok), &r, now).is_ok(), "{ok}");
        }
        for bad in [8_999, 10_501] {
            match prepare(&batch(bad), &r, now) {
                Err(BatchError::InvalidTimestamp(m)) => assert!(
                    m.starts_with(&format!("Timestamp {bad} of message with offset"))
                        && m.ends_with("The timestamp should be within [9000, 10500]"),
                    "{m}"
                ),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_batch_that_grows_past_the_limit_when_rewritten_is_refused() {
        let plain = make_batch(3, &[b'a'; 4000], 1_000);
        let b = prepare(&plain, &rules(TargetCodec::Zstd(3)), 1_000)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_owned();
        assert!(b.len() < plain.len());
        let r = ProduceRules {
            codec: TargetCodec::None,
            max_batch_bytes: b.len(),
            ..ProduceRules::default()
        };
        assert!(matches!(
            prepare(&b, &r, 1_000),
            Err(BatchError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_corrupt_batch_is_refused_not_rewritten() {
        let mut b = batch(1_000);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(matches!(
            prepare(&b, &rules(TargetCodec::Zstd(3)), 1_000),
            Err(BatchError::CrcMismatch { .. })
        ));
    }
}
