//! Transactions over the wire (transaction protocol v1) against the real server: the
//! coordinator found with FindCoordinator key type 1, InitProducerId with a transactional id
//! (epoch bumps, fencing a previous instance and aborting its transaction),
//! AddPartitionsToTxn, transactional Produce, EndTxn commit and abort writing markers (seen
//! as control batches by a read_uncommitted Fetch), the transaction timeout, recovery after a
//! restart with a decided (`PrepareCommit`) and an undecided (`Ongoing`) transaction, and
//! DescribeTransactions/ListTransactions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use thorstream::internals::storage::batch::BatchIter;
use thorstream::server::{self, ServerConfig, ServerHandle};
use thorstream::{Broker, BrokerConfig, FsyncPolicy, TopicConfig};

use common::requests::{fetch_request, produce_request, topic_name};
use common::wait_until;

const TXN_ID: &str = "txn-1";
const PRODUCER_FENCED: i16 = 90;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TXN_STATE: i16 = 48;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

/// A broker on `dir` (fsync `always`: replies wait for real durability) with the server in
/// front of it.
struct Node {
    broker: Arc<Broker>,
    server: Option<ServerHandle>,
    addr: SocketAddr,
}

impl Node {
    fn open(dir: &Path) -> Node {
        Node::open_with(dir, |_| {})
    }

    fn open_with(dir: &Path, tune: impl FnOnce(&mut BrokerConfig)) -> Node {
        let mut bc = BrokerConfig::with_data_dir(dir);
        bc.fsync = FsyncPolicy::Always;
        tune(&mut bc);
        let broker = Arc::new(Broker::new(bc).unwrap());
        if broker.partition_count("t").is_err() {
            broker
                .create_topic("t", Some(TopicConfig::with_partitions(2)))
                .unwrap();
        }
        let server = server::start(
            Arc::clone(&broker),
            ServerConfig::new("127.0.0.1:0".parse().unwrap()),
        )
        .unwrap();
        let addr = server.local_addr;
        Node {
            broker,
            server: Some(server),
            addr,
        }
    }

    fn conn(&self) -> Conn {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Conn { s, correlation: 0 }
    }

