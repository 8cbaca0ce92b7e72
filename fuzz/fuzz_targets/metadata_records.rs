//! The metadata files the broker reads at startup.
//!
//! Input: one selector byte, then the file's bytes. Selector bit 7 clear: CRCs in the bytes are
//! recomputed first (record frames, checkpoint trailer) so mutations reach the decoders behind
//! them. Selector & 3:
//! 0. `__topics.meta` (CRC-32 frames: header frame and versioned records, or a legacy file of
//!    unversioned bincode records; layout in `broker::metadata`): decoded as `Broker::new`
//!    does (`internals::decode_topic_records`); an intact frame that does not decode must make
//!    the open fail and leave the file unchanged; when every record names a valid topic of at most 4
//!    partitions, a broker is opened on it (with the other startup files present: clean
//!    shutdown marker, `producer-id-block`), closed and reopened; if a topic is left with a
//!    config that does not validate, the open must fail instead.
//! 1. `__consumer_offsets.meta`: `OffsetStore::open` (refused, file unchanged, or opened),
//!    then compaction and reopen.
//! 2. `producer-state.v2` (CRC-framed bincode snapshot): a partition log with idempotent batches
//!    opened over it, then an idempotent append, close (snapshot) and reopen.
//! 3. the raw checkpoint, offset-index and time-index decoders.
//!
//! Invariants: nothing panics; what was loaded survives a compaction / close and reopen
//! unchanged; index entries that load are in range and strictly increasing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thorstream::CommittedOffset;
use thorstream::internals::broker::OffsetStore;
use thorstream::internals::storage::{LogConfig, PartitionLog, checkpoint, index, time_index};
use thorstream::internals::{TopicMetaRecord, decode_topic_records};
use thorstream::{Broker, BrokerConfig, FsyncPolicy};

#[path = "../common/mod.rs"]
mod common;

const NOW_MS: i64 = 1_700_000_000_000;

fn open_config(dir: &std::path::Path, bytes: &[u8]) -> BrokerConfig {
    std::fs::write(dir.join("__topics.meta"), bytes).expect("write");
    std::fs::write(dir.join(".clean_shutdown"), b"").expect("write");
    let mut config = BrokerConfig::with_data_dir(dir);
    config.fsync = FsyncPolicy::Never;
    config
}

