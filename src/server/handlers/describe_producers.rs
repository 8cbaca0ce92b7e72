//! DescribeProducers (v0; kafka-transactions describe-producers, Flink): per partition, the
//! idempotent and transactional producers its log remembers (id, epoch, last sequence, last
//! timestamp, the first offset of the producer's open transaction here or -1). The
//! coordinator epoch is -1 (Kafka reports the epoch of the last marker's coordinator; ours is
//! always 0 and not kept per producer). An unknown partition gets
//! UNKNOWN_TOPIC_OR_PARTITION (with our error's text as its message).

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, ProducerId, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;

use super::{Ctx, Outcome, authz};
use crate::error::AuthzError;
use crate::security::acl::{AclOperation, ResourceType};
use crate::server::session::Caller;

pub fn handle(ctx: &Ctx, req: DescribeProducersRequest, caller: &Caller) -> Outcome {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            // As Kafka: Read on the topic, else TOPIC_AUTHORIZATION_FAILED.
            let readable =
                authz::allowed(ctx, caller, AclOperation::Read, ResourceType::Topic, &name);
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let base = PartitionResponse::default().with_partition_index(p);
                    if !readable {
                        return base.with_error_code(AuthzError::TopicAuthorizationFailed.code());
                    }
                    match ctx.broker.active_producers(&name, p) {
                        Ok(producers) => base.with_active_producers(
                            producers
                                .into_iter()
                                .map(|a| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(a.producer_id))
                                        .with_producer_epoch(i32::from(a.epoch))
                                        .with_last_sequence(a.last_sequence)
                                        .with_last_timestamp(a.last_timestamp)
                                        .with_coordinator_epoch(-1)
                                        .with_current_txn_start_offset(a.current_txn_start_offset)
                                })
                                .collect(),
                        ),
                        Err(e) => base
                            .with_error_code(e.kafka_code())
                            .with_error_message(Some(StrBytes::from_string(e.to_string()))),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Outcome::Respond(ResponseKind::DescribeProducers(
        DescribeProducersResponse::default().with_topics(topics),
    ))
}
