//! Bytes ↔ types. Framing (`frame`), request decoding (`request`), the supported-version table
//! (`versions`), and record batches for the embedded API (`records`). Message bodies are the `kafka-protocol` crate's.

pub mod frame;
pub mod records;
pub mod request;
pub mod versions;
