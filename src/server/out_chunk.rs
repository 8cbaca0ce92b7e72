//! What a connection's write queue holds: bytes in memory, or a range of a segment file that a
//! plain socket sends with `sendfile(2)`, from the page cache to the socket, never copied
//! through user space (Kafka sends log bytes the same way, `FileChannel.transferTo`).
//!
//! Invariants: a queued chunk is never empty; a file range is only ever queued on a plain
//! socket (`Connection::queue_chunks` reads it into memory for TLS, which must encrypt it); a
//! frame is never sent short: a file that ends before its range does is an error and the
//! connection closes (its size prefix is already out), rather than send fewer bytes or pad.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::Bytes;
use mio::net::TcpStream;

use crate::storage::FileRange;

/// One piece of a response frame waiting to be written.
#[derive(Debug, Clone)]
pub enum OutChunk {
    Mem(Bytes),
    File(FileRange),
}

impl OutChunk {
    pub fn len(&self) -> usize {
        match self {
            OutChunk::Mem(b) => b.len(),
            OutChunk::File(r) => r.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Bytes one `sendfile` call is asked for at most (Linux moves at most 0x7ffff000 per call;
/// a smaller bound keeps one connection from holding the reactor for long).
const SENDFILE_CALL_BYTES_MAX: usize = 8 << 20;

/// Sends the bytes of `range` from `from` on (as many as the socket takes now). `Ok(n)` with
/// `n > 0`; an early end of the file is an error (`UnexpectedEof`).
pub fn send_range(sock: &TcpStream, range: &FileRange, from: usize) -> io::Result<usize> {
    let left = range.len.saturating_sub(from);
    let mut offset = range.position + from as u64;
    let n = rustix::fs::sendfile(
        sock,
        &*range.file,
        Some(&mut offset),
        left.min(SENDFILE_CALL_BYTES_MAX),
    )?;
    if n == 0 && left > 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{} ends before the {} bytes at {} a response is sending",
                range.path.display(),
                range.len,
                range.position
            ),
        ));
    }
    Ok(n)
}

/// Points `slices` at the unwritten bytes of the in-memory chunks at the front of `queue`
/// (the front one from `pos` on), up to the first file range. Returns how many were filled.
pub fn fill_io_slices<'a>(
    queue: &'a VecDeque<OutChunk>,
    pos: usize,
    slices: &mut [IoSlice<'a>],
) -> usize {
    let mut count = 0;
    for (i, (slot, chunk)) in slices.iter_mut().zip(queue).enumerate() {
        let OutChunk::Mem(chunk) = chunk else { break };
        let from = if i == 0 { pos.min(chunk.len()) } else { 0 };
        *slot = IoSlice::new(&chunk[from..]);
        count += 1;
    }
    count
}

/// Accounts for `n` bytes written from `queue`, whose front chunk was written up to `pos`:
/// drops the chunks now fully written and returns the position in the new front chunk.
/// Writing more than is queued just empties the queue.
pub fn advance_written(queue: &mut VecDeque<OutChunk>, mut pos: usize, mut n: usize) -> usize {
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::Arc;

    use super::*;

    /// A file holding bytes 0, 1, …, 249, 0, 1, … (`len` of them), as a range from `position`.
    fn file_range(len: usize, position: u64, range_len: usize) -> (tempfile::TempDir, FileRange) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let bytes: Vec<u8> = (0..len).map(|i| (i % 250) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        let range = FileRange {
            file,
            path,
            position,
            len: range_len,
        };
        (dir, range)
    }

    /// A non-blocking server-side socket and its blocking client end, over loopback.
    fn socket_pair() -> (TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (TcpStream::from_std(server), client)
    }

    /// The range's bytes, from wherever it starts in the file, arrive exactly, in pieces as
    /// the socket takes them (a range larger than one call and than the socket's buffer).
    #[test]
    fn a_range_is_sent_from_its_position_to_its_end() {
        let (_dir, range) = file_range(3 << 20, 12_345, (3 << 20) - 12_345 - 7);
        let (sock, mut client) = socket_pair();
        let expected: Vec<u8> = (12_345..(3 << 20) - 7).map(|i| (i % 250) as u8).collect();
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; expected.len()];
            client.read_exact(&mut got).unwrap();
            assert!(got == expected, "the bytes sent are the range's");
        });
        let mut sent = 0;
        while sent < range.len {
            match send_range(&sock, &range, sent) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("send_range: {e}"),
            }
        }
        assert_eq!(sent, range.len);
        reader.join().unwrap();
    }

    /// A file that ends before its range is an error, never a short frame.
    #[test]
    fn a_file_shorter_than_its_range_is_an_error() {
        let (_dir, range) = file_range(1000, 900, 200);
        let (sock, _client) = socket_pair();
        assert_eq!(send_range(&sock, &range, 0).unwrap(), 100);
        let err = send_range(&sock, &range, 100).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("ends before"), "{err}");
    }

    /// Vectored writes stop at a file range: it is sent by itself, with `sendfile`.
    #[test]
    fn io_slices_stop_at_a_file_range() {
        let (_dir, range) = file_range(100, 0, 100);
        let q: VecDeque<OutChunk> = VecDeque::from(vec![
            OutChunk::Mem(Bytes::from_static(b"head")),
            OutChunk::Mem(Bytes::from_static(b"er")),
            OutChunk::File(range),
            OutChunk::Mem(Bytes::from_static(b"tail")),
        ]);
        let mut slices = [IoSlice::new(&[]); 8];
        assert_eq!(fill_io_slices(&q, 1, &mut slices), 2);
        assert_eq!(&*slices[0], b"ead");
        let rest: VecDeque<OutChunk> = q.iter().skip(2).cloned().collect();
        let mut slices = [IoSlice::new(&[]); 8];
        assert_eq!(fill_io_slices(&rest, 0, &mut slices), 0);
    }
}
