//! ACLs over the wire against the real server (in-process, loopback): CreateAcls, DescribeAcls
//! and DeleteAcls with their filters and Kafka's errors, persistence across a restart, and an
//! allow/deny matrix of the APIs with Kafka's error codes.
//!
//! A PLAINTEXT connection is `User:ANONYMOUS`. Two servers share one broker (so one ACL set):
//! on the "admin" server ANONYMOUS is a super user and manages the ACLs, on the "user" server
//! it is an ordinary principal whose requests the ACLs decide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use thorstream::TopicConfig;

use common::acl::*;
use common::requests::{batch, fetch_request, produce_request, topic_name};

/// Matches everything (the codec's default has empty strings, not nulls, in the filters).
fn describe_filter() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(ANY)
        .with_pattern_type_filter(ANY)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

/// Matches everything.
fn delete_filter() -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(ANY)
        .with_pattern_type_filter(ANY)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

fn describe(c: &mut Client, f: DescribeAclsRequest) -> DescribeAclsResponse {
    c.call(ApiKey::DescribeAcls, 3, &f)
}

/// (resource name, pattern type, operation) of every ACL a DescribeAcls answered.
fn described(r: &DescribeAclsResponse) -> Vec<(String, i8, i8)> {
    let mut v: Vec<(String, i8, i8)> = r
        .resources
        .iter()
        .flat_map(|res| {
            res.acls
                .iter()
                .map(|a| (res.resource_name.to_string(), res.pattern_type, a.operation))
        })
        .collect();
    v.sort();
    v
}

fn produce_code(c: &mut Client, topic: &str) -> i16 {
    let r: ProduceResponse = c.call(
        ApiKey::Produce,
        9,
        // acks=all: answered once durable, so a Fetch that follows sees the record.
        &produce_request(topic, 0, Some(Bytes::from(batch(&[b"v"]))), -1),
    );
    r.responses[0].partition_responses[0].error_code
}

fn fetch_code(c: &mut Client, topic: &str) -> i16 {
    let r: FetchResponse = c.call(
        ApiKey::Fetch,
        12,
        &fetch_request(topic, 0, 0, 1, 0, 1 << 20),
    );
    r.responses[0].partitions[0].error_code
}

fn metadata(c: &mut Client, topics: Option<&[&str]>, auto_create: bool) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(topics.map(|t| {
            t.iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect()
        }))
        .with_allow_auto_topic_creation(auto_create)
        .with_include_cluster_authorized_operations(true)
        .with_include_topic_authorized_operations(true);
    c.call(ApiKey::Metadata, 10, &req)
}

fn topic_codes(r: &MetadataResponse) -> Vec<(String, i16)> {
    r.topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                t.error_code,
            )
        })
        .collect()
}

const fn bits(ops: &[i8]) -> i32 {
    let mut v = 0;
    let mut i = 0;
    while i < ops.len() {
        v |= 1 << ops[i];
        i += 1;
    }
    v
}

#[test]
fn acl_apis_answer_security_disabled_without_an_authorizer() {
    let f = common::server::start(|_| {}, [], |_| {});
    let mut c = Client::connect(f.addr);
    assert_eq!(
        describe(&mut c, describe_filter()).error_code,
        SECURITY_DISABLED
    );
    assert_eq!(
        create(
            &mut c,
            vec![acl(TOPIC, "t", LITERAL, ANONYMOUS, READ, ALLOW)]
        ),
        [SECURITY_DISABLED]
    );
    let r: DeleteAclsResponse = c.call(
        ApiKey::DeleteAcls,
        3,
        &DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()]),
    );
    assert_eq!(r.filter_results[0].error_code, SECURITY_DISABLED);
}

