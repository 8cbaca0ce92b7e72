//! Consumer groups end to end, in-process: the real server on a loopback port spoken to with
//! raw Kafka frames (JoinGroup/SyncGroup/Heartbeat/LeaveGroup/…, parked joins released by
//! other members), embedded consumers sharing a group with wire members, commit fencing,
//! admin APIs, and expiry of an empty group's offsets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::server::{self, Fixture};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use thorstream::internals::BrokerInternals;
use thorstream::internals::broker::group::assignor;
use thorstream::{Broker, BrokerConfig, Consumer, Producer, Record, TopicConfig, TopicPartition};

const SESSION_MS: i32 = 6_000;

fn start_with(config: impl FnOnce(&mut BrokerConfig)) -> Fixture {
    server::start(
        |bc| {
            bc.fsync = thorstream::FsyncPolicy::Never;
            config(bc);
        },
        [("t", TopicConfig::with_partitions(4))],
        |_| {},
    )
}

fn start() -> Fixture {
    start_with(|_| {})
}

/// A blocking raw Kafka connection.
struct Conn {
    s: TcpStream,
    correlation: i32,
}

impl Conn {
    fn new(f: &Fixture) -> Conn {
        let s = TcpStream::connect(f.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Conn { s, correlation: 0 }
    }

    fn send<T: Encodable + HeaderVersion>(&mut self, api: ApiKey, version: i16, body: &T) {
        self.correlation += 1;
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("groups-test")))
            .encode(&mut buf, T::header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let mut framed = (buf.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&buf);
        self.s.write_all(&framed).unwrap();
    }

    fn recv<R: Decodable>(&mut self, api: ApiKey, version: i16) -> R {
        let mut size = [0u8; 4];
        self.s.read_exact(&mut size).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.s.read_exact(&mut body).unwrap();
        let mut b = Bytes::from(body);
        let header = ResponseHeader::decode(&mut b, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        R::decode(&mut b, version).unwrap()
    }

    fn call<T: Encodable + HeaderVersion, R: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &T,
    ) -> R {
        self.send(api, version, body);
        self.recv(api, version)
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join_request(group: &str, member_id: &str, topics: &[&str]) -> JoinGroupRequest {
    let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member_id))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(20_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(assignor::encode_subscription(&topics)),
        ])
}

const JOIN_V: i16 = 5;

/// The two JoinGroup round trips of a v4+ client: MEMBER_ID_REQUIRED, then the real join.
/// Sends the second join and returns the member id without waiting for the answer.
fn start_join(c: &mut Conn, group: &str) -> String {
    let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, JOIN_V, &join_request(group, "", &["t"]));
    assert_eq!(r.error_code, 79, "MEMBER_ID_REQUIRED");
    let id = r.member_id.to_string();
    assert!(id.starts_with("groups-test-"), "{id}");
    c.send(ApiKey::JoinGroup, JOIN_V, &join_request(group, &id, &["t"]));
    id
}

fn sync_request(group: &str, member: &str, generation: i32) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id(generation)
}

fn heartbeat(c: &mut Conn, group: &str, member: &str, generation: i32) -> i16 {
    let r: HeartbeatResponse = c.call(
        ApiKey::Heartbeat,
        3,
        &HeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s(member))
            .with_generation_id(generation),
    );
    r.error_code
}

fn assignment_of(bytes: &Bytes) -> Vec<i32> {
    let parts = assignor::decode_assignment(bytes).expect("consumer-protocol assignment");
    parts.into_iter().flat_map(|(_, ps)| ps).collect()
}

fn range_assignments(members: &[String]) -> Vec<SyncGroupRequestAssignment> {
    let subs: Vec<assignor::Subscriber> = members
        .iter()
        .map(|m| assignor::Subscriber {
            member_id: m.clone(),
            group_instance_id: None,
            topics: vec!["t".into()],
        })
        .collect();
    let counts = [("t".to_string(), 4)].into_iter().collect();
    assignor::range_assign(&subs, &counts)
        .into_iter()
        .map(|(m, parts)| {
            SyncGroupRequestAssignment::default()
                .with_member_id(s(&m))
                .with_assignment(assignor::encode_assignment(&parts))
        })
        .collect()
}