    /// Stops the server and closes the broker cleanly.
    fn close(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        self.broker.close().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

struct Conn {
    s: TcpStream,
    correlation: i32,
}

impl Conn {
    fn call<T: Encodable + HeaderVersion, R: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &T,
    ) -> R {
        self.send(api, version, body);
        self.recv(api, version)
    }

    fn send<T: Encodable + HeaderVersion>(&mut self, api: ApiKey, version: i16, body: &T) {
        self.correlation += 1;
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(s("txn-test")))
            .encode(&mut buf, T::header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let mut framed = (buf.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&buf);
        self.s.write_all(&framed).unwrap();
    }

    fn recv<R: Decodable>(&mut self, api: ApiKey, version: i16) -> R {
        let mut size = [0u8; 4];
        self.s.read_exact(&mut size).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.s.read_exact(&mut body).unwrap();
        let mut b = Bytes::from(body);
        let header = ResponseHeader::decode(&mut b, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        R::decode(&mut b, version).unwrap()
    }

    fn init(&mut self, id: &str, timeout_ms: i32) -> InitProducerIdResponse {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(id))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        self.call(ApiKey::InitProducerId, 4, &req)
    }

    fn add_partitions(
        &mut self,
        version: i16,
        id: &str,
        pid: i64,
        epoch: i16,
        parts: &[(&str, i32)],
    ) -> Vec<(String, i32, i16)> {
        let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
        for (t, p) in parts {
            match topics.iter_mut().find(|x| &*x.name.0 == *t) {
                Some(x) => x.partitions.push(*p),
                None => topics.push(
                    AddPartitionsToTxnTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(vec![*p]),
                ),
            }
        }
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(id)))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(topics);
        let resp: AddPartitionsToTxnResponse = self.call(ApiKey::AddPartitionsToTxn, version, &req);
        resp.results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| {
                t.results_by_partition.iter().map(|p| {
                    (
                        t.name.0.to_string(),
                        p.partition_index,
                        p.partition_error_code,
                    )
                })
            })
            .collect()
    }

    fn end(&mut self, version: i16, id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit);
        let resp: EndTxnResponse = self.call(ApiKey::EndTxn, version, &req);
        resp.error_code
    }

    /// A transactional batch of `n` records to t-`partition`; returns its error code.
    fn produce(&mut self, partition: i32, pid: i64, epoch: i16, seq: i32, n: i32) -> i16 {
        let req = produce_request("t", partition, Some(txn_batch(pid, epoch, seq, n)), -1)
            .with_transactional_id(Some(TransactionalId(s(TXN_ID))));
        let resp: ProduceResponse = self.call(ApiKey::Produce, 9, &req);
        resp.responses[0].partition_responses[0].error_code
    }

    /// (attributes, producer id, marker type if a control batch) of every batch of
    /// t-`partition`, read uncommitted.
    fn batches(&mut self, partition: i32) -> Vec<(i16, i64, Option<i16>)> {
        let req = fetch_request("t", partition, 0, 0, 0, 1024 * 1024);
        let resp: FetchResponse = self.call(ApiKey::Fetch, 12, &req);
        let records = resp.responses[0].partitions[0]
            .records
            .clone()
            .unwrap_or_default();
        BatchIter::new(&records)
            .map(|(h, bytes)| {
                let kind =
                    (h.attributes & 0x20 != 0).then(|| i16::from_be_bytes([bytes[68], bytes[69]]));
                (h.attributes, h.producer_id, kind)
            })
            .collect()
    }

    fn describe(&mut self, id: &str) -> describe_transactions_response::TransactionState {
        let req = DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(s(id))]);
        let mut resp: DescribeTransactionsResponse =
            self.call(ApiKey::DescribeTransactions, 0, &req);
        resp.transaction_states.remove(0)
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn txn_batch(pid: i64, epoch: i16, seq: i32, n: i32) -> Bytes {
    let records: Vec<KRecord> = (0..n)
        .map(|i| KRecord {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: seq + i,
            timestamp: thorstream::internals::storage::now_ms(),
            key: None,
            value: Some(Bytes::from(format!("v{}", seq + i))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).unwrap();
    buf.freeze()
}

const COMMIT: Option<i16> = Some(1);
const ABORT: Option<i16> = Some(0);

#[test]
fn find_coordinator_for_a_transactional_id_is_this_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let mut c = node.conn();
    let req = FindCoordinatorRequest::default()
        .with_key(s(TXN_ID))
        .with_key_type(1);
    let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 3, &req);
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.port, i32::from(node.addr.port()));
    let req = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![s("a"), s("b")]);
    let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 4, &req);
    assert_eq!(resp.coordinators.len(), 2);
    for k in &resp.coordinators {
        assert_eq!((k.error_code, k.port), (0, i32::from(node.addr.port())));
    }
}

