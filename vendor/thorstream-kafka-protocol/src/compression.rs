//! Provides compression utilities for encoding records.
//!
//! This module has implementations of gzip, Snappy, as well as a noop compression format that
//! allows encoding and decoding records into a [`Record`](crate::records::Record).

use crate::protocol::buf::{ByteBuf, ByteBufMut};
use anyhow::Result;

#[cfg(feature = "gzip")]
mod gzip;
#[cfg(feature = "lz4")]
mod lz4;
mod none;
#[cfg(feature = "snappy")]
mod snappy;
#[cfg(feature = "zstd")]
mod zstd;

#[cfg(feature = "gzip")]
pub use gzip::Gzip;
#[cfg(feature = "lz4")]
pub use lz4::Lz4;
pub use none::None;
#[cfg(feature = "snappy")]
pub use snappy::Snappy;
#[cfg(feature = "zstd")]
pub use zstd::Zstd;

/// thorstream patch: the most bytes one batch may decompress to (the fork's own safety bound;
/// callers keep their own limits and need not name this one). A record batch is untrusted
/// input (a few KiB of zstd or gzip can claim gigabytes); past this, decompression fails with an
/// error instead of allocating without bound.
pub(crate) const DECOMPRESSED_BYTES_MAX: usize = 128 * 1024 * 1024;

/// thorstream patch: reads `reader` to the end into a buffer of at most
/// [`DECOMPRESSED_BYTES_MAX`] bytes, failing if there is more.
#[allow(dead_code)]
pub(crate) fn read_bounded(reader: impl std::io::Read, codec: &str) -> Result<bytes::Bytes> {
    use std::io::Read as _;
    let mut out = Vec::new();
    reader
        .take(DECOMPRESSED_BYTES_MAX as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| anyhow::anyhow!("Failed to decompress {codec}: {e}"))?;
    if out.len() > DECOMPRESSED_BYTES_MAX {
        anyhow::bail!("{codec} batch decompresses to more than {DECOMPRESSED_BYTES_MAX} bytes");
    }
    Ok(out.into())
}

/// A trait for record compression algorithms.
pub trait Compressor<B: ByteBufMut> {
    /// Target buffer type for compression.
    type BufMut: ByteBufMut;
    /// Compresses into provided [`ByteBufMut`], with records encoded by `F` into `R`.
    fn compress<R, F>(buf: &mut B, f: F) -> Result<R>
    where
        F: FnOnce(&mut Self::BufMut) -> Result<R>;
}

/// A trait for record decompression algorithms.
pub trait Decompressor<B: ByteBuf> {
    /// Target buffer type for decompression.
    type Buf: ByteBuf;
    /// Decompress records from `B` mapped using `F` into `R`.
    fn decompress<R, F>(buf: &mut B, f: F) -> Result<R>
    where
        F: FnOnce(&mut Self::Buf) -> Result<R>;
}