#[test]
fn two_wire_members_rebalance_and_split_partitions() {
    let f = start();
    let mut a = Conn::new(&f);
    let a_id = start_join(&mut a, "g");
    let ra: JoinGroupResponse = a.recv(ApiKey::JoinGroup, JOIN_V);
    assert_eq!((ra.error_code, ra.generation_id), (0, 1));
    assert_eq!(ra.leader.as_str(), a_id);
    let sa: SyncGroupResponse = a.call(
        ApiKey::SyncGroup,
        3,
        &sync_request("g", &a_id, 1)
            .with_assignments(range_assignments(std::slice::from_ref(&a_id))),
    );
    assert_eq!(assignment_of(&sa.assignment), vec![0, 1, 2, 3]);

    // B joins: its JoinGroup parks until A rejoins; A's heartbeat says REBALANCE_IN_PROGRESS.
    let mut b = Conn::new(&f);
    let b_id = start_join(&mut b, "g");
    wait_for_state(&f.broker, "g", "PreparingRebalance");
    assert_eq!(heartbeat(&mut a, "g", &a_id, 1), 27);
    let ra: JoinGroupResponse =
        a.call(ApiKey::JoinGroup, JOIN_V, &join_request("g", &a_id, &["t"]));
    let rb: JoinGroupResponse = b.recv(ApiKey::JoinGroup, JOIN_V);
    assert_eq!((ra.error_code, rb.error_code), (0, 0));
    assert_eq!((ra.generation_id, rb.generation_id), (2, 2));
    assert_eq!(ra.leader.as_str(), a_id);
    assert_eq!(ra.members.len(), 2, "the leader gets every member");
    assert!(rb.members.is_empty());

    // B's SyncGroup parks until the leader's assignment arrives.
    b.send(ApiKey::SyncGroup, 3, &sync_request("g", &b_id, 2));
    // B's SyncGroup must be parked before A's arrives: wait for it in the broker's wait set.
    assert!(
        common::wait_until(Duration::from_secs(10), || f.broker.waits().parked() == 1),
        "B's SyncGroup parks"
    );
    let ids: Vec<String> = ra.members.iter().map(|m| m.member_id.to_string()).collect();
    let sa: SyncGroupResponse = a.call(
        ApiKey::SyncGroup,
        3,
        &sync_request("g", &a_id, 2).with_assignments(range_assignments(&ids)),
    );
    let sb: SyncGroupResponse = b.recv(ApiKey::SyncGroup, 3);
    let (pa, pb) = (assignment_of(&sa.assignment), assignment_of(&sb.assignment));
    assert_eq!(pa.len() + pb.len(), 4);
    let all: BTreeSet<i32> = pa.iter().chain(&pb).copied().collect();
    assert_eq!(all.len(), 4, "disjoint: {pa:?} {pb:?}");
    assert_eq!(heartbeat(&mut a, "g", &a_id, 2), 0);
    assert_eq!(heartbeat(&mut a, "g", &a_id, 1), 22, "ILLEGAL_GENERATION");
    assert_eq!(heartbeat(&mut a, "g", "nobody", 2), 25, "UNKNOWN_MEMBER_ID");

    // B leaves (v3 batch form); A learns, rejoins alone at generation 3.
    let l: LeaveGroupResponse = b.call(
        ApiKey::LeaveGroup,
        3,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_members(vec![MemberIdentity::default().with_member_id(s(&b_id))]),
    );
    assert_eq!((l.error_code, l.members[0].error_code), (0, 0));
    assert_eq!(heartbeat(&mut a, "g", &a_id, 2), 27);
    let ra: JoinGroupResponse =
        a.call(ApiKey::JoinGroup, JOIN_V, &join_request("g", &a_id, &["t"]));
    assert_eq!((ra.generation_id, ra.members.len()), (3, 1));
}

