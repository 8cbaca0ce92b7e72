//! Raw-frame tests against the real server (in-process, on a free loopback port): malformed
//! input closes only the offending connection, protocol-level errors come back as Kafka error
//! codes, and the broker keeps serving everyone else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use thorstream::internals::BrokerInternals;

use common::server::{Fixture, start_wire};
use common::wire::{request, response};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use thorstream::Record;
use thorstream::server::ServerConfig;

fn start() -> Fixture {
    start_with(|_| {})
}

fn start_with(tune: impl FnOnce(&mut ServerConfig)) -> Fixture {
    start_wire(64 * 1024, tune)
}

fn connect(f: &Fixture) -> TcpStream {
    let s = TcpStream::connect(f.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn assert_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection to be closed, got {other:?}"),
    }
}

/// ApiVersions over a fresh connection still works (the broker keeps serving others).
fn assert_serving(f: &Fixture) {
    let mut s = connect(f);
    s.write_all(&request(
        ApiKey::ApiVersions,
        3,
        7,
        &ApiVersionsRequest::default(),
    ))
    .unwrap();
    let (corr, resp): (i32, ApiVersionsResponse) = response(&mut s, 0, 3);
    assert_eq!(corr, 7);
    assert_eq!(resp.error_code, 0);
    assert!(
        resp.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Fetch as i16)
    );
}

#[test]
fn bad_size_prefixes_close_only_that_connection() {
    let f = start();
    for prefix in [-1i32, 0, 2 * 1024 * 1024, i32::MIN] {
        let mut s = connect(&f);
        s.write_all(&prefix.to_be_bytes()).unwrap();
        assert_closed(&mut s);
        assert_serving(&f);
    }
}

#[test]
fn truncated_header_unknown_key_and_garbage_close_the_connection() {
    let f = start();
    let cases: Vec<Vec<u8>> = vec![
        vec![0, 0, 0, 3, 0, 18, 0], // 3-byte request: no full header
        vec![0, 0, 0, 8, 0x27, 0x0f, 0, 0, 0, 0, 0, 1], // API key 9999
        vec![0, 0, 0, 8, 0, 3, 0, 99, 0, 0, 0, 1], // Metadata v99
        {
            // Metadata v1 header followed by garbage claiming a huge topic array.
            let mut v = request(ApiKey::Metadata, 1, 1, &MetadataRequest::default());
            let n = v.len();
            v.truncate(n - 4);
            v.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
            v
        },
    ];
    for bytes in cases {
        let mut s = connect(&f);
        s.write_all(&bytes).unwrap();
        assert_closed(&mut s);
        assert_serving(&f);
    }
}

#[test]
fn unsupported_api_versions_version_gets_error_35_with_ranges() {
    let f = start();
    let mut s = connect(&f);
    // ApiVersions v99: header is not decodable by version, so only key/version/correlation.
    let mut frame = BytesMut::new();
    frame.put_i32(10);
    frame.put_i16(ApiKey::ApiVersions as i16);
    frame.put_i16(99);
    frame.put_i32(42);
    frame.put_i16(-1);
    s.write_all(&frame).unwrap();
    let (corr, resp): (i32, ApiVersionsResponse) = response(&mut s, 0, 0);
    assert_eq!(corr, 42);
    assert_eq!(resp.error_code, 35);
    let fetch = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Fetch as i16)
        .expect("fetch advertised");
    assert!(fetch.min_version <= fetch.max_version);
}

fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ])
}

fn batch(values: &[&[u8]]) -> Vec<u8> {
    let recs: Vec<Record> = values.iter().map(|v| Record::new(v.to_vec())).collect();
    thorstream::internals::protocol::records::encode_batch(&recs, 1_700_000_000_000).unwrap()
}

