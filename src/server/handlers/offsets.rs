//! FindCoordinator (a transaction coordinator is refused, see `init_producer_id.rs`),
//! OffsetCommit, TxnOffsetCommit, OffsetFetch. A commit is fenced and written as one step
//! under the group coordinator's lock (`Broker::commit_offsets`): a member commits with its
//! current generation and member id; a simple commit (generation -1, no member id, from
//! `assign()` consumers and admin tools) is accepted only while the group has no members, as
//! Kafka does. A partition whose metadata is over `OFFSET_METADATA_BYTES_MAX` gets
//! OFFSET_METADATA_TOO_LARGE and is not written. The accepted partitions are one write, made
//! durable by the flusher; the request parks on `WaitKey::Offsets` until then (at most
//! `OFFSET_COMMIT_TIMEOUT_MS`, then COORDINATOR_NOT_AVAILABLE, retriable, as Kafka answers a
//! timed-out offsets append), so a worker never fsyncs and never waits.
//!
//! TxnOffsetCommit (v0-4) is answered the same way: its offsets are pending in the producer's
//! transaction (`broker::txn_offsets`: fenced by member and generation when v3+ gives them,
//! Kafka's transactional rules; a lower producer epoch is INVALID_PRODUCER_EPOCH). OffsetFetch
//! never shows pending offsets; with `require_stable` (v7+) a partition that has some is
//! answered UNSTABLE_OFFSET_COMMIT (retriable), as Kafka's coordinator does.

use std::time::{Duration, Instant};

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{Delayed, Outcome, authz};
use crate::broker::offset_store::WriteSeq;
use crate::broker::wait::{WaitKey, Wake};
use crate::broker::{CommitFence, OffsetCommitEntry, TxnCommitFence};
use crate::error::AuthzError;
use crate::limits::OFFSET_COMMIT_TIMEOUT_MS;
use crate::security::acl::{AclOperation, ResourceType};
use crate::server::session::Caller;
use crate::server::worker::Ctx;

/// The response of a commit being made durable.
enum CommitResponse {
    Plain(OffsetCommitResponse),
    Txn(TxnOffsetCommitResponse),
}

/// An OffsetCommit or TxnOffsetCommit whose records are written but not yet durable.
pub struct PendingCommit {
    response: CommitResponse,
    seq: WriteSeq,
    /// (topic, partition) indexes in `response` of the partitions written, which turn into
    /// errors if the write never becomes durable.
    written: Vec<(usize, usize)>,
}

const GROUP_AUTHORIZATION_FAILED: i16 = AuthzError::GroupAuthorizationFailed.code();
const TOPIC_AUTHORIZATION_FAILED: i16 = AuthzError::TopicAuthorizationFailed.code();
/// FindCoordinator's key type of a transactional id (0 is a group).
const KEY_TYPE_TRANSACTION: i8 = 1;

/// A commit's authorization, as Kafka's: `Err(code)` refuses every partition (the
/// transactional id's Write, then the group's Read); else the i-th element says whether the
/// i-th topic may be read (a refused one's partitions answer TOPIC_AUTHORIZATION_FAILED).
fn commit_checks<'a>(
    ctx: &Ctx,
    caller: &Caller,
    txn_id: Option<&str>,
    group: &str,
    topics: impl Iterator<Item = &'a str>,
) -> Result<Vec<bool>, i16> {
    let checks = authz::checks(ctx, caller);
    if let Some(id) = txn_id
        && !checks.allows(AclOperation::Write, ResourceType::TransactionalId, id)
    {
        return Err(AuthzError::TransactionalIdAuthorizationFailed.code());
    }
    if !checks.allows(AclOperation::Read, ResourceType::Group, group) {
        return Err(GROUP_AUTHORIZATION_FAILED);
    }
    Ok(topics
        .map(|t| checks.allows(AclOperation::Read, ResourceType::Topic, t))
        .collect())
}

