#![allow(clippy::unwrap_used, clippy::expect_used)]
//! TLS listeners against the real server, in-process on loopback: a Rust client over rustls
//! speaking Kafka requests (kafka-protocol), certificates made by rcgen in a temp dir.
//!
//! Covered: TLS 1.2 and 1.3 each (produce, fetch, metadata, a multi-MiB Fetch response that
//! must cross rustls' bounded send buffer many times); mTLS (a CA-signed client certificate is
//! served; none, or one from another CA, is refused; the CN principal itself is checked by the
//! unit tests in `src/server/transport.rs`); several listeners at once, each answering
//! Metadata with its own advertised address; hostile input on a TLS port (garbage, plaintext
//! Kafka, a ClientHello cut in half, a client silent after connecting or after its
//! ClientHello, a forged record after the handshake): that connection is closed and the
//! broker keeps serving the others, including one opened before.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, StreamOwned, SupportedProtocolVersion,
};
use thorstream::TopicConfig;
use thorstream::internals::protocol::records::decode_records;
use thorstream::server::listener::{apply_advertised, parse_listeners};
use thorstream::server::{ListenerConfig, SecurityProtocol, ServerConfig, TlsFiles};

use common::requests::{batch, fetch_request, produce_request};
use common::server::{Fixture, start};
use common::wire::request;

/// How long a test waits for the server to answer or to close a connection.
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Certificates.

type Ca = CertifiedIssuer<'static, KeyPair>;

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A leaf certificate for `cn` signed by `ca`: (DER chain, PEM cert, key).
fn leaf(
    ca: &Ca,
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
) -> (CertificateDer<'static>, String, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.der().clone(), cert.pem(), key)
}

/// A CA, the server's certificate and key in a temp dir, and the CA file for mTLS.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca("thorstream test CA");
        let (_, pem, key) = leaf(&ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
        std::fs::write(dir.path().join("server.pem"), pem).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn files(&self, mtls: bool) -> TlsFiles {
        TlsFiles {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: mtls.then(|| self.path("ca.pem")),
        }
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        roots
    }
}

type ClientCert = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn client_cert(ca: &Ca, cn: &str) -> ClientCert {
    let (der, _, key) = leaf(ca, cn, ExtendedKeyUsagePurpose::ClientAuth);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (vec![der], key)
}

fn client_config(
    pki: &Pki,
    versions: &[&'static SupportedProtocolVersion],
    cert: Option<ClientCert>,
) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(pki.roots());
    Arc::new(match cert {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    })
}

fn all_versions() -> [&'static SupportedProtocolVersion; 2] {
    [&rustls::version::TLS13, &rustls::version::TLS12]
}

// ---------------------------------------------------------------------------------------------
// A Kafka client over TLS (or plain TCP).

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn tcp(addr: SocketAddr) -> TcpStream {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    sock.set_write_timeout(Some(WAIT)).unwrap();
    sock
}

/// Connects and runs the handshake to its end (from the client's side).
fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> io::Result<Tls> {
    let mut sock = tcp(addr);
    let name = ServerName::IpAddress(addr.ip().into());
    let mut conn = ClientConnection::new(Arc::clone(config), name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    Ok(StreamOwned::new(conn, sock))
}

/// One response frame without its size prefix; `None` if the connection closed or failed.
fn read_frame(s: &mut impl Read) -> Option<Bytes> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).ok()?;
    let len = i32::from_be_bytes(size);
    assert!((0..256 * 1024 * 1024).contains(&len), "response size {len}");
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

/// Sends `req` and returns the response, or `None` if the connection closed or failed.
fn try_call<Req, Resp>(
    s: &mut (impl Read + Write),
    api: ApiKey,
    version: i16,
    req: &Req,
) -> Option<Resp>
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable,
{
    s.write_all(&request(api, version, 7, req)).ok()?;
    s.flush().ok()?;
    let mut b = read_frame(s)?;
    let header = ResponseHeader::decode(&mut b, api.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 7);
    Some(Resp::decode(&mut b, version).unwrap())
}