fn produce_code(s: &mut TcpStream, req: &ProduceRequest) -> (i16, i64) {
    s.write_all(&request(ApiKey::Produce, 7, 3, req)).unwrap();
    let (_, resp): (i32, ProduceResponse) = response(s, 0, 7);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[test]
fn produce_errors_are_kafka_codes_and_the_connection_stays_open() {
    let f = start();
    let mut s = connect(&f);
    let good = Bytes::from(batch(&[b"a", b"b"]));
    assert_eq!(
        produce_code(&mut s, &produce_request("t", 0, good.clone(), -1)),
        (0, 0)
    );
    // Unknown partition and unknown topic: UNKNOWN_TOPIC_OR_PARTITION (3).
    assert_eq!(
        produce_code(&mut s, &produce_request("t", 9, good.clone(), 1)).0,
        3
    );
    assert_eq!(
        produce_code(&mut s, &produce_request("nope", 0, good.clone(), 1)).0,
        3
    );
    // Flipped byte inside the CRC-covered region: CORRUPT_MESSAGE (2).
    let mut bad = batch(&[b"payload"]);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(
        produce_code(&mut s, &produce_request("t", 0, Bytes::from(bad), 1)).0,
        2
    );
    // Batch over max.message.bytes (64 KiB here): MESSAGE_TOO_LARGE (10).
    let big = batch(&[&vec![7u8; 100 * 1024]]);
    assert_eq!(
        produce_code(&mut s, &produce_request("t", 0, Bytes::from(big), 1)).0,
        10
    );
    // Bad acks value: INVALID_REQUIRED_ACKS (21).
    assert_eq!(
        produce_code(&mut s, &produce_request("t", 0, good.clone(), 5)).0,
        21
    );
    // The same connection keeps working and nothing bad was stored.
    assert_eq!(
        produce_code(&mut s, &produce_request("t", 0, good, 1)),
        (0, 2)
    );
    assert_eq!(f.broker.offsets("t", 0).unwrap().log_end_offset, 4);
}

fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1024 * 1024)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1024 * 1024),
                ]),
        ])
}

fn fetch(s: &mut TcpStream, req: &FetchRequest) -> fetch_response::PartitionData {
    s.write_all(&request(ApiKey::Fetch, 11, 5, req)).unwrap();
    let (corr, mut resp): (i32, FetchResponse) = response(s, 0, 11);
    assert_eq!(corr, 5);
    resp.responses.remove(0).partitions.remove(0)
}

#[test]
fn fetch_out_of_range_and_unknown_partition_are_error_codes() {
    let f = start();
    Arc::clone(&f.broker)
        .produce("t", 0, &[Record::new(b"x".to_vec())])
        .unwrap();
    let mut s = connect(&f);
    let p = fetch(&mut s, &fetch_request("t", 0, 50, 0));
    assert_eq!(p.error_code, 1, "OFFSET_OUT_OF_RANGE");
    assert_eq!(p.high_watermark, 1);
    let p = fetch(&mut s, &fetch_request("t", 7, 0, 0));
    assert_eq!(p.error_code, 3);
    let p = fetch(&mut s, &fetch_request("t", 0, 0, 0));
    assert_eq!(p.error_code, 0);
    let records = p.records.unwrap();
    let decoded =
        thorstream::internals::protocol::records::decode_records("t", 0, &records, 0).unwrap();
    assert_eq!(decoded.len(), 1);
    assert_eq!(decoded[0].value.as_deref(), Some(&b"x"[..]));
}

#[test]
fn long_poll_fetch_completes_when_data_arrives_not_at_the_deadline() {
    let f = start();
    let mut s = connect(&f);
    let started = Instant::now();
    s.write_all(&request(
        ApiKey::Fetch,
        11,
        9,
        &fetch_request("t", 1, 0, 20_000),
    ))
    .unwrap();
    // The produce must come after the fetch parked: wait for it in the broker's wait set.
    assert!(
        common::wait_until(Duration::from_secs(10), || f.broker.waits().parked() == 1),
        "the Fetch parks"
    );
    let mut p = connect(&f);
    assert_eq!(
        produce_code(
            &mut p,
            &produce_request("t", 1, Bytes::from(batch(&[b"late"])), -1)
        )
        .0,
        0
    );
    let (corr, mut resp): (i32, FetchResponse) = response(&mut s, 0, 11);
    let waited = started.elapsed();
    assert_eq!(corr, 9);
    let part = resp.responses.remove(0).partitions.remove(0);
    let recs =
        thorstream::internals::protocol::records::decode_records("t", 1, &part.records.unwrap(), 0)
            .unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].value.as_deref(), Some(&b"late"[..]));
    // Completed by the produce, far before the 20 s max_wait.
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
}

