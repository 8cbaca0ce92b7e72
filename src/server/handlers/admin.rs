//! Admin APIs: CreateTopics, DeleteTopics, CreatePartitions, DescribeCluster, DeleteRecords
//! (the config APIs are in `configs.rs`).
//!
//! Authorization (Kafka's `KafkaApis`): CreateTopics needs Create on the cluster or the topic
//! (and DescribeConfigs on the topic to see its configs in the answer), DeleteTopics Delete on
//! the cluster or the topic (Describe first, so a refusal tells nothing of existence),
//! CreatePartitions Alter, DeleteRecords Delete;
//! a refusal answers TOPIC_AUTHORIZATION_FAILED for that topic. DescribeCluster's
//! authorized operations are the cluster's (0 without Describe on it).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{Outcome, authz, message};
use crate::config::TopicConfig;
use crate::config::broker_dynamic::describe_topic;
use crate::error::{AuthzError, Error};
use crate::security::acl::{AclOperation, ResourceType};
use crate::server::session::Caller;
use crate::server::worker::Ctx;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

const TOPIC_AUTHORIZATION_FAILED: i16 = AuthzError::TopicAuthorizationFailed.code();
/// Kafka's "authorized operations not requested".
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

fn topic_allowed(ctx: &Ctx, caller: &Caller, op: AclOperation, topic: &str) -> bool {
    authz::allowed(ctx, caller, op, ResourceType::Topic, topic)
}

/// The request's topic as `create_topic` takes it: `TopicConfig::default()` with the request's
/// counts and configs set (so exactly those are recorded as set on the topic; the broker
/// resolves the rest from its defaults).
fn topic_config_from(
    ctx: &Ctx,
    t: &create_topics_request::CreatableTopic,
) -> Result<TopicConfig, Error> {
    let mut cfg =
        TopicConfig::with_partitions(ctx.broker.config().default_topic_config.num_partitions);
    if t.num_partitions > 0 {
        cfg.num_partitions = t.num_partitions as u32;
    } else if t.num_partitions == 0 || t.num_partitions < -1 {
        return Err(Error::InvalidPartitions(format!(
            "{} partitions",
            t.num_partitions
        )));
    }
    if t.replication_factor > 0 {
        cfg.replication_factor = t.replication_factor as u16;
    } else if t.replication_factor != -1 {
        return Err(Error::InvalidReplicationFactor(0));
    }
    if !t.assignments.is_empty() {
        let node = ctx.broker.node_id();
        if t.assignments
            .iter()
            .any(|a| a.broker_ids.iter().any(|b| b.0 != node))
        {
            return Err(Error::InvalidConfig(
                "replica assignment names an unknown broker".into(),
            ));
        }
        cfg.num_partitions = t.assignments.len() as u32;
    }
    for c in &t.configs {
        match &c.value {
            Some(v) => cfg.set(&c.name, v)?,
            None => {
                return Err(Error::InvalidConfig(format!(
                    "Null value not supported for topic configs: {}",
                    c.name
                )));
            }
        }
    }
    Ok(cfg)
}

