#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Retention by size and by time deletes whole old segments and moves the log start offset;
//! DeleteRecords moves it explicitly. Housekeeping runs every 20 ms here.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use thorstream::{
    Broker, BrokerConfig, Consumer, Error, FsyncPolicy, Producer, Record, TopicConfig,
    TopicPartition,
};

const TOPIC: &str = "ret";

fn open(dir: &Path) -> Arc<Broker> {
    let config = BrokerConfig {
        housekeeping_interval_ms: 20,
        ..common::config(dir, FsyncPolicy::Never)
    };
    Arc::new(Broker::new(config).expect("broker"))
}

/// Bytes of the partition's segment files. Housekeeping runs concurrently: a segment listed
/// and then deleted by retention before its size is read counts as the 0 bytes it now holds.
fn log_bytes(dir: &Path) -> u64 {
    common::segment_bases(dir)
        .iter()
        .map(|&b| {
            std::fs::metadata(common::segment_path(dir, b, "log"))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum()
}

/// Reading below the start is out of range; reading at it returns the record at the start.
fn assert_starts_at(broker: &Broker, start: i64) {
    match broker.read_records(TOPIC, 0, start - 1, 1 << 20) {
        Err(Error::OffsetOutOfRange {
            offset,
            log_start_offset,
            ..
        }) => {
            assert_eq!(offset, start - 1);
            assert_eq!(log_start_offset, start);
        }
        other => panic!("read below log start gave {other:?}"),
    }
    let (records, offsets) = broker.read_records(TOPIC, 0, start, 1 << 20).expect("read");
    assert_eq!(offsets.log_start_offset, start);
    assert_eq!(records.first().expect("record at log start").offset, start);
    assert_eq!(
        records[0].value.as_deref(),
        Some(&common::value(start as usize)[..])
    );
}

#[test]
fn retention_bytes_deletes_oldest_segments_and_moves_log_start() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = open(tmp.path());
    let config = TopicConfig {
        segment_bytes: 2048,
        retention_bytes: 8192,
        ..TopicConfig::default()
    };
    broker.create_topic(TOPIC, Some(config)).expect("create");
    let producer = Producer::new(Arc::clone(&broker));
    for i in 0..500 {
        producer
            .send(TOPIC, Record::new(common::value(i)), Some(0))
            .expect("send");
    }
    let dir = common::partition_dir(tmp.path(), TOPIC, 0);
    assert!(
        common::wait_until(Duration::from_secs(5), || log_bytes(&dir) <= 8192 + 2048),
        "retention did not run: {} bytes on disk",
        log_bytes(&dir)
    );
    let start = broker.offsets(TOPIC, 0).expect("offsets").log_start_offset;
    assert!(start > 0);
    let bases = common::segment_bases(&dir);
    assert_eq!(
        bases[0], start,
        "log start is the first remaining segment's base"
    );
    assert_starts_at(&broker, start);
    let rest = common::read_all(&broker, TOPIC, 0);
    common::assert_dense(&rest, start);
    assert_eq!(rest.last().expect("records").offset, 499);

    // A consumer positioned below the new start resets to it (auto reset earliest).
    let mut consumer = Consumer::new(Arc::clone(&broker));
    let tp = TopicPartition::new(TOPIC, 0);
    consumer.assign(vec![tp.clone()]).expect("assign");
    consumer.seek(&tp, 0).expect("seek");
    let mut got = Vec::new();
    for _ in 0..100 {
        let batch = consumer.poll(None).expect("poll");
        if batch.is_empty() && !got.is_empty() {
            break;
        }
        got.extend(batch);
    }
    assert_eq!(got.first().expect("records").offset, start);

    // The new start survives a restart.
    drop(consumer);
    drop(producer);
    drop(broker);
    let broker = open(tmp.path());
    assert_eq!(
        broker.offsets(TOPIC, 0).expect("offsets").log_start_offset,
        start
    );
    assert_starts_at(&broker, start);
}

#[test]
fn retention_ms_deletes_segments_whose_records_are_all_old() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = open(tmp.path());
    let config = TopicConfig {
        segment_bytes: 2048,
        retention_ms: 60_000,
        ..TopicConfig::default()
    };
    broker.create_topic(TOPIC, Some(config)).expect("create");
    let producer = Producer::new(Arc::clone(&broker));
    let old = thorstream::internals::storage::now_ms() - 3_600_000;
    const OLD: usize = 200;
    for i in 0..OLD {
        let rec = Record::new(common::value(i)).timestamp(old + i as i64);
        producer.send(TOPIC, rec, Some(0)).expect("send");
    }
    for i in OLD..OLD + 100 {
        producer
            .send(TOPIC, Record::new(common::value(i)), Some(0))
            .expect("send");
    }
    let dir = common::partition_dir(tmp.path(), TOPIC, 0);
    // The segment holding the first fresh record (and every later one) must stay.
    let keep_from = *common::segment_bases(&dir)
        .iter()
        .filter(|&&b| b <= OLD as i64)
        .max()
        .expect("segment");
    assert!(keep_from > 0);
    assert!(
        common::wait_until(Duration::from_secs(5), || {
            broker.offsets(TOPIC, 0).expect("offsets").log_start_offset == keep_from
        }),
        "log start is {}, expected {keep_from}",
        broker.offsets(TOPIC, 0).expect("offsets").log_start_offset
    );
    assert_eq!(common::segment_bases(&dir)[0], keep_from);
    assert_starts_at(&broker, keep_from);
    // Fresh records are never deleted, however often retention runs.
    assert!(common::wait_for_housekeeping_passes(
        &broker,
        3,
        Duration::from_secs(10)
    ));
    let rest = common::read_all(&broker, TOPIC, 0);
    common::assert_dense(&rest, keep_from);
    assert_eq!(rest.len() as i64, (OLD + 100) as i64 - keep_from);
}

