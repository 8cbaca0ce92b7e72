//! The transaction coordinator's APIs (transaction protocol v1): InitProducerId with a
//! transactional id, AddPartitionsToTxn v0-3, AddOffsetsToTxn, EndTxn, DescribeTransactions
//! and ListTransactions, over `broker::txn`.
//!
//! EndTxn answers once its decision is durable and, if that comes within the broker's produce
//! timeout (at most `TXN_COMPLETION_WAIT_MS_MAX`), once its markers are durable and the
//! transaction complete: parked on the partitions' wait keys like an acks=all Produce, so the
//! client's next AddPartitionsToTxn does not meet `CONCURRENT_TRANSACTIONS` and back off. At
//! the deadline it answers OK anyway (the decision is durable; the `thorstream-txn` thread
//! completes it).
//!
//! A request refused with `CONCURRENT_TRANSACTIONS` (EndTxn, InitProducerId,
//! AddPartitionsToTxn, AddOffsetsToTxn) is not answered so: it waits for the completion under
//! way (an InitProducerId that fenced an open transaction waits for its abort), or, while
//! another transition of the id is being written, up to `CONCURRENT_BACKOFF`, and runs again,
//! until its deadline.
//!
//! `PRODUCER_FENCED` is answered as `INVALID_PRODUCER_EPOCH` to versions that predate it
//! (InitProducerId < 4, the others < 2), as Kafka does.
//!
//! Authorization (Kafka's `KafkaApis`): Write on the transactional id for AddPartitionsToTxn,
//! AddOffsetsToTxn and EndTxn (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED; InitProducerId's
//! check is in `init_producer_id.rs`), then Write on each topic added (TOPIC_AUTHORIZATION_
//! FAILED, the others OPERATION_NOT_ATTEMPTED) or Read on the group (GROUP_AUTHORIZATION_
//! FAILED); DescribeTransactions and ListTransactions show only the ids (and topics) the caller
//! may Describe.

use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, InitProducerIdResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, ResponseKind, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::{Ctx, Delayed, Outcome, authz};
use crate::broker::txn::{
    ProducerIdAndEpoch, Progress, Reply, TxnCall, TxnMetadata, TxnReq, TxnState,
};
use crate::broker::wait::{WaitKey, Wake};
use crate::error::{AuthzError, NO_ERROR_CODE, TxnError};
use crate::security::acl::{AclOperation, ResourceType};
use crate::server::session::Caller;
use crate::types::TopicPartition;

/// A request waiting for a transaction's completion.
pub struct PendingTxn {
    transactional_id: String,
    version: i16,
    then: Then,
    /// When it is answered whatever the state (a park may end earlier, to look again).
    until: Instant,
    /// Its coordinator record waits for the flusher's fsync of the state log under this
    /// sequence number: collect the reply once `WaitKey::TxnLog` fires.
    syncing: Option<u64>,
}

/// How long a request refused with CONCURRENT_TRANSACTIONS while no completion is under way
/// (another request's transition of the id is being written) waits before it runs again,
/// unless a new completion (`WaitKey::TxnCoordinator`) wakes it sooner.
const CONCURRENT_BACKOFF: Duration = Duration::from_millis(20);

enum Then {
    /// EndTxn: run it (again) until decided, then answer once complete.
    End {
        producer_id: i64,
        epoch: i16,
        commit: bool,
        decided: bool,
    },
    /// InitProducerId: run it again.
    Init {
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
    },
    /// AddPartitionsToTxn (`group` None) or AddOffsetsToTxn met the previous transaction
    /// still completing: run it again.
    Add {
        producer_id: i64,
        epoch: i16,
        partitions: Vec<TopicPartition>,
        group: Option<String>,
    },
}

/// The first InitProducerId version that knows PRODUCER_FENCED.
const INIT_FENCED_MIN_VERSION: i16 = 4;
/// The first AddPartitionsToTxn, AddOffsetsToTxn and EndTxn version that knows it.
const FENCED_MIN_VERSION: i16 = 2;

fn code_for(e: TxnError, version: i16, fenced_min_version: i16) -> i16 {
    if version < fenced_min_version {
        e.for_old_client().code()
    } else {
        e.code()
    }
}

fn deadline(ctx: &Ctx) -> Instant {
    Instant::now()
        + Duration::from_millis(
            ctx.broker
                .config()
                .produce_timeout_ms
                .min(crate::limits::TXN_COMPLETION_WAIT_MS_MAX),
        )
}

