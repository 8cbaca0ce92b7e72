//! The transaction coordinator (KIP-98, KIP-447; transaction protocol v1): a sans-IO state
//! machine like `group/`, fed requests and `now_ms`, handing back the state-log records to
//! write before answering, the commit/abort markers to write and the replies.
//!
//! - `state.rs`: one transactional id's metadata and Kafka's transition table;
//! - `coordinator.rs`: InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, marker
//!   completion, timeouts and id expiration, replay and recovery;
//! - `effects.rs`: what it hands back (replies, steps, markers) and its config;
//! - `record.rs`: the versioned state-log record (bytes documented there) and the recovery
//!   rule;
//! - `service.rs`: the broker's shell (locks, the state log `__transactions.meta`, its fsync
//!   policy); `markers.rs`: completing a decision (markers, group offsets, `Complete*`);
//!   `thread.rs`: recovery, the orphan sweep and the `thorstream-txn` thread; `api.rs`: the
//!   `Broker` methods both faces call.
//!
//! Invariants: a reply is given only for a state whose record is durable; at most one
//! transition per id is pending; an id's epoch never decreases while its producer id stays;
//! after `recover` no transaction is `Ongoing`.

mod api;
pub(crate) mod coordinator;
pub(crate) mod effects;
pub(crate) mod job;
pub(crate) mod markers;
pub(crate) mod record;
pub(crate) mod service;
pub(crate) mod state;
mod thread;

pub(crate) use api::{TxnCall, TxnReq};
pub(crate) use effects::{ProducerIdAndEpoch, Reply};
pub(crate) use job::Progress;
pub(crate) use service::TxnService;
pub(crate) use state::{TxnMetadata, TxnState};

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
