//! Micro-benchmarks of the hot-path building blocks, so a regression shows up without the
//! full load suite: request framing, batch validation, offset-index lookup, partition append
//! (plain, and idempotent with few or many producers known to the partition).
//!
//! `cargo bench --bench micro` (add `-- --quick` for a short run). Figures: BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use thorstream::Record;
use thorstream::internals::protocol::frame::FrameDecoder;
use thorstream::internals::protocol::records::encode_batch;
use thorstream::internals::storage::batch::{rewrite_crc, validate_batches};
use thorstream::internals::storage::index::OffsetIndex;
use thorstream::internals::storage::{LogConfig, PartitionLog};

/// One v2 batch of `n` records of `size` bytes each.
fn batch(n: usize, size: usize) -> Vec<u8> {
    let records: Vec<Record> = (0..n)
        .map(|i| Record::new(vec![(i % 251) as u8; size]))
        .collect();
    encode_batch(&records, 1_700_000_000_000).unwrap()
}

fn frame_decode(c: &mut Criterion) {
    // 1000 frames of 1 KiB, fed in 64 KiB reads as the reactor does.
    let mut stream = Vec::new();
    for i in 0..1000u32 {
        let body = vec![(i % 251) as u8; 1024];
        stream.extend_from_slice(&(body.len() as i32).to_be_bytes());
        stream.extend_from_slice(&body);
    }
    let mut g = c.benchmark_group("frame_decode");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("1000x1KiB_in_64KiB_reads", |b| {
        b.iter(|| {
            let mut d = FrameDecoder::new(100 << 20);
            let mut frames = 0;
            for chunk in stream.chunks(64 * 1024) {
                d.extend(chunk);
                while let Some(f) = d.next_frame().unwrap() {
                    frames += black_box(f).len().min(1);
                }
            }
            assert_eq!(frames, 1000);
        })
    });
    g.finish();
}

fn batch_validation(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_validation");
    for (n, size) in [(100usize, 100usize), (16, 1024), (1, 1024 * 1024 - 200)] {
        let b = batch(n, size);
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_function(format!("{n}x{size}B"), |bench| {
            bench.iter(|| validate_batches(black_box(&b), 2 << 20).unwrap())
        });
    }
    g.finish();
}

fn index_lookup(c: &mut Criterion) {
    // A full 1 GiB segment indexed every 4 KiB: 262 144 entries.
    let dir = tempfile::tempdir().unwrap();
    let mut idx = OffsetIndex::create(&dir.path().join("bench.index")).unwrap();
    for i in 1..262_144u32 {
        idx.append(i * 4, i * 4096).unwrap();
    }
    let mut probe = 0u32;
    c.bench_function("index_lookup/262144_entries", |b| {
        b.iter(|| {
            probe = probe.wrapping_mul(1_103_515_245).wrapping_add(12_345) % (262_144 * 4);
            black_box(idx.lookup(black_box(probe)))
        })
    });
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    for (n, size) in [(100usize, 100usize), (16, 1024)] {
        let template = batch(n, size);
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            durable_hw: false,
            segment_bytes: 64 << 20,
            retention_bytes: 128 << 20,
            ..LogConfig::default()
        };
        let mut log = PartitionLog::open(dir.path(), config, true, 0).unwrap();
        g.throughput(Throughput::Bytes(template.len() as u64));
        g.bench_function(format!("{n}x{size}B_no_fsync"), |b| {
            b.iter_custom(|iters| {
                let mut bytes = template.clone();
                let mut spent = Duration::ZERO;
                for i in 0..iters {
                    bytes.copy_from_slice(&template);
                    let started = Instant::now();
                    black_box(log.append(&bytes, 0).unwrap());
                    spent += started.elapsed();
                    if i % 4096 == 4095 {
                        // Keep the disk footprint bounded (whole old segments, untimed).
                        log.apply_retention(0).unwrap();
                    }
                }
                spent
            })
        });
    }
    g.finish();
}

/// Makes the batch in `bytes` one of idempotent producer `pid` (epoch 0) from sequence `seq`.
fn make_idempotent(bytes: &mut [u8], pid: i64, seq: i32) {
    bytes[43..51].copy_from_slice(&pid.to_be_bytes());
    bytes[51..53].copy_from_slice(&0i16.to_be_bytes());
    bytes[53..57].copy_from_slice(&seq.to_be_bytes());
    let total = bytes.len();
    rewrite_crc(bytes, total);
}

/// An idempotent append must cost the same whatever the number of producers the partition
/// tracks (its rollback state covers only the producers it touches).
fn append_idempotent(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_idempotent");
    let (n, size) = (100usize, 100usize);
    let template = batch(n, size);
    for producers in [1i64, 10_000] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            durable_hw: false,
            segment_bytes: 64 << 20,
            retention_bytes: 128 << 20,
            ..LogConfig::default()
        };
        let mut log = PartitionLog::open(dir.path(), config, true, 0).unwrap();
        let mut small = batch(1, 10);
        for pid in 1..producers {
            make_idempotent(&mut small, pid, 0);
            log.append(&small, 0).unwrap();
        }
        let mut seq = 0i32;
        g.throughput(Throughput::Bytes(template.len() as u64));
        g.bench_function(format!("{n}x{size}B_among_{producers}_producers"), |b| {
            b.iter_custom(|iters| {
                let mut bytes = template.clone();
                let mut spent = Duration::ZERO;
                for i in 0..iters {
                    bytes.copy_from_slice(&template);
                    make_idempotent(&mut bytes, 0, seq);
                    seq += n as i32;
                    let started = Instant::now();
                    black_box(log.append(&bytes, 0).unwrap());
                    spent += started.elapsed();
                    if i % 4096 == 4095 {
                        log.apply_retention(0).unwrap();
                    }
                }
                spent
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    frame_decode,
    batch_validation,
    index_lookup,
    append,
    append_idempotent
);
criterion_main!(benches);
