//! The SASL message parsers and the SCRAM server exchange, fed what a client before
//! authentication may send (SaslAuthenticate's bytes).
//!
//! Input: one selector byte, then the message. Selector & 3:
//! 0. PLAIN (`parse_plain`);
//! 1. SCRAM client-first (`parse_client_first`);
//! 2. SCRAM client-final (`parse_client_final`);
//! 3. a whole exchange: the bytes up to the first `0xFF` are the client-first, the rest the
//!    client-final, against a store that knows `user` (SHA-256 or SHA-512 by bit 2).
//!
//! Invariants: nothing panics; a parsed client-first's nonce is printable and its username
//! non-empty; a fuzzed exchange never succeeds (the proof would have to match the key).
#![no_main]

use libfuzzer_sys::fuzz_target;
use thorstream::internals::security::{
    ScramCredential, ScramEnv, ScramHash, ScramServer, ScramStep, parse_client_final,
    parse_client_first, parse_plain,
};

struct Env;

impl ScramEnv for Env {
    fn credential(&self, username: &str, hash: ScramHash) -> Option<ScramCredential> {
        (username == "user").then(|| ScramCredential {
            salt: b"salt".to_vec(),
            iterations: 4096,
            stored_key: vec![0x5a; hash.output_bytes()],
            server_key: vec![0xa5; hash.output_bytes()],
        })
    }
    fn server_nonce(&self) -> String {
        "server".into()
    }
    fn unknown_user_salt(&self, username: &str) -> Vec<u8> {
        username.as_bytes().iter().take(8).copied().collect()
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, msg)) = data.split_first() else {
        return;
    };
    match selector & 3 {
        0 => {
            if let Ok(m) = parse_plain(msg) {
                assert!(!m.username.is_empty() && !m.password.is_empty());
            }
        }
        1 => {
            if let Ok(f) = parse_client_first(msg) {
                assert!(!f.username.is_empty());
                assert!(!f.nonce.is_empty() && !f.nonce.contains(','));
            }
        }
        2 => {
            let _ = parse_client_final(msg);
        }
        _ => {
            let hash = if selector & 4 == 0 {
                ScramHash::Sha256
            } else {
                ScramHash::Sha512
            };
            let (first, last) = match msg.iter().position(|&b| b == 0xff) {
                Some(i) => (&msg[..i], &msg[i + 1..]),
                None => (msg, &[][..]),
            };
            let mut server = ScramServer::new(hash);
            if let Ok(ScramStep::Challenge(_)) = server.step(first, &Env) {
                assert!(!matches!(
                    server.step(last, &Env),
                    Ok(ScramStep::Success { .. })
                ));
            }
        }
    }
});
