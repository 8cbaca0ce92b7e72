//! InitProducerId for idempotent producers (no transactional id). A new producer gets a fresh
//! id at epoch 0; a producer re-initialising with its id and epoch (KIP-360, v3+) gets the next
//! epoch, which fences its older incarnation on every partition. Transactions are not
//! implemented, so a transactional id is refused with UNSUPPORTED_VERSION.

use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};

use super::Ctx;
use super::Outcome;

const UNSUPPORTED_VERSION: i16 = kafka_protocol::error::ResponseError::UnsupportedVersion.code();

pub fn handle(ctx: &Ctx, req: InitProducerIdRequest) -> Outcome {
    let resp = InitProducerIdResponse::default();
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        return Outcome::Respond(ResponseKind::InitProducerId(
            resp.with_error_code(UNSUPPORTED_VERSION)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ));
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