#[test]
fn commit_and_abort_write_markers_and_complete_before_the_reply() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let mut c = node.conn();
    let init = c.init(TXN_ID, 60_000);
    assert_eq!(init.error_code, 0);
    assert_eq!(init.producer_epoch, 0);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    let added = c.add_partitions(3, TXN_ID, pid, epoch, &[("t", 0), ("t", 1)]);
    assert!(added.iter().all(|(_, _, code)| *code == 0), "{added:?}");
    let d = c.describe(TXN_ID);
    assert_eq!(&*d.transaction_state, "Ongoing");
    assert!(d.transaction_start_time_ms > 0);
    assert_eq!(d.topics.len(), 1);
    assert_eq!(d.topics[0].partitions, vec![0, 1]);
    assert_eq!(c.produce(0, pid, epoch, 0, 3), 0);
    // DescribeProducers' view: the open transaction's first offset here, until its marker.
    let open =
        |node: &Node| node.broker.active_producers("t", 0).unwrap()[0].current_txn_start_offset;
    assert_eq!(open(&node), 0);
    assert_eq!(c.end(3, TXN_ID, pid, epoch, true), 0);
    assert_eq!(open(&node), -1);
    // Answered once complete: the next transaction may begin at once.
    assert_eq!(&*c.describe(TXN_ID).transaction_state, "CompleteCommit");
    let t0 = c.batches(0);
    assert_eq!(t0.len(), 2, "{t0:?}");
    assert_eq!(
        (t0[0].0 & 0x30, t0[0].2),
        (0x10, None),
        "transactional data"
    );
    assert_eq!((t0[1].0 & 0x30, t0[1].1, t0[1].2), (0x30, pid, COMMIT));
    let t1 = c.batches(1);
    assert_eq!(
        t1.len(),
        1,
        "a marker even where no data was written: {t1:?}"
    );
    assert_eq!(t1[0].2, COMMIT);
    // A second transaction, aborted.
    let added = c.add_partitions(3, TXN_ID, pid, epoch, &[("t", 0)]);
    assert_eq!(added, vec![("t".to_string(), 0, 0)]);
    assert_eq!(c.produce(0, pid, epoch, 3, 2), 0);
    assert_eq!(c.end(3, TXN_ID, pid, epoch, false), 0);
    assert_eq!(&*c.describe(TXN_ID).transaction_state, "CompleteAbort");
    let t0 = c.batches(0);
    assert_eq!(t0.len(), 4);
    assert_eq!(t0[3].2, ABORT);
    // A retried abort is answered as it was; a commit now contradicts it.
    assert_eq!(c.end(3, TXN_ID, pid, epoch, false), 0);
    assert_eq!(c.end(3, TXN_ID, pid, epoch, true), INVALID_TXN_STATE);
    node.close();
}

#[test]
fn a_new_instance_fences_the_old_one_and_aborts_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let mut old = node.conn();
    let init = old.init(TXN_ID, 60_000);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    old.add_partitions(3, TXN_ID, pid, epoch, &[("t", 0)]);
    assert_eq!(old.produce(0, pid, epoch, 0, 2), 0);
    // The new instance's InitProducerId waits for the abort, then gets the next epoch.
    let mut new = node.conn();
    let again = new.init(TXN_ID, 60_000);
    assert_eq!(again.error_code, 0);
    assert_eq!(again.producer_id.0, pid);
    assert_eq!(
        again.producer_epoch,
        epoch + 2,
        "fence bump, then the new instance's"
    );
    let t0 = new.batches(0);
    assert_eq!(t0.last().map(|b| b.2), Some(ABORT), "{t0:?}");
    // The zombie is fenced everywhere.
    let r = old.add_partitions(3, TXN_ID, pid, epoch, &[("t", 1)]);
    assert_eq!(r[0].2, PRODUCER_FENCED);
    let r = old.add_partitions(1, TXN_ID, pid, epoch, &[("t", 1)]);
    assert_eq!(
        r[0].2, INVALID_PRODUCER_EPOCH,
        "old clients get the old code"
    );
    assert_eq!(old.end(3, TXN_ID, pid, epoch, true), PRODUCER_FENCED);
    assert_eq!(old.end(0, TXN_ID, pid, epoch, true), INVALID_PRODUCER_EPOCH);
    node.close();
}