#[test]
fn flexible_versions_work_end_to_end() {
    let f = start();
    let mut c = Conn::new(&f);
    let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 9, &join_request("flex", "", &["t"]));
    assert_eq!(r.error_code, 79);
    let id = r.member_id.to_string();
    let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 9, &join_request("flex", &id, &["t"]));
    assert_eq!(r.error_code, 0);
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert!(!r.skip_assignment);
    let sr: SyncGroupResponse = c.call(
        ApiKey::SyncGroup,
        5,
        &sync_request("flex", &id, 1)
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")))
            .with_assignments(range_assignments(std::slice::from_ref(&id))),
    );
    assert_eq!(sr.error_code, 0);
    assert_eq!(sr.protocol_name.as_deref(), Some("range"));
    let d: DescribeGroupsResponse = c.call(
        ApiKey::DescribeGroups,
        6,
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(s("flex")), GroupId(s("missing"))]),
    );
    assert_eq!(d.groups[0].group_state.as_str(), "Stable");
    assert_eq!(d.groups[0].protocol_data.as_str(), "range");
    assert_eq!(d.groups[0].members[0].client_id.as_str(), "groups-test");
    assert_eq!(
        d.groups[0].members[0].client_host.as_str(),
        "/127.0.0.1",
        "the member's address, written as Kafka writes it"
    );
    assert_eq!(d.groups[1].error_code, 69, "GROUP_ID_NOT_FOUND at v6");
    let l: LeaveGroupResponse = c.call(
        ApiKey::LeaveGroup,
        5,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s("flex")))
            .with_members(vec![MemberIdentity::default().with_member_id(s(&id))]),
    );
    assert_eq!(l.members[0].error_code, 0);
}

fn commit(
    c: &mut Conn,
    group: &str,
    member: &str,
    generation: i32,
    partition: i32,
    offset: i64,
) -> i16 {
    let r: OffsetCommitResponse = c.call(
        ApiKey::OffsetCommit,
        7,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s(member))
            .with_generation_id_or_member_epoch(generation)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(partition)
                            .with_committed_offset(offset),
                    ]),
            ]),
    );
    r.topics[0].partitions[0].error_code
}

#[test]
fn offset_commits_are_fenced_by_generation_and_membership() {
    let f = start();
    let mut c = Conn::new(&f);
    assert_eq!(
        commit(&mut c, "g", "", -1, 0, 3),
        0,
        "simple commit, no group"
    );
    assert_eq!(
        commit(&mut c, "g", "x", 1, 0, 3),
        22,
        "generation of a missing group"
    );
    let id = start_join(&mut c, "g");
    let r: JoinGroupResponse = c.recv(ApiKey::JoinGroup, JOIN_V);
    assert_eq!(r.generation_id, 1);
    assert_eq!(commit(&mut c, "g", &id, 1, 0, 5), 27, "CompletingRebalance");
    let _: SyncGroupResponse = c.call(ApiKey::SyncGroup, 3, &sync_request("g", &id, 1));
    assert_eq!(commit(&mut c, "g", &id, 1, 0, 5), 0);
    assert_eq!(commit(&mut c, "g", &id, 0, 0, 6), 22);
    assert_eq!(commit(&mut c, "g", "stranger", 1, 0, 6), 25);
    assert_eq!(
        commit(&mut c, "g", "", -1, 0, 6),
        25,
        "simple commit while members"
    );
    assert_eq!(f.broker.committed_offset("g", "t", 0).unwrap().offset, 5);
}

/// OffsetFetch of `t`'s partitions 0..4: (committed offset, metadata) each.
fn fetch_offsets(c: &mut Conn, group: &str) -> Vec<(i64, String)> {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    let r: OffsetFetchResponse = c.call(
        ApiKey::OffsetFetch,
        5,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partition_indexes(vec![0, 1, 2, 3]),
            ])),
    );
    r.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.committed_offset,
                p.metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn offset_commit_refuses_metadata_over_4096_bytes_per_partition_and_parks_until_durable() {
    // fsync `always`: the accepted partitions are answered only after the flusher's fsync.
    let f = start_with(|bc| bc.fsync = thorstream::FsyncPolicy::Always);
    let mut c = Conn::new(&f);
    let part = |index: i32, offset: i64, metadata: String| {
        OffsetCommitRequestPartition::default()
            .with_partition_index(index)
            .with_committed_offset(offset)
            .with_committed_metadata(Some(s(&metadata)))
    };
    let r: OffsetCommitResponse = c.call(
        ApiKey::OffsetCommit,
        7,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        part(0, 10, "x".repeat(5000)),
                        part(1, 11, "y".repeat(4096)),
                        part(2, 12, "ok".into()),
                    ]),
            ]),
    );
    let codes: Vec<i16> = r.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        codes,
        vec![12, 0, 0],
        "OFFSET_METADATA_TOO_LARGE for 5000 bytes only"
    );
    // Answered means durable and visible; the refused partition was never written.
    assert_eq!(
        fetch_offsets(&mut c, "g"),
        vec![
            (-1, String::new()),
            (11, "y".repeat(4096)),
            (12, "ok".into()),
            (-1, String::new()),
        ]
    );
}

