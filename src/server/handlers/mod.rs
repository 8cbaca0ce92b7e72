//! One handler file per API family. `dispatch` routes a decoded request; a handler returns an
//! `Outcome`: a response, no response, close, or park (a delayed operation).

pub mod admin;
pub mod api_versions;
pub mod fetch;
pub mod groups;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod offsets;
pub mod produce;

use std::net::IpAddr;
use std::time::Instant;

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use super::worker::Ctx;
use crate::error::Error;

pub enum Outcome {
    Respond(ResponseKind),
    NoResponse,
    Close(String),
    Park {
        kind: Delayed,
        deadline: Instant,
        keys: Vec<(String, i32)>,
        seen: Vec<u64>,
    },
}

/// The state a parked request carries back to its handler.
pub enum Delayed {
    Fetch(Box<kafka_protocol::messages::FetchRequest>),
    Produce(produce::PendingAcks),
    Group(groups::PendingGroup),
}

pub fn dispatch(ctx: &Ctx, header: &RequestHeader, request: RequestKind, peer: IpAddr) -> Outcome {
    let v = header.request_api_version;
    match request {
        RequestKind::ApiVersions(_) => Outcome::Respond(ResponseKind::ApiVersions(
            api_versions::response(crate::error::NO_ERROR_CODE),
        )),
        RequestKind::Metadata(r) => metadata::handle(ctx, v, r),
        RequestKind::Produce(r) => produce::handle(ctx, v, r),
        RequestKind::Fetch(r) => fetch::handle(ctx, v, Box::new(r), None),
        RequestKind::ListOffsets(r) => list_offsets::handle(ctx, v, r),
        RequestKind::CreateTopics(r) => admin::create_topics(ctx, v, r),
        RequestKind::DeleteTopics(r) => admin::delete_topics(ctx, v, r),
        RequestKind::CreatePartitions(r) => admin::create_partitions(ctx, r),
        RequestKind::DescribeConfigs(r) => admin::describe_configs(ctx, r),
        RequestKind::DescribeCluster(_) => admin::describe_cluster(ctx),
        RequestKind::DeleteRecords(r) => admin::delete_records(ctx, r),
        RequestKind::InitProducerId(r) => init_producer_id::handle(ctx, r),
        RequestKind::FindCoordinator(r) => offsets::find_coordinator(ctx, v, r),
        RequestKind::OffsetCommit(r) => offsets::offset_commit(ctx, r),
        RequestKind::OffsetFetch(r) => offsets::offset_fetch(ctx, v, r),
        RequestKind::JoinGroup(r) => groups::join_group(ctx, header, r, peer),
        RequestKind::SyncGroup(r) => groups::sync_group(ctx, v, r),
        RequestKind::Heartbeat(r) => groups::heartbeat(ctx, r),
        RequestKind::LeaveGroup(r) => groups::leave_group(ctx, v, r),
        RequestKind::DescribeGroups(r) => groups::describe_groups(ctx, v, r),
        RequestKind::ListGroups(r) => groups::list_groups(ctx, r),
        RequestKind::DeleteGroups(r) => groups::delete_groups(ctx, r),
        RequestKind::OffsetDelete(r) => groups::offset_delete(ctx, r),
        other => Outcome::Close(format!("no handler for {other:?}")),
    }
}

/// Re-evaluates a parked request after an event or its deadline.
pub fn retry(ctx: &Ctx, header: &RequestHeader, kind: Delayed, deadline: Instant) -> Outcome {
    let v = header.request_api_version;
    match kind {
        Delayed::Fetch(r) => fetch::handle(ctx, v, r, Some(deadline)),
        Delayed::Produce(p) => produce::retry(ctx, p, deadline),
        Delayed::Group(p) => groups::retry(ctx, v, p, deadline),
    }
}

/// Kafka error code of a broker error (0 for success).
pub fn code(result: &Result<(), Error>) -> i16 {
    match result {
        Ok(()) => crate::error::NO_ERROR_CODE,
        Err(e) => e.kafka_code(),
    }
}

pub fn message(e: &Error) -> Option<StrBytes> {
    Some(StrBytes::from_string(e.to_string()))
}
