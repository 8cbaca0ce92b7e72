//! Entry points for the coverage-guided fuzz targets in `fuzz/` (`cargo fuzz`). Not part of the
//! supported API: hidden from the docs and free to change with the targets.
//!
//! Everything here calls the code the broker runs; it only exposes what the fuzz crate cannot
//! reach from outside (the private record type of `__topics.meta`) and names the request
//! decoder the worker runs (`protocol::request`).

use crate::broker::TopicMeta;
use crate::broker::record_log::decode_frames;

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

/// Decodes `__topics.meta` bytes as `Broker::new` does (longest valid prefix of frames);
/// returns the records and the length of that prefix.
pub fn decode_topic_records(bytes: &[u8]) -> (Vec<TopicMetaRecord>, usize) {
    let (records, valid) = decode_frames::<crate::broker::TopicRecord>(bytes);
    let records = records
        .into_iter()
        .map(|r| match r {
            crate::broker::TopicRecord::Upsert(m) => TopicMetaRecord::Upsert(m),
            crate::broker::TopicRecord::Delete { name } => TopicMetaRecord::Delete { name },
        })
        .collect();
    (records, valid)
}
