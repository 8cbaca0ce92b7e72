//! Counting the records of a compressed batch without keeping its inflated bytes.
//!
//! A compressed batch is stored and served as the producer sent it; what its header claims
//! (`record_count`, which decides how many offsets it takes) is only believable once the
//! records inside have been counted. Apache Kafka inflates every compressed batch on produce to
//! check it; so do we, streaming: the decompressor's output is walked record by record (each
//! record is a zigzag-varint length and that many bytes) and thrown away, so memory stays at a
//! few buffers whatever the batch inflates to.
//!
//! Invariants: at most `DECOMPRESSED_BYTES_MAX` (128 MiB, shared with the record decoder)
//! inflated bytes are produced per batch — a decompression bomb costs bounded CPU and no memory;
//! no allocation is sized by an untrusted length except a snappy block, which is bounded by the
//! same limit first.

use std::io::{self, BufRead, BufReader, Read};

use super::varint::record_length;

/// The most bytes one batch may inflate to (128 MiB). A few KiB of zstd can claim gigabytes;
/// past this the batch is refused. The vendored record decoder has the same bound of its own.
pub const DECOMPRESSED_BYTES_MAX: usize = 128 * 1024 * 1024;

/// Why a compressed body could not be counted.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum InflateError {
    #[error("unknown compression codec {0}")]
    UnknownCodec(i16),
    #[error("cannot decompress the batch ({codec}): {reason}")]
    Corrupt { codec: &'static str, reason: String },
    #[error("batch inflates past {DECOMPRESSED_BYTES_MAX} bytes")]
    TooLarge,
    #[error("malformed record framing inside the compressed batch")]
    BadFraming,
}

/// Counts the records in `compressed`, the body (after the 61-byte header) of a batch whose
/// attributes name `codec` (1 gzip, 2 snappy, 3 lz4, 4 zstd).
pub fn count_compressed_records(codec: i16, compressed: &[u8]) -> Result<usize, InflateError> {
    let (reader, name) = decoder(codec, compressed)?;
    count_stream(reader, name)
}

/// Inflates the body of a compressed batch whole (the log cleaner rewrites its records), at
/// most `DECOMPRESSED_BYTES_MAX` bytes.
pub fn inflate(codec: i16, compressed: &[u8]) -> Result<Vec<u8>, InflateError> {
    let (reader, name) = decoder(codec, compressed)?;
    let mut out = Vec::new();
    reader
        .take(DECOMPRESSED_BYTES_MAX as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| InflateError::Corrupt {
            codec: name,
            reason: e.to_string(),
        })?;
    if out.len() > DECOMPRESSED_BYTES_MAX {
        return Err(InflateError::TooLarge);
    }
    Ok(out)
}

/// A streaming decompressor of `codec` over `compressed`, and the codec's name.
fn decoder(
    codec: i16,
    compressed: &[u8],
) -> Result<(Box<dyn Read + '_>, &'static str), InflateError> {
    let corrupt = |codec: &'static str| {
        move |e: io::Error| InflateError::Corrupt {
            codec,
            reason: e.to_string(),
        }
    };
    Ok(match codec {
        1 => (
            Box::new(flate2::read::MultiGzDecoder::new(compressed)),
            "gzip",
        ),
        2 => (Box::new(SnappyReader::new(compressed)), "snappy"),
        3 => (
            Box::new(lz4::Decoder::new(compressed).map_err(corrupt("lz4"))?),
            "lz4",
        ),
        4 => (
            Box::new(
                zstd::stream::read::Decoder::with_buffer(compressed).map_err(corrupt("zstd"))?,
            ),
            "zstd",
        ),
        other => return Err(InflateError::UnknownCodec(other)),
    })
}

/// Walks an inflated record stream: varint length, then that many bytes, until the end.
fn count_stream(inner: impl Read, codec: &'static str) -> Result<usize, InflateError> {
    // One byte past the limit tells "exactly at the limit" from "over it".
    let mut r = BufReader::with_capacity(64 * 1024, inner.take(DECOMPRESSED_BYTES_MAX as u64 + 1));
    let mut total = 0usize;
    let mut count = 0usize;
    let corrupt = |e: io::Error| match e.kind() {
        io::ErrorKind::FileTooLarge => InflateError::TooLarge,
        _ => InflateError::Corrupt {
            codec,
            reason: e.to_string(),
        },
    };
    loop {
        if r.fill_buf().map_err(corrupt)?.is_empty() {
            break;
        }
        let prefix = record_length(|| {
            let mut byte = [0u8];
            Ok(match r.read(&mut byte)? {
                0 => None,
                _ => Some(byte[0]),
            })
        })
        .map_err(corrupt)?;
        let Some((len, used)) = prefix else {
            return Err(InflateError::BadFraming);
        };
        let len = len as u64;
        let skipped = io::copy(&mut (&mut r).take(len), &mut io::sink()).map_err(corrupt)?;
        total = total.saturating_add(used).saturating_add(skipped as usize);
        if total > DECOMPRESSED_BYTES_MAX {
            return Err(InflateError::TooLarge);
        }
        if skipped != len {
            return Err(InflateError::BadFraming);
        }
        count += 1;
    }
    if total > DECOMPRESSED_BYTES_MAX {
        return Err(InflateError::TooLarge);
    }
    Ok(count)
}

