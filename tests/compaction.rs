//! Log compaction end to end: a compacted topic written and read over the wire (raw Kafka
//! Produce and Fetch against the real server), cleaned by the broker's cleaner pass
//! (`BrokerInternals::clean_now`, the pass the `thorstream-cleaner` thread runs), keyless
//! records refused with INVALID_RECORD, and an idempotent producer carrying on after its
//! batches were cleaned away and after restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::*;
use thorstream::internals::BrokerInternals;
use thorstream::internals::protocol::records::{decode_records, encode_batch};
use thorstream::internals::storage::batch::rewrite_crc;
use thorstream::{Broker, BrokerConfig, FsyncPolicy, Record, TopicConfig};

use common::requests::{fetch_request, produce_request};
use common::server::start;
use common::wire::{request, response};

fn compacted(segment_bytes: u64) -> TopicConfig {
    let mut c = TopicConfig {
        segment_bytes,
        ..TopicConfig::default()
    };
    c.set("cleanup.policy", "compact").unwrap();
    c.set("min.cleanable.dirty.ratio", "0.01").unwrap();
    c
}

fn keyed(records: &[(String, Option<String>)]) -> Vec<u8> {
    let rs: Vec<Record> = records
        .iter()
        .map(|(k, v)| Record {
            key: Some(k.clone().into_bytes()),
            value: v.clone().map(String::into_bytes),
            headers: Vec::new(),
            timestamp: Some(1_700_000_000_000),
        })
        .collect();
    encode_batch(&rs, 1_700_000_000_000).unwrap()
}

