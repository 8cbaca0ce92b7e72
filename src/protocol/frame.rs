//! Cutting a byte stream into Kafka frames: `size: i32 BE` followed by `size` bytes.
//!
//! Frames below `LARGE_FRAME_BYTES_MIN` are cut out of one accumulating buffer that the bytes
//! received are copied into. A larger frame (a Produce request of big batches) moves, once
//! enough of it has arrived, into a buffer of its own the size of the frame, and the rest of it
//! is read straight from the socket into that buffer (`read_large_from`): those bytes are
//! never copied in user space between the socket and the log.
//!
//! Invariants: a frame is yielded only when all its bytes have arrived, in the order the frames
//! were sent; a claimed size sizes an allocation only once a sixteenth of the frame has
//! arrived (`LARGE_FRAME_AMPLIFICATION_MAX`), so a client holds at most 16× the bytes it sent;
//! a size prefix that is negative, zero or above the limit is an error that closes the
//! connection.

use std::io::{self, Read};

use bytes::{Buf, Bytes, BytesMut};

/// Frames at least this large are read into a buffer of their own (see the module doc).
pub const LARGE_FRAME_BYTES_MIN: usize = 64 * 1024;
/// A large frame's own buffer is allocated once `size / LARGE_FRAME_AMPLIFICATION_MAX` of it
/// has arrived.
pub const LARGE_FRAME_AMPLIFICATION_MAX: usize = 16;

/// Why a stream cannot be framed; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {0} is not positive")]
    NonPositiveSize(i32),
    #[error("frame size {size} exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
}

#[derive(Debug)]
struct LargeFrame {
    /// The bytes received so far, in a buffer reserved for `size`.
    bytes: Vec<u8>,
    size: usize,
}

impl LargeFrame {
    fn missing(&self) -> usize {
        self.size - self.bytes.len()
    }
}

/// Accumulates received bytes and cuts complete frames out of them.
#[derive(Debug)]
pub struct FrameDecoder {
    /// Received bytes not yet cut into frames (after `large`'s frame, when there is one).
    buf: BytesMut,
    /// The large frame being received, without its size prefix.
    large: Option<LargeFrame>,
    frame_bytes_max: usize,
}