fn call<Req, Resp>(s: &mut (impl Read + Write), api: ApiKey, version: i16, req: &Req) -> Resp
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable,
{
    try_call(s, api, version, req).expect("a response, not a closed connection")
}

/// The client is served: ApiVersions answers with no error.
fn served(s: &mut (impl Read + Write)) -> bool {
    let r: Option<ApiVersionsResponse> =
        try_call(s, ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    r.is_some_and(|r| r.error_code == 0 && !r.api_keys.is_empty())
}

fn metadata(s: &mut (impl Read + Write)) -> MetadataResponse {
    call(
        s,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )
}

/// Reads until the server closes the connection (EOF or a reset); returns the bytes read.
/// Panics if it stays open for `WAIT`.
fn read_until_closed(sock: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the server left the connection open for {WAIT:?}")
            }
            Err(_) => return got,
        }
    }
}

/// Bytes the server may send before closing a connection it refused: nothing, or TLS alert
/// records (content type 21, 7 bytes each unencrypted).
fn only_alerts(bytes: &[u8]) -> bool {
    bytes.chunks(7).all(|r| r.len() == 7 && r[0] == 21)
}

// ---------------------------------------------------------------------------------------------
// Servers.

fn tls_listener() -> ListenerConfig {
    ListenerConfig::new(SecurityProtocol::Ssl, "127.0.0.1:0".parse().unwrap())
}

