//! Fetch: stored batches returned as stored (never re-encoded), bounded by `max_bytes` and
//! `partition_max_bytes`, with at least one whole batch from the first partition that has data
//! (KIP-74). Sessions (KIP-227) are not kept: session id 0 tells the client to send full
//! requests.
//!
//! With `min_bytes` ≤ 1 and a readable byte (known from the offsets, no I/O) the request reads
//! and answers at once. Below `min_bytes` the request parks in the wait set on every partition it names, keeping a
//! `FetchMark` per partition (where its bytes start). A wake-up re-decides from byte positions
//! (`Broker::fetch_progress`, no I/O); the stored batches are read once, when the request
//! completes: enough bytes, an error, a partition whose high watermark moved to a later
//! segment, the deadline, or shutdown.
//!
//! `isolation_level` 1 (read_committed, KIP-98) reads below the last stable offset only and
//! answers the aborted transactions overlapping the returned batches (`aborted_transactions`;
//! null for read_uncommitted, as Kafka); a read_committed wait decides from the LSO (see
//! `broker::fetch`). `last_stable_offset` is the partition's LSO at either level.
//!
//! On a plain socket a Fetch leaves the records payloads of at least `FILE_RANGE_MIN_BYTES`
//! (64 KiB) unread (`Broker::fetch_unread`): the response carries stand-ins of their length
//! and the file ranges go out with `sendfile` (`encode::encode_fetch_from_files`,
//! `out_chunk.rs`). read_committed too (librdkafka's default): the aborted transactions such
//! a range overlaps are bounded by an offset-index lookup at its end, as Kafka bounds them,
//! not by reading its last batch. TLS must encrypt the bytes, so it reads them.
//!
//! Authorization (as Kafka's `handleFetchRequest`): a consumer needs Read on each topic, a
//! follower (replica id ≥ 0) ClusterAction on the cluster; a refused topic's partitions answer
//! TOPIC_AUTHORIZATION_FAILED and are taken out of the request before anything is read or
//! waited for (they neither complete nor hold a long-poll).

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, ResponseKind};

use super::Ctx;
use super::authz;
use super::{Delayed, Outcome};
use crate::broker::wait::{WaitKey, Wake};
use crate::broker::{FetchError, FetchMark, FetchProgress};
use crate::error::{AuthzError, Error};
use crate::security::acl::{AclOperation, ResourceType};
use crate::server::encode::{FILE_RANGE_MIN_BYTES, file_stand_in};
use crate::server::session::Caller;
use crate::storage::{FileRange, Isolation, LogOffsets, StorageError};

/// FetchRequest's `isolation_level` of read_committed (0 is read_uncommitted).
const READ_COMMITTED: i8 = 1;

/// The isolation a Fetch or ListOffsets request's `isolation_level` asks for (anything but 1
/// reads uncommitted, as Kafka's `IsolationLevel.forId` accepts only 0 and 1).
pub fn isolation(level: i8) -> Isolation {
    if level == READ_COMMITTED {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    }
}

/// A Fetch waiting for `min_bytes`: the request and one mark per partition it names, in
/// request order (`None`: the partition failed, which completes the request).
pub struct PendingFetch {
    req: Box<FetchRequest>,
    version: i16,
    marks: Vec<Option<FetchMark>>,
    /// The answers of the topics the caller may not read, taken out of `req`.
    denied: Vec<FetchableTopicResponse>,
    /// The connection can send records from the segment files (`Records::from_files`).
    from_files: bool,
}

/// How a response's records payloads are produced.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Records {
    /// Read into memory (TLS connections).
    Read,
    /// Left in the segment files (plaintext connections): the payloads of
    /// at least `FILE_RANGE_MIN_BYTES` go out with `sendfile`, page cache to socket, and the
    /// response carries stand-ins for them (`encode::file_stand_in`).
    FromFiles,
}

/// The first Fetch version whose clients read zstd batches (KIP-110).
const ZSTD_MIN_VERSION: i16 = 10;

/// Takes the topics the caller may not read out of `req`, returning their answers.
fn take_denied(ctx: &Ctx, req: &mut FetchRequest, caller: &Caller) -> Vec<FetchableTopicResponse> {
    let checks = authz::checks(ctx, caller);
    if !checks.is_on() {
        return Vec::new();
    }
    let follower = req.replica_id.0 >= 0;
    let cluster_ok = follower && checks.allows_cluster(AclOperation::ClusterAction);
    let allowed = |name: &str| {
        if follower {
            cluster_ok
        } else {
            checks.allows(AclOperation::Read, ResourceType::Topic, name)
        }
    };
    if req.topics.iter().all(|t| allowed(&t.topic.0)) {
        return Vec::new();
    }
    let mut denied = Vec::new();
    req.topics.retain(|t| {
        if allowed(&t.topic.0) {
            return true;
        }
        let parts = t
            .partitions
            .iter()
            .map(|p| {
                PartitionData::default()
                    .with_partition_index(p.partition)
                    .with_error_code(AuthzError::TopicAuthorizationFailed.code())
                    .with_high_watermark(-1)
                    .with_last_stable_offset(-1)
                    .with_log_start_offset(-1)
                    .with_records(Some(Bytes::new()))
            })
            .collect();
        denied.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(parts),
        );
        false
    });
    denied
}

