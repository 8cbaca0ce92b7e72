#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Embedded append and read throughput against the disk's raw sequential write bandwidth.
//!
//! `cargo bench --bench embedded_append` prints a Markdown table (the one in BENCHMARKS.md).
//! Every scenario starts from an empty data directory under `target/bench-embedded/` (the same
//! disk as the repository), appends to one single-partition topic until a byte cap or a time
//! budget is reached, then closes the broker (which fsyncs whatever is still unsynced). The raw
//! figure is `dd if=/dev/zero of=<that dir>/dd.tmp bs=1M count=1024 conv=fdatasync`, run three
//! times before and twice after the scenarios; percentages are against the best run.
//!
//! Environment: `BENCH_SECONDS` (time budget per scenario, default 5), `BENCH_MAX_MIB` (payload
//! cap per scenario, default 1024), `BENCH_ONLY` (run only scenarios whose label, e.g.
//! `1024-always-8-send`, contains this; skips dd — for profiling).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use thorstream::{Broker, BrokerConfig, Consumer, FsyncPolicy, Producer, Record, TopicPartition};

const TOPIC: &str = "bench";

#[derive(Clone, Copy)]
enum Mode {
    /// `Producer::send_batch` with this many records per call.
    Batch(usize),
    /// `Producer::send`, one record per call.
    Single,
}

struct Scenario {
    record_bytes: usize,
    fsync: FsyncPolicy,
    threads: usize,
    mode: Mode,
}

impl Scenario {
    fn label(&self) -> String {
        let call = match self.mode {
            Mode::Batch(n) => format!("batch{n}"),
            Mode::Single => "send".to_string(),
        };
        format!(
            "{}-{}-{}-{call}",
            self.record_bytes, self.fsync, self.threads
        )
    }
}

struct Outcome {
    records: u64,
    payload_bytes: u64,
    log_bytes: u64,
    append_secs: f64,
    with_close_secs: f64,
    latencies_us: Vec<u64>,
}