#[test]
fn admin_apis_list_describe_delete_and_offset_delete() {
    let f = start();
    let mut c = Conn::new(&f);
    let id = start_join(&mut c, "busy");
    let _: JoinGroupResponse = c.recv(ApiKey::JoinGroup, JOIN_V);
    let _: SyncGroupResponse = c.call(ApiKey::SyncGroup, 3, &sync_request("busy", &id, 1));
    assert_eq!(commit(&mut c, "busy", &id, 1, 0, 2), 0);
    assert_eq!(commit(&mut c, "offsets-only", "", -1, 1, 7), 0);

    let l: ListGroupsResponse = c.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    let listed: Vec<(String, String, String)> = l
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.to_string(),
                g.protocol_type.to_string(),
                g.group_state.to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            ("busy".into(), "consumer".into(), "Stable".into()),
            ("offsets-only".into(), "".into(), "Empty".into())
        ]
    );
    let l: ListGroupsResponse = c.call(
        ApiKey::ListGroups,
        4,
        &ListGroupsRequest::default().with_states_filter(vec![s("empty")]),
    );
    assert_eq!(l.groups.len(), 1);

    let del = |c: &mut Conn, g: &str| -> i16 {
        let r: DeleteGroupsResponse = c.call(
            ApiKey::DeleteGroups,
            2,
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(g))]),
        );
        r.results[0].error_code
    };
    assert_eq!(del(&mut c, "busy"), 68, "NON_EMPTY_GROUP");
    assert_eq!(del(&mut c, "nope"), 69, "GROUP_ID_NOT_FOUND");

    // OffsetDelete on a group consuming the topic is refused per partition.
    let od = |c: &mut Conn, g: &str| -> OffsetDeleteResponse {
        c.call(
            ApiKey::OffsetDelete,
            0,
            &OffsetDeleteRequest::default()
                .with_group_id(GroupId(s(g)))
                .with_topics(vec![
                    OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partitions(vec![
                            OffsetDeleteRequestPartition::default().with_partition_index(0),
                        ]),
                ]),
        )
    };
    assert_eq!(od(&mut c, "busy").topics[0].partitions[0].error_code, 86);
    assert_eq!(od(&mut c, "nope").error_code, 69);

    let _: LeaveGroupResponse = c.call(
        ApiKey::LeaveGroup,
        1,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s("busy")))
            .with_member_id(s(&id)),
    );
    let r = od(&mut c, "busy");
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
    assert!(f.broker.committed_offset("busy", "t", 0).is_none());
    assert_eq!(del(&mut c, "offsets-only"), 0);
    assert!(f.broker.group_offsets("offsets-only").is_empty());
}

#[test]
fn silent_member_is_removed_within_the_session_timeout_and_the_waiting_join_completes() {
    let f = start();
    let mut a = Conn::new(&f);
    let a_id = start_join(&mut a, "g");
    let _: JoinGroupResponse = a.recv(ApiKey::JoinGroup, JOIN_V);
    let _: SyncGroupResponse = a.call(ApiKey::SyncGroup, 3, &sync_request("g", &a_id, 1));
    // B joins; A never heartbeats or rejoins again (as if killed).
    let started = Instant::now();
    let mut b = Conn::new(&f);
    let b_id = start_join(&mut b, "g");
    let rb: JoinGroupResponse = b.recv(ApiKey::JoinGroup, JOIN_V);
    let waited = started.elapsed();
    assert_eq!(rb.error_code, 0);
    assert_eq!(rb.leader.as_str(), b_id);
    assert_eq!(rb.members.len(), 1, "A was dropped");
    assert!(
        waited < Duration::from_millis(SESSION_MS as u64 + 3_000),
        "{waited:?}"
    );
}