/// Reads and answers, the refused topics' answers included.
fn answer(
    ctx: &Ctx,
    req: &FetchRequest,
    version: i16,
    denied: Vec<FetchableTopicResponse>,
    from_files: bool,
) -> Outcome {
    let mode = if from_files {
        Records::FromFiles
    } else {
        Records::Read
    };
    let (mut response, files) = read(ctx, req, version, mode);
    response.responses.extend(denied);
    if files.is_empty() {
        return Outcome::Respond(ResponseKind::Fetch(response));
    }
    Outcome::RespondFetch {
        body: response,
        files,
    }
}

/// Whether `caller`'s connection is a plain socket, which can send from a file.
fn plain_socket(ctx: &Ctx, caller: &Caller) -> bool {
    ctx.config
        .listeners
        .get(caller.listener)
        .is_some_and(|l| !l.protocol.uses_tls())
}

pub fn handle(ctx: &Ctx, version: i16, mut req: Box<FetchRequest>, caller: &Caller) -> Outcome {
    let denied = take_denied(ctx, &mut req, caller);
    let from_files = plain_socket(ctx, caller);
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let keys = keys(&req);
    let seen = ctx.broker.waits().epochs(&keys);
    // The common case (`fetch.min.bytes` = 1, a client's default): any readable byte answers,
    // and whether there is one is known from the offsets without I/O. Read once and answer.
    if req.min_bytes <= 1 && any_readable(ctx, &req) {
        return answer(ctx, &req, version, denied, from_files);
    }
    let level = isolation(req.isolation_level);
    let marks = partitions(&req)
        .map(|(topic, p)| {
            ctx.broker
                .fetch_mark(topic, p.partition, p.fetch_offset, level)
                .ok()
        })
        .collect();
    decide(
        ctx,
        PendingFetch {
            req,
            version,
            marks,
            denied,
            from_files,
        },
        deadline,
        keys,
        seen,
        false,
    )
}

/// Re-decides a parked Fetch after it was woken.
pub fn retry(ctx: &Ctx, mut pending: PendingFetch, deadline: Instant, woke: Wake) -> Outcome {
    let keys = keys(&pending.req);
    let seen = ctx.broker.waits().epochs(&keys);
    if woke == Wake::Event {
        let req = &pending.req;
        for ((topic, p), mark) in partitions(req).zip(pending.marks.iter_mut()) {
            let Some(m) = mark else { continue };
            match ctx.broker.fetch_progress(topic, p.partition, m) {
                FetchProgress::Bytes(n) => m.bytes = n,
                FetchProgress::Moved => m.moved = true,
            }
        }
    }
    let expired = woke != Wake::Event || Instant::now() >= deadline;
    decide(ctx, pending, deadline, keys, seen, expired)
}

/// Completes (reads and answers) or parks again.
fn decide(
    ctx: &Ctx,
    pending: PendingFetch,
    deadline: Instant,
    keys: Vec<WaitKey>,
    seen: Vec<u64>,
    expired: bool,
) -> Outcome {
    let req = &pending.req;
    let min_bytes = req.min_bytes.max(0) as u64;
    let mut available = 0u64;
    let mut complete = expired || min_bytes == 0 || keys.is_empty() || deadline <= Instant::now();
    for ((_, p), mark) in partitions(req).zip(&pending.marks) {
        match mark {
            None => complete = true,
            Some(m) if m.moved => complete = true,
            Some(m) => {
                available =
                    available.saturating_add(m.bytes.min(p.partition_max_bytes.max(0) as u64))
            }
        }
    }
    if complete || available >= min_bytes {
        return answer(
            ctx,
            req,
            pending.version,
            pending.denied,
            pending.from_files,
        );
    }
    Outcome::Park {
        kind: Delayed::Fetch(pending),
        deadline,
        keys,
        seen,
    }
}

