#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The embedded consumer: assign, seek, positions, commits resuming a group, poll timeouts.

mod common;

use thorstream::internals::BrokerInternals;

use std::sync::Arc;
use std::time::{Duration, Instant};

use thorstream::{
    Broker, Consumer, Error, FsyncPolicy, OffsetReset, Producer, Record, TopicConfig,
    TopicPartition,
};

fn broker_with(
    topic: &str,
    partitions: u32,
    fsync: FsyncPolicy,
) -> (tempfile::TempDir, Arc<Broker>) {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = common::open(tmp.path(), fsync);
    broker
        .create_topic(topic, Some(TopicConfig::with_partitions(partitions)))
        .expect("create");
    (tmp, broker)
}

fn produce(broker: &Arc<Broker>, topic: &str, partition: i32, n: usize) {
    let producer = Producer::new(Arc::clone(broker));
    for i in 0..n {
        producer
            .send(topic, Record::new(common::value(i)), Some(partition))
            .expect("send");
    }
}

#[test]
fn assign_seek_and_position() {
    let (_tmp, broker) = broker_with("t", 3, FsyncPolicy::Never);
    produce(&broker, "t", 1, 10);
    let tp = TopicPartition::new("t", 1);
    let mut consumer = Consumer::new(Arc::clone(&broker));
    consumer.assign(vec![tp.clone()]).expect("assign");
    assert_eq!(consumer.assignment(), vec![tp.clone()]);
    assert_eq!(consumer.position(&tp).expect("position"), 0);

    consumer.seek(&tp, 5).expect("seek");
    let records = consumer.poll(None).expect("poll");
    common::assert_dense(&records, 5);
    assert_eq!(records.len(), 5);
    assert!(records.iter().all(|r| r.partition == 1 && r.topic == "t"));
    assert_eq!(records[0].value.as_deref(), Some(&common::value(5)[..]));
    assert_eq!(consumer.position(&tp).expect("position"), 10);
    assert!(consumer.poll(None).expect("poll").is_empty());

    consumer.seek_to_beginning(&[]).expect("seek to beginning");
    assert_eq!(consumer.position(&tp).expect("position"), 0);
    assert_eq!(consumer.poll(None).expect("poll").len(), 10);

    consumer.seek(&tp, 3).expect("seek");
    consumer
        .seek_to_end(std::slice::from_ref(&tp))
        .expect("seek to end");
    assert_eq!(consumer.position(&tp).expect("position"), 10);
    produce(&broker, "t", 1, 2);
    let records = consumer.poll(None).expect("poll");
    common::assert_dense(&records, 10);
    assert_eq!(records.len(), 2);

    let other = TopicPartition::new("t", 0);
    assert!(matches!(
        consumer.position(&other),
        Err(Error::NotAssigned(_))
    ));
    assert!(matches!(
        consumer.seek(&other, 0),
        Err(Error::NotAssigned(_))
    ));
}

#[test]
fn subscribe_assigns_every_partition_and_polls_them_all() {
    let (_tmp, broker) = broker_with("t", 4, FsyncPolicy::Never);
    for p in 0..4 {
        produce(&broker, "t", p, 3 + p as usize);
    }
    let mut consumer = Consumer::new(Arc::clone(&broker));
    consumer
        .subscribe(vec!["t".to_string()])
        .expect("subscribe");
    assert_eq!(consumer.assignment().len(), 4);
    let records = consumer.poll(None).expect("poll");
    assert_eq!(records.len(), 3 + 4 + 5 + 6);
    for p in 0..4 {
        let mine: Vec<_> = records
            .iter()
            .filter(|r| r.partition == p)
            .cloned()
            .collect();
        common::assert_dense(&mine, 0);
        assert_eq!(mine.len(), 3 + p as usize);
    }
}

#[test]
fn max_poll_records_bounds_each_poll_without_skipping() {
    let (_tmp, broker) = broker_with("t", 1, FsyncPolicy::Never);
    let producer = Producer::new(Arc::clone(&broker));
    // Batches of 7 so that the poll limit cuts through batches.
    for chunk in 0..10 {
        let records: Vec<Record> = (0..7)
            .map(|i| Record::new(common::value(chunk * 7 + i)))
            .collect();
        producer.send_batch("t", records, Some(0)).expect("send");
    }
    let mut consumer = Consumer::new(Arc::clone(&broker));
    consumer.set_max_poll_records(5);
    consumer
        .assign(vec![TopicPartition::new("t", 0)])
        .expect("assign");
    let mut all = Vec::new();
    loop {
        let got = consumer.poll(None).expect("poll");
        assert!(got.len() <= 5);
        if got.is_empty() {
            break;
        }
        all.extend(got);
    }
    common::assert_dense(&all, 0);
    assert_eq!(all.len(), 70);
}

