#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A waiting Fetch decides from byte positions and reads once; the embedded consumer keeps
//! what it read. Both are measured with the broker's count of stored bytes read for
//! consumers (`Broker::bytes_read`).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse};
use thorstream::internals::BrokerInternals;
use thorstream::{Consumer, FsyncPolicy, Record, TopicConfig, TopicPartition};

use common::requests::{batch, fetch_request};
use common::wait_until;
use common::wire::{request, response};

const MIB: usize = 1024 * 1024;

fn long_poll(min_bytes: i32, max_wait_ms: i32) -> FetchRequest {
    fetch_request("t", 0, 0, min_bytes, max_wait_ms, 4 * MIB as i32)
}

/// The case from the issue: `fetch.min.bytes` = 1 MiB fed by 1 KiB produces under `fsync
/// never`. Re-reading on every wake-up read ~500 MiB to deliver 1 MiB; now the Fetch reads
/// once, when 1 MiB is there.
#[test]
fn a_long_poll_fed_small_produces_reads_at_most_twice_what_it_delivers() {
    let fx = common::server::start(
        |bc| bc.fsync = FsyncPolicy::Never,
        [("t", TopicConfig::with_partitions(1))],
        |_| {},
    );
    let mut s = TcpStream::connect(fx.addr).unwrap();
    s.write_all(&request(
        ApiKey::Fetch,
        11,
        1,
        &long_poll(MIB as i32, 120_000),
    ))
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || fx.broker.waits().parked() == 1),
        "the Fetch parks below min_bytes"
    );
    let before = fx.broker.bytes_read();
    let value = vec![7u8; 1000];
    let mut appended = 0usize;
    let mut produces = 0;
    while appended < MIB {
        let b = batch(&[&value]);
        appended += b.len();
        fx.broker.append("t", 0, &b).unwrap();
        produces += 1;
    }
    let (corr, resp): (i32, FetchResponse) = response(&mut s, 0, 11);
    assert_eq!(corr, 1);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let delivered = p.records.as_ref().map_or(0, |r| r.len());
    assert!(
        delivered >= MIB,
        "answered once min_bytes was there: {delivered} bytes"
    );
    let read = (fx.broker.bytes_read() - before) as usize;
    eprintln!("{produces} produces: read {read} bytes, delivered {delivered}");
    assert!(
        read <= 2 * delivered,
        "{produces} produces of ~1 KiB: read {read} bytes to deliver {delivered}"
    );
}

/// A waiting Fetch still answers at its deadline with what there is (below min_bytes).
#[test]
fn a_long_poll_below_min_bytes_answers_at_its_deadline_with_what_there_is() {
    let fx = common::server::start(
        |bc| bc.fsync = FsyncPolicy::Never,
        [("t", TopicConfig::with_partitions(1))],
        |_| {},
    );
    let b = batch(&[b"only"]);
    fx.broker.append("t", 0, &b).unwrap();
    let mut s = TcpStream::connect(fx.addr).unwrap();
    s.write_all(&request(ApiKey::Fetch, 11, 9, &long_poll(MIB as i32, 200)))
        .unwrap();
    let (corr, resp): (i32, FetchResponse) = response(&mut s, 0, 11);
    assert_eq!(corr, 9);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.records.as_ref().map(|r| r.len()), Some(b.len()));
    assert_eq!(fx.broker.waits().parked(), 0);
}

/// `poll` hands out at most `max_poll_records`; the rest of what it read waits in the
/// consumer, so later polls read nothing from the log until it is used up.
#[test]
fn the_embedded_consumer_keeps_what_it_read_instead_of_reading_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::open(dir.path(), FsyncPolicy::Never);
    broker
        .create_topic("t", Some(TopicConfig::with_partitions(1)))
        .unwrap();
    let records: Vec<Record> = (0..10)
        .map(|i| Record::new(format!("v{i}").into_bytes()))
        .collect();
    broker.produce("t", 0, &records).unwrap();
    let mut c = Consumer::new(std::sync::Arc::clone(&broker));
    c.assign(vec![TopicPartition::new("t", 0)]).unwrap();
    c.set_max_poll_records(3);
    let first = c.poll(None).unwrap();
    let after_first = broker.bytes_read();
    assert!(after_first > 0);
    let mut got: Vec<i64> = first.iter().map(|r| r.offset).collect();
    while got.len() < 10 {
        let more = c.poll(None).unwrap();
        assert!(!more.is_empty());
        assert!(more.len() <= 3);
        got.extend(more.iter().map(|r| r.offset));
    }
    assert_eq!(got, (0..10).collect::<Vec<i64>>());
    assert_eq!(
        broker.bytes_read(),
        after_first,
        "the one batch was read once"
    );
    // A seek drops what was kept and reads again from there.
    c.seek(&TopicPartition::new("t", 0), 4).unwrap();
    let again = c.poll(None).unwrap();
    assert_eq!(again.first().map(|r| r.offset), Some(4));
    assert!(broker.bytes_read() > after_first);
}
