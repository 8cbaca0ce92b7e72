//! Utilities for working with the [`bytes`] crate.
use std::io::Cursor;
use std::ops::Range;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::error::Error;
use std::fmt::{Display, Formatter};

/// Error indicating there are not enough remaining bytes in a buffer to perform a read.
#[derive(Debug)]
pub struct NotEnoughBytesError;

impl Display for NotEnoughBytesError {
    fn fmt(&self, f: &mut Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Not enough bytes remaining in buffer!")
    }
}

impl Error for NotEnoughBytesError {}

/// Extension for working with [`bytes::Buf`].
pub trait ByteBuf: Buf {
    /// Peek ahead in the buffer by the provided range.
    fn peek_bytes(&mut self, r: Range<usize>) -> Bytes;
    /// Get `size` bytes from the underlying buffer.
    fn get_bytes(&mut self, size: usize) -> Bytes;
    /// Try to peek ahead in the buffer by the provided range, returning an error if there are less
    /// bytes than the requested range.
    fn try_peek_bytes(&mut self, r: Range<usize>) -> Result<Bytes, NotEnoughBytesError> {
        if self.remaining() < r.end {
            Err(NotEnoughBytesError)
        } else {
            Ok(self.peek_bytes(r))
        }
    }
    /// Try to get `size` bytes from the buffer, returning an error if there are less bytes than the
    /// requested number.
    fn try_get_bytes(&mut self, size: usize) -> Result<Bytes, NotEnoughBytesError> {
        if self.remaining() < size {
            Err(NotEnoughBytesError)
        } else {
            Ok(self.get_bytes(size))
        }
    }
}

impl ByteBuf for Bytes {
    fn peek_bytes(&mut self, r: Range<usize>) -> Bytes {
        self.slice(r)
    }
    fn get_bytes(&mut self, size: usize) -> Bytes {
        self.split_to(size)
    }
}

impl ByteBuf for BytesMut {
    fn peek_bytes(&mut self, r: Range<usize>) -> Bytes {
        Bytes::copy_from_slice(&self[r])
    }
    fn get_bytes(&mut self, size: usize) -> Bytes {
        self.split_to(size).freeze()
    }
}

impl<T: ByteBuf> ByteBuf for &mut T {
    fn peek_bytes(&mut self, r: Range<usize>) -> Bytes {
        (**self).peek_bytes(r)
    }
    fn get_bytes(&mut self, size: usize) -> Bytes {
        (**self).get_bytes(size)
    }
    fn try_peek_bytes(&mut self, r: Range<usize>) -> Result<Bytes, NotEnoughBytesError> {
        (**self).try_peek_bytes(r)
    }
    fn try_get_bytes(&mut self, size: usize) -> Result<Bytes, NotEnoughBytesError> {
        (**self).try_get_bytes(size)
    }
}

impl ByteBuf for &[u8] {
    fn peek_bytes(&mut self, r: Range<usize>) -> Bytes {
        Bytes::copy_from_slice(&self[r])
    }
    fn get_bytes(&mut self, size: usize) -> Bytes {
        let (a, b) = self.split_at(size);
        *self = b;
        Bytes::copy_from_slice(a)
    }
}

impl<T: AsRef<[u8]>> ByteBuf for Cursor<T> {
    fn peek_bytes(&mut self, r: Range<usize>) -> Bytes {
        Bytes::copy_from_slice(&self.get_ref().as_ref()[r])
    }
    fn get_bytes(&mut self, size: usize) -> Bytes {
        let pos = self.position() as usize;
        self.set_position((pos + size) as u64);
        Bytes::copy_from_slice(&self.get_ref().as_ref()[pos..(pos + size)])
    }
}

/// A gap of specified length at the specified offset.
#[derive(Debug, Copy, Clone)]
pub struct Gap {
    offset: usize,
    len: usize,
}

/// A type capable of being represented as a gap in a buffer.
pub trait GapType {
    /// The type of the gap.
    type Value;
    /// The size of the gap.
    fn size(&self) -> usize;
    /// Insert a value into the provided buffer.
    fn put(&self, buf: &mut [u8], value: Self::Value);
}

/// A gap of type `T`.
pub struct TypedGap<T> {
    gap: Gap,
    type_: T,
}

macro_rules! define_gap_types {
    {$($n:ident => $f:ident($t:ty)),*$(,)*} => {
        /// Types which implement `GapType`.
        pub mod gap {
            use super::*;
            $(
                #[derive(Copy, Clone, Debug)]
                pub(crate) struct $n;

                impl GapType for $n {
                    type Value = $t;
                    fn size(&self) -> usize {
                        std::mem::size_of::<Self::Value>()
                    }
                    fn put(&self, mut buf: &mut [u8], value: Self::Value) {
                        buf.$f(value);
                    }
                }
            )*
        }
    };
}