#[test]
fn acl_apis_need_cluster_alter_and_describe() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(dir.path(), |_| {});
    let mut user = cluster.user();
    assert_eq!(
        create(
            &mut user,
            vec![acl(TOPIC, "t", LITERAL, ANONYMOUS, READ, ALLOW)]
        ),
        [CLUSTER_AUTHORIZATION_FAILED]
    );
    assert_eq!(
        describe(&mut user, describe_filter()).error_code,
        CLUSTER_AUTHORIZATION_FAILED
    );
    // Describe on the cluster is enough to describe, not to create.
    let mut admin = cluster.admin();
    allow(&mut admin, CLUSTER, "kafka-cluster", LITERAL, DESCRIBE);
    assert_eq!(describe(&mut user, describe_filter()).error_code, 0);
    assert_eq!(
        create(
            &mut user,
            vec![acl(TOPIC, "t", LITERAL, ANONYMOUS, READ, ALLOW)]
        ),
        [CLUSTER_AUTHORIZATION_FAILED]
    );
    let r: DeleteAclsResponse = user.call(
        ApiKey::DeleteAcls,
        3,
        &DeleteAclsRequest::default().with_filters(vec![delete_filter()]),
    );
    assert_eq!(r.filter_results[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
}

#[test]
fn create_acls_refuses_what_kafka_refuses_and_applies_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(dir.path(), |_| {});
    let mut admin = cluster.admin();
    let codes = create(
        &mut admin,
        vec![
            acl(CLUSTER, "not-the-cluster", LITERAL, ANONYMOUS, ALL, ALLOW),
            acl(TOPIC, "t", MATCH, ANONYMOUS, READ, ALLOW),
            acl(TOPIC, "t", LITERAL, "no-colon", READ, ALLOW),
            acl(TOPIC, "", LITERAL, ANONYMOUS, READ, ALLOW),
            acl(TOPIC, "t", LITERAL, ANONYMOUS, ANY, ALLOW),
            acl(TOPIC, "t", LITERAL, ANONYMOUS, READ, ANY),
            acl(0, "t", LITERAL, ANONYMOUS, READ, ALLOW),
            acl(TOPIC, "t", LITERAL, ANONYMOUS, READ, ALLOW),
            // The same binding twice is one binding.
            acl(TOPIC, "t", LITERAL, ANONYMOUS, READ, ALLOW),
        ],
    );
    assert_eq!(
        codes,
        [
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            0,
            0
        ]
    );
    // Kafka 4.4's messages for the ones it answers INVALID_REQUEST (it answers
    // UNKNOWN_SERVER_ERROR for MATCH, ANY operation and ANY permission, and closes the
    // connection for UNKNOWN codes; we answer INVALID_REQUEST to all).
    let r: CreateAclsResponse = admin.call(
        ApiKey::CreateAcls,
        3,
        &CreateAclsRequest::default().with_creations(vec![
            acl(CLUSTER, "not-the-cluster", LITERAL, ANONYMOUS, ALL, ALLOW),
            acl(TOPIC, "t", LITERAL, "no-colon", READ, ALLOW),
            acl(TOPIC, "", LITERAL, ANONYMOUS, READ, ALLOW),
        ]),
    );
    let messages: Vec<String> = r
        .results
        .iter()
        .map(|r| r.error_message.as_deref().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        messages,
        [
            "The only valid name for the CLUSTER resource is kafka-cluster",
            "Could not parse principal from `no-colon` (no colon is present separating the principal type from the principal name)",
            "Invalid empty resource name"
        ]
    );
    let r = describe(&mut admin, describe_filter());
    assert_eq!(described(&r), [("t".to_string(), LITERAL, READ)]);
    assert_eq!(r.resources[0].acls[0].principal.as_str(), ANONYMOUS);
    assert_eq!(r.resources[0].acls[0].host.as_str(), "*");
    assert_eq!(r.resources[0].acls[0].permission_type, ALLOW);
}

