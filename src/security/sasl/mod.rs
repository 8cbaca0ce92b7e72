//! SASL mechanisms, sans-IO: the PLAIN message parser (RFC 4616) and the server side of a SCRAM
//! exchange (RFC 5802 / RFC 7677, SHA-256 and SHA-512), and salted credentials.
//!
//! (Filled in by the SASL work: `plain.rs`, `scram.rs`, `credential.rs`.)