/// Kafka's snappy framing (xerial: a 16-byte magic header, then blocks of a 4-byte length and
/// a raw snappy block), or one raw snappy block when the header is absent, as a `Read`.
struct SnappyReader<'a> {
    rest: &'a [u8],
    framed: bool,
    block: Vec<u8>,
    pos: usize,
    inflated: usize,
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_BYTES: usize = 16;

impl<'a> SnappyReader<'a> {
    fn new(compressed: &'a [u8]) -> Self {
        let framed = compressed.starts_with(XERIAL_MAGIC);
        SnappyReader {
            rest: if framed {
                compressed.get(XERIAL_HEADER_BYTES..).unwrap_or(&[])
            } else {
                compressed
            },
            framed,
            block: Vec::new(),
            pos: 0,
            inflated: 0,
        }
    }

    /// Inflates the next block into `self.block`; false at the end of the stream.
    fn next_block(&mut self) -> io::Result<bool> {
        if self.rest.is_empty() {
            return Ok(false);
        }
        let raw = if self.framed {
            let (len, after) = match self.rest.split_first_chunk::<4>() {
                Some((len, after)) => (u32::from_be_bytes(*len) as usize, after),
                None => return Err(io::Error::other("torn snappy block length")),
            };
            let block = after
                .get(..len)
                .ok_or_else(|| io::Error::other("snappy block runs past the batch"))?;
            self.rest = &after[len..];
            block
        } else {
            std::mem::take(&mut self.rest)
        };
        let len = snap::raw::decompress_len(raw).map_err(io::Error::other)?;
        self.inflated = self.inflated.saturating_add(len);
        if self.inflated > DECOMPRESSED_BYTES_MAX {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "snappy blocks claim more than the limit",
            ));
        }
        self.block.resize(len, 0);
        let n = snap::raw::Decoder::new()
            .decompress(raw, &mut self.block)
            .map_err(io::Error::other)?;
        self.block.truncate(n);
        self.pos = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block.len() - self.pos);
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::records::encode_batch_with;
    use crate::storage::batch::BATCH_HEADER_BYTES;
    use crate::types::Record;
    use kafka_protocol::records::Compression;
    use proptest::prelude::*;

    fn records(n: usize, size: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record::new(vec![(i % 251) as u8; size]).key(format!("k{i}")))
            .collect()
    }

    const CODECS: [(Compression, i16); 4] = [
        (Compression::Gzip, 1),
        (Compression::Snappy, 2),
        (Compression::Lz4, 3),
        (Compression::Zstd, 4),
    ];

    #[test]
    fn counts_what_the_encoder_wrote_for_every_codec() {
        for (compression, codec) in CODECS {
            for n in [1usize, 2, 17, 1000] {
                let batch = encode_batch_with(&records(n, 50), 1, compression).expect("encode");
                let body = &batch[BATCH_HEADER_BYTES..];
                assert_eq!(
                    count_compressed_records(codec, body),
                    Ok(n),
                    "{compression:?} with {n} records"
                );
            }
        }
    }

    #[test]
    fn garbage_and_unknown_codecs_are_errors_not_panics() {
        assert_eq!(
            count_compressed_records(5, b"x"),
            Err(InflateError::UnknownCodec(5))
        );
        for (_, codec) in CODECS {
            assert!(count_compressed_records(codec, b"not compressed at all").is_err());
        }
    }

    /// `inflated_mib` MiB of well-framed 4 KiB records, zstd-compressed as a stream.
    fn zstd_bomb(inflated_mib: usize) -> Vec<u8> {
        use std::io::Write;
        // Length prefix: zigzag(4096) = 8192, as a varint 0x80 0x40; then the record bytes.
        let mut one = vec![0x80, 0x40];
        one.extend(std::iter::repeat_n(0u8, 4096));
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
        for _ in 0..inflated_mib * 1024 * 1024 / one.len() + 1 {
            enc.write_all(&one).expect("compress");
        }
        enc.finish().expect("finish")
    }

    #[test]
    fn a_decompression_bomb_is_refused_at_the_limit() {
        let bomb = zstd_bomb(DECOMPRESSED_BYTES_MAX / (1024 * 1024) + 2);
        assert!(bomb.len() < 1024 * 1024, "{} bytes", bomb.len());
        assert_eq!(
            count_compressed_records(4, &bomb),
            Err(InflateError::TooLarge)
        );
        // Just under the limit it is counted.
        let fine = zstd_bomb(8);
        assert_eq!(
            count_compressed_records(4, &fine),
            Ok(8 * 1024 * 1024 / 4098 + 1)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn arbitrary_bytes_never_panic(codec in 0i16..8, bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = count_compressed_records(codec, &bytes);
        }

        #[test]
        fn counts_match_for_random_batches(
            sizes in proptest::collection::vec(0usize..300, 1..40),
            which in 0usize..4,
        ) {
            let (compression, codec) = CODECS[which];
            let recs: Vec<Record> = sizes.iter().map(|&s| Record::new(vec![7u8; s])).collect();
            let batch = encode_batch_with(&recs, 1, compression).expect("encode");
            prop_assert_eq!(
                count_compressed_records(codec, &batch[BATCH_HEADER_BYTES..]),
                Ok(sizes.len())
            );
        }
    }
}