#[test]
fn describe_and_delete_acls_select_with_kafkas_filters() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(dir.path(), |_| {});
    let mut admin = cluster.admin();
    let codes = create(
        &mut admin,
        vec![
            acl(TOPIC, "orders", LITERAL, ANONYMOUS, READ, ALLOW),
            acl(TOPIC, "ord", PREFIXED, ANONYMOUS, WRITE, ALLOW),
            acl(TOPIC, "*", LITERAL, "User:bob", READ, DENY),
            acl(TOPIC, "other", LITERAL, ANONYMOUS, READ, ALLOW),
            acl(GROUP, "orders", LITERAL, ANONYMOUS, READ, ALLOW),
        ],
    );
    assert_eq!(codes, [0; 5]);
    let by_name = |pt: i8| {
        describe_filter()
            .with_resource_type_filter(TOPIC)
            .with_resource_name_filter(Some(s("orders")))
            .with_pattern_type_filter(pt)
    };
    // MATCH: everything that applies to the topic `orders`.
    assert_eq!(
        described(&describe(&mut admin, by_name(MATCH))),
        [
            ("*".to_string(), LITERAL, READ),
            ("ord".to_string(), PREFIXED, WRITE),
            ("orders".to_string(), LITERAL, READ)
        ]
    );
    // ANY with a name: patterns with exactly that name, of any type.
    assert_eq!(
        described(&describe(&mut admin, by_name(ANY))),
        [("orders".to_string(), LITERAL, READ)]
    );
    assert!(described(&describe(&mut admin, by_name(PREFIXED))).is_empty());
    let bob = describe(
        &mut admin,
        describe_filter().with_principal_filter(Some(s("User:bob"))),
    );
    assert_eq!(described(&bob), [("*".to_string(), LITERAL, READ)]);
    // An UNKNOWN field is refused.
    let bad = describe(&mut admin, describe_filter().with_operation(0));
    assert_eq!(bad.error_code, INVALID_REQUEST);

    let filter = |rt: i8, name: Option<&str>, pt: i8| {
        delete_filter()
            .with_resource_type_filter(rt)
            .with_resource_name_filter(name.map(s))
            .with_pattern_type_filter(pt)
    };
    let r: DeleteAclsResponse = admin.call(
        ApiKey::DeleteAcls,
        3,
        &DeleteAclsRequest::default().with_filters(vec![
            filter(TOPIC, Some("orders"), MATCH),
            filter(TOPIC, None, 0),
        ]),
    );
    assert_eq!(r.filter_results[0].error_code, 0);
    let mut deleted: Vec<String> = r.filter_results[0]
        .matching_acls
        .iter()
        .map(|a| a.resource_name.to_string())
        .collect();
    deleted.sort();
    assert_eq!(deleted, ["*", "ord", "orders"]);
    assert_eq!(r.filter_results[1].error_code, INVALID_REQUEST);
    assert_eq!(
        described(&describe(&mut admin, describe_filter())),
        [
            ("orders".to_string(), LITERAL, READ),
            ("other".to_string(), LITERAL, READ)
        ]
    );
}

#[test]
fn acls_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cluster = Cluster::open(dir.path(), |_| {});
        let mut admin = cluster.admin();
        allow(&mut admin, TOPIC, "kept", PREFIXED, READ);
        allow(&mut admin, TOPIC, "gone", LITERAL, READ);
        let r: DeleteAclsResponse = admin.call(
            ApiKey::DeleteAcls,
            3,
            &DeleteAclsRequest::default().with_filters(vec![
                delete_filter()
                    .with_resource_type_filter(TOPIC)
                    .with_resource_name_filter(Some(s("gone")))
                    .with_pattern_type_filter(LITERAL),
            ]),
        );
        assert_eq!(r.filter_results[0].matching_acls.len(), 1);
        cluster.close();
    }
    assert!(dir.path().join("__acls.meta").exists());
    let cluster = Cluster::open(dir.path(), |_| {});
    let r = describe(&mut cluster.admin(), describe_filter());
    assert_eq!(described(&r), [("kept".to_string(), PREFIXED, READ)]);
    // And they are in force: `kept-1` may be read by the ordinary user.
    cluster
        .broker
        .create_topic("kept-1", Some(TopicConfig::with_partitions(1)))
        .unwrap();
    assert_eq!(fetch_code(&mut cluster.user(), "kept-1"), 0);
}

