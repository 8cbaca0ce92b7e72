//! Per-connection state owned by the reactor: framing buffer, queued frames, requests in
//! flight, and bytes waiting to be written.
//!
//! Invariants: at most one worker at a time holds a connection's requests, a *job* of up to
//! `JOB_REQUESTS_MAX` consecutive requests that it runs one after the other, so requests take
//! effect in the order they arrived (appends in particular). A Produce that only waits for
//! durability (acks=all) is reported `Parked` and the worker goes on to the next request of
//! its job. A request parked holding the connection (a long-poll Fetch) ends the job: the
//! worker hands the requests after it back (`unrun`) and the connection stays held until the
//! parked request is answered. A request answered with a close stops the connection at once:
//! nothing read after it runs, even while its answer waits behind earlier ones. At most
//! `PIPELINED_MAX` requests are outstanding. Responses are written strictly in request order
//! (`seq`), whatever order the workers finish in.
//!
//! Responses are queued as the chunks the worker encoded them into (`out_chunk.rs`): memory
//! chunks are written with `write_vectored` (a Fetch response's read records are chunks of
//! their own, sharing the buffer they were read into, so never copied between the pread and the
//! socket), and a file range (a plain socket's Fetch records, never read) with `sendfile`. The
//! write queue holds no empty chunk, and `write_pos` is always inside its front chunk. On a
//! TLS connection the chunks go to rustls (`transport.rs`), as fast as the socket drains; a
//! file range reaching a TLS connection is read into memory when queued.
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
use super::out_chunk::{OutChunk, advance_written, fill_io_slices, send_range};
use super::session::ConnSession;
use super::transport::{Received, Transport};
use crate::protocol::frame::{FrameDecoder, FrameError};

pub use crate::limits::QUEUED_REQUEST_BYTES_MAX;
const READ_CHUNK_BYTES: usize = 64 * 1024;
pub use crate::limits::PIPELINED_MAX;
use crate::limits::{JOB_BYTES_MAX, JOB_REQUESTS_MAX, WRITE_SLICES_MAX};

