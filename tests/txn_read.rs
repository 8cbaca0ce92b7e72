#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The read side of transactions against the real server (issue 14): Fetch and ListOffsets
//! with `isolation_level` read_committed (stopping at the last stable offset, the aborted
//! transactions list), TxnOffsetCommit's pending offsets (invisible to OffsetFetch until the
//! coordinator's end, `require_stable`, fences, a reopen), and the embedded Consumer's
//! read_committed. Transactional batches and markers are appended through the broker's
//! storage API (`Broker::append` of `encode_transactional_batch` bytes, `BrokerInternals::append_marker`), the
//! coordinator's part by `BrokerInternals::complete_txn_offsets`.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponsePartition;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchResponse, GroupId, ListOffsetsRequest, ListOffsetsResponse,
    OffsetFetchRequest, OffsetFetchResponse, ProducerId, TransactionalId, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use thorstream::internals::BrokerInternals;
use thorstream::internals::protocol::records::{
    TxnProducer, decode_committed, encode_batch, encode_transactional_batch,
};
use thorstream::{
    Broker, Consumer, FsyncPolicy, IsolationLevel, Record, TopicConfig, TopicPartition,
};

use common::requests::{fetch_request, topic_name};
use common::server::Fixture;
use common::wire::{request, response};

const UNSTABLE_OFFSET_COMMIT: i16 = ResponseError::UnstableOffsetCommit.code();
const INVALID_PRODUCER_EPOCH: i16 = ResponseError::InvalidProducerEpoch.code();
const ILLEGAL_GENERATION: i16 = ResponseError::IllegalGeneration.code();

fn start(fsync: FsyncPolicy) -> Fixture {
    common::server::start(
        |bc| bc.fsync = fsync,
        [("t", TopicConfig::with_partitions(1))],
        |_| {},
    )
}

fn call<Req: Encodable + HeaderVersion, Resp: Decodable>(
    fx: &Fixture,
    api: ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    let mut s = TcpStream::connect(fx.addr).unwrap();
    s.write_all(&request(api, version, 1, req)).unwrap();
    let (corr, resp) = response(&mut s, api.response_header_version(version), version);
    assert_eq!(corr, 1);
    resp
}

/// Appends `records` values as one transactional batch of producer `pid` (epoch 0).
fn txn(b: &Broker, pid: i64, seq: i32, values: &[&str], ts: i64) -> i64 {
    let records: Vec<Record> = values
        .iter()
        .map(|v| Record::new(v.as_bytes().to_vec()).timestamp(ts))
        .collect();
    let producer = TxnProducer {
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: seq,
    };
    let batch = encode_transactional_batch(&records, ts, producer).unwrap();
    b.append("t", 0, &batch).unwrap().base_offset
}

fn plain(b: &Broker, value: &str, ts: i64) -> i64 {
    let batch = encode_batch(&[Record::new(value.as_bytes().to_vec()).timestamp(ts)], ts).unwrap();
    b.append("t", 0, &batch).unwrap().base_offset
}

fn marker(b: &Broker, pid: i64, commit: bool) -> i64 {
    b.append_marker("t", 0, pid, 0, commit).unwrap().base_offset
}

fn fetch(fx: &Fixture, offset: i64, isolation: i8, max_wait_ms: i32) -> PartitionData {
    let req =
        fetch_request("t", 0, offset, 1, max_wait_ms, 1 << 20).with_isolation_level(isolation);
    let resp: FetchResponse = call(fx, ApiKey::Fetch, 12, &req);
    resp.responses
        .into_iter()
        .next()
        .unwrap()
        .partitions
        .into_iter()
        .next()
        .unwrap()
}

/// Offsets of the records a fetch returned, as a read_committed client decodes them.
fn offsets_read(p: &PartitionData, from: i64) -> Vec<i64> {
    let aborted: Option<Vec<_>> = p.aborted_transactions.as_ref().map(|list| {
        list.iter()
            .map(|a| thorstream::internals::storage::AbortedTxn {
                producer_id: a.producer_id.0,
                first_offset: a.first_offset,
            })
            .collect()
    });
    let bytes = p.records.clone().unwrap_or_default();
    decode_committed("t", 0, &bytes, from, aborted.as_deref())
        .unwrap()
        .iter()
        .map(|r| r.offset)
        .collect()
}