/// Whether some partition has a record at or after its fetch offset below the high watermark
/// (read_committed: the LSO), or fails, which answers too: decided under each partition's
/// lock, without I/O.
fn any_readable(ctx: &Ctx, req: &FetchRequest) -> bool {
    let committed = isolation(req.isolation_level) == Isolation::ReadCommitted;
    partitions(req).any(|(topic, p)| match ctx.broker.offsets(topic, p.partition) {
        Ok(o) => {
            let end = if committed {
                o.last_stable_offset
            } else {
                o.high_watermark
            };
            p.fetch_offset < end
                || p.fetch_offset < o.log_start_offset
                || p.fetch_offset > o.log_end_offset
        }
        Err(_) => true,
    })
}

fn partitions(
    req: &FetchRequest,
) -> impl Iterator<
    Item = (
        &str,
        &kafka_protocol::messages::fetch_request::FetchPartition,
    ),
> {
    req.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (&*t.topic.0, p)))
}

fn keys(req: &FetchRequest) -> Vec<WaitKey> {
    partitions(req)
        .map(|(topic, p)| WaitKey::partition(topic, p.partition))
        .collect()
}

/// Reads every partition once and builds the response; with `Records::FromFiles`, also the
/// file ranges of the payloads left unread, in response order (one per stand-in). Below v10
/// a partition of a topic whose `compression.type` is zstd answers UNSUPPORTED_COMPRESSION_TYPE
/// unread (Kafka's `KafkaApis` rule: the topic's config decides, not the codec of the
/// batches).
fn read(
    ctx: &Ctx,
    req: &FetchRequest,
    version: i16,
    mode: Records,
) -> (FetchResponse, Vec<FileRange>) {
    let mut files = Vec::new();
    let mut budget = if req.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        req.max_bytes as usize
    };
    let mut total = 0usize;
    let level = isolation(req.isolation_level);
    let mut responses = Vec::with_capacity(req.topics.len());
    for topic in &req.topics {
        let name = &*topic.topic.0;
        let mut parts = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let limit = (p.partition_max_bytes.max(0) as usize).min(budget);
            let data = if version < ZSTD_MIN_VERSION
                && ctx.broker.stores_zstd(name, p.partition).unwrap_or(false)
            {
                Err(FetchError {
                    error: Error::UnsupportedCompressionType(format!(
                        "Fetch v{version} cannot read the zstd-compressed {name}-{}",
                        p.partition
                    )),
                    offsets: None,
                })
            } else if mode == Records::FromFiles {
                ctx.broker.fetch_unread(
                    name,
                    p.partition,
                    p.fetch_offset,
                    (limit, total == 0),
                    FILE_RANGE_MIN_BYTES,
                    level,
                )
            } else {
                ctx.broker
                    .fetch(name, p.partition, p.fetch_offset, limit, total == 0, level)
            };
            let resp = match data {
                Ok(mut data) => {
                    // A range too large for a stand-in is read after all.
                    let records = match data.file.take() {
                        Some(range) => match file_stand_in(range.len) {
                            Some(stand_in) => {
                                files.push(range);
                                Ok(stand_in)
                            }
                            None => range
                                .read_to_vec()
                                .map(Bytes::from)
                                .map_err(|e| StorageError::io(&range.path, e)),
                        },
                        None => Ok(Bytes::from(data.records)),
                    };
                    let records = match records {
                        Ok(r) => r,
                        Err(e) => {
                            let error = Error::from(e);
                            parts.push(failed_partition(p.partition, error, Some(data.offsets)));
                            continue;
                        }
                    };
                    let n = records.len();
                    total += n;
                    budget = budget.saturating_sub(n);
                    PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_high_watermark(data.offsets.high_watermark)
                        .with_last_stable_offset(data.offsets.last_stable_offset)
                        .with_log_start_offset(data.offsets.log_start_offset)
                        .with_aborted_transactions(data.aborted.map(|list| {
                            list.into_iter()
                                .map(|a| {
                                    AbortedTransaction::default()
                                        .with_producer_id(ProducerId(a.producer_id))
                                        .with_first_offset(a.first_offset)
                                })
                                .collect()
                        }))
                        .with_records(Some(records))
                }
                Err(FetchError { error, offsets }) => failed_partition(p.partition, error, offsets),
            };
            parts.push(resp);
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_topic_id(topic.topic_id)
                .with_partitions(parts),
        );
    }
    let response = FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses);
    (response, files)
}

/// A partition's answer to a failed read.
fn failed_partition(partition: i32, error: Error, offsets: Option<LogOffsets>) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(error.kafka_code())
        .with_high_watermark(offsets.map_or(-1, |o| o.high_watermark))
        .with_last_stable_offset(offsets.map_or(-1, |o| o.last_stable_offset))
        .with_log_start_offset(offsets.map_or(-1, |o| o.log_start_offset))
        .with_records(Some(Bytes::new()))
}
