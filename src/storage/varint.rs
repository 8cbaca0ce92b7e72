//! Record framing inside a v2 batch body: every record starts with its length as a zigzag
//! varint, followed by that many bytes. This is the one walk of a length prefix: `batch`
//! (uncompressed bodies, in memory) and `inflate` (decompressed streams) both call it, so they
//! agree on what a well-formed prefix is.
//!
//! Invariants: a prefix is at most 5 bytes (a 32-bit zigzag varint); an accepted length is never
//! negative nor shorter than the smallest record after its one-byte prefix
//! (`MIN_RECORD_BYTES - 1`). Depends on nothing else in `storage`.

/// Smallest possible encoding of one uncompressed v2 record (length, attributes, timestamp
/// delta, offset delta, key length, value length, header count: one byte each).
pub(crate) const MIN_RECORD_BYTES: usize = 7;

/// Longest varint encoding of a 32-bit value.
const LENGTH_PREFIX_BYTES_MAX: usize = 5;

/// Reads one record's length prefix a byte at a time from `next_byte` (`Ok(None)`: end of
/// input). Returns the record's length in bytes (after the prefix) and the prefix's own length,
/// or `Ok(None)` if the prefix runs past 5 bytes or past the input, or names a negative length
/// or one shorter than any record.
pub(crate) fn record_length<E>(
    mut next_byte: impl FnMut() -> Result<Option<u8>, E>,
) -> Result<Option<(usize, usize)>, E> {
    let mut raw = 0u64;
    let mut used = 0;
    loop {
        if used == LENGTH_PREFIX_BYTES_MAX {
            return Ok(None);
        }
        let Some(byte) = next_byte()? else {
            return Ok(None);
        };
        raw |= u64::from(byte & 0x7f) << (7 * used);
        used += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let len = (raw >> 1) as i64 ^ -((raw & 1) as i64);
    match usize::try_from(len) {
        Ok(len) if len >= MIN_RECORD_BYTES - 1 => Ok(Some((len, used))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Option<(usize, usize)> {
        let mut it = bytes.iter().copied();
        record_length(|| Ok::<_, std::convert::Infallible>(it.next())).unwrap_or(None)
    }

    #[test]
    fn prefixes_decode_as_zigzag_varints_and_bad_ones_are_refused() {
        assert_eq!(parse(&[12]), Some((6, 1)), "zigzag(6) = 12");
        assert_eq!(parse(&[0x80, 0x40]), Some((4096, 2)), "zigzag(4096) = 8192");
        assert_eq!(parse(&[10]), None, "5 bytes cannot hold a record");
        assert_eq!(parse(&[13]), None, "negative length");
        assert_eq!(parse(&[0x80, 0x80]), None, "prefix ends with the input");
        assert_eq!(parse(&[0x80; 6]), None, "longer than 5 bytes");
    }
}
