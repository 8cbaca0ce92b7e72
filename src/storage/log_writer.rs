//! The write side of a segment's `.log`: buffered (through the page cache) or direct
//! (`O_DIRECT`, around it).
//!
//! Both write positionally at the end of what the segment has written, so no file offset is
//! shared with the readers, and both hold bytes in memory only between `write_all` and `flush`
//! (the caller flushes before it publishes the bytes to readers or acknowledges them).
//!
//! Direct writes exist because of what the page cache costs: on a VM that hands freed memory
//! back to its host, every page a log writes into the cache is new to the host as well, and the
//! kernel's copy into it was two thirds of the broker's CPU under a 1 KiB produce load
//! (BENCHMARKS.md). A direct write sends the bytes from one reused, aligned buffer per active
//! segment to the device instead, and record bytes are read back the same way
//! (`read_exact_direct`, into a reused buffer per thread). Batch headers are still read
//! through the page cache (the segment's other descriptor), which Linux keeps coherent with
//! direct writes: a direct write invalidates the cached pages it covers.
//!
//! Invariants of `DirectWriter`:
//! - `buf[..len]` holds the file's bytes `[file_pos, file_pos + len)`; `file_pos` is a multiple
//!   of `DIRECT_IO_ALIGN_BYTES`, so `buf[..len]` starts with the partial block (if any) that the
//!   last flush wrote padded with zeros and the next one writes again, longer;
//! - `unwritten` is false only when every byte of `buf[..len]` is on the device, so a flush
//!   with nothing new writes nothing;
//! - after `flush`, every byte below `file_pos + len` is on the device, and the file may be up
//!   to `DIRECT_IO_ALIGN_BYTES - 1` zero bytes longer than the log (`Segment::cut_padding`);
//!   a rewrite of that partial block writes the same bytes over the log's part of it, so a torn
//!   rewrite never damages bytes written before.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

/// Alignment of a direct write's file offset, length and memory (covers every logical block
/// size up to 4 KiB).
pub const DIRECT_IO_ALIGN_BYTES: usize = 4096;

/// Capacity of a direct writer's buffer: appends larger than this go out in pieces this big.
const DIRECT_WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Capacity of a buffered writer's buffer.
const BUFFERED_WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// `O_DIRECT` on Linux (asm-generic value; x86-64 and aarch64 share it).
const O_DIRECT: i32 = 0o40000;

/// Buffered positional writes through the segment's shared handle.
#[derive(Debug)]
pub struct PositionalWriter {
    file: Arc<File>,
    position: u64,
}

impl Write for PositionalWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write_at(buf, self.position)?;
        self.position += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, self.position)?;
        self.position += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A zeroed buffer whose usable part starts on a `DIRECT_IO_ALIGN_BYTES` boundary (safe
/// code: the allocation is over-sized by one alignment and the aligned part sliced out).
#[derive(Debug)]
struct AlignedBuf {
    mem: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    fn new(capacity: usize) -> AlignedBuf {
        let mem = vec![0u8; capacity + DIRECT_IO_ALIGN_BYTES];
        let misalign = mem.as_ptr() as usize % DIRECT_IO_ALIGN_BYTES;
        let start = (DIRECT_IO_ALIGN_BYTES - misalign) % DIRECT_IO_ALIGN_BYTES;
        AlignedBuf { mem, start }
    }

    fn bytes(&mut self) -> &mut [u8] {
        let end = self.mem.len() - DIRECT_IO_ALIGN_BYTES + self.start;
        &mut self.mem[self.start..end]
    }
}

/// Direct positional writes through a second, `O_DIRECT` descriptor of the `.log`.
#[derive(Debug)]
pub struct DirectWriter {
    file: Arc<File>,
    buf: AlignedBuf,
    file_pos: u64,
    len: usize,
    /// Some of `buf[..len]` is not on the device yet (a flush has something to write).
    unwritten: bool,
}

fn align_down(n: u64) -> u64 {
    n - n % DIRECT_IO_ALIGN_BYTES as u64
}

impl DirectWriter {
    /// A writer at `position` through the direct handle `file`, reading the partial block
    /// before `position` (if any) back through `reader`.
    pub fn new(file: Arc<File>, reader: &File, position: u64) -> io::Result<DirectWriter> {
        let file_pos = align_down(position);
        let len = (position - file_pos) as usize;
        let mut buf = AlignedBuf::new(DIRECT_WRITE_BUFFER_BYTES);
        reader.read_exact_at(&mut buf.bytes()[..len], file_pos)?;
        Ok(DirectWriter {
            file,
            buf,
            file_pos,
            len,
            unwritten: false,
        })
    }

    /// Writes `buf[..len]` out, the last partial block padded with zeros when `pad` (else held
    /// back), and keeps that partial block at the front of the buffer.
    fn write_out(&mut self, pad: bool) -> io::Result<()> {
        let full = align_down(self.len as u64) as usize;
        let end = if pad && full < self.len {
            full + DIRECT_IO_ALIGN_BYTES
        } else {
            full
        };
        if end == 0 || !self.unwritten {
            return Ok(());
        }
        let len = self.len;
        let bytes = self.buf.bytes();
        bytes[len..end].fill(0);
        self.file.write_all_at(&bytes[..end], self.file_pos)?;
        bytes.copy_within(full..len, 0);
        self.file_pos += full as u64;
        self.len -= full;
        self.unwritten = !pad && self.len > 0;
        Ok(())
    }
}

impl Write for DirectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let room = DIRECT_WRITE_BUFFER_BYTES - self.len;
            let n = room.min(data.len());
            let len = self.len;
            self.buf.bytes()[len..len + n].copy_from_slice(&data[..n]);
            self.len += n;
            self.unwritten = true;
            data = &data[n..];
            if self.len == DIRECT_WRITE_BUFFER_BYTES {
                self.write_out(false)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out(true)
    }
}

