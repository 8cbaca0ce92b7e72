//! A SASL client for the tests, written against the RFCs with the RustCrypto crates (not the
//! broker's code): SCRAM-SHA-256/512 (RFC 5802/7677) and PLAIN (RFC 4616), over real Kafka
//! request frames (SaslHandshake v1, SaslAuthenticate v0-2).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use sha2::{Digest, Sha256, Sha512};

use crate::common::wire;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    pub fn mechanism(self) -> &'static str {
        match self {
            Hash::Sha256 => "SCRAM-SHA-256",
            Hash::Sha512 => "SCRAM-SHA-512",
        }
    }
    pub fn wire_type(self) -> i8 {
        match self {
            Hash::Sha256 => 1,
            Hash::Sha512 => 2,
        }
    }
    fn h(self, d: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(d).to_vec(),
            Hash::Sha512 => Sha512::digest(d).to_vec(),
        }
    }
    fn hmac(self, k: &[u8], d: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => {
                let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(k).unwrap();
                m.update(d);
                m.finalize().into_bytes().to_vec()
            }
            Hash::Sha512 => {
                let mut m = <Hmac<Sha512> as KeyInit>::new_from_slice(k).unwrap();
                m.update(d);
                m.finalize().into_bytes().to_vec()
            }
        }
    }
    pub fn salted_password(self, pw: &str, salt: &[u8], i: u32) -> Vec<u8> {
        match self {
            Hash::Sha256 => {
                let mut o = vec![0; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(pw.as_bytes(), salt, i, &mut o);
                o
            }
            Hash::Sha512 => {
                let mut o = vec![0; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(pw.as_bytes(), salt, i, &mut o);
                o
            }
        }
    }
}

/// Why a login did not succeed.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// The broker answered this error code and message.
    Refused(i16, Option<String>),
    /// The broker closed the connection without answering.
    Closed,
    /// The server's signature did not verify.
    BadServerSignature,
}

pub struct Client {
    pub stream: TcpStream,
    correlation: i32,
    pub auth_version: i16,
    /// SaslHandshake v0 and raw tokens (no SaslAuthenticate), as librdkafka before 2.11 can.
    pub raw_tokens: bool,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            correlation: 0,
            auth_version: 2,
            raw_tokens: false,
        }
    }

    /// Sends one request and reads its response; `None` if the connection was closed.
    pub fn call<Req: Encodable + HeaderVersion, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Option<Resp> {
        use std::io::Write;
        self.correlation += 1;
        let frame = wire::request(api, version, self.correlation, body);
        self.stream.write_all(&frame).ok()?;
        let mut b: Bytes = wire::read_frame(&mut self.stream)?;
        let header = ResponseHeader::decode(&mut b, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        Some(Resp::decode(&mut b, version).unwrap())
    }

    pub fn handshake(&mut self, mechanism: &str) -> Option<SaslHandshakeResponse> {
        let req = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(mechanism.to_string()));
        let version = if self.raw_tokens { 0 } else { 1 };
        self.call(ApiKey::SaslHandshake, version, &req)
    }

    pub fn authenticate(&mut self, bytes: &[u8]) -> Option<SaslAuthenticateResponse> {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(bytes));
        self.call(ApiKey::SaslAuthenticate, self.auth_version, &req)
    }

    fn step(&mut self, bytes: &[u8]) -> Result<SaslAuthenticateResponse, LoginError> {
        if self.raw_tokens {
            use std::io::Write;
            let mut frame = (bytes.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(bytes);
            self.stream
                .write_all(&frame)
                .map_err(|_| LoginError::Closed)?;
            let token: Bytes = wire::read_frame(&mut self.stream).ok_or(LoginError::Closed)?;
            return Ok(SaslAuthenticateResponse::default().with_auth_bytes(token));
        }
        let r = self.authenticate(bytes).ok_or(LoginError::Closed)?;
        if r.error_code != 0 {
            return Err(LoginError::Refused(
                r.error_code,
                r.error_message.map(|m| m.to_string()),
            ));
        }
        Ok(r)
    }

    fn start(&mut self, mechanism: &str) -> Result<(), LoginError> {
        let h = self.handshake(mechanism).ok_or(LoginError::Closed)?;
        if h.error_code != 0 {
            return Err(LoginError::Refused(h.error_code, None));
        }
        Ok(())
    }

    /// A whole SCRAM login; the session lifetime the broker reports on success.
    pub fn scram(&mut self, hash: Hash, user: &str, password: &str) -> Result<i64, LoginError> {
        self.start(hash.mechanism())?;
        let cnonce = "fyko+d2lbbFgONRv9qkxdawL";
        let bare = format!(
            "n={},r={cnonce}",
            user.replace('=', "=3D").replace(',', "=2C")
        );
        let first = self.step(format!("n,,{bare}").as_bytes())?;
        let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
        let mut attrs = server_first.split(',');
        let nonce = attrs.next().unwrap().strip_prefix("r=").unwrap();
        assert!(nonce.starts_with(cnonce) && nonce.len() > cnonce.len());
        let salt = B64
            .decode(attrs.next().unwrap().strip_prefix("s=").unwrap())
            .unwrap();
        let iterations: u32 = attrs.next().unwrap()[2..].parse().unwrap();
        let salted = hash.salted_password(password, &salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        let stored_key = hash.h(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let signature = hash.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let last = self.step(format!("{without_proof},p={}", B64.encode(proof)).as_bytes())?;
        let server_key = hash.hmac(&salted, b"Server Key");
        let expected = hash.hmac(&server_key, auth_message.as_bytes());
        if last.auth_bytes.as_ref() != format!("v={}", B64.encode(expected)).as_bytes() {
            return Err(LoginError::BadServerSignature);
        }
        Ok(last.session_lifetime_ms)
    }

    /// A SCRAM login with a proof of random bytes (a failed login that costs the client no
    /// PBKDF2).
    pub fn scram_garbage_proof(&mut self, hash: Hash, user: &str) -> Result<i64, LoginError> {
        self.start(hash.mechanism())?;
        let first = self.step(format!("n,,n={user},r=abc").as_bytes())?;
        let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
        let nonce = server_first
            .split(',')
            .next()
            .unwrap()
            .strip_prefix("r=")
            .unwrap();
        let proof = vec![7u8; if hash == Hash::Sha256 { 32 } else { 64 }];
        let r = self.step(format!("c=biws,r={nonce},p={}", B64.encode(proof)).as_bytes())?;
        Ok(r.session_lifetime_ms)
    }

    pub fn plain(&mut self, user: &str, password: &str) -> Result<i64, LoginError> {
        self.start("PLAIN")?;
        let r = self.step(format!("\0{user}\0{password}").as_bytes())?;
        Ok(r.session_lifetime_ms)
    }

    /// Whether the broker closed the connection (a read returns end of stream or an error).
    pub fn is_closed(&mut self) -> bool {
        use std::io::Read;
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}