/// Runs the request's coordinator call (`call`), or, if its record is being fsynced, collects
/// the reply. `Err` is the park until the state log's fsync (`WaitKey::TxnLog`).
fn call_or_collect(
    ctx: &Ctx,
    mut pending: PendingTxn,
    may_wait: bool,
    call: impl FnOnce() -> Result<TxnCall, TxnError>,
) -> Result<(PendingTxn, Result<Reply, TxnError>), Box<Outcome>> {
    let unavailable = Err(TxnError::CoordinatorNotAvailable);
    let seq = match pending.syncing {
        Some(seq) => seq,
        None => match call() {
            Ok(TxnCall::Reply(r)) => return Ok((pending, r.map_or(unavailable, Ok))),
            Ok(TxnCall::Syncing(seq)) => seq,
            Err(e) => return Ok((pending, Err(e))),
        },
    };
    let keys = vec![WaitKey::TxnLog];
    let seen = ctx.broker.waits().epochs(&keys);
    if let Some(r) = ctx.broker.txn_collect(seq) {
        pending.syncing = None;
        return Ok((pending, r.map_or(unavailable, Ok)));
    }
    if !may_wait || Instant::now() >= pending.until {
        // The flusher did not get to it in time: retriable, and a retry of an applied
        // transition is answered as it was.
        pending.syncing = None;
        return Ok((pending, unavailable));
    }
    pending.syncing = Some(seq);
    Err(Box::new(Outcome::Park {
        deadline: pending.until,
        kind: Delayed::Txn(pending),
        keys,
        seen,
    }))
}

/// InitProducerId with a non-empty transactional id.
pub fn init_producer_id(
    ctx: &Ctx,
    version: i16,
    transactional_id: String,
    timeout_ms: i32,
    expected: Option<ProducerIdAndEpoch>,
) -> Outcome {
    let pending = PendingTxn {
        transactional_id,
        version,
        then: Then::Init {
            timeout_ms,
            expected,
        },
        until: deadline(ctx),
        syncing: None,
    };
    run_init(ctx, pending, true)
}

/// Runs InitProducerId; refused with CONCURRENT_TRANSACTIONS it waits (`may_wait`) and runs
/// again.
fn run_init(ctx: &Ctx, pending: PendingTxn, may_wait: bool) -> Outcome {
    let Then::Init {
        timeout_ms,
        expected,
    } = pending.then
    else {
        return Outcome::Close("InitProducerId state lost".into());
    };
    let seen = ctx.broker.waits().epochs(&[WaitKey::TxnCoordinator]);
    let id = pending.transactional_id.clone();
    let (pending, reply) = match call_or_collect(ctx, pending, may_wait, || {
        ctx.broker.txn_call(TxnReq::Init {
            id: &id,
            timeout_ms,
            expected,
        })
    }) {
        Ok(x) => x,
        Err(park) => return *park,
    };
    let r = match reply {
        Ok(Reply::InitProducerId(r)) => r,
        Ok(_) => Err(TxnError::CoordinatorNotAvailable),
        Err(e) => Err(e),
    };
    if r == Err(TxnError::ConcurrentTransactions) && may_wait && Instant::now() < pending.until {
        return wait_to_retry(ctx, pending, seen);
    }
    let resp = InitProducerIdResponse::default();
    let resp = match r {
        Ok(p) => resp
            .with_producer_id(ProducerId(p.producer_id))
            .with_producer_epoch(p.producer_epoch),
        Err(e) => resp
            .with_error_code(code_for(e, pending.version, INIT_FENCED_MIN_VERSION))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    };
    Outcome::Respond(ResponseKind::InitProducerId(resp))
}

/// EndTxn: answers once its transaction is complete (or at its deadline: the decision is
/// durable either way).
fn end_progress(ctx: &Ctx, pending: PendingTxn, woke: Wake) -> Outcome {
    let expired = woke == Wake::Shutdown || Instant::now() >= pending.until;
    match ctx.broker.txn_progress(&pending.transactional_id) {
        Progress::Waiting { keys, seen } if !expired => Outcome::Park {
            deadline: pending.until,
            kind: Delayed::Txn(pending),
            keys,
            seen,
        },
        _ => Outcome::Respond(ResponseKind::EndTxn(EndTxnResponse::default())),
    }
}