define_gap_types! {
    U8 => put_u8(u8),
    I8 => put_i8(i8),
    U16 => put_u16(u16),
    U16Le => put_u16_le(u16),
    I16 => put_i16(i16),
    I16Le => put_i16_le(i16),
    U32 => put_u32(u32),
    U32Le => put_u32_le(u32),
    I32 => put_i32(i32),
    I32Le => put_i32_le(i32),
    U64 => put_u64(u64),
    U64Le => put_u64_le(u64),
    I64 => put_i64(i64),
    I64Le => put_i64_le(i64),
    U128 => put_u128(u128),
    U128Le => put_u128_le(u128),
    I128 => put_i128(i128),
    I128Le => put_i128_le(i128),
    F32 => put_f32(f32),
    F32Le => put_f32_le(f32),
    F64 => put_f64(f64),
    F64Le => put_f64_le(f64),
}

/// Extension for working with [`bytes::buf::BufMut`].
pub trait ByteBufMut: BufMut {
    /// Get the current offset of the buffer.
    fn offset(&self) -> usize;

    /// Seek to the provided offset in the buffer.
    fn seek(&mut self, offset: usize);

    /// Read a range from the buffer.
    fn range(&mut self, r: Range<usize>) -> &mut [u8];

    /// Put a gap of `len` at the current buffer offset.
    fn put_gap(&mut self, len: usize) -> Gap {
        let res = Gap {
            offset: self.offset(),
            len,
        };
        self.seek(res.offset + len);
        res
    }

    /// Read a gap from the buffer.
    fn gap_buf(&mut self, gap: Gap) -> &mut [u8] {
        self.range(gap.offset..(gap.offset + gap.len))
    }

    /// Put a typed gap of type `T` at the current buffer offset.
    fn put_typed_gap<T: GapType>(&mut self, type_: T) -> TypedGap<T> {
        TypedGap {
            gap: self.put_gap(type_.size()),
            type_,
        }
    }

    /// Insert a value of the [`TypedGap`] type at the current buffer offset.
    fn fill_typed_gap<T: GapType>(&mut self, gap: TypedGap<T>, value: T::Value) {
        gap.type_.put(self.gap_buf(gap.gap), value);
    }

    /// Put bytes the caller already holds as a shared [`Bytes`] (thorstream patch). The default
    /// copies them like [`BufMut::put_slice`]; [`SegmentedBuf`] keeps a large payload as a
    /// chunk of its own instead, sharing the allocation rather than copying it.
    fn put_shared(&mut self, bytes: &Bytes) {
        self.put_slice(bytes)
    }
}

impl ByteBufMut for BytesMut {
    fn offset(&self) -> usize {
        self.len()
    }
    fn seek(&mut self, offset: usize) {
        self.resize(offset, 0);
    }
    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        &mut self[r]
    }
}

impl ByteBufMut for Vec<u8> {
    fn offset(&self) -> usize {
        self.len()
    }
    fn seek(&mut self, offset: usize) {
        self.resize(offset, 0);
    }
    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        &mut self[r]
    }
}

impl<T: ByteBufMut> ByteBufMut for &mut T {
    fn offset(&self) -> usize {
        (**self).offset()
    }
    fn seek(&mut self, offset: usize) {
        (**self).seek(offset)
    }
    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        (**self).range(r)
    }
    // thorstream patch: forward, or `&mut SegmentedBuf` would fall back to copying.
    fn put_shared(&mut self, bytes: &Bytes) {
        (**self).put_shared(bytes)
    }
}