pub fn create_topics(
    ctx: &Ctx,
    _version: i16,
    req: CreateTopicsRequest,
    caller: &Caller,
) -> Outcome {
    let broker_cfg = ctx.broker.config();
    let cluster_create = authz::checks(ctx, caller).allows_cluster(AclOperation::Create);
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            if !cluster_create && !topic_allowed(ctx, caller, AclOperation::Create, &name) {
                return CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(TOPIC_AUTHORIZATION_FAILED)
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
                    .with_topic_config_error_code(TOPIC_AUTHORIZATION_FAILED);
            }
            let configs_visible = topic_allowed(ctx, caller, AclOperation::DescribeConfigs, &name);
            // `validate_only` runs the real call's admission and stops there.
            let result = topic_config_from(ctx, t).and_then(|cfg| {
                if req.validate_only {
                    crate::broker::validate_topic_name(&name)?;
                    let resolved = ctx.broker.new_topic_config(Some(cfg))?;
                    ctx.broker.admit_topic(&name, &resolved)?;
                    Ok(resolved)
                } else {
                    ctx.broker.create_topic(&name, Some(cfg))?;
                    Ok(ctx.broker.describe(&name)?.config)
                }
            });
            let base = CreatableTopicResult::default().with_name(t.name.clone());
            match result {
                Ok(_) if !configs_visible => {
                    let id = ctx.broker.describe(&name).map(|d| d.id).unwrap_or([0; 16]);
                    base.with_topic_id(uuid::Uuid::from_bytes(id))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                        .with_topic_config_error_code(TOPIC_AUTHORIZATION_FAILED)
                }
                Ok(cfg) => {
                    let id = ctx.broker.describe(&name).map(|d| d.id).unwrap_or([0; 16]);
                    base.with_topic_id(uuid::Uuid::from_bytes(id))
                        .with_num_partitions(cfg.num_partitions as i32)
                        .with_replication_factor(cfg.replication_factor as i16)
                        .with_configs(Some(
                            describe_topic(
                                &cfg,
                                &broker_cfg.default_topic_config,
                                &ctx.broker.dynamic_configs(),
                                broker_cfg.fsync,
                            )
                            .into_iter()
                            .map(|e| {
                                CreatableTopicConfigs::default()
                                    .with_name(s(e.name))
                                    .with_value(e.value.map(s))
                                    .with_config_source(e.source)
                                    .with_read_only(e.read_only)
                            })
                            .collect(),
                        ))
                }
                Err(e) => base
                    .with_error_code(e.kafka_code())
                    .with_error_message(message(&e))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    Outcome::Respond(ResponseKind::CreateTopics(
        CreateTopicsResponse::default().with_topics(topics),
    ))
}

pub fn delete_topics(
    ctx: &Ctx,
    version: i16,
    req: DeleteTopicsRequest,
    caller: &Caller,
) -> Outcome {
    let mut targets: Vec<(Option<String>, uuid::Uuid)> = req
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    if version >= 6 {
        targets = req
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect();
    }
    let cluster_delete = authz::checks(ctx, caller).allows_cluster(AclOperation::Delete);
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let by_id = name.is_none();
            let name = name.or_else(|| ctx.broker.topic_name_by_id(id.as_bytes()));
            if let Some(n) = &name {
                // As Kafka's controller: Delete on the cluster covers every topic; a topic the
                // caller may not Describe is refused (nameless when named by id) before its
                // existence is told; an existing one needs Delete.
                let describable =
                    cluster_delete || topic_allowed(ctx, caller, AclOperation::Describe, n);
                let refused = if !describable {
                    true
                } else if !by_id && ctx.broker.partition_count(n).is_err() {
                    false
                } else {
                    !cluster_delete && !topic_allowed(ctx, caller, AclOperation::Delete, n)
                };
                if refused {
                    return DeletableTopicResult::default()
                        .with_name((describable || !by_id).then(|| TopicName(s(n.clone()))))
                        .with_topic_id(id)
                        .with_error_code(TOPIC_AUTHORIZATION_FAILED);
                }
            }
            let result = match &name {
                Some(n) => ctx.broker.delete_topic(n),
                None => Err(Error::UnknownTopicOrPartition(id.to_string())),
            };
            let base = DeletableTopicResult::default()
                .with_name(name.map(|n| TopicName(s(n))))
                .with_topic_id(id);
            match result {
                Ok(()) => base,
                Err(e) => base
                    .with_error_code(e.kafka_code())
                    .with_error_message(message(&e)),
            }
        })
        .collect();
    Outcome::Respond(ResponseKind::DeleteTopics(
        DeleteTopicsResponse::default().with_responses(responses),
    ))
}

pub fn create_partitions(ctx: &Ctx, req: CreatePartitionsRequest, caller: &Caller) -> Outcome {
    let results = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let result = if !topic_allowed(ctx, caller, AclOperation::Alter, &name) {
                return CreatePartitionsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(TOPIC_AUTHORIZATION_FAILED)
                    .with_error_message(Some(s("The topic authorization is failed.")));
            } else if t.count <= 0 {
                Err(Error::InvalidPartitions(format!("{} partitions", t.count)))
            } else if req.validate_only {
                // The real call's admission, and nothing created.
                ctx.broker.admit_partitions(&name, t.count as u32).map(drop)
            } else {
                ctx.broker.create_partitions(&name, t.count as u32)
            };
            let base = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match result {
                Ok(()) => base,
                Err(e) => base
                    .with_error_code(e.kafka_code())
                    .with_error_message(message(&e)),
            }
        })
        .collect();
    Outcome::Respond(ResponseKind::CreatePartitions(
        CreatePartitionsResponse::default().with_results(results),
    ))
}

pub fn describe_cluster(ctx: &Ctx, req: DescribeClusterRequest, caller: &Caller) -> Outcome {
    let node = ctx.broker.node_id();
    let (host, port) = ctx.advertised(caller);
    let ops = if req.include_cluster_authorized_operations {
        let checks = authz::checks(ctx, caller);
        if checks.allows_cluster(AclOperation::Describe) {
            checks.operations(ResourceType::Cluster, authz::CLUSTER_NAME)
        } else {
            0
        }
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    Outcome::Respond(ResponseKind::DescribeCluster(
        DescribeClusterResponse::default()
            .with_cluster_authorized_operations(ops)
            .with_cluster_id(s(ctx.config.cluster_id.clone()))
            .with_controller_id(BrokerId(node))
            .with_brokers(vec![
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(node))
                    .with_host(s(host.to_string()))
                    .with_port(i32::from(port)),
            ]),
    ))
}

pub fn delete_records(ctx: &Ctx, req: DeleteRecordsRequest, caller: &Caller) -> Outcome {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let deletable = topic_allowed(ctx, caller, AclOperation::Delete, &name);
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let base = DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index);
                            if !deletable {
                                return base
                                    .with_low_watermark(-1)
                                    .with_error_code(TOPIC_AUTHORIZATION_FAILED);
                            }
                            match ctx
                                .broker
                                .delete_records(&name, p.partition_index, p.offset)
                            {
                                Ok(low) => base.with_low_watermark(low),
                                Err(e) => {
                                    base.with_low_watermark(-1).with_error_code(e.kafka_code())
                                }
                            }
                        })
                        .collect(),
                )
        })
        .collect();
    Outcome::Respond(ResponseKind::DeleteRecords(
        DeleteRecordsResponse::default().with_topics(topics),
    ))
}