/// A request refused with CONCURRENT_TRANSACTIONS: parks until the completion under way ends,
/// or, with none under way yet, for `CONCURRENT_BACKOFF` or until one starts (`seen` is
/// `WaitKey::TxnCoordinator`'s epoch read before the refusal); then it runs again.
fn wait_to_retry(ctx: &Ctx, pending: PendingTxn, seen: Vec<u64>) -> Outcome {
    match ctx.broker.txn_progress(&pending.transactional_id) {
        Progress::Waiting { keys, seen } => Outcome::Park {
            deadline: pending.until,
            kind: Delayed::Txn(pending),
            keys,
            seen,
        },
        Progress::Done | Progress::Failed => Outcome::Park {
            deadline: (Instant::now() + CONCURRENT_BACKOFF).min(pending.until),
            kind: Delayed::Txn(pending),
            keys: vec![WaitKey::TxnCoordinator],
            seen,
        },
    }
}

/// A parked transactional request was woken.
pub fn retry(ctx: &Ctx, pending: PendingTxn, _deadline: Instant, woke: Wake) -> Outcome {
    // Past its own deadline (or shutting down) a request runs once more and is answered.
    let may_wait = woke != Wake::Shutdown && Instant::now() < pending.until;
    match pending.then {
        Then::End { decided: true, .. } => end_progress(ctx, pending, woke),
        Then::End { .. } => run_end(ctx, pending, may_wait),
        Then::Init { .. } => run_init(ctx, pending, may_wait),
        Then::Add { .. } => run_add(ctx, pending, may_wait),
    }
}

/// AddPartitionsToTxn (of partitions known to exist) or AddOffsetsToTxn.
fn run_add(ctx: &Ctx, pending: PendingTxn, may_wait: bool) -> Outcome {
    let Then::Add {
        producer_id,
        epoch,
        partitions,
        group,
    } = &pending.then
    else {
        return Outcome::Close("AddPartitionsToTxn state lost".into());
    };
    let (producer_id, epoch, partitions, group) =
        (*producer_id, *epoch, partitions.clone(), group.clone());
    let id = pending.transactional_id.clone();
    let seen = ctx.broker.waits().epochs(&[WaitKey::TxnCoordinator]);
    let (pending, reply) = match call_or_collect(ctx, pending, may_wait, || {
        ctx.broker.txn_call(match &group {
            Some(g) => TxnReq::AddOffsets {
                id: &id,
                producer_id,
                epoch,
                group: g,
            },
            None => TxnReq::AddPartitions {
                id: &id,
                producer_id,
                epoch,
                partitions: &partitions,
            },
        })
    }) {
        Ok(x) => x,
        Err(park) => return *park,
    };
    let r = match reply {
        Ok(Reply::AddOffsets(r) | Reply::AddPartitions(r)) => r,
        Ok(_) => Err(TxnError::CoordinatorNotAvailable),
        Err(e) => Err(e),
    };
    if r == Err(TxnError::ConcurrentTransactions) && may_wait && Instant::now() < pending.until {
        return wait_to_retry(ctx, pending, seen);
    }
    let code = match r {
        Ok(()) => NO_ERROR_CODE,
        Err(e) => code_for(e, pending.version, FENCED_MIN_VERSION),
    };
    match group {
        Some(_) => Outcome::Respond(ResponseKind::AddOffsetsToTxn(
            AddOffsetsToTxnResponse::default().with_error_code(code),
        )),
        None => add_partitions_response(partitions.iter().map(|tp| (tp.clone(), code))),
    }
}