#[test]
fn produce_and_fetch_need_write_and_read_and_deny_wins() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(dir.path(), |_| {});
    cluster
        .broker
        .create_topic("t", Some(TopicConfig::with_partitions(1)))
        .unwrap();
    let mut user = cluster.user();
    let mut admin = cluster.admin();
    assert_eq!(produce_code(&mut user, "t"), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(fetch_code(&mut user, "t"), TOPIC_AUTHORIZATION_FAILED);
    // Authorization comes before existence, as Kafka: nothing leaks about unknown topics.
    assert_eq!(produce_code(&mut user, "nope"), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(produce_code(&mut admin, "t"), 0);

    allow(&mut admin, TOPIC, "t", LITERAL, WRITE);
    assert_eq!(produce_code(&mut user, "t"), 0);
    assert_eq!(fetch_code(&mut user, "t"), TOPIC_AUTHORIZATION_FAILED);
    allow(&mut admin, TOPIC, "t", PREFIXED, READ);
    assert_eq!(fetch_code(&mut user, "t"), 0);
    // A deny for everyone on every topic wins over the allows.
    assert_eq!(
        create(
            &mut admin,
            vec![acl(TOPIC, "*", LITERAL, "User:*", WRITE, DENY)]
        ),
        [0]
    );
    assert_eq!(produce_code(&mut user, "t"), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(fetch_code(&mut user, "t"), 0);
    // Super users are not subject to ACLs.
    assert_eq!(produce_code(&mut admin, "t"), 0);
}

#[test]
fn transactional_produce_needs_write_on_the_transactional_id() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(dir.path(), |_| {});
    cluster
        .broker
        .create_topic("t", Some(TopicConfig::with_partitions(1)))
        .unwrap();
    let mut admin = cluster.admin();
    allow(&mut admin, TOPIC, "t", LITERAL, WRITE);
    let req = produce_request("t", 0, Some(Bytes::from(batch(&[b"v"]))), 1)
        .with_transactional_id(Some(s("tx").into()));
    let r: ProduceResponse = cluster.user().call(ApiKey::Produce, 9, &req);
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
}

#[test]
fn fetch_denies_only_the_topics_it_may_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(dir.path(), |_| {});
    for t in ["open", "closed"] {
        cluster
            .broker
            .create_topic(t, Some(TopicConfig::with_partitions(1)))
            .unwrap();
    }
    let mut admin = cluster.admin();
    allow(&mut admin, TOPIC, "open", LITERAL, READ);
    assert_eq!(produce_code(&mut admin, "open"), 0);
    let mut req = fetch_request("open", 0, 0, 1, 0, 1 << 20);
    let mut closed = req.topics[0].clone();
    closed.topic = topic_name("closed");
    req.topics.push(closed);
    let r: FetchResponse = cluster.user().call(ApiKey::Fetch, 12, &req);
    let by_name: Vec<(String, i16, bool)> = r
        .responses
        .iter()
        .map(|t| {
            let p = &t.partitions[0];
            (
                t.topic.0.to_string(),
                p.error_code,
                p.records.as_ref().is_some_and(|b| !b.is_empty()),
            )
        })
        .collect();
    assert_eq!(
        by_name,
        [
            ("open".to_string(), 0, true),
            ("closed".to_string(), TOPIC_AUTHORIZATION_FAILED, false)
        ]
    );
}

#[test]
fn metadata_lists_only_describable_topics_and_auto_creation_needs_create() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(dir.path(), |_| {});
    for t in ["seen", "hidden"] {
        cluster
            .broker
            .create_topic(t, Some(TopicConfig::with_partitions(1)))
            .unwrap();
    }
    let mut admin = cluster.admin();
    let mut user = cluster.user();
    // Read implies Describe.
    allow(&mut admin, TOPIC, "seen", LITERAL, READ);
    let all = metadata(&mut user, None, false);
    assert_eq!(topic_codes(&all), [("seen".to_string(), 0)]);
    assert_eq!(
        all.topics[0].topic_authorized_operations,
        bits(&[READ, DESCRIBE])
    );
    // No Describe on the cluster: its operations are 0, not the not-requested value.
    assert_eq!(all.cluster_authorized_operations, 0);
    let named = metadata(&mut user, Some(&["seen", "hidden"]), false);
    assert_eq!(
        topic_codes(&named),
        [
            ("seen".to_string(), 0),
            ("hidden".to_string(), TOPIC_AUTHORIZATION_FAILED)
        ]
    );
    // Auto-creation: Describe alone is not enough, Create on the topic (or the cluster) is.
    allow(&mut admin, TOPIC, "new-", PREFIXED, DESCRIBE);
    let r = metadata(&mut user, Some(&["new-a"]), true);
    assert_eq!(
        topic_codes(&r),
        [("new-a".to_string(), TOPIC_AUTHORIZATION_FAILED)]
    );
    assert!(!cluster.broker.topics().contains(&"new-a".to_string()));
    allow(&mut admin, CLUSTER, "kafka-cluster", LITERAL, CREATE);
    let r = metadata(&mut user, Some(&["new-a"]), true);
    assert_eq!(topic_codes(&r), [("new-a".to_string(), 0)]);
    assert!(cluster.broker.topics().contains(&"new-a".to_string()));
    // Without auto-creation an unknown describable topic is just unknown.
    let r = metadata(&mut user, Some(&["new-b"]), false);
    assert_eq!(
        topic_codes(&r),
        [("new-b".to_string(), UNKNOWN_TOPIC_OR_PARTITION)]
    );
    // A super user may do everything the cluster supports.
    let r = metadata(&mut admin, None, false);
    assert_eq!(
        r.cluster_authorized_operations,
        bits(&[CREATE, 9, 10, 11, IDEMPOTENT_WRITE, 7, DESCRIBE])
    );
    assert_eq!(r.topics.len(), 3);
}