#[test]
fn read_committed_fetch_stops_at_an_open_transaction_and_lists_aborted_ones() {
    let fx = start(FsyncPolicy::Never);
    let b = &fx.broker;
    assert_eq!(plain(b, "a", 10), 0);
    assert_eq!(txn(b, 1, 0, &["x", "y"], 10), 1);
    // The transaction is open: read_committed sees offset 0 only; the LSO is 1 at both
    // levels; read_uncommitted gets no aborted list, read_committed an empty one.
    let rc = fetch(&fx, 0, 1, 0);
    assert_eq!(
        (rc.error_code, rc.high_watermark, rc.last_stable_offset),
        (0, 3, 1)
    );
    assert_eq!(offsets_read(&rc, 0), vec![0]);
    assert_eq!(rc.aborted_transactions, Some(vec![]));
    let ru = fetch(&fx, 0, 0, 0);
    assert_eq!(
        (ru.last_stable_offset, ru.aborted_transactions.is_none()),
        (1, true)
    );
    assert_eq!(offsets_read(&ru, 0), vec![0, 1, 2]);
    // At the LSO nothing is readable yet.
    assert_eq!(offsets_read(&fetch(&fx, 1, 1, 0), 1), Vec::<i64>::new());
    // Aborted: the LSO moves past the marker and the fetch names the aborted transaction.
    assert_eq!(marker(b, 1, false), 3);
    let rc = fetch(&fx, 1, 1, 0);
    assert_eq!((rc.high_watermark, rc.last_stable_offset), (4, 4));
    let aborted = rc.aborted_transactions.clone().unwrap();
    assert_eq!(
        aborted
            .iter()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect::<Vec<_>>(),
        vec![(1, 1)]
    );
    assert_eq!(offsets_read(&rc, 1), Vec::<i64>::new());
    // A committed transaction after it is read whole.
    assert_eq!(txn(b, 2, 0, &["c"], 10), 4);
    assert_eq!(marker(b, 2, true), 5);
    let rc = fetch(&fx, 0, 1, 0);
    assert_eq!(offsets_read(&rc, 0), vec![0, 4]);
}

#[test]
fn a_read_committed_long_poll_is_answered_when_the_transaction_commits() {
    let fx = start(FsyncPolicy::Never);
    let b = Arc::clone(&fx.broker);
    txn(&b, 1, 0, &["x"], 10);
    assert_eq!(offsets_read(&fetch(&fx, 0, 1, 0), 0), Vec::<i64>::new());
    let addr_fx = &fx;
    std::thread::scope(|s| {
        let waiting = s.spawn(move || fetch(addr_fx, 0, 1, 30_000));
        // The parked fetch can only return the record once the marker is written.
        assert!(common::wait_until(Duration::from_secs(10), || {
            b.waits().parked() > 0 || waiting.is_finished()
        }));
        marker(&b, 1, true);
        let p = waiting.join().unwrap();
        assert_eq!(offsets_read(&p, 0), vec![0]);
        assert_eq!(p.last_stable_offset, 2);
    });
}

fn list_offsets(fx: &Fixture, isolation: i8, timestamp: i64) -> (i16, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(timestamp),
                ]),
        ]);
    let resp: ListOffsetsResponse = call(fx, ApiKey::ListOffsets, 7, &req);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset)
}

#[test]
fn list_offsets_answers_the_lso_under_read_committed() {
    let fx = start(FsyncPolicy::Never);
    let b = &fx.broker;
    plain(b, "a", 100);
    txn(b, 1, 0, &["x", "y"], 500);
    assert_eq!(list_offsets(&fx, 0, -1), (0, 3));
    assert_eq!(list_offsets(&fx, 1, -1), (0, 1));
    assert_eq!(list_offsets(&fx, 1, -2), (0, 0));
    // A lookup by time finds the open transaction's record only below the high watermark.
    assert_eq!(list_offsets(&fx, 0, 400), (0, 1));
    assert_eq!(list_offsets(&fx, 1, 400), (0, -1));
    assert_eq!(list_offsets(&fx, 1, 50), (0, 0));
    marker(b, 1, true);
    assert_eq!(list_offsets(&fx, 1, -1), (0, 4));
    assert_eq!(list_offsets(&fx, 1, 400), (0, 1));
}

