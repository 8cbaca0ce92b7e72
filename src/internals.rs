//! The one door to the crate's internals, for its own tests, benchmarks and fuzz targets
//! (`tests/`, `benches/`, `fuzz/`): hidden from the docs, not a supported API, free to change
//! with them. Everything an application needs is re-exported at the crate root instead.
//!
//! Everything here is the code the broker runs, re-exported under the module path it has in
//! the crate (`internals::storage::batch` is `storage::batch`), plus what the fuzz crate
//! cannot reach otherwise: the private record type of `__topics.meta` and the request decoder
//! the worker runs (`protocol::request`). Broker methods that only tests call are on
//! [`BrokerInternals`].

use std::sync::Arc;

use crate::broker::Broker;
use crate::broker::TopicMeta;
use crate::broker::group::GroupService;
use crate::broker::metadata::record_log::decode_file;
use crate::broker::offset_store::OffsetStore;
use crate::broker::wait::Waits;
use crate::error::Result;

/// The storage layer: batches, logs and their files.
pub mod storage {
    pub use crate::storage::{
        AbortedTxn, LogConfig, PartitionLog, StorageError, now_ms, segment_file_name,
    };

    /// Record batches as stored: header, validation, in-place rewrites.
    pub mod batch {
        pub use crate::storage::batch::{
            BATCH_HEADER_BYTES, BatchHeader, BatchIter, check_compressed_record_counts,
            rewrite_crc, set_base_offset, validate_batch, validate_batches,
        };
    }

    /// Checkpoint files (one checksummed value).
    pub mod checkpoint {
        pub use crate::storage::checkpoint::{read_bytes, read_i64, write_bytes, write_i64};
    }

    /// Transaction markers (control batches).
    pub mod control {
        pub use crate::storage::control::{ControlType, marker_batch};
    }

    /// The offset index of a segment.
    pub mod index {
        pub use crate::storage::index::{OffsetIndex, decode_entries};
    }

    /// The log cleaner: one pass over a log, its options and outcome.
    pub mod cleaner {
        pub use crate::storage::cleaner::offset_map::OffsetMap;
        pub use crate::storage::cleaner::swap::{SWAP_STEPS, SwapStep};
        pub use crate::storage::cleaner::{CleanOutcome, CleanStats, CleanerOptions, clean_log};
    }

    /// What a read may see, and the transactions still open (issue 14).
    pub use crate::storage::{Isolation, OngoingTxn};

    /// The time index of a segment.
    pub mod time_index {
        pub use crate::storage::time_index::decode_entries;
    }
}

/// Kafka wire framing and record-batch encoding.
pub mod protocol {
    /// Cutting size-prefixed frames from a byte stream.
    pub mod frame {
        pub use crate::protocol::frame::FrameDecoder;
    }

    /// Record batches to and from `Record`s.
    pub mod records {
        pub use crate::protocol::records::{
            TxnProducer, decode_committed, decode_records, encode_batch, encode_batch_with,
            encode_transactional_batch,
        };
    }
}

/// Broker parts below the `Broker` API: topic name rules, the key partitioner, the committed
/// offset store, the group coordinator and the wait set.
pub mod broker {

    /// The consumer-group coordinator, and the consumer protocol's assignment bytes.
    pub mod group {
        pub use crate::broker::group::{GroupService, GroupState, LeavingMember, assignor};
    }
    pub use crate::broker::offset_store::OffsetStore;
    pub use crate::broker::offsets::{CommitFence, OffsetCommitEntry};
    pub use crate::broker::partitioner::partition_for_key;
    pub use crate::broker::topic::TopicMeta;
    pub use crate::broker::validate_topic_name;
    pub use crate::broker::wait::Waits;
}

/// The APIs and version ranges the server answers (the API table).
pub use crate::server::handlers::table::supported_apis;

/// `Broker` methods the crate uses internally and its tests call; `use` this trait to call
/// them from outside.
pub trait BrokerInternals {
    /// The wait set of parked wire requests and blocked embedded calls.
    fn waits(&self) -> &Arc<Waits>;
    /// The consumer-group coordinator.
    fn groups(&self) -> &GroupService;
    /// The committed-offset store behind `commit_offset`.
    fn offset_store(&self) -> &OffsetStore;
    /// A new producer id (InitProducerId), durably reserved.
    fn allocate_producer_id(&self) -> Result<i64>;
    /// Stored bytes read for consumers so far.
    fn bytes_read(&self) -> u64;
    /// Runs one log-cleaner pass synchronously (as the `thorstream-cleaner` thread does);
    /// returns how many logs it cleaned.
    fn clean_now(&self) -> usize;
    /// Ends a producer's transactional offsets for a group, as the transaction coordinator
    /// does when it writes the markers (`Broker::complete_txn_offsets`).
    fn complete_txn_offsets(&self, group: &str, producer_id: i64, commit: bool) -> Result<()>;
    /// Appends a commit or abort marker for a producer, as the transaction coordinator does
    /// (`Broker::append_marker`; a produced control batch is refused).
    fn append_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<crate::storage::AppendInfo>;
}

impl BrokerInternals for Broker {
    fn waits(&self) -> &Arc<Waits> {
        Broker::waits(self)
    }
    fn groups(&self) -> &GroupService {
        Broker::groups(self)
    }
    fn offset_store(&self) -> &OffsetStore {
        Broker::offset_store(self)
    }
    fn allocate_producer_id(&self) -> Result<i64> {
        Broker::allocate_producer_id(self)
    }
    fn bytes_read(&self) -> u64 {
        Broker::bytes_read(self)
    }
    fn clean_now(&self) -> usize {
        Broker::clean_now(self)
    }
    fn complete_txn_offsets(&self, group: &str, producer_id: i64, commit: bool) -> Result<()> {
        Broker::complete_txn_offsets(self, group, producer_id, commit)
    }
    fn append_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<crate::storage::AppendInfo> {
        Broker::append_marker(self, topic, partition, producer_id, producer_epoch, commit)
    }
}

/// The server's request decoding (`protocol::request` with the API table's version ranges),
/// as the worker runs it before dispatching.
pub use crate::protocol::request::{DecodeError, DecodedRequest};
pub use crate::server::handlers::table::decode_request;

/// One record of `__topics.meta`, as the broker replays it at startup.
#[derive(Debug, Clone)]
pub enum TopicMetaRecord {
    Upsert(TopicMeta),
    Delete {
        name: String,
    },
    /// The broker's dynamic configs of one scope ("" or a node id).
    BrokerConfigs {
        scope: String,
        configs: std::collections::BTreeMap<String, String>,
    },
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
            crate::broker::TopicRecord::BrokerConfigs { scope, configs } => {
                TopicMetaRecord::BrokerConfigs { scope, configs }
            }
        })
        .collect();
    Ok((records, decoded.valid_bytes))
}

/// SCRAM credentials in a data directory and the SASL message parsers: what `thorstream users`,
/// the SASL tests and the `sasl_messages` fuzz target drive.
pub mod security {
    pub use crate::broker::security::users::{
        USERS_FILE, UserChange, UserStore, check_credential, new_salt,
    };
    pub use crate::security::SaslMechanism;
    pub use crate::security::sasl::scram_messages::{
        encode_saslname, parse_client_final, parse_client_first,
    };
    pub use crate::security::sasl::{
        ScramCredential, ScramEnv, ScramHash, ScramServer, ScramStep, parse_plain,
    };
}