fn topics(bytes: &[u8]) {
    let (records, valid) = match decode_topic_records(bytes) {
        Ok(d) => d,
        Err((offset, _)) => {
            // An intact frame that does not decode stops the start and is never cut.
            assert!(offset < bytes.len());
            let dir = common::tempdir();
            let config = open_config(dir.path(), bytes);
            assert!(
                Broker::new(config).is_err(),
                "an undecodable record was opened"
            );
            let after = std::fs::read(dir.path().join("__topics.meta")).expect("read");
            assert_eq!(after, bytes, "a refused file was changed");
            return;
        }
    };
    assert!(valid <= bytes.len());
    let mut live = std::collections::BTreeMap::new();
    for r in &records {
        match r {
            TopicMetaRecord::Upsert(m) => {
                // Names and partition counts are validated when a topic is created, not when
                // the file is read back: a name like `../x` would be a path outside the data
                // directory, so such records are not opened here (see RELIABILITY.md).
                if thorstream::internals::broker::validate_topic_name(&m.name).is_err()
                    || m.config.num_partitions > 4
                {
                    return;
                }
                live.insert(m.name.clone(), m.config.clone());
            }
            TopicMetaRecord::Delete { name } => {
                live.remove(name);
            }
            // Dynamic broker configs change every topic's defaults; not modelled here.
            TopicMetaRecord::BrokerConfigs { .. } => return,
        }
    }
    let dir = common::tempdir();
    let config = open_config(dir.path(), bytes);
    let names = |b: &Broker| {
        b.topics()
            .into_iter()
            .map(|t| {
                let n = b.describe(&t).map(|d| d.partitions.len()).unwrap_or(0);
                (t, n as u32)
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    // A topic left with a config that does not validate stops the start (and only that).
    if live.values().any(|c| c.validate().is_err()) {
        assert!(
            Broker::new(config).is_err(),
            "a topic with an invalid config was opened"
        );
        return;
    }
    let live: std::collections::BTreeMap<_, _> = live
        .into_iter()
        .map(|(name, c)| (name, c.num_partitions))
        .collect();
    let first = {
        let broker = Broker::new(config.clone()).expect("open broker");
        let n = names(&broker);
        broker.close().expect("close");
        n
    };
    assert_eq!(first, live, "topics opened differ from the records");
    let broker = Broker::new(config).expect("reopen broker");
    assert_eq!(names(&broker), first, "topics changed across a restart");
    broker.close().expect("close");
}

type OffsetsView = Vec<(String, Vec<((String, i32), CommittedOffset)>)>;

fn offsets_view(s: &OffsetStore) -> OffsetsView {
    s.groups()
        .into_iter()
        .map(|g| {
            let o = s.group_offsets(&g);
            (g, o)
        })
        .collect()
}

fn offsets(bytes: &[u8]) {
    let dir = common::tempdir();
    let path = dir.path().join("__consumer_offsets.meta");
    std::fs::write(&path, bytes).expect("write");
    let loaded = match OffsetStore::open(&path, false) {
        Ok(s) => offsets_view(&s),
        Err(_) => {
            // Only an intact frame that does not decode is refused, and never cut.
            let after = std::fs::read(&path).expect("read");
            assert_eq!(after, bytes, "a refused offsets file was changed");
            return;
        }
    };
    let s = OffsetStore::open(&path, false).expect("reopen");
    assert_eq!(
        offsets_view(&s),
        loaded,
        "offsets changed across compaction and reopen"
    );
    let value = CommittedOffset {
        offset: 7,
        leader_epoch: -1,
        metadata: None,
        commit_timestamp_ms: NOW_MS,
    };
    s.commit("fuzz-group", vec![("t".to_string(), 0, value.clone())])
        .expect("commit");
    drop(s);
    let s = OffsetStore::open(&path, false).expect("reopen");
    assert_eq!(s.fetch("fuzz-group", "t", 0), Some(value));
}

fn producer_state(body: &[u8], raw: bool) {
    let dir = common::tempdir();
    let path = dir.path().join("t-0");
    let config = LogConfig {
        durable_hw: false,
        ..LogConfig::default()
    };
    {
        let mut log = PartitionLog::open(&path, config.clone(), true, NOW_MS).expect("open");
        log.append(
            &mut common::idempotent_batch(&[b"a", b"b"], 1, 0, 0),
            NOW_MS,
        )
        .expect("append");
        log.append(&mut common::idempotent_batch(&[b"c"], 2, 3, 0), NOW_MS)
            .expect("append");
        log.close().expect("close");
    }
    let bytes = if raw {
        body.to_vec()
    } else {
        common::checkpoint_bytes(body)
    };
    std::fs::write(path.join("producer-state.v2"), bytes).expect("write");
    // A snapshot taken "after" the log end is ignored; one before it is replayed from.
    for clean in [true, false] {
        let mut log = PartitionLog::open(&path, config.clone(), clean, NOW_MS).expect("open");
        let table = log.producer_state().clone();
        // Probe the loaded table with the batches a producer would send next.
        for (pid, epoch, seq) in [(1, 0, 2), (1, 0, 0), (2, 3, 1), (3, 0, 0), (1, 1, 0)] {
            let _ = table.check(pid, epoch, seq, 1);
        }
        let _ = log.append(&mut common::idempotent_batch(&[b"d"], 1, 0, 2), NOW_MS);
        let state = log.producer_state().clone();
        log.close().expect("close");
        drop(log);
        let log = PartitionLog::open(&path, config.clone(), true, NOW_MS).expect("reopen");
        assert_eq!(
            log.producer_state(),
            &state,
            "producer state changed across a restart"
        );
    }
}

fn raw(bytes: &[u8]) {
    let dir = common::tempdir();
    let path = dir.path().join("checkpoint");
    std::fs::write(&path, bytes).expect("write");
    let _ = checkpoint::read_i64(&path);
    let _ = checkpoint::read_bytes(&path);
    let log_bytes = 1 + u64::from(bytes.first().copied().unwrap_or(0)) * 1000;
    if let Some(entries) = index::decode_entries(bytes, log_bytes) {
        for w in entries.windows(2) {
            assert!(w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position);
        }
        assert!(entries.iter().all(|e| u64::from(e.position) < log_bytes));
    }
    let end = u32::from(bytes.first().copied().unwrap_or(0)) * 100;
    if let Some(entries) = time_index::decode_entries(bytes, end) {
        for w in entries.windows(2) {
            assert!(w[0].timestamp < w[1].timestamp && w[0].relative_offset < w[1].relative_offset);
        }
        assert!(entries.iter().all(|e| e.relative_offset < end));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let raw_crc = selector & 0x80 != 0;
    let mut buf = bytes.to_vec();
    match selector & 3 {
        0 | 1 => {
            if !raw_crc {
                common::fix_record_frames(&mut buf);
            }
            if selector & 3 == 0 {
                topics(&buf);
            } else {
                offsets(&buf);
            }
        }
        2 => producer_state(&buf, raw_crc),
        _ => raw(&buf),
    }
});
