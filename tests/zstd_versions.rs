#![allow(clippy::unwrap_used, clippy::expect_used)]
//! zstd and the request versions that predate it (KIP-110), as Kafka: a Fetch below v10 of a
//! partition whose topic has `compression.type=zstd` answers UNSUPPORTED_COMPRESSION_TYPE
//! (v10+ reads it); a Produce below v7 of a zstd batch is refused likewise, while an
//! uncompressed batch at v6 to a zstd topic is taken and recompressed (Kafka's LogValidator
//! has no version rule there).

mod common;

use std::io::Write;
use std::net::TcpStream;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceResponse};
use thorstream::TopicConfig;

use common::requests::{batch, fetch_request, produce_request};
use common::wire::{request, response};

const UNSUPPORTED: i16 = ResponseError::UnsupportedCompressionType.code();

fn start() -> common::server::Fixture {
    let fx = common::server::start(
        |_| {},
        [
            ("z", TopicConfig::with_partitions(1)),
            ("plain", TopicConfig::with_partitions(1)),
        ],
        |_| {},
    );
    let zstd = [("compression.type".to_string(), "zstd".to_string())].into();
    fx.broker.alter_topic_configs("z", &zstd, false).unwrap();
    fx
}

/// (error code, base offset) of a Produce of `records` to `topic`-0 at `version`.
fn produce(fx: &common::server::Fixture, topic: &str, version: i16, records: &[u8]) -> (i16, i64) {
    // acks=all: answered once the records are readable (below the high watermark).
    let req = produce_request(topic, 0, Some(Bytes::copy_from_slice(records)), -1);
    let mut s = TcpStream::connect(fx.addr).unwrap();
    s.write_all(&request(ApiKey::Produce, version, 3, &req))
        .unwrap();
    let (corr, resp): (i32, ProduceResponse) = response(
        &mut s,
        ApiKey::Produce.response_header_version(version),
        version,
    );
    assert_eq!(corr, 3);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn fetch(fx: &common::server::Fixture, topic: &str, version: i16) -> PartitionData {
    let req = fetch_request(topic, 0, 0, 1, 0, 1 << 20);
    let mut s = TcpStream::connect(fx.addr).unwrap();
    s.write_all(&request(ApiKey::Fetch, version, 5, &req))
        .unwrap();
    let (corr, resp): (i32, FetchResponse) = response(
        &mut s,
        ApiKey::Fetch.response_header_version(version),
        version,
    );
    assert_eq!(corr, 5);
    resp.responses
        .into_iter()
        .next()
        .unwrap()
        .partitions
        .remove(0)
}

/// The codec bits of the first stored batch in `records`.
fn codec(records: &[u8]) -> i16 {
    i16::from_be_bytes([records[21], records[22]]) & 0x07
}

#[test]
fn fetch_below_v10_of_a_zstd_topic_is_unsupported_compression_type() {
    let fx = start();
    // An uncompressed batch at Produce v6 to the zstd topic: taken, stored as zstd.
    assert_eq!(produce(&fx, "z", 6, &batch(&[b"a", b"b"])), (0, 0));
    for v in [4, 9] {
        let p = fetch(&fx, "z", v);
        assert_eq!(p.error_code, UNSUPPORTED, "v{v}");
        assert_eq!(p.high_watermark, -1, "v{v}");
        assert!(p.records.unwrap_or_default().is_empty(), "v{v}");
    }
    for v in [10, 12] {
        let p = fetch(&fx, "z", v);
        assert_eq!(p.error_code, 0, "v{v}");
        assert_eq!(p.high_watermark, 2, "v{v}");
        assert_eq!(codec(&p.records.unwrap()), 4, "v{v}");
    }
    // Another topic is read at v9 as before.
    assert_eq!(produce(&fx, "plain", 6, &batch(&[b"c"])), (0, 0));
    let p = fetch(&fx, "plain", 9);
    assert_eq!((p.error_code, p.high_watermark), (0, 1));
}

#[test]
fn produce_below_v7_of_a_zstd_batch_is_unsupported_compression_type() {
    let fx = start();
    assert_eq!(produce(&fx, "z", 7, &batch(&[b"a"])), (0, 0));
    // The stored batch, zstd-compressed by the topic, is what a zstd producer would send.
    let zstd_batch = fetch(&fx, "z", 12).records.unwrap();
    assert_eq!(codec(&zstd_batch), 4);
    for v in [3, 6] {
        assert_eq!(
            produce(&fx, "plain", v, &zstd_batch),
            (UNSUPPORTED, -1),
            "v{v}"
        );
    }
    let p = fetch(&fx, "plain", 12);
    assert_eq!(p.high_watermark, 0, "nothing was appended");
    assert_eq!(produce(&fx, "plain", 7, &zstd_batch), (0, 0));
    // An unknown partition is reported as such before the codec is looked at, as Kafka.
    let req = produce_request("nope", 0, Some(zstd_batch), -1);
    let mut s = TcpStream::connect(fx.addr).unwrap();
    s.write_all(&request(ApiKey::Produce, 6, 9, &req)).unwrap();
    let (_, resp): (i32, ProduceResponse) =
        response(&mut s, ApiKey::Produce.response_header_version(6), 6);
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}