fn txn_offset_commit(fx: &Fixture, pid: i64, epoch: i16, generation: i32, offset: i64) -> i16 {
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_static_str(if generation < 0 {
            ""
        } else {
            "m"
        }))
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)
                        .with_committed_metadata(Some(StrBytes::from_static_str("md"))),
                ]),
        ]);
    let resp: TxnOffsetCommitResponse = call(fx, ApiKey::TxnOffsetCommit, 3, &req);
    resp.topics[0].partitions[0].error_code
}

fn offset_fetch(fx: &Fixture, require_stable: bool) -> OffsetFetchResponsePartition {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_require_stable(require_stable)
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(topic_name("t"))
                .with_partition_indexes(vec![0]),
        ]));
    let resp: OffsetFetchResponse = call(fx, ApiKey::OffsetFetch, 7, &req);
    resp.topics[0].partitions[0].clone()
}

fn fetched(fx: &Fixture, require_stable: bool) -> (i16, i64) {
    let p = offset_fetch(fx, require_stable);
    (p.error_code, p.committed_offset)
}

#[test]
fn txn_offsets_are_pending_until_the_transaction_ends() {
    // fsync `always`: the TxnOffsetCommit parks until the flusher made it durable.
    let fx = start(FsyncPolicy::Always);
    assert_eq!(txn_offset_commit(&fx, 7, 1, -1, 5), 0);
    assert_eq!(fetched(&fx, false), (0, -1));
    assert_eq!(fetched(&fx, true), (UNSTABLE_OFFSET_COMMIT, -1));
    // A zombie (an older epoch of the same producer) is fenced and writes nothing.
    assert_eq!(txn_offset_commit(&fx, 7, 0, -1, 6), INVALID_PRODUCER_EPOCH);
    fx.broker.complete_txn_offsets("g", 7, true).unwrap();
    assert_eq!(fetched(&fx, true), (0, 5));
    assert_eq!(offset_fetch(&fx, false).metadata.as_deref(), Some("md"));
    // Aborted: dropped, the committed offset stays.
    assert_eq!(txn_offset_commit(&fx, 7, 2, -1, 9), 0);
    fx.broker.complete_txn_offsets("g", 7, false).unwrap();
    assert_eq!(fetched(&fx, true), (0, 5));
    // A generation for a group that has none (no member joined) is refused, as Kafka.
    assert_eq!(txn_offset_commit(&fx, 8, 0, 3, 11), ILLEGAL_GENERATION);
    assert_eq!(fetched(&fx, true), (0, 5));
}

#[test]
fn pending_offsets_stay_pending_and_ended_ones_stay_ended_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |offset| thorstream::internals::broker::OffsetCommitEntry {
        topic: "t".into(),
        partition: 0,
        offset,
        leader_epoch: -1,
        metadata: None,
    };
    {
        let b = common::open(dir.path(), FsyncPolicy::Always);
        b.create_topic("t", Some(TopicConfig::with_partitions(1)))
            .unwrap();
        b.txn_commit_offsets("g", 1, 0, &[entry(3)]).unwrap();
        b.txn_commit_offsets("h", 2, 0, &[entry(4)]).unwrap();
        b.complete_txn_offsets("h", 2, true).unwrap();
        b.txn_commit_offsets("i", 3, 0, &[entry(5)]).unwrap();
        b.complete_txn_offsets("i", 3, false).unwrap();
        // A kill: nothing closes, only what was made durable counts.
        common::crash(b);
    }
    let b = common::open(dir.path(), FsyncPolicy::Always);
    let committed = |g: &str| b.committed_offset(g, "t", 0).map(|c| c.offset);
    assert_eq!(
        (committed("g"), committed("h"), committed("i")),
        (None, Some(4), None)
    );
    assert!(b.has_pending_txn_offsets("g", "t", 0));
    assert!(!b.has_pending_txn_offsets("h", "t", 0) && !b.has_pending_txn_offsets("i", "t", 0));
    // The coordinator's recovery ends the open one.
    b.complete_txn_offsets("g", 1, true).unwrap();
    assert_eq!(committed("g"), Some(3));
}

