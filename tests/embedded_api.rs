#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The embedded API end to end: the README flow on a temp dir, partitioning, timestamps and the
//! typed errors callers match on.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use thorstream::internals::broker::partition_for_key;
use thorstream::{
    Broker, BrokerConfig, Consumer, Error, FsyncPolicy, Producer, Record, TopicConfig,
    TopicPartition,
};

#[test]
fn readme_flow_on_a_temp_dir_returns_the_record() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = BrokerConfig {
        data_dir: tmp.path().to_path_buf(),
        ..BrokerConfig::default()
    };
    let broker = Arc::new(Broker::new(config).expect("broker"));
    broker.create_topic("events", None).expect("create");

    let producer = Producer::new(Arc::clone(&broker));
    let (partition, offset) = producer
        .send("events", Record::new(b"hello".to_vec()), None)
        .expect("send");
    assert_eq!((partition, offset), (0, 0));

    let mut consumer = Consumer::new(Arc::clone(&broker));
    consumer.set_group_id("my-group");
    consumer
        .subscribe(vec!["events".to_string()])
        .expect("subscribe");
    let records = consumer.poll(None).expect("poll");
    consumer.commit().expect("commit");

    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
    assert_eq!(records[0].offset, 0);
    assert_eq!(
        consumer
            .committed(&TopicPartition::new("events", 0))
            .expect("committed"),
        Some(1)
    );
}

#[test]
fn keyed_records_follow_murmur2_and_keep_their_partition() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = common::open(tmp.path(), FsyncPolicy::Never);
    broker
        .create_topic("keyed", Some(TopicConfig::with_partitions(6)))
        .expect("create");
    let producer = Producer::new(Arc::clone(&broker));
    let mut placed: BTreeMap<String, i32> = BTreeMap::new();
    for round in 0..3 {
        for i in 0..40 {
            let key = format!("user-{i}");
            let rec = Record::with_key(key.clone().into_bytes(), format!("{round}").into_bytes());
            let (p, _) = producer.send("keyed", rec, None).expect("send");
            assert_eq!(p, partition_for_key(key.as_bytes(), 6), "key {key}");
            if let Some(&first) = placed.get(&key) {
                assert_eq!(p, first, "key {key} moved partitions");
            }
            placed.insert(key, p);
        }
    }
    let used: std::collections::BTreeSet<i32> = placed.values().copied().collect();
    assert!(used.len() > 1, "40 keys all landed on one partition");
    // Each partition holds exactly the keys the partitioner sends there, three times each.
    for p in 0..6 {
        let records = common::read_all(&broker, "keyed", p);
        let expected = placed.values().filter(|&&q| q == p).count() * 3;
        assert_eq!(records.len(), expected, "partition {p}");
        for r in records {
            let key = String::from_utf8(r.key.expect("key")).expect("utf8");
            assert_eq!(placed[&key], p);
        }
    }
}

#[test]
fn keyless_records_spread_over_all_partitions() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = common::open(tmp.path(), FsyncPolicy::Never);
    broker
        .create_topic("spread", Some(TopicConfig::with_partitions(4)))
        .expect("create");
    let producer = Producer::new(Arc::clone(&broker));
    for i in 0..40 {
        producer
            .send("spread", Record::new(common::value(i)), None)
            .expect("send");
    }
    let counts: Vec<usize> = (0..4)
        .map(|p| common::read_all(&broker, "spread", p).len())
        .collect();
    assert_eq!(counts.iter().sum::<usize>(), 40);
    for (p, &c) in counts.iter().enumerate() {
        assert!(c >= 5, "partition {p} got only {c} of 40 keyless records");
    }
}

#[test]
fn send_batch_returns_offsets_in_input_order() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = common::open(tmp.path(), FsyncPolicy::Always);
    broker
        .create_topic("batch", Some(TopicConfig::with_partitions(3)))
        .expect("create");
    let producer = Producer::new(Arc::clone(&broker));
    let records: Vec<Record> = (0..30)
        .map(|i| Record::with_key(format!("k{}", i % 7).into_bytes(), common::value(i)))
        .collect();
    let placed = producer
        .send_batch("batch", records.clone(), None)
        .expect("send_batch");
    assert_eq!(placed.len(), 30);
    for (i, &(p, off)) in placed.iter().enumerate() {
        let (got, _) = broker.read_records("batch", p, off, 1 << 20).expect("read");
        let first = got.first().expect("record at returned offset");
        assert_eq!(first.offset, off);
        assert_eq!(first.value.as_deref(), records[i].value.as_deref());
        assert_eq!(first.key.as_deref(), records[i].key.as_deref());
    }
}

#[test]
fn headers_keys_tombstones_and_timestamps_round_trip() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = common::open(tmp.path(), FsyncPolicy::Never);
    broker.create_topic("rt", None).expect("create");
    let producer = Producer::new(Arc::clone(&broker));
    let rec = Record::with_key(b"k".to_vec(), b"v".to_vec())
        .header("trace", b"abc".to_vec())
        .header("n", b"1".to_vec())
        .timestamp(1_234_567);
    producer.send("rt", rec, None).expect("send");
    let tombstone = Record {
        key: Some(b"k".to_vec()),
        value: None,
        headers: vec![("empty".to_string(), None)],
        timestamp: None,
    };
    producer.send("rt", tombstone, None).expect("send");
    let records = common::read_all(&broker, "rt", 0);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].timestamp, 1_234_567);
    assert_eq!(
        records[0].headers,
        vec![
            ("trace".to_string(), Some(b"abc".to_vec())),
            ("n".to_string(), Some(b"1".to_vec()))
        ]
    );
    assert_eq!(records[1].value, None);
    assert_eq!(records[1].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(records[1].headers, vec![("empty".to_string(), None)]);
    assert!(records[1].timestamp > 1_600_000_000_000, "now-timestamp");
}

