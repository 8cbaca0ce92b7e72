//! Metadata: brokers (just us), topics, partitions; auto-creates requested topics when allowed.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use super::Outcome;
use crate::error::Error;
use crate::server::session::Caller;

const UNKNOWN_TOPIC_ID: i16 = kafka_protocol::error::ResponseError::UnknownTopicId.code();

/// Kafka's "authorized operations not requested" value.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
/// Without an authorizer every operation is allowed. Bits are Kafka's AclOperation codes:
/// READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11.
const TOPIC_OPERATIONS: i32 = bits(&[3, 4, 5, 6, 7, 8, 10, 11]);
/// CREATE 5, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11,
/// IDEMPOTENT_WRITE 12.
const CLUSTER_OPERATIONS: i32 = bits(&[5, 7, 8, 9, 10, 11, 12]);

const fn bits(ops: &[i32]) -> i32 {
    let mut v = 0;
    let mut i = 0;
    while i < ops.len() {
        v |= 1 << ops[i];
        i += 1;
    }
    v
}

pub fn handle(ctx: &Ctx, version: i16, req: MetadataRequest, caller: &Caller) -> Outcome {
    let (host, port) = ctx.advertised(caller);
    let broker = &ctx.broker;
    let node = broker.node_id();
    // v0: an empty list means all topics; v1+: null means all. As Kafka, topics are looked up
    // by id when any id is set (the Java admin sends `name: ""` with the id), and an unknown id
    // is answered UNKNOWN_TOPIC_ID with the id and a null name.
    let mut unknown_ids = Vec::new();
    let requested: Option<Vec<String>> = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) if t.iter().any(|t| !t.topic_id.is_nil()) => Some(
            t.into_iter()
                .filter(|t| !t.topic_id.is_nil())
                .filter_map(|t| {
                    let name = broker.topic_name_by_id(t.topic_id.as_bytes());
                    if name.is_none() {
                        unknown_ids.push(t.topic_id);
                    }
                    name
                })
                .collect(),
        ),
        Some(t) => Some(
            t.into_iter()
                .filter_map(|t| t.name.map(|n| n.0.to_string()))
                .collect(),
        ),
    };
    let auto_create = version < 4 || req.allow_auto_topic_creation;
    let names = match requested {
        None => broker.topics(),
        Some(names) => names,
    };
    let topic_ops = if req.include_topic_authorized_operations {
        TOPIC_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    let mut topics: Vec<MetadataResponseTopic> = names
        .into_iter()
        .map(|name| {
            topic_metadata(ctx, &name, auto_create, node)
                .with_topic_authorized_operations(topic_ops)
        })
        .collect();
    topics.extend(unknown_ids.into_iter().map(|id| {
        MetadataResponseTopic::default()
            .with_error_code(UNKNOWN_TOPIC_ID)
            .with_name(None)
            .with_topic_id(id)
            .with_topic_authorized_operations(topic_ops)
    }));
    let cluster_ops = if req.include_cluster_authorized_operations {
        CLUSTER_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    let response = MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(node))
                .with_host(StrBytes::from_string(host.to_string()))
                .with_port(i32::from(port)),
        ])
        .with_cluster_id(Some(StrBytes::from_string(ctx.config.cluster_id.clone())))
        .with_controller_id(BrokerId(node))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops);
    Outcome::Respond(ResponseKind::Metadata(response))
}

fn topic_metadata(ctx: &Ctx, name: &str, auto_create: bool, node: i32) -> MetadataResponseTopic {
    let broker = &ctx.broker;
    let topic = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))));
    let exists = if auto_create {
        broker.ensure_topic(name)
    } else {
        Ok(broker.topics().iter().any(|t| t == name))
    };
    let desc = match exists {
        Ok(true) => broker.describe(name),
        Ok(false) => Err(Error::UnknownTopicOrPartition(name.to_string())),
        Err(e) => Err(e),
    };
    match desc {
        Ok(d) => topic
            .with_topic_id(uuid::Uuid::from_bytes(d.id))
            .with_partitions(
                d.partitions
                    .iter()
                    .map(|p| {
                        MetadataResponsePartition::default()
                            .with_partition_index(p.partition)
                            .with_leader_id(BrokerId(node))
                            .with_leader_epoch(-1)
                            .with_replica_nodes(vec![BrokerId(node)])
                            .with_isr_nodes(vec![BrokerId(node)])
                    })
                    .collect(),
            ),
        Err(e) => topic.with_error_code(e.kafka_code()),
    }
}
