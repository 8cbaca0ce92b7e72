//! The allow/deny matrix over the wire: for each API, the ACL it needs (Kafka's `KafkaApis`),
//! and per cell three states of `User:ANONYMOUS` on the "user" server (`common::acl`): no ACL
//! (refused with Kafka's exact code), an ALLOW of the operation on the resource (not refused),
//! and that ALLOW plus a DENY for `User:*` (refused again: deny wins). Each cell has resources
//! of its own, so the cells do not see each other's ACLs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use thorstream::TopicConfig;

use common::acl::*;
use common::requests::{batch, produce_request, topic_name};

/// One cell: the API (`call` returns the code that answers the authorization), the ACL that
/// allows it, and the code it is refused with.
struct Cell {
    api: &'static str,
    rt: i8,
    resource: &'static str,
    op: i8,
    refused: i16,
    call: fn(&mut Client) -> i16,
}

fn group(name: &str) -> GroupId {
    GroupId(s(name))
}

fn txn_id(name: &str) -> TransactionalId {
    TransactionalId(s(name))
}

/// Topics the cells need to exist, one partition each.
const TOPICS: &[&str] = &[
    "lo", "oc", "cp", "dr", "dc", "ac", "iac", "dp", "ap", "dt", "od", "toc",
];

const CELLS: &[Cell] = &[
    Cell {
        api: "ListOffsets",
        rt: TOPIC,
        resource: "lo",
        op: DESCRIBE,
        refused: TOPIC_AUTHORIZATION_FAILED,
        call: |c| {
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(topic_name("lo"))
                        .with_partitions(vec![
                            ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(-1),
                        ]),
                ]);
            let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req);
            r.topics[0].partitions[0].error_code
        },
    },
    Cell {
        api: "OffsetCommit (group)",
        rt: GROUP,
        resource: "g-oc",
        op: READ,
        refused: GROUP_AUTHORIZATION_FAILED,
        call: |c| offset_commit(c, "g-oc", "oc"),
    },
    Cell {
        api: "OffsetCommit (topic)",
        rt: TOPIC,
        resource: "oc",
        op: READ,
        refused: TOPIC_AUTHORIZATION_FAILED,
        // The group is readable by everyone (set up in the test).
        call: |c| offset_commit(c, "g-open", "oc"),
    },
    Cell {
        api: "OffsetFetch",
        rt: GROUP,
        resource: "g-of",
        op: DESCRIBE,
        refused: GROUP_AUTHORIZATION_FAILED,
        call: |c| {
            let req = OffsetFetchRequest::default()
                .with_group_id(group("g-of"))
                .with_topics(None);
            let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &req);
            r.error_code
        },
    },
    Cell {
        api: "FindCoordinator (group)",
        rt: GROUP,
        resource: "g-fc",
        op: DESCRIBE,
        refused: GROUP_AUTHORIZATION_FAILED,
        call: |c| find_coordinator(c, 0, "g-fc"),
    },
    Cell {
        api: "FindCoordinator (transaction)",
        rt: TRANSACTIONAL_ID,
        resource: "tx-fc",
        op: DESCRIBE,
        refused: TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        call: |c| find_coordinator(c, 1, "tx-fc"),
    },
    Cell {
        api: "JoinGroup",
        rt: GROUP,
        resource: "g-j",
        op: READ,
        refused: GROUP_AUTHORIZATION_FAILED,
        call: |c| {
            let req = JoinGroupRequest::default()
                .with_group_id(group("g-j"))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(s("range"))
                        .with_metadata(Bytes::new()),
                ]);
            let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &req);
            r.error_code
        },
    },
    Cell {
        api: "SyncGroup",
        rt: GROUP,
        resource: "g-s",
        op: READ,
        refused: GROUP_AUTHORIZATION_FAILED,
        call: |c| {
            let req = SyncGroupRequest::default()
                .with_group_id(group("g-s"))
                .with_member_id(s("nobody"));
            let r: SyncGroupResponse = c.call(ApiKey::SyncGroup, 3, &req);
            r.error_code
        },
    },
    Cell {
        api: "Heartbeat",
        rt: GROUP,
        resource: "g-h",
        op: READ,
        refused: GROUP_AUTHORIZATION_FAILED,
        call: |c| {
            let req = HeartbeatRequest::default()
                .with_group_id(group("g-h"))
                .with_member_id(s("nobody"));
            let r: HeartbeatResponse = c.call(ApiKey::Heartbeat, 3, &req);
            r.error_code
        },
    },
    Cell {
        api: "LeaveGroup",
        rt: GROUP,
        resource: "g-l",
        op: READ,
        refused: GROUP_AUTHORIZATION_FAILED,
        call: |c| {
            let req = LeaveGroupRequest::default()
                .with_group_id(group("g-l"))
                .with_members(vec![MemberIdentity::default().with_member_id(s("nobody"))]);
            let r: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, 4, &req);
            r.error_code
        },
    },
    Cell {
        api: "DescribeGroups",
        rt: GROUP,
        resource: "g-d",
        op: DESCRIBE,
        refused: GROUP_AUTHORIZATION_FAILED,
        call: |c| {
            let req = DescribeGroupsRequest::default().with_groups(vec![group("g-d")]);
            let r: DescribeGroupsResponse = c.call(ApiKey::DescribeGroups, 5, &req);
            r.groups[0].error_code
        },
    },
    Cell {
        api: "DeleteGroups",
        rt: GROUP,
        resource: "g-del",
        op: DELETE,
        refused: GROUP_AUTHORIZATION_FAILED,
        call: |c| {
            let req = DeleteGroupsRequest::default().with_groups_names(vec![group("g-del")]);
            let r: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, 2, &req);
            r.results[0].error_code
        },
    },
    Cell {
        api: "OffsetDelete",
        rt: GROUP,
        resource: "g-od",
        op: DELETE,
        refused: GROUP_AUTHORIZATION_FAILED,
        call: |c| {
            let req = OffsetDeleteRequest::default()
                .with_group_id(group("g-od"))
                .with_topics(vec![
                    OffsetDeleteRequestTopic::default()
                        .with_name(topic_name("od"))
                        .with_partitions(vec![
                            OffsetDeleteRequestPartition::default().with_partition_index(0),
                        ]),
                ]);
            let r: OffsetDeleteResponse = c.call(ApiKey::OffsetDelete, 0, &req);
            r.error_code
        },
    },
    Cell {
        api: "CreateTopics",
        rt: TOPIC,
        resource: "ct",
        op: CREATE,
        refused: TOPIC_AUTHORIZATION_FAILED,
        call: |c| {
            let req = CreateTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_validate_only(true)
                .with_topics(vec![
                    CreatableTopic::default()
                        .with_name(topic_name("ct"))
                        .with_num_partitions(1)
                        .with_replication_factor(1),
                ]);
            let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req);
            r.topics[0].error_code
        },
    },
    Cell {
        api: "DeleteTopics",
        rt: TOPIC,
        resource: "dt",
        op: DELETE,
        refused: TOPIC_AUTHORIZATION_FAILED,
        call: |c| {
            let req = DeleteTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![
                    DeleteTopicState::default().with_name(Some(topic_name("dt"))),
                ]);
            let r: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 6, &req);
            r.responses[0].error_code
        },
    },
    Cell {
        api: "CreatePartitions",
        rt: TOPIC,
        resource: "cp",
        op: ALTER,
        refused: TOPIC_AUTHORIZATION_FAILED,
        call: |c| {
            let req = CreatePartitionsRequest::default()
                .with_timeout_ms(5000)
                .with_validate_only(true)
                .with_topics(vec![
                    CreatePartitionsTopic::default()
                        .with_name(topic_name("cp"))
                        .with_count(2)
                        .with_assignments(None),
                ]);
            let r: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 3, &req);
            r.results[0].error_code
        },
    },
    Cell {
        api: "DeleteRecords",
        rt: TOPIC,
        resource: "dr",
        op: DELETE,
        refused: TOPIC_AUTHORIZATION_FAILED,
        call: |c| {
            let req = DeleteRecordsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![
                    DeleteRecordsTopic::default()
                        .with_name(topic_name("dr"))
                        .with_partitions(vec![
                            DeleteRecordsPartition::default()
                                .with_partition_index(0)
                                .with_offset(0),
                        ]),
                ]);
            let r: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, 2, &req);
            r.topics[0].partitions[0].error_code
        },
    },
    Cell {
        api: "DescribeConfigs",
        rt: TOPIC,
        resource: "dc",
        op: DESCRIBE_CONFIGS,
        refused: TOPIC_AUTHORIZATION_FAILED,
        call: |c| describe_configs(c, 2, "dc"),
    },
    Cell {
        api: "DescribeConfigs (broker)",
        rt: CLUSTER,
        resource: "kafka-cluster",
        op: DESCRIBE_CONFIGS,
        refused: CLUSTER_AUTHORIZATION_FAILED,
        call: |c| describe_configs(c, 4, "0"),
    },
    Cell {
        api: "AlterConfigs",
        rt: TOPIC,
        resource: "ac",
        op: ALTER_CONFIGS,
        refused: TOPIC_AUTHORIZATION_FAILED,
        call: |c| {
            let req = AlterConfigsRequest::default()
                .with_validate_only(true)
                .with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("ac"))
                        .with_configs(vec![
                            AlterableConfig::default()
                                .with_name(s("retention.ms"))
                                .with_value(Some(s("1000"))),
                        ]),
                ]);
            let r: AlterConfigsResponse = c.call(ApiKey::AlterConfigs, 2, &req);
            r.responses[0].error_code
        },
    },
    Cell {
        api: "IncrementalAlterConfigs",
        rt: TOPIC,
        resource: "iac",
        op: ALTER_CONFIGS,
        refused: TOPIC_AUTHORIZATION_FAILED,
        call: |c| {
            use kafka_protocol::messages::incremental_alter_configs_request as iac;
            let req = IncrementalAlterConfigsRequest::default()
                .with_validate_only(true)
                .with_resources(vec![
                    iac::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("iac"))
                        .with_configs(vec![
                            iac::AlterableConfig::default()
                                .with_name(s("retention.ms"))
                                .with_config_operation(0)
                                .with_value(Some(s("1000"))),
                        ]),
                ]);
            let r: IncrementalAlterConfigsResponse =
                c.call(ApiKey::IncrementalAlterConfigs, 1, &req);
            r.responses[0].error_code
        },
    },
    Cell {
        api: "DescribeProducers",
        rt: TOPIC,
        resource: "dp",
        op: READ,
        refused: TOPIC_AUTHORIZATION_FAILED,
        call: |c| {
            let req = DescribeProducersRequest::default().with_topics(vec![
                TopicRequest::default()
                    .with_name(topic_name("dp"))
                    .with_partition_indexes(vec![0]),
            ]);
            let r: DescribeProducersResponse = c.call(ApiKey::DescribeProducers, 0, &req);
            r.topics[0].partitions[0].error_code
        },
    },
    Cell {
        api: "InitProducerId (idempotent)",
        rt: CLUSTER,
        resource: "kafka-cluster",
        op: IDEMPOTENT_WRITE,
        refused: CLUSTER_AUTHORIZATION_FAILED,
        call: |c| init_producer_id(c, None),
    },
    Cell {
        api: "InitProducerId (transactional)",
        rt: TRANSACTIONAL_ID,
        resource: "tx-i",
        op: WRITE,
        refused: TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        call: |c| init_producer_id(c, Some("tx-i")),
    },
    Cell {
        api: "AddPartitionsToTxn",
        rt: TRANSACTIONAL_ID,
        resource: "tx-ap",
        op: WRITE,
        refused: TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        call: |c| {
            let req = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txn_id("tx-ap"))
                .with_v3_and_below_producer_id(ProducerId(1))
                .with_v3_and_below_producer_epoch(0)
                .with_v3_and_below_topics(vec![
                    AddPartitionsToTxnTopic::default()
                        .with_name(topic_name("ap"))
                        .with_partitions(vec![0]),
                ]);
            let r: AddPartitionsToTxnResponse = c.call(ApiKey::AddPartitionsToTxn, 3, &req);
            r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
        },
    },
    Cell {
        api: "AddOffsetsToTxn",
        rt: TRANSACTIONAL_ID,
        resource: "tx-ao",
        op: WRITE,
        refused: TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        call: |c| add_offsets_to_txn(c, "tx-ao", "g-open"),
    },
    Cell {
        api: "AddOffsetsToTxn (group)",
        rt: GROUP,
        resource: "g-ao",
        op: READ,
        refused: GROUP_AUTHORIZATION_FAILED,
        // The transactional id is writable by everyone (set up in the test).
        call: |c| add_offsets_to_txn(c, "tx-open", "g-ao"),
    },
    Cell {
        api: "EndTxn",
        rt: TRANSACTIONAL_ID,
        resource: "tx-e",
        op: WRITE,
        refused: TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        call: |c| {
            let req = EndTxnRequest::default()
                .with_transactional_id(txn_id("tx-e"))
                .with_producer_id(ProducerId(1))
                .with_producer_epoch(0)
                .with_committed(true);
            let r: EndTxnResponse = c.call(ApiKey::EndTxn, 3, &req);
            r.error_code
        },
    },
    Cell {
        api: "TxnOffsetCommit",
        rt: TRANSACTIONAL_ID,
        resource: "tx-toc",
        op: WRITE,
        refused: TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        call: |c| {
            let req = TxnOffsetCommitRequest::default()
                .with_transactional_id(txn_id("tx-toc"))
                .with_group_id(group("g-open"))
                .with_producer_id(ProducerId(1))
                .with_producer_epoch(0)
                .with_topics(vec![
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(topic_name("toc"))
                        .with_partitions(vec![
                            TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(0),
                        ]),
                ]);
            let r: TxnOffsetCommitResponse = c.call(ApiKey::TxnOffsetCommit, 3, &req);
            r.topics[0].partitions[0].error_code
        },
    },
    Cell {
        api: "DescribeTransactions",
        rt: TRANSACTIONAL_ID,
        resource: "tx-d",
        op: DESCRIBE,
        refused: TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        call: |c| {
            let req =
                DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id("tx-d")]);
            let r: DescribeTransactionsResponse = c.call(ApiKey::DescribeTransactions, 0, &req);
            r.transaction_states[0].error_code
        },
    },
];

