#![allow(clippy::unwrap_used, clippy::expect_used)]
//! An old data directory always opens: `tests/fixtures/data-v0` was written by commit
//! `839f29d` (metadata as bincode of the public structs, no header frame, no version bytes;
//! see `tests/fixtures/README.md`). The current code must read every topic, config, record,
//! committed offset and idempotent producer from it, rewrite the metadata files in the current
//! format (`broker::metadata`), and open the result again.

mod common;

use std::path::Path;

use thorstream::internals::BrokerInternals;
use thorstream::internals::storage::batch::rewrite_crc;
use thorstream::{Broker, FsyncPolicy, Record, TopicConfig};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/data-v0");

/// Whether a metadata file starts with the current format's header frame (payload "TSMD").
fn has_header_frame(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.len() >= 12 && &bytes[8..12] == b"TSMD"
}

fn expected_configs() -> Vec<(&'static str, TopicConfig)> {
    vec![
        (
            "events.v1",
            TopicConfig {
                num_partitions: 1,
                segment_bytes: 2048,
                retention_ms: 86_400_000,
                max_message_bytes: 10_000,
                fsync: Some(FsyncPolicy::Never),
                ..TopicConfig::default()
            },
        ),
        (
            "orders",
            TopicConfig {
                num_partitions: 2,
                segment_bytes: 1024,
                segment_ms: 3_600_000,
                retention_ms: -1,
                retention_bytes: 1_000_000,
                max_message_bytes: 4096,
                fsync: Some(FsyncPolicy::Interval(25)),
                ..TopicConfig::default()
            },
        ),
    ]
}

/// Everything the fixture holds, as the broker reports it.
fn assert_fixture_contents(broker: &Broker) {
    let expected = expected_configs();
    assert_eq!(
        broker.topics(),
        expected
            .iter()
            .map(|(n, _)| n.to_string())
            .collect::<Vec<_>>()
    );
    for (name, config) in &expected {
        // The fixture's values that differ from the defaults are the ones set on the topic.
        let config = config
            .clone()
            .with_implied_overrides(&TopicConfig::default());
        assert_eq!(broker.describe(name).unwrap().config, config, "{name}");
    }
    for p in 0..2 {
        let records = common::read_all(broker, "orders", p);
        let values: Vec<Vec<u8>> = records.iter().map(|r| r.value.clone().unwrap()).collect();
        let want: Vec<Vec<u8>> = (0..16)
            .map(|i| format!("orders-{p}-{i:03}").into_bytes())
            .collect();
        assert_eq!(values, want, "orders-{p}");
        common::assert_dense(&records, 0);
        assert_eq!(records[5].key.as_deref(), Some(&b"k5"[..]));
    }
    let events: Vec<Vec<u8>> = common::read_all(broker, "events.v1", 0)
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    let want: Vec<Vec<u8>> = (0..5).map(|i| format!("e-{i:03}").into_bytes()).collect();
    assert_eq!(events, want);

    let offset = |g: &str, t: &str, p: i32| {
        broker
            .committed_offset(g, t, p)
            .map(|c| (c.offset, c.metadata))
    };
    assert_eq!(
        offset("billing", "orders", 0),
        Some((10, Some("after-10".into())))
    );
    assert_eq!(offset("billing", "orders", 1), Some((7, None)));
    assert_eq!(
        offset("billing", "events.v1", 0),
        Some((4, Some("e".into())))
    );
    assert_eq!(offset("audit", "orders", 1), Some((1, None)));
    assert_eq!(offset("audit", "orders", 0), None);
    assert_eq!(offset("dropped", "orders", 0), None);
    assert_eq!(
        broker.offset_store().groups(),
        vec!["audit".to_string(), "billing".to_string()]
    );
}

/// Producer 7 (epoch 2) wrote sequences 0..=4 in the fixture: a retry of its last batch is
/// answered with the original offsets, nothing appended.
fn assert_idempotent_retry_is_deduplicated(broker: &Broker) {
    let records: Vec<Record> = ["e-003", "e-004"]
        .iter()
        .map(|v| Record::new(v.as_bytes().to_vec()).timestamp(1_700_000_000_100))
        .collect();
    let mut b = thorstream::internals::protocol::records::encode_batch(&records, 1_700_000_000_100)
        .unwrap();
    b[43..51].copy_from_slice(&7i64.to_be_bytes());
    b[51..53].copy_from_slice(&2i16.to_be_bytes());
    b[53..57].copy_from_slice(&3i32.to_be_bytes());
    let len = b.len();
    rewrite_crc(&mut b, len);
    let info = broker.append("events.v1", 0, &b).unwrap();
    assert!(info.duplicate, "the retry was appended again");
    assert_eq!((info.base_offset, info.last_offset), (3, 4));
    assert_eq!(broker.offsets("events.v1", 0).unwrap().log_end_offset, 5);
}

