//! Per-connection state owned by the reactor: framing buffer, queued frames, requests in
//! flight, and bytes waiting to be written.
//!
//! Invariants: at most one request of a connection is being *processed* by a worker at a time,
//! so requests take effect in the order they arrived (appends in particular). A Produce that
//! only waits for durability (acks=all) is reported `Parked` and stops counting as processing,
//! so the next request can start while it waits; at most `PIPELINED_MAX` requests are
//! outstanding. Responses are written strictly in request order (`seq`), whatever order the
//! workers finish in.
//!
//! Responses are queued as the chunks the worker encoded them into (a Fetch response's records
//! are chunks of their own, sharing the buffer they were read into) and written with
//! `write_vectored`, so records are never copied between the pread and the socket. The write
//! queue holds no empty chunk, and `write_pos` is always inside its front chunk. On a TLS
//! connection the same chunks go to rustls (`transport.rs`), as fast as the socket drains.
//!
//! A TLS connection counts as receiving a partial request from its accept until its handshake
//! completes, so `request_read_timeout_ms` bounds a stalled handshake as it bounds a trickled
//! frame; the client certificate's principal is set on the session when the handshake
//! completes, before any of the connection's requests is cut from the stream.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, IoSlice};
use std::net::SocketAddr;

use bytes::Bytes;

use super::encode::Reply;
use super::session::ConnSession;
use super::transport::{Received, Transport};
use crate::protocol::frame::{FrameDecoder, FrameError};

pub use crate::limits::QUEUED_REQUEST_BYTES_MAX;
const READ_CHUNK_BYTES: usize = 64 * 1024;
pub use crate::limits::PIPELINED_MAX;
use crate::limits::WRITE_SLICES_MAX;

pub struct Connection {
    pub transport: Transport,
    pub peer: SocketAddr,
    /// Shared with the worker running this connection's request.
    pub session: std::sync::Arc<ConnSession>,
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
    /// A failed SASL login's answer, written at the instant given and followed by the close
    /// (`Reply::FrameThenClose`); nothing else is read or run meanwhile.
    pub held_reply: Option<(std::time::Instant, Vec<Bytes>)>,
}

pub enum ReadOutcome {
    Open,
    Closed,
    Error(String),
}

impl Connection {
    pub fn new(
        transport: Transport,
        peer: SocketAddr,
        session: std::sync::Arc<ConnSession>,
        frame_bytes_max: usize,
    ) -> Self {
        let now = std::time::Instant::now();
        Connection {
            partial_since: transport.is_handshaking().then_some(now),
            transport,
            peer,
            session,
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
            last_active: now,
            held_reply: None,
        }
    }

    pub fn wants_read(&self) -> bool {
        !self.read_closed && self.queued_bytes < QUEUED_REQUEST_BYTES_MAX
    }