pub fn add_partitions_to_txn(
    ctx: &Ctx,
    version: i16,
    req: AddPartitionsToTxnRequest,
    caller: &Caller,
) -> Outcome {
    let id = req.v3_and_below_transactional_id.0.to_string();
    let (id_ok, writable): (bool, Vec<bool>) = {
        let checks = authz::checks(ctx, caller);
        (
            checks.allows(AclOperation::Write, ResourceType::TransactionalId, &id),
            req.v3_and_below_topics
                .iter()
                .map(|t| checks.allows(AclOperation::Write, ResourceType::Topic, &t.name.0))
                .collect(),
        )
    };
    if !id_ok {
        let code = AuthzError::TransactionalIdAuthorizationFailed.code();
        return add_partitions_response(req.v3_and_below_topics.iter().flat_map(|t| {
            t.partitions
                .iter()
                .map(move |&p| (TopicPartition::new(t.name.0.to_string(), p), code))
        }));
    }
    let mut partitions = Vec::new();
    let mut unknown = Vec::new();
    for (t, writable) in req.v3_and_below_topics.iter().zip(writable) {
        for &p in &t.partitions {
            let tp = TopicPartition::new(t.name.0.to_string(), p);
            if !writable {
                unknown.push((tp, AuthzError::TopicAuthorizationFailed.code()));
                continue;
            }
            match ctx.broker.partition(&t.name.0, p) {
                Ok(_) => partitions.push(tp),
                Err(e) => unknown.push((tp, e.kafka_code())),
            }
        }
    }
    // Kafka: if any partition is refused, none is added; the others are "not attempted".
    if !unknown.is_empty() {
        let not_attempted = TxnError::OperationNotAttempted.code();
        return add_partitions_response(
            partitions
                .into_iter()
                .map(|tp| (tp, not_attempted))
                .chain(unknown),
        );
    }
    let pending = PendingTxn {
        transactional_id: id,
        version,
        then: Then::Add {
            producer_id: req.v3_and_below_producer_id.0,
            epoch: req.v3_and_below_producer_epoch,
            partitions,
            group: None,
        },
        until: deadline(ctx),
        syncing: None,
    };
    run_add(ctx, pending, true)
}

fn add_partitions_response(codes: impl Iterator<Item = (TopicPartition, i16)>) -> Outcome {
    let mut topics: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for (tp, code) in codes {
        let result = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(tp.partition)
            .with_partition_error_code(code);
        match topics.iter_mut().find(|t| *t.name.0 == *tp.topic) {
            Some(t) => t.results_by_partition.push(result),
            None => topics.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(StrBytes::from_string(tp.topic)))
                    .with_results_by_partition(vec![result]),
            ),
        }
    }
    Outcome::Respond(ResponseKind::AddPartitionsToTxn(
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics),
    ))
}

pub fn add_offsets_to_txn(
    ctx: &Ctx,
    version: i16,
    req: AddOffsetsToTxnRequest,
    caller: &Caller,
) -> Outcome {
    let refused = {
        let checks = authz::checks(ctx, caller);
        if !checks.allows(
            AclOperation::Write,
            ResourceType::TransactionalId,
            &req.transactional_id.0,
        ) {
            Some(AuthzError::TransactionalIdAuthorizationFailed)
        } else if !checks.allows(AclOperation::Read, ResourceType::Group, &req.group_id.0) {
            Some(AuthzError::GroupAuthorizationFailed)
        } else {
            None
        }
    };
    if let Some(e) = refused {
        return Outcome::Respond(ResponseKind::AddOffsetsToTxn(
            AddOffsetsToTxnResponse::default().with_error_code(e.code()),
        ));
    }
    let pending = PendingTxn {
        transactional_id: req.transactional_id.0.to_string(),
        version,
        then: Then::Add {
            producer_id: req.producer_id.0,
            epoch: req.producer_epoch,
            partitions: Vec::new(),
            group: Some(req.group_id.0.to_string()),
        },
        until: deadline(ctx),
        syncing: None,
    };
    run_add(ctx, pending, true)
}

pub fn end_txn(ctx: &Ctx, version: i16, req: EndTxnRequest, caller: &Caller) -> Outcome {
    let id = &req.transactional_id.0;
    if !authz::allowed(
        ctx,
        caller,
        AclOperation::Write,
        ResourceType::TransactionalId,
        id,
    ) {
        return Outcome::Respond(ResponseKind::EndTxn(
            EndTxnResponse::default()
                .with_error_code(AuthzError::TransactionalIdAuthorizationFailed.code()),
        ));
    }
    let pending = PendingTxn {
        transactional_id: req.transactional_id.0.to_string(),
        version,
        then: Then::End {
            producer_id: req.producer_id.0,
            epoch: req.producer_epoch,
            commit: req.committed,
            decided: false,
        },
        until: deadline(ctx),
        syncing: None,
    };
    run_end(ctx, pending, true)
}

