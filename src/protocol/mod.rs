//! Bytes ↔ types. Record batches for the embedded API here; request framing, headers, the
//! supported-version table and error-code mapping for the wire server alongside.

pub mod records;
