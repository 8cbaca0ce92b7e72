//! Helpers shared by the integration tests: brokers on temp dirs, unclean stops, reading a
//! partition back, and poking at segment files.
#![allow(dead_code)]

pub mod acl;
pub mod requests;
pub mod server;
pub mod wire;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use thorstream::internals::storage::batch::BatchIter;
use thorstream::{Broker, BrokerConfig, FsyncPolicy, Record, StoredRecord, TopicConfig};

/// A broker config on `dir`. Housekeeping is effectively off (1 h) so that a broker leaked by
/// `crash` never touches the directory again.
pub fn config(dir: &Path, fsync: FsyncPolicy) -> BrokerConfig {
    BrokerConfig {
        data_dir: dir.to_path_buf(),
        fsync,
        housekeeping_interval_ms: 3_600_000,
        ..BrokerConfig::default()
    }
}

pub fn open(dir: &Path, fsync: FsyncPolicy) -> Arc<Broker> {
    Arc::new(Broker::new(config(dir, fsync)).expect("open broker"))
}

/// Simulates a crash: the broker is leaked, so `close` never runs, nothing is fsynced or
/// checkpointed and no clean-shutdown marker is written. Its threads stay parked.
pub fn crash(broker: Arc<Broker>) {
    std::mem::forget(broker);
}

/// A topic config with `partitions` partitions and segments of at most `segment_bytes`.
pub fn small_segments(partitions: u32, segment_bytes: u64) -> TopicConfig {
    TopicConfig {
        num_partitions: partitions,
        segment_bytes,
        ..TopicConfig::default()
    }
}

/// The value written for record `i` (distinct, and of a length that varies with `i`).
pub fn value(i: usize) -> Vec<u8> {
    let mut v = format!("value-{i:06}-").into_bytes();
    v.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, 20 + i % 90));
    v
}

/// Reads every record of a partition from `from` up to the high watermark.
pub fn read_from(broker: &Broker, topic: &str, partition: i32, from: i64) -> Vec<StoredRecord> {
    let mut out = Vec::new();
    let mut pos = from;
    loop {
        let (records, offsets) = broker
            .read_records(topic, partition, pos, 64 * 1024)
            .expect("read");
        match records.last() {
            Some(last) => {
                pos = last.offset + 1;
                out.extend(records);
            }
            None => {
                assert_eq!(
                    pos, offsets.high_watermark,
                    "read stopped at {pos} below the high watermark"
                );
                return out;
            }
        }
    }
}

pub fn read_all(broker: &Broker, topic: &str, partition: i32) -> Vec<StoredRecord> {
    let start = broker
        .offsets(topic, partition)
        .expect("offsets")
        .log_start_offset;
    read_from(broker, topic, partition, start)
}

/// Asserts that `records` carry exactly the offsets `from..from + len`.
pub fn assert_dense(records: &[StoredRecord], from: i64) {
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.offset, from + i as i64, "offsets are not dense");
    }
}

pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// Base offsets of the `.log` files in a partition directory, sorted.
pub fn segment_bases(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

pub fn segment_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

/// `(start position, length, base offset, record count)` of one batch in a `.log` file.
pub type BatchSpan = (usize, usize, i64, i32);

/// Every batch in a `.log` file.
pub fn batches_in(path: &Path) -> Vec<BatchSpan> {
    let bytes = std::fs::read(path).expect("read segment");
    let mut it = BatchIter::new(&bytes);
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some((h, b)) = it.next() {
        out.push((pos, b.len(), h.base_offset, h.record_count));
        pos = it.position();
    }
    assert_eq!(pos, bytes.len(), "segment has trailing bytes");
    out
}

pub fn truncate_file(path: &Path, len: u64) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for truncation");
    f.set_len(len).expect("truncate");
}

pub fn flip_byte(path: &Path, pos: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[pos] ^= 0x5a;
    std::fs::write(path, bytes).expect("write");
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (up to `timeout`; returns whether it happened) until the broker's housekeeping thread
/// has visited every partition `passes` times since the call; with `passes >= 2` at least one
/// whole pass, group ticks included, also started after the call. For the checks that
/// housekeeping ran and left something alone, instead of sleeping for some intervals (which,
/// on a loaded machine, may cover none). Needs a short `housekeeping_interval_ms`.
///
/// The evidence is a witness topic (`housekeeping-witness-<n>`, created here): each round writes
/// two old records, each rolling a 1 KiB segment, and waits for retention (which only
/// housekeeping applies) to delete the first of them; a pass lists its topics after its group
/// ticks, and visits each listed topic once.
pub fn wait_for_housekeeping_passes(broker: &Broker, passes: usize, timeout: Duration) -> bool {
    static WITNESSES: AtomicUsize = AtomicUsize::new(0);
    let topic = format!(
        "housekeeping-witness-{}",
        WITNESSES.fetch_add(1, Ordering::Relaxed)
    );
    let config = TopicConfig {
        segment_bytes: 1024,
        retention_ms: 1,
        ..TopicConfig::default()
    };
    broker
        .create_topic(&topic, Some(config))
        .expect("create the housekeeping witness topic");
    let deadline = Instant::now() + timeout;
    let old_ms = thorstream::internals::storage::now_ms() - 3_600_000;
    for _ in 0..passes {
        let before = broker.offsets(&topic, 0).expect("offsets").log_end_offset;
        for _ in 0..2 {
            let record = Record::new(vec![0x5a; 600]).timestamp(old_ms);
            broker
                .produce(&topic, 0, &[record])
                .expect("append to the witness");
        }
        // The record at `before` is deletable only once the one after it rolled its segment.
        let deleted = wait_until(deadline.saturating_duration_since(Instant::now()), || {
            broker.offsets(&topic, 0).expect("offsets").log_start_offset > before
        });
        if !deleted {
            return false;
        }
    }
    true
}

/// The value in a checkpoint file (8-byte big-endian i64 followed by a CRC), if present.
pub fn read_checkpoint(path: &Path) -> Option<i64> {
    let bytes = std::fs::read(path).ok()?;
    let arr: [u8; 8] = bytes.get(0..8)?.try_into().ok()?;
    Some(i64::from_be_bytes(arr))
}

/// Copies a directory tree (a data directory) from `from` into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}
