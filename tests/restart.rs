#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A clean restart (drop the broker, reopen the directory) keeps topics with their configs and
//! ids, every record, and committed offsets.

mod common;

use std::sync::Arc;

use thorstream::{Consumer, FsyncPolicy, Producer, Record, TopicConfig, TopicPartition};

#[test]
fn restart_keeps_topics_records_and_committed_offsets() {
    let tmp = tempfile::tempdir().expect("tmp");
    let custom = TopicConfig {
        num_partitions: 3,
        segment_bytes: 8192,
        retention_bytes: 1 << 30,
        ..TopicConfig::default()
    };
    let (id_a, id_b) = {
        let broker = common::open(tmp.path(), FsyncPolicy::Always);
        broker
            .create_topic("a", Some(custom.clone()))
            .expect("create a");
        broker.create_topic("b", None).expect("create b");
        broker.create_topic("gone", None).expect("create gone");
        let producer = Producer::new(Arc::clone(&broker));
        for i in 0..90 {
            producer
                .send("a", Record::new(common::value(i)), Some((i % 3) as i32))
                .expect("send");
        }
        producer
            .send("b", Record::with_key(b"k".to_vec(), b"v".to_vec()), None)
            .expect("send");
        broker.delete_topic("gone").expect("delete");

        let mut consumer = Consumer::new(Arc::clone(&broker));
        consumer.set_group_id("g");
        consumer.set_max_poll_records(40);
        consumer
            .subscribe(vec!["a".to_string()])
            .expect("subscribe");
        assert_eq!(consumer.poll(None).expect("poll").len(), 40);
        consumer.commit().expect("commit");
        let ids = (
            broker.describe("a").expect("describe").id,
            broker.describe("b").expect("describe").id,
        );
        drop(consumer);
        drop(producer);
        // Last handle: Drop closes the broker cleanly.
        drop(broker);
        assert!(tmp.path().join(".clean_shutdown").exists());
        ids
    };

    let broker = common::open(tmp.path(), FsyncPolicy::Always);
    assert_eq!(broker.topics(), vec!["a".to_string(), "b".to_string()]);
    assert!(!tmp.path().join("gone-0").exists());
    let a = broker.describe("a").expect("describe");
    assert_eq!(a.id, id_a);
    // What the caller set is recorded as set on the topic; the rest follows the defaults.
    assert_eq!(
        a.config,
        custom
            .clone()
            .with_implied_overrides(&TopicConfig::default())
    );
    assert_eq!(a.partitions.len(), 3);
    assert_eq!(broker.describe("b").expect("describe").id, id_b);
    for p in 0..3 {
        let records = common::read_all(&broker, "a", p);
        assert_eq!(records.len(), 30);
        common::assert_dense(&records, 0);
        for (k, r) in records.iter().enumerate() {
            assert_eq!(
                r.value.as_deref(),
                Some(&common::value(k * 3 + p as usize)[..])
            );
        }
        let o = broker.offsets("a", p).expect("offsets");
        assert_eq!(
            (o.log_start_offset, o.high_watermark, o.log_end_offset),
            (0, 30, 30)
        );
    }
    let b = common::read_all(&broker, "b", 0);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].key.as_deref(), Some(&b"k"[..]));

    // The group resumes from its commits: together they cover the 40 records already read.
    let mut consumer = Consumer::new(Arc::clone(&broker));
    consumer.set_group_id("g");
    consumer
        .subscribe(vec!["a".to_string()])
        .expect("subscribe");
    let committed: i64 = (0..3)
        .map(|p| {
            consumer
                .committed(&TopicPartition::new("a", p))
                .expect("committed")
                .expect("some")
        })
        .sum();
    assert_eq!(committed, 40);
    let mut rest = Vec::new();
    loop {
        let got = consumer.poll(None).expect("poll");
        if got.is_empty() {
            break;
        }
        rest.extend(got);
    }
    assert_eq!(rest.len(), 50);

    // Appends continue at the log end offset.
    let (_, off) = Producer::new(Arc::clone(&broker))
        .send("a", Record::new(b"after".to_vec()), Some(1))
        .expect("send");
    assert_eq!(off, 30);
}

#[test]
fn one_commit_of_many_partitions_survives_a_restart_with_its_metadata() {
    use thorstream::internals::broker::{CommitFence, OffsetCommitEntry};
    let tmp = tempfile::tempdir().expect("tmp");
    let entries: Vec<OffsetCommitEntry> = (0..6)
        .map(|p| OffsetCommitEntry {
            topic: "a".into(),
            partition: p,
            offset: i64::from(p) * 100,
            leader_epoch: p - 1,
            metadata: Some(format!("meta-{p}")),
        })
        .collect();
    {
        let broker = common::open(tmp.path(), FsyncPolicy::Always);
        broker
            .create_topic("a", Some(TopicConfig::with_partitions(6)))
            .expect("create");
        let done = broker.commit_offsets_and_wait(CommitFence::simple("g"), &entries);
        assert!(matches!(done, Ok(Ok(()))), "{done:?}");
        // Oversized metadata is refused and must not cut the file at the next start.
        let big = "z".repeat(5000);
        let refused = broker.commit_offset("g", "a", 0, 999, Some(big));
        assert!(refused.is_err(), "{refused:?}");
        broker
            .commit_offset("g", "a", 5, 555, None)
            .expect("later commit");
    }
    let broker = common::open(tmp.path(), FsyncPolicy::Always);
    // The committed leader epoch survives too (partition 0 committed none: -1).
    let got: Vec<(i64, i32, Option<String>)> = (0..6)
        .map(|p| {
            let c = broker.committed_offset("g", "a", p).expect("committed");
            (c.offset, c.leader_epoch, c.metadata)
        })
        .collect();
    let mut want: Vec<(i64, i32, Option<String>)> = (0..6)
        .map(|p| (i64::from(p) * 100, p - 1, Some(format!("meta-{p}"))))
        .collect();
    want[5] = (555, -1, None);
    assert_eq!(got, want);
}
