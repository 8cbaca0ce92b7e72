//! Entry points for the coverage-guided fuzz targets in `fuzz/` (`cargo fuzz`). Not part of the
//! supported API: hidden from the docs and free to change with the targets.
//!
//! Everything here calls the code the broker runs; it only exposes what the fuzz crate cannot
//! reach from outside (the private record type of `__topics.meta`) and names the request
//! decoder the worker runs (`protocol::request`).

use crate::broker::TopicMeta;
use crate::broker::metadata::record_log::decode_file;

/// The server's request decoding (`protocol::request` with the API table's version ranges),
/// as the worker runs it before dispatching.
pub use crate::protocol::request::{DecodeError, DecodedRequest};
pub use crate::server::handlers::table::decode_request;

/// One record of `__topics.meta`, as the broker replays it at startup.
#[derive(Debug, Clone)]
pub enum TopicMetaRecord {
    Upsert(TopicMeta),
    Delete { name: String },
}

/// Decodes `__topics.meta` bytes as `Broker::new` does (current or legacy format, longest
/// prefix of whole checksummed frames); returns the records and the length of that prefix, or
/// the byte offset and reason of an intact frame that does not decode (`Broker::new` then
/// fails and leaves the file as it is).
pub fn decode_topic_records(
    bytes: &[u8],
) -> Result<(Vec<TopicMetaRecord>, usize), (usize, String)> {
    let decoded =
        decode_file::<crate::broker::TopicRecord>(bytes).map_err(|u| (u.offset, u.reason))?;
    let records = decoded
        .records
        .into_iter()
        .map(|r| match r {
            crate::broker::TopicRecord::Upsert(m) => TopicMetaRecord::Upsert(m),
            crate::broker::TopicRecord::Delete { name } => TopicMetaRecord::Delete { name },
        })
        .collect();
    Ok((records, decoded.valid_bytes))
}