#[test]
fn shutdown_answers_parked_joins() {
    let mut f = start();
    let mut a = Conn::new(&f);
    let a_id = start_join(&mut a, "g");
    let _: JoinGroupResponse = a.recv(ApiKey::JoinGroup, JOIN_V);
    let _: SyncGroupResponse = a.call(ApiKey::SyncGroup, 3, &sync_request("g", &a_id, 1));
    let mut b = Conn::new(&f);
    start_join(&mut b, "g");
    // B's join moved the group to PreparingRebalance; it waits for A to rejoin, parked.
    wait_for_state(&f.broker, "g", "PreparingRebalance");
    let started = Instant::now();
    f.server.take().unwrap().shutdown();
    assert!(started.elapsed() < Duration::from_secs(5));
    let rb: JoinGroupResponse = b.recv(ApiKey::JoinGroup, JOIN_V);
    assert_eq!(rb.error_code, 15, "COORDINATOR_NOT_AVAILABLE");
}

fn produce_all(broker: &Arc<Broker>, per_partition: usize) {
    let p = Producer::new(Arc::clone(broker));
    for part in 0..4 {
        for i in 0..per_partition {
            p.send(
                "t",
                Record::new(format!("{part}-{i}").into_bytes()),
                Some(part),
            )
            .unwrap();
        }
    }
}