#[test]
fn the_embedded_consumer_reads_committed_skipping_aborted_and_control_records() {
    let fx = start(FsyncPolicy::Never);
    let b = &fx.broker;
    plain(b, "a", 10); // 0
    txn(b, 1, 0, &["x", "y"], 10); // 1-2, aborted
    txn(b, 2, 0, &["c"], 10); // 3, committed
    marker(b, 1, false); // 4
    marker(b, 2, true); // 5
    plain(b, "b", 10); // 6
    txn(b, 3, 0, &["open"], 10); // 7, still open
    plain(b, "z", 10); // 8
    let tp = TopicPartition::new("t".to_string(), 0);
    let poll_all = |level| {
        let mut c = Consumer::new(Arc::clone(b));
        c.set_isolation_level(level);
        c.assign(vec![tp.clone()]).unwrap();
        let mut got = Vec::new();
        loop {
            let batch = c.poll(None).unwrap();
            if batch.is_empty() {
                break;
            }
            got.extend(batch.iter().map(|r| r.offset));
        }
        (got, c.position(&tp).unwrap())
    };
    assert_eq!(poll_all(IsolationLevel::ReadCommitted), (vec![0, 3, 6], 7));
    assert_eq!(
        poll_all(IsolationLevel::ReadUncommitted),
        (vec![0, 1, 2, 3, 6, 7, 8], 9)
    );
    // Committing the open transaction lets read_committed through.
    marker(b, 3, true);
    let mut c = Consumer::new(Arc::clone(b));
    c.set_isolation_level(IsolationLevel::ReadCommitted);
    c.assign(vec![tp.clone()]).unwrap();
    c.seek(&tp, 7).unwrap();
    let got: Vec<i64> = c.poll(None).unwrap().iter().map(|r| r.offset).collect();
    assert_eq!(got, vec![7, 8]);
    c.seek_to_end(&[]).unwrap();
    assert_eq!(c.position(&tp).unwrap(), 10);
}

#[test]
fn a_read_committed_group_consumer_waits_for_pending_offsets_to_end() {
    let fx = start(FsyncPolicy::Always);
    let b = &fx.broker;
    let producer = thorstream::Producer::new(Arc::clone(b));
    for i in 0..5 {
        producer
            .send("t", Record::new(format!("v{i}").into_bytes()), Some(0))
            .unwrap();
    }
    b.commit_offset("g", "t", 0, 1, None).unwrap();
    let entry = thorstream::internals::broker::OffsetCommitEntry {
        topic: "t".into(),
        partition: 0,
        offset: 3,
        leader_epoch: -1,
        metadata: None,
    };
    b.txn_commit_offsets("g", 5, 0, &[entry]).unwrap();
    let tp = TopicPartition::new("t".to_string(), 0);
    let consumer = |level| {
        let mut c = Consumer::new(Arc::clone(b));
        c.set_group_id("g");
        c.set_isolation_level(level);
        c.assign(vec![tp.clone()]).unwrap();
        c
    };
    // read_uncommitted does not wait: it starts at the committed offset.
    let mut ru = consumer(IsolationLevel::ReadUncommitted);
    assert_eq!(ru.poll(None).unwrap().first().map(|r| r.offset), Some(1));
    // read_committed does not start while the transaction holds offsets for the partition,
    // and does not commit the placeholder position.
    let mut rc = consumer(IsolationLevel::ReadCommitted);
    assert!(rc.poll(None).unwrap().is_empty());
    rc.commit().unwrap();
    assert_eq!(b.committed_offset("g", "t", 0).map(|c| c.offset), Some(1));
    std::thread::scope(|s| {
        let waiting = s.spawn(move || rc.poll(Some(Duration::from_secs(30))).unwrap());
        b.complete_txn_offsets("g", 5, true).unwrap();
        let got: Vec<i64> = waiting.join().unwrap().iter().map(|r| r.offset).collect();
        assert_eq!(got, vec![3, 4]);
    });
}

