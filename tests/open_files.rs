#![allow(clippy::unwrap_used, clippy::expect_used)]
//! File descriptors per segment: a sealed segment and an idle partition hold one descriptor
//! (the `.log`); the indexes hold none between writes, so a broker with 10,000 partitions fits
//! in a 20,000 open-files limit.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use thorstream::{FsyncPolicy, Producer, Record, TopicConfig};

/// Descriptors this process holds on files under `dir`, by extension.
fn open_files_under(dir: &Path) -> BTreeMap<String, usize> {
    let dir = dir.canonicalize().expect("canonical");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("fds").flatten() {
        if let Ok(target) = std::fs::read_link(entry.path())
            && target.starts_with(&dir)
        {
            let ext = target
                .extension()
                .map_or(String::new(), |e| e.to_string_lossy().into_owned());
            *out.entry(ext).or_insert(0) += 1;
        }
    }
    out
}

fn count(files: &BTreeMap<String, usize>, ext: &str) -> usize {
    files.get(ext).copied().unwrap_or(0)
}

/// Descriptors on segment files (the broker's own metadata logs, a few, are not per segment).
fn segment_files(files: &BTreeMap<String, usize>) -> usize {
    ["log", "index", "timeindex", "txnindex"]
        .iter()
        .map(|e| count(files, e))
        .sum()
}

fn segment_count(data_dir: &Path) -> usize {
    walk(data_dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .count()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn sealed_segments_and_idle_partitions_hold_one_descriptor_each() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = common::open(tmp.path(), FsyncPolicy::Always);
    broker
        .create_topic("seg", Some(common::small_segments(1, 4096)))
        .expect("create");
    broker
        .create_topic(
            "idle",
            Some(TopicConfig {
                num_partitions: 8,
                ..TopicConfig::default()
            }),
        )
        .expect("create");
    let producer = Producer::new(Arc::clone(&broker));
    for i in 0..600 {
        producer
            .send("seg", Record::new(common::value(i)), Some(0))
            .expect("send");
    }
    let seg_dir = common::partition_dir(tmp.path(), "seg", 0);
    let segments = common::segment_bases(&seg_dir).len();
    assert!(segments > 5, "only {segments} segments");
    let files = open_files_under(tmp.path());
    // One `.log` per segment (the sealed ones, the active one, the 8 idle partitions') and no
    // index handles at all.
    assert_eq!(count(&files, "log"), segment_count(tmp.path()), "{files:?}");
    assert_eq!(count(&files, "log"), segments + 8, "{files:?}");
    for ext in ["index", "timeindex", "txnindex"] {
        assert_eq!(count(&files, ext), 0, "{ext}: {files:?}");
    }
    // Reads keep working from every segment (they share the `.log` handles).
    assert_eq!(common::read_all(&broker, "seg", 0).len(), 600);
    broker.close().expect("close");
    drop(producer);
    drop(broker);
    assert!(open_files_under(tmp.path()).is_empty());

    // After a clean restart and after a crash the budget is the same.
    let broker = common::open(tmp.path(), FsyncPolicy::Always);
    let files = open_files_under(tmp.path());
    assert_eq!(count(&files, "log"), segments + 8, "{files:?}");
    assert_eq!(segment_files(&files), segments + 8, "{files:?}");
    common::read_all(&broker, "seg", 0);
    common::crash(broker);
    let other = tempfile::tempdir().expect("tmp");
    common::copy_dir(tmp.path(), other.path());
    let broker = common::open(other.path(), FsyncPolicy::Always);
    let files = open_files_under(other.path());
    assert_eq!(segment_files(&files), segments + 8, "{files:?}");
    assert_eq!(common::read_all(&broker, "seg", 0).len(), 600);
    broker.close().expect("close");
}

#[test]
fn a_thousand_partitions_add_at_most_a_thousand_descriptors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = common::open(tmp.path(), FsyncPolicy::Always);
    let before = open_files_under(tmp.path()).values().sum::<usize>();
    assert_eq!(segment_files(&open_files_under(tmp.path())), 0);
    for t in 0..10 {
        broker
            .create_topic(
                &format!("t{t}"),
                Some(TopicConfig {
                    num_partitions: 100,
                    ..TopicConfig::default()
                }),
            )
            .expect("create");
    }
    let files = open_files_under(tmp.path());
    let added = files.values().sum::<usize>() - before;
    assert!(
        added <= 1_000,
        "{added} descriptors for 1,000 partitions: {files:?}"
    );
    assert_eq!(count(&files, "log"), 1_000, "{files:?}");
    assert_eq!(segment_files(&files), 1_000, "{files:?}");
    // Writing to one partition opens nothing more than its `.log` already is.
    let producer = Producer::new(Arc::clone(&broker));
    producer
        .send("t3", Record::new(b"x".to_vec()), Some(7))
        .expect("send");
    let after = open_files_under(tmp.path()).values().sum::<usize>();
    assert_eq!(after, files.values().sum::<usize>());
    broker.close().expect("close");
}