fn main() {
    let seconds: f64 = env_or("BENCH_SECONDS", 5.0);
    let max_bytes = (env_or("BENCH_MAX_MIB", 1024.0) * 1024.0 * 1024.0) as u64;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-embedded");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("bench dir");

    let only = std::env::var("BENCH_ONLY").ok();
    print_machine(&root);
    // dd varies a lot on shared/virtual disks: several runs, and the best one is "raw".
    let mut dd_runs: Vec<f64> = Vec::new();
    if only.is_none() {
        for _ in 0..3 {
            dd_runs.push(dd_write_mb_s(&root));
        }
    }

    let mut scenarios = Vec::new();
    for record_bytes in [100, 1024] {
        for fsync in [FsyncPolicy::Never, FsyncPolicy::Always] {
            for threads in [1, 8] {
                scenarios.push(Scenario {
                    record_bytes,
                    fsync,
                    threads,
                    mode: Mode::Batch(100),
                });
            }
        }
        scenarios.push(Scenario {
            record_bytes,
            fsync: FsyncPolicy::Always,
            threads: 8,
            mode: Mode::Single,
        });
    }
    if let Some(only) = &only {
        scenarios.retain(|s| s.label().contains(only.as_str()));
    }

    let mut rows = Vec::new();
    let mut reads = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        let dir = root.join(format!("s{i}"));
        let (outcome, read) = run(s, &dir, seconds, max_bytes);
        let _ = std::fs::remove_dir_all(&dir);
        if let Some(r) = read {
            reads.push((s.record_bytes, r));
        }
        rows.push(outcome);
        eprintln!("  done: scenario {}/{}", i + 1, scenarios.len());
    }
    if only.is_none() {
        for _ in 0..2 {
            dd_runs.push(dd_write_mb_s(&root));
        }
    }
    let raw = dd_runs.iter().copied().fold(f64::NAN, f64::max);
    let mut sorted = dd_runs.clone();
    sorted.sort_by(f64::total_cmp);
    let runs: Vec<String> = dd_runs.iter().map(|r| format!("{r:.0}")).collect();
    println!(
        "raw sequential write (dd, 3 runs before + 2 after): [{}] MB/s; median {:.0}, best {raw:.0}",
        runs.join(", "),
        sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
    );

    println!();
    println!(
        "| record | fsync | threads | call | records/s | payload MB/s | % of raw | incl. close MB/s | % of raw | log MB/s | p50 / p99 call µs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (s, o) in scenarios.iter().zip(&rows) {
        let payload = o.payload_bytes as f64 / 1e6 / o.append_secs;
        let closed = o.payload_bytes as f64 / 1e6 / o.with_close_secs;
        let log = o.log_bytes as f64 / 1e6 / o.append_secs;
        let call = match s.mode {
            Mode::Batch(n) => format!("send_batch({n})"),
            Mode::Single => "send".to_string(),
        };
        println!(
            "| {} B | {} | {} | {} | {:.0} | {:.1} | {:.0}% | {:.1} | {:.0}% | {:.1} | {} / {} |",
            s.record_bytes,
            s.fsync,
            s.threads,
            call,
            o.records as f64 / o.append_secs,
            payload,
            100.0 * payload / raw,
            closed,
            100.0 * closed / raw,
            log,
            percentile(&o.latencies_us, 0.50),
            percentile(&o.latencies_us, 0.99),
        );
    }
    println!();
    println!(
        "| read (Consumer::poll, 1 thread, page cache warm) | records/s | payload MB/s | % of raw |"
    );
    println!("|---|---|---|---|");
    for (size, (records, bytes, secs)) in reads {
        let mb = bytes as f64 / 1e6 / secs;
        println!(
            "| {size} B records | {:.0} | {mb:.1} | {:.0}% |",
            records as f64 / secs,
            100.0 * mb / raw
        );
    }
    println!();
    println!("raw = best dd run = {raw:.1} MB/s");
    for size in [100, 1024] {
        let find = |fsync: FsyncPolicy, threads: usize, single: bool| {
            scenarios
                .iter()
                .zip(&rows)
                .find(|(s, _)| {
                    s.record_bytes == size
                        && s.fsync == fsync
                        && s.threads == threads
                        && matches!(s.mode, Mode::Single) == single
                })
                .map(|(_, o)| o.payload_bytes as f64 / 1e6 / o.append_secs)
                .unwrap_or(0.0)
        };
        let never = find(FsyncPolicy::Never, 8, false).max(find(FsyncPolicy::Never, 1, false));
        let always8 = find(FsyncPolicy::Always, 8, false);
        let always8_single = find(FsyncPolicy::Always, 8, true);
        println!(
            "{size} B: best never = {never:.1} MB/s ({:.0}% of raw); always 8 threads = {:.0}% of never (send_batch), {:.0}% (send)",
            100.0 * never / raw,
            100.0 * always8 / never,
            100.0 * always8_single / never,
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

fn env_or(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run(
    s: &Scenario,
    dir: &Path,
    seconds: f64,
    max_bytes: u64,
) -> (Outcome, Option<(u64, u64, f64)>) {
    let config = BrokerConfig {
        data_dir: dir.to_path_buf(),
        fsync: s.fsync,
        ..BrokerConfig::default()
    };
    let broker = Arc::new(Broker::new(config).expect("broker"));
    broker.create_topic(TOPIC, None).expect("topic");
    let payload = Arc::new(vec![b'x'; s.record_bytes]);
    let sent_bytes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let handles: Vec<_> = (0..s.threads)
        .map(|_| {
            let broker = Arc::clone(&broker);
            let payload = Arc::clone(&payload);
            let sent_bytes = Arc::clone(&sent_bytes);
            let stop = Arc::clone(&stop);
            let mode = s.mode;
            std::thread::spawn(move || {
                let producer = Producer::new(broker);
                let mut records = 0u64;
                let mut latencies = Vec::new();
                let per_call = match mode {
                    Mode::Batch(n) => n,
                    Mode::Single => 1,
                };
                let call_bytes = (per_call * payload.len()) as u64;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match mode {
                        Mode::Batch(n) => {
                            let batch: Vec<Record> =
                                (0..n).map(|_| Record::new(payload.to_vec())).collect();
                            producer
                                .send_batch(TOPIC, batch, Some(0))
                                .expect("send_batch");
                        }
                        Mode::Single => {
                            producer
                                .send(TOPIC, Record::new(payload.to_vec()), Some(0))
                                .expect("send");
                        }
                    }
                    latencies.push(t.elapsed().as_micros() as u64);
                    records += per_call as u64;
                    let total = sent_bytes.fetch_add(call_bytes, Ordering::Relaxed) + call_bytes;
                    if total >= max_bytes || start.elapsed() >= budget {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                (records, latencies)
            })
        })
        .collect();
    let mut records = 0;
    let mut latencies_us = Vec::new();
    for h in handles {
        let (r, l) = h.join().expect("producer thread");
        records += r;
        latencies_us.extend(l);
    }
    let append_secs = start.elapsed().as_secs_f64();
    let offsets = broker.offsets(TOPIC, 0).expect("offsets");
    assert_eq!(
        offsets.high_watermark as u64, records,
        "lost or extra records"
    );
    let log_bytes = dir_log_bytes(&dir.join(format!("{TOPIC}-0")));

    // Sequential read of everything once, for the batched `never` single-thread runs.
    let read =
        (matches!(s.mode, Mode::Batch(_)) && s.fsync == FsyncPolicy::Never && s.threads == 1)
            .then(|| read_all(&broker, records, s.record_bytes));

    // Close = fsync of whatever is not yet durable; measured as part of "incl. close".
    let close_start = Instant::now();
    broker.close().expect("close");
    let with_close_secs = append_secs + close_start.elapsed().as_secs_f64();
    drop(broker);
    latencies_us.sort_unstable();
    (
        Outcome {
            records,
            payload_bytes: records * s.record_bytes as u64,
            log_bytes,
            append_secs,
            with_close_secs,
            latencies_us,
        },
        read,
    )
}

fn read_all(broker: &Arc<Broker>, expected: u64, record_bytes: usize) -> (u64, u64, f64) {
    let mut consumer = Consumer::new(Arc::clone(broker));
    consumer.set_max_poll_records(100_000);
    consumer
        .assign(vec![TopicPartition::new(TOPIC, 0)])
        .expect("assign");
    let start = Instant::now();
    let mut records = 0u64;
    let mut bytes = 0u64;
    while records < expected {
        let got = consumer.poll(None).expect("poll");
        assert!(!got.is_empty(), "read stalled at {records}/{expected}");
        records += got.len() as u64;
        bytes += got
            .iter()
            .map(|r| r.value.as_ref().map_or(0, Vec::len) as u64)
            .sum::<u64>();
    }
    assert_eq!(bytes, expected * record_bytes as u64);
    (records, bytes, start.elapsed().as_secs_f64())
}

fn dir_log_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Runs dd with fdatasync into `dir` and returns MB/s (10^6 bytes) computed from its output.
fn dd_write_mb_s(dir: &Path) -> f64 {
    let file = dir.join("dd.tmp");
    let out = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", file.display()))
        .args(["bs=1M", "count=1024", "conv=fdatasync"])
        .env("LC_ALL", "C")
        .output()
        .expect("run dd");
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stderr);
    // e.g. "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 1.52 s, 706 MB/s"
    let line = text
        .lines()
        .find(|l| l.contains(" copied, "))
        .unwrap_or_else(|| panic!("unexpected dd output: {text}"));
    let bytes: f64 = line
        .split_whitespace()
        .next()
        .and_then(|b| b.parse().ok())
        .expect("dd byte count");
    let secs: f64 = line
        .split(", ")
        .find_map(|part| part.strip_suffix(" s").and_then(|n| n.trim().parse().ok()))
        .expect("dd seconds");
    println!("dd: {}", line.trim());
    bytes / secs / 1e6
}

fn print_machine(root: &Path) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or("?".to_string(), |kb| {
            format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0)
        });
    println!(
        "machine: {cores} cores ({model}), {mem} RAM; data dir {}",
        root.display()
    );
}