fn offset_commit(c: &mut Client, g: &str, topic: &str) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(group(g))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(0),
                ]),
        ]);
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &req);
    r.topics[0].partitions[0].error_code
}

fn find_coordinator(c: &mut Client, key_type: i8, key: &str) -> i16 {
    let req = FindCoordinatorRequest::default()
        .with_key_type(key_type)
        .with_coordinator_keys(vec![s(key)]);
    let r: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 4, &req);
    r.coordinators[0].error_code
}

fn describe_configs(c: &mut Client, resource_type: i8, name: &str) -> i16 {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configuration_keys(None),
    ]);
    let r: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &req);
    r.results[0].error_code
}

fn init_producer_id(c: &mut Client, txn: Option<&str>) -> i16 {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(txn.map(txn_id))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r: InitProducerIdResponse = c.call(ApiKey::InitProducerId, 4, &req);
    r.error_code
}

fn add_offsets_to_txn(c: &mut Client, txn: &str, g: &str) -> i16 {
    let req = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id(txn))
        .with_producer_id(ProducerId(1))
        .with_producer_epoch(0)
        .with_group_id(group(g));
    let r: AddOffsetsToTxnResponse = c.call(ApiKey::AddOffsetsToTxn, 3, &req);
    r.error_code
}

#[test]
fn every_api_refuses_without_its_acl_allows_with_it_and_deny_wins() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(dir.path(), |_| {});
    for t in TOPICS {
        cluster
            .broker
            .create_topic(t, Some(TopicConfig::with_partitions(1)))
            .unwrap();
    }
    let mut admin = cluster.admin();
    // What the cells that check a second resource need allowed on the first.
    allow(&mut admin, GROUP, "g-open", LITERAL, READ);
    allow(&mut admin, TRANSACTIONAL_ID, "tx-open", LITERAL, WRITE);
    let mut user = cluster.user();
    let mut failures = Vec::new();
    for cell in CELLS {
        let refused = (cell.call)(&mut user);
        allow(&mut admin, cell.rt, cell.resource, LITERAL, cell.op);
        let allowed = (cell.call)(&mut user);
        deny_everyone(&mut admin, cell.rt, cell.resource, LITERAL, cell.op);
        let denied = (cell.call)(&mut user);
        if refused != cell.refused || allowed == cell.refused || denied != cell.refused {
            failures.push(format!(
                "{}: no ACL {refused}, allowed {allowed}, denied {denied} (refusal {})",
                cell.api, cell.refused
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The super user was never refused: e.g. it may still produce to a denied topic.
    let r: ProduceResponse = admin.call(
        ApiKey::Produce,
        9,
        &produce_request("dp", 0, Some(Bytes::from(batch(&[b"v"]))), 1),
    );
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
}

#[test]
fn write_on_any_topic_stands_in_for_idempotent_write() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(dir.path(), |_| {});
    let mut user = cluster.user();
    assert_eq!(
        init_producer_id(&mut user, None),
        CLUSTER_AUTHORIZATION_FAILED
    );
    allow(&mut cluster.admin(), TOPIC, "some-", PREFIXED, WRITE);
    assert_eq!(init_producer_id(&mut user, None), 0);
}