    /// Reads until `WouldBlock` or the queue limit, cutting complete frames.
    pub fn read_available(&mut self, scratch: &mut [u8]) -> ReadOutcome {
        debug_assert!(scratch.len() >= READ_CHUNK_BYTES.min(scratch.len()));
        while self.wants_read() {
            let decoder = &mut self.decoder;
            match self.transport.receive(scratch, &mut |b| decoder.extend(b)) {
                Ok(received) => {
                    let now = std::time::Instant::now();
                    self.last_active = now;
                    if let Some(handshake) = self.transport.take_handshake() {
                        match handshake {
                            Ok(Some(principal)) => {
                                log::debug!("{}: TLS client certificate of {principal}", self.peer);
                                self.session.set_principal(principal);
                            }
                            Ok(None) => {}
                            Err(e) => return ReadOutcome::Error(e.to_string()),
                        }
                    }
                    if let Err(e) = self.cut_frames() {
                        return ReadOutcome::Error(e.to_string());
                    }
                    // Bytes left over after cutting are the start of the next frame.
                    let partial =
                        self.decoder.buffered_bytes() > 0 || self.transport.is_handshaking();
                    self.partial_since = match partial {
                        false => None,
                        true => self.partial_since.or(Some(now)),
                    };
                    if received == Received::Eof {
                        self.read_closed = true;
                        break;
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

    /// Queues a response frame's chunks for writing, in order.
    pub fn queue_write(&mut self, chunks: Vec<Bytes>) {
        self.write_buf
            .extend(chunks.into_iter().filter(|c| !c.is_empty()));
    }

    pub fn has_pending_write(&self) -> bool {
        !self.write_buf.is_empty() || self.transport.has_pending_output()
    }

    /// Writes until drained or `WouldBlock`. Returns an error message if the socket failed.
    pub fn flush_writes(&mut self) -> Result<(), String> {
        loop {
            if self.write_buf.is_empty() {
                return self.transport.flush().map_err(|e| e.to_string());
            }
            let mut slices = [IoSlice::new(&[]); WRITE_SLICES_MAX];
            let count = fill_io_slices(&self.write_buf, self.write_pos, &mut slices);
            match self.transport.write_vectored(&slices[..count]) {
                Ok(0) => return Err("connection closed while writing".into()),
                Ok(n) => {
                    self.last_active = std::time::Instant::now();
                    self.write_pos = advance_written(&mut self.write_buf, self.write_pos, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }
}

/// Points `slices` at the unwritten bytes of the first chunks of `queue` (the front one from
/// `pos` on). Returns how many slices were filled.
fn fill_io_slices<'a>(queue: &'a VecDeque<Bytes>, pos: usize, slices: &mut [IoSlice<'a>]) -> usize {
    for (i, (slot, chunk)) in slices.iter_mut().zip(queue).enumerate() {
        let from = if i == 0 { pos.min(chunk.len()) } else { 0 };
        *slot = IoSlice::new(&chunk[from..]);
    }
    slices.len().min(queue.len())
}

/// Accounts for `n` bytes written from `queue`, whose front chunk was written up to `pos`:
/// drops the chunks now fully written and returns the position in the new front chunk.
/// Writing more than is queued just empties the queue.
fn advance_written(queue: &mut VecDeque<Bytes>, mut pos: usize, mut n: usize) -> usize {
    while let Some(front) = queue.front() {
        let left = front.len().saturating_sub(pos);
        if n < left {
            return pos + n;
        }
        n -= left;
        pos = 0;
        queue.pop_front();
    }
    0
}

pub fn read_chunk_bytes() -> usize {
    READ_CHUNK_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(lens: &[usize]) -> VecDeque<Bytes> {
        lens.iter()
            .enumerate()
            .map(|(i, &n)| Bytes::from(vec![i as u8; n]))
            .collect()
    }

    fn lens(q: &VecDeque<Bytes>) -> Vec<usize> {
        q.iter().map(|c| c.len()).collect()
    }

    #[test]
    fn partial_write_inside_the_first_chunk() {
        let mut q = queue(&[10, 20]);
        assert_eq!(advance_written(&mut q, 0, 4), 4);
        assert_eq!(lens(&q), [10, 20]);
        assert_eq!(advance_written(&mut q, 4, 5), 9);
        assert_eq!(lens(&q), [10, 20]);
    }

    #[test]
    fn write_ending_exactly_at_a_chunk_boundary() {
        let mut q = queue(&[10, 20, 30]);
        assert_eq!(advance_written(&mut q, 3, 7), 0);
        assert_eq!(lens(&q), [20, 30]);
        assert_eq!(advance_written(&mut q, 0, 20), 0);
        assert_eq!(lens(&q), [30]);
        assert_eq!(advance_written(&mut q, 0, 30), 0);
        assert!(q.is_empty());
    }

    #[test]
    fn write_spanning_several_chunks() {
        let mut q = queue(&[10, 20, 30, 40]);
        // 8 left of the first, all 20 and 30 of the next two, 5 into the fourth.
        assert_eq!(advance_written(&mut q, 2, 8 + 20 + 30 + 5), 5);
        assert_eq!(lens(&q), [40]);
        assert_eq!(q[0][0], 3);
    }

    #[test]
    fn writing_more_than_queued_empties_the_queue() {
        let mut q = queue(&[10]);
        assert_eq!(advance_written(&mut q, 0, 11), 0);
        assert!(q.is_empty());
        assert_eq!(advance_written(&mut q, 0, 0), 0);
    }

    #[test]
    fn io_slices_start_at_the_write_position_and_stop_at_the_limit() {
        let q = queue(&[10, 20, 30]);
        let mut slices = [IoSlice::new(&[]); 2];
        assert_eq!(fill_io_slices(&q, 4, &mut slices), 2);
        assert_eq!(slices[0].len(), 6);
        assert_eq!(slices[1].len(), 20);
        let mut slices = [IoSlice::new(&[]); WRITE_SLICES_MAX];
        assert_eq!(fill_io_slices(&q, 0, &mut slices), 3);
        assert_eq!(
            slices[..3].iter().map(|s| s.len()).collect::<Vec<_>>(),
            [10, 20, 30]
        );
    }

    /// The slices and the advance agree: writing the queue in arbitrary pieces, at most a few
    /// slices at a time, yields exactly its bytes in order.
    #[test]
    fn piecewise_vectored_writes_reassemble_the_queue() {
        let chunks = queue(&[3, 1, 7, 2, 9, 4]);
        let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        for step in 1..=expected.len() {
            let (mut q, mut pos, mut out) = (chunks.clone(), 0, Vec::new());
            while !q.is_empty() {
                let mut slices = [IoSlice::new(&[]); 3];
                let count = fill_io_slices(&q, pos, &mut slices);
                let mut budget = step;
                for s in &slices[..count] {
                    let take = s.len().min(budget);
                    out.extend_from_slice(&s[..take]);
                    budget -= take;
                }
                let written = step - budget;
                pos = advance_written(&mut q, pos, written);
            }
            assert_eq!(out, expected, "step {step}");
        }
    }
}
