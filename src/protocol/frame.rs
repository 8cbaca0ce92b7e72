//! Cutting a byte stream into Kafka frames: `size: i32 BE` followed by `size` bytes.
//!
//! Invariants: a frame is yielded only when all its bytes have arrived; the buffer grows only
//! as bytes are received (a claimed size never sizes an allocation); a size prefix that is
//! negative, zero or above the limit is an error that closes the connection.

use bytes::{Buf, Bytes, BytesMut};

/// Why a stream cannot be framed; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {0} is not positive")]
    NonPositiveSize(i32),
    #[error("frame size {size} exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
}

/// Accumulates received bytes and cuts complete frames out of them.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    frame_bytes_max: usize,
}

impl FrameDecoder {
    pub fn new(frame_bytes_max: usize) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            frame_bytes_max,
        }
    }

    /// Changes the largest frame accepted from now on (raised once a SASL connection has
    /// authenticated: `unauthenticated_request_bytes_max` → `request_bytes_max`).
    pub fn set_frame_bytes_max(&mut self, frame_bytes_max: usize) {
        self.frame_bytes_max = frame_bytes_max;
    }

    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame (without its size prefix), if one has fully arrived.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
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
        if self.buf.len() < 4 + size {
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

    proptest! {
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