/// Opens `path` a second time, for direct reads and writes; `None` where the file system
/// refuses `O_DIRECT` (tmpfs before Linux 6.6, some FUSE file systems): the caller keeps to
/// the page cache there.
pub fn open_direct(path: &Path) -> io::Result<Option<File>> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(O_DIRECT)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            log::debug!(
                "{}: no direct I/O here ({e}); using the page cache",
                path.display()
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

thread_local! {
    /// Each reading thread's aligned buffer for direct reads (allocated at its first one).
    static READ_BUF: std::cell::RefCell<Option<AlignedBuf>> = const { std::cell::RefCell::new(None) };
}

/// Largest piece one direct read brings in (a multiple of the alignment).
const DIRECT_READ_CHUNK_BYTES: usize = 1024 * 1024;

/// Fills `out` with the file's bytes from `pos` through the direct handle `file`: aligned
/// reads of up to `DIRECT_READ_CHUNK_BYTES` into this thread's reused buffer, copied out.
/// Reading past the end of the file is `UnexpectedEof`.
pub fn read_exact_direct(file: &File, out: &mut [u8], pos: u64) -> io::Result<()> {
    READ_BUF.with(|cell| {
        let mut guard = cell.borrow_mut();
        let buf = guard.get_or_insert_with(|| {
            AlignedBuf::new(DIRECT_READ_CHUNK_BYTES + DIRECT_IO_ALIGN_BYTES)
        });
        let bytes = buf.bytes();
        let mut done = 0usize;
        while done < out.len() {
            let at = pos + done as u64;
            let start = align_down(at);
            let skip = (at - start) as usize;
            let want = (out.len() - done).min(DIRECT_READ_CHUNK_BYTES);
            let span = (skip + want).div_ceil(DIRECT_IO_ALIGN_BYTES) * DIRECT_IO_ALIGN_BYTES;
            let mut got = 0usize;
            while got < skip + want {
                let n = file.read_at(&mut bytes[got..span], start + got as u64)?;
                if n == 0 {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                }
                got += n;
            }
            out[done..done + want].copy_from_slice(&bytes[skip..skip + want]);
            done += want;
        }
        Ok(())
    })
}

/// A segment's writer: buffered, or direct once the segment has been written to in direct mode.
#[derive(Debug)]
pub enum LogWriter {
    Buffered(io::BufWriter<PositionalWriter>),
    Direct(Box<DirectWriter>),
}

impl LogWriter {
    pub fn buffered(file: &Arc<File>, position: u64) -> LogWriter {
        LogWriter::Buffered(io::BufWriter::with_capacity(
            BUFFERED_WRITE_BUFFER_BYTES,
            PositionalWriter {
                file: Arc::clone(file),
                position,
            },
        ))
    }

    /// A direct writer at `position` through `direct` (see `open_direct`).
    pub fn direct(direct: Arc<File>, reader: &File, position: u64) -> io::Result<LogWriter> {
        Ok(LogWriter::Direct(Box::new(DirectWriter::new(
            direct, reader, position,
        )?)))
    }

    pub fn is_direct(&self) -> bool {
        matches!(self, LogWriter::Direct(_))
    }

    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            LogWriter::Buffered(w) => w.write_all(data),
            LogWriter::Direct(w) => w.write_all(data),
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            LogWriter::Buffered(w) => w.flush(),
            LogWriter::Direct(w) => w.flush(),
        }
    }

    /// Drops the bytes not yet written (after a failed write; the caller cuts the file).
    pub fn discard(self) {
        if let LogWriter::Buffered(w) = self {
            drop(w.into_parts());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A direct handle in a fresh directory, or `None` where this file system has no
    /// `O_DIRECT` (the tests then say so and check nothing).
    fn direct_file(dir: &Path) -> Option<(std::path::PathBuf, Arc<File>, Arc<File>)> {
        let path = dir.join("00000000000000000000.log");
        let reader = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .expect("create");
        match open_direct(&path).expect("open") {
            Some(d) => Some((path, Arc::new(reader), Arc::new(d))),
            None => {
                eprintln!("no O_DIRECT on {}: nothing to check", dir.display());
                None
            }
        }
    }

    /// Deterministic bytes that differ from position to position.
    fn bytes(seed: usize, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| ((seed * 31 + i * 7) % 251) as u8)
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever the write sizes and flush points, and wherever a writer is reopened, the
        /// file holds exactly the bytes written (then only zeros, less than a block of them),
        /// and a direct read of any range returns those bytes.
        #[test]
        fn direct_writes_and_reads_keep_every_byte(
            ops in prop::collection::vec((0usize..600_000, 0u8..3), 1..12),
            reads in prop::collection::vec((any::<u64>(), 0usize..1_500_000), 1..8),
        ) {
            let dir = tempfile::tempdir().expect("tmp");
            let Some((_path, reader, direct)) = direct_file(dir.path()) else { return Ok(()) };
            let mut expected: Vec<u8> = Vec::new();
            let mut w = DirectWriter::new(Arc::clone(&direct), &reader, 0).expect("writer");
            for (i, (len, action)) in ops.iter().enumerate() {
                let data = bytes(i, *len);
                w.write_all(&data).expect("write");
                expected.extend_from_slice(&data);
                match action {
                    0 => {}
                    1 => w.flush().expect("flush"),
                    _ => {
                        // Reopen where the log ends, as after a restart or a rollback.
                        w.flush().expect("flush");
                        w = DirectWriter::new(Arc::clone(&direct), &reader, expected.len() as u64)
                            .expect("reopen");
                    }
                }
            }
            w.flush().expect("flush");
            let mut on_disk = Vec::new();
            std::io::Read::read_to_end(&mut File::open(dir.path().join("00000000000000000000.log")).expect("open"), &mut on_disk).expect("read");
            prop_assert!(on_disk.len() >= expected.len());
            prop_assert!(on_disk.len() - expected.len() < DIRECT_IO_ALIGN_BYTES);
            prop_assert_eq!(on_disk.len() % DIRECT_IO_ALIGN_BYTES, 0);
            prop_assert!(on_disk[..expected.len()] == expected[..], "logged bytes differ");
            prop_assert!(on_disk[expected.len()..].iter().all(|&b| b == 0), "padding is not zeros");
            for (at, len) in reads {
                if expected.is_empty() { break; }
                let at = (at % expected.len() as u64) as usize;
                let len = len.min(expected.len() - at);
                let mut out = vec![0u8; len];
                read_exact_direct(&direct, &mut out, at as u64).expect("direct read");
                prop_assert!(out[..] == expected[at..at + len], "direct read of {}+{} differs", at, len);
            }
        }
    }

    #[test]
    fn a_direct_read_past_the_end_is_unexpected_eof() {
        let dir = tempfile::tempdir().expect("tmp");
        let Some((_path, reader, direct)) = direct_file(dir.path()) else {
            return;
        };
        let mut w = DirectWriter::new(Arc::clone(&direct), &reader, 0).expect("writer");
        w.write_all(&bytes(1, 5000)).expect("write");
        w.flush().expect("flush");
        reader.set_len(5000).expect("trim");
        let mut out = vec![0u8; 100];
        let err = read_exact_direct(&direct, &mut out, 4950).expect_err("past the end");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        read_exact_direct(&direct, &mut out[..50], 4950).expect("up to the end");
        assert_eq!(&out[..50], &bytes(1, 5000)[4950..]);
    }
}
