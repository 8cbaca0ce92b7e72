#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Several threads appending to one partition: offsets are dense, none is handed out twice, and
//! every record reads back intact and in each writer's order.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use thorstream::{Broker, FsyncPolicy, Producer, Record};

const THREADS: usize = 4;

fn run(fsync: FsyncPolicy, per_thread: usize, batch: usize, segment_bytes: u64) {
    let tmp = tempfile::tempdir().expect("tmp");
    let broker = common::open(tmp.path(), fsync);
    broker
        .create_topic("c", Some(common::small_segments(1, segment_bytes)))
        .expect("create");
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let broker: Arc<Broker> = Arc::clone(&broker);
            std::thread::spawn(move || {
                let producer = Producer::new(broker);
                let mut offsets = Vec::new();
                let mut i = 0;
                while i < per_thread {
                    let n = batch.min(per_thread - i);
                    let records: Vec<Record> = (i..i + n)
                        .map(|k| {
                            Record::with_key(
                                format!("t{t}").into_bytes(),
                                format!("t{t}-{k:05}-{}", "x".repeat(k % 50)).into_bytes(),
                            )
                        })
                        .collect();
                    if n == 1 {
                        let rec = records.into_iter().next().expect("record");
                        offsets.push(producer.send("c", rec, Some(0)).expect("send").1);
                    } else {
                        let placed = producer.send_batch("c", records, Some(0)).expect("send");
                        offsets.extend(placed.into_iter().map(|(_, o)| o));
                    }
                    i += n;
                }
                offsets
            })
        })
        .collect();
    let mut acked: BTreeMap<i64, usize> = BTreeMap::new();
    for (t, h) in handles.into_iter().enumerate() {
        let offsets = h.join().expect("writer thread");
        assert_eq!(offsets.len(), per_thread);
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "thread {t} offsets not increasing"
        );
        for o in offsets {
            assert!(acked.insert(o, t).is_none(), "offset {o} handed out twice");
        }
    }
    let total = THREADS * per_thread;
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (0..total as i64).collect::<Vec<_>>()
    );

    let check = |broker: &Broker| {
        let records = common::read_all(broker, "c", 0);
        assert_eq!(records.len(), total);
        common::assert_dense(&records, 0);
        let mut next = [0usize; THREADS];
        for r in &records {
            let key = String::from_utf8(r.key.clone().expect("key")).expect("utf8");
            let t: usize = key[1..].parse().expect("thread id");
            assert_eq!(
                acked[&r.offset], t,
                "offset {} written by another thread",
                r.offset
            );
            let k = next[t];
            let expected = format!("t{t}-{k:05}-{}", "x".repeat(k % 50));
            assert_eq!(r.value.as_deref(), Some(expected.as_bytes()));
            next[t] += 1;
        }
        assert_eq!(next, [per_thread; THREADS]);
    };
    check(&broker);
    drop(broker);
    check(&common::open(tmp.path(), fsync));
}

#[test]
fn four_threads_single_sends_fsync_always() {
    run(FsyncPolicy::Always, 150, 1, 16 * 1024);
}

#[test]
fn four_threads_single_sends_fsync_never() {
    run(FsyncPolicy::Never, 500, 1, 16 * 1024);
}

#[test]
fn four_threads_batches_fsync_always() {
    run(FsyncPolicy::Always, 400, 20, 32 * 1024);
}

#[test]
fn four_threads_batches_fsync_never() {
    run(FsyncPolicy::Never, 1000, 20, 32 * 1024);
}

#[test]
fn four_threads_fsync_interval() {
    run(FsyncPolicy::Interval(5), 300, 3, 8 * 1024);
}