#[test]
fn bad_requests_get_kafka_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let mut c = node.conn();
    assert_eq!(c.end(3, "nobody", 5, 0, true), INVALID_PRODUCER_ID_MAPPING);
    let init = c.init(TXN_ID, 60_000);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    assert_eq!(c.end(3, TXN_ID, pid, epoch, true), INVALID_TXN_STATE);
    let mut r = c.add_partitions(3, TXN_ID, pid, epoch, &[("t", 0), ("nope", 0), ("t", 9)]);
    r.sort();
    assert_eq!(
        r,
        vec![
            ("nope".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
            ("t".to_string(), 0, OPERATION_NOT_ATTEMPTED),
            ("t".to_string(), 9, UNKNOWN_TOPIC_OR_PARTITION),
        ]
    );
    assert_eq!(&*c.describe(TXN_ID).transaction_state, "Empty");
    let d = c.describe("nobody");
    assert_eq!(d.error_code, TRANSACTIONAL_ID_NOT_FOUND);
    let bad_timeout = c.init("other", 0);
    assert_eq!(bad_timeout.error_code, 50, "INVALID_TRANSACTION_TIMEOUT");
    // Longer than the state log stores (a flexible version can carry it).
    let huge = c.init(&"x".repeat(40_000), 60_000);
    assert_eq!(huge.error_code, 42, "INVALID_REQUEST");
    assert_eq!(
        c.init("fine", 60_000).error_code,
        0,
        "the coordinator still works"
    );
    node.close();
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let mut c = node.conn();
    let init = c.init(TXN_ID, 300);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    c.add_partitions(3, TXN_ID, pid, epoch, &[("t", 0)]);
    assert_eq!(c.produce(0, pid, epoch, 0, 1), 0);
    assert!(wait_until(Duration::from_secs(20), || {
        &*c.describe(TXN_ID).transaction_state == "CompleteAbort"
    }));
    let d = c.describe(TXN_ID);
    assert_eq!(d.producer_epoch, epoch + 1);
    assert_eq!(c.batches(0).last().map(|b| b.2), Some(ABORT));
    assert_eq!(c.end(3, TXN_ID, pid, epoch, true), PRODUCER_FENCED);
    node.close();
}

#[test]
fn list_transactions_filters_by_state_producer_and_duration() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let mut c = node.conn();
    let a = c.init("a", 60_000);
    let b = c.init("b", 60_000);
    c.add_partitions(3, "b", b.producer_id.0, b.producer_epoch, &[("t", 0)]);
    let list = |c: &mut Conn, states: &[&str], pids: &[i64], duration: i64| {
        let req = ListTransactionsRequest::default()
            .with_state_filters(states.iter().map(|x| s(x)).collect())
            .with_producer_id_filters(pids.iter().map(|p| ProducerId(*p)).collect())
            .with_duration_filter(duration);
        let resp: ListTransactionsResponse = c.call(ApiKey::ListTransactions, 1, &req);
        let mut ids: Vec<(String, String)> = resp
            .transaction_states
            .iter()
            .map(|t| {
                (
                    t.transactional_id.0.to_string(),
                    t.transaction_state.to_string(),
                )
            })
            .collect();
        ids.sort();
        (ids, resp.unknown_state_filters)
    };
    let (all, _) = list(&mut c, &[], &[], -1);
    assert_eq!(
        all,
        vec![("a".into(), "Empty".into()), ("b".into(), "Ongoing".into())]
    );
    let (ongoing, unknown) = list(&mut c, &["Ongoing", "Bogus"], &[], -1);
    assert_eq!(ongoing, vec![("b".into(), "Ongoing".into())]);
    assert_eq!(unknown, vec![s("Bogus")]);
    let (by_pid, _) = list(&mut c, &[], &[a.producer_id.0], -1);
    assert_eq!(by_pid, vec![("a".into(), "Empty".into())]);
    let (long, _) = list(&mut c, &["Ongoing"], &[], 3_600_000);
    assert!(long.is_empty(), "b began less than an hour ago");
    node.close();
}

