//! A real SIGKILL in the middle of a cleaned-segment swap: a child process (this test binary
//! re-run with `CLEANER_SIGKILL_CHILD` set) opens a log, runs a cleaner pass that stops after
//! a given step of the swap, reports it, and is then killed with SIGKILL by the parent, with
//! its files exactly as that step left them. The parent reopens the log with crash recovery:
//! nothing is lost, no offset is held twice, and the log reads either as before the clean
//! (killed before the commit point) or as cleaned. Every step is covered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use thorstream::Record;
use thorstream::internals::protocol::records::{decode_records, encode_batch};
use thorstream::internals::storage::batch::BatchIter;
use thorstream::internals::storage::cleaner::{
    CleanOutcome, CleanerOptions, SWAP_STEPS, SwapStep, clean_log,
};
use thorstream::internals::storage::{LogConfig, PartitionLog};

const CHILD_ENV: &str = "CLEANER_SIGKILL_CHILD";

fn config() -> LogConfig {
    LogConfig {
        durable_hw: false,
        cleanup_compact: true,
        cleanup_delete: false,
        segment_ms: 10,
        ..LogConfig::default()
    }
}

type Row = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

fn read_all(log: &PartitionLog) -> Vec<Row> {
    let mut out = Vec::new();
    let mut offset = log.offsets().log_start_offset;
    while offset < log.high_watermark() {
        let mut bytes = Vec::new();
        log.read_view(offset)
            .unwrap()
            .read_into(&mut bytes, usize::MAX, true)
            .unwrap();
        let Some(last) = BatchIter::new(&bytes).map(|(h, _)| h.last_offset()).last() else {
            break;
        };
        for r in decode_records("t", 0, &bytes, offset).unwrap() {
            out.push((r.offset, r.key, r.value));
        }
        offset = last + 1;
    }
    out
}

/// 40 one-batch segments over 6 keys with tombstones, then a last (active) segment.
fn build(dir: &Path) {
    let mut log = PartitionLog::open(dir, config(), true, 0).unwrap();
    for i in 0..41i64 {
        let record = Record {
            key: Some(format!("k{}", i % 6).into_bytes()),
            value: (i % 9 != 4).then(|| format!("v{i}").into_bytes()),
            headers: Vec::new(),
            timestamp: Some(1),
        };
        log.append(&encode_batch(&[record], 1).unwrap(), i * 10)
            .unwrap();
    }
    log.close().unwrap();
}

/// The child: clean, stop after the step, say so, and wait to be killed.
#[test]
fn sigkill_child_entry_point() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // only meaningful when run by the parent below
    };
    let (dir, step) = spec.split_once('|').unwrap();
    let step = SWAP_STEPS[step.parse::<usize>().unwrap()];
    let log = Mutex::new(PartitionLog::open(Path::new(dir), config(), true, 1_000).unwrap());
    let options = CleanerOptions {
        force: true,
        stop_after: Some(step),
        ..CleanerOptions::default()
    };
    let outcome = clean_log(&log, &options, 1_000).unwrap();
    assert_eq!(outcome, CleanOutcome::Stopped(step));
    println!("STOPPED {step:?}");
    // Blocks until the parent kills us; never returns on its own.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    std::process::exit(3);
}

#[test]
fn sigkill_at_every_swap_step_loses_nothing_and_duplicates_nothing() {
    for (i, step) in SWAP_STEPS.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path());
        let before = read_all(&PartitionLog::open(dir.path(), config(), true, 1).unwrap());
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sigkill_child_entry_point",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{}|{i}", dir.path().display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let reached = lines.any(|l| l.is_ok_and(|l| l.contains(&format!("STOPPED {step:?}"))));
        assert!(reached, "{step:?}: the child reached the step");
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "{step:?}: killed, not exited");

        let log = PartitionLog::open(dir.path(), config(), false, 2_000).unwrap();
        let got = read_all(&log);
        let end = log.log_end_offset() - 1;
        let mut last: HashMap<&Option<Vec<u8>>, i64> = HashMap::new();
        for (o, k, _) in before.iter().filter(|r| r.0 < end) {
            last.insert(k, *o);
        }
        let cleaned: Vec<Row> = before
            .iter()
            .filter(|(o, k, _)| *o >= end || last.get(k) == Some(o))
            .cloned()
            .collect();
        if *step == SwapStep::CleanedWritten {
            assert_eq!(got, before, "{step:?}");
        } else {
            assert_eq!(got, cleaned, "{step:?}");
        }
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "{step:?}");
        let leftovers: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
            .collect();
        assert!(leftovers.is_empty(), "{step:?}: {leftovers:?}");
    }
}
