//! Broker-level tests: startup over damaged or hand-written metadata, the partition limit,
//! producer-id expiry across a restart, and recovery from a failed fsync.

use std::time::{Duration, Instant};

use super::*;
use crate::storage::now_ms;

/// Appends a topic record to `__topics.meta` by hand, bypassing `create_topic`'s checks.
fn append_topic_record(data_dir: &std::path::Path, name: &str, config: TopicConfig) {
    let (mut store, _) = RecordLog::<TopicRecord>::open(&data_dir.join(TOPICS_FILE))
        .unwrap_or_else(|e| panic!("{e}"));
    let meta = TopicMeta {
        name: name.to_string(),
        id: [7; 16],
        config: config.with_implied_overrides(&TopicConfig::default()),
    };
    store
        .append(&TopicRecord::Upsert(meta), true)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn topic_records_with_invalid_names_are_ignored_at_startup() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    {
        let broker =
            Broker::new(BrokerConfig::with_data_dir(dir.path())).unwrap_or_else(|e| panic!("{e}"));
        broker
            .create_topic("good", None)
            .unwrap_or_else(|e| panic!("{e}"));
        broker.close().unwrap_or_else(|e| panic!("{e}"));
    }
    for name in ["../escape", "", "a/b"] {
        append_topic_record(dir.path(), name, TopicConfig::default());
    }
    let broker =
        Broker::new(BrokerConfig::with_data_dir(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(broker.topics(), vec!["good".to_string()]);
    assert!(!dir.path().join("..").join("escape-0").exists());
}

#[test]
fn a_topic_record_with_an_invalid_config_stops_the_start_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    {
        let broker =
            Broker::new(BrokerConfig::with_data_dir(dir.path())).unwrap_or_else(|e| panic!("{e}"));
        broker
            .create_topic("kept", None)
            .unwrap_or_else(|e| panic!("{e}"));
        broker
            .produce("kept", 0, &[crate::Record::new(b"v".to_vec())])
            .unwrap_or_else(|e| panic!("{e}"));
        broker.close().unwrap_or_else(|e| panic!("{e}"));
    }
    let path = dir.path().join(TOPICS_FILE);
    let good = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
    let bad = TopicConfig {
        segment_bytes: 0,
        ..TopicConfig::default()
    };
    append_topic_record(dir.path(), "kept", bad);
    match Broker::new(BrokerConfig::with_data_dir(dir.path())) {
        Err(Error::Metadata(m)) => {
            assert!(m.contains("kept") && m.contains("segment.bytes"), "{m}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a topic with segment.bytes 0 was opened"),
    }
    // Nothing was deleted: with the record undone the topic and its record are back.
    std::fs::write(&path, good).unwrap_or_else(|e| panic!("{e}"));
    let broker =
        Broker::new(BrokerConfig::with_data_dir(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(readable(&broker, "kept", 0), vec![(0, b"v".to_vec())]);
}

/// Offsets and first-record values of everything readable in `topic-partition`.
fn readable(broker: &Broker, topic: &str, partition: i32) -> Vec<(i64, Vec<u8>)> {
    let (records, _) = broker
        .read_records(topic, partition, 0, usize::MAX)
        .unwrap_or_else(|e| panic!("{e}"));
    records
        .into_iter()
        .map(|r| (r.offset, r.value.unwrap_or_default()))
        .collect()
}

#[test]
fn a_default_max_message_bytes_above_the_recovery_bound_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = BrokerConfig::with_data_dir(dir.path());
    config.default_topic_config.max_message_bytes =
        u32::try_from(crate::limits::RECOVERY_BATCH_BYTES_MAX + 1).unwrap_or(u32::MAX);
    let err = Broker::new(config).err().map(|e| e.response_error());
    assert_eq!(
        err,
        Some(kafka_protocol::error::ResponseError::InvalidConfig)
    );
}

#[test]
fn partitions_beyond_the_broker_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = BrokerConfig::with_data_dir(dir.path());
    config.max_partitions = 5;
    config.default_topic_config.num_partitions = 1;
    let broker = Broker::new(config).unwrap_or_else(|e| panic!("{e}"));
    let three = Some(TopicConfig::with_partitions(3));
    broker
        .create_topic("a", three.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    let err = broker.create_topic("b", three).expect_err("3 + 3 > 5");
    assert_eq!(
        err.response_error(),
        kafka_protocol::error::ResponseError::InvalidPartitions,
        "{err}"
    );
    assert!(broker.topic("b").is_err(), "nothing of it was created");
    assert!(!partition_dir(&broker.inner.config, "b", 0).exists());
    broker
        .create_partitions("a", 4)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(broker.ensure_topic("c").unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(broker.total_partitions(), 5);
    let err = broker.create_partitions("a", 5).expect_err("6 > 5");
    assert_eq!(
        err.response_error(),
        kafka_protocol::error::ResponseError::InvalidPartitions,
        "{err}"
    );
    assert!(
        broker.ensure_topic("d").is_err(),
        "auto-creation is refused too"
    );
    assert_eq!(
        broker
            .partition_count("a")
            .unwrap_or_else(|e| panic!("{e}")),
        4
    );
}

#[test]
fn idle_idempotent_producers_expire_and_the_expiry_survives_a_restart() {
    use crate::storage::batch::tests::make_idempotent_batch;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = BrokerConfig::with_data_dir(dir.path());
    config.producer_id_expiration_ms = 2_000;
    config.housekeeping_interval_ms = 20;
    let broker = Broker::new(config.clone()).unwrap_or_else(|e| panic!("{e}"));
    broker
        .create_topic("t", None)
        .unwrap_or_else(|e| panic!("{e}"));
    let now = now_ms();
    // Producer 1 last wrote two minutes ago; producer 2's clock runs a minute ahead, so it
    // stays active for the whole test.
    let (old, ahead) = (now - 120_000, now + 60_000);
    for (pid, seq, ts) in [(1, 0, old), (2, 0, ahead), (1, 1, old)] {
        broker
            .append("t", 0, &make_idempotent_batch(pid, 0, seq, ts))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let producers = |b: &Broker| -> Vec<i64> {
        let p = b.partition("t", 0).unwrap_or_else(|e| panic!("{e}"));
        let log = p.log().unwrap_or_else(|e| panic!("{e}"));
        let table = log.producer_state();
        [1, 2]
            .into_iter()
            .filter(|&id| table.get(id).is_some())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while producers(&broker) != vec![2] {
        assert!(Instant::now() < deadline, "producer 1 never expired");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Forgotten: a retry of its last batch is no longer answered as a duplicate.
    let retry = broker.append("t", 0, &make_idempotent_batch(1, 0, 1, now));
    assert!(
        retry.is_err(),
        "unknown producer must restart at sequence 0"
    );
    broker.close().unwrap_or_else(|e| panic!("{e}"));
    drop(broker);
    let broker = Broker::new(config).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(producers(&broker), vec![2], "the snapshot kept the expiry");
}

#[test]
fn failed_fsync_fails_its_produces_then_heals_without_a_restart() {
    use crate::protocol::records::encode_batch;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = BrokerConfig::with_data_dir(dir.path()); // fsync `always`
    let wait = Duration::from_secs(10);
    let broker = Broker::new(config.clone()).unwrap_or_else(|e| panic!("{e}"));
    let two = TopicConfig {
        num_partitions: 2,
        ..TopicConfig::default()
    };
    broker
        .create_topic("t", Some(two))
        .unwrap_or_else(|e| panic!("{e}"));
    let append = |p: i32, body: &[u8]| {
        let batch = encode_batch(&[crate::Record::new(body.to_vec())], 1)?;
        broker.append("t", p, &batch)
    };
    let acked = append(0, b"acked").unwrap_or_else(|e| panic!("{e}"));
    broker
        .wait_durable("t", 0, acked.last_offset, wait)
        .unwrap_or_else(|e| panic!("{e}"));
    let before = readable(&broker, "t", 0);

    // The disk starts failing fsyncs of t-0 only.
    let t0 = partition_dir(&config, "t", 0);
    flusher::failpoint::fail_syncs_under(&t0, true);
    let lost = append(0, b"lost").unwrap_or_else(|e| panic!("{e}"));
    let err = broker
        .wait_durable("t", 0, lost.last_offset, wait)
        .expect_err("its fsync failed");
    assert_eq!(
        err.response_error(),
        kafka_protocol::error::ResponseError::KafkaStorageError,
        "{err}"
    );
    // Reads keep working and show only what was durable; t-1 is untouched.
    assert_eq!(readable(&broker, "t", 0), before);
    let other = append(1, b"other").unwrap_or_else(|e| panic!("{e}"));
    broker
        .wait_durable("t", 1, other.last_offset, wait)
        .unwrap_or_else(|e| panic!("{e}"));

    // Space returns. Appends are refused until the log heals (at most one attempt per
    // second); the healed log continues right after the last durable record.
    flusher::failpoint::fail_syncs_under(&t0, false);
    let deadline = Instant::now() + wait;
    let healed = loop {
        match append(0, b"healed") {
            Ok(info) => break info,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(
                    e.response_error(),
                    kafka_protocol::error::ResponseError::KafkaStorageError,
                    "{e}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("never healed: {e}"),
        }
    };
    assert_eq!(healed.base_offset, acked.last_offset + 1);
    broker
        .wait_durable("t", 0, healed.last_offset, wait)
        .unwrap_or_else(|e| panic!("{e}"));
    let expected: Vec<Vec<u8>> = vec![b"acked".to_vec(), b"healed".to_vec()];
    let values =
        |rs: Vec<(i64, Vec<u8>)>| -> Vec<Vec<u8>> { rs.into_iter().map(|r| r.1).collect() };
    assert_eq!(values(readable(&broker, "t", 0)), expected);
    broker.close().unwrap_or_else(|e| panic!("{e}"));
    drop(broker);

    // Everything acknowledged is still there after a restart, exactly once.
    let broker = Broker::new(config).unwrap_or_else(|e| panic!("{e}"));
    let after = readable(&broker, "t", 0);
    assert_eq!(after.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(values(after), expected);
    assert_eq!(readable(&broker, "t", 1).len(), 1);
}
