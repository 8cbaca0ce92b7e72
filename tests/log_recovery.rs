#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Recovery after an unclean stop. The broker is leaked (`common::crash`) so it never closes:
//! no fsync, no checkpoint, no clean-shutdown marker. Files are then damaged the way a crash or
//! a bad disk would, and a new broker opens the same directory.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use thorstream::{Broker, FsyncPolicy, Producer, Record};

const TOPIC: &str = "r";

/// Writes records `0..n` to partition 0 in batches of 1..=5 records.
fn write(broker: &Arc<Broker>, n: usize) {
    let producer = Producer::new(Arc::clone(broker));
    let mut i = 0;
    while i < n {
        let k = (1 + i % 5).min(n - i);
        let records = (i..i + k).map(|j| Record::new(common::value(j))).collect();
        producer.send_batch(TOPIC, records, Some(0)).expect("send");
        i += k;
    }
}

/// A crashed broker's directory holding `n` records in segments of `segment_bytes`.
fn crashed(fsync: FsyncPolicy, segment_bytes: u64, n: usize) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = common::open(tmp.path(), fsync);
    broker
        .create_topic(TOPIC, Some(common::small_segments(1, segment_bytes)))
        .expect("create");
    write(&broker, n);
    common::crash(broker);
    assert!(!tmp.path().join(".clean_shutdown").exists());
    let dir = common::partition_dir(tmp.path(), TOPIC, 0);
    (tmp, dir)
}

/// Reopens `data_dir` and checks that exactly records `0..survivors` are there, intact, and that
/// the next append gets offset `survivors`.
fn reopen_expecting(data_dir: &Path, fsync: FsyncPolicy, survivors: usize) -> Arc<Broker> {
    let broker = common::open(data_dir, fsync);
    let records = common::read_all(&broker, TOPIC, 0);
    assert_eq!(records.len(), survivors, "records surviving recovery");
    common::assert_dense(&records, 0);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            r.value.as_deref(),
            Some(&common::value(i)[..]),
            "offset {i}"
        );
    }
    let o = broker.offsets(TOPIC, 0).expect("offsets");
    assert_eq!(o.log_end_offset, survivors as i64);
    assert_eq!(o.high_watermark, survivors as i64);
    let (_, off) = Producer::new(Arc::clone(&broker))
        .send(TOPIC, Record::new(b"after-recovery".to_vec()), Some(0))
        .expect("append after recovery");
    assert_eq!(off, survivors as i64, "appends must continue densely");
    let (got, _) = broker.read_records(TOPIC, 0, off, 1 << 20).expect("read");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value.as_deref(), Some(&b"after-recovery"[..]));
    broker
}

/// Base offset, path and batches of segment number `which` (negative: from the end).
fn segment(dir: &Path, which: isize) -> (i64, PathBuf, Vec<common::BatchSpan>) {
    let bases = common::segment_bases(dir);
    let idx = if which < 0 {
        bases.len() as isize + which
    } else {
        which
    } as usize;
    let base = bases[idx];
    let path = common::segment_path(dir, base, "log");
    let batches = common::batches_in(&path);
    (base, path, batches)
}

#[test]
fn unclean_stop_without_damage_loses_nothing() {
    for fsync in [
        FsyncPolicy::Never,
        FsyncPolicy::Always,
        FsyncPolicy::Interval(50),
    ] {
        let (tmp, _) = crashed(fsync, 4096, 300);
        reopen_expecting(tmp.path(), fsync, 300);
    }
}

#[test]
fn torn_tail_of_last_segment_is_cut_at_the_last_whole_batch() {
    for fsync in [FsyncPolicy::Never, FsyncPolicy::Always] {
        let (tmp, dir) = crashed(fsync, 4096, 300);
        let (_, path, batches) = segment(&dir, -1);
        let &(pos, len, base, _) = batches.last().expect("batch");
        common::truncate_file(&path, (pos + len / 2) as u64);
        let broker = reopen_expecting(tmp.path(), fsync, base as usize);
        drop(broker);
        // And the repaired log survives a clean restart as it is.
        let broker = common::open(tmp.path(), fsync);
        assert_eq!(common::read_all(&broker, TOPIC, 0).len(), base as usize + 1);
    }
}

#[test]
fn torn_batch_header_is_cut() {
    let (tmp, dir) = crashed(FsyncPolicy::Never, 4096, 300);
    let (_, path, batches) = segment(&dir, -1);
    let &(pos, _, base, _) = batches.last().expect("batch");
    common::truncate_file(&path, (pos + 10) as u64);
    reopen_expecting(tmp.path(), FsyncPolicy::Never, base as usize);
}

