//! The byte stream of one connection: the plain non-blocking `TcpStream`, or TLS (a rustls
//! `ServerConnection`) over it, both driven by the reactor's readiness events and never
//! blocking.
//!
//! Plain: reads go from the socket into the reactor's scratch buffer (the rest of a large
//! frame: straight into the frame's own buffer, `receive_large`), writes go from the response's shared chunks to the socket by `write_vectored`
//! (no copy).
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
use crate::protocol::frame::FrameDecoder;
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

    /// Reads the rest of `decoder`'s large frame straight from a plain socket into it (see
    /// `FrameDecoder::read_large_from`); `None` over TLS (decrypted bytes come out of rustls'
    /// buffer) or when no large frame is being received.
    pub fn receive_large(&mut self, decoder: &mut FrameDecoder) -> Option<io::Result<Received>> {
        let Transport::Plain(s) = self else {
            return None;
        };
        Some(decoder.read_large_from(s)?.map(|n| match n {
            0 => Received::Eof,
            _ => Received::Bytes,
        }))
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

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::time::{Duration, Instant};

    use mio::{Events, Interest, Poll, Token};
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    use rustls::pki_types::{PrivatePkcs8KeyDer, ServerName};

    use super::*;
    use crate::security::SecurityProtocol;
    use crate::server::TlsFiles;
    use crate::server::connection::{Connection, ReadOutcome};
    use crate::server::session::ConnSession;

    type Ca = CertifiedIssuer<'static, KeyPair>;

    fn ca() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "unit test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    }

    /// A certificate signed by `ca` with the subject `dn` (attribute, value pairs).
    fn leaf(
        ca: &Ca,
        dn: &[(DnType, &str)],
        usage: ExtendedKeyUsagePurpose,
    ) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), *v);
        }
        params.extended_key_usages = vec![usage];
        (params.signed_by(&key, ca).unwrap(), key)
    }

    /// Runs a real handshake over loopback: a rustls client with a certificate of subject
    /// `dn` sends one Kafka frame; the server side is a `Connection` on the transport, driven by
    /// mio. Returns the principal the session had before the handshake and the one it had when
    /// the frame was first cut.
    fn principal_when_first_frame_is_cut(dn: &[(DnType, &str)]) -> (Principal, Principal) {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let (server_cert, server_key) = leaf(&ca, &[], ExtendedKeyUsagePurpose::ServerAuth);
        let files = TlsFiles {
            cert: dir.path().join("s.pem"),
            key: dir.path().join("s.key"),
            client_ca: Some(dir.path().join("ca.pem")),
        };
        std::fs::write(&files.cert, server_cert.pem()).unwrap();
        std::fs::write(&files.key, server_key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        let config = tls::server_config(&files).unwrap();

        let (client_cert, client_key) = leaf(&ca, dn, ExtendedKeyUsagePurpose::ClientAuth);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let client_config = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![client_cert.der().clone()],
                PrivatePkcs8KeyDer::from(client_key.serialize_der()).into(),
            )
            .unwrap(),
        );

        let mut listener = mio::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let client = std::thread::spawn(move || {
            let sock = std::net::TcpStream::connect(addr).unwrap();
            let name = ServerName::IpAddress(addr.ip().into());
            let conn = rustls::ClientConnection::new(client_config, name).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, sock);
            tls.write_all(&[0, 0, 0, 4, 1, 2, 3, 4]).unwrap();
            tls.flush().unwrap();
            // Keep the connection open until the server side has looked.
            let _ = done_rx.recv_timeout(Duration::from_secs(30));
        });

        let mut poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut listener, Token(0), Interest::READABLE)
            .unwrap();
        let mut events = Events::with_capacity(16);
        let mut scratch = vec![0u8; 64 * 1024];
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut conn: Option<Connection> = None;
        let mut before = None;
        while Instant::now() < deadline {
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            if conn.is_none()
                && let Ok((mut sock, peer)) = listener.accept()
            {
                poll.registry()
                    .register(&mut sock, Token(1), Interest::READABLE | Interest::WRITABLE)
                    .unwrap();
                let session = Arc::new(ConnSession::new(0, SecurityProtocol::Ssl));
                before = Some(session.principal());
                let transport = Transport::tls(sock, &config).unwrap();
                conn = Some(Connection::new(transport, peer, session, 1024));
            }
            let Some(c) = conn.as_mut() else { continue };
            c.flush_writes().unwrap();
            match c.read_available(&mut scratch) {
                ReadOutcome::Open | ReadOutcome::Closed => {}
                ReadOutcome::Error(e) => panic!("server side failed: {e}"),
            }
            if let Some(frame) = c.queued.front() {
                assert_eq!(&frame[..], [1, 2, 3, 4]);
                let principal = c.session.principal();
                done_tx.send(()).unwrap();
                client.join().unwrap();
                return (before.unwrap(), principal);
            }
        }
        panic!("no frame arrived over TLS");
    }

    #[test]
    fn the_client_certificate_cn_is_the_principal_before_the_first_request() {
        let (before, after) = principal_when_first_frame_is_cut(&[
            (DnType::OrganizationName, "acme"),
            (DnType::CommonName, "alice"),
        ]);
        assert!(before.is_anonymous());
        assert_eq!(after, Principal::user("alice"));
    }

    #[test]
    fn a_subject_without_cn_is_named_by_its_whole_dn() {
        let (_, after) = principal_when_first_frame_is_cut(&[
            (DnType::OrganizationName, "acme"),
            (DnType::CountryName, "NL"),
        ]);
        assert_eq!(after.kind, "User");
        assert!(after.name.contains("O=acme"), "{after}");
        assert!(after.name.contains("C=NL"), "{after}");
    }
}
