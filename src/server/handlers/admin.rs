//! Admin APIs: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
//! DescribeCluster, DeleteRecords.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{Outcome, message};
use crate::config::TopicConfig;
use crate::error::Error;
use crate::server::worker::Ctx;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const INVALID_REQUEST: i16 = kafka_protocol::error::ResponseError::InvalidRequest.code();

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn topic_config_from(
    ctx: &Ctx,
    t: &create_topics_request::CreatableTopic,
) -> Result<TopicConfig, Error> {
    let mut cfg = ctx.broker.config().default_topic_config.clone();
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
        if let Some(v) = &c.value {
            cfg.set(&c.name, v)?;
        }
    }
    cfg.validate()?;
    Ok(cfg)
}

pub fn create_topics(ctx: &Ctx, _version: i16, req: CreateTopicsRequest) -> Outcome {
    let fsync = ctx.broker.config().fsync;
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            // `validate_only` runs the real call's admission and stops there.
            let result = topic_config_from(ctx, t).and_then(|cfg| {
                if req.validate_only {
                    ctx.broker.admit_topic(&name, &cfg)?;
                } else {
                    ctx.broker.create_topic(&name, Some(cfg.clone()))?;
                }
                Ok(cfg)
            });
            let base = CreatableTopicResult::default().with_name(t.name.clone());
            match result {
                Ok(cfg) => {
                    let id = ctx.broker.describe(&name).map(|d| d.id).unwrap_or([0; 16]);
                    base.with_topic_id(uuid::Uuid::from_bytes(id))
                        .with_num_partitions(cfg.num_partitions as i32)
                        .with_replication_factor(cfg.replication_factor as i16)
                        .with_configs(Some(
                            cfg.entries(fsync)
                                .into_iter()
                                .map(|(k, v)| {
                                    CreatableTopicConfigs::default()
                                        .with_name(s(k))
                                        .with_value(Some(s(v)))
                                        .with_config_source(SOURCE_DEFAULT)
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

pub fn delete_topics(ctx: &Ctx, version: i16, req: DeleteTopicsRequest) -> Outcome {
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
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let name = name.or_else(|| ctx.broker.topic_name_by_id(id.as_bytes()));
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

pub fn create_partitions(ctx: &Ctx, req: CreatePartitionsRequest) -> Outcome {
    let results = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let result = if t.count <= 0 {
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

pub fn describe_configs(ctx: &Ctx, req: DescribeConfigsRequest) -> Outcome {
    let broker_cfg = ctx.broker.config();
    let results = req
        .resources
        .iter()
        .map(|r| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let entries: Result<Vec<(String, String, i8)>, Error> = match r.resource_type {
                RESOURCE_TOPIC => ctx.broker.describe(&r.resource_name).map(|d| {
                    let default = &broker_cfg.default_topic_config;
                    d.config
                        .entries(broker_cfg.fsync)
                        .into_iter()
                        .zip(default.entries(broker_cfg.fsync))
                        .map(|((k, v), (_, dv))| {
                            let src = if v == dv {
                                SOURCE_DEFAULT
                            } else {
                                SOURCE_DYNAMIC_TOPIC
                            };
                            (k.to_string(), v, src)
                        })
                        .collect()
                }),
                RESOURCE_BROKER => Ok(vec![
                    (
                        "log.dirs".into(),
                        broker_cfg.data_dir.display().to_string(),
                        SOURCE_STATIC_BROKER,
                    ),
                    (
                        "num.partitions".into(),
                        broker_cfg.default_topic_config.num_partitions.to_string(),
                        SOURCE_STATIC_BROKER,
                    ),
                    (
                        "auto.create.topics.enable".into(),
                        broker_cfg.auto_create_topics.to_string(),
                        SOURCE_STATIC_BROKER,
                    ),
                    (
                        "message.max.bytes".into(),
                        broker_cfg
                            .default_topic_config
                            .max_message_bytes
                            .to_string(),
                        SOURCE_STATIC_BROKER,
                    ),
                    (
                        "socket.request.max.bytes".into(),
                        ctx.config.request_bytes_max.to_string(),
                        SOURCE_STATIC_BROKER,
                    ),
                    (
                        "thorstream.fsync".into(),
                        broker_cfg.fsync.to_string(),
                        SOURCE_STATIC_BROKER,
                    ),
                    (
                        "offsets.retention.minutes".into(),
                        broker_cfg.offsets_retention_minutes.to_string(),
                        SOURCE_STATIC_BROKER,
                    ),
                    (
                        "producer.id.expiration.ms".into(),
                        broker_cfg.producer_id_expiration_ms.to_string(),
                        SOURCE_STATIC_BROKER,
                    ),
                ]),
                other => Err(Error::InvalidConfig(format!(
                    "unsupported resource type {other}"
                ))),
            };
            match entries {
                Ok(entries) => base.with_configs(
                    entries
                        .into_iter()
                        .filter(|(k, _, _)| {
                            r.configuration_keys
                                .as_ref()
                                .is_none_or(|keys| keys.iter().any(|x| &**x == k.as_str()))
                        })
                        .map(|(k, v, src)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(s(k))
                                .with_value(Some(s(v)))
                                .with_config_source(src)
                                .with_read_only(r.resource_type == RESOURCE_BROKER)
                        })
                        .collect(),
                ),
                Err(e) => {
                    let code = if matches!(e, Error::InvalidConfig(_)) {
                        INVALID_REQUEST
                    } else {
                        e.kafka_code()
                    };
                    base.with_error_code(code).with_error_message(message(&e))
                }
            }
        })
        .collect();
    Outcome::Respond(ResponseKind::DescribeConfigs(
        DescribeConfigsResponse::default().with_results(results),
    ))
}

pub fn describe_cluster(ctx: &Ctx) -> Outcome {
    let node = ctx.broker.node_id();
    Outcome::Respond(ResponseKind::DescribeCluster(
        DescribeClusterResponse::default()
            .with_cluster_id(s(ctx.config.cluster_id.clone()))
            .with_controller_id(BrokerId(node))
            .with_brokers(vec![
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(node))
                    .with_host(s(ctx.config.advertised_host.clone()))
                    .with_port(i32::from(ctx.config.advertised_port)),
            ]),
    ))
}

pub fn delete_records(ctx: &Ctx, req: DeleteRecordsRequest) -> Outcome {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let base = DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index);
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