/// The offset after the last batch a payload holds, the cut last one included (what a
/// response's aborted list may reach), and after its last whole batch (where a client fetches
/// next).
fn payload_bounds(bytes: &[u8]) -> (i64, i64) {
    let (mut at, mut whole) = (0usize, None);
    let mut reach = None;
    while bytes.len() >= at + 61 {
        let base = i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        let len = u32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let delta = i32::from_be_bytes(bytes[at + 23..at + 27].try_into().unwrap());
        let next = base + i64::from(delta) + 1;
        reach = Some(next);
        if bytes.len() < at + 12 + len {
            break;
        }
        whole = Some(next);
        at += 12 + len;
    }
    (reach.unwrap(), whole.unwrap())
}

/// read_committed over a plain socket sends payloads of 64 KiB or more from the segment files
/// (not read, so no batch of theirs is looked at): the aborted list must still name every
/// aborted transaction with data in what was sent, wherever the byte limit cuts the last
/// batch, and nothing past that batch; a client reading with it gets the committed records
/// only, in order.
#[test]
fn read_committed_payloads_sent_from_files_list_exactly_the_aborted_transactions_in_them() {
    let fx = start(FsyncPolicy::Never);
    let b = &fx.broker;
    let big = |tag: &str, i: usize| format!("{tag}-{i}-{}", "v".repeat(30 * 1024));
    // Six rounds: producer 1 writes two batches around one of producer 2's and aborts,
    // producer 2 writes another and commits (batches of ~90 KiB, markers between them).
    let (mut committed, mut aborted) = (Vec::new(), Vec::new());
    for round in 0..6 {
        let s = (round * 6) as i32;
        let (x, y) = (big("x", round), big("y", round));
        let a1 = txn(b, 1, s, &[&x, &x, &x], 10);
        let c1 = txn(b, 2, s, &[&y, &y, &y], 10);
        txn(b, 1, s + 3, &[&x, &x, &x], 10);
        let abort = marker(b, 1, false);
        let c2 = txn(b, 2, s + 3, &[&y, &y, &y], 10);
        marker(b, 2, true);
        aborted.push((a1, abort));
        committed.extend((c1..c1 + 3).chain(c2..c2 + 3));
    }
    let end = b.offsets("t", 0).unwrap().high_watermark;
    for max_bytes in [100 << 10, 150 << 10, 256 << 10, 1 << 20] {
        let (mut offset, mut got) = (0, Vec::new());
        while offset < end {
            let req = fetch_request("t", 0, offset, 1, 0, max_bytes).with_isolation_level(1);
            let resp: FetchResponse = call(&fx, ApiKey::Fetch, 12, &req);
            let p = &resp.responses[0].partitions[0];
            assert_eq!(p.error_code, 0);
            let bytes = p.records.clone().unwrap();
            assert!(bytes.len() >= 64 << 10, "a payload sent from the file");
            let (reach, next) = payload_bounds(&bytes);
            let listed: Vec<i64> = p
                .aborted_transactions
                .as_ref()
                .unwrap()
                .iter()
                .map(|a| {
                    assert_eq!(a.producer_id.0, 1);
                    a.first_offset
                })
                .collect();
            // Every aborted transaction (first batch to its marker) overlapping
            // [offset, reach): those starting in it and the one open at `offset`.
            let wanted: Vec<i64> = aborted
                .iter()
                .filter(|&&(first, abort)| first < reach && abort >= offset)
                .map(|&(first, _)| first)
                .collect();
            assert_eq!(listed, wanted, "max {max_bytes}, from {offset}");
            got.extend(offsets_read(p, offset));
            offset = next;
        }
        assert_eq!(got, committed, "max {max_bytes}");
    }
}
