//! Writes the seed corpora of the fuzz targets (`fuzz/corpus/<target>/`) from the real code
//! paths: well-formed requests of every implemented API and version, batches of every codec,
//! segments written by a partition log, and the metadata files of a broker that ran.
//!
//! `cargo run --example gen_corpus` (from `fuzz/`); the output is committed, so this only
//! needs re-running when the input formats of the targets change.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::Compression;
use thorstream::CommittedOffset;
use thorstream::internals::broker::OffsetStore;
use thorstream::internals::storage::{LogConfig, PartitionLog, segment_file_name};
use thorstream::internals::supported_apis;
use thorstream::{Broker, BrokerConfig, FsyncPolicy, Record, TopicConfig};

#[path = "../common/mod.rs"]
mod common;
#[path = "../../tests/common/requests.rs"]
mod requests;
use requests::valid_body;

const NOW_MS: i64 = 1_700_000_000_000;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

fn request_frame(api: ApiKey, version: i16, body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("seed")))
        .encode(&mut buf, api.request_header_version(version))
        .expect("encode header");
    buf.extend_from_slice(body);
    let mut framed = (buf.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&buf);
    framed
}

/// One file per API: a stream of one frame per supported version (mode byte 0x07: chunks of
/// 8 bytes), plus a few single frames (mode 0x80).
fn request_decode(out: &Path) {
    for (api, min, max) in supported_apis() {
        let mut stream = vec![0x07u8];
        for v in min..=max {
            let body = valid_body(api, v).unwrap_or_default();
            stream.extend(request_frame(api, v, &body));
        }
        write(out, &format!("{api:?}"), &stream);
    }
    for (api, v) in [
        (ApiKey::Produce, 9i16),
        (ApiKey::Fetch, 12),
        (ApiKey::JoinGroup, 9),
    ] {
        let body = valid_body(api, v).unwrap_or_default();
        let mut single = vec![0x80u8];
        single.extend(&request_frame(api, v, &body)[4..]);
        write(out, &format!("single-{api:?}-v{v}"), &single);
    }
}

fn batch_validate(out: &Path) {
    let records = vec![
        Record::with_key(b"k".to_vec(), b"v".to_vec()).header("h", b"x".to_vec()),
        Record::new(vec![7; 100]).timestamp(1234),
        Record::default(),
    ];
    for (name, c) in [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        let b = thorstream::internals::protocol::records::encode_batch_with(&records, NOW_MS, c)
            .expect("encode");
        let mut seed = vec![0u8];
        seed.extend(&b);
        write(out, &format!("batch-{name}"), &seed);
    }
    let mut two = vec![3u8];
    two.extend(common::batch(&[b"a", b"bb"], NOW_MS));
    two.extend(common::idempotent_batch(&[b"c"], 5, 1, 0));
    write(out, "two-batches", &two);
}

/// Writes a log the way the broker does and returns its segment files' bytes.
fn segments(batches: usize, segment_bytes: u64) -> Vec<(i64, Vec<u8>, Vec<u8>, Vec<u8>)> {
    let dir = common::tempdir();
    let config = LogConfig {
        segment_bytes,
        index_interval_bytes: 1,
        durable_hw: false,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config, true, NOW_MS).expect("open");
    for i in 0..batches {
        let v = format!("value-{i}");
        let mut b = if i % 3 == 2 {
            common::idempotent_batch(&[v.as_bytes()], 9, 0, (i / 3) as i32)
        } else {
            common::batch(&[v.as_bytes(), b"x"], NOW_MS + i as i64)
        };
        log.append(&mut b, NOW_MS).expect("append");
    }
    log.close().expect("close");
    let mut bases: Vec<i64> = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    let read = |base: i64, ext: &str| {
        std::fs::read(dir.path().join(segment_file_name(base, ext))).unwrap_or_default()
    };
    bases
        .into_iter()
        .map(|b| (b, read(b, "log"), read(b, "index"), read(b, "timeindex")))
        .collect()
}

