//! Idempotent producer semantics through the broker's append path: retries return the
//! original offsets, gaps and stale epochs are refused, and the state survives restarts
//! (clean, and unclean where it is rebuilt from the log tail).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use thorstream::internals::BrokerInternals;
use thorstream::{Broker, BrokerConfig, Error, TopicConfig};

fn batch(pid: i64, epoch: i16, first_seq: i32, n: i32) -> Vec<u8> {
    let records: Vec<KRecord> = (0..n)
        .map(|i| KRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: first_seq + i,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(format!("seq-{}", first_seq + i))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.to_vec()
}

fn open(dir: &std::path::Path) -> Arc<Broker> {
    Arc::new(Broker::new(BrokerConfig::with_data_dir(dir)).unwrap())
}

#[test]
fn retries_are_deduplicated_and_gaps_and_stale_epochs_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    b.create_topic("t", Some(TopicConfig::with_partitions(1)))
        .unwrap();
    let first = b.append("t", 0, &batch(1000, 0, 0, 3)).unwrap();
    assert_eq!(
        (first.base_offset, first.last_offset, first.duplicate),
        (0, 2, false)
    );
    let second = b.append("t", 0, &batch(1000, 0, 3, 2)).unwrap();
    assert_eq!(second.base_offset, 3);
    // The same batch again (a retry after a lost response): original offsets, nothing new.
    let retry = b.append("t", 0, &batch(1000, 0, 0, 3)).unwrap();
    assert_eq!(
        (retry.base_offset, retry.last_offset, retry.duplicate),
        (0, 2, true)
    );
    assert_eq!(b.offsets("t", 0).unwrap().log_end_offset, 5);
    // A gap.
    let gap = b.append("t", 0, &batch(1000, 0, 9, 1)).unwrap_err();
    assert!(matches!(gap, Error::OutOfOrderSequence(_)), "{gap}");
    assert_eq!(gap.kafka_code(), 45);
    // A newer epoch fences the older one.
    b.append("t", 0, &batch(1000, 1, 0, 1)).unwrap();
    let stale = b.append("t", 0, &batch(1000, 0, 5, 1)).unwrap_err();
    assert_eq!(stale.kafka_code(), 47);
    // Unknown producer must start at 0.
    let unknown = b.append("t", 0, &batch(2000, 0, 7, 1)).unwrap_err();
    assert_eq!(unknown.kafka_code(), 59);
    // Non-idempotent batches are unaffected.
    let plain = thorstream::internals::protocol::records::encode_batch(
        &[thorstream::Record::new(b"x".to_vec())],
        1,
    )
    .unwrap();
    assert!(b.append("t", 0, &plain.clone()).is_ok());
}

#[test]
fn producer_state_survives_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = open(dir.path());
        b.create_topic("t", None).unwrap();
        b.append("t", 0, &batch(7, 0, 0, 4)).unwrap();
        b.close().unwrap();
    }
    let b = open(dir.path());
    let retry = b.append("t", 0, &batch(7, 0, 0, 4)).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, 0);
    assert_eq!(b.append("t", 0, &batch(7, 0, 4, 1)).unwrap().base_offset, 4);
}

#[test]
fn producer_state_is_rebuilt_from_the_log_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = open(dir.path());
        b.create_topic("t", None).unwrap();
        for i in 0..10 {
            b.append("t", 0, &batch(42, 0, i * 2, 2)).unwrap();
        }
        // No close: simulate a crash (no clean-shutdown marker, no producer-state snapshot).
        std::mem::forget(b);
    }
    let b = open(dir.path());
    let retry = b.append("t", 0, &batch(42, 0, 18, 2)).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, 18);
    let gap = b.append("t", 0, &batch(42, 0, 30, 1)).unwrap_err();
    assert_eq!(gap.kafka_code(), 45);
    assert_eq!(
        b.append("t", 0, &batch(42, 0, 20, 1)).unwrap().base_offset,
        20
    );
}

#[test]
fn producer_ids_are_unique_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<i64> = {
        let b = open(dir.path());
        (0..3).map(|_| b.allocate_producer_id().unwrap()).collect()
    };
    let b = open(dir.path());
    let next = b.allocate_producer_id().unwrap();
    assert!(first.iter().all(|&id| id < next), "{first:?} then {next}");
}