#[test]
fn offset_for_timestamp_finds_first_record_at_or_after_it_across_segments() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = common::open(tmp.path(), FsyncPolicy::Never);
    broker
        .create_topic("ts", Some(common::small_segments(1, 1024)))
        .expect("create");
    let producer = Producer::new(Arc::clone(&broker));
    for i in 0..100i64 {
        let rec = Record::new(common::value(i as usize)).timestamp(10_000 + i * 100);
        producer.send("ts", rec, None).expect("send");
    }
    assert!(common::segment_bases(&common::partition_dir(tmp.path(), "ts", 0)).len() > 3);
    assert_eq!(
        broker.offset_for_timestamp("ts", 0, 0).expect("lookup"),
        Some((0, 10_000))
    );
    assert_eq!(
        broker
            .offset_for_timestamp("ts", 0, 10_000)
            .expect("lookup"),
        Some((0, 10_000))
    );
    for (ts, expected) in [(10_050, 1), (12_500, 25), (15_001, 51), (19_900, 99)] {
        assert_eq!(
            broker.offset_for_timestamp("ts", 0, ts).expect("lookup"),
            Some((expected, 10_000 + expected * 100)),
            "timestamp {ts}"
        );
    }
    assert_eq!(
        broker
            .offset_for_timestamp("ts", 0, 19_901)
            .expect("lookup"),
        None
    );
}

#[test]
fn typed_errors_for_bad_topics_partitions_and_configs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = BrokerConfig {
        auto_create_topics: false,
        ..common::config(tmp.path(), FsyncPolicy::Never)
    };
    let broker = Arc::new(Broker::new(config).expect("broker"));
    broker.create_topic("one", None).expect("create");
    let producer = Producer::new(Arc::clone(&broker));

    // Unknown topic (auto-creation off), through every entry point.
    assert!(matches!(
        producer.send("nope", Record::new(b"x".to_vec()), None),
        Err(Error::UnknownTopicOrPartition(_))
    ));
    assert!(matches!(
        broker.produce("nope", 0, &[Record::new(b"x".to_vec())]),
        Err(Error::UnknownTopicOrPartition(_))
    ));
    assert!(matches!(
        broker.read("nope", 0, 0, 1024),
        Err(Error::UnknownTopicOrPartition(_))
    ));
    let mut consumer = Consumer::new(Arc::clone(&broker));
    assert!(matches!(
        consumer.subscribe(vec!["nope".to_string()]),
        Err(Error::UnknownTopicOrPartition(_))
    ));
    assert!(!broker.topics().contains(&"nope".to_string()));

    // Bad partition of an existing topic.
    assert!(matches!(
        producer.send("one", Record::new(b"x".to_vec()), Some(1)),
        Err(Error::UnknownTopicOrPartition(_))
    ));
    assert!(matches!(
        producer.send("one", Record::new(b"x".to_vec()), Some(-1)),
        Err(Error::UnknownTopicOrPartition(_))
    ));
    assert!(matches!(
        broker.offsets("one", 5),
        Err(Error::UnknownTopicOrPartition(_))
    ));
    assert!(matches!(
        consumer.assign(vec![TopicPartition::new("one", 3)]),
        Err(Error::UnknownTopicOrPartition(_))
    ));

    // Invalid names never reach the file system.
    for bad in ["../x", "a/b", "", ".", "..", "sp ace"] {
        assert!(
            matches!(broker.create_topic(bad, None), Err(Error::InvalidTopic(..))),
            "{bad:?} accepted"
        );
    }
    assert!(!tmp.path().parent().expect("parent").join("x-0").exists());
    assert!(!tmp.path().join("a").exists());

    // Unsupported configs.
    let rf3 = TopicConfig {
        replication_factor: 3,
        ..TopicConfig::default()
    };
    assert!(matches!(
        broker.create_topic("rf3", Some(rf3)),
        Err(Error::InvalidReplicationFactor(3))
    ));
    assert!(matches!(
        broker.create_topic("zero", Some(TopicConfig::with_partitions(0))),
        Err(Error::InvalidPartitions(_))
    ));
    assert!(matches!(
        broker.create_topic("one", None),
        Err(Error::TopicAlreadyExists(_))
    ));
    assert!(!broker.topics().contains(&"rf3".to_string()));

    // Empty sends and group-less commits.
    assert!(matches!(
        broker.produce("one", 0, &[]),
        Err(Error::InvalidRecord(_))
    ));
    consumer
        .assign(vec![TopicPartition::new("one", 0)])
        .expect("assign");
    assert!(matches!(consumer.commit(), Err(Error::NoGroupId)));
    assert!(matches!(
        consumer.seek(&TopicPartition::new("other", 0), 0),
        Err(Error::NotAssigned(_))
    ));
    assert_eq!(
        broker.topics(),
        vec!["one".to_string()],
        "failed calls must not create topics"
    );
}

#[test]
fn auto_created_topic_uses_default_config() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = BrokerConfig {
        default_topic_config: TopicConfig::with_partitions(3),
        ..common::config(tmp.path(), FsyncPolicy::Never)
    };
    let broker = Arc::new(Broker::new(config).expect("broker"));
    let producer = Producer::new(Arc::clone(&broker));
    producer
        .send("auto", Record::new(b"x".to_vec()), Some(2))
        .expect("send creates topic");
    assert_eq!(broker.partition_count("auto").expect("count"), 3);
    assert_eq!(common::read_all(&broker, "auto", 2).len(), 1);
}
