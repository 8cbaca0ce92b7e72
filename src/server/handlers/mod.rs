//! One handler file per API family. `table` lists every API with its versions and handler;
//! `dispatch` runs the handler of a decoded request, which returns an `Outcome`: a response,
//! no response, close, or park (a delayed operation).
//!
//! `Ctx` (what every handler reads) and `DelayedOp` (a parked request) live here, below the
//! worker pool that drives them, so no handler depends on `worker.rs`.

pub mod acls;
pub mod admin;
pub mod api_versions;
pub mod authz;
pub mod configs;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod fetch;
pub mod groups;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod sasl;
pub mod scram_users;
pub mod table;
pub mod txn;

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use super::ServerConfig;
use crate::broker::Broker;
use crate::broker::wait::{Scope, WaitKey, Wake};
use crate::error::Error;
use crate::server::session::Caller;

/// Shared, read-only context of every handler.
pub struct Ctx {
    pub broker: Arc<Broker>,
    pub config: ServerConfig,
    /// This server's scope in the broker's wait set (shut down when the server stops).
    pub scope: Scope,
    /// Where woken parked requests go back to the workers.
    pub retry_tx: Sender<DelayedOp>,
    /// Bytes of request frames queued for workers (reactor adds, workers subtract).
    pub queued_bytes: Arc<std::sync::atomic::AtomicUsize>,
}

impl Ctx {
    /// The host and port Metadata, FindCoordinator and DescribeCluster give `caller`: those of
    /// the listener it connected to (as Kafka).
    pub fn advertised(&self, caller: &Caller) -> (&str, u16) {
        match self.config.listeners.get(caller.listener) {
            Some(l) => (l.advertised_host.as_str(), l.advertised_port),
            None => ("localhost", 0),
        }
    }
}

/// A parked request, re-evaluated when an event or its deadline arrives.
pub struct DelayedOp {
    pub conn: usize,
    pub seq: u64,
    pub header: RequestHeader,
    pub deadline: Instant,
    pub kind: Delayed,
    /// Why it was woken (set by the wait set).
    pub woke: Wake,
}

pub enum Outcome {
    Respond(ResponseKind),
    /// A Fetch answer some of whose records payloads are stand-ins for `files`, in response
    /// order (`fetch.rs`, `encode::encode_fetch_from_files`).
    RespondFetch {
        body: kafka_protocol::messages::FetchResponse,
        files: Vec<crate::storage::FileRange>,
    },
    NoResponse,
    Close(String),
    /// Answer, then close the connection: a failed SASL exchange. The answer is held for
    /// `delay_ms` first (Kafka's `connection.failed.authentication.delay.ms`), in the reactor,
    /// never on a worker.
    RespondThenClose {
        body: ResponseKind,
        delay_ms: u64,
    },
    /// Wait in the broker's wait set for an event on `keys` (whose epochs, read before the
    /// handler looked, are `seen`) or `deadline`; then `retry` runs with the reason.
    Park {
        kind: Delayed,
        deadline: Instant,
        keys: Vec<WaitKey>,
        seen: Vec<u64>,
    },
}

/// The state a parked request carries back to its handler.
pub enum Delayed {
    Fetch(fetch::PendingFetch),
    Produce(produce::PendingAcks),
    Group(groups::PendingGroup),
    OffsetCommit(offsets::PendingCommit),
    /// EndTxn or InitProducerId waiting for a transaction to complete.
    Txn(txn::PendingTxn),
}

/// Runs a decoded request's handler from the API table (`table::APIS`).
pub fn dispatch(
    ctx: &Ctx,
    header: &RequestHeader,
    request: RequestKind,
    caller: &Caller,
) -> Outcome {
    match ApiKey::try_from(header.request_api_key)
        .ok()
        .and_then(table::entry)
    {
        Some(api) => (api.handler)(ctx, header, request, caller),
        None => Outcome::Close(format!("no handler for API key {}", header.request_api_key)),
    }
}

/// Re-evaluates a parked request after it was woken (`woke` says why).
pub fn retry(
    ctx: &Ctx,
    header: &RequestHeader,
    kind: Delayed,
    deadline: Instant,
    woke: Wake,
) -> Outcome {
    let v = header.request_api_version;
    match kind {
        Delayed::Fetch(p) => fetch::retry(ctx, p, deadline, woke),
        Delayed::Produce(p) => produce::retry(ctx, p, deadline, woke),
        Delayed::Group(p) => groups::retry(ctx, v, p, woke),
        Delayed::OffsetCommit(p) => offsets::retry(ctx, p, deadline, woke),
        Delayed::Txn(p) => txn::retry(ctx, p, deadline, woke),
    }
}

pub fn message(e: &Error) -> Option<StrBytes> {
    Some(StrBytes::from_string(e.to_string()))
}