#[test]
fn long_poll_fetch_times_out_empty_at_max_wait() {
    let f = start();
    let mut s = connect(&f);
    let started = Instant::now();
    let p = fetch(&mut s, &fetch_request("t", 0, 0, 300));
    assert_eq!(p.error_code, 0);
    assert!(p.records.is_none_or(|r| r.is_empty()));
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let f = start();
    let mut s = connect(&f);
    let mut bytes = Vec::new();
    for i in 0..20 {
        bytes.extend(request(
            ApiKey::ApiVersions,
            3,
            100 + i,
            &ApiVersionsRequest::default(),
        ));
        bytes.extend(request(
            ApiKey::Produce,
            7,
            1000 + i,
            &produce_request("t", 0, Bytes::from(batch(&[b"p"])), 1),
        ));
    }
    s.write_all(&bytes).unwrap();
    for i in 0..20 {
        let (corr, _): (i32, ApiVersionsResponse) = response(&mut s, 0, 3);
        assert_eq!(corr, 100 + i);
        let (corr, resp): (i32, ProduceResponse) = response(&mut s, 0, 7);
        assert_eq!(corr, 1000 + i);
        assert_eq!(
            resp.responses[0].partition_responses[0].base_offset,
            i64::from(i)
        );
    }
}

#[test]
fn connections_over_the_per_ip_limit_are_refused_and_others_kept() {
    let f = start_with(|c| c.connections_per_ip_max = 2);
    let mut a = connect(&f);
    let mut b = connect(&f);
    for s in [&mut a, &mut b] {
        s.write_all(&request(
            ApiKey::ApiVersions,
            3,
            1,
            &ApiVersionsRequest::default(),
        ))
        .unwrap();
        let (_, r): (i32, ApiVersionsResponse) = response(s, 0, 3);
        assert_eq!(r.error_code, 0);
    }
    let mut c = connect(&f);
    assert_closed(&mut c);
    // The two admitted connections still work, and a slot frees when one closes.
    a.write_all(&request(
        ApiKey::ApiVersions,
        3,
        2,
        &ApiVersionsRequest::default(),
    ))
    .unwrap();
    let (corr, _): (i32, ApiVersionsResponse) = response(&mut a, 0, 3);
    assert_eq!(corr, 2);
    drop(b);
    // The slot frees once the server has seen b close: a new connection is then answered.
    assert!(
        common::wait_until(Duration::from_secs(10), || answers_api_versions(&f)),
        "no connection admitted after one of the two closed"
    );
    assert_serving(&f);
}

/// Whether a fresh connection gets an answer to ApiVersions (false if the server closes it).
fn answers_api_versions(f: &Fixture) -> bool {
    let mut s = connect(f);
    let req = request(ApiKey::ApiVersions, 3, 5, &ApiVersionsRequest::default());
    s.write_all(&req).is_ok() && common::wire::read_frame(&mut s).is_some()
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let f = start_with(|c| c.connection_idle_ms = 300);
    let mut idle = connect(&f);
    let started = Instant::now();
    assert_closed(&mut idle);
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_serving(&f);
}

