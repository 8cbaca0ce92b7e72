#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Randomized damage after an unclean stop: one crashed data directory (several small segments
//! per partition, some below the recovery point and some past it, two topics, committed offsets)
//! is copied once per iteration, one file in it is truncated, overwritten, zeroed or extended at
//! a seeded random position — a segment `.log`, `.index` or `.timeindex`, a checkpoint, or the
//! metadata files `__topics.meta` / `__consumer_offsets.meta` — and a new broker opens it.
//!
//! Each iteration checks: the broker opens (no panic, no error); every record stored before the
//! first damaged byte is read back with its value; no record is ever served with a value other
//! than the one written at its offset; appends continue at the log end offset; topics and
//! committed offsets whose metadata frames lie before the damage are intact; the data of a
//! topic whose metadata was lost is kept on disk, not deleted.
//!
//! `tests/log_recovery.rs` covers specific hand-made cases; this file is the randomized sweep.
//! `THORSTREAM_CORRUPTION_SEED` / `THORSTREAM_CORRUPTION_ITERATIONS` override the defaults.

mod common;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thorstream::internals::storage::batch::{BatchHeader, BatchIter, validate_batch};
use thorstream::{Broker, FsyncPolicy, Producer, Record};

const GROUPS: [&str; 2] = ["g1", "g2"];
/// Topics in the order their records sit in `__topics.meta` after the second start.
const TOPICS: [(&str, u32); 2] = [("a", 2), ("b", 1)];
const SEGMENT_BYTES: u64 = 16 * 1024;

/// SplitMix64: a tiny seeded generator (no dependency, same sequence everywhere).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type OffsetKey = (String, String, i32);