fn log_recovery(out: &Path) {
    // flags: 0x08 fix, 0x40 indexes, 0x10/0x20 segment count - 1; flags2 0x01 index every batch.
    let one = segments(6, 1 << 30);
    for (name, flags, flags2) in [
        ("crash", 0x00u8, 0x00u8),
        ("crash-fixed", 0x08, 0x01),
        ("clean-indexes", 0x41, 0x01),
        ("crash-indexes-tiny", 0x40, 0x03),
    ] {
        let mut seed = vec![flags, flags2];
        for (_, log, index, time) in &one {
            common::put_part(&mut seed, log, 4);
            if flags & 0x40 != 0 {
                common::put_part(&mut seed, index, 2);
                common::put_part(&mut seed, time, 2);
            }
        }
        write(out, name, &seed);
    }
    let three = segments(9, 300);
    let mut seed = vec![0x20 | 0x40 | 0x02 | 0x04, 0x01];
    seed.extend(2i64.to_le_bytes()); // recovery point
    seed.extend(1i64.to_le_bytes()); // log start
    for (_, log, index, time) in three.iter().take(3) {
        common::put_part(&mut seed, log, 4);
        common::put_part(&mut seed, index, 2);
        common::put_part(&mut seed, time, 2);
    }
    write(out, "three-segments-checkpoints", &seed);
    let mut torn = vec![0x08u8, 0x00];
    let (_, log, _, _) = &one[0];
    common::put_part(&mut torn, &log[..log.len() - 5], 4);
    write(out, "torn-tail", &torn);
}

fn metadata_records(out: &Path) {
    let dir = common::tempdir();
    let mut config = BrokerConfig::with_data_dir(dir.path());
    config.fsync = FsyncPolicy::Never;
    {
        let broker = Broker::new(config.clone()).expect("broker");
        broker
            .create_topic("orders", Some(TopicConfig::with_partitions(2)))
            .expect("create");
        broker.create_topic("gone", None).expect("create");
        broker
            .create_topic("logs.v1", Some(TopicConfig::with_partitions(1)))
            .expect("create");
        broker.delete_topic("gone").expect("delete");
        broker.close().expect("close");
    }
    let topics = std::fs::read(dir.path().join("__topics.meta")).expect("topics");
    let mut seed = vec![0u8];
    seed.extend(&topics);
    write(out, "topics", &seed);

    let path = dir.path().join("offsets.meta");
    {
        let s = OffsetStore::open(&path, false).expect("offsets");
        let c = |o: i64, m: Option<&str>| CommittedOffset {
            offset: o,
            leader_epoch: 3,
            metadata: m.map(str::to_string),
            commit_timestamp_ms: NOW_MS,
        };
        s.commit("g1", vec![("orders".into(), 0, c(10, None))])
            .expect("commit");
        s.commit("g1", vec![("orders".into(), 1, c(20, Some("meta")))])
            .expect("commit");
        s.commit("g2", vec![("orders".into(), 0, c(5, None))])
            .expect("commit");
        s.delete_offset("g1", "orders", 1).expect("delete");
        s.commit("g3", vec![("logs.v1".into(), 0, c(1, None))])
            .expect("commit");
        s.delete_group("g3").expect("delete");
    }
    let mut seed = vec![1u8];
    seed.extend(std::fs::read(&path).expect("offsets"));
    write(out, "offsets", &seed);

    let log_dir = dir.path().join("p-0");
    {
        let cfg = LogConfig {
            durable_hw: false,
            ..LogConfig::default()
        };
        let mut log = PartitionLog::open(&log_dir, cfg, true, NOW_MS).expect("log");
        for (pid, epoch, seq) in [(1, 0, 0), (2, 3, 0), (1, 0, 2)] {
            log.append(
                &mut common::idempotent_batch(&[b"a", b"b"], pid, epoch, seq),
                NOW_MS,
            )
            .expect("append");
        }
        log.close().expect("close");
    }
    let state = std::fs::read(log_dir.join("producer-state.v2")).expect("producer state");
    let mut seed = vec![2u8];
    seed.extend(&state[..state.len() - 4]); // the target appends the CRC
    write(out, "producer-state", &seed);
    let mut seed = vec![0x82u8];
    seed.extend(&state);
    write(out, "producer-state-raw", &seed);

    let index = std::fs::read(log_dir.join(segment_file_name(0, "index"))).unwrap_or_default();
    let mut seed = vec![3u8];
    seed.extend(&index);
    write(out, "index", &seed);
    let mut seed = vec![3u8];
    seed.extend(&12i64.to_be_bytes());
    seed.extend(crc32fast_hash(&12i64.to_be_bytes()));
    write(out, "checkpoint", &seed);
}

fn crc32fast_hash(b: &[u8]) -> [u8; 4] {
    crc32fast::hash(b).to_be_bytes()
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    request_decode(&root.join("request_decode"));
    batch_validate(&root.join("batch_validate"));
    log_recovery(&root.join("log_recovery"));
    metadata_records(&root.join("metadata_records"));
    println!("seeds written under {}", root.display());
}