/// A server with one SSL listener (mTLS if `mtls`), topic `t`, and `tune` applied last.
fn tls_server(pki: &Pki, mtls: bool, tune: impl FnOnce(&mut ServerConfig)) -> Fixture {
    start(
        |_| {},
        [("t", TopicConfig::with_partitions(1))],
        |sc| {
            sc.listeners = vec![tls_listener()];
            sc.tls = Some(pki.files(mtls));
            tune(sc);
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Protocol versions and data.

/// Produces with acks=all: answered once the records are below the high watermark, so a
/// Fetch after it sees them.
fn produce(s: &mut (impl Read + Write), values: &[&[u8]]) -> i64 {
    let req = produce_request("t", 0, Some(Bytes::from(batch(values))), -1);
    let r: ProduceResponse = call(s, ApiKey::Produce, 9, &req);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    p.base_offset
}

fn fetch_values(s: &mut (impl Read + Write), from: i64, max_bytes: i32) -> Vec<Vec<u8>> {
    let r: FetchResponse = call(
        s,
        ApiKey::Fetch,
        12,
        &fetch_request("t", 0, from, 1, 1000, max_bytes),
    );
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let bytes = p.records.clone().unwrap_or_default();
    decode_records("t", 0, &bytes, from)
        .unwrap()
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect()
}

fn round_trip(version: &'static SupportedProtocolVersion) {
    let pki = Pki::new();
    let fx = tls_server(&pki, false, |_| {});
    let mut c = connect(fx.addr, &client_config(&pki, &[version], None)).unwrap();
    assert_eq!(c.conn.protocol_version(), Some(version.version));
    assert!(served(&mut c));
    let md = metadata(&mut c);
    assert_eq!(md.brokers[0].port, fx.addr.port() as i32);
    assert!(
        md.topics
            .iter()
            .any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "t"))
    );
    assert_eq!(produce(&mut c, &[b"one", b"two"]), 0);
    assert_eq!(produce(&mut c, &[b"three"]), 2);
    assert_eq!(
        fetch_values(&mut c, 0, 1 << 20),
        [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
}

#[test]
fn tls13_serves_produce_fetch_and_metadata() {
    round_trip(&rustls::version::TLS13);
}

#[test]
fn tls12_serves_produce_fetch_and_metadata() {
    round_trip(&rustls::version::TLS12);
}

/// A Fetch response of ~7 MiB, far above the TLS send buffer bound, arrives whole and in order
/// (the transport hands rustls plaintext only as the socket drains), and the same connection
/// keeps working after it.
#[test]
fn multi_mib_fetch_response_crosses_the_bounded_tls_buffer_intact() {
    let pki = Pki::new();
    let fx = tls_server(&pki, false, |_| {});
    let mut c = connect(fx.addr, &client_config(&pki, &all_versions(), None)).unwrap();
    let values: Vec<Vec<u8>> = (0..8u8)
        .map(|i| {
            (0..900 * 1024)
                .map(|j| (j as u8).wrapping_mul(31) ^ i)
                .collect()
        })
        .collect();
    for v in &values {
        produce(&mut c, &[v.as_slice()]);
    }
    assert_eq!(fetch_values(&mut c, 0, 16 << 20), values);
    assert!(served(&mut c));
}

// ---------------------------------------------------------------------------------------------
// mTLS.

#[test]
fn mtls_serves_a_client_with_a_certificate_from_the_client_ca() {
    let pki = Pki::new();
    let fx = tls_server(&pki, true, |_| {});
    for (offset, version) in all_versions().into_iter().enumerate() {
        let cert = client_cert(&pki.ca, "alice");
        let mut c = connect(fx.addr, &client_config(&pki, &[version], Some(cert))).unwrap();
        assert!(served(&mut c), "{version:?}");
        assert_eq!(produce(&mut c, &[b"from alice"]), offset as i64);
        assert_eq!(
            fetch_values(&mut c, offset as i64, 1 << 20),
            [b"from alice".to_vec()]
        );
    }
}

/// The handshake fails, or (TLS 1.3, where the client finishes before the server has checked
/// its certificate) the first request gets no answer: the server alerts and closes.
fn refused(fx: &Fixture, config: &Arc<ClientConfig>) -> bool {
    refused_at(fx.addr, config)
}

fn refused_at(addr: SocketAddr, config: &Arc<ClientConfig>) -> bool {
    match connect(addr, config) {
        Err(_) => true,
        Ok(mut c) => !served(&mut c),
    }
}

#[test]
fn mtls_refuses_a_client_without_a_certificate() {
    let pki = Pki::new();
    let fx = tls_server(&pki, true, |_| {});
    for version in all_versions() {
        assert!(
            refused(&fx, &client_config(&pki, &[version], None)),
            "{version:?}"
        );
    }
    let good = client_config(&pki, &all_versions(), Some(client_cert(&pki.ca, "alice")));
    assert!(served(&mut connect(fx.addr, &good).unwrap()));
}

#[test]
fn mtls_refuses_a_certificate_from_another_ca() {
    let pki = Pki::new();
    let fx = tls_server(&pki, true, |_| {});
    let other = ca("some other CA");
    for version in all_versions() {
        let cert = client_cert(&other, "mallory");
        assert!(
            refused(&fx, &client_config(&pki, &[version], Some(cert))),
            "{version:?}"
        );
    }
    let good = client_config(&pki, &all_versions(), Some(client_cert(&pki.ca, "alice")));
    assert!(served(&mut connect(fx.addr, &good).unwrap()));
}

// ---------------------------------------------------------------------------------------------
// Several listeners.

/// PLAINTEXT and SSL at once (parsed from Kafka's form), each client answered with the
/// address of the listener it came in on: SSL's advertised one, PLAINTEXT's own bound port.
#[test]
fn several_listeners_each_advertise_their_own_address() {
    let pki = Pki::new();
    let fx = start(
        |_| {},
        [("t", TopicConfig::with_partitions(1))],
        |sc| {
            let mut l = parse_listeners("PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0", &[]).unwrap();
            apply_advertised(&mut l, "SSL://tls.example:19093").unwrap();
            sc.listeners = l;
            sc.tls = Some(pki.files(false));
        },
    );
    let addrs = fx.server.as_ref().unwrap().local_addrs.clone();
    assert_eq!(addrs.len(), 2);
    assert_eq!(addrs[0], fx.addr);

    let mut plain = tcp(addrs[0]);
    let md = metadata(&mut plain);
    assert_eq!(md.brokers.len(), 1);
    assert_eq!(md.brokers[0].host.as_str(), "127.0.0.1");
    assert_eq!(md.brokers[0].port, addrs[0].port() as i32);

    let mut tls = connect(addrs[1], &client_config(&pki, &all_versions(), None)).unwrap();
    let md = metadata(&mut tls);
    assert_eq!(md.brokers[0].host.as_str(), "tls.example");
    assert_eq!(md.brokers[0].port, 19093);

    // Both carry data to the same broker.
    assert_eq!(produce(&mut plain, &[b"plain"]), 0);
    assert_eq!(produce(&mut tls, &[b"tls"]), 1);
    assert_eq!(
        fetch_values(&mut tls, 0, 1 << 20),
        [b"plain".to_vec(), b"tls".to_vec()]
    );
    // TLS on the plaintext port is not understood there: that connection closes.
    assert!(connect(addrs[0], &client_config(&pki, &all_versions(), None)).is_err());
    assert!(served(&mut plain));
}

#[test]
fn a_tls_listener_without_certificate_files_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(
        thorstream::Broker::new(thorstream::BrokerConfig::with_data_dir(dir.path())).unwrap(),
    );
    let mut sc = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    sc.listeners = vec![tls_listener()];
    assert!(thorstream::server::start(Arc::clone(&broker), sc.clone()).is_err());
    sc.tls = Some(TlsFiles {
        cert: dir.path().join("missing.pem"),
        key: dir.path().join("missing.key"),
        client_ca: None,
    });
    assert!(thorstream::server::start(broker, sc).is_err());
}

// ---------------------------------------------------------------------------------------------
// Hostile input.

/// A server whose handshakes and partial requests must finish within 300 ms, and a client
/// served before the hostile one arrives (checked again after it is gone).
fn hostile_setup(pki: &Pki) -> (Fixture, Tls) {
    let fx = tls_server(pki, false, |sc| sc.request_read_timeout_ms = 300);
    let mut bystander = connect(fx.addr, &client_config(pki, &all_versions(), None)).unwrap();
    assert!(served(&mut bystander));
    (fx, bystander)
}

fn still_serving(fx: &Fixture, pki: &Pki, bystander: &mut Tls) {
    assert!(
        served(bystander),
        "the client connected before lost its service"
    );
    let mut fresh = connect(fx.addr, &client_config(pki, &all_versions(), None)).unwrap();
    assert!(served(&mut fresh), "a new client is not served");
}

/// The first bytes of a real ClientHello (one TLS record).
fn client_hello(pki: &Pki) -> Vec<u8> {
    let config = client_config(pki, &all_versions(), None);
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(config, name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    assert_eq!(out[0], 22, "a handshake record");
    out
}

#[test]
fn tls_garbage_closes_only_that_connection() {
    let pki = Pki::new();
    let (fx, mut bystander) = hostile_setup(&pki);
    // Random-looking bytes, then bytes that look like a handshake record of absurd length.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for junk in [garbage, vec![22, 3, 3, 0xff, 0xff, 1, 0, 0xff, 0xff]] {
        let mut sock = tcp(fx.addr);
        sock.write_all(&junk).unwrap();
        let reply = read_until_closed(&mut sock);
        assert!(only_alerts(&reply), "answered {reply:?}");
    }
    still_serving(&fx, &pki, &mut bystander);
}

#[test]
fn plaintext_kafka_on_a_tls_port_is_closed_unanswered() {
    let pki = Pki::new();
    let (fx, mut bystander) = hostile_setup(&pki);
    let mut sock = tcp(fx.addr);
    sock.write_all(&request(
        ApiKey::ApiVersions,
        3,
        1,
        &ApiVersionsRequest::default(),
    ))
    .unwrap();
    let reply = read_until_closed(&mut sock);
    assert!(only_alerts(&reply), "answered {reply:?}");
    still_serving(&fx, &pki, &mut bystander);
}

#[test]
fn a_client_hello_cut_in_half_is_closed_at_the_read_timeout() {
    let pki = Pki::new();
    let (fx, mut bystander) = hostile_setup(&pki);
    let hello = client_hello(&pki);
    let mut sock = tcp(fx.addr);
    sock.write_all(&hello[..hello.len() / 2]).unwrap();
    let reply = read_until_closed(&mut sock);
    assert!(only_alerts(&reply), "answered {reply:?}");
    still_serving(&fx, &pki, &mut bystander);
}

#[test]
fn a_client_silent_after_its_client_hello_is_closed_at_the_read_timeout() {
    let pki = Pki::new();
    let (fx, mut bystander) = hostile_setup(&pki);
    let mut sock = tcp(fx.addr);
    sock.write_all(&client_hello(&pki)).unwrap();
    // The server answers its part of the handshake, then closes when the client goes quiet.
    let reply = read_until_closed(&mut sock);
    assert_eq!(reply.first(), Some(&22), "ServerHello expected first");
    still_serving(&fx, &pki, &mut bystander);
}

#[test]
fn a_client_silent_after_connecting_to_a_tls_port_is_closed_at_the_read_timeout() {
    let pki = Pki::new();
    let (fx, mut bystander) = hostile_setup(&pki);
    let mut sock = tcp(fx.addr);
    assert_eq!(read_until_closed(&mut sock), b"");
    still_serving(&fx, &pki, &mut bystander);
}

/// After a complete handshake, an application-data record that does not decrypt (a forged or
/// corrupted record) ends the connection with an alert.
#[test]
fn a_forged_record_after_the_handshake_closes_the_connection() {
    let pki = Pki::new();
    let (fx, mut bystander) = hostile_setup(&pki);
    let mut c = connect(fx.addr, &client_config(&pki, &all_versions(), None)).unwrap();
    assert!(served(&mut c));
    let mut forged = vec![23, 3, 3, 0, 64];
    forged.extend((0..64u8).map(|i| i.wrapping_mul(97)));
    c.sock.write_all(&forged).unwrap();
    let mut rest = Vec::new();
    // rustls reports the server's alert (or the close) as an error or EOF; either way no
    // response comes.
    let outcome = c.read_to_end(&mut rest);
    assert!(outcome.is_err() || rest.is_empty(), "answered {rest:?}");
    still_serving(&fx, &pki, &mut bystander);
}

/// Many clients stalled mid-handshake at once are all closed, and the server still serves.
#[test]
fn many_stalled_handshakes_are_all_closed() {
    let pki = Pki::new();
    let (fx, mut bystander) = hostile_setup(&pki);
    let hello = client_hello(&pki);
    let mut socks: Vec<TcpStream> = (0..50)
        .map(|i| {
            let mut s = tcp(fx.addr);
            let cut = if i % 2 == 0 {
                hello.len() / 3
            } else {
                hello.len()
            };
            s.write_all(&hello[..cut]).unwrap();
            s
        })
        .collect();
    for s in &mut socks {
        read_until_closed(s);
    }
    still_serving(&fx, &pki, &mut bystander);
}

// ---------------------------------------------------------------------------------------------
// The binary's flags and TOML keys.

/// A `thorstream` process; killed when dropped.
struct Bin(std::process::Child);

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary with `args` and returns it with its listeners' bound addresses, read from
/// its start-up log line (`listening on NAME://addr (advertised host:port), ...`).
fn run_bin(args: &[&str]) -> (Bin, Vec<(String, SocketAddr, String)>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_thorstream"))
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("THORSTREAM_ADDR")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let bin = Bin(child);
    let mut lines = io::BufReader::new(stderr).lines();
    let line = loop {
        let line = lines
            .next()
            .expect("the broker exited before listening")
            .unwrap();
        if let Some((_, rest)) = line.split_once(" listening on ") {
            break rest.split(", data dir").next().unwrap().to_string();
        }
    };
    // Keep draining the log so the broker never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let listeners = line
        .split(", ")
        .map(|l| {
            let (name, rest) = l.split_once("://").unwrap();
            let (addr, adv) = rest.split_once(" (advertised ").unwrap();
            (
                name.to_string(),
                addr.parse().unwrap(),
                adv.trim_end_matches(')').to_string(),
            )
        })
        .collect();
    (bin, listeners)
}

#[test]
fn the_binary_takes_kafka_style_listener_flags() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let (_bin, listeners) = run_bin(&[
        "--data-dir",
        data.path().to_str().unwrap(),
        "--listeners",
        "PLAINTEXT://127.0.0.1:0,EXTERNAL://127.0.0.1:0",
        "--listener-security-protocol-map",
        "EXTERNAL:SSL",
        "--advertised-listeners",
        "EXTERNAL://tls.example:9094",
        "--ssl-cert",
        cert.to_str().unwrap(),
        "--ssl-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(listeners.len(), 2);
    assert_eq!(listeners[0].0, "PLAINTEXT");
    assert_eq!(listeners[1].0, "EXTERNAL");
    assert_eq!(listeners[1].2, "tls.example:9094");
    let mut plain = tcp(listeners[0].1);
    assert_eq!(
        metadata(&mut plain).brokers[0].port,
        listeners[0].1.port() as i32
    );
    let mut tls = connect(listeners[1].1, &client_config(&pki, &all_versions(), None)).unwrap();
    let md = metadata(&mut tls);
    assert_eq!(md.brokers[0].host.as_str(), "tls.example");
    assert_eq!(md.brokers[0].port, 9094);
}

#[test]
fn the_binary_takes_the_same_settings_from_toml_with_mtls() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let toml = format!(
        "data_dir = {:?}\nlisteners = \"SSL://127.0.0.1:0\"\nssl_cert = {:?}\nssl_key = {:?}\n\
         ssl_client_ca = {:?}\n",
        data.path(),
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    );
    let config = pki.path("thorstream.toml");
    std::fs::write(&config, toml).unwrap();
    let (_bin, listeners) = run_bin(&["--config", config.to_str().unwrap()]);
    assert_eq!(listeners[0].0, "SSL");
    let addr = listeners[0].1;
    assert!(refused_at(
        addr,
        &client_config(&pki, &all_versions(), None)
    ));
    let good = client_config(&pki, &all_versions(), Some(client_cert(&pki.ca, "alice")));
    assert!(served(&mut connect(addr, &good).unwrap()));
}

#[test]
fn the_binary_refuses_conflicting_or_incomplete_listener_settings() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    for args in [
        &[
            "--listen",
            "127.0.0.1:0",
            "--listeners",
            "PLAINTEXT://127.0.0.1:0",
        ][..],
        &["--listeners", "SSL://127.0.0.1:0"],
        &["--listeners", "INTERNAL://127.0.0.1:0"],
        &["--ssl-cert", "x.pem"],
        &[
            "--listen",
            "127.0.0.1:0",
            "--advertised-listeners",
            "SSL://h:1",
        ],
    ] {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_thorstream"))
            .args(args)
            .args(["--data-dir", dir])
            .env_remove("THORSTREAM_ADDR")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut bin = Bin(child);
        let mut status = None;
        let exited = common::wait_until(WAIT, || {
            status = bin.0.try_wait().unwrap();
            status.is_some()
        });
        assert!(exited, "{args:?} accepted: the broker is running");
        assert!(!status.unwrap().success(), "{args:?} accepted");
    }
}