/// One frame of the state log as `metadata::record_log` writes it.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A version-1 state-log record (`broker/txn/record.rs`) of `id` in `state` with one
/// partition, t-0.
fn state_record(id: &str, pid: i64, epoch: i16, state: u8, start_ms: i64) -> Vec<u8> {
    let mut p = vec![1u8];
    p.extend_from_slice(&(id.len() as u16).to_be_bytes());
    p.extend_from_slice(id.as_bytes());
    p.push(1);
    p.extend_from_slice(&pid.to_be_bytes());
    p.extend_from_slice(&epoch.to_be_bytes());
    p.extend_from_slice(&(-1i16).to_be_bytes());
    p.extend_from_slice(&(-1i64).to_be_bytes());
    p.extend_from_slice(&60_000i32.to_be_bytes());
    p.push(state);
    p.extend_from_slice(&start_ms.to_be_bytes());
    p.extend_from_slice(&start_ms.to_be_bytes());
    p.extend_from_slice(&1u32.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(b"t");
    p.extend_from_slice(&0i32.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    frame(&p)
}

#[test]
fn a_restart_completes_a_decided_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let mut c = node.conn();
    let init = c.init(TXN_ID, 60_000);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    c.add_partitions(3, TXN_ID, pid, epoch, &[("t", 0)]);
    assert_eq!(c.produce(0, pid, epoch, 0, 2), 0);
    let start = c.describe(TXN_ID).transaction_start_time_ms;
    drop(c);
    node.close();
    // The state a crash right after EndTxn's PrepareCommit record leaves.
    let path = dir.path().join("__transactions.meta");
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    log.write_all(&state_record(TXN_ID, pid, epoch, 2, start))
        .unwrap();
    drop(log);
    let node = Node::open(dir.path());
    let mut c = node.conn();
    assert!(wait_until(Duration::from_secs(20), || {
        &*c.describe(TXN_ID).transaction_state == "CompleteCommit"
    }));
    let t0 = c.batches(0);
    assert_eq!(t0.len(), 2, "{t0:?}");
    assert_eq!(t0[1].2, COMMIT);
    assert_eq!(
        c.describe(TXN_ID).producer_epoch,
        epoch,
        "a commit fences nobody"
    );
    node.close();
}

#[test]
fn a_restart_aborts_an_undecided_transaction_and_fences_its_producer() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let mut c = node.conn();
    let init = c.init(TXN_ID, 60_000);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    c.add_partitions(3, TXN_ID, pid, epoch, &[("t", 0)]);
    assert_eq!(c.produce(0, pid, epoch, 0, 2), 0);
    drop(c);
    let mut node = node;
    if let Some(s) = node.server.take() {
        s.shutdown();
    }
    let broker = Arc::clone(&node.broker);
    drop(node);
    common::crash(broker);
    let node = Node::open(dir.path());
    let mut c = node.conn();
    assert!(wait_until(Duration::from_secs(20), || {
        &*c.describe(TXN_ID).transaction_state == "CompleteAbort"
    }));
    assert_eq!(c.describe(TXN_ID).producer_epoch, epoch + 1);
    let t0 = c.batches(0);
    assert_eq!(t0.last().map(|b| b.2), Some(ABORT), "{t0:?}");
    assert_eq!(c.end(3, TXN_ID, pid, epoch, true), PRODUCER_FENCED);
    // The new instance carries on.
    let again = c.init(TXN_ID, 60_000);
    assert_eq!(again.producer_epoch, epoch + 2);
    node.close();
}

#[test]
fn the_embedded_transactional_producer_shares_the_coordinator() {
    use thorstream::{Error, Producer, Record, TransactionalConfig};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let mut c = node.conn();
    let p = Producer::transactional(Arc::clone(&node.broker), TransactionalConfig::new("emb"));
    assert!(matches!(
        p.begin_transaction(),
        Err(Error::TransactionState(_))
    ));
    p.init_transactions().unwrap();
    assert!(
        matches!(
            p.send("t", Record::new(b"x".to_vec()), Some(0)),
            Err(Error::TransactionState(_))
        ),
        "no send outside a transaction"
    );
    p.begin_transaction().unwrap();
    let sent = p
        .send_batch(
            "t",
            vec![Record::new(b"a".to_vec()), Record::new(b"b".to_vec())],
            Some(0),
        )
        .unwrap();
    assert_eq!(sent, vec![(0, 0), (0, 1)]);
    assert_eq!(&*c.describe("emb").transaction_state, "Ongoing");
    p.commit_transaction().unwrap();
    assert_eq!(&*c.describe("emb").transaction_state, "CompleteCommit");
    let t0 = c.batches(0);
    assert_eq!(t0.len(), 2, "{t0:?}");
    assert_eq!((t0[0].0 & 0x30, t0[1].2), (0x10, COMMIT));
    // An aborted one.
    p.begin_transaction().unwrap();
    p.send("t", Record::new(b"c".to_vec()), Some(0)).unwrap();
    p.abort_transaction().unwrap();
    assert_eq!(c.batches(0).last().map(|b| b.2), Some(ABORT));
    // A second instance fences the first, whose open transaction is aborted.
    p.begin_transaction().unwrap();
    p.send("t", Record::new(b"d".to_vec()), Some(1)).unwrap();
    let q = Producer::transactional(Arc::clone(&node.broker), TransactionalConfig::new("emb"));
    q.init_transactions().unwrap();
    assert_eq!(c.batches(1).last().map(|b| b.2), Some(ABORT));
    assert!(matches!(
        p.commit_transaction(),
        Err(Error::Transaction(e)) if e.code() == PRODUCER_FENCED
    ));
    assert!(
        matches!(p.begin_transaction(), Err(Error::Transaction(_))),
        "fenced for good"
    );
    q.begin_transaction().unwrap();
    q.send("t", Record::new(b"e".to_vec()), Some(1)).unwrap();
    q.commit_transaction().unwrap();
    assert_eq!(c.batches(1).last().map(|b| b.2), Some(COMMIT));
    node.close();
}

