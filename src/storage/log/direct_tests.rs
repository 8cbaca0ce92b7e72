//! Direct segment I/O (`LogConfig::direct_io`) against the page cache: the same appends, rolls,
//! crashes and clean restarts leave the same log, and no file that a later start trusts ends
//! in a direct write's zero padding.

use proptest::prelude::*;

use super::*;
use crate::storage::batch::tests::make_batch;

fn config(direct_io: bool) -> LogConfig {
    LogConfig {
        durable_hw: false,
        segment_bytes: 64 * 1024,
        index_interval_bytes: 1024,
        direct_io,
        ..LogConfig::default()
    }
}

fn stored(log: &PartitionLog) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset;
    while offset < log.high_watermark() {
        let view = log.read_view(offset).expect("view");
        let before = out.len();
        view.read_into(&mut out, usize::MAX, true).expect("read");
        let mut pos = before;
        while pos + crate::storage::batch::BATCH_HEADER_BYTES <= out.len() {
            let h = crate::storage::batch::BatchHeader::parse(&out[pos..]).expect("header");
            offset = h.last_offset() + 1;
            pos += h.total_bytes();
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Op {
    /// Batches of these many records, each with a body of this many bytes, in one append.
    Append(Vec<(i32, usize)>),
    /// Drop the log without closing it (a crash after the last append returned), reopen.
    Crash,
    /// Close and reopen.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((1i32..20, 0usize..30_000), 1..4).prop_map(Op::Append),
        1 => Just(Op::Crash),
        1 => Just(Op::Restart),
    ]
}

/// Whether this file system takes `O_DIRECT` (where it does not, the direct log keeps to the
/// page cache and these tests compare two buffered logs).
fn direct_available(dir: &std::path::Path) -> bool {
    let path = dir.join("probe");
    std::fs::write(&path, b"").expect("probe");
    crate::storage::log_writer::open_direct(&path)
        .expect("open")
        .is_some()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn a_direct_log_holds_what_a_buffered_one_holds(ops in prop::collection::vec(op(), 1..25)) {
        let (a, b) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
        if !direct_available(b.path()) {
            eprintln!("no O_DIRECT on {}: comparing two buffered logs", b.path().display());
        }
        let mut buffered = PartitionLog::open(a.path(), config(false), true, 0).expect("open");
        let mut direct = PartitionLog::open(b.path(), config(true), true, 0).expect("open");
        for (i, op) in ops.into_iter().enumerate() {
            let now = i as i64;
            match op {
                Op::Append(batches) => {
                    let mut bytes = Vec::new();
                    for (count, body) in batches {
                        bytes.extend(make_batch(count, &vec![i as u8; body], now));
                    }
                    let x = buffered.append(&bytes, now).expect("append");
                    let y = direct.append(&bytes, now).expect("append");
                    prop_assert_eq!((x.base_offset, x.last_offset), (y.base_offset, y.last_offset));
                }
                Op::Crash => {
                    drop((buffered, direct));
                    buffered = PartitionLog::open(a.path(), config(false), false, now).expect("reopen");
                    direct = PartitionLog::open(b.path(), config(true), false, now).expect("reopen");
                }
                Op::Restart => {
                    buffered.close().expect("close");
                    direct.close().expect("close");
                    drop((buffered, direct));
                    buffered = PartitionLog::open(a.path(), config(false), true, now).expect("reopen");
                    direct = PartitionLog::open(b.path(), config(true), true, now).expect("reopen");
                }
            }
            prop_assert_eq!(direct.log_end_offset(), buffered.log_end_offset());
            prop_assert_eq!(direct.segment_count(), buffered.segment_count());
            prop_assert_eq!(direct.size_bytes(), buffered.size_bytes());
            prop_assert!(stored(&direct) == stored(&buffered), "stored bytes differ after op {}", i);
            // Every segment but the active one ends at its last batch on disk.
            let last = direct.segments.len() - 1;
            for seg in &direct.segments[..last] {
                let len = std::fs::metadata(&seg.log_path).expect("meta").len();
                prop_assert_eq!(len, seg.size, "sealed segment {} keeps padding", seg.base_offset);
            }
        }
        direct.close().expect("close");
        for seg in &direct.segments {
            let len = std::fs::metadata(&seg.log_path).expect("meta").len();
            prop_assert_eq!(len, seg.size, "closed segment {} keeps padding", seg.base_offset);
        }
    }
}

#[test]
fn a_direct_log_writes_around_the_page_cache_and_reads_back() {
    let dir = tempfile::tempdir().expect("tmp");
    if !direct_available(dir.path()) {
        eprintln!("no O_DIRECT on {}: nothing to check", dir.path().display());
        return;
    }
    let mut log = PartitionLog::open(dir.path(), config(true), true, 0).expect("open");
    let batch = make_batch(3, &[7u8; 1000], 1);
    log.append(&batch, 1).expect("append");
    assert!(log.active().direct_handle().expect("handle").is_some());
    // Flushed at the end of the append: the file is a whole block, the log its first bytes.
    let len = std::fs::metadata(&log.active().log_path)
        .expect("meta")
        .len();
    assert_eq!(
        len % crate::storage::log_writer::DIRECT_IO_ALIGN_BYTES as u64,
        0
    );
    assert_eq!(log.size_bytes(), batch.len() as u64);
    let mut out = Vec::new();
    log.read_view(0)
        .expect("view")
        .read_into(&mut out, usize::MAX, true)
        .expect("read");
    assert_eq!(out.len(), batch.len());
    assert_eq!(
        &out[8..],
        &batch[8..],
        "stored bytes past the base offset field"
    );
}
