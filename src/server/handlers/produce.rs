//! Produce: validate and append each partition's batches as sent (no re-encoding); acks=0 gets
//! no response, acks=1 answers after the append, acks=all parks until the fsync policy has
//! made every written partition durable (or the request timeout passes).
//!
//! Authorization (as Kafka's `handleProduceRequest`): a transactional produce needs Write on
//! its transactional id (else every partition answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
//! each topic Write (else its partitions answer TOPIC_AUTHORIZATION_FAILED, before existence
//! is looked at). Decided up front under one read lock, released before any append.

use std::time::{Duration, Instant};

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};

use super::Ctx;
use super::authz;
use super::{Outcome, message};
use crate::broker::wait::{WaitKey, Wake};
use crate::error::AuthzError;
use crate::security::acl::{AclOperation, ResourceType};
use crate::server::session::Caller;

/// An acks=all produce waiting for durability.
pub struct PendingAcks {
    response: ProduceResponse,
    /// (topic, partition, last offset written) still to become durable.
    waits: Vec<(String, i32, i64)>,
}

const INVALID_REQUIRED_ACKS: i16 = kafka_protocol::error::ResponseError::InvalidRequiredAcks.code();
const REQUEST_TIMED_OUT: i16 = kafka_protocol::error::ResponseError::RequestTimedOut.code();

/// The first Produce version that may carry zstd batches (KIP-110).
const ZSTD_MIN_VERSION: i16 = 7;

/// Per topic of the request, the authorization error it answers (`None`: all allowed, or no
/// authorizer).
fn denied_topics(ctx: &Ctx, req: &ProduceRequest, caller: &Caller) -> Option<Vec<Option<i16>>> {
    let checks = authz::checks(ctx, caller);
    if !checks.is_on() {
        return None;
    }
    if let Some(id) = &req.transactional_id
        && !checks.allows(AclOperation::Write, ResourceType::TransactionalId, id)
    {
        let code = AuthzError::TransactionalIdAuthorizationFailed.code();
        return Some(vec![Some(code); req.topic_data.len()]);
    }
    let writable = |t: &kafka_protocol::messages::produce_request::TopicProduceData| {
        checks.allows(AclOperation::Write, ResourceType::Topic, &t.name.0)
    };
    // The common case, everything allowed, allocates nothing.
    if req.topic_data.iter().all(writable) {
        return None;
    }
    let code = AuthzError::TopicAuthorizationFailed.code();
    Some(
        req.topic_data
            .iter()
            .map(|t| (!writable(t)).then_some(code))
            .collect(),
    )
}

