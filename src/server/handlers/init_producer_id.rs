//! InitProducerId for idempotent producers (no transactional id). A new producer gets a fresh
//! id at epoch 0; a producer re-initialising with its id and epoch (KIP-360, v3+) gets the next
//! epoch, which fences its older incarnation on every partition.
//!
//! With a transactional id it is the transaction coordinator's (`txn.rs`).
//!
//! Authorization (Kafka's `handleInitProducerIdRequest`): with a transactional id, Write on it
//! (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED); without, IdempotentWrite on the cluster or
//! Write on at least one topic (else CLUSTER_AUTHORIZATION_FAILED).

use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};

use super::Outcome;
use super::{Ctx, authz};
use crate::broker::txn::ProducerIdAndEpoch;
use crate::error::AuthzError;
use crate::security::acl::{AclOperation, ResourceType};
use crate::server::session::Caller;

pub fn handle(ctx: &Ctx, version: i16, req: InitProducerIdRequest, caller: &Caller) -> Outcome {
    let resp = InitProducerIdResponse::default();
    let txn_id = req.transactional_id.as_ref().filter(|t| !t.0.is_empty());
    let refused = {
        let checks = authz::checks(ctx, caller);
        match txn_id {
            Some(id) => (!checks.allows(AclOperation::Write, ResourceType::TransactionalId, &id.0))
                .then_some(AuthzError::TransactionalIdAuthorizationFailed),
            None => (!checks.allows_cluster(AclOperation::IdempotentWrite)
                && !checks.allows_any_of_type(AclOperation::Write, ResourceType::Topic))
            .then_some(AuthzError::ClusterAuthorizationFailed),
        }
    };
    if let Some(e) = refused {
        return Outcome::Respond(ResponseKind::InitProducerId(
            resp.with_error_code(e.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ));
    }
    if let Some(id) = txn_id {
        let expected =
            (req.producer_id.0 >= 0 && req.producer_epoch >= 0).then_some(ProducerIdAndEpoch {
                producer_id: req.producer_id.0,
                producer_epoch: req.producer_epoch,
            });
        return super::txn::init_producer_id(
            ctx,
            version,
            id.0.to_string(),
            req.transaction_timeout_ms,
            expected,
        );
    }
    let (id, epoch) =
        if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
            (Ok(req.producer_id.0), req.producer_epoch + 1)
        } else {
            (ctx.broker.allocate_producer_id(), 0)
        };
    let resp = match id {
        Ok(id) => resp
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(e) => resp
            .with_error_code(e.kafka_code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    };
    Outcome::Respond(ResponseKind::InitProducerId(resp))
}
