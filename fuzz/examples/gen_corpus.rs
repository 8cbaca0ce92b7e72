//! Writes the seed corpora of the fuzz targets (`fuzz/corpus/<target>/`) from the real code
//! paths: well-formed requests of every implemented API and version, batches of every codec,
//! segments written by a partition log, and the metadata files of a broker that ran.
//!
//! `cargo run --example gen_corpus` (from `fuzz/`); the output is committed, so this only
//! needs re-running when the input formats of the targets change.

use std::path::{Path, PathBuf};

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
use kafka_protocol::records::Compression;
use thorstream::broker::offset_store::{CommittedOffset, OffsetStore};
use thorstream::protocol::versions::SUPPORTED_APIS;
use thorstream::storage::{LogConfig, PartitionLog, segment_file_name};
use thorstream::{Broker, BrokerConfig, FsyncPolicy, Record, TopicConfig};

#[path = "../common/mod.rs"]
mod common;

const NOW_MS: i64 = 1_700_000_000_000;

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn batch(values: &[&[u8]]) -> Vec<u8> {
    let recs: Vec<Record> = values.iter().map(|v| Record::new(v.to_vec())).collect();
    thorstream::protocol::records::encode_batch(&recs, 1_700_000_000_000).unwrap()
}

fn produce_request(
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

fn encoded<T: Encodable + Default>(req: T, version: i16) -> Option<Vec<u8>> {
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
fn valid_body(api: ApiKey, version: i16) -> Option<Vec<u8>> {
    let group = || GroupId(StrBytes::from_static_str("hostile-group"));
    match api {
        ApiKey::Produce => encoded(
            produce_request("t", 0, Some(Bytes::from(batch(&[b"a", b"bb"]))), 1),
            version,
        ),
        ApiKey::Fetch => encoded(
            FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(topic_name("t"))
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(0)
                                .with_fetch_offset(0)
                                .with_partition_max_bytes(1 << 20),
                        ]),
                ]),
            version,
        ),
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
        _ => None,
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

fn request_frame(api: ApiKey, version: i16, body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("seed")))
        .encode(&mut buf, api.request_header_version(version))
        .expect("encode header");
    buf.extend_from_slice(body);
    let mut framed = (buf.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&buf);
    framed
}

/// One file per API: a stream of one frame per supported version (mode byte 0x07: chunks of
/// 8 bytes), plus a few single frames (mode 0x80).
fn request_decode(out: &Path) {
    for &(api, min, max) in SUPPORTED_APIS {
        let mut stream = vec![0x07u8];
        for v in min..=max {
            let body = valid_body(api, v).unwrap_or_default();
            stream.extend(request_frame(api, v, &body));
        }
        write(out, &format!("{api:?}"), &stream);
    }
    for (api, v) in [
        (ApiKey::Produce, 9i16),
        (ApiKey::Fetch, 12),
        (ApiKey::JoinGroup, 9),
    ] {
        let body = valid_body(api, v).unwrap_or_default();
        let mut single = vec![0x80u8];
        single.extend(&request_frame(api, v, &body)[4..]);
        write(out, &format!("single-{api:?}-v{v}"), &single);
    }
}

fn batch_validate(out: &Path) {
    let records = vec![
        Record::with_key(b"k".to_vec(), b"v".to_vec()).header("h", b"x".to_vec()),
        Record::new(vec![7; 100]).timestamp(1234),
        Record::default(),
    ];
    for (name, c) in [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        let b =
            thorstream::protocol::records::encode_batch_with(&records, NOW_MS, c).expect("encode");
        let mut seed = vec![0u8];
        seed.extend(&b);
        write(out, &format!("batch-{name}"), &seed);
    }
    let mut two = vec![3u8];
    two.extend(common::batch(&[b"a", b"bb"], NOW_MS));
    two.extend(common::idempotent_batch(&[b"c"], 5, 1, 0));
    write(out, "two-batches", &two);
}

/// Writes a log the way the broker does and returns its segment files' bytes.
fn segments(batches: usize, segment_bytes: u64) -> Vec<(i64, Vec<u8>, Vec<u8>, Vec<u8>)> {
    let dir = common::tempdir();
    let config = LogConfig {
        segment_bytes,
        index_interval_bytes: 1,
        durable_hw: false,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config, true, NOW_MS).expect("open");
    for i in 0..batches {
        let v = format!("value-{i}");
        let mut b = if i % 3 == 2 {
            common::idempotent_batch(&[v.as_bytes()], 9, 0, (i / 3) as i32)
        } else {
            common::batch(&[v.as_bytes(), b"x"], NOW_MS + i as i64)
        };
        log.append(&mut b, NOW_MS).expect("append");
    }
    log.close().expect("close");
    let mut bases: Vec<i64> = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    let read = |base: i64, ext: &str| {
        std::fs::read(dir.path().join(segment_file_name(base, ext))).unwrap_or_default()
    };
    bases
        .into_iter()
        .map(|b| (b, read(b, "log"), read(b, "index"), read(b, "timeindex")))
        .collect()
}