/// The refusal of the partition (`ti`, `pi`) under `allowed` (`commit_checks`), if any.
fn refusal(allowed: &Result<Vec<bool>, i16>, ti: usize) -> Option<i16> {
    match allowed {
        Err(code) => Some(*code),
        Ok(topics) if !topics.get(ti).copied().unwrap_or(false) => Some(TOPIC_AUTHORIZATION_FAILED),
        Ok(_) => None,
    }
}

const COORDINATOR_NOT_AVAILABLE: i16 =
    kafka_protocol::error::ResponseError::CoordinatorNotAvailable.code();
const UNSTABLE_OFFSET_COMMIT: i16 =
    kafka_protocol::error::ResponseError::UnstableOffsetCommit.code();

pub fn find_coordinator(
    ctx: &Ctx,
    version: i16,
    req: FindCoordinatorRequest,
    caller: &Caller,
) -> Outcome {
    let node = ctx.broker.node_id();
    let (host, port) = ctx.advertised(caller);
    let host = StrBytes::from_string(host.to_string());
    let port = i32::from(port);
    // As Kafka: Describe on the group (GROUP_AUTHORIZATION_FAILED) or the transactional id
    // (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); refused keys get no coordinator.
    let checks = authz::checks(ctx, caller);
    let refused = |key: &str| {
        if req.key_type == KEY_TYPE_TRANSACTION {
            (!checks.allows(AclOperation::Describe, ResourceType::TransactionalId, key))
                .then_some(AuthzError::TransactionalIdAuthorizationFailed.code())
        } else {
            (!checks.allows(AclOperation::Describe, ResourceType::Group, key))
                .then_some(GROUP_AUTHORIZATION_FAILED)
        }
    };
    let mut resp = FindCoordinatorResponse::default();
    // Groups and transactional ids (key type 1) alike: this node coordinates them all.
    if version >= 4 {
        resp = resp.with_coordinators(
            req.coordinator_keys
                .iter()
                .map(|k| {
                    let c = Coordinator::default().with_key(k.clone());
                    match refused(k) {
                        Some(code) => c
                            .with_error_code(code)
                            .with_node_id(BrokerId(-1))
                            .with_port(-1),
                        None => c
                            .with_node_id(BrokerId(node))
                            .with_host(host.clone())
                            .with_port(port),
                    }
                })
                .collect(),
        );
    } else if let Some(code) = refused(&req.key) {
        resp = resp
            .with_error_code(code)
            .with_node_id(BrokerId(-1))
            .with_port(-1);
    } else {
        resp = resp
            .with_node_id(BrokerId(node))
            .with_host(host)
            .with_port(port);
    }
    Outcome::Respond(ResponseKind::FindCoordinator(resp))
}

