//! InitProducerId for idempotent producers (no transactional id). A new producer gets a fresh
//! id at epoch 0; a producer re-initialising with its id and epoch (KIP-360, v3+) gets the next
//! epoch, which fences its older incarnation on every partition.
//!
//! Transactions are not implemented. A transactional id is refused with
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED, here and in FindCoordinator for a transaction
//! coordinator (`offsets.rs`), which is what Kafka answers a client it will not serve that
//! transactional id, and which librdkafka (`rd_kafka_idemp_check_error`, the txn manager's
//! FindCoordinator handler), the Java client (`TransactionManager`) and kafkajs all treat as
//! fatal: `init_transactions()` fails at once instead of retrying until its timeout (as it did
//! on UNSUPPORTED_VERSION, which librdkafka retries).

use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};

use super::Ctx;
use super::Outcome;

/// The answer to anything that needs a transaction coordinator.
pub const TRANSACTIONS_REFUSED: i16 =
    kafka_protocol::error::ResponseError::TransactionalIdAuthorizationFailed.code();

/// Why, where the response has room for a message (FindCoordinator v1+), and in the log.
pub fn transactions_refused_message(transactional_id: &str) -> String {
    format!(
        "transactional id {transactional_id:?}: transactions are not supported by this broker \
         (Thorstream); use an idempotent producer without transactional.id"
    )
}

pub fn handle(ctx: &Ctx, req: InitProducerIdRequest) -> Outcome {
    let resp = InitProducerIdResponse::default();
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        let id = req.transactional_id.as_ref().map_or("", |t| t.0.as_str());
        log::info!(
            "InitProducerId refused: {}",
            transactions_refused_message(id)
        );
        return Outcome::Respond(ResponseKind::InitProducerId(
            resp.with_error_code(TRANSACTIONS_REFUSED)
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
