//! Raw Kafka frames for tests that talk to the real server over TCP: encode a request with its
//! header, read a size-prefixed response and decode it.

use std::io::Read;
use std::net::TcpStream;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

/// A size-prefixed request frame: header for (`api`, `version`) followed by raw `body` bytes
/// (which may be deliberately malformed).
pub fn frame(api: ApiKey, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("thorstream-test")))
        .encode(&mut buf, api.request_header_version(version))
        .expect("encode request header");
    buf.extend_from_slice(body);
    let mut framed = (buf.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&buf);
    framed
}

/// A well-formed request frame.
pub fn request<T: Encodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    correlation: i32,
    body: &T,
) -> Vec<u8> {
    let mut b = BytesMut::new();
    body.encode(&mut b, version).expect("encode request body");
    frame(api, version, correlation, &b)
}

/// One response frame without its size prefix, or `None` if the server closed the connection.
pub fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).ok()?;
    let len = i32::from_be_bytes(size);
    assert!((0..64 * 1024 * 1024).contains(&len), "response size {len}");
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

/// Reads and decodes one response; returns its correlation id and body.
pub fn response<T: Decodable>(s: &mut TcpStream, header_version: i16, version: i16) -> (i32, T) {
    let mut b = read_frame(s).expect("a response, not a closed connection");
    let header = ResponseHeader::decode(&mut b, header_version).expect("response header");
    (
        header.correlation_id,
        T::decode(&mut b, version).expect("response body"),
    )
}
