//! The byte stream of one connection: the plain non-blocking `TcpStream`, or TLS (a rustls
//! `ServerConnection`) over it, both driven by the reactor's readiness events and never
//! blocking.
//!
//! Plain: reads go from the socket into the reactor's scratch buffer, writes go from the
//! response's shared chunks to the socket by `write_vectored` (no copy).
//!
//! TLS: a read takes up to a scratch buffer of ciphertext off the socket and feeds all of it to
//! rustls (`read_tls` from the slice, `process_new_packets`), handing the decrypted plaintext
//! to the caller chunk by chunk straight out of rustls' buffer (`fill_buf`/`consume`), and
//! sends what the handshake produced. A write hands plaintext to rustls (`writer()`, which
//! encrypts it from the caller's slices into records: the one copy TLS cannot avoid) only
//! while rustls holds less than `TLS_SEND_BUFFER_BYTES` of records the socket has not taken:
//! a large Fetch response is encrypted as fast as the socket drains it, never all at once.
//!
//! Invariants: the handshake's completion is reported once (`take_handshake`), before any
//! plaintext of the connection is delivered to the caller, with the client certificate's
//! principal when it presented one; a TLS protocol error is answered with rustls' alert (best
//! effort) and reported as an error, after which the connection is closed by the caller;
//! rustls is never fed an empty read (which it would take for the peer's EOF).

use std::io::{self, BufRead, IoSlice, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;

use super::tls;
use crate::limits::TLS_SEND_BUFFER_BYTES;
use crate::security::Principal;

pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

pub struct TlsStream {
    sock: TcpStream,
    conn: rustls::ServerConnection,
    /// The handshake finished.
    handshake_done: bool,
    /// The handshake finished and the connection has not been told yet.
    handshake_unreported: bool,
}

/// What a read from the socket came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// Bytes arrived (plaintext may or may not have been delivered).
    Bytes,
    /// The peer closed its side (plaintext received before that was delivered).
    Eof,
}

/// The peer of a TLS connection whose handshake completed: `Some` principal if it presented
/// a (verified) client certificate.
pub type Handshake = Result<Option<Principal>, tls::BadSubject>;

impl Transport {
    /// A TLS server connection over `sock`, with its send buffer bounded.
    pub fn tls(sock: TcpStream, config: &Arc<rustls::ServerConfig>) -> Result<Self, rustls::Error> {
        let mut conn = rustls::ServerConnection::new(Arc::clone(config))?;
        conn.set_buffer_limit(Some(TLS_SEND_BUFFER_BYTES));
        Ok(Transport::Tls(Box::new(TlsStream {
            sock,
            conn,
            handshake_done: false,
            handshake_unreported: false,
        })))
    }

    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &mut t.sock,
        }
    }

    /// A TLS handshake has not finished yet (always false for plain connections).
    pub fn is_handshaking(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(t) => t.conn.is_handshaking(),
        }
    }

    /// The handshake's outcome, once, after it completed.
    pub fn take_handshake(&mut self) -> Option<Handshake> {
        let Transport::Tls(t) = self else { return None };
        if !std::mem::take(&mut t.handshake_unreported) {
            return None;
        }
        Some(match t.conn.peer_certificates().and_then(|c| c.first()) {
            Some(leaf) => tls::principal_of(leaf.as_ref()).map(Some),
            None => Ok(None),
        })
    }

    /// One read from the socket, up to `scratch.len()` bytes; the plaintext it yields goes to
    /// `deliver`. `WouldBlock` when the socket has nothing.
    pub fn receive(
        &mut self,
        scratch: &mut [u8],
        deliver: &mut dyn FnMut(&[u8]),
    ) -> io::Result<Received> {
        match self {
            Transport::Plain(s) => match s.read(scratch)? {
                0 => Ok(Received::Eof),
                n => {
                    deliver(&scratch[..n]);
                    Ok(Received::Bytes)
                }
            },
            Transport::Tls(t) => t.receive(scratch, deliver),
        }
    }

    /// Writes from `slices` like a non-blocking socket: `Ok(n)` bytes taken (for TLS: handed to
    /// rustls, whose records may still be on their way to the socket), or `WouldBlock`.
    pub fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write_vectored(slices),
            Transport::Tls(t) => t.write_vectored(slices),
        }
    }

    /// Sends what is buffered below the caller (TLS records); `Ok` also when the socket is
    /// full (the rest goes at the next writable event).
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(t) => would_block_ok(t.flush_tls()),
        }
    }

    /// Bytes buffered below the caller still wait for the socket.
    pub fn has_pending_output(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(t) => t.conn.wants_write(),
        }
    }
}

fn would_block_ok(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        r => r,
    }
}

impl TlsStream {
    fn receive(
        &mut self,
        scratch: &mut [u8],
        deliver: &mut dyn FnMut(&[u8]),
    ) -> io::Result<Received> {
        let n = self.sock.read(scratch)?;
        let mut eof = n == 0;
        let mut input = &scratch[..n];
        while !input.is_empty() {
            match self.conn.read_tls(&mut input) {
                // close_notify was received: nothing after it counts.
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(_) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            let state = match self.conn.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    // rustls queued the alert that tells the peer why.
                    let _ = self.flush_tls();
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("TLS: {e}"),
                    ));
                }
            };
            if !self.handshake_done && !self.conn.is_handshaking() {
                self.handshake_done = true;
                self.handshake_unreported = true;
            }
            eof |= state.peer_has_closed();
            self.deliver_plaintext(deliver)?;
        }
        would_block_ok(self.flush_tls())?;
        Ok(if eof { Received::Eof } else { Received::Bytes })
    }

    fn deliver_plaintext(&mut self, deliver: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        let mut reader = self.conn.reader();
        loop {
            let chunk = match reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            // Empty: close_notify received and everything before it delivered.
            if chunk.is_empty() {
                return Ok(());
            }
            deliver(chunk);
            let len = chunk.len();
            reader.consume(len);
        }
    }

    /// Writes rustls' pending records until none is left (`Ok`) or the socket is full
    /// (`WouldBlock`).
    fn flush_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        loop {
            // Backpressure: plaintext goes in only once the socket took the earlier records.
            self.flush_tls()?;
            let n = self.conn.writer().write_vectored(slices)?;
            if n > 0 {
                would_block_ok(self.flush_tls())?;
                return Ok(n);
            }
            if !self.conn.wants_write() {
                // Nothing to take (empty slices) and nothing pending.
                return Ok(0);
            }
        }
    }
}