/// Needs the partition log's producer epochs and open transactions (`append_marker` raising
/// the epoch, `ongoing_transactions`), which land with the storage half of issue 14: passes
/// on this branch merged with txn-storage.
#[test]
fn a_fenced_epoch_is_refused_and_a_restart_sweeps_orphaned_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let mut old = node.conn();
    let init = old.init(TXN_ID, 60_000);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    old.add_partitions(3, TXN_ID, pid, epoch, &[("t", 0)]);
    assert_eq!(old.produce(0, pid, epoch, 0, 2), 0);
    let mut new = node.conn();
    assert_eq!(new.init(TXN_ID, 60_000).error_code, 0);
    assert_ne!(old.produce(0, pid, epoch, 2, 1), 0, "stale epoch refused");
    // An orphan: transactional data of a producer the coordinator never heard of.
    let idem: InitProducerIdResponse = new.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    let orphan = idem.producer_id.0;
    assert_eq!(new.produce(1, orphan, 0, 0, 2), 0);
    drop((old, new));
    let mut node = node;
    if let Some(s) = node.server.take() {
        s.shutdown();
    }
    let broker = Arc::clone(&node.broker);
    drop(node);
    common::crash(broker);
    let node = Node::open(dir.path());
    let mut c = node.conn();
    // The sweep's abort marker is readable once the flusher has made it durable.
    let mut t1 = Vec::new();
    let swept = wait_until(Duration::from_secs(10), || {
        t1 = c.batches(1);
        t1.last().map(|b| (b.1, b.2)) == Some((orphan, ABORT))
    });
    assert!(swept, "no abort marker for the orphan: {t1:?}");
    node.close();
}

/// A group's offsets in the transaction are completed by the txn thread (blocking on the
/// offsets file's fsync), and EndTxn still answers once the transaction is complete.
#[test]
fn a_transaction_with_a_group_completes_before_end_txn_answers() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let mut c = node.conn();
    let init = c.init(TXN_ID, 60_000);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    for commit in [true, false] {
        c.add_partitions(3, TXN_ID, pid, epoch, &[("t", 0)]);
        let req = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s(TXN_ID)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(s("g")));
        let resp: AddOffsetsToTxnResponse = c.call(ApiKey::AddOffsetsToTxn, 3, &req);
        assert_eq!(resp.error_code, 0);
        let d = c.describe(TXN_ID);
        assert_eq!(&*d.transaction_state, "Ongoing");
        assert_eq!(c.end(3, TXN_ID, pid, epoch, commit), 0);
        let want = if commit {
            "CompleteCommit"
        } else {
            "CompleteAbort"
        };
        assert_eq!(&*c.describe(TXN_ID).transaction_state, want);
    }
    let stale = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s(TXN_ID)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch - 1)
        .with_group_id(GroupId(s("g")));
    let resp: AddOffsetsToTxnResponse = c.call(ApiKey::AddOffsetsToTxn, 3, &stale);
    assert_eq!(resp.error_code, PRODUCER_FENCED);
    node.close();
}