impl FrameDecoder {
    pub fn new(frame_bytes_max: usize) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            large: None,
            frame_bytes_max,
        }
    }

    /// Changes the largest frame accepted from now on (raised once a SASL connection has
    /// authenticated: `unauthenticated_request_bytes_max` → `request_bytes_max`).
    pub fn set_frame_bytes_max(&mut self, frame_bytes_max: usize) {
        self.frame_bytes_max = frame_bytes_max;
    }

    pub fn extend(&mut self, mut bytes: &[u8]) {
        if let Some(large) = &mut self.large {
            let take = large.missing().min(bytes.len());
            large.bytes.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        self.buf.extend_from_slice(bytes);
    }

    /// While a large frame is incomplete: reads the rest of it (at most) from `reader` straight
    /// into its buffer, until the frame is complete or `reader` would block, with `Read::read`'s
    /// answers: `Ok(n)` bytes read, `Ok(0)` the peer closed the stream before the frame was
    /// complete, `Err(WouldBlock)` nothing to read now. `None` when no large frame is being
    /// received (read into a scratch buffer and `extend` instead).
    pub fn read_large_from(&mut self, reader: &mut impl Read) -> Option<io::Result<usize>> {
        let large = self.large.as_mut().filter(|l| l.missing() > 0)?;
        let before = large.bytes.len();
        let want = large.missing() as u64;
        // `read_to_end` reads into the spare capacity (reserved for the whole frame) without
        // initializing it first, and keeps what it read when a later read fails; that failure
        // (WouldBlock, mostly) comes back from the next call.
        let outcome = reader.take(want).read_to_end(&mut large.bytes);
        let read = large.bytes.len() - before;
        Some(match outcome {
            Err(e) if read == 0 => Err(e),
            _ => Ok(read),
        })
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len() + self.large.as_ref().map_or(0, |l| 4 + l.bytes.len())
    }

    /// The next complete frame (without its size prefix), if one has fully arrived.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if let Some(large) = &self.large {
            if large.missing() > 0 {
                return Ok(None);
            }
            return Ok(self.large.take().map(|l| Bytes::from(l.bytes)));
        }
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let size = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if size <= 0 {
            return Err(FrameError::NonPositiveSize(size));
        }
        let size = size as usize;
        if size > self.frame_bytes_max {
            return Err(FrameError::TooLarge {
                size,
                max: self.frame_bytes_max,
            });
        }
        let received = self.buf.len() - 4;
        if received < size {
            if size >= LARGE_FRAME_BYTES_MIN && received >= size / LARGE_FRAME_AMPLIFICATION_MAX {
                // Everything before this frame has been cut, so `buf` holds only its start.
                let mut bytes = Vec::with_capacity(size);
                bytes.extend_from_slice(&self.buf[4..]);
                self.buf.clear();
                self.large = Some(LargeFrame { bytes, size });
            }
            return Ok(None);
        }
        self.buf.advance(4);
        Ok(Some(self.buf.split_to(size).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_bad_sizes() {
        for size in [0i32, -1, i32::MIN] {
            let mut d = FrameDecoder::new(100);
            d.extend(&size.to_be_bytes());
            assert_eq!(d.next_frame(), Err(FrameError::NonPositiveSize(size)));
        }
        let mut d = FrameDecoder::new(100);
        d.extend(&101i32.to_be_bytes());
        assert!(matches!(d.next_frame(), Err(FrameError::TooLarge { .. })));
    }

    /// A non-blocking socket's reads: at most `chunk` bytes each, `WouldBlock` every
    /// `block_every`th read, `Ok(0)` at the end.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
        block_every: usize,
        reads: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            if self.reads.is_multiple_of(self.block_every) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = self.chunk.min(buf.len()).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn stream_of(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut stream = Vec::new();
        for f in frames {
            stream.extend_from_slice(&(f.len() as i32).to_be_bytes());
            stream.extend_from_slice(f);
        }
        stream
    }

    /// Drives `d` from `src` as the reactor does: the rest of a large frame read straight into
    /// it, everything else through a scratch buffer; returns the frames cut.
    fn drive(d: &mut FrameDecoder, src: &mut Trickle, scratch: usize) -> (Vec<Vec<u8>>, bool) {
        let mut out = Vec::new();
        let mut scratch = vec![0u8; scratch];
        let mut eof = false;
        let mut idle = 0;
        while !eof && idle < 3 {
            match d.read_large_from(src) {
                Some(Ok(0)) => eof = true,
                Some(Ok(_)) => idle = 0,
                Some(Err(e)) => {
                    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                    idle += 1;
                }
                None => match src.read(&mut scratch) {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        d.extend(&scratch[..n]);
                        idle = 0;
                    }
                    Err(_) => idle += 1,
                },
            }
            while let Some(f) = d.next_frame().expect("valid") {
                out.push(f.to_vec());
            }
        }
        (out, eof)
    }

    #[test]
    fn a_large_frame_gets_its_own_buffer_only_once_a_sixteenth_has_arrived() {
        let size = 1 << 20;
        let mut d = FrameDecoder::new(size);
        d.extend(&(size as i32).to_be_bytes());
        d.extend(&vec![7u8; size / LARGE_FRAME_AMPLIFICATION_MAX - 1]);
        assert_eq!(d.next_frame(), Ok(None));
        let mut nothing = io::empty();
        assert!(
            d.read_large_from(&mut nothing).is_none(),
            "no buffer sized by the claim yet"
        );
        d.extend(&[7u8]);
        assert_eq!(d.next_frame(), Ok(None));
        let mut rest = io::repeat(7).take((size - size / LARGE_FRAME_AMPLIFICATION_MAX) as u64);
        let read = d.read_large_from(&mut rest).expect("large").expect("read");
        assert_eq!(read, size - size / LARGE_FRAME_AMPLIFICATION_MAX);
        let frame = d.next_frame().expect("valid").expect("complete");
        assert_eq!(frame.len(), size);
        assert!(frame.iter().all(|&b| b == 7));
        assert_eq!(d.buffered_bytes(), 0);
    }

    #[test]
    fn a_stream_ending_inside_a_large_frame_is_an_eof() {
        let size = 200_000;
        let mut stream = stream_of(&[vec![1u8; size]]);
        stream.truncate(150_000);
        let mut src = Trickle {
            data: stream,
            pos: 0,
            chunk: 70_000,
            block_every: usize::MAX,
            reads: 0,
        };
        let mut d = FrameDecoder::new(1 << 20);
        let (frames, eof) = drive(&mut d, &mut src, 64 * 1024);
        assert!(frames.is_empty());
        assert!(eof);
        assert_eq!(d.buffered_bytes(), 150_000);
    }

    proptest! {
        #[test]
        fn large_and_small_frames_survive_any_reads(
            sizes in proptest::collection::vec(prop_oneof![1usize..300, 60_000usize..300_000], 1..6),
            chunk in 1usize..100_000,
            block_every in 2usize..9,
            scratch in 1usize..70_000,
        ) {
            let frames: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| (0..n).map(|j| (i * 31 + j * 7) as u8).collect())
                .collect();
            let mut src = Trickle { data: stream_of(&frames), pos: 0, chunk, block_every, reads: 0 };
            let mut d = FrameDecoder::new(1 << 20);
            let (out, _) = drive(&mut d, &mut src, scratch);
            prop_assert_eq!(out, frames);
            prop_assert_eq!(d.buffered_bytes(), 0);
        }

        #[test]
        fn frames_survive_any_chunking(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..50), 1..10), chunk in 1usize..17) {
            let mut stream = Vec::new();
            for f in &frames {
                stream.extend_from_slice(&(f.len() as i32).to_be_bytes());
                stream.extend_from_slice(f);
            }
            let mut d = FrameDecoder::new(1 << 20);
            let mut out = Vec::new();
            for c in stream.chunks(chunk) {
                d.extend(c);
                while let Some(f) = d.next_frame().expect("valid") {
                    out.push(f.to_vec());
                }
            }
            prop_assert_eq!(out, frames);
            prop_assert_eq!(d.buffered_bytes(), 0);
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = FrameDecoder::new(1 << 10);
            d.extend(&bytes);
            while let Ok(Some(_)) = d.next_frame() {}
        }
    }
}