#[test]
fn half_a_frame_does_not_block_other_clients() {
    let f = start();
    let mut slow = connect(&f);
    let frame = request(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default());
    slow.write_all(&frame[..frame.len() / 2]).unwrap();
    for _ in 0..3 {
        assert_serving(&f);
    }
    // Finishing the frame later still gets the answer.
    slow.write_all(&frame[frame.len() / 2..]).unwrap();
    let (corr, _): (i32, ApiVersionsResponse) = response(&mut slow, 0, 3);
    assert_eq!(corr, 1);
}

/// librdkafka pipelines requests on one connection. An acks=all Produce that waits for its
/// fsync frees the connection for the next request (group commit across the pipeline), but
/// appends keep the order the requests were sent in and responses come back in that order,
/// including error responses and a long-poll Fetch queued behind the produces.
#[test]
fn pipelined_requests_append_in_order_and_are_answered_in_order() {
    let f = start();
    let mut s = connect(&f);
    let mut wire = Vec::new();
    let n = 40;
    for i in 0..n {
        let partition = match i {
            17 => 9, // unknown partition: an error response in the middle of the pipeline
            _ => i % 2,
        };
        let acks = if i % 5 == 4 { 1 } else { -1 };
        let value = format!("v{i}");
        let req = produce_request(
            "t",
            partition,
            Bytes::from(batch(&[value.as_bytes()])),
            acks,
        );
        wire.extend(request(ApiKey::Produce, 7, i, &req));
    }
    // A Fetch behind the produces that must see all of partition 0 (min_bytes: everything).
    let mut fetch0 = fetch_request("t", 0, 0, 5000);
    fetch0.min_bytes = 1;
    wire.extend(request(ApiKey::Fetch, 11, n, &fetch0));
    s.write_all(&wire).unwrap();

    let mut next_offset = [0i64; 2];
    for i in 0..n {
        let (corr, resp): (i32, ProduceResponse) = response(&mut s, 0, 7);
        assert_eq!(corr, i, "responses in request order");
        let p = &resp.responses[0].partition_responses[0];
        if i == 17 {
            assert_eq!(p.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
            continue;
        }
        assert_eq!(p.error_code, 0, "request {i}");
        let part = (i % 2) as usize;
        assert_eq!(
            p.base_offset, next_offset[part],
            "request {i}: appended in order"
        );
        next_offset[part] += 1;
    }
    let (corr, mut resp): (i32, FetchResponse) = response(&mut s, 0, 11);
    assert_eq!(
        corr, n,
        "the Fetch is answered after every Produce before it"
    );
    let data = resp.responses.remove(0).partitions.remove(0);
    assert_eq!(data.error_code, 0);
    let values = |bytes: &[u8]| -> Vec<String> {
        thorstream::internals::protocol::records::decode_records("t", 0, bytes, 0)
            .unwrap()
            .into_iter()
            .map(|r| String::from_utf8(r.value.unwrap_or_default()).unwrap())
            .collect()
    };
    let expected: Vec<String> = (0..n)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("v{i}"))
        .collect();
    // Evaluated once the produces before it were appended; what it returns is bounded by the
    // high watermark (the last acks=all append may not be durable yet): a prefix, in order.
    let seen = values(&data.records.unwrap_or_default());
    assert!(!seen.is_empty() && expected.starts_with(&seen), "{seen:?}");
    let all = fetch(&mut s, &fetch_request("t", 0, 0, 0));
    assert_eq!(
        values(&all.records.unwrap_or_default()),
        expected,
        "partition 0 holds the records in send order"
    );
    assert_serving(&f);
}

