#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Segment rolling: a partition spread over many small segments reads densely from any offset,
//! and its files follow Kafka's naming.

mod common;

use std::sync::Arc;

use thorstream::{FsyncPolicy, Producer, Record};

const N: usize = 600;

fn fill(producer: &Producer, topic: &str, from: usize, to: usize) {
    let mut i = from;
    while i < to {
        // Mix single records and batches of up to 9 so batch boundaries vary.
        let n = (1 + i % 9).min(to - i);
        if n == 1 {
            let (_, off) = producer
                .send(topic, Record::new(common::value(i)), Some(0))
                .expect("send");
            assert_eq!(off, i as i64);
        } else {
            let records = (i..i + n).map(|j| Record::new(common::value(j))).collect();
            let placed = producer.send_batch(topic, records, Some(0)).expect("send");
            assert_eq!(placed[0].1, i as i64);
        }
        i += n;
    }
}

fn check_segment_files(dir: &std::path::Path) -> Vec<i64> {
    let bases = common::segment_bases(dir);
    assert_eq!(bases.first(), Some(&0));
    for &b in &bases {
        for ext in ["log", "index", "timeindex"] {
            let p = common::segment_path(dir, b, ext);
            assert!(p.exists(), "{} missing", p.display());
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            assert_eq!(name.len(), 20 + 1 + ext.len(), "{name}");
        }
    }
    // Each segment starts where the previous one ends.
    for w in bases.windows(2) {
        let batches = common::batches_in(&common::segment_path(dir, w[0], "log"));
        let (_, _, base, count) = *batches.last().expect("non-empty segment");
        assert_eq!(base + i64::from(count), w[1]);
        assert_eq!(batches[0].2, w[0]);
    }
    bases
}

#[test]
fn many_small_segments_read_densely_from_any_offset() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = common::open(tmp.path(), FsyncPolicy::Never);
    broker
        .create_topic("seg", Some(common::small_segments(1, 4096)))
        .expect("create");
    let producer = Producer::new(Arc::clone(&broker));
    fill(&producer, "seg", 0, N);

    let dir = common::partition_dir(tmp.path(), "seg", 0);
    let bases = check_segment_files(&dir);
    assert!(bases.len() >= 10, "only {} segments", bases.len());
    for &b in &bases {
        let size = std::fs::metadata(common::segment_path(&dir, b, "log"))
            .expect("meta")
            .len();
        assert!(size <= 4096, "segment {b} is {size} bytes");
    }

    let all = common::read_all(&broker, "seg", 0);
    assert_eq!(all.len(), N);
    common::assert_dense(&all, 0);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.value.as_deref(), Some(&common::value(i)[..]));
    }
    // From every offset, including segment bases and their neighbours.
    for from in 0..N as i64 {
        let (records, _) = broker.read_records("seg", 0, from, 1).expect("read");
        let first = records.first().expect("at least one record");
        assert_eq!(first.offset, from);
        assert_eq!(
            first.value.as_deref(),
            Some(&common::value(from as usize)[..])
        );
    }
    // A read stops at the high watermark and an offset past the end is out of range.
    let (records, offsets) = broker
        .read_records("seg", 0, N as i64, 1 << 20)
        .expect("read");
    assert!(records.is_empty());
    assert_eq!(offsets.high_watermark, N as i64);
    assert!(matches!(
        broker.read_records("seg", 0, N as i64 + 1, 1 << 20),
        Err(thorstream::Error::OffsetOutOfRange { .. })
    ));
}

#[test]
fn rolled_segments_survive_restart_and_appends_continue() {
    let tmp = tempfile::tempdir().expect("tmp");
    {
        let broker = common::open(tmp.path(), FsyncPolicy::Always);
        broker
            .create_topic("seg", Some(common::small_segments(1, 2048)))
            .expect("create");
        fill(&Producer::new(Arc::clone(&broker)), "seg", 0, 200);
    }
    let dir = common::partition_dir(tmp.path(), "seg", 0);
    let before = check_segment_files(&dir);
    let broker = common::open(tmp.path(), FsyncPolicy::Always);
    assert_eq!(common::segment_bases(&dir), before);
    fill(&Producer::new(Arc::clone(&broker)), "seg", 200, 400);
    let after = check_segment_files(&dir);
    assert!(after.len() > before.len());
    let all = common::read_all(&broker, "seg", 0);
    assert_eq!(all.len(), 400);
    common::assert_dense(&all, 0);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.value.as_deref(), Some(&common::value(i)[..]));
    }
}
