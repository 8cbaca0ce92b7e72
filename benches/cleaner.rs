#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Log cleaner throughput and memory: one forced cleaning pass over a dirty log.
//!
//! `cargo bench --bench cleaner` builds a log under `target/bench-cleaner/` (the repository's
//! disk) of `BENCH_CLEANER_MIB` MiB (default 256) of 100-byte values in batches of 100 records,
//! written over `BENCH_CLEANER_KEYS` keys (default 100,000; each key overwritten many times),
//! 64 MiB segments, fsynced; then runs one `clean_log` pass (the pass the
//! `thorstream-cleaner` thread runs) and prints: dirty bytes cleaned per second, bytes before
//! and after, the offset map's memory, and the process's peak RSS (`VmHWM`) before and after
//! the pass. Run twice for a second pass figure on a clean log plus the new dirty tail.

use std::sync::Mutex;
use std::time::Instant;

use thorstream::Record;
use thorstream::internals::protocol::records::encode_batch;
use thorstream::internals::storage::cleaner::{CleanOutcome, CleanerOptions, clean_log};
use thorstream::internals::storage::{LogConfig, PartitionLog};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set size of this process, KiB (`VmHWM` in /proc/self/status).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let mib = env("BENCH_CLEANER_MIB", 256);
    let keys = env("BENCH_CLEANER_KEYS", 100_000);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-cleaner");
    let _ = std::fs::remove_dir_all(&dir);
    let config = LogConfig {
        segment_bytes: 64 * 1024 * 1024,
        durable_hw: false,
        cleanup_compact: true,
        cleanup_delete: false,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(&dir, config.clone(), true, 0).unwrap();
    let value = vec![b'x'; 100];
    let mut written = 0usize;
    let mut i = 0usize;
    let start = Instant::now();
    while written < mib * 1024 * 1024 {
        let records: Vec<Record> = (0..100)
            .map(|j| {
                let k = (i * 100 + j).wrapping_mul(2_654_435_761) % keys;
                Record::with_key(format!("key-{k:08}").into_bytes(), value.clone())
            })
            .collect();
        let batch = encode_batch(&records, 1_700_000_000_000).unwrap();
        written += batch.len();
        log.append(&batch, 1).unwrap();
        i += 1;
    }
    // Make everything durable and inactive: the pass cleans whole segments below the last
    // fsync, never the active one.
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open(&dir, config, true, 1).unwrap();
    let size_before = log.size_bytes();
    let segments_before = log.segment_count();
    println!(
        "log: {:.1} MiB in {segments_before} segments, {keys} keys, written in {:.1} s",
        size_before as f64 / 1048576.0,
        start.elapsed().as_secs_f64()
    );
    let log = Mutex::new(log);
    let options = CleanerOptions {
        force: true,
        ..CleanerOptions::default()
    };
    let rss_before = peak_rss_kib();
    let t = Instant::now();
    let outcome = clean_log(&log, &options, 2).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let rss_after = peak_rss_kib();
    let CleanOutcome::Cleaned(stats) = outcome else {
        panic!("expected a clean, got {outcome:?}");
    };
    let guard = log.lock().unwrap();
    println!("| figure | value |");
    println!("| --- | --- |");
    println!(
        "| dirty bytes cleaned | {:.1} MiB ({} segments → {}) |",
        stats.bytes_read as f64 / 1048576.0,
        stats.segments_before,
        stats.segments_after
    );
    println!("| pass time | {secs:.2} s |");
    println!(
        "| throughput | {:.1} MiB/s of dirty log |",
        stats.bytes_read as f64 / 1048576.0 / secs
    );
    println!(
        "| log after | {:.1} MiB ({} records removed) |",
        guard.size_bytes() as f64 / 1048576.0,
        stats.records_removed
    );
    println!(
        "| offset map | {} keys in {:.1} MiB |",
        stats.map_keys,
        stats.map_memory_bytes as f64 / 1048576.0
    );
    println!(
        "| peak RSS | {:.1} MiB before the pass, {:.1} MiB after (+{:.1} MiB) |",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        rss_after.saturating_sub(rss_before) as f64 / 1024.0
    );
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}