/// Requests sent back to back reach a worker together and run in order; a long-poll Fetch
/// among them holds the connection, so the requests behind it, already read, wait for its
/// answer (the Produce behind it is not appended before it is answered), and then run.
#[test]
fn requests_behind_a_long_poll_fetch_in_one_write_wait_for_it_then_run_in_order() {
    let f = start();
    let mut s = connect(&f);
    let mut wire = Vec::new();
    wire.extend(request(
        ApiKey::ApiVersions,
        3,
        1,
        &ApiVersionsRequest::default(),
    ));
    // Partition 1 is empty: the Fetch waits its 300 ms for a byte that only the Produce
    // behind it would bring.
    wire.extend(request(
        ApiKey::Fetch,
        11,
        2,
        &fetch_request("t", 1, 0, 300),
    ));
    wire.extend(request(
        ApiKey::ApiVersions,
        3,
        3,
        &ApiVersionsRequest::default(),
    ));
    let req = produce_request("t", 1, Bytes::from(batch(&[b"behind"])), -1);
    wire.extend(request(ApiKey::Produce, 7, 4, &req));
    wire.extend(request(
        ApiKey::ApiVersions,
        3,
        5,
        &ApiVersionsRequest::default(),
    ));
    s.write_all(&wire).unwrap();

    let (corr, _): (i32, ApiVersionsResponse) = response(&mut s, 0, 3);
    assert_eq!(corr, 1);
    let (corr, mut resp): (i32, FetchResponse) = response(&mut s, 0, 11);
    assert_eq!(corr, 2);
    let data = resp.responses.remove(0).partitions.remove(0);
    assert_eq!(data.error_code, 0);
    assert_eq!(
        data.high_watermark, 0,
        "the Produce behind the Fetch ran before it"
    );
    assert!(data.records.unwrap_or_default().is_empty());
    let (corr, _): (i32, ApiVersionsResponse) = response(&mut s, 0, 3);
    assert_eq!(corr, 3);
    let (corr, resp): (i32, ProduceResponse) = response(&mut s, 0, 7);
    assert_eq!(corr, 4);
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    let (corr, _): (i32, ApiVersionsResponse) = response(&mut s, 0, 3);
    assert_eq!(corr, 5);

    // The same with the Fetch woken early by another connection's Produce: the requests
    // behind it run after its answer, whichever worker gives it.
    let mut wire = Vec::new();
    wire.extend(request(
        ApiKey::Fetch,
        11,
        6,
        &fetch_request("t", 1, 1, 10_000),
    ));
    for corr in 7..12 {
        wire.extend(request(
            ApiKey::ApiVersions,
            3,
            corr,
            &ApiVersionsRequest::default(),
        ));
    }
    s.write_all(&wire).unwrap();
    let mut other = connect(&f);
    let req = produce_request("t", 1, Bytes::from(batch(&[b"wakes"])), -1);
    assert_eq!(produce_code(&mut other, &req), (0, 1));
    let (corr, mut resp): (i32, FetchResponse) = response(&mut s, 0, 11);
    assert_eq!(corr, 6);
    let data = resp.responses.remove(0).partitions.remove(0);
    assert_eq!(data.high_watermark, 2);
    for corr in 7..12 {
        let (got, _): (i32, ApiVersionsResponse) = response(&mut s, 0, 3);
        assert_eq!(got, corr);
    }
}

/// A request that closes its connection (undecodable) stops the requests sent after it in the
/// same write: they never run.
#[test]
fn requests_after_an_undecodable_one_in_the_same_write_never_run() {
    let f = start();
    let mut s = connect(&f);
    let mut wire = Vec::new();
    // acks=all: parked until durable, its answer still precedes the close.
    let first = produce_request("t", 0, Bytes::from(batch(&[b"before"])), -1);
    wire.extend(request(ApiKey::Produce, 7, 1, &first));
    wire.extend([0, 0, 0, 8, 0x27, 0x0f, 0, 0, 0, 0, 0, 2]); // API key 9999
    let after = produce_request("t", 0, Bytes::from(batch(&[b"after"])), -1);
    wire.extend(request(ApiKey::Produce, 7, 3, &after));
    s.write_all(&wire).unwrap();
    let (corr, resp): (i32, ProduceResponse) = response(&mut s, 0, 7);
    assert_eq!(corr, 1);
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    assert_closed(&mut s);
    let mut s = connect(&f);
    let p = fetch(&mut s, &fetch_request("t", 0, 0, 0));
    assert_eq!(
        p.high_watermark, 1,
        "only the Produce before the bad frame ran"
    );
    // And nothing appended past it: the log ends there too.
    assert_eq!(f.broker.offsets("t", 0).unwrap().log_end_offset, 1);
    assert_serving(&f);
}

