//! Well-formed requests for every implemented API, the starting point of mutations: shared by
//! `tests/hostile_input.rs` (mutated over TCP) and the fuzz seed generator
//! (`fuzz/examples/gen_corpus.rs`, which includes this file by path).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use thorstream::Record;

pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn batch(values: &[&[u8]]) -> Vec<u8> {
    let recs: Vec<Record> = values.iter().map(|v| Record::new(v.to_vec())).collect();
    thorstream::internals::protocol::records::encode_batch(&recs, 1_700_000_000_000).unwrap()
}

pub fn produce_request(
    topic: &str,
    partition: i32,
    records: Option<Bytes>,
    acks: i16,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(records),
                ]),
        ])
}

/// A Fetch of one partition from `offset`, `max_bytes` for the request and the partition.
pub fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    min_bytes: i32,
    max_wait_ms: i32,
    max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(max_bytes),
                ]),
        ])
}

pub fn encoded<T: Encodable + Default>(req: T, version: i16) -> Option<Vec<u8>> {
    let mut b = BytesMut::new();
    if req.encode(&mut b, version).is_ok() {
        return Some(b.to_vec());
    }
    // A field this version cannot carry: fall back to the default request.
    let mut b = BytesMut::new();
    T::default()
        .encode(&mut b, version)
        .ok()
        .map(|()| b.to_vec())
}

/// A well-formed body of `api` at `version`, aimed at the fixture's topic `t` (or at names that
/// do not exist, for destructive APIs). `None` for APIs this test does not know yet: those get
/// random bodies only.
pub fn valid_body(api: ApiKey, version: i16) -> Option<Vec<u8>> {
    let group = || GroupId(StrBytes::from_static_str("hostile-group"));
    match api {
        ApiKey::Produce => encoded(
            produce_request("t", 0, Some(Bytes::from(batch(&[b"a", b"bb"]))), 1),
            version,
        ),
        ApiKey::Fetch => encoded(fetch_request("t", 0, 0, 1, 0, 1 << 20), version),
        ApiKey::ListOffsets => encoded(
            ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(topic_name("t"))
                        .with_partitions(vec![
                            ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(0),
                        ]),
                ]),
            version,
        ),
        ApiKey::Metadata => encoded(
            MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name("t"))),
            ])),
            version,
        ),
        ApiKey::OffsetCommit => encoded(
            OffsetCommitRequest::default()
                .with_group_id(group())
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name("t"))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(1),
                        ]),
                ]),
            version,
        ),
        ApiKey::OffsetFetch => encoded(
            OffsetFetchRequest::default()
                .with_group_id(group())
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(topic_name("t"))
                        .with_partition_indexes(vec![0, 1]),
                ])),
            version,
        ),
        ApiKey::FindCoordinator => encoded(
            FindCoordinatorRequest::default()
                .with_key(StrBytes::from_static_str("hostile-group"))
                .with_coordinator_keys(vec![StrBytes::from_static_str("hostile-group")]),
            version,
        ),
        ApiKey::ApiVersions => encoded(ApiVersionsRequest::default(), version),
        ApiKey::CreateTopics => encoded(
            CreateTopicsRequest::default()
                .with_timeout_ms(1000)
                .with_topics(vec![
                    CreatableTopic::default()
                        .with_name(topic_name("hostile-created"))
                        .with_num_partitions(1)
                        .with_replication_factor(1),
                ]),
            version,
        ),
        ApiKey::DeleteTopics => encoded(
            DeleteTopicsRequest::default()
                .with_timeout_ms(1000)
                .with_topic_names(vec![topic_name("no-such-topic")]),
            version,
        ),
        ApiKey::DeleteRecords => encoded(
            DeleteRecordsRequest::default()
                .with_timeout_ms(1000)
                .with_topics(vec![
                    DeleteRecordsTopic::default()
                        .with_name(topic_name("no-such-topic"))
                        .with_partitions(vec![
                            DeleteRecordsPartition::default()
                                .with_partition_index(0)
                                .with_offset(0),
                        ]),
                ]),
            version,
        ),
        ApiKey::DescribeConfigs => encoded(
            DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("t")),
            ]),
            version,
        ),
        ApiKey::CreatePartitions => encoded(
            CreatePartitionsRequest::default()
                .with_timeout_ms(1000)
                .with_topics(vec![
                    CreatePartitionsTopic::default()
                        .with_name(topic_name("no-such-topic"))
                        .with_count(3),
                ]),
            version,
        ),
        ApiKey::DescribeCluster => encoded(DescribeClusterRequest::default(), version),
        ApiKey::InitProducerId => encoded(
            InitProducerIdRequest::default().with_transaction_timeout_ms(1000),
            version,
        ),
        ApiKey::DescribeLogDirs => encoded(
            DescribeLogDirsRequest::default().with_topics(Some(vec![
                describe_log_dirs_request::DescribableLogDirTopic::default()
                    .with_topic(topic_name("t"))
                    .with_partitions(vec![0, 1]),
            ])),
            version,
        ),
        ApiKey::DescribeProducers => encoded(
            DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(topic_name("t"))
                    .with_partition_indexes(vec![0, 1]),
            ]),
            version,
        ),
        ApiKey::JoinGroup => encoded(
            JoinGroupRequest::default()
                .with_group_id(group())
                .with_session_timeout_ms(6000)
                .with_rebalance_timeout_ms(1000)
                .with_protocol_type(StrBytes::from_static_str("consumer")),
            version,
        ),
        ApiKey::SyncGroup => encoded(SyncGroupRequest::default().with_group_id(group()), version),
        ApiKey::Heartbeat => encoded(HeartbeatRequest::default().with_group_id(group()), version),
        ApiKey::LeaveGroup => encoded(LeaveGroupRequest::default().with_group_id(group()), version),
        ApiKey::DescribeGroups => encoded(
            DescribeGroupsRequest::default().with_groups(vec![group()]),
            version,
        ),
        ApiKey::ListGroups => encoded(ListGroupsRequest::default(), version),
        ApiKey::DeleteGroups => encoded(
            DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(StrBytes::from_static_str("no-such-group"))]),
            version,
        ),
        ApiKey::OffsetDelete => encoded(
            OffsetDeleteRequest::default().with_group_id(group()),
            version,
        ),
        // Without an authorizer these answer SECURITY_DISABLED; the bodies still exercise the
        // decoder and the handlers' validation.
        ApiKey::CreateAcls => encoded(
            CreateAclsRequest::default().with_creations(vec![
                create_acls_request::AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("t"))
                    .with_resource_pattern_type(3)
                    .with_principal(StrBytes::from_static_str("User:alice"))
                    .with_host(StrBytes::from_static_str("*"))
                    .with_operation(3)
                    .with_permission_type(3),
            ]),
            version,
        ),
        ApiKey::DescribeAcls => encoded(
            DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_resource_name_filter(None)
                .with_pattern_type_filter(1)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_operation(1)
                .with_permission_type(1),
            version,
        ),
        ApiKey::DeleteAcls => encoded(
            DeleteAclsRequest::default().with_filters(vec![
                delete_acls_request::DeleteAclsFilter::default()
                    .with_resource_type_filter(2)
                    .with_resource_name_filter(Some(StrBytes::from_static_str("no-such-topic")))
                    .with_pattern_type_filter(3)
                    .with_operation(1)
                    .with_permission_type(1),
            ]),
            version,
        ),
        _ => None,
    }
}