/// A [`BufMut`] that keeps large shared payloads as separate chunks instead of copying them
/// (thorstream patch).
///
/// It holds the finished chunks and a current [`BytesMut`] that ordinary writes go to.
/// [`ByteBufMut::put_shared`] of a payload of at least `shared_min_bytes` (the caller's choice)
/// freezes the
/// current chunk and appends a clone of the payload's [`Bytes`] (a reference count, no copy) as
/// a chunk of its own; [`SegmentedBuf::into_chunks`] returns the chunks, whose concatenation is
/// exactly what encoding into one `BytesMut` would have produced. A writer sends them with
/// vectored I/O.
///
/// Offsets ([`ByteBufMut::offset`]) count every byte written, across chunks. Gaps, `seek` and
/// `range` are meant for the current chunk: message encoding never uses them (only the record
/// batch encoder and the snappy compressor do, on buffers of their own, and they never call
/// `put_shared`). Should one reach back into a finished chunk anyway, the chunks from there on
/// are copied back into the current one (correct, but no longer zero-copy) rather than
/// panicking; a range or seek beyond what was written behaves as on `BytesMut`.
#[derive(Debug)]
pub struct SegmentedBuf {
    /// Finished chunks, in order; never empty ones.
    chunks: Vec<Bytes>,
    /// Total length of `chunks`.
    chunks_len: usize,
    current: BytesMut,
    /// Payloads shorter than this are copied into the current chunk rather than kept as
    /// chunks of their own (a chunk costs an `iovec` and ends the inline chunk; copying a few
    /// hundred bytes is cheaper). The caller sets it: the bound is the caller's policy.
    shared_min_bytes: usize,
}

impl SegmentedBuf {
    /// An empty buffer that keeps payloads of at least `shared_min_bytes` as chunks of their own.
    pub fn new(shared_min_bytes: usize) -> Self {
        Self::with_capacity(0, shared_min_bytes)
    }

    /// An empty buffer whose inline chunks can hold `capacity` bytes before reallocating
    /// (freezing a chunk keeps the unused capacity for the next one), and that keeps payloads
    /// of at least `shared_min_bytes` as chunks of their own.
    pub fn with_capacity(capacity: usize, shared_min_bytes: usize) -> Self {
        SegmentedBuf {
            chunks: Vec::new(),
            chunks_len: 0,
            current: BytesMut::with_capacity(capacity),
            shared_min_bytes,
        }
    }

    /// Bytes written so far, across all chunks.
    pub fn len(&self) -> usize {
        self.chunks_len + self.current.len()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chunks written, in order; none is empty.
    pub fn into_chunks(mut self) -> Vec<Bytes> {
        self.freeze_current();
        self.chunks
    }

    fn freeze_current(&mut self) {
        if !self.current.is_empty() {
            let chunk = self.current.split().freeze();
            self.chunks_len += chunk.len();
            self.chunks.push(chunk);
        }
    }

    /// Makes `offset` fall in the current chunk by copying the finished chunks from the one
    /// holding it onward back into the current chunk. Only a gap, `seek` or `range` reaching
    /// behind a shared chunk needs this; message encoding never does.
    fn reopen_from(&mut self, offset: usize) {
        while offset < self.chunks_len {
            let Some(last) = self.chunks.pop() else {
                break;
            };
            self.chunks_len -= last.len();
            let mut merged = BytesMut::with_capacity(last.len() + self.current.len());
            merged.extend_from_slice(&last);
            merged.extend_from_slice(&self.current);
            self.current = merged;
        }
    }
}

unsafe impl BufMut for SegmentedBuf {
    // Every method delegates to the current chunk.
    #[inline]
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    #[inline]
    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's contract for `cnt` is the one `BytesMut::advance_mut` needs:
        // `chunk_mut` returned the current chunk's spare capacity.
        unsafe { self.current.advance_mut(cnt) }
    }

    #[inline]
    fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
        self.current.chunk_mut()
    }

    #[inline]
    fn put<T: Buf>(&mut self, src: T)
    where
        Self: Sized,
    {
        self.current.put(src)
    }

    #[inline]
    fn put_slice(&mut self, src: &[u8]) {
        self.current.put_slice(src)
    }

    #[inline]
    fn put_u8(&mut self, n: u8) {
        self.current.put_u8(n)
    }

    #[inline]
    fn put_i8(&mut self, n: i8) {
        self.current.put_i8(n)
    }

    #[inline]
    fn put_bytes(&mut self, val: u8, cnt: usize) {
        self.current.put_bytes(val, cnt)
    }
}

impl ByteBufMut for SegmentedBuf {
    fn offset(&self) -> usize {
        self.len()
    }
    fn seek(&mut self, offset: usize) {
        self.reopen_from(offset);
        self.current.resize(offset - self.chunks_len, 0);
    }
    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        self.reopen_from(r.start);
        let base = self.chunks_len;
        &mut self.current[r.start - base..r.end.saturating_sub(base)]
    }
    fn put_shared(&mut self, bytes: &Bytes) {
        if bytes.len() < self.shared_min_bytes {
            self.current.extend_from_slice(bytes);
        } else {
            self.freeze_current();
            self.chunks_len += bytes.len();
            self.chunks.push(bytes.clone());
        }
    }
}