fn wait_for_state(broker: &Broker, group: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.groups().state(group).map(|s| s.as_str()) != Some(state) {
        assert!(
            Instant::now() < deadline,
            "group {group} never reached {state}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn partitions(c: &Consumer) -> BTreeSet<i32> {
    c.assignment().iter().map(|tp| tp.partition).collect()
}

#[test]
fn embedded_consumers_split_partitions_and_take_over_when_one_leaves() {
    let f = start();
    produce_all(&f.broker, 5);
    let mut a = Consumer::new(Arc::clone(&f.broker));
    a.set_group_id("emb");
    a.subscribe(vec!["t".into()]).unwrap();
    assert_eq!(
        partitions(&a).len(),
        4,
        "a lone member gets everything at once"
    );

    let broker = Arc::clone(&f.broker);
    let b_thread = std::thread::spawn(move || {
        let mut b = Consumer::new(broker);
        b.set_group_id("emb");
        b.subscribe(vec!["t".into()]).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.len() < 10 && Instant::now() < deadline {
            got.extend(b.poll(Some(Duration::from_millis(200))).unwrap());
        }
        b.commit().unwrap();
        (partitions(&b), got.len())
        // b drops here: it leaves the group.
    });
    // Let B's join start the rebalance before A reads anything.
    wait_for_state(&f.broker, "emb", "PreparingRebalance");
    let mut got_a = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (got_a.len() < 10 || partitions(&a).len() != 2) && Instant::now() < deadline {
        got_a.extend(a.poll(Some(Duration::from_millis(200))).unwrap());
    }
    let (pb, nb) = b_thread.join().unwrap();
    let pa = partitions(&a);
    assert_eq!(pa.len(), 2, "{pa:?}");
    assert!(pa.is_disjoint(&pb), "{pa:?} {pb:?}");
    assert_eq!((got_a.len(), nb), (10, 10));
    // B left: A gets all four partitions back; B's committed partitions are not re-read.
    let deadline = Instant::now() + Duration::from_secs(10);
    while partitions(&a).len() != 4 && Instant::now() < deadline {
        got_a.extend(a.poll(Some(Duration::from_millis(100))).unwrap());
    }
    assert_eq!(partitions(&a).len(), 4);
    assert_eq!(got_a.len(), 10, "nothing consumed twice");
}

#[test]
fn embedded_and_wire_members_share_a_group() {
    let f = start();
    produce_all(&f.broker, 3);
    let mut e = Consumer::new(Arc::clone(&f.broker));
    e.set_group_id("mixed");
    e.subscribe(vec!["t".into()]).unwrap();
    assert_eq!(partitions(&e).len(), 4);

    // A wire member joins; its JoinGroup parks until the embedded member rejoins in poll.
    let mut w = Conn::new(&f);
    let w_id = start_join(&mut w, "mixed");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !e.assignment().is_empty() && partitions(&e).len() == 4 && Instant::now() < deadline {
        got.extend(e.poll(Some(Duration::from_millis(50))).unwrap());
    }
    let rw: JoinGroupResponse = w.recv(ApiKey::JoinGroup, JOIN_V);
    assert_eq!(rw.error_code, 0);
    // The embedded member joined first, so it leads and runs the range assignor.
    assert_ne!(rw.leader.as_str(), w_id);
    let sw: SyncGroupResponse = w.call(
        ApiKey::SyncGroup,
        3,
        &sync_request("mixed", &w_id, rw.generation_id),
    );
    assert_eq!(sw.error_code, 0);
    let wire_parts: BTreeSet<i32> = assignment_of(&sw.assignment).into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while partitions(&e).len() != 2 && Instant::now() < deadline {
        got.extend(e.poll(Some(Duration::from_millis(50))).unwrap());
    }
    let emb_parts = partitions(&e);
    assert_eq!(emb_parts.len(), 2);
    assert_eq!(wire_parts.len(), 2);
    assert!(emb_parts.is_disjoint(&wire_parts));
    assert_eq!(e.group_membership().map(|(_, g)| g), Some(rw.generation_id));
    e.commit().unwrap();

    // The wire member leaves: the embedded one gets all partitions back.
    let _: LeaveGroupResponse = w.call(
        ApiKey::LeaveGroup,
        1,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s("mixed")))
            .with_member_id(s(&w_id)),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while partitions(&e).len() != 4 && Instant::now() < deadline {
        e.poll(Some(Duration::from_millis(50))).unwrap();
    }
    assert_eq!(partitions(&e).len(), 4);
    assert!(e.assignment().contains(&TopicPartition::new("t", 0)));
}

#[test]
fn embedded_commit_after_losing_membership_is_refused() {
    let f = start();
    let mut a = Consumer::new(Arc::clone(&f.broker));
    a.set_group_id("g");
    a.subscribe(vec!["t".into()]).unwrap();
    let (member, _) = a.group_membership().unwrap();
    // An administrator removes the member; its next commit is fenced.
    let r = f.broker.groups().leave(
        "g",
        &[thorstream::internals::broker::group::LeavingMember {
            member_id: member,
            group_instance_id: None,
        }],
    );
    assert_eq!(r, vec![Ok(())]);
    let err = a.commit().unwrap_err();
    assert!(matches!(err, thorstream::Error::NotAssigned(_)), "{err}");
    // The next poll rejoins and gets the partitions back.
    a.poll(None).unwrap();
    assert_eq!(partitions(&a).len(), 4);
    a.commit().unwrap();
}

#[test]
fn offsets_of_a_group_empty_past_the_retention_expire() {
    let f = start_with(|c| {
        c.offsets_retention_minutes = 0;
        c.housekeeping_interval_ms = 20;
    });
    let mut a = Consumer::new(Arc::clone(&f.broker));
    a.set_group_id("short-lived");
    a.subscribe(vec!["t".into()]).unwrap();
    a.commit().unwrap();
    assert_eq!(f.broker.group_offsets("short-lived").len(), 4);
    // Still a member: nothing expires, however often housekeeping looks.
    assert!(common::wait_for_housekeeping_passes(
        &f.broker,
        3,
        Duration::from_secs(10)
    ));
    assert_eq!(f.broker.group_offsets("short-lived").len(), 4);
    drop(a);
    assert!(
        common::wait_until(Duration::from_secs(5), || f
            .broker
            .group_offsets("short-lived")
            .is_empty()),
        "the offsets of the emptied group never expired"
    );
    assert_eq!(f.broker.groups().state("short-lived"), None);
}
