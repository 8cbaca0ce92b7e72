//! ListOffsets: by timestamp, and Kafka's special timestamps, each from the request version
//! that introduced it (as Kafka's `ReplicaManager`): latest (-1: the high watermark, or the
//! last stable offset for `isolation_level` 1, read_committed, from v2) and earliest (-2) from v1,
//! MAX_TIMESTAMP (-3, KIP-734: the record with the largest timestamp) from v7,
//! EARLIEST_LOCAL (-4, KIP-405: without tiered storage the log start offset) from v8 and
//! LATEST_TIERED (-5, KIP-1005: without tiered storage offset -1, no error) from v9. Any other
//! negative timestamp, or one below its version, is answered UNSUPPORTED_VERSION for that
//! partition; a partition named twice, INVALID_REQUEST (both as Kafka). A lookup by timestamp
//! (MAX_TIMESTAMP too) whose record is not below that same bound answers offset -1, as
//! Kafka's `fetchOffsetForTimestamp`.

use std::collections::HashSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, ResponseKind};

use super::Ctx;
use super::Outcome;
use super::authz;
use super::fetch::isolation;
use crate::error::Error;
use crate::security::acl::{AclOperation, ResourceType};
use crate::server::session::Caller;
use crate::storage::Isolation;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// The first request version that may carry a special (negative) timestamp; `None` for one
/// Kafka does not know.
fn min_version(timestamp: i64) -> Option<i16> {
    match timestamp {
        LATEST | EARLIEST => Some(1),
        MAX_TIMESTAMP => Some(7),
        EARLIEST_LOCAL => Some(8),
        LATEST_TIERED => Some(9),
        _ => None,
    }
}

/// Why a partition gets no offset.
enum Refusal {
    Kafka(ResponseError),
    Broker(Error),
}

pub fn handle(ctx: &Ctx, version: i16, req: ListOffsetsRequest, caller: &Caller) -> Outcome {
    let level = isolation(req.isolation_level);
    // As Kafka: Describe on the topic, else TOPIC_AUTHORIZATION_FAILED for its partitions.
    let describable: Vec<bool> = {
        let checks = authz::checks(ctx, caller);
        req.topics
            .iter()
            .map(|t| checks.allows(AclOperation::Describe, ResourceType::Topic, &t.name.0))
            .collect()
    };
    let mut seen = HashSet::new();
    let duplicated: HashSet<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .filter(|tp| !seen.insert(tp.clone()))
        .collect();
    let topics = req
        .topics
        .into_iter()
        .zip(describable)
        .map(|(t, describable)| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_leader_epoch(-1);
                    let answer = if !describable {
                        Err(Refusal::Kafka(ResponseError::TopicAuthorizationFailed))
                    } else if duplicated.contains(&(name.clone(), p.partition_index)) {
                        Err(Refusal::Kafka(ResponseError::InvalidRequest))
                    } else {
                        lookup(ctx, version, level, &name, p.partition_index, p.timestamp)
                    };
                    match answer {
                        Ok((offset, ts)) => base.with_offset(offset).with_timestamp(ts),
                        Err(r) => base
                            .with_error_code(match r {
                                Refusal::Kafka(e) => e.code(),
                                Refusal::Broker(e) => e.kafka_code(),
                            })
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Outcome::Respond(ResponseKind::ListOffsets(
        ListOffsetsResponse::default().with_topics(topics),
    ))
}

/// (offset, timestamp) for one partition; (-1, -1) when there is none (an empty log, a
/// timestamp after every record), as Kafka answers without an error.
fn lookup(
    ctx: &Ctx,
    version: i16,
    level: Isolation,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> Result<(i64, i64), Refusal> {
    if timestamp < 0 && min_version(timestamp).is_none_or(|min| version < min) {
        return Err(Refusal::Kafka(ResponseError::UnsupportedVersion));
    }
    let broker = &ctx.broker;
    let offsets = broker.offsets(topic, partition).map_err(Refusal::Broker)?;
    let bound = match level {
        Isolation::ReadCommitted => offsets.last_stable_offset,
        Isolation::ReadUncommitted => offsets.high_watermark,
    };
    let found = match timestamp {
        LATEST => Some((bound, -1)),
        EARLIEST | EARLIEST_LOCAL => Some((offsets.log_start_offset, -1)),
        LATEST_TIERED => None,
        MAX_TIMESTAMP => broker
            .offset_for_max_timestamp(topic, partition)
            .map_err(Refusal::Broker)?,
        ts => broker
            .offset_for_timestamp(topic, partition, ts)
            .map_err(Refusal::Broker)?,
    };
    // Only a lookup by time is bounded (latest is the bound; earliest is never past it).
    let by_time = timestamp >= 0 || timestamp == MAX_TIMESTAMP;
    let fetchable = |&(offset, _): &(i64, i64)| !by_time || offset < bound;
    Ok(found.filter(fetchable).unwrap_or((-1, -1)))
}
