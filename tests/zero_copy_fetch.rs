#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fetch over a plain socket sends records payloads of 64 KiB or more straight from the
//! segment files (`sendfile`), smaller ones read as before: the real server in-process on
//! loopback, raw Kafka requests over a `TcpStream`. What arrives must be exactly what was
//! produced: large and small payloads side by side in one response, from the start and from
//! the middle of the log, across segments, and the connection keeps serving after each.
//! (The same responses over TLS, which reads them, are `tls.rs`'s multi-MiB Fetch.)

mod common;

use std::io::Write;
use std::net::TcpStream;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use thorstream::TopicConfig;
use thorstream::internals::protocol::records::decode_records;

use common::requests::{batch, fetch_request, produce_request, topic_name};
use common::server::start;
use common::wire::{read_frame, request};

fn call<Req, Resp>(s: &mut TcpStream, api: ApiKey, version: i16, req: &Req) -> Resp
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable,
{
    s.write_all(&request(api, version, 7, req)).unwrap();
    let mut b = read_frame(s).expect("a response, not a closed connection");
    let header = ResponseHeader::decode(&mut b, api.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 7);
    Resp::decode(&mut b, version).unwrap()
}

/// Produces one record per value to `topic`-`partition` with acks=all (visible when answered).
fn produce(s: &mut TcpStream, topic: &str, partition: i32, values: &[Vec<u8>]) {
    for v in values {
        let req = produce_request(topic, partition, Some(Bytes::from(batch(&[v]))), -1);
        let r: ProduceResponse = call(s, ApiKey::Produce, 9, &req);
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
}

/// `n` values of `len` bytes, each different (a mix-up of any two shows).
fn values(n: usize, len: usize, salt: u8) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            (0..len)
                .map(|j| (j as u8).wrapping_mul(31) ^ (i as u8) ^ salt)
                .collect()
        })
        .collect()
}

fn decode(topic: &str, p: &fetch_response::PartitionData, from: i64) -> Vec<Vec<u8>> {
    assert_eq!(p.error_code, 0, "partition {}", p.partition_index);
    let bytes = p.records.clone().unwrap_or_default();
    decode_records(topic, p.partition_index, &bytes, from)
        .unwrap()
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect()
}

fn served(s: &mut TcpStream) -> bool {
    let r: ApiVersionsResponse = call(s, ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    r.error_code == 0
}

/// Three partitions in one response: two with payloads of MiBs (sent from the files), one with
/// a few small records (read); then one of them from the middle of its log.
#[test]
fn large_and_small_payloads_in_one_response_arrive_exactly() {
    let fx = start(|_| {}, [("t", TopicConfig::with_partitions(3))], |_| {});
    let mut s = TcpStream::connect(fx.addr).unwrap();
    let big = values(6, 900 * 1024, 1);
    let small = values(3, 100, 2);
    let middle = values(3, 700 * 1024, 3);
    produce(&mut s, "t", 0, &big);
    produce(&mut s, "t", 1, &small);
    produce(&mut s, "t", 2, &middle);

    let partition = |p: i32, from: i64| {
        FetchPartition::default()
            .with_partition(p)
            .with_fetch_offset(from)
            .with_partition_max_bytes(16 << 20)
    };
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(1000)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![partition(0, 0), partition(1, 0), partition(2, 0)]),
        ]);
    let r: FetchResponse = call(&mut s, ApiKey::Fetch, 12, &req);
    let parts = &r.responses[0].partitions;
    assert_eq!(decode("t", &parts[0], 0), big);
    assert_eq!(decode("t", &parts[1], 0), small);
    assert_eq!(decode("t", &parts[2], 0), middle);
    assert!(served(&mut s));

    let r: FetchResponse = call(
        &mut s,
        ApiKey::Fetch,
        12,
        &fetch_request("t", 0, 2, 1, 1000, 16 << 20),
    );
    assert_eq!(decode("t", &r.responses[0].partitions[0], 2), big[2..]);
    assert!(served(&mut s));
}

/// With segments of 2 MiB a read stops at a segment's end: fetching on from each response's
/// last offset reads the whole log back, segment by segment, byte for byte.
#[test]
fn a_log_of_several_segments_reads_back_exactly() {
    let mut topic = TopicConfig::with_partitions(1);
    topic.segment_bytes = 2 << 20;
    let fx = start(|_| {}, [("s", topic)], |_| {});
    let mut s = TcpStream::connect(fx.addr).unwrap();
    let produced = values(12, 600 * 1024, 4);
    produce(&mut s, "s", 0, &produced);
    let mut read = Vec::new();
    let mut from = 0i64;
    while read.len() < produced.len() {
        let r: FetchResponse = call(
            &mut s,
            ApiKey::Fetch,
            12,
            &fetch_request("s", 0, from, 1, 1000, 8 << 20),
        );
        let got = decode("s", &r.responses[0].partitions[0], from);
        assert!(!got.is_empty(), "no progress at offset {from}");
        from += got.len() as i64;
        read.extend(got);
    }
    assert_eq!(read, produced);
    assert!(served(&mut s));
}