#[test]
fn retention_never_deletes_the_active_segment() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = open(tmp.path());
    let config = TopicConfig {
        retention_ms: 1,
        retention_bytes: 1,
        ..TopicConfig::default()
    };
    broker.create_topic(TOPIC, Some(config)).expect("create");
    let producer = Producer::new(Arc::clone(&broker));
    let old = thorstream::internals::storage::now_ms() - 3_600_000;
    for i in 0..20 {
        let rec = Record::new(common::value(i)).timestamp(old);
        producer.send(TOPIC, rec, Some(0)).expect("send");
    }
    assert!(common::wait_for_housekeeping_passes(
        &broker,
        3,
        Duration::from_secs(10)
    ));
    assert_eq!(
        broker.offsets(TOPIC, 0).expect("offsets").log_start_offset,
        0
    );
    assert_eq!(common::read_all(&broker, TOPIC, 0).len(), 20);
}

#[test]
fn delete_records_moves_log_start_and_drops_whole_segments() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = open(tmp.path());
    broker
        .create_topic(TOPIC, Some(common::small_segments(1, 2048)))
        .expect("create");
    let producer = Producer::new(Arc::clone(&broker));
    for i in 0..200 {
        producer
            .send(TOPIC, Record::new(common::value(i)), Some(0))
            .expect("send");
    }
    let dir = common::partition_dir(tmp.path(), TOPIC, 0);
    let bases = common::segment_bases(&dir);
    assert!(bases.len() > 4);
    // A cut inside a segment: the start moves exactly, the segment stays.
    let target = bases[2] + 1;
    assert_eq!(
        broker.delete_records(TOPIC, 0, target).expect("delete"),
        target
    );
    assert_eq!(
        broker.offsets(TOPIC, 0).expect("offsets").log_start_offset,
        target
    );
    assert_eq!(common::segment_bases(&dir)[0], bases[2]);
    assert_starts_at(&broker, target);
    // Moving backwards is a no-op; past the high watermark is an error.
    assert_eq!(broker.delete_records(TOPIC, 0, 5).expect("delete"), target);
    assert!(matches!(
        broker.delete_records(TOPIC, 0, 201),
        Err(Error::OffsetOutOfRange { .. })
    ));
    // Survives a restart, then -1 means "everything up to the high watermark".
    drop(producer);
    drop(broker);
    let broker = open(tmp.path());
    assert_starts_at(&broker, target);
    assert_eq!(broker.delete_records(TOPIC, 0, -1).expect("delete"), 200);
    let o = broker.offsets(TOPIC, 0).expect("offsets");
    assert_eq!((o.log_start_offset, o.high_watermark), (200, 200));
    let (records, _) = broker.read_records(TOPIC, 0, 200, 1 << 20).expect("read");
    assert!(records.is_empty());
    let (_, off) = Producer::new(Arc::clone(&broker))
        .send(TOPIC, Record::new(common::value(200)), Some(0))
        .expect("send");
    assert_eq!(off, 200);
    assert_starts_at(&broker, 200);
}