pub fn offset_commit(ctx: &Ctx, req: OffsetCommitRequest, caller: &Caller) -> Outcome {
    let group = req.group_id.0.to_string();
    let allowed = commit_checks(
        ctx,
        caller,
        None,
        &group,
        req.topics.iter().map(|t| &*t.name.0),
    );
    let instance_id = req
        .group_instance_id
        .as_ref()
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty());
    let fence = CommitFence {
        group_id: &group,
        member_id: &req.member_id,
        instance_id: instance_id.as_deref(),
        generation: req.generation_id_or_member_epoch,
    };
    let mut entries = Vec::new();
    let mut places = Vec::new();
    let mut refused = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        for (pi, p) in t.partitions.iter().enumerate() {
            if let Some(code) = refusal(&allowed, ti) {
                refused.push(((ti, pi), code));
                continue;
            }
            entries.push(OffsetCommitEntry {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            });
            places.push((ti, pi));
        }
    }
    let response = CommitResponse::Plain(
        OffsetCommitResponse::default().with_topics(
            req.topics
                .iter()
                .map(|t| {
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    );
    // Read before the write: an fsync published after it wakes the parked request at once.
    let mut response = response;
    for &(place, code) in &refused {
        set_code(&mut response, place, code);
    }
    if entries.is_empty() && !refused.is_empty() {
        return Outcome::Respond(response.into_kind());
    }
    let seen = ctx.broker.waits().epochs(&[WaitKey::Offsets]);
    let outcome = ctx.broker.commit_offsets(fence, &entries);
    respond_to_outcome(ctx, response, &places, outcome, seen)
}

pub fn txn_offset_commit(ctx: &Ctx, req: TxnOffsetCommitRequest, caller: &Caller) -> Outcome {
    let group = req.group_id.0.to_string();
    let allowed = commit_checks(
        ctx,
        caller,
        Some(&req.transactional_id),
        &group,
        req.topics.iter().map(|t| &*t.name.0),
    );
    let instance_id = req
        .group_instance_id
        .as_ref()
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty());
    let fence = TxnCommitFence {
        group_id: &group,
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        member_id: &req.member_id,
        instance_id: instance_id.as_deref(),
        generation: req.generation_id,
    };
    let mut entries = Vec::new();
    let mut places = Vec::new();
    let mut refused = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        for (pi, p) in t.partitions.iter().enumerate() {
            if let Some(code) = refusal(&allowed, ti) {
                refused.push(((ti, pi), code));
                continue;
            }
            entries.push(OffsetCommitEntry {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            });
            places.push((ti, pi));
        }
    }
    let response = CommitResponse::Txn(
        TxnOffsetCommitResponse::default().with_topics(
            req.topics
                .iter()
                .map(|t| {
                    TxnOffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    TxnOffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    );
    let mut response = response;
    for &(place, code) in &refused {
        set_code(&mut response, place, code);
    }
    if entries.is_empty() && !refused.is_empty() {
        return Outcome::Respond(response.into_kind());
    }
    let seen = ctx.broker.waits().epochs(&[WaitKey::Offsets]);
    let outcome = ctx.broker.txn_commit_offsets_fenced(fence, &entries);
    respond_to_outcome(ctx, response, &places, outcome, seen)
}

/// Answers a commit refused whole, or one with nothing to wait for; parks the others.
fn respond_to_outcome(
    ctx: &Ctx,
    mut response: CommitResponse,
    places: &[(usize, usize)],
    outcome: Result<crate::broker::CommitOutcome, crate::broker::group::GroupError>,
    seen: Vec<u64>,
) -> Outcome {
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(fenced) => {
            for &place in places {
                set_code(&mut response, place, fenced.code());
            }
            return Outcome::Respond(response.into_kind());
        }
    };
    let mut written = Vec::new();
    for (result, &place) in outcome.partitions.iter().zip(places) {
        match result {
            Ok(()) => written.push(place),
            Err(e) => set_code(&mut response, place, e.kafka_code()),
        }
    }
    let Some(seq) = outcome.pending else {
        return Outcome::Respond(response.into_kind());
    };
    let pending = PendingCommit {
        response,
        seq,
        written,
    };
    let deadline = Instant::now() + Duration::from_millis(OFFSET_COMMIT_TIMEOUT_MS);
    respond_or_park(ctx, pending, seen, deadline, Wake::Event)
}

/// Re-checks a parked OffsetCommit after it was woken.
pub fn retry(ctx: &Ctx, pending: PendingCommit, deadline: Instant, woke: Wake) -> Outcome {
    let seen = ctx.broker.waits().epochs(&[WaitKey::Offsets]);
    respond_or_park(ctx, pending, seen, deadline, woke)
}

/// Answers once the commit is durable (or failed, or the deadline passed); parks otherwise,
/// with `seen` read before the check.
fn respond_or_park(
    ctx: &Ctx,
    mut pending: PendingCommit,
    seen: Vec<u64>,
    deadline: Instant,
    woke: Wake,
) -> Outcome {
    let code = match ctx.broker.offsets_durable(pending.seq) {
        Ok(true) => None,
        Ok(false) if woke == Wake::Event && Instant::now() < deadline => {
            return Outcome::Park {
                kind: Delayed::OffsetCommit(pending),
                deadline,
                keys: vec![WaitKey::Offsets],
                seen,
            };
        }
        Ok(false) => Some(COORDINATOR_NOT_AVAILABLE),
        Err(e) => Some(e.kafka_code()),
    };
    if let Some(code) = code {
        for &place in &pending.written {
            set_code(&mut pending.response, place, code);
        }
    }
    Outcome::Respond(pending.response.into_kind())
}

impl CommitResponse {
    fn into_kind(self) -> ResponseKind {
        match self {
            CommitResponse::Plain(r) => ResponseKind::OffsetCommit(r),
            CommitResponse::Txn(r) => ResponseKind::TxnOffsetCommit(r),
        }
    }
}

fn set_code(resp: &mut CommitResponse, (ti, pi): (usize, usize), code: i16) {
    let slot = match resp {
        CommitResponse::Plain(r) => r
            .topics
            .get_mut(ti)
            .and_then(|t| t.partitions.get_mut(pi))
            .map(|p| &mut p.error_code),
        CommitResponse::Txn(r) => r
            .topics
            .get_mut(ti)
            .and_then(|t| t.partitions.get_mut(pi))
            .map(|p| &mut p.error_code),
    };
    if let Some(c) = slot {
        *c = code;
    }
}

pub fn offset_fetch(ctx: &Ctx, _version: i16, req: OffsetFetchRequest, caller: &Caller) -> Outcome {
    let group = req.group_id.0.to_string();
    // As Kafka: Describe on the group, else GROUP_AUTHORIZATION_FAILED; a named topic the
    // caller may not Describe answers TOPIC_AUTHORIZATION_FAILED, an unnamed one is left out.
    let checks = authz::checks(ctx, caller);
    if !checks.allows(AclOperation::Describe, ResourceType::Group, &group) {
        return Outcome::Respond(ResponseKind::OffsetFetch(
            OffsetFetchResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED),
        ));
    }
    let describable = |t: &str| checks.allows(AclOperation::Describe, ResourceType::Topic, t);
    let mut refused = Vec::new();
    let wanted: Vec<(String, Vec<i32>)> = match &req.topics {
        Some(topics) => topics
            .iter()
            .filter(|t| {
                let ok = describable(&t.name.0);
                if !ok {
                    refused.push(refused_fetch_topic(t));
                }
                ok
            })
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect(),
        None => {
            let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
            for ((t, p), _) in ctx.broker.group_offsets(&group) {
                by_topic.entry(t).or_default().push(p);
            }
            by_topic.retain(|t, _| describable(t));
            by_topic.into_iter().collect()
        }
    };
    drop(checks);
    let topics = wanted
        .into_iter()
        .map(|(name, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.clone())))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|p| {
                            let base =
                                OffsetFetchResponsePartition::default().with_partition_index(p);
                            if req.require_stable
                                && ctx.broker.has_pending_txn_offsets(&group, &name, p)
                            {
                                return base
                                    .with_error_code(UNSTABLE_OFFSET_COMMIT)
                                    .with_committed_offset(-1)
                                    .with_committed_leader_epoch(-1)
                                    .with_metadata(Some(StrBytes::default()));
                            }
                            let c = ctx.broker.committed_offset(&group, &name, p);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(c.as_ref().map_or(-1, |c| c.offset))
                                .with_committed_leader_epoch(
                                    c.as_ref().map_or(-1, |c| c.leader_epoch),
                                )
                                .with_metadata(Some(StrBytes::from_string(
                                    c.and_then(|c| c.metadata).unwrap_or_default(),
                                )))
                        })
                        .collect(),
                )
        })
        .collect();
    let mut topics: Vec<OffsetFetchResponseTopic> = topics;
    topics.extend(refused);
    Outcome::Respond(ResponseKind::OffsetFetch(
        OffsetFetchResponse::default().with_topics(topics),
    ))
}

/// The answer for a named topic the caller may not Describe.
fn refused_fetch_topic(
    t: &kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic,
) -> OffsetFetchResponseTopic {
    OffsetFetchResponseTopic::default()
        .with_name(t.name.clone())
        .with_partitions(
            t.partition_indexes
                .iter()
                .map(|p| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(*p)
                        .with_committed_offset(-1)
                        .with_committed_leader_epoch(-1)
                        .with_metadata(Some(StrBytes::default()))
                        .with_error_code(TOPIC_AUTHORIZATION_FAILED)
                })
                .collect(),
        )
}