/// What the crashed template directory holds.
struct Template {
    dir: tempfile::TempDir,
    /// Value written at each offset, per (topic, partition).
    values: BTreeMap<(String, i32), Vec<Vec<u8>>>,
    /// `__consumer_offsets.meta` frames in file order: the commit each frame records.
    offset_frames: Vec<(OffsetKey, i64)>,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn write_records(
    broker: &Arc<Broker>,
    values: &mut BTreeMap<(String, i32), Vec<Vec<u8>>>,
    topic: &str,
    partition: i32,
    n: usize,
    counter: &mut usize,
) {
    let producer = Producer::new(Arc::clone(broker));
    let mut written = 0;
    while written < n {
        let k = (1 + *counter % 5).min(n - written);
        let batch: Vec<Vec<u8>> = (0..k).map(|j| common::value(*counter + j)).collect();
        let out = producer
            .send_batch(
                topic,
                batch.iter().cloned().map(Record::new).collect(),
                Some(partition),
            )
            .expect("send");
        let log = values.entry((topic.to_string(), partition)).or_default();
        assert_eq!(out[0].1, log.len() as i64, "dense offsets while writing");
        log.extend(batch);
        *counter += k;
        written += k;
    }
}

/// Builds the crashed directory: phase 1 writes topic `a`, commits, and stops cleanly (so the
/// recovery point covers its segments); phase 2 reopens, adds topic `b`, writes and commits
/// more, and is leaked (no close, no checkpoint, no clean-shutdown marker).
fn build_template() -> Template {
    let dir = tempfile::tempdir().expect("tmp");
    let mut values = BTreeMap::new();
    let mut counter = 0usize;
    let mut committed: BTreeMap<OffsetKey, i64> = BTreeMap::new();
    {
        let broker = common::open(dir.path(), FsyncPolicy::Never);
        broker
            .create_topic("a", Some(common::small_segments(2, SEGMENT_BYTES)))
            .expect("create a");
        broker
            .create_topic("gone", Some(common::small_segments(1, SEGMENT_BYTES)))
            .expect("create gone");
        broker.delete_topic("gone").expect("delete gone");
        for round in 0..4 {
            for p in 0..2 {
                write_records(&broker, &mut values, "a", p, 150, &mut counter);
                let off = (round + 1) * 150;
                broker
                    .commit_offset("g1", "a", p, off, None)
                    .expect("commit");
                committed.insert(("g1".into(), "a".into(), p), off);
            }
        }
        broker.close().expect("clean close");
    }
    // The second start compacts `__consumer_offsets.meta` to one frame per live key, in key
    // order; phase 2's commits follow.
    let mut offset_frames: Vec<(OffsetKey, i64)> = committed.into_iter().collect();
    let broker = common::open(dir.path(), FsyncPolicy::Never);
    broker
        .create_topic("b", Some(common::small_segments(1, SEGMENT_BYTES)))
        .expect("create b");
    for round in 0..6i64 {
        for (t, p) in [("a", 0), ("a", 1), ("b", 0)] {
            write_records(&broker, &mut values, t, p, 60, &mut counter);
            let group = GROUPS[(round as usize + p as usize) % 2];
            let off = values[&(t.to_string(), p)].len() as i64 - round;
            broker
                .commit_offset(group, t, p, off, None)
                .expect("commit");
            offset_frames.push(((group.into(), t.into(), p), off));
        }
    }
    common::crash(broker);
    assert!(!dir.path().join(".clean_shutdown").exists());
    let t = Template {
        dir,
        values,
        offset_frames,
    };
    // Each metadata file starts with its header frame, then one frame per record.
    assert_eq!(
        frame_ends(&t.dir.path().join("__consumer_offsets.meta")).len(),
        t.offset_frames.len() + 1,
        "offsets file layout"
    );
    assert_eq!(
        frame_ends(&t.dir.path().join("__topics.meta")).len(),
        TOPICS.len() + 1,
        "topics file layout"
    );
    for (t_name, parts) in TOPICS {
        for p in 0..parts as i32 {
            let d = common::partition_dir(t.dir.path(), t_name, p);
            assert!(
                common::segment_bases(&d).len() >= 3,
                "{t_name}-{p} segments"
            );
        }
    }
    t
}

/// End positions of the `length | crc | payload` frames of a metadata file.
fn frame_ends(path: &Path) -> Vec<u64> {
    let bytes = std::fs::read(path).expect("read metadata");
    let ends = frame_ends_of(&bytes);
    assert_eq!(
        ends.last().copied().unwrap_or(0),
        bytes.len() as u64,
        "whole frames"
    );
    ends
}

/// Every regular file of the data directory that the broker reads at startup.
fn damage_targets(data: &Path) -> Vec<PathBuf> {
    let mut out = vec![
        data.join("__topics.meta"),
        data.join("__consumer_offsets.meta"),
    ];
    for (t, parts) in TOPICS {
        for p in 0..parts as i32 {
            let dir = common::partition_dir(data, t, p);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            out.extend(files);
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Damage {
    Truncate { len: u64 },
    Overwrite { at: u64, bytes: Vec<u8> },
    Zero { at: u64, len: u64 },
    AppendGarbage { bytes: Vec<u8> },
}

impl Damage {
    /// The first byte of the original file that no longer holds its original value (the file
    /// length when only bytes past the end were added or nothing changed).
    fn first_damaged(&self, original: &[u8]) -> u64 {
        let len = original.len() as u64;
        match self {
            Damage::Truncate { len: l } => *l,
            Damage::Overwrite { at, .. } => *at,
            Damage::Zero { at, len: n } => (*at..(*at + *n).min(len))
                .find(|&i| original[i as usize] != 0)
                .unwrap_or(len),
            Damage::AppendGarbage { .. } => len,
        }
    }

    fn apply(&self, path: &Path) {
        let mut bytes = std::fs::read(path).unwrap();
        match self {
            Damage::Truncate { len } => bytes.truncate(*len as usize),
            Damage::Overwrite { at, bytes: x } => {
                for (i, b) in x.iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(*at as usize + i) {
                        *slot ^= b;
                    }
                }
            }
            Damage::Zero { at, len } => {
                let end = (*at + *len).min(bytes.len() as u64) as usize;
                bytes[*at as usize..end].fill(0);
            }
            Damage::AppendGarbage { bytes: x } => bytes.extend_from_slice(x),
        }
        std::fs::write(path, bytes).unwrap();
    }
}

fn random_damage(rng: &mut Rng, len: u64) -> Damage {
    let kind = if len == 0 { 3 } else { rng.below(4) };
    match kind {
        0 => Damage::Truncate {
            len: rng.below(len),
        },
        1 => {
            let at = rng.below(len);
            let n = 1 + rng.below(8);
            // Non-zero XOR masks: the first byte always changes.
            let bytes = (0..n).map(|_| 1 + rng.below(255) as u8).collect();
            Damage::Overwrite { at, bytes }
        }
        2 => Damage::Zero {
            at: rng.below(len),
            len: 1 + rng.below(600),
        },
        _ => Damage::AppendGarbage {
            bytes: (0..1 + rng.below(100)).map(|_| rng.next() as u8).collect(),
        },
    }
}

/// How many records of the partition in `partition_dir` must survive a damage at byte `at` of
/// `file` (whose undamaged bytes are `original`): all of them unless `file` is one of its
/// segments, else those before the damage in log order — the batches of earlier segments and
/// those of this segment that end before `at`. (As in Kafka, recovery drops every segment after
/// one whose tail it had to cut, so garbage after the last batch of a segment protects nothing
/// after that segment.)
fn protected_records(
    file: &Path,
    original: &[u8],
    at: u64,
    partition_dir: &Path,
    total: usize,
) -> usize {
    if file.parent() != Some(partition_dir) || file.extension().is_none_or(|e| e != "log") {
        return total;
    }
    let base: i64 = file
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap();
    let mut it = BatchIter::new(original);
    let mut next = base;
    loop {
        let start = it.position() as u64;
        match it.next() {
            Some((h, b)) if start + b.len() as u64 > at => return h.base_offset as usize,
            Some((h, _)) => next = h.last_offset() + 1,
            None => return next as usize,
        }
    }
}

/// Records that decoded (offset → value), and offset ranges that could not be read.
type Scan = (BTreeMap<i64, Vec<u8>>, Vec<(i64, i64)>);

/// Reads a partition batch by batch from its log start to its high watermark. Returns the
/// records that decoded (offset → value) and the offsets where reading failed or the batch was
/// corrupt. A read error (a damaged batch header below the recovery point, which startup does
/// not re-validate, as in Kafka) is skipped one offset at a time.
fn scan(broker: &Broker, topic: &str, partition: i32) -> Result<Scan, String> {
    let offsets = broker
        .offsets(topic, partition)
        .map_err(|e| e.to_string())?;
    let mut pos = offsets.log_start_offset;
    let mut good = BTreeMap::new();
    let mut bad: Vec<(i64, i64)> = Vec::new();
    let mut mark_bad = |from: i64, to: i64| match bad.last_mut() {
        Some(last) if last.1 + 1 >= from => last.1 = last.1.max(to),
        _ => bad.push((from, to)),
    };
    while pos < offsets.high_watermark {
        let data = match broker.read(topic, partition, pos, 1) {
            Ok(d) => d,
            Err(_) => {
                mark_bad(pos, pos);
                pos += 1;
                continue;
            }
        };
        if data.records.is_empty() {
            return Err(format!(
                "empty read at {pos} below the high watermark {}",
                offsets.high_watermark
            ));
        }
        let header = BatchHeader::parse(&data.records).map_err(|e| format!("at {pos}: {e}"))?;
        if header.last_offset() < pos {
            return Err(format!(
                "read at {pos} returned an earlier batch {}..={}",
                header.base_offset,
                header.last_offset()
            ));
        }
        let whole = data.records.len() >= header.total_bytes();
        let valid = whole && validate_batch(&data.records[..header.total_bytes()]).is_ok();
        if valid {
            let recs = thorstream::internals::protocol::records::decode_records(
                topic,
                partition,
                &data.records[..header.total_bytes()],
                pos,
            )
            .map_err(|e| format!("decode at {pos}: {e}"))?;
            for r in recs {
                good.insert(r.offset, r.value.unwrap_or_default());
            }
        } else {
            mark_bad(header.base_offset.max(pos), header.last_offset());
        }
        pos = header.last_offset() + 1;
    }
    Ok((good, bad))
}

/// Committed offsets after replaying the first `frames` frames of the offsets file.
fn expected_offsets(t: &Template, frames: usize) -> BTreeMap<OffsetKey, i64> {
    t.offset_frames[..frames].iter().cloned().collect()
}

/// What kind of file an iteration damaged (for the coverage line the test prints).
fn target_kind(data: &Path, file: &Path) -> String {
    let name = file.file_name().unwrap().to_str().unwrap().to_string();
    if file.parent() == Some(data) {
        return name;
    }
    match name.rsplit_once('.') {
        Some((stem, "log")) => {
            // Segments wholly below the recovery point are trusted at startup (not rescanned).
            let dir = file.parent().unwrap();
            let base: i64 = stem.parse().unwrap();
            let next = common::segment_bases(dir).into_iter().find(|&b| b > base);
            let rp = common::read_checkpoint(&dir.join("recovery-point")).unwrap_or(0);
            if next.is_some_and(|n| n <= rp) {
                "log (below recovery point)".into()
            } else {
                "log (rescanned)".into()
            }
        }
        Some((_, ext)) => ext.to_string(),
        None => name,
    }
}

/// One iteration: copy, damage, reopen, check. Returns a description of each broken promise.
fn check_one(
    t: &Template,
    rng: &mut Rng,
    iteration: u64,
    coverage: &mut BTreeMap<String, u32>,
) -> Vec<String> {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    common::copy_dir(t.dir.path(), &data);
    // The two metadata files are picked a quarter of the time, any partition file otherwise.
    let targets = damage_targets(&data);
    let file = match rng.below(8) {
        k @ 0..=1 => targets[k as usize].clone(),
        _ => targets[2 + rng.below(targets.len() as u64 - 2) as usize].clone(),
    };
    let original = std::fs::read(&file).unwrap();
    *coverage.entry(target_kind(&data, &file)).or_default() += 1;
    let damage = random_damage(rng, original.len() as u64);
    let at = damage.first_damaged(&original);
    damage.apply(&file);
    let name = file.strip_prefix(&data).unwrap().display().to_string();
    let what = format!(
        "iteration {iteration}: {name} ({} bytes) {damage:?}",
        original.len()
    );
    let mut problems = Vec::new();
    let mut fail = |m: String| problems.push(format!("{what}: {m}"));

    let opened = std::panic::catch_unwind(AssertUnwindSafe(|| {
        Broker::new(common::config(&data, FsyncPolicy::Always))
    }));
    let broker = match opened {
        Ok(Ok(b)) => Arc::new(b),
        Ok(Err(e)) => {
            fail(format!("open failed: {e}"));
            return problems;
        }
        Err(_) => {
            fail("open panicked".into());
            return problems;
        }
    };

    // Topics whose metadata frame lies wholly before the damage must be there.
    let topic_frames_kept = if name == "__topics.meta" {
        let ends = frame_ends_of(&original);
        // The header frame comes first; damage inside it loses every record after it.
        ends.iter().filter(|&&e| e <= at).count().saturating_sub(1)
    } else {
        TOPICS.len()
    };
    let topics = broker.topics();
    for (i, (topic, parts)) in TOPICS.iter().enumerate() {
        let present = topics.iter().any(|x| x == topic);
        if i < topic_frames_kept && !present {
            fail(format!("topic {topic} lost"));
            continue;
        }
        if !present {
            // Its metadata was destroyed: its data must still be on disk somewhere.
            for p in 0..*parts as i32 {
                let kept = std::fs::read_dir(&data).unwrap().any(|e| {
                    let n = e.unwrap().file_name().into_string().unwrap();
                    n.starts_with(&format!("{topic}-{p}"))
                });
                if !kept {
                    fail(format!(
                        "data of {topic}-{p} deleted after its metadata was lost"
                    ));
                }
            }
            continue;
        }
        for p in 0..*parts as i32 {
            let written = &t.values[&(topic.to_string(), p)];
            let pdir = common::partition_dir(&data, topic, p);
            let protected = protected_records(&file, &original, at, &pdir, written.len());
            let scanned = std::panic::catch_unwind(AssertUnwindSafe(|| scan(&broker, topic, p)));
            let (good, bad) = match scanned {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => {
                    fail(format!("{topic}-{p}: {e}"));
                    continue;
                }
                Err(_) => {
                    fail(format!("{topic}-{p}: read panicked"));
                    continue;
                }
            };
            let missing: Vec<usize> = (0..protected)
                .filter(|&off| !good.contains_key(&(off as i64)))
                .collect();
            if !missing.is_empty() {
                fail(format!(
                    "{topic}-{p}: {} of {protected} records before the damage unreadable \
                     (offsets {}..={}); corrupt batches {bad:?}",
                    missing.len(),
                    missing[0],
                    missing[missing.len() - 1]
                ));
            }
            let wrong: Vec<i64> = good
                .iter()
                .filter(|(off, v)| written.get(**off as usize).is_some_and(|w| w != *v))
                .map(|(off, _)| *off)
                .collect();
            if !wrong.is_empty() {
                fail(format!(
                    "{topic}-{p}: served wrong values at offsets {wrong:?}"
                ));
            }
            let o = broker.offsets(topic, p).unwrap();
            if o.high_watermark != o.log_end_offset {
                fail(format!("{topic}-{p}: high watermark {o:?} after open"));
            }
            if (o.log_end_offset as usize) < protected {
                fail(format!(
                    "{topic}-{p}: log end offset {} below {protected} protected records",
                    o.log_end_offset
                ));
            }
            match Producer::new(Arc::clone(&broker)).send(
                topic,
                Record::new(b"after-damage".to_vec()),
                Some(p),
            ) {
                Ok((_, off)) if off == o.log_end_offset => {
                    match broker.read_records(topic, p, off, 1 << 20) {
                        Ok((recs, _))
                            if recs.first().is_some_and(|r| {
                                r.offset == off && r.value.as_deref() == Some(b"after-damage")
                            }) => {}
                        other => fail(format!("{topic}-{p}: appended record reads {other:?}")),
                    }
                }
                Ok((_, off)) => fail(format!(
                    "{topic}-{p}: append got offset {off}, log end offset was {}",
                    o.log_end_offset
                )),
                Err(e) => fail(format!("{topic}-{p}: append failed: {e}")),
            }
        }
    }

    // Committed offsets: exactly the replay of the frames before the damage.
    let frames_kept = if name == "__consumer_offsets.meta" {
        frame_ends_of(&original)
            .iter()
            .filter(|&&e| e <= at)
            .count()
            .saturating_sub(1)
    } else {
        t.offset_frames.len()
    };
    let expected = expected_offsets(t, frames_kept);
    let mut actual = BTreeMap::new();
    for g in GROUPS {
        for ((topic, p), c) in broker.group_offsets(g) {
            actual.insert((g.to_string(), topic, p), c.offset);
        }
    }
    if actual != expected {
        fail(format!(
            "committed offsets {actual:?}, expected {expected:?} ({frames_kept} frames kept)"
        ));
    }
    drop(broker);
    problems
}

fn frame_ends_of(bytes: &[u8]) -> Vec<u64> {
    let mut ends = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 8 + len;
        if pos > bytes.len() {
            break;
        }
        ends.push(pos as u64);
    }
    ends
}

#[test]
fn random_damage_keeps_everything_before_it() {
    let seed = env_u64("THORSTREAM_CORRUPTION_SEED", 0x7407_5743);
    let iterations = env_u64("THORSTREAM_CORRUPTION_ITERATIONS", 300);
    let template = build_template();
    let mut rng = Rng(seed);
    let mut problems = Vec::new();
    let mut coverage = BTreeMap::new();
    for i in 0..iterations {
        problems.extend(check_one(&template, &mut rng, i, &mut coverage));
    }
    eprintln!("seed {seed}, {iterations} iterations, damaged files by kind: {coverage:?}");
    assert!(
        problems.is_empty(),
        "seed {seed}: {} problems in {iterations} iterations; first ones:\n{}",
        problems.len(),
        problems
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