#[test]
fn a_data_directory_written_before_versioned_metadata_opens_and_is_rewritten() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    common::copy_dir(Path::new(FIXTURE), &data);
    let topics = data.join("__topics.meta");
    let offsets = data.join("__consumer_offsets.meta");
    assert!(!has_header_frame(&topics) && !has_header_frame(&offsets));

    let broker = Broker::new(common::config(&data, FsyncPolicy::Always)).unwrap();
    assert!(
        has_header_frame(&topics),
        "__topics.meta not rewritten in the current format"
    );
    assert!(
        has_header_frame(&offsets),
        "__consumer_offsets.meta not rewritten in the current format"
    );
    assert_fixture_contents(&broker);
    assert_idempotent_retry_is_deduplicated(&broker);
    broker.close().unwrap();
    drop(broker);
    let snapshot = std::fs::read(data.join("events.v1-0").join("producer-state.v2")).unwrap();
    assert_eq!(&snapshot[..7], b"TSPSNAP", "snapshot not rewritten");

    // The rewritten directory opens again, unchanged, and takes new writes and commits.
    let rewritten = std::fs::read(&topics).unwrap();
    let broker = Broker::new(common::config(&data, FsyncPolicy::Always)).unwrap();
    assert_eq!(std::fs::read(&topics).unwrap(), rewritten);
    assert_fixture_contents(&broker);
    assert_idempotent_retry_is_deduplicated(&broker);
    let info = broker
        .produce("orders", 1, &[Record::new(b"new".to_vec())])
        .unwrap();
    assert_eq!(info.base_offset, 16);
    broker
        .commit_offset("billing", "orders", 1, 17, None)
        .unwrap();
    broker.close().unwrap();
    drop(broker);
    let broker = Broker::new(common::config(&data, FsyncPolicy::Always)).unwrap();
    assert_eq!(
        broker
            .committed_offset("billing", "orders", 1)
            .map(|c| c.offset),
        Some(17)
    );
    assert_eq!(common::read_all(&broker, "orders", 1).len(), 17);
    broker.close().unwrap();
}

#[test]
fn the_fixture_is_in_the_legacy_format() {
    // Guards the fixture itself: regenerated by new code, the test above would prove nothing.
    for f in ["__topics.meta", "__consumer_offsets.meta"] {
        assert!(!has_header_frame(&Path::new(FIXTURE).join(f)), "{f}");
    }
    let snapshot = std::fs::read(Path::new(FIXTURE).join("events.v1-0/producer-state.v2")).unwrap();
    assert_ne!(&snapshot[..7], b"TSPSNAP");
}

/// Appends one CRC-32-framed payload to a metadata file (`length | crc | payload`).
fn append_frame(path: &Path, payload: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    bytes.extend_from_slice(payload);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn an_intact_record_that_does_not_decode_stops_the_start_and_changes_nothing() {
    for file in ["__topics.meta", "__consumer_offsets.meta"] {
        let work = tempfile::tempdir().unwrap();
        let data = work.path().join("data");
        {
            let broker = Broker::new(common::config(&data, FsyncPolicy::Always)).unwrap();
            broker.create_topic("kept", None).unwrap();
            broker
                .produce("kept", 0, &[Record::new(b"v".to_vec())])
                .unwrap();
            broker.commit_offset("g", "kept", 0, 1, None).unwrap();
            broker.close().unwrap();
        }
        let path = data.join(file);
        let offset = std::fs::metadata(&path).unwrap().len();
        // A record version no build wrote, then a frame that would decode: neither is cut.
        append_frame(&path, &[0x7f, 1, 2, 3]);
        append_frame(&path, &[1, 2, 0, 0, 0]);
        let before = std::fs::read(&path).unwrap();
        let e = Broker::new(common::config(&data, FsyncPolicy::Always))
            .err()
            .unwrap_or_else(|| panic!("{file}: opened with an undecodable record"))
            .to_string();
        assert!(e.contains(file), "{e}");
        assert!(e.contains(&format!("byte offset {offset}")), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "{file} changed");
        assert!(data.join("kept-0").is_dir(), "partition dir moved: {file}");
    }
}

#[test]
fn a_stored_config_value_that_does_not_parse_stops_the_start_naming_the_topic() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    Broker::new(common::config(&data, FsyncPolicy::Always))
        .unwrap()
        .close()
        .unwrap();
    // Topic record v1, upsert of "bad" whose retention.ms is not a number (layout in
    // `broker::metadata`).
    let mut p = vec![1u8];
    p.extend_from_slice(&0u32.to_le_bytes());
    p.extend_from_slice(&3u64.to_le_bytes());
    p.extend_from_slice(b"bad");
    p.extend_from_slice(&[9; 16]);
    p.extend_from_slice(&1u32.to_le_bytes());
    p.extend_from_slice(&1u16.to_le_bytes());
    p.extend_from_slice(&2u64.to_le_bytes());
    for (k, v) in [("cleanup.policy", "compact"), ("retention.ms", "forever")] {
        p.extend_from_slice(&(k.len() as u64).to_le_bytes());
        p.extend_from_slice(k.as_bytes());
        p.extend_from_slice(&(v.len() as u64).to_le_bytes());
        p.extend_from_slice(v.as_bytes());
    }
    append_frame(&data.join("__topics.meta"), &p);
    let e = Broker::new(common::config(&data, FsyncPolicy::Always))
        .err()
        .expect("opened with a bad config value")
        .to_string();
    assert!(e.contains("topic bad") && e.contains("retention.ms"), "{e}");

    // The same record with a valid value opens; the unknown name is ignored.
    let mut bytes = std::fs::read(data.join("__topics.meta")).unwrap();
    bytes.truncate(bytes.len() - p.len() - 8);
    std::fs::write(data.join("__topics.meta"), bytes).unwrap();
    let n = p.len();
    p.truncate(n - "forever".len() - 8);
    p.extend_from_slice(&2u64.to_le_bytes());
    p.extend_from_slice(b"-1");
    append_frame(&data.join("__topics.meta"), &p);
    let broker = Broker::new(common::config(&data, FsyncPolicy::Always)).unwrap();
    assert_eq!(broker.describe("bad").unwrap().config.retention_ms, -1);
    broker.close().unwrap();
}