pub fn handle(ctx: &Ctx, version: i16, req: ProduceRequest, caller: &Caller) -> Outcome {
    let denied = denied_topics(ctx, &req, caller);
    let acks = req.acks;
    let deadline = Instant::now() + Duration::from_millis(req.timeout_ms.max(0) as u64);
    // acks=all: every partition's wait-set epoch, read before the appends. An fsync published
    // after this read wakes the parked request at once, so each append's own report of whether
    // its records are durable stands in for the first check (the partition is not locked again).
    let counters = if acks == -1 {
        let keys: Vec<WaitKey> = req
            .topic_data
            .iter()
            .flat_map(|t| {
                t.partition_data
                    .iter()
                    .map(|p| WaitKey::partition(&t.name.0, p.index))
            })
            .collect();
        ctx.broker.waits().epochs(&keys)
    } else {
        Vec::new()
    };
    let mut counters = counters.into_iter();
    let mut waits = Vec::new();
    let mut seen = Vec::new();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for (i, topic) in req.topic_data.into_iter().enumerate() {
        let name = topic.name.0.to_string();
        let mut parts = Vec::with_capacity(topic.partition_data.len());
        let refused = denied.as_ref().and_then(|d| d.get(i).copied().flatten());
        for p in topic.partition_data {
            let counter = counters.next().unwrap_or(0);
            let mut resp = PartitionProduceResponse::default()
                .with_index(p.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            if !matches!(acks, -1..=1) {
                parts.push(resp.with_error_code(INVALID_REQUIRED_ACKS));
                continue;
            }
            if let Some(code) = refused {
                parts.push(resp.with_error_code(code));
                continue;
            }
            let bytes = p.records.unwrap_or_default();
            let zstd_allowed = version >= ZSTD_MIN_VERSION;
            match ctx
                .broker
                .append_wire(&name, p.index, &bytes, zstd_allowed, version)
            {
                Ok(info) => {
                    resp = resp
                        .with_base_offset(info.base_offset)
                        .with_log_append_time_ms(info.log_append_time_ms)
                        .with_log_start_offset(info.log_start_offset);
                    if acks == -1 && !info.is_visible() {
                        waits.push((name.clone(), p.index, info.last_offset));
                        seen.push(counter);
                    }
                }
                Err(e) => {
                    log::debug!("produce to {name}-{}: {e}", p.index);
                    resp = resp
                        .with_error_code(e.kafka_code())
                        .with_error_message(message(&e));
                }
            }
            parts.push(resp);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(parts),
        );
    }
    if acks == 0 {
        return Outcome::NoResponse;
    }
    let pending = PendingAcks {
        response: ProduceResponse::default().with_responses(responses),
        waits,
    };
    if Instant::now() >= deadline {
        // No time to wait (timeout 0): `retry` checks once more and answers.
        return retry(ctx, pending, deadline, Wake::Deadline);
    }
    respond_or_park(pending, seen, deadline)
}

/// Answers if every write is durable (or failed, or the deadline passed); parks otherwise.
pub fn retry(ctx: &Ctx, mut pending: PendingAcks, deadline: Instant, woke: Wake) -> Outcome {
    let keys: Vec<WaitKey> = pending
        .waits
        .iter()
        .map(|(t, p, _)| WaitKey::partition(t, *p))
        .collect();
    // Read the epochs before checking, so an fsync landing in between wakes us at once.
    let seen_all = ctx.broker.waits().epochs(&keys);
    let expired = woke != Wake::Event || Instant::now() >= deadline;
    let mut still = Vec::new();
    let mut seen = Vec::new();
    for ((topic, partition, offset), counter) in
        std::mem::take(&mut pending.waits).into_iter().zip(seen_all)
    {
        let error = match ctx.broker.is_durable(&topic, partition, offset) {
            Ok(true) => None,
            Ok(false) if !expired => {
                still.push((topic, partition, offset));
                seen.push(counter);
                continue;
            }
            Ok(false) => Some((REQUEST_TIMED_OUT, None)),
            Err(e) => Some((e.kafka_code(), message(&e))),
        };
        if let Some((code, msg)) = error {
            set_error(&mut pending.response, &topic, partition, code, msg);
        }
    }
    pending.waits = still;
    respond_or_park(pending, seen, deadline)
}

/// Answers once no write is left to wait for; otherwise parks on the partitions still waited
/// for, with the wait-set epochs (`seen`, one per wait) read before they were found not durable.
fn respond_or_park(pending: PendingAcks, seen: Vec<u64>, deadline: Instant) -> Outcome {
    if pending.waits.is_empty() {
        return Outcome::Respond(ResponseKind::Produce(pending.response));
    }
    let keys = pending
        .waits
        .iter()
        .map(|(t, p, _)| WaitKey::partition(t, *p))
        .collect();
    Outcome::Park {
        kind: super::Delayed::Produce(pending),
        deadline,
        keys,
        seen,
    }
}

fn set_error(
    resp: &mut ProduceResponse,
    topic: &str,
    partition: i32,
    code: i16,
    msg: Option<kafka_protocol::protocol::StrBytes>,
) {
    for t in resp.responses.iter_mut().filter(|t| &*t.name.0 == topic) {
        for p in t
            .partition_responses
            .iter_mut()
            .filter(|p| p.index == partition)
        {
            p.error_code = code;
            p.error_message = msg.clone();
        }
    }
}