#[test]
fn zeroed_garbage_after_the_last_batch_is_cut() {
    let (tmp, dir) = crashed(FsyncPolicy::Never, 1 << 20, 100);
    let (_, path, _) = segment(&dir, -1);
    let len = std::fs::metadata(&path).expect("meta").len();
    common::truncate_file(&path, len + 4096); // a preallocated, never-written tail
    reopen_expecting(tmp.path(), FsyncPolicy::Never, 100);
    let now = std::fs::metadata(&path).expect("meta").len();
    assert!(now > len && now < len + 4096, "tail not cut: {now} bytes");
}

#[test]
fn flipped_byte_in_last_batch_drops_that_batch_only() {
    for fsync in [FsyncPolicy::Never, FsyncPolicy::Always] {
        let (tmp, dir) = crashed(fsync, 4096, 300);
        let (_, path, batches) = segment(&dir, -1);
        let &(pos, len, base, _) = batches.last().expect("batch");
        common::flip_byte(&path, pos + len - 3);
        reopen_expecting(tmp.path(), fsync, base as usize);
        let after = common::batches_in(&path);
        assert_eq!(
            after.len(),
            batches.len(),
            "bad batch replaced by the new append"
        );
        assert_eq!(after.last().expect("batch").2, base);
    }
}

#[test]
fn damage_in_an_earlier_segment_truncates_there_and_drops_later_segments() {
    // Torn batch in the middle of the second segment.
    let (tmp, dir) = crashed(FsyncPolicy::Never, 2048, 300);
    let segments_before = common::segment_bases(&dir).len();
    assert!(segments_before >= 5);
    let (base1, path, batches) = segment(&dir, 1);
    let &(pos, len, cut_base, _) = &batches[batches.len() / 2];
    common::truncate_file(&path, (pos + len / 2) as u64);
    reopen_expecting(tmp.path(), FsyncPolicy::Never, cut_base as usize);
    let bases = common::segment_bases(&dir);
    assert_eq!(bases, vec![0, base1], "segments after the damage are gone");

    // Flipped byte in the first batch of the third segment.
    let (tmp, dir) = crashed(FsyncPolicy::Always, 2048, 300);
    let (base2, path, batches) = segment(&dir, 2);
    let &(pos, len, _, _) = &batches[0];
    common::flip_byte(&path, pos + len - 1);
    reopen_expecting(tmp.path(), FsyncPolicy::Always, base2 as usize);
    assert_eq!(*common::segment_bases(&dir).last().expect("segment"), base2);
}

#[test]
fn deleted_indexes_are_rebuilt_after_an_unclean_stop() {
    let (tmp, dir) = crashed(FsyncPolicy::Never, 8192, 400);
    let bases = common::segment_bases(&dir);
    assert!(bases.len() >= 3);
    for &b in [bases[0], bases[bases.len() / 2], *bases.last().expect("b")].iter() {
        std::fs::remove_file(common::segment_path(&dir, b, "index")).expect("rm index");
        std::fs::remove_file(common::segment_path(&dir, b, "timeindex")).expect("rm timeindex");
    }
    let broker = reopen_expecting(tmp.path(), FsyncPolicy::Never, 400);
    for (from, _) in (0..400).step_by(7).zip(0..) {
        let (got, _) = broker.read_records(TOPIC, 0, from, 1).expect("read");
        assert_eq!(got[0].offset, from);
    }
    for &b in &bases {
        assert!(common::segment_path(&dir, b, "index").exists());
        assert!(common::segment_path(&dir, b, "timeindex").exists());
    }
}

#[test]
fn corrupted_indexes_are_rebuilt_after_an_unclean_stop() {
    let (tmp, dir) = crashed(FsyncPolicy::Never, 8192, 400);
    let bases = common::segment_bases(&dir);
    for &b in &bases {
        std::fs::write(common::segment_path(&dir, b, "index"), [0xab_u8; 43]).expect("garble");
        std::fs::write(common::segment_path(&dir, b, "timeindex"), [0x11_u8; 24]).expect("garble");
    }
    let broker = reopen_expecting(tmp.path(), FsyncPolicy::Never, 400);
    for from in (0..400).step_by(3) {
        let (got, _) = broker.read_records(TOPIC, 0, from, 1).expect("read");
        assert_eq!(got[0].offset, from);
    }
    assert!(
        broker
            .offset_for_timestamp(TOPIC, 0, 0)
            .expect("ts")
            .is_some()
    );
}