fn log_recovery(out: &Path) {
    // flags: 0x08 fix, 0x40 indexes, 0x10/0x20 segment count - 1; flags2 0x01 index every batch.
    let one = segments(6, 1 << 30);
    for (name, flags, flags2) in [
        ("crash", 0x00u8, 0x00u8),
        ("crash-fixed", 0x08, 0x01),
        ("clean-indexes", 0x41, 0x01),
        ("crash-indexes-tiny", 0x40, 0x03),
    ] {
        let mut seed = vec![flags, flags2];
        for (_, log, index, time) in &one {
            common::put_part(&mut seed, log, 4);
            if flags & 0x40 != 0 {
                common::put_part(&mut seed, index, 2);
                common::put_part(&mut seed, time, 2);
            }
        }
        write(out, name, &seed);
    }
    let three = segments(9, 300);
    let mut seed = vec![0x20 | 0x40 | 0x02 | 0x04, 0x01];
    seed.extend(2i64.to_le_bytes()); // recovery point
    seed.extend(1i64.to_le_bytes()); // log start
    for (_, log, index, time) in three.iter().take(3) {
        common::put_part(&mut seed, log, 4);
        common::put_part(&mut seed, index, 2);
        common::put_part(&mut seed, time, 2);
    }
    write(out, "three-segments-checkpoints", &seed);
    let mut torn = vec![0x08u8, 0x00];
    let (_, log, _, _) = &one[0];
    common::put_part(&mut torn, &log[..log.len() - 5], 4);
    write(out, "torn-tail", &torn);
}

fn metadata_records(out: &Path) {
    let dir = common::tempdir();
    let mut config = BrokerConfig::with_data_dir(dir.path());
    config.fsync = FsyncPolicy::Never;
    {
        let broker = Broker::new(config.clone()).expect("broker");
        broker
            .create_topic("orders", Some(TopicConfig::with_partitions(2)))
            .expect("create");
        broker.create_topic("gone", None).expect("create");
        broker
            .create_topic("logs.v1", Some(TopicConfig::with_partitions(1)))
            .expect("create");
        broker.delete_topic("gone").expect("delete");
        broker.close().expect("close");
    }
    let topics = std::fs::read(dir.path().join("__topics.meta")).expect("topics");
    let mut seed = vec![0u8];
    seed.extend(&topics);
    write(out, "topics", &seed);

    let path = dir.path().join("offsets.meta");
    {
        let s = OffsetStore::open(&path, false).expect("offsets");
        let c = |o: i64, m: Option<&str>| CommittedOffset {
            offset: o,
            leader_epoch: 3,
            metadata: m.map(str::to_string),
            commit_timestamp_ms: NOW_MS,
        };
        s.commit("g1", "orders", 0, c(10, None)).expect("commit");
        s.commit("g1", "orders", 1, c(20, Some("meta")))
            .expect("commit");
        s.commit("g2", "orders", 0, c(5, None)).expect("commit");
        s.delete_offset("g1", "orders", 1).expect("delete");
        s.commit("g3", "logs.v1", 0, c(1, None)).expect("commit");
        s.delete_group("g3").expect("delete");
    }
    let mut seed = vec![1u8];
    seed.extend(std::fs::read(&path).expect("offsets"));
    write(out, "offsets", &seed);

    let log_dir = dir.path().join("p-0");
    {
        let cfg = LogConfig {
            durable_hw: false,
            ..LogConfig::default()
        };
        let mut log = PartitionLog::open(&log_dir, cfg, true, NOW_MS).expect("log");
        for (pid, epoch, seq) in [(1, 0, 0), (2, 3, 0), (1, 0, 2)] {
            log.append(
                &mut common::idempotent_batch(&[b"a", b"b"], pid, epoch, seq),
                NOW_MS,
            )
            .expect("append");
        }
        log.close().expect("close");
    }
    let state = std::fs::read(log_dir.join("producer-state")).expect("producer state");
    let mut seed = vec![2u8];
    seed.extend(&state[..state.len() - 4]); // the target appends the CRC
    write(out, "producer-state", &seed);
    let mut seed = vec![0x82u8];
    seed.extend(&state);
    write(out, "producer-state-raw", &seed);

    let index = std::fs::read(log_dir.join(segment_file_name(0, "index"))).unwrap_or_default();
    let mut seed = vec![3u8];
    seed.extend(&index);
    write(out, "index", &seed);
    let mut seed = vec![3u8];
    seed.extend(&12i64.to_be_bytes());
    seed.extend(crc32fast_hash(&12i64.to_be_bytes()));
    write(out, "checkpoint", &seed);
}

fn crc32fast_hash(b: &[u8]) -> [u8; 4] {
    crc32fast::hash(b).to_be_bytes()
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    request_decode(&root.join("request_decode"));
    batch_validate(&root.join("batch_validate"));
    log_recovery(&root.join("log_recovery"));
    metadata_records(&root.join("metadata_records"));
    println!("seeds written under {}", root.display());
}
