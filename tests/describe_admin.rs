#![allow(clippy::unwrap_used, clippy::expect_used)]
//! DescribeLogDirs, DescribeProducers and ApiVersions v4 over the wire.

mod common;

use std::io::Write;
use std::net::TcpStream;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, DescribeProducersRequest, DescribeProducersResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use thorstream::{FsyncPolicy, TopicConfig};

use common::requests::topic_name;
use common::wire::{request, response};

fn call<Req: Encodable + HeaderVersion, Resp: Decodable>(
    fx: &common::server::Fixture,
    api: ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    let mut s = TcpStream::connect(fx.addr).unwrap();
    s.write_all(&request(api, version, 3, req)).unwrap();
    let (corr, resp) = response(&mut s, api.response_header_version(version), version);
    assert_eq!(corr, 3);
    resp
}

/// An idempotent batch of `n` records from producer `pid` at `epoch`, sequences from `seq`.
fn idempotent_batch(pid: i64, epoch: i16, seq: i32, n: i32, timestamp: i64) -> Vec<u8> {
    let records: Vec<KRecord> = (0..n)
        .map(|i| KRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: seq + i,
            timestamp,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).unwrap();
    buf.to_vec()
}

fn start() -> common::server::Fixture {
    common::server::start(
        |bc| bc.fsync = FsyncPolicy::Never,
        [
            ("t", TopicConfig::with_partitions(2)),
            ("u", TopicConfig::with_partitions(1)),
        ],
        |_| {},
    )
}

#[test]
fn describe_log_dirs_with_null_topics_lists_every_partition_with_its_size() {
    let fx = start();
    fx.broker
        .append("t", 1, &idempotent_batch(-1, -1, -1, 10, 1_000))
        .unwrap();
    let t1_bytes = fx.broker.partition_sizes();
    let t1_bytes = t1_bytes
        .iter()
        .find(|p| (p.topic.as_str(), p.partition) == ("t", 1))
        .unwrap()
        .size_bytes;
    assert!(t1_bytes > 0);
    for version in 0..=4 {
        let all: DescribeLogDirsResponse = call(
            &fx,
            ApiKey::DescribeLogDirs,
            version,
            &DescribeLogDirsRequest::default().with_topics(None),
        );
        assert_eq!(all.error_code, 0);
        assert_eq!(all.results.len(), 1, "one log dir");
        let dir = &all.results[0];
        assert_eq!(dir.error_code, 0);
        let expected = std::fs::canonicalize(&fx.broker.config().data_dir).unwrap();
        assert_eq!(dir.log_dir.as_str(), expected.display().to_string());
        let got: Vec<(String, i32, i64, i64, bool)> = dir
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.name.0.to_string(),
                        p.partition_index,
                        p.partition_size,
                        p.offset_lag,
                        p.is_future_key,
                    )
                })
            })
            .collect();
        let size = i64::try_from(t1_bytes).unwrap();
        assert_eq!(
            got,
            vec![
                ("t".into(), 0, 0, 0, false),
                ("t".into(), 1, size, 0, false),
                ("u".into(), 0, 0, 0, false),
            ],
            "v{version}"
        );
        if version >= 4 {
            assert!(dir.total_bytes > 0, "{}", dir.total_bytes);
            assert!((0..=dir.total_bytes).contains(&dir.usable_bytes));
        }
    }
}

#[test]
fn describe_log_dirs_of_named_partitions_leaves_out_those_not_held() {
    let fx = start();
    let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
        DescribableLogDirTopic::default()
            .with_topic(topic_name("t"))
            .with_partitions(vec![1, 7]),
        DescribableLogDirTopic::default()
            .with_topic(topic_name("missing"))
            .with_partitions(vec![0]),
    ]));
    let resp: DescribeLogDirsResponse = call(&fx, ApiKey::DescribeLogDirs, 4, &req);
    let topics = &resp.results[0].topics;
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].name.0.as_str(), "t");
    let parts: Vec<i32> = topics[0]
        .partitions
        .iter()
        .map(|p| p.partition_index)
        .collect();
    assert_eq!(parts, vec![1]);
    // An empty list (not null) describes no partition, as Kafka.
    let none = DescribeLogDirsRequest::default().with_topics(Some(vec![]));
    let resp: DescribeLogDirsResponse = call(&fx, ApiKey::DescribeLogDirs, 4, &none);
    assert!(resp.results[0].topics.is_empty());
}

#[test]
fn describe_producers_reports_each_idempotent_producers_last_sequence() {
    let fx = start();
    fx.broker
        .append("t", 0, &idempotent_batch(1000, 2, 0, 3, 5_000))
        .unwrap();
    fx.broker
        .append("t", 0, &idempotent_batch(1000, 2, 3, 4, 6_000))
        .unwrap();
    fx.broker
        .append("t", 0, &idempotent_batch(7, 0, 0, 1, 4_000))
        .unwrap();
    let req = DescribeProducersRequest::default().with_topics(vec![
        TopicRequest::default()
            .with_name(topic_name("t"))
            .with_partition_indexes(vec![0, 1, 9]),
        TopicRequest::default()
            .with_name(topic_name("missing"))
            .with_partition_indexes(vec![0]),
    ]);
    let resp: DescribeProducersResponse = call(&fx, ApiKey::DescribeProducers, 0, &req);
    let t = &resp.topics[0].partitions;
    assert_eq!(t[0].error_code, 0);
    let producers: Vec<(i64, i32, i32, i64, i32, i64)> = t[0]
        .active_producers
        .iter()
        .map(|p| {
            (
                p.producer_id.0,
                p.producer_epoch,
                p.last_sequence,
                p.last_timestamp,
                p.coordinator_epoch,
                p.current_txn_start_offset,
            )
        })
        .collect();
    assert_eq!(
        producers,
        vec![(7, 0, 0, 4_000, -1, -1), (1000, 2, 6, 6_000, -1, -1)]
    );
    assert_eq!((t[1].error_code, t[1].active_producers.len()), (0, 0));
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(t[2].error_code, unknown);
    assert_eq!(resp.topics[1].partitions[0].error_code, unknown);
}

#[test]
fn api_versions_v4_is_answered_and_advertises_the_new_apis() {
    let fx = start();
    let resp: ApiVersionsResponse =
        call(&fx, ApiKey::ApiVersions, 4, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0);
    let range = |api: ApiKey| {
        resp.api_keys
            .iter()
            .find(|k| k.api_key == api as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    assert_eq!(range(ApiKey::ApiVersions), Some((0, 4)));
    assert_eq!(range(ApiKey::ListOffsets), Some((1, 10)));
    assert_eq!(range(ApiKey::DescribeLogDirs), Some((0, 4)));
    assert_eq!(range(ApiKey::DescribeProducers), Some((0, 0)));
    // No feature is advertised or finalized (no KRaft metadata.version to negotiate).
    assert!(resp.supported_features.is_empty());
    assert!(resp.finalized_features.is_empty());
    assert_eq!(resp.finalized_features_epoch, -1);
}
