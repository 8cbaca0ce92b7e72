//! Salted SCRAM credentials (RFC 5802 §3): what the server stores for a user and mechanism.
//!
//! `SaltedPassword = Hi(password, salt, i)` (PBKDF2 with HMAC-H), `ClientKey =
//! HMAC(SaltedPassword, "Client Key")`, `StoredKey = H(ClientKey)`, `ServerKey =
//! HMAC(SaltedPassword, "Server Key")`. Only salt, iterations, StoredKey and ServerKey are
//! kept: the password and the salted password are dropped as soon as the keys are derived
//! (the Java admin client salts on its side and sends the salted password; Kafka stores the
//! same four fields).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::security::SaslMechanism;

/// The hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    pub fn of(mechanism: SaslMechanism) -> Option<ScramHash> {
        match mechanism {
            SaslMechanism::ScramSha256 => Some(ScramHash::Sha256),
            SaslMechanism::ScramSha512 => Some(ScramHash::Sha512),
            SaslMechanism::Plain => None,
        }
    }

    pub fn mechanism(self) -> SaslMechanism {
        match self {
            ScramHash::Sha256 => SaslMechanism::ScramSha256,
            ScramHash::Sha512 => SaslMechanism::ScramSha512,
        }
    }

    /// Kafka's wire code of the mechanism (`ScramMechanism.type()`: 1 = SHA-256, 2 = SHA-512),
    /// in DescribeUserScramCredentials and AlterUserScramCredentials.
    pub fn wire_type(self) -> i8 {
        match self {
            ScramHash::Sha256 => 1,
            ScramHash::Sha512 => 2,
        }
    }

    pub fn from_wire_type(t: i8) -> Option<ScramHash> {
        match t {
            1 => Some(ScramHash::Sha256),
            2 => Some(ScramHash::Sha512),
            _ => None,
        }
    }

    /// Output length of H in bytes (32 or 64).
    pub fn output_bytes(self) -> usize {
        match self {
            ScramHash::Sha256 => 32,
            ScramHash::Sha512 => 64,
        }
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// HMAC-H(key, data). HMAC takes keys of any length, so this cannot fail.
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            match <M as KeyInit>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        }
        match self {
            ScramHash::Sha256 => run::<Hmac<Sha256>>(key, data),
            ScramHash::Sha512 => run::<Hmac<Sha512>>(key, data),
        }
    }

    /// Hi(password, salt, iterations) of RFC 5802 §2.2 (PBKDF2-HMAC-H, one block).
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.output_bytes()];
        match self {
            ScramHash::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
            ScramHash::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
            }
        }
        out
    }

    pub fn client_key(self, salted_password: &[u8]) -> Vec<u8> {
        self.hmac(salted_password, b"Client Key")
    }

    pub fn server_key(self, salted_password: &[u8]) -> Vec<u8> {
        self.hmac(salted_password, b"Server Key")
    }
}

/// What the server keeps for one user and mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    /// Keys are not printed: a log line must not be enough to impersonate the server.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("salt_bytes", &self.salt.len())
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// From a salted password (AlterUserScramCredentials carries it, salted by the client).
    pub fn from_salted_password(
        hash: ScramHash,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        ScramCredential {
            stored_key: hash.hash(&hash.client_key(salted_password)),
            server_key: hash.server_key(salted_password),
            salt,
            iterations,
        }
    }

    /// From a password (`thorstream users add`; PLAIN logins are checked this way too).
    pub fn from_password(
        hash: ScramHash,
        password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredential {
        let salted = hash.salted_password(password, &salt, iterations);
        ScramCredential::from_salted_password(hash, salt, &salted, iterations)
    }

    /// Whether `password` is this credential's password (constant-time on the keys).
    pub fn verifies_password(&self, hash: ScramHash, password: &[u8]) -> bool {
        let salted = hash.salted_password(password, &self.salt, self.iterations);
        let stored = hash.hash(&hash.client_key(&salted));
        constant_time_eq(&stored, &self.stored_key)
    }
}

/// Constant-time equality (length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3's example: user "user", password "pencil", salt "W22ZaJ0SNY7soEsUEjb6gQ==",
    /// 4096 iterations; the server signature it gives proves our ServerKey.
    #[test]
    fn rfc7677_keys() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let c = ScramCredential::from_password(ScramHash::Sha256, b"pencil", salt, 4096);
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let sig = ScramHash::Sha256.hmac(&c.server_key, auth.as_bytes());
        assert_eq!(
            b64.encode(sig),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert!(c.verifies_password(ScramHash::Sha256, b"pencil"));
        assert!(!c.verifies_password(ScramHash::Sha256, b"pencil "));
    }

    #[test]
    fn wire_types_are_kafkas() {
        for h in [ScramHash::Sha256, ScramHash::Sha512] {
            assert_eq!(ScramHash::from_wire_type(h.wire_type()), Some(h));
            assert_eq!(ScramHash::of(h.mechanism()), Some(h));
        }
        assert_eq!(ScramHash::from_wire_type(0), None);
        assert_eq!(ScramHash::Sha512.hash(b"").len(), 64);
    }
}
