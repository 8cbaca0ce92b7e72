#![allow(clippy::unwrap_used, clippy::expect_used)]
//! ListOffsets over the wire: Kafka's special timestamps, each from the version that brought
//! it (MAX_TIMESTAMP -3 from v7, EARLIEST_LOCAL -4 from v8, LATEST_TIERED -5 from v9), and
//! UNSUPPORTED_VERSION for one below its version or unknown.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use thorstream::{FsyncPolicy, Producer, Record, TopicConfig};

use common::requests::topic_name;
use common::wire::{request, response};

/// Partition 0 holds, in three batches, records with timestamps 100 500 300 | 200 700 600 |
/// 700 (offsets 0..=6): the largest, 700, is first reached at offset 4. Partition 1 is empty.
fn start() -> common::server::Fixture {
    let fx = common::server::start(
        |bc| bc.fsync = FsyncPolicy::Never,
        [("t", TopicConfig::with_partitions(2))],
        |_| {},
    );
    let producer = Producer::new(Arc::clone(&fx.broker));
    for batch in [&[100, 500, 300][..], &[200, 700, 600], &[700]] {
        let records = batch
            .iter()
            .map(|ts| Record::new(b"v".to_vec()).timestamp(*ts))
            .collect();
        producer.send_batch("t", records, Some(0)).unwrap();
    }
    fx
}

fn list(
    fx: &common::server::Fixture,
    version: i16,
    parts: &[(i32, i64)],
) -> Vec<ListOffsetsPartitionResponse> {
    let req = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(
                    parts
                        .iter()
                        .map(|(p, ts)| {
                            ListOffsetsPartition::default()
                                .with_partition_index(*p)
                                .with_timestamp(*ts)
                        })
                        .collect(),
                ),
        ]);
    let mut s = TcpStream::connect(fx.addr).unwrap();
    s.write_all(&request(ApiKey::ListOffsets, version, 7, &req))
        .unwrap();
    let (corr, resp): (i32, ListOffsetsResponse) = response(
        &mut s,
        ApiKey::ListOffsets.response_header_version(version),
        version,
    );
    assert_eq!(corr, 7);
    resp.topics.into_iter().next().unwrap().partitions
}

/// (error code, offset, timestamp) of one partition.
fn answer(p: &ListOffsetsPartitionResponse) -> (i16, i64, i64) {
    (p.error_code, p.offset, p.timestamp)
}

const UNSUPPORTED: i16 = ResponseError::UnsupportedVersion.code();

#[test]
fn max_timestamp_names_the_first_record_with_the_largest_timestamp() {
    let fx = start();
    for version in [7, 8, 9, 10] {
        let got = list(&fx, version, &[(0, -3), (1, -3)]);
        assert_eq!(answer(&got[0]), (0, 4, 700), "v{version}");
        assert_eq!(answer(&got[1]), (0, -1, -1), "empty partition, v{version}");
    }
}

#[test]
fn max_timestamp_below_v7_is_unsupported_version_for_that_partition_only() {
    let fx = start();
    let got = list(&fx, 6, &[(0, -3), (1, -1)]);
    assert_eq!(answer(&got[0]), (UNSUPPORTED, -1, -1));
    assert_eq!(answer(&got[1]), (0, 0, -1));
}

#[test]
fn earliest_local_and_latest_tiered_answer_as_kafka_without_tiered_storage() {
    let fx = start();
    fx.broker.delete_records("t", 0, 2).unwrap();
    // One request per timestamp: a partition named twice is refused.
    let got: Vec<_> = [-4, -2, -1]
        .iter()
        .map(|ts| answer(&list(&fx, 9, &[(0, *ts)])[0]))
        .collect();
    assert_eq!(got, vec![(0, 2, -1), (0, 2, -1), (0, 7, -1)]);
    assert_eq!(answer(&list(&fx, 9, &[(0, -5)])[0]), (0, -1, -1));
    // Each below the version that brought it.
    assert_eq!(answer(&list(&fx, 7, &[(0, -4)])[0]).0, UNSUPPORTED);
    assert_eq!(answer(&list(&fx, 8, &[(0, -5)])[0]).0, UNSUPPORTED);
}

#[test]
fn unknown_negative_timestamps_are_unsupported_version() {
    let fx = start();
    for ts in [-6, -7, -100, i64::MIN] {
        assert_eq!(answer(&list(&fx, 10, &[(0, ts)])[0]).0, UNSUPPORTED, "{ts}");
    }
}

#[test]
fn lookups_by_time_and_duplicates_still_answer_as_before() {
    let fx = start();
    let got = list(&fx, 10, &[(0, 250), (0, 250), (1, 0)]);
    assert_eq!(got[0].error_code, ResponseError::InvalidRequest.code());
    assert_eq!(got[1].error_code, ResponseError::InvalidRequest.code());
    assert_eq!(answer(&got[2]), (0, -1, -1));
    // 250: the first record at or after it is offset 1 (500).
    assert_eq!(answer(&list(&fx, 10, &[(0, 250)])[0]), (0, 1, 500));
    assert_eq!(answer(&list(&fx, 10, &[(0, 701)])[0]), (0, -1, -1));
}