#[test]
fn committed_offsets_are_where_the_next_group_member_starts() {
    let (_tmp, broker) = broker_with("t", 2, FsyncPolicy::Never);
    produce(&broker, "t", 0, 10);
    produce(&broker, "t", 1, 10);
    let mut first = Consumer::new(Arc::clone(&broker));
    first.set_group_id("g");
    first.set_max_poll_records(6);
    first.subscribe(vec!["t".to_string()]).expect("subscribe");
    let got = first.poll(None).expect("poll");
    assert_eq!(got.len(), 6);
    first.commit().expect("commit");
    let tp0 = TopicPartition::new("t", 0);
    let tp1 = TopicPartition::new("t", 1);
    let c0 = first.committed(&tp0).expect("committed").expect("some");
    let c1 = first.committed(&tp1).expect("committed").expect("some");
    assert_eq!(c0, first.position(&tp0).expect("pos"));
    assert_eq!(c1, first.position(&tp1).expect("pos"));
    assert_eq!(c0 + c1, 6);
    drop(first);

    // The next member subscribing resumes at the committed offsets.
    let mut second = Consumer::new(Arc::clone(&broker));
    second.set_group_id("g");
    second.subscribe(vec!["t".to_string()]).expect("subscribe");
    assert_eq!(second.position(&tp0).expect("pos"), c0);
    assert_eq!(second.position(&tp1).expect("pos"), c1);
    let rest = second.poll(None).expect("poll");
    assert_eq!(rest.len(), 20 - 6);
    for r in &rest {
        let start = if r.partition == 0 { c0 } else { c1 };
        assert!(r.offset >= start);
    }

    // Explicit commits, then `assign` resumes there too.
    second
        .commit_offsets(&[(tp1.clone(), 8)])
        .expect("commit offsets");
    drop(second);
    let mut third = Consumer::new(Arc::clone(&broker));
    third.set_group_id("g");
    third.assign(vec![tp1.clone()]).expect("assign");
    assert_eq!(third.position(&tp1).expect("pos"), 8);
    let got = third.poll(None).expect("poll");
    common::assert_dense(&got, 8);
    assert_eq!(got.len(), 2);

    // Another group has no commits and starts from the beginning (default reset: earliest).
    let mut other = Consumer::new(Arc::clone(&broker));
    other.set_group_id("other");
    other.assign(vec![tp1.clone()]).expect("assign");
    assert_eq!(other.position(&tp1).expect("pos"), 0);
    assert_eq!(other.committed(&tp1).expect("committed"), None);
}

#[test]
fn offset_reset_latest_skips_existing_records() {
    let (_tmp, broker) = broker_with("t", 1, FsyncPolicy::Never);
    produce(&broker, "t", 0, 4);
    let mut consumer = Consumer::new(Arc::clone(&broker));
    consumer.set_auto_offset_reset(OffsetReset::Latest);
    consumer
        .assign(vec![TopicPartition::new("t", 0)])
        .expect("assign");
    assert!(consumer.poll(None).expect("poll").is_empty());
    produce(&broker, "t", 0, 1);
    let got = consumer.poll(None).expect("poll");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].offset, 4);
}

#[test]
fn poll_on_empty_topic_waits_for_the_timeout() {
    let (_tmp, broker) = broker_with("t", 2, FsyncPolicy::Always);
    let mut consumer = Consumer::new(Arc::clone(&broker));
    consumer
        .subscribe(vec!["t".to_string()])
        .expect("subscribe");
    let start = Instant::now();
    let got = consumer
        .poll(Some(Duration::from_millis(300)))
        .expect("poll");
    let waited = start.elapsed();
    assert!(got.is_empty());
    assert!(
        waited >= Duration::from_millis(250),
        "returned after {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "returned after {waited:?}");
}

#[test]
fn poll_returns_when_another_thread_produces() {
    for fsync in [FsyncPolicy::Always, FsyncPolicy::Never] {
        let (_tmp, broker) = broker_with("t", 1, fsync);
        let mut consumer = Consumer::new(Arc::clone(&broker));
        consumer
            .subscribe(vec!["t".to_string()])
            .expect("subscribe");
        let b = Arc::clone(&broker);
        let producer = std::thread::spawn(move || {
            // The record must arrive while `poll` blocks: wait until it waits in the wait set.
            assert!(
                common::wait_until(Duration::from_secs(10), || b.waits().parked() == 1),
                "poll waits"
            );
            Producer::new(b)
                .send("t", Record::new(b"late".to_vec()), None)
                .expect("send");
        });
        let start = Instant::now();
        let got = consumer.poll(Some(Duration::from_secs(10))).expect("poll");
        let waited = start.elapsed();
        producer.join().expect("producer thread");
        assert_eq!(got.len(), 1, "{fsync}");
        assert_eq!(got[0].value.as_deref(), Some(&b"late"[..]));
        assert!(
            waited < Duration::from_secs(9),
            "{fsync}: poll ran to its timeout"
        );
    }
}

#[test]
fn a_poll_waiting_when_the_broker_closes_returns_empty_instead_of_waiting_out_its_timeout() {
    let (_tmp, broker) = broker_with("t", 1, FsyncPolicy::Never);
    let mut consumer = Consumer::new(Arc::clone(&broker));
    consumer
        .subscribe(vec!["t".to_string()])
        .expect("subscribe");
    let poller = std::thread::spawn(move || {
        let start = Instant::now();
        let got = consumer.poll(Some(Duration::from_secs(120)));
        (got.map(|r| r.len()), start.elapsed())
    });
    assert!(
        common::wait_until(Duration::from_secs(10), || broker.waits().parked() == 1),
        "poll waits"
    );
    broker.close().expect("close");
    let (got, waited) = poller.join().expect("poller");
    assert_eq!(got.expect("poll"), 0);
    // Liveness bound, far below the poll's own 120 s timeout.
    assert!(waited < Duration::from_secs(60), "poll waited {waited:?}");
}
