//! DescribeLogDirs (v0..v4; kafka-log-dirs, UIs, AdminClient.describeLogDirs): the one log
//! directory, the data directory, with each partition's stored size; offset lag 0 and no
//! future replicas (there is one replica, the log itself); from v4 the file system's total and
//! usable bytes (-1 when the OS cannot tell, the field's default). As Kafka, `topics` null
//! describes every partition and a requested partition the broker does not hold is left out.
//! Needs Describe on the cluster (else CLUSTER_AUTHORIZATION_FAILED and no directories, as
//! Kafka).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{Ctx, Outcome, authz};
use crate::error::AuthzError;
use crate::security::acl::{AclOperation, ResourceType};
use crate::server::session::Caller;

pub fn handle(ctx: &Ctx, req: DescribeLogDirsRequest, caller: &Caller) -> Outcome {
    let cluster = authz::CLUSTER_NAME;
    if !authz::allowed(
        ctx,
        caller,
        AclOperation::Describe,
        ResourceType::Cluster,
        cluster,
    ) {
        return Outcome::Respond(ResponseKind::DescribeLogDirs(
            DescribeLogDirsResponse::default()
                .with_error_code(AuthzError::ClusterAuthorizationFailed.code()),
        ));
    }
    let wanted: Option<HashSet<(String, i32)>> = req.topics.map(|ts| {
        ts.iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.iter().map(move |p| (name.clone(), *p))
            })
            .collect()
    });
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for p in ctx.broker.partition_sizes() {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.contains(&(p.topic.clone(), p.partition)))
        {
            continue;
        }
        topics.entry(p.topic).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(p.partition)
                .with_partition_size(i64::try_from(p.size_bytes).unwrap_or(i64::MAX))
                .with_offset_lag(0)
                .with_is_future_key(false),
        );
    }
    let dir = &ctx.broker.config().data_dir;
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    let space = ctx.broker.log_dir_space();
    let bytes = |b: u64| i64::try_from(b).unwrap_or(i64::MAX);
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    DescribeLogDirsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_total_bytes(space.map_or(-1, |s| bytes(s.total_bytes)))
        .with_usable_bytes(space.map_or(-1, |s| bytes(s.usable_bytes)));
    Outcome::Respond(ResponseKind::DescribeLogDirs(
        DescribeLogDirsResponse::default().with_results(vec![result]),
    ))
}