#[test]
fn allow_everyone_if_no_acl_found_allows_only_resources_without_acls() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(dir.path(), |a| a.allow_everyone_if_no_acl_found = true);
    for t in ["free", "guarded"] {
        cluster
            .broker
            .create_topic(t, Some(TopicConfig::with_partitions(1)))
            .unwrap();
    }
    let mut admin = cluster.admin();
    assert_eq!(
        create(
            &mut admin,
            vec![acl(TOPIC, "guarded", LITERAL, "User:someone", WRITE, ALLOW)]
        ),
        [0]
    );
    let mut user = cluster.user();
    assert_eq!(produce_code(&mut user, "free"), 0);
    assert_eq!(
        produce_code(&mut user, "guarded"),
        TOPIC_AUTHORIZATION_FAILED
    );
}

#[test]
fn authorized_operations_in_describe_cluster_and_describe_groups() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(dir.path(), |_| {});
    let mut admin = cluster.admin();
    let mut user = cluster.user();
    let describe_cluster = |c: &mut Client| {
        let r: DescribeClusterResponse = c.call(
            ApiKey::DescribeCluster,
            1,
            &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        );
        r.cluster_authorized_operations
    };
    assert_eq!(describe_cluster(&mut user), 0);
    let everything = bits(&[
        CREATE,
        9,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
        IDEMPOTENT_WRITE,
        ALTER,
        DESCRIBE,
    ]);
    assert_eq!(describe_cluster(&mut admin), everything);
    allow(&mut admin, CLUSTER, "kafka-cluster", LITERAL, ALTER);
    // Alter implies Describe.
    assert_eq!(describe_cluster(&mut user), bits(&[ALTER, DESCRIBE]));

    allow(&mut admin, GROUP, "g", LITERAL, READ);
    let r: DescribeGroupsResponse = user.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(s("g"))])
            .with_include_authorized_operations(true),
    );
    assert_eq!(r.groups[0].error_code, 0);
    assert_eq!(r.groups[0].authorized_operations, bits(&[READ, DESCRIBE]));
}

#[test]
fn list_groups_shows_only_describable_groups_unless_the_cluster_is_describable() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(dir.path(), |_| {});
    cluster
        .broker
        .create_topic("t", Some(TopicConfig::with_partitions(1)))
        .unwrap();
    let mut admin = cluster.admin();
    // Two groups known by their committed offsets.
    for g in ["mine", "theirs"] {
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(g)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(topic_name("t"))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(0),
                    ]),
            ]);
        let r: OffsetCommitResponse = admin.call(ApiKey::OffsetCommit, 8, &req);
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
    }
    let listed = |c: &mut Client| {
        let r: ListGroupsResponse = c.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default());
        let mut v: Vec<String> = r.groups.iter().map(|g| g.group_id.0.to_string()).collect();
        v.sort();
        v
    };
    let mut user = cluster.user();
    assert!(listed(&mut user).is_empty());
    allow(&mut admin, GROUP, "mi", PREFIXED, DESCRIBE);
    assert_eq!(listed(&mut user), ["mine"]);
    allow(&mut admin, CLUSTER, "kafka-cluster", LITERAL, DESCRIBE);
    assert_eq!(listed(&mut user), ["mine", "theirs"]);
    // DescribeLogDirs needs the same Describe on the cluster.
    let r: DescribeLogDirsResponse = user.call(
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest::default().with_topics(None),
    );
    assert_eq!(r.error_code, 0);
    assert_eq!(r.results.len(), 1);
}

#[test]
fn describe_log_dirs_needs_describe_on_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(dir.path(), |_| {});
    let r: DescribeLogDirsResponse = cluster.user().call(
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest::default().with_topics(None),
    );
    assert_eq!(r.error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert!(r.results.is_empty());
}

#[test]
fn metadata_by_topic_id_answers_an_unauthorized_topic_by_id_without_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(dir.path(), |_| {});
    cluster
        .broker
        .create_topic("secret", Some(TopicConfig::with_partitions(1)))
        .unwrap();
    let all = metadata(&mut cluster.admin(), None, false);
    let id = all.topics[0].topic_id;
    assert!(!id.is_nil());
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default()
                .with_name(None)
                .with_topic_id(id),
        ]))
        .with_allow_auto_topic_creation(false);
    let r: MetadataResponse = cluster.user().call(ApiKey::Metadata, 12, &req);
    assert_eq!(r.topics.len(), 1);
    assert_eq!(r.topics[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(r.topics[0].name, None);
    assert_eq!(r.topics[0].topic_id, id);
    assert!(r.topics[0].partitions.is_empty());
}