/// The clean-shutdown path trusts the log but not a missing or visibly damaged index.
#[test]
fn missing_or_corrupted_indexes_are_rebuilt_after_a_clean_stop() {
    let tmp = tempfile::tempdir().expect("tmp");
    {
        let broker = common::open(tmp.path(), FsyncPolicy::Never);
        broker
            .create_topic(TOPIC, Some(common::small_segments(1, 16 * 1024)))
            .expect("create");
        write(&broker, 600);
    }
    let dir = common::partition_dir(tmp.path(), TOPIC, 0);
    let bases = common::segment_bases(&dir);
    assert!(bases.len() >= 3);
    std::fs::remove_file(common::segment_path(&dir, bases[0], "index")).expect("rm");
    // Not a whole number of entries.
    std::fs::write(common::segment_path(&dir, bases[1], "index"), [0u8; 13]).expect("garble");
    // Well-formed entries pointing past the end of the log.
    let mut entries = Vec::new();
    for k in 1u32..4 {
        entries.extend_from_slice(&k.to_be_bytes());
        entries.extend_from_slice(&(k * 1_000_000).to_be_bytes());
    }
    let last = *bases.last().expect("b");
    std::fs::write(common::segment_path(&dir, last, "index"), &entries).expect("garble");
    std::fs::remove_file(common::segment_path(&dir, last, "timeindex")).expect("rm");
    assert!(tmp.path().join(".clean_shutdown").exists());
    let broker = reopen_expecting(tmp.path(), FsyncPolicy::Never, 600);
    for from in 0..600 {
        let (got, _) = broker.read_records(TOPIC, 0, from, 1).expect("read");
        assert_eq!(got[0].offset, from);
    }
}

#[test]
fn damaged_clean_shutdown_tail_is_still_repaired() {
    // A torn tail found at startup even though the marker says "clean" (e.g. a disk problem).
    let tmp = tempfile::tempdir().expect("tmp");
    {
        let broker = common::open(tmp.path(), FsyncPolicy::Never);
        broker
            .create_topic(TOPIC, Some(common::small_segments(1, 4096)))
            .expect("create");
        write(&broker, 200);
    }
    let dir = common::partition_dir(tmp.path(), TOPIC, 0);
    let (_, path, batches) = segment(&dir, -1);
    let &(pos, len, base, _) = batches.last().expect("batch");
    common::truncate_file(&path, (pos + len - 1) as u64);
    reopen_expecting(tmp.path(), FsyncPolicy::Never, base as usize);
}

fn arb_values() -> impl Strategy<Value = Vec<(Option<Vec<u8>>, Vec<u8>, usize)>> {
    proptest::collection::vec(
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
            proptest::collection::vec(any::<u8>(), 0..300),
            1usize..6,
        ),
        1..80,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Whatever prefix of the last segment file survives a crash, recovery keeps exactly the
    /// records of the whole batches in it (plus all earlier segments), and appends continue
    /// densely after them.
    #[test]
    fn truncated_last_segment_recovers_to_a_prefix(
        values in arb_values(),
        segment_bytes in prop_oneof![Just(1u64 << 20), 1024u64..8192],
        cut in any::<prop::sample::Index>(),
    ) {
        let tmp = tempfile::tempdir().expect("tmp");
        let broker = common::open(tmp.path(), FsyncPolicy::Never);
        broker.create_topic(TOPIC, Some(common::small_segments(1, segment_bytes))).expect("create");
        let producer = Producer::new(Arc::clone(&broker));
        let mut written: Vec<Record> = Vec::new();
        for (key, value, batch) in &values {
            let records: Vec<Record> = (0..*batch)
                .map(|k| Record {
                    key: key.clone(),
                    value: Some([value.as_slice(), &[k as u8]].concat()),
                    ..Record::default()
                })
                .collect();
            written.extend(records.iter().cloned());
            producer.send_batch(TOPIC, records, Some(0)).expect("send");
        }
        drop(producer);
        common::crash(broker);

        let dir = common::partition_dir(tmp.path(), TOPIC, 0);
        let (base, path, batches) = segment(&dir, -1);
        let len = std::fs::metadata(&path).expect("meta").len() as usize;
        let cut = cut.index(len + 1);
        common::truncate_file(&path, cut as u64);
        let expected = base as usize
            + batches
                .iter()
                .filter(|(pos, l, _, _)| pos + l <= cut)
                .map(|&(_, _, _, n)| n as usize)
                .sum::<usize>();

        let broker = common::open(tmp.path(), FsyncPolicy::Never);
        let got = common::read_all(&broker, TOPIC, 0);
        prop_assert_eq!(got.len(), expected);
        for (i, r) in got.iter().enumerate() {
            prop_assert_eq!(r.offset, i as i64);
            prop_assert_eq!(&r.key, &written[i].key);
            prop_assert_eq!(&r.value, &written[i].value);
        }
        let (_, off) = Producer::new(Arc::clone(&broker))
            .send(TOPIC, Record::new(b"next".to_vec()), Some(0))
            .expect("append");
        prop_assert_eq!(off, expected as i64);
        let (tail, _) = broker.read_records(TOPIC, 0, off, 1 << 20).expect("read");
        prop_assert_eq!(tail.len(), 1);
        prop_assert_eq!(tail[0].value.as_deref(), Some(&b"next"[..]));
    }
}