pub struct Connection {
    pub transport: Transport,
    pub peer: SocketAddr,
    /// Shared with the worker running this connection's request.
    pub session: std::sync::Arc<ConnSession>,
    pub decoder: FrameDecoder,
    pub queued: VecDeque<Bytes>,
    pub queued_bytes: usize,
    /// While a worker holds the connection: the last request it may still answer (the last
    /// of its job, or the one parked holding the connection). Cleared by that request's
    /// reply, or by `unrun` when the worker stopped early and that request is answered.
    processing: Option<u64>,
    /// Sequence number of the next request handed to a worker.
    next_seq: u64,
    /// Sequence number of the next response to write.
    next_write: u64,
    /// Replies that arrived before an earlier request's reply.
    early: BTreeMap<u64, Reply>,
    pub write_buf: VecDeque<OutChunk>,
    pub write_pos: usize,
    pub read_closed: bool,
    pub close_after_write: bool,
    /// A worker answered a request with a close (`Reply::Close` / `FrameThenClose`), which
    /// may still wait behind earlier answers, or the server is stopping: nothing more is read
    /// or handed to a worker (`stop_requests`).
    closing: bool,
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
            closing: false,
            read_paused: false,
            last_active: now,
            held_reply: None,
        }
    }

    pub fn wants_read(&self) -> bool {
        !self.read_closed && !self.closing && self.queued_bytes < QUEUED_REQUEST_BYTES_MAX
    }

    /// Reads until `WouldBlock` or the queue limit, cutting complete frames.
    pub fn read_available(&mut self, scratch: &mut [u8]) -> ReadOutcome {
        debug_assert!(scratch.len() >= READ_CHUNK_BYTES.min(scratch.len()));
        while self.wants_read() {
            let decoder = &mut self.decoder;
            // The rest of a large frame goes straight from a plain socket into its own buffer.
            let outcome = match self.transport.receive_large(decoder) {
                Some(outcome) => outcome,
                None => self.transport.receive(scratch, &mut |b| decoder.extend(b)),
            };
            match outcome {
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

    /// The next job for a worker: the sequence number of its first request and up to
    /// `JOB_REQUESTS_MAX` consecutive queued requests (at most `JOB_BYTES_MAX` of them beyond
    /// the first), if no worker holds the connection and the pipeline has room.
    pub fn next_requests(&mut self) -> Option<(u64, Vec<Bytes>)> {
        if self.processing.is_some() || self.closing {
            return None;
        }
        let room = PIPELINED_MAX.saturating_sub(self.next_seq - self.next_write);
        let count_max = usize::try_from(room)
            .unwrap_or(usize::MAX)
            .min(JOB_REQUESTS_MAX);
        let mut frames = Vec::new();
        let mut bytes = 0;
        while frames.len() < count_max {
            let Some(front) = self.queued.front() else {
                break;
            };
            if !frames.is_empty() && bytes + front.len() > JOB_BYTES_MAX {
                break;
            }
            bytes += front.len();
            frames.extend(self.queued.pop_front());
        }
        if frames.is_empty() {
            return None;
        }
        self.queued_bytes -= bytes;
        let first = self.next_seq;
        self.next_seq += frames.len() as u64;
        self.processing = Some(self.next_seq - 1);
        Some((first, frames))
    }

    /// Puts the job just taken back at the head of the queue (the job queue was full).
    pub fn unget_requests(&mut self, first_seq: u64, frames: Vec<Bytes>) {
        self.requeue(frames);
        self.next_seq = first_seq;
        self.processing = None;
    }

    /// The worker stopped its job before request `from_seq` (see `ReplyMsg::Unrun`): the
    /// requests it did not run go back to the head of the queue, to be handed out again under
    /// the same sequence numbers, and the connection stays held by request `from_seq - 1`
    /// until that one is answered (it may already be: a parked request can be woken and
    /// answered by another worker before this notice arrives).
    pub fn unrun(&mut self, from_seq: u64, frames: Vec<Bytes>) {
        if !self.closing {
            self.requeue(frames);
        }
        self.next_seq = from_seq;
        let held = from_seq.checked_sub(1);
        self.processing =
            held.filter(|&seq| seq >= self.next_write && !self.early.contains_key(&seq));
    }

    /// Nothing more is read or handed to a worker (the connection closes, or the server
    /// stops); what was queued is dropped, and so are requests a worker hands back later.
    pub fn stop_requests(&mut self) {
        self.closing = true;
        self.queued.clear();
        self.queued_bytes = 0;
    }

    fn requeue(&mut self, frames: Vec<Bytes>) {
        for frame in frames.into_iter().rev() {
            self.queued_bytes += frame.len();
            self.queued.push_front(frame);
        }
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
        if matches!(reply, Reply::Close(_) | Reply::FrameThenClose { .. }) {
            // Requests after it never run, even while its answer waits for earlier ones.
            self.stop_requests();
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
        self.write_buf.extend(
            chunks
                .into_iter()
                .filter(|c| !c.is_empty())
                .map(OutChunk::Mem),
        );
    }

    /// Queues a response frame whose records may be file ranges: sent from the file on a
    /// plain socket, read into memory first for TLS (which must encrypt them). A range that
    /// cannot be read is an error: the frame is not queued and the connection must close.
    pub fn queue_chunks(&mut self, chunks: Vec<OutChunk>) -> Result<(), String> {
        let tls = matches!(self.transport, Transport::Tls(_));
        let mut frame = Vec::with_capacity(chunks.len());
        for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
            frame.push(match chunk {
                OutChunk::File(range) if tls => match range.read_to_vec() {
                    Ok(bytes) => OutChunk::Mem(Bytes::from(bytes)),
                    Err(e) => return Err(format!("{}: {e}", range.path.display())),
                },
                other => other,
            });
        }
        self.write_buf.extend(frame);
        Ok(())
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
            let written = match (self.write_buf.front(), &mut self.transport) {
                (Some(OutChunk::File(range)), Transport::Plain(sock)) => {
                    send_range(sock, range, self.write_pos)
                }
                _ => {
                    let mut slices = [IoSlice::new(&[]); WRITE_SLICES_MAX];
                    let count = fill_io_slices(&self.write_buf, self.write_pos, &mut slices);
                    if count == 0 {
                        // A file range on TLS: `queue_chunks` never queues one.
                        return Err("a file range queued on a TLS connection".into());
                    }
                    self.transport.write_vectored(&slices[..count])
                }
            };
            match written {
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

pub fn read_chunk_bytes() -> usize {
    READ_CHUNK_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::SecurityProtocol;

    /// A connection over a real loopback socket (never read or written here) with `lens`
    /// queued as requests.
    fn conn_with(lens: &[usize]) -> (Connection, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let transport = Transport::Plain(mio::net::TcpStream::from_std(server));
        let session = std::sync::Arc::new(ConnSession::new(0, SecurityProtocol::Plaintext));
        let mut c = Connection::new(transport, peer, session, 1 << 20);
        c.requeue(queue(lens).into_iter().collect());
        (c, client)
    }

    fn frame_reply() -> Reply {
        Reply::Frame(vec![Bytes::from_static(b"r")])
    }

    #[test]
    fn a_job_takes_consecutive_requests_up_to_its_limits() {
        let (mut c, _client) = conn_with(&[10; JOB_REQUESTS_MAX + 3]);
        let (first, frames) = c.next_requests().unwrap();
        assert_eq!((first, frames.len()), (0, JOB_REQUESTS_MAX));
        assert!(
            c.next_requests().is_none(),
            "one job per connection at a time"
        );
        for seq in 0..JOB_REQUESTS_MAX as u64 {
            assert_eq!(c.settle(seq, frame_reply()).len(), 1);
        }
        let (first, frames) = c.next_requests().unwrap();
        assert_eq!((first, frames.len()), (JOB_REQUESTS_MAX as u64, 3));
        assert_eq!(c.queued_bytes, 0);

        // The byte limit counts beyond the first request, which is taken whatever its size.
        let (mut c, _client) = conn_with(&[JOB_BYTES_MAX + 1, 1, 1]);
        let (_, frames) = c.next_requests().unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(c.settle(0, frame_reply()).len(), 1);
        let (first, frames) = c.next_requests().unwrap();
        assert_eq!((first, frames.len()), (1, 2));
        let (mut c, _client) = conn_with(&[JOB_BYTES_MAX / 2, JOB_BYTES_MAX / 2, 1]);
        assert_eq!(c.next_requests().unwrap().1.len(), 2);
    }

    #[test]
    fn a_job_leaves_room_for_the_pipeline_limit() {
        let (mut c, _client) = conn_with(&[1; 4]);
        // PIPELINED_MAX - 2 parked Produce requests outstanding.
        c.next_seq = PIPELINED_MAX - 2;
        let (first, frames) = c.next_requests().unwrap();
        assert_eq!((first, frames.len()), (PIPELINED_MAX - 2, 2));
    }

    /// A request parked holding the connection ends its job: the requests after it go back
    /// to the queue and are handed out again, under the same numbers, once it is answered.
    #[test]
    fn requests_after_a_held_park_wait_for_its_answer() {
        let (mut c, _client) = conn_with(&[1, 2, 3, 4]);
        let (_, frames) = c.next_requests().unwrap();
        assert_eq!(frames.len(), 4);
        assert_eq!(c.settle(0, frame_reply()).len(), 1);
        // Request 1 parked; 2 and 3 come back.
        c.unrun(2, frames[2..].to_vec());
        assert_eq!(c.queued.len(), 2);
        assert_eq!(c.queued_bytes, 7);
        assert!(c.next_requests().is_none(), "held by request 1");
        assert_eq!(c.settle(1, frame_reply()).len(), 1);
        let (first, frames) = c.next_requests().unwrap();
        assert_eq!(first, 2);
        assert_eq!(frames.iter().map(Bytes::len).collect::<Vec<_>>(), [3, 4]);
    }

    /// The parked request can be woken and answered by another worker before the job's
    /// worker reports the requests it did not run: the connection is then free at once.
    #[test]
    fn a_held_park_answered_before_the_unrun_notice_does_not_hold_the_connection() {
        let (mut c, _client) = conn_with(&[1, 2, 3]);
        let (_, frames) = c.next_requests().unwrap();
        assert_eq!(c.settle(0, frame_reply()).len(), 1);
        assert_eq!(c.settle(1, frame_reply()).len(), 1);
        c.unrun(2, frames[2..].to_vec());
        let (first, frames) = c.next_requests().unwrap();
        assert_eq!((first, frames.len()), (2, 1));

        // The same while an earlier pipelined Produce is still unanswered: request 1's
        // answer waits in `early`, and the connection is free all the same.
        let (mut c, _client) = conn_with(&[1, 2, 3]);
        let (_, frames) = c.next_requests().unwrap();
        assert!(c.settle(0, Reply::Parked).is_empty());
        assert!(c.settle(1, frame_reply()).is_empty());
        c.unrun(2, frames[2..].to_vec());
        assert_eq!(c.next_requests().unwrap().0, 2);
        assert_eq!(
            c.settle(0, frame_reply()).len(),
            2,
            "answers 0 and 1, in order"
        );
    }

    /// A request that closes the connection drops the rest of its job; nothing is left in
    /// flight, so the connection can finish closing.
    #[test]
    fn a_close_drops_the_rest_of_its_job() {
        let (mut c, _client) = conn_with(&[1, 2, 3]);
        let (_, _frames) = c.next_requests().unwrap();
        assert_eq!(c.settle(0, Reply::Close("bad".into())).len(), 1);
        c.unrun(1, Vec::new());
        assert!(!c.in_flight());
        assert!(c.queued.is_empty());
    }

    /// A close waiting behind a parked Produce's answer already stops the connection: the
    /// requests read after the job are dropped and nothing more is read or handed out.
    #[test]
    fn a_close_behind_a_parked_produce_stops_later_requests_at_once() {
        let (mut c, _client) = conn_with(&[1, 2]);
        let (_, frames) = c.next_requests().unwrap();
        assert_eq!(frames.len(), 2);
        c.requeue(vec![Bytes::from_static(b"read later")]);
        assert!(c.settle(0, Reply::Parked).is_empty());
        assert!(
            c.settle(1, Reply::Close("bad".into())).is_empty(),
            "waits for 0"
        );
        assert!(c.queued.is_empty() && c.queued_bytes == 0);
        assert!(c.next_requests().is_none());
        assert!(!c.wants_read());
        let due = c.settle(0, frame_reply());
        assert!(matches!(due.as_slice(), [Reply::Frame(_), Reply::Close(_)]));
        assert!(!c.in_flight());
    }

    fn queue(lens: &[usize]) -> VecDeque<Bytes> {
        lens.iter()
            .enumerate()
            .map(|(i, &n)| Bytes::from(vec![i as u8; n]))
            .collect()
    }

    fn lens(q: &VecDeque<OutChunk>) -> Vec<usize> {
        q.iter().map(|c| c.len()).collect()
    }

    /// In-memory write chunks of `lens` bytes, chunk `i` filled with byte `i`.
    fn out(lens: &[usize]) -> VecDeque<OutChunk> {
        queue(lens).into_iter().map(OutChunk::Mem).collect()
    }

    fn mem(c: &OutChunk) -> &Bytes {
        match c {
            OutChunk::Mem(b) => b,
            OutChunk::File(_) => panic!("a file range"),
        }
    }

    /// A frame of memory chunks and file ranges goes out whole and in order: the ranges with
    /// `sendfile`, the rest with vectored writes, as fast as the client reads.
    #[test]
    fn a_frame_with_file_ranges_is_written_whole_and_in_order() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let stored: Vec<u8> = (0..(2usize << 20)).map(|i| (i % 251) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&stored)
            .unwrap();
        let file = std::sync::Arc::new(std::fs::File::open(&path).unwrap());
        let range = |position: usize, len: usize| {
            OutChunk::File(crate::storage::FileRange {
                file: file.clone(),
                path: path.clone(),
                position: position as u64,
                len,
            })
        };
        let (mut c, mut client) = conn_with(&[]);
        c.queue_chunks(vec![
            OutChunk::Mem(Bytes::from_static(b"size+header")),
            range(10, 1 << 20),
            OutChunk::Mem(Bytes::from_static(b"between")),
            OutChunk::Mem(Bytes::new()),
            range((1 << 20) + 99, 700_001),
            OutChunk::Mem(Bytes::from_static(b"end")),
        ])
        .unwrap();
        let mut expected = b"size+header".to_vec();
        expected.extend_from_slice(&stored[10..10 + (1 << 20)]);
        expected.extend_from_slice(b"between");
        expected.extend_from_slice(&stored[(1 << 20) + 99..(1 << 20) + 99 + 700_001]);
        expected.extend_from_slice(b"end");
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; expected.len()];
            client.read_exact(&mut got).unwrap();
            assert!(got == expected, "the frame arrives as queued");
        });
        while c.has_pending_write() {
            c.flush_writes().unwrap();
            std::thread::yield_now();
        }
        reader.join().unwrap();
    }

    /// A range whose file is shorter than it fails the write (the connection closes) instead
    /// of sending a short frame.
    #[test]
    fn a_file_range_past_the_end_of_its_file_fails_the_write() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&[7u8; 4096])
            .unwrap();
        let file = std::sync::Arc::new(std::fs::File::open(&path).unwrap());
        let (mut c, _client) = conn_with(&[]);
        c.queue_chunks(vec![OutChunk::File(crate::storage::FileRange {
            file,
            path,
            position: 1024,
            len: 4096,
        })])
        .unwrap();
        let err = c.flush_writes().unwrap_err();
        assert!(err.contains("ends before"), "{err}");
    }

    #[test]
    fn partial_write_inside_the_first_chunk() {
        let mut q = out(&[10, 20]);
        assert_eq!(advance_written(&mut q, 0, 4), 4);
        assert_eq!(lens(&q), [10, 20]);
        assert_eq!(advance_written(&mut q, 4, 5), 9);
        assert_eq!(lens(&q), [10, 20]);
    }

    #[test]
    fn write_ending_exactly_at_a_chunk_boundary() {
        let mut q = out(&[10, 20, 30]);
        assert_eq!(advance_written(&mut q, 3, 7), 0);
        assert_eq!(lens(&q), [20, 30]);
        assert_eq!(advance_written(&mut q, 0, 20), 0);
        assert_eq!(lens(&q), [30]);
        assert_eq!(advance_written(&mut q, 0, 30), 0);
        assert!(q.is_empty());
    }

    #[test]
    fn write_spanning_several_chunks() {
        let mut q = out(&[10, 20, 30, 40]);
        // 8 left of the first, all 20 and 30 of the next two, 5 into the fourth.
        assert_eq!(advance_written(&mut q, 2, 8 + 20 + 30 + 5), 5);
        assert_eq!(lens(&q), [40]);
        assert_eq!(mem(&q[0])[0], 3);
    }

    #[test]
    fn writing_more_than_queued_empties_the_queue() {
        let mut q = out(&[10]);
        assert_eq!(advance_written(&mut q, 0, 11), 0);
        assert!(q.is_empty());
        assert_eq!(advance_written(&mut q, 0, 0), 0);
    }

    #[test]
    fn io_slices_start_at_the_write_position_and_stop_at_the_limit() {
        let q = out(&[10, 20, 30]);
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
        let chunks = out(&[3, 1, 7, 2, 9, 4]);
        let expected: Vec<u8> = chunks.iter().flat_map(|c| mem(c).iter().copied()).collect();
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