/// A topic deleted while in a transaction: its partitions get no marker, the others do, and
/// the transaction completes.
#[test]
fn a_deleted_topic_does_not_hold_up_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    node.broker
        .create_topic("gone", Some(TopicConfig::with_partitions(1)))
        .unwrap();
    let mut c = node.conn();
    let init = c.init(TXN_ID, 60_000);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    let added = c.add_partitions(3, TXN_ID, pid, epoch, &[("t", 0), ("gone", 0)]);
    assert!(added.iter().all(|r| r.2 == 0), "{added:?}");
    assert_eq!(c.produce(0, pid, epoch, 0, 1), 0);
    node.broker.delete_topic("gone").unwrap();
    assert_eq!(c.end(3, TXN_ID, pid, epoch, true), 0);
    assert_eq!(&*c.describe(TXN_ID).transaction_state, "CompleteCommit");
    assert_eq!(c.batches(0).last().map(|b| b.2), Some(COMMIT));
    node.close();
}

#[test]
fn idle_transactional_ids_expire_and_timeouts_are_bounded_by_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open_with(dir.path(), |bc| {
        bc.transactional_id_expiration_ms = 300;
        bc.transaction_max_timeout_ms = 10_000;
    });
    let mut c = node.conn();
    assert_eq!(
        c.init(TXN_ID, 10_001).error_code,
        50,
        "over the broker's max"
    );
    let init = c.init(TXN_ID, 10_000);
    assert_eq!(init.error_code, 0);
    assert!(wait_until(Duration::from_secs(20), || {
        c.describe(TXN_ID).error_code == TRANSACTIONAL_ID_NOT_FOUND
    }));
    // Forgotten: the next instance starts over with a new producer id.
    let again = c.init(TXN_ID, 10_000);
    assert_eq!(again.error_code, 0);
    assert_ne!(again.producer_id.0, init.producer_id.0);
    assert_eq!(again.producer_epoch, 0);
    node.close();
}

/// The next transaction's AddPartitionsToTxn racing the previous EndTxn (another connection)
/// never gets CONCURRENT_TRANSACTIONS: it waits for the completion, or lands before the end
/// and joins the transaction being committed. Either way it is answered OK.
#[test]
fn add_partitions_racing_end_txn_is_never_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let mut a = node.conn();
    let mut b = node.conn();
    let init = a.init(TXN_ID, 60_000);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    for round in 0..20 {
        a.add_partitions(3, TXN_ID, pid, epoch, &[("t", 0)]);
        assert_eq!(a.produce(0, pid, epoch, round * 2, 2), 0);
        let end = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(TXN_ID)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(true);
        a.send(ApiKey::EndTxn, 3, &end);
        let added = b.add_partitions(3, TXN_ID, pid, epoch, &[("t", 1)]);
        assert_eq!(added, vec![("t".to_string(), 1, 0)], "round {round}");
        let resp: EndTxnResponse = a.recv(ApiKey::EndTxn, 3);
        assert_eq!(resp.error_code, 0);
        // Whichever came first, a transaction may be open: end it.
        if &*a.describe(TXN_ID).transaction_state == "Ongoing" {
            assert_eq!(a.end(3, TXN_ID, pid, epoch, false), 0);
        }
    }
    node.close();
}
#[test]
fn the_embedded_producer_commits_offsets_only_with_the_transaction() {
    use thorstream::{Producer, Record, TopicPartition, TransactionalConfig};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let p = Producer::transactional(Arc::clone(&node.broker), TransactionalConfig::new("emb"));
    p.init_transactions().unwrap();
    for (commit, offset) in [(true, 5), (false, 9)] {
        p.begin_transaction().unwrap();
        p.send("t", Record::new(b"a".to_vec()), Some(0)).unwrap();
        p.send_offsets_to_transaction("g", &[(TopicPartition::new("t", 0), offset)])
            .unwrap();
        if commit {
            p.commit_transaction().unwrap();
        } else {
            p.abort_transaction().unwrap();
        }
        let got = node.broker.committed_offset("g", "t", 0).map(|c| c.offset);
        assert_eq!(got, Some(5), "commit {commit}");
    }
    node.close();
}
