//! Bytes ↔ types. Framing (`frame`), request decoding (`request`; the supported versions come
//! from the server's API table, `server::handlers::table`), and record batches for the
//! embedded API (`records`). Message bodies are the `kafka-protocol` crate's.

pub mod frame;
pub mod records;
pub mod request;
