//! Per-connection state owned by the reactor: framing buffer, queued frames, the one request in
//! flight, and bytes waiting to be written.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use bytes::Bytes;
use mio::net::TcpStream;

use crate::protocol::frame::{FrameDecoder, FrameError};

/// Stop reading from a connection once this many bytes of complete-but-unhandled requests
/// are queued (backpressure by not reading).
pub const QUEUED_REQUEST_BYTES_MAX: usize = 4 * 1024 * 1024;
const READ_CHUNK_BYTES: usize = 64 * 1024;

pub struct Connection {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub decoder: FrameDecoder,
    pub queued: VecDeque<Bytes>,
    pub queued_bytes: usize,
    pub in_flight: bool,
    pub write_buf: VecDeque<Bytes>,
    pub write_pos: usize,
    pub read_closed: bool,
    pub close_after_write: bool,
    /// Reading stopped at the queue limit; resume once requests drain.
    pub read_paused: bool,
    /// Last time bytes moved in either direction (for the idle timeout).
    pub last_active: std::time::Instant,
}

pub enum ReadOutcome {
    Open,
    Closed,
    Error(String),
}

impl Connection {
    pub fn new(stream: TcpStream, peer: SocketAddr, frame_bytes_max: usize) -> Self {
        Connection {
            stream,
            peer,
            decoder: FrameDecoder::new(frame_bytes_max),
            queued: VecDeque::new(),
            queued_bytes: 0,
            in_flight: false,
            write_buf: VecDeque::new(),
            write_pos: 0,
            read_closed: false,
            close_after_write: false,
            read_paused: false,
            last_active: std::time::Instant::now(),
        }
    }

    pub fn wants_read(&self) -> bool {
        !self.read_closed && self.queued_bytes < QUEUED_REQUEST_BYTES_MAX
    }

    /// Reads until `WouldBlock` or the queue limit, cutting complete frames.
    pub fn read_available(&mut self, scratch: &mut [u8]) -> ReadOutcome {
        debug_assert!(scratch.len() >= READ_CHUNK_BYTES.min(scratch.len()));
        while self.wants_read() {
            match self.stream.read(scratch) {
                Ok(0) => {
                    self.read_closed = true;
                    break;
                }
                Ok(n) => {
                    self.last_active = std::time::Instant::now();
                    self.decoder.extend(&scratch[..n]);
                    if let Err(e) = self.cut_frames() {
                        return ReadOutcome::Error(e.to_string());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return ReadOutcome::Error(e.to_string()),
            }
        }
        self.read_paused = !self.read_closed && !self.wants_read();
        if self.read_closed {
            ReadOutcome::Closed
        } else {
            ReadOutcome::Open
        }
    }

    fn cut_frames(&mut self) -> Result<(), FrameError> {
        while let Some(frame) = self.decoder.next_frame()? {
            self.queued_bytes += frame.len();
            self.queued.push_back(frame);
        }
        Ok(())
    }

    /// The next request to hand to a worker, if none is in flight.
    pub fn next_request(&mut self) -> Option<Bytes> {
        if self.in_flight {
            return None;
        }
        let frame = self.queued.pop_front()?;
        self.queued_bytes -= frame.len();
        self.in_flight = true;
        Some(frame)
    }

    /// Puts a request back at the head of the queue (the job queue was full).
    pub fn unget_request(&mut self, frame: Bytes) {
        self.queued_bytes += frame.len();
        self.queued.push_front(frame);
        self.in_flight = false;
    }

    pub fn queue_write(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.write_buf.push_back(bytes);
        }
    }

    pub fn has_pending_write(&self) -> bool {
        !self.write_buf.is_empty()
    }

    /// Writes until drained or `WouldBlock`. Returns an error message if the socket failed.
    pub fn flush_writes(&mut self) -> Result<(), String> {
        while let Some(front) = self.write_buf.front() {
            match self.stream.write(&front[self.write_pos..]) {
                Ok(0) => return Err("connection closed while writing".into()),
                Ok(n) => {
                    self.last_active = std::time::Instant::now();
                    self.write_pos += n;
                    if self.write_pos == front.len() {
                        self.write_buf.pop_front();
                        self.write_pos = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }
}

pub fn read_chunk_bytes() -> usize {
    READ_CHUNK_BYTES
}