/// Slowloris: a client trickling one byte at a time resets the idle timer forever, so a frame
/// must arrive whole within `request_read_timeout_ms` of its first byte.
#[test]
fn a_request_trickled_slower_than_the_read_timeout_closes_the_connection() {
    let f = start_with(|c| c.request_read_timeout_ms = 400);
    let mut slow = connect(&f);
    let frame = request(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default());
    let started = Instant::now();
    let mut closed = false;
    for b in &frame {
        if slow.write_all(std::slice::from_ref(b)).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(60)); // the trickle under test
    }
    if !closed {
        assert_closed(&mut slow);
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(350),
        "closed after {took:?}, before the timeout"
    );
    // Others are unaffected, and a client that sends in time is answered.
    assert_serving(&f);
    let mut ok = connect(&f);
    ok.write_all(&frame[..frame.len() / 2]).unwrap();
    // The scenario: a frame split by a pause, whole well within the read timeout.
    std::thread::sleep(Duration::from_millis(100));
    ok.write_all(&frame[frame.len() / 2..]).unwrap();
    let (corr, _): (i32, ApiVersionsResponse) = response(&mut ok, 0, 3);
    assert_eq!(corr, 1);
}

/// Produce requests larger than `LARGE_FRAME_BYTES_MIN` are read from the socket straight into
/// a buffer of their own: written in pieces that cut them anywhere, back to back with small
/// requests in one write, they are appended whole and in order.
#[test]
fn large_produce_requests_in_pieces_are_appended_whole_and_in_order() {
    let f = start_wire(4 << 20, |_| {});
    let mut s = connect(&f);
    let value =
        |i: usize, len: usize| -> Vec<u8> { (0..len).map(|j| (i * 13 + j) as u8).collect() };
    let sizes = [300_000usize, 10, 1_000_000, 70_000, 5];
    let mut wire = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        // acks=all: answered once durable, so the records are readable when the answers are in.
        let req = produce_request("t", 0, Bytes::from(batch(&[&value(i, len)])), -1);
        wire.extend(request(ApiKey::Produce, 7, i as i32, &req));
    }
    // Pieces that end inside a size prefix, inside the first sixteenth of a large frame and
    // far into one.
    for piece in [
        &wire[..2],
        &wire[2..9_000],
        &wire[9_000..250_000],
        &wire[250_000..],
    ] {
        s.write_all(piece).unwrap();
        s.flush().unwrap();
    }
    for (i, _) in sizes.iter().enumerate() {
        let (corr, resp): (i32, ProduceResponse) = response(&mut s, 0, 7);
        assert_eq!(corr, i as i32);
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, i as i64), "request {i}");
    }
    let stored = common::read_all(&f.broker, "t", 0);
    assert_eq!(stored.len(), sizes.len());
    for (i, (r, &len)) in stored.iter().zip(&sizes).enumerate() {
        assert_eq!(
            r.value.as_deref(),
            Some(&value(i, len)[..]),
            "record {i} byte for byte"
        );
    }
    assert_serving(&f);
}

/// A client that goes away in the middle of a large request's bytes: its connection is closed,
/// nothing of that request is appended, and everyone else is served.
#[test]
fn a_connection_closed_inside_a_large_request_appends_nothing() {
    let f = start_wire(4 << 20, |_| {});
    let mut s = connect(&f);
    let req = produce_request("t", 1, Bytes::from(batch(&[&vec![3u8; 500_000]])), 1);
    let frame = request(ApiKey::Produce, 7, 1, &req);
    s.write_all(&frame[..300_000]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_closed(&mut s);
    assert_serving(&f);
    assert!(f.broker.offsets("t", 1).unwrap().log_end_offset == 0);
}
