#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The three fsync policies: what an acknowledged send guarantees, and that everything written
//! under each reads back after a reopen.

mod common;

use std::sync::Arc;
use std::time::Duration;

use thorstream::{Broker, BrokerConfig, FsyncPolicy, Producer, Record, TopicConfig};

const N: usize = 120;

fn write_and_reopen(fsync: FsyncPolicy, clean: bool) {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = common::open(tmp.path(), fsync);
    broker
        .create_topic("f", Some(common::small_segments(2, 4096)))
        .expect("create");
    let producer = Producer::new(Arc::clone(&broker));
    for i in 0..N {
        let (p, off) = producer
            .send("f", Record::new(common::value(i)), Some((i % 2) as i32))
            .expect("send");
        assert_eq!(off, (i / 2) as i64);
        let hw = broker.offsets("f", p).expect("offsets").high_watermark;
        // Every policy makes an acknowledged record readable; under `always` that also means
        // it has been fsynced (the high watermark only moves after an fsync).
        assert!(
            hw > off,
            "{fsync}: hw {hw} not past acknowledged offset {off}"
        );
        assert!(broker.is_durable("f", p, off).expect("durable"));
    }
    drop(producer);
    if clean {
        drop(broker);
    } else {
        common::crash(broker);
    }
    let broker = common::open(tmp.path(), fsync);
    for p in 0..2 {
        let records = common::read_all(&broker, "f", p);
        assert_eq!(records.len(), N / 2, "{fsync} partition {p}");
        common::assert_dense(&records, 0);
        for (k, r) in records.iter().enumerate() {
            assert_eq!(
                r.value.as_deref(),
                Some(&common::value(k * 2 + p as usize)[..])
            );
        }
    }
}

#[test]
fn always_records_read_back_after_clean_and_unclean_reopen() {
    write_and_reopen(FsyncPolicy::Always, true);
    write_and_reopen(FsyncPolicy::Always, false);
}

#[test]
fn never_records_read_back_after_clean_and_unclean_reopen() {
    write_and_reopen(FsyncPolicy::Never, true);
    write_and_reopen(FsyncPolicy::Never, false);
}

#[test]
fn interval_records_read_back_after_clean_and_unclean_reopen() {
    write_and_reopen(FsyncPolicy::Interval(50), true);
    write_and_reopen(FsyncPolicy::Interval(50), false);
}

#[test]
fn always_hides_records_until_fsynced_and_send_waits_for_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = common::open(tmp.path(), FsyncPolicy::Always);
    broker.create_topic("f", None).expect("create");
    // A raw append (no wait) is not visible until the flusher has synced it.
    let batch =
        thorstream::internals::protocol::records::encode_batch(&[Record::new(b"raw".to_vec())], 0)
            .expect("encode");
    let info = broker.append("f", 0, &batch).expect("append");
    broker
        .wait_durable("f", 0, info.last_offset, Duration::from_secs(10))
        .expect("durable");
    assert!(broker.offsets("f", 0).expect("offsets").high_watermark > info.last_offset);
    let (_, off) = Producer::new(Arc::clone(&broker))
        .send("f", Record::new(b"sent".to_vec()), None)
        .expect("send");
    assert_eq!(off, 1);
    assert_eq!(broker.offsets("f", 0).expect("offsets").high_watermark, 2);
}

#[test]
fn interval_policy_fsyncs_in_the_background() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = BrokerConfig {
        housekeeping_interval_ms: 20,
        ..common::config(tmp.path(), FsyncPolicy::Interval(50))
    };
    let broker = Arc::new(Broker::new(config).expect("broker"));
    broker
        .create_topic("f", Some(TopicConfig::default()))
        .expect("create");
    let producer = Producer::new(Arc::clone(&broker));
    for i in 0..50 {
        producer
            .send("f", Record::new(common::value(i)), None)
            .expect("send");
    }
    // The flusher syncs within ~50 ms and housekeeping then checkpoints the recovery point,
    // with no clean shutdown involved.
    let checkpoint = common::partition_dir(tmp.path(), "f", 0).join("recovery-point");
    assert!(
        common::wait_until(Duration::from_secs(5), || common::read_checkpoint(
            &checkpoint
        ) == Some(50)),
        "recovery point is {:?}",
        common::read_checkpoint(&checkpoint)
    );
}

#[test]
fn per_topic_fsync_overrides_the_broker_default() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = common::open(tmp.path(), FsyncPolicy::Never);
    let config = TopicConfig {
        fsync: Some(FsyncPolicy::Always),
        ..TopicConfig::default()
    };
    broker.create_topic("strict", Some(config)).expect("create");
    let desc = broker.describe("strict").expect("describe");
    assert_eq!(desc.config.fsync, Some(FsyncPolicy::Always));
    let (_, off) = Producer::new(Arc::clone(&broker))
        .send("strict", Record::new(b"x".to_vec()), None)
        .expect("send");
    assert!(broker.offsets("strict", 0).expect("offsets").high_watermark > off);
    drop(broker);
    let broker = common::open(tmp.path(), FsyncPolicy::Never);
    assert_eq!(
        broker.describe("strict").expect("describe").config.fsync,
        Some(FsyncPolicy::Always)
    );
}

#[test]
fn never_still_fsyncs_segments_once_they_are_rolled() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = BrokerConfig {
        housekeeping_interval_ms: 20,
        ..common::config(tmp.path(), FsyncPolicy::Never)
    };
    let broker = Arc::new(Broker::new(config).expect("broker"));
    broker
        .create_topic("f", Some(common::small_segments(1, 2048)))
        .expect("create");
    let producer = Producer::new(Arc::clone(&broker));
    for i in 0..100 {
        producer
            .send("f", Record::new(common::value(i)), None)
            .expect("send");
    }
    let dir = common::partition_dir(tmp.path(), "f", 0);
    let last_base = *common::segment_bases(&dir).last().expect("segments");
    assert!(last_base > 0, "no segment was rolled");
    // The recovery point (everything below it fsynced) reaches the rolled segments while the
    // broker runs, without waiting for a clean shutdown.
    let checkpoint = dir.join("recovery-point");
    assert!(
        common::wait_until(Duration::from_secs(5), || common::read_checkpoint(
            &checkpoint
        )
        .is_some_and(|rp| rp >= last_base)),
        "recovery point is {:?}, last segment starts at {last_base}",
        common::read_checkpoint(&checkpoint)
    );
}