/// Runs EndTxn; refused with CONCURRENT_TRANSACTIONS it waits (`may_wait`) and runs again.
fn run_end(ctx: &Ctx, pending: PendingTxn, may_wait: bool) -> Outcome {
    let Then::End {
        producer_id,
        epoch,
        commit,
        ..
    } = pending.then
    else {
        return Outcome::Close("EndTxn state lost".into());
    };
    let seen = ctx.broker.waits().epochs(&[WaitKey::TxnCoordinator]);
    let id = pending.transactional_id.clone();
    let (mut pending, reply) = match call_or_collect(ctx, pending, may_wait, || {
        ctx.broker.txn_call(TxnReq::End {
            id: &id,
            producer_id,
            epoch,
            commit,
        })
    }) {
        Ok(x) => x,
        Err(park) => return *park,
    };
    let r = match reply {
        Ok(Reply::EndTxn(r)) => r,
        Ok(_) => Err(TxnError::CoordinatorNotAvailable),
        Err(e) => Err(e),
    };
    let Then::End {
        ref mut decided, ..
    } = pending.then
    else {
        return Outcome::Close("EndTxn state lost".into());
    };
    match r {
        Ok(()) => {
            *decided = true;
            end_progress(ctx, pending, Wake::Event)
        }
        Err(TxnError::ConcurrentTransactions) if may_wait && Instant::now() < pending.until => {
            wait_to_retry(ctx, pending, seen)
        }
        Err(e) => Outcome::Respond(ResponseKind::EndTxn(
            EndTxnResponse::default().with_error_code(code_for(
                e,
                pending.version,
                FENCED_MIN_VERSION,
            )),
        )),
    }
}

pub fn describe_transactions(
    ctx: &Ctx,
    req: DescribeTransactionsRequest,
    caller: &Caller,
) -> Outcome {
    let all = ctx.broker.transactions();
    let checks = authz::checks(ctx, caller);
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| match all.get(&*id.0) {
            _ if !checks.allows(AclOperation::Describe, ResourceType::TransactionalId, &id.0) => {
                TransactionState::default()
                    .with_transactional_id(id)
                    .with_error_code(AuthzError::TransactionalIdAuthorizationFailed.code())
                    .with_transaction_state(StrBytes::from_static_str(""))
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1)
            }
            Some(m) => {
                let mut d = described(id, m);
                // Only the topics the caller may Describe, as Kafka.
                d.topics.retain(|t| {
                    checks.allows(AclOperation::Describe, ResourceType::Topic, &t.topic.0)
                });
                d
            }
            None => TransactionState::default()
                .with_transactional_id(id)
                .with_error_code(TxnError::TransactionalIdNotFound.code())
                .with_transaction_state(StrBytes::from_static_str(""))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1),
        })
        .collect();
    Outcome::Respond(ResponseKind::DescribeTransactions(
        DescribeTransactionsResponse::default().with_transaction_states(states),
    ))
}

fn described(id: TransactionalId, m: &TxnMetadata) -> TransactionState {
    let mut topics: Vec<TopicData> = Vec::new();
    for tp in &m.partitions {
        match topics.iter_mut().find(|t| *t.topic.0 == *tp.topic) {
            Some(t) => t.partitions.push(tp.partition),
            None => topics.push(
                TopicData::default()
                    .with_topic(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partitions(vec![tp.partition]),
            ),
        }
    }
    TransactionState::default()
        .with_transactional_id(id)
        .with_transaction_state(StrBytes::from_static_str(m.state.name()))
        .with_transaction_timeout_ms(m.timeout_ms)
        .with_transaction_start_time_ms(m.txn_start_ms)
        .with_producer_id(ProducerId(m.producer_id))
        .with_producer_epoch(m.producer_epoch)
        .with_topics(topics)
}

pub fn list_transactions(ctx: &Ctx, req: ListTransactionsRequest, caller: &Caller) -> Outcome {
    let checks = authz::checks(ctx, caller);
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for f in &req.state_filters {
        match TxnState::ALL.iter().find(|s| s.name() == &**f) {
            Some(s) => states.push(*s),
            None => unknown.push(f.clone()),
        }
    }
    let now = crate::storage::now_ms();
    let listed = ctx
        .broker
        .transactions()
        .into_iter()
        .filter(|(id, _)| checks.allows(AclOperation::Describe, ResourceType::TransactionalId, id))
        .filter(|(_, m)| states.is_empty() || states.contains(&m.state))
        .filter(|(_, m)| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.contains(&ProducerId(m.producer_id))
        })
        // Kafka's rule: only transactions running for longer than the duration.
        .filter(|(_, m)| {
            req.duration_filter < 0 || now.saturating_sub(m.txn_start_ms) > req.duration_filter
        })
        .map(|(id, m)| {
            ListedState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(StrBytes::from_static_str(m.state.name()))
        })
        .collect();
    Outcome::Respond(ResponseKind::ListTransactions(
        ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown)
            .with_transaction_states(listed),
    ))
}
