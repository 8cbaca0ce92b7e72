//! Per-connection state owned by the reactor: framing buffer, queued frames, requests in
//! flight, and bytes waiting to be written.
//!
//! Invariants: at most one request of a connection is being *processed* by a worker at a time,
//! so requests take effect in the order they arrived (appends in particular). A Produce that
//! only waits for durability (acks=all) is reported `Parked` and stops counting as processing,
//! so the next request can start while it waits; at most `PIPELINED_MAX` requests are
//! outstanding. Responses are written strictly in request order (`seq`), whatever order the
//! workers finish in.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use bytes::Bytes;
use mio::net::TcpStream;

use super::worker::Reply;
use crate::protocol::frame::{FrameDecoder, FrameError};

/// Stop reading from a connection once this many bytes of complete-but-unhandled requests
/// are queued (backpressure by not reading).
pub const QUEUED_REQUEST_BYTES_MAX: usize = 4 * 1024 * 1024;
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Most requests of one connection handed to workers and not yet answered (the one being
/// processed plus Produce requests parked until durable).
pub const PIPELINED_MAX: u64 = 128;

pub struct Connection {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub decoder: FrameDecoder,
    pub queued: VecDeque<Bytes>,
    pub queued_bytes: usize,
    /// The request a worker is processing (not yet answered nor parked).
    processing: Option<u64>,
    /// Sequence number of the next request handed to a worker.
    next_seq: u64,
    /// Sequence number of the next response to write.
    next_write: u64,
    /// Replies that arrived before an earlier request's reply.
    early: BTreeMap<u64, Reply>,
    pub write_buf: VecDeque<Bytes>,
    pub write_pos: usize,
    pub read_closed: bool,
    pub close_after_write: bool,
    /// Reading stopped at the queue limit; resume once requests drain.
    pub read_paused: bool,
    /// Last time bytes moved in either direction (for the idle timeout).
    pub last_active: std::time::Instant,
    /// When the first byte of the frame still being received arrived (for the request read
    /// timeout); `None` when no partial frame is buffered.
    pub partial_since: Option<std::time::Instant>,
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
            processing: None,
            next_seq: 0,
            next_write: 0,
            early: BTreeMap::new(),
            write_buf: VecDeque::new(),
            write_pos: 0,
            read_closed: false,
            close_after_write: false,
            read_paused: false,
            last_active: std::time::Instant::now(),
            partial_since: None,
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
                    let now = std::time::Instant::now();
                    self.last_active = now;
                    self.decoder.extend(&scratch[..n]);
                    if let Err(e) = self.cut_frames() {
                        return ReadOutcome::Error(e.to_string());
                    }
                    // Bytes left over after cutting are the start of the next frame.
                    self.partial_since = match self.decoder.buffered_bytes() {
                        0 => None,
                        _ => self.partial_since.or(Some(now)),
                    };
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

    /// Requests handed to workers and not yet answered.
    pub fn in_flight(&self) -> bool {
        self.next_write < self.next_seq
    }

    /// The next request to hand to a worker, with its sequence number, if none is being
    /// processed and the pipeline has room.
    pub fn next_request(&mut self) -> Option<(u64, Bytes)> {
        if self.processing.is_some() || self.next_seq - self.next_write >= PIPELINED_MAX {
            return None;
        }
        let frame = self.queued.pop_front()?;
        self.queued_bytes -= frame.len();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.processing = Some(seq);
        Some((seq, frame))
    }

    /// Puts the request just taken back at the head of the queue (the job queue was full).
    pub fn unget_request(&mut self, frame: Bytes) {
        self.queued_bytes += frame.len();
        self.queued.push_front(frame);
        self.next_seq -= 1;
        self.processing = None;
    }

    /// Takes a worker's reply for request `seq`. Returns the replies now due, in request
    /// order (none while an earlier request is still unanswered).
    pub fn settle(&mut self, seq: u64, reply: Reply) -> Vec<Reply> {
        if self.processing == Some(seq) {
            self.processing = None;
        }
        if matches!(reply, Reply::Parked) || seq < self.next_write {
            return Vec::new();
        }
        self.early.insert(seq, reply);
        let mut due = Vec::new();
        while let Some(r) = self.early.remove(&self.next_write) {
            self.next_write += 1;
            due.push(r);
        }
        due
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