fn produce(s: &mut TcpStream, topic: &str, batch: Vec<u8>) -> (i16, Option<String>) {
    let req = produce_request(topic, 0, Some(Bytes::from(batch)), -1);
    s.write_all(&request(ApiKey::Produce, 8, 1, &req)).unwrap();
    let (_, resp): (i32, ProduceResponse) = response(s, 0, 8);
    let p = &resp.responses[0].partition_responses[0];
    (
        p.error_code,
        p.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// Every record from offset 0 as a consumer reads it: Fetch, decode, next offset after the
/// last batch (empty batches included). Returns (offset, key, value) and the high watermark.
type Row = (i64, String, Option<String>);

fn consume_from_start(s: &mut TcpStream, topic: &str) -> (Vec<Row>, i64) {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let req = fetch_request(topic, 0, offset, 0, 0, 1024 * 1024);
        s.write_all(&request(ApiKey::Fetch, 11, 2, &req)).unwrap();
        let (_, mut resp): (i32, FetchResponse) = response(s, 0, 11);
        let p = resp.responses.remove(0).partitions.remove(0);
        assert_eq!(p.error_code, 0);
        let bytes = p.records.unwrap_or_default();
        let batches: Vec<i64> = thorstream::internals::storage::batch::BatchIter::new(&bytes)
            .map(|(h, _)| h.last_offset())
            .collect();
        let Some(&last) = batches.last() else {
            return (out, p.high_watermark);
        };
        for r in decode_records(topic, 0, &bytes, offset).unwrap() {
            let key = String::from_utf8(r.key.unwrap()).unwrap();
            out.push((
                r.offset,
                key,
                r.value.map(|v| String::from_utf8(v).unwrap()),
            ));
        }
        offset = last + 1;
    }
}

#[test]
fn a_consumer_reading_a_cleaned_topic_from_the_start_sees_the_last_value_per_key() {
    // The cleaner thread is off so that `clean_now` below is the pass that cleans (with it on,
    // the thread could clean first, or hold the log, and the pass would find nothing to do).
    let f = start(
        |bc| bc.log_cleaner_enable = false,
        [("c", compacted(2048))],
        |_| {},
    );
    let mut s = TcpStream::connect(f.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut model: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut produced = 0;
    for round in 0..40 {
        let records: Vec<(String, Option<String>)> = (0..8)
            .map(|k| {
                let key = format!("key-{k}");
                // Key 3 is deleted in round 30 and never written again.
                let value = (!(k == 3 && round >= 30)).then(|| format!("v{round}-{k}"));
                (key, value)
            })
            .filter(|(k, v)| v.is_some() || k == "key-3")
            .collect();
        let records: Vec<_> = if round > 30 {
            records.into_iter().filter(|(k, _)| k != "key-3").collect()
        } else {
            records
        };
        for (k, v) in &records {
            model.insert(k.clone(), v.clone());
        }
        produced += records.len();
        assert_eq!(produce(&mut s, "c", keyed(&records)).0, 0);
    }
    let (before, hw_before) = consume_from_start(&mut s, "c");
    assert_eq!(before.len(), produced);

    assert!(f.broker.clean_now() >= 1, "the dirty log is cleaned");
    let (after, hw_after) = consume_from_start(&mut s, "c");
    assert_eq!(hw_after, hw_before, "offsets and the log end do not move");
    assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
    let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (_, k, v) in &after {
        seen.insert(k.clone(), v.clone());
    }
    assert_eq!(
        seen, model,
        "the last value of every key, the tombstone kept"
    );
    assert!(
        after.len() * 3 < before.len(),
        "overwritten records are gone: {} of {}",
        after.len(),
        before.len()
    );
    // Every record read is one produced at that offset.
    let by_offset: BTreeMap<i64, &Row> = before.iter().map(|r| (r.0, r)).collect();
    assert!(after.iter().all(|r| by_offset.get(&r.0) == Some(&r)));

    // A keyless record is refused as Kafka refuses it; nothing is written, the broker serves on.
    let keyless = encode_batch(&[Record::new(b"no key".to_vec())], 1).unwrap();
    let (code, message) = produce(&mut s, "c", keyless);
    assert_eq!(code, 87, "INVALID_RECORD");
    let message = message.unwrap_or_default();
    assert!(
        message.contains("Compacted topic cannot accept message without key"),
        "{message}"
    );
    assert_eq!(f.broker.offsets("c", 0).unwrap().log_end_offset, hw_after);
    let ok = keyed(&[("key-0".into(), Some("again".into()))]);
    assert_eq!(produce(&mut s, "c", ok).0, 0);
}

/// An idempotent producer's batch (`pid`, epoch 0) of `keys` starting at sequence `seq`.
fn idempotent(keys: &[&str], pid: i64, seq: i32) -> Vec<u8> {
    let records: Vec<(String, Option<String>)> = keys
        .iter()
        .map(|k| (k.to_string(), Some(format!("{pid}-{seq}"))))
        .collect();
    let mut b = keyed(&records);
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let total = b.len();
    rewrite_crc(&mut b, total);
    b
}

/// Every record through the embedded read path, advancing past each batch (a batch the
/// cleaner emptied holds no records but still takes its offsets).
fn read_everything(b: &Broker, topic: &str) -> Vec<thorstream::StoredRecord> {
    let mut out = Vec::new();
    let mut offset = b.offsets(topic, 0).unwrap().log_start_offset;
    loop {
        let data = b.read(topic, 0, offset, 64 * 1024).unwrap();
        let Some(last) = thorstream::internals::storage::batch::BatchIter::new(&data.records)
            .map(|(h, _)| h.last_offset())
            .last()
        else {
            assert_eq!(offset, data.offsets.high_watermark);
            return out;
        };
        out.extend(decode_records(topic, 0, &data.records, offset).unwrap());
        offset = last + 1;
    }
}

/// A broker without its cleaner thread: the tests' `clean_now` passes are the only cleaning
/// (with the thread on, it could clean first, or hold the log, and a pass find nothing to do;
/// and a broker leaked by `common::crash` would go on cleaning the directory).
fn open(dir: &std::path::Path) -> Arc<Broker> {
    let bc = BrokerConfig {
        log_cleaner_enable: false,
        ..common::config(dir, FsyncPolicy::Always)
    };
    Arc::new(Broker::new(bc).unwrap())
}

#[test]
fn an_idempotent_producer_keeps_its_sequence_after_cleaning_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    b.create_topic("c", Some(compacted(200))).unwrap();
    let pid = b.allocate_producer_id().unwrap();
    // Producer `pid` writes a and b; another writer then overwrites both, many times, so
    // every record of `pid` is stale and its batches are removed by the clean.
    b.append("c", 0, &idempotent(&["a", "b"], pid, 0)).unwrap();
    b.append("c", 0, &idempotent(&["a", "b"], pid, 2)).unwrap();
    for i in 0..20 {
        b.append(
            "c",
            0,
            &keyed(&[("a".into(), Some(format!("x{i}"))), ("b".into(), None)]),
        )
        .unwrap();
    }
    // Under fsync always the cleaner stops at the last fsync: wait for the flusher to cover
    // every append (else the pass may find the stale batches not yet cleanable).
    assert!(common::wait_until(Duration::from_secs(10), || {
        let o = b.offsets("c", 0).unwrap();
        o.high_watermark == o.log_end_offset
    }));
    assert!(b.clean_now() >= 1);
    let records = read_everything(&b, "c");
    assert!(
        records.iter().all(|r| r.offset > 3),
        "the producer's records were cleaned away"
    );
    // Next in sequence: accepted, no OutOfOrderSequence; a retry of the last batch is a
    // duplicate, answered with its original offsets.
    let next = b.append("c", 0, &idempotent(&["z"], pid, 4)).unwrap();
    assert!(!next.duplicate);
    let retry = b.append("c", 0, &idempotent(&["z"], pid, 4)).unwrap();
    assert!(retry.duplicate);

    // Clean restart (snapshot), then a crash (state rebuilt from the log): still in sequence.
    b.close().unwrap();
    drop(b);
    let b = open(dir.path());
    b.append("c", 0, &idempotent(&["z"], pid, 5)).unwrap();
    common::crash(b);
    let _ =
        std::fs::remove_file(common::partition_dir(dir.path(), "c", 0).join("producer-state.v2"));
    let b = open(dir.path());
    let again = b.append("c", 0, &idempotent(&["z"], pid, 6)).unwrap();
    assert!(!again.duplicate);
    let gap = b.append("c", 0, &idempotent(&["z"], pid, 9));
    assert!(gap.is_err(), "a gap is still refused: {gap:?}");
}

/// The topic's compaction settings survive a restart (stored in `__topics.meta`), and
/// housekeeping's retention leaves a compact-only topic's old segments alone.
#[test]
fn compaction_settings_persist_and_retention_leaves_compacted_topics_alone() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let mut config = compacted(200);
    config.retention_ms = 1;
    b.create_topic("c", Some(config)).unwrap();
    b.close().unwrap();
    drop(b);
    let mut bc = common::config(dir.path(), FsyncPolicy::Always);
    bc.housekeeping_interval_ms = 20;
    let b = Arc::new(Broker::new(bc).unwrap());
    let stored = b.describe("c").unwrap().config;
    assert!(stored.cleanup_compact && !stored.cleanup_delete);
    assert_eq!(stored.min_cleanable_dirty_ratio, 0.01);
    let old_ms = thorstream::internals::storage::now_ms() - 3_600_000;
    for i in 0..20 {
        let record =
            Record::with_key(format!("k{i}").into_bytes(), b"v".to_vec()).timestamp(old_ms);
        b.produce("c", 0, &[record]).unwrap();
    }
    assert!(common::wait_for_housekeeping_passes(
        &b,
        2,
        Duration::from_secs(20)
    ));
    assert_eq!(b.offsets("c", 0).unwrap().log_start_offset, 0);
    assert_eq!(
        common::read_all(&b, "c", 0).len(),
        20,
        "nothing deleted by retention"
    );
}
