//! InitProducerId for idempotent producers (no transactional id). A new producer gets a fresh
//! id at epoch 0; a producer re-initialising with its id and epoch (KIP-360, v3+) gets the next
//! epoch, which fences its older incarnation on every partition.
//!
//! With a transactional id it is the transaction coordinator's (`txn.rs`).

use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};

use super::Ctx;
use super::Outcome;
use crate::broker::txn::ProducerIdAndEpoch;

pub fn handle(ctx: &Ctx, version: i16, req: InitProducerIdRequest) -> Outcome {
    let resp = InitProducerIdResponse::default();
    if let Some(id) = req.transactional_id.as_ref().filter(|t| !t.0.is_empty()) {
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
