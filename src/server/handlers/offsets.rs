//! FindCoordinator, OffsetCommit, OffsetFetch. Commits are fenced by the group coordinator
//! (`GroupService::validate_commit`): a member commits with its current generation and member
//! id; a simple commit (generation -1, no member id, from `assign()` consumers and admin
//! tools) is accepted only while the group has no members, as Kafka does.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::Outcome;
use crate::server::worker::Ctx;

pub fn find_coordinator(ctx: &Ctx, version: i16, req: FindCoordinatorRequest) -> Outcome {
    let node = ctx.broker.node_id();
    let host = StrBytes::from_string(ctx.config.advertised_host.clone());
    let port = i32::from(ctx.config.advertised_port);
    let mut resp = FindCoordinatorResponse::default();
    if version >= 4 {
        resp = resp.with_coordinators(
            req.coordinator_keys
                .iter()
                .map(|k| {
                    Coordinator::default()
                        .with_key(k.clone())
                        .with_node_id(BrokerId(node))
                        .with_host(host.clone())
                        .with_port(port)
                })
                .collect(),
        );
    } else {
        resp = resp
            .with_node_id(BrokerId(node))
            .with_host(host)
            .with_port(port);
    }
    Outcome::Respond(ResponseKind::FindCoordinator(resp))
}

pub fn offset_commit(ctx: &Ctx, req: OffsetCommitRequest) -> Outcome {
    let group = req.group_id.0.to_string();
    let instance_id = req
        .group_instance_id
        .as_ref()
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty());
    let fenced = ctx.broker.groups().validate_commit(
        &group,
        &req.member_id,
        instance_id.as_deref(),
        req.generation_id_or_member_epoch,
    );
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let code = if let Err(e) = &fenced {
                                e.code()
                            } else {
                                match ctx.broker.commit_offset(
                                    &group,
                                    &name,
                                    p.partition_index,
                                    p.committed_offset,
                                    p.committed_metadata.as_ref().map(|m| m.to_string()),
                                ) {
                                    Ok(()) => crate::error::NO_ERROR_CODE,
                                    Err(e) => e.kafka_code(),
                                }
                            };
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    Outcome::Respond(ResponseKind::OffsetCommit(
        OffsetCommitResponse::default().with_topics(topics),
    ))
}

pub fn offset_fetch(ctx: &Ctx, _version: i16, req: OffsetFetchRequest) -> Outcome {
    let group = req.group_id.0.to_string();
    let wanted: Vec<(String, Vec<i32>)> = match &req.topics {
        Some(topics) => topics
            .iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect(),
        None => {
            let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
            for ((t, p), _) in ctx.broker.group_offsets(&group) {
                by_topic.entry(t).or_default().push(p);
            }
            by_topic.into_iter().collect()
        }
    };
    let topics = wanted
        .into_iter()
        .map(|(name, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.clone())))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|p| {
                            let c = ctx.broker.committed_offset(&group, &name, p);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(c.as_ref().map_or(-1, |c| c.offset))
                                .with_committed_leader_epoch(-1)
                                .with_metadata(Some(StrBytes::from_string(
                                    c.and_then(|c| c.metadata).unwrap_or_default(),
                                )))
                        })
                        .collect(),
                )
        })
        .collect();
    Outcome::Respond(ResponseKind::OffsetFetch(
        OffsetFetchResponse::default().with_topics(topics),
    ))
}
