//! SASL mechanisms, sans-IO: the PLAIN message parser (RFC 4616, `plain`), the server side of
//! a SCRAM exchange (RFC 5802 / RFC 7677, SHA-256 and SHA-512, `scram`), its message parsers
//! (`scram_messages`) and salted credentials (`credential`).
//!
//! Invariants:
//! - nothing here touches a socket, a file or a clock; randomness (nonces, salts) is handed in
//!   by the caller, so every exchange is reproducible in tests;
//! - a credential holds the salt, the iteration count, StoredKey and ServerKey, never the
//!   password nor the salted password;
//! - every secret comparison is constant-time (`subtle`);
//! - the parsers take any bytes: they never panic, never allocate more than the input's
//!   length, and refuse what RFC 5802 / RFC 4616 do not allow (fuzzed:
//!   `fuzz/fuzz_targets/sasl_messages.rs`).

pub mod credential;
pub mod plain;
pub mod scram;
pub mod scram_messages;

pub use credential::{ScramCredential, ScramHash};
pub use plain::parse_plain;
pub use scram::{ScramEnv, ScramServer, ScramStep};

/// Why a SASL exchange failed. `message` is what the client is told (Kafka's wording);
/// internal detail (e.g. whether the user exists) never reaches it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The client's message is not what the mechanism allows at this step.
    #[error("malformed SASL message: {0}")]
    Malformed(String),
    /// Refused for a reason the client is not told (wrong password, unknown user, bad
    /// nonce): it gets Kafka's generic "invalid credentials" message.
    #[error("authentication refused: {0}")]
    Rejected(String),
    /// Refused with this message to the client (Kafka's wording, e.g. PLAIN's).
    #[error("{0}")]
    Failed(String),
}
