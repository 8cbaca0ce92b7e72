//! Metadata: brokers (just us), topics, partitions; auto-creates requested topics when allowed.
//! Lists only the topics the caller may Describe; the authorized-operations fields come from
//! the authorizer (every supported operation without one).

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use super::Outcome;
use super::authz::{self, CLUSTER_NAME};
use crate::error::{AuthzError, Error};
use crate::security::acl::{AclOperation, ResourceType};
use crate::server::session::Caller;

const UNKNOWN_TOPIC_ID: i16 = kafka_protocol::error::ResponseError::UnknownTopicId.code();

/// Kafka's "authorized operations not requested" value.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
const TOPIC_AUTHORIZATION_FAILED: i16 = AuthzError::TopicAuthorizationFailed.code();
/// The last Metadata version whose response carries the cluster's authorized operations
/// (KIP-700 moved them to DescribeCluster).
const CLUSTER_OPERATIONS_VERSION_MAX: i16 = 10;

pub fn handle(ctx: &Ctx, version: i16, req: MetadataRequest, caller: &Caller) -> Outcome {
    let (host, port) = ctx.advertised(caller);
    let broker = &ctx.broker;
    let node = broker.node_id();
    // v0: an empty list means all topics; v1+: null means all. As Kafka, topics are looked up
    // by id when any id is set (the Java admin sends `name: ""` with the id), and an unknown id
    // is answered UNKNOWN_TOPIC_ID with the id and a null name.
    let mut unknown_ids = Vec::new();
    let mut by_id = false;
    let requested: Option<Vec<String>> = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) if t.iter().any(|t| !t.topic_id.is_nil()) => {
            by_id = true;
            Some(
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
            )
        }
        Some(t) => Some(
            t.into_iter()
                .filter_map(|t| t.name.map(|n| n.0.to_string()))
                .collect(),
        ),
    };
    let all_topics = requested.is_none();
    let auto_create = version < 4 || req.allow_auto_topic_creation;
    let names = match requested {
        None => broker.topics(),
        Some(names) => names,
    };
    // Every decision first, under one read lock of the ACLs, released before a topic is
    // auto-created (which writes and fsyncs `__topics.meta`). As Kafka: a topic the caller may
    // not Describe is left out of an all-topics answer and answered TOPIC_AUTHORIZATION_FAILED
    // (without its id) when named; auto-creation needs Create on the cluster or the topic.
    let checks = authz::checks(ctx, caller);
    // Only when creating may be refused: the existing topics, which need no Create.
    let existing: Option<std::collections::BTreeSet<String>> =
        (checks.is_on() && auto_create && !checks.allows_cluster(AclOperation::Create))
            .then(|| broker.topics().into_iter().collect());
    let mut refused = Vec::new();
    let mut listed = Vec::with_capacity(names.len());
    for name in names {
        let describe = checks.allows(AclOperation::Describe, ResourceType::Topic, &name);
        let create_ok = || {
            existing.as_ref().is_none_or(|e| {
                e.contains(&name) || checks.allows(AclOperation::Create, ResourceType::Topic, &name)
            })
        };
        if !describe {
            if !all_topics {
                refused.push(name);
            }
        } else if !create_ok() {
            refused.push(name);
        } else {
            let ops = req
                .include_topic_authorized_operations
                .then(|| checks.operations(ResourceType::Topic, &name));
            listed.push((name, ops));
        }
    }
    let cluster_ops =
        if !req.include_cluster_authorized_operations || version > CLUSTER_OPERATIONS_VERSION_MAX {
            OPERATIONS_NOT_REQUESTED
        } else if checks.allows_cluster(AclOperation::Describe) {
            checks.operations(ResourceType::Cluster, CLUSTER_NAME)
        } else {
            0
        };
    drop(checks);
    let topic_ops = |ops: Option<i32>| ops.unwrap_or(OPERATIONS_NOT_REQUESTED);
    let mut topics: Vec<MetadataResponseTopic> = listed
        .into_iter()
        .map(|(name, ops)| {
            topic_metadata(ctx, &name, auto_create, node)
                .with_topic_authorized_operations(topic_ops(ops))
        })
        .collect();
    topics.extend(unknown_ids.into_iter().map(|id| {
        MetadataResponseTopic::default()
            .with_error_code(UNKNOWN_TOPIC_ID)
            .with_name(None)
            .with_topic_id(id)
            .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
    }));
    topics.extend(refused.into_iter().map(|name| {
        let t = MetadataResponseTopic::default().with_error_code(TOPIC_AUTHORIZATION_FAILED);
        if by_id {
            // Topic ids are not secret (Kafka answers them); the name is.
            let id = broker.describe(&name).map(|d| d.id).unwrap_or_default();
            t.with_name(None).with_topic_id(uuid::Uuid::from_bytes(id))
        } else {
            t.with_name(Some(TopicName(StrBytes::from_string(name))))
        }
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
    }));
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
