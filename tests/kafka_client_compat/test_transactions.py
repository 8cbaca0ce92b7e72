"""Transactions (KIP-98 / KIP-447) with real clients: confluent-kafka (librdkafka) and kafkajs.

Kafka's behaviour is the spec:
  - a committed transaction is visible to read_committed and read_uncommitted consumers; an
    aborted one only to read_uncommitted; control records (markers) are never returned;
  - an open transaction holds back the last stable offset (LSO): a read_committed consumer sees
    nothing of it and nothing after it (non-transactional records included) until it ends, and
    ListOffsets read_committed answers the LSO; read_uncommitted sees it all;
  - consume-transform-produce: offsets sent with `send_offsets_to_transaction` become the
    group's committed offsets at commit (OffsetFetch require_stable answers
    UNSTABLE_OFFSET_COMMIT while pending), and are dropped on abort;
  - zombie fencing: a second producer with the same transactional.id bumps the epoch, aborts the
    first's open transaction, and the first's commit fails fatally (fenced);
  - transaction.timeout.ms: the broker aborts a transaction left open longer, and fences its
    producer.

Absence is checked as a state, never by waiting: a read_committed librdkafka consumer with
`enable.partition.eof` reports EOF when its position reaches the LSO, so "EOF at offset X and no
record before it" proves what is (not) visible. kafkajs runs through node/kafkajs_txn.js (a
transactional producer session driven over stdin, and a one-shot group reader).
"""
import json
import queue
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

from conftest import wait_until

OP_TIMEOUT_S = 30.0
NODE_DIR = Path(__file__).resolve().parent / "node"
KJS_TXN = NODE_DIR / "kafkajs_txn.js"

FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


# =============================================================================
# helpers
# =============================================================================

def create_topic(clients, topic, partitions=1):
    admin = clients.ck_admin()
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(OP_TIMEOUT_S)
    wait_until(lambda: topic in admin.list_topics(timeout=5).topics, what=f"topic {topic} listed")


def txn_producer(clients, txn_id, **conf):
    c = {"transactional.id": txn_id, "client.id": "compat-ck-txn"}
    c.update(conf)
    p = clients.ck_producer(c)
    p.init_transactions(OP_TIMEOUT_S)
    return p


def produce_sync(producer, topic, values, partition=0):
    """Produces `values` and waits for every delivery report; returns their offsets."""
    reports = []
    for v in values:
        producer.produce(topic, value=v, partition=partition,
                         on_delivery=lambda err, msg: reports.append((err, msg.offset())))
    assert producer.flush(OP_TIMEOUT_S) == 0, "records still unacknowledged"
    errors = [e for e, _ in reports if e is not None]
    assert not errors, errors
    return [o for _, o in reports]


def consumer(clients, isolation, **conf):
    c = {"isolation.level": isolation, "enable.partition.eof": True}
    c.update(conf)
    return clients.ck_consumer(c)


def read_to_eof(c, topic, start=None, partition=0, timeout=OP_TIMEOUT_S):
    """Polls until the partition EOF event (read_committed: position == LSO; read_uncommitted:
    == high watermark); returns (values read, EOF offset). Any error other than EOF fails."""
    if start is not None:
        c.assign([TopicPartition(topic, partition, start)])
    values = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                return values, m.offset()
            pytest.fail(f"consumer error: {m.error()}")
        values.append(m.value())
    pytest.fail(f"no partition EOF within {timeout:.0f}s (read so far: {values!r})")


def end_offset(c, topic, partition=0):
    """ListOffsets latest through a consumer: the LSO for read_committed (librdkafka >= 1.8
    honours isolation.level), the high watermark for read_uncommitted."""
    return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)[1]


def wait_end(c, topic, offset, partition=0):
    """Waits until the consumer's end offset (read_committed: the LSO) is `offset`. Kafka answers
    EndTxn once its decision is logged and writes the markers after, so the LSO (and the
    group's offsets) move a moment after commit_transaction()/abort_transaction() return."""
    wait_until(lambda: end_offset(c, topic, partition) == offset, timeout=OP_TIMEOUT_S,
               what=f"end offset of {topic}-{partition} == {offset}")


def wait_committed(c, topic, offset, partition=0):
    wait_until(lambda: committed_offset(c, topic, partition) == offset, timeout=OP_TIMEOUT_S,
               what=f"committed offset of {topic}-{partition} == {offset}")


def vals(prefix, n):
    return [f"{prefix}-{i}".encode() for i in range(n)]


# =============================================================================
# confluent-kafka
# =============================================================================

def test_committed_transaction_is_visible_to_both_isolation_levels(clients, topic_name):
    create_topic(clients, topic_name)
    p = txn_producer(clients, f"txn-{uuid.uuid4().hex[:8]}")
    p.begin_transaction()
    offsets = produce_sync(p, topic_name, vals("c", 5))
    assert offsets == [0, 1, 2, 3, 4]
    p.commit_transaction(OP_TIMEOUT_S)

    # 5 records + 1 commit marker: the high watermark is 6, and so is the LSO.
    rc = consumer(clients, "read_committed")
    wait_end(rc, topic_name, 6)
    got, eof = read_to_eof(rc, topic_name, start=0)
    assert got == vals("c", 5)
    assert eof == 6, "read_committed reaches the end past the commit marker"

    ru = consumer(clients, "read_uncommitted")
    got, eof = read_to_eof(ru, topic_name, start=0)
    assert got == vals("c", 5), "the marker is never returned as a record"
    assert eof == 6


def test_aborted_transaction_is_invisible_to_read_committed_visible_to_read_uncommitted(
        clients, topic_name):
    create_topic(clients, topic_name)
    p = txn_producer(clients, f"txn-{uuid.uuid4().hex[:8]}")
    p.begin_transaction()
    produce_sync(p, topic_name, vals("a", 4))       # offsets 0-3, abort marker at 4
    p.abort_transaction(OP_TIMEOUT_S)
    p.begin_transaction()
    produce_sync(p, topic_name, vals("c", 3))       # offsets 5-7, commit marker at 8
    p.commit_transaction(OP_TIMEOUT_S)
    p.begin_transaction()
    produce_sync(p, topic_name, vals("a2", 2))      # offsets 9-10, abort marker at 11
    p.abort_transaction(OP_TIMEOUT_S)

    rc = consumer(clients, "read_committed")
    wait_end(rc, topic_name, 12)
    got, eof = read_to_eof(rc, topic_name, start=0)
    assert got == vals("c", 3), "only the committed transaction's records"
    assert eof == 12

    ru = consumer(clients, "read_uncommitted")
    got, eof = read_to_eof(ru, topic_name, start=0)
    assert got == vals("a", 4) + vals("c", 3) + vals("a2", 2)
    assert eof == 12

    # A read_committed consumer starting inside the aborted range skips it too.
    rc2 = consumer(clients, "read_committed")
    got, _ = read_to_eof(rc2, topic_name, start=2)
    assert got == vals("c", 3)


def test_read_committed_default_consumer_skips_large_aborted_transactions(clients, topic_name):
    """Payloads of 64 KiB and more go out from the segment files (sendfile) at read_committed
    too, their aborted list bounded by an index lookup: librdkafka's default consumer
    (read_committed) with its default fetch sizes, and one whose max.partition.fetch.bytes
    cuts batches in the middle, must skip the aborted transactions' records wherever a
    response ends."""
    create_topic(clients, topic_name)
    p = txn_producer(clients, f"txn-{uuid.uuid4().hex[:8]}")
    blob = "v" * 20_000
    want = []
    for rnd in range(6):
        p.begin_transaction()
        produce_sync(p, topic_name, [f"a{rnd}-{i}-{blob}".encode() for i in range(8)])
        p.abort_transaction(OP_TIMEOUT_S)
        p.begin_transaction()
        committed = [f"c{rnd}-{i}-{blob}".encode() for i in range(8)]
        produce_sync(p, topic_name, committed)
        p.commit_transaction(OP_TIMEOUT_S)
        want += committed
    end = 6 * 2 * (8 + 1)                           # 96 records and 12 markers
    for conf in ({}, {"max.partition.fetch.bytes": 250_000}):
        c = clients.ck_consumer({"enable.partition.eof": True, **conf})
        wait_end(c, topic_name, end)
        got, eof = read_to_eof(c, topic_name, start=0)
        assert eof == end, conf
        assert got == want, f"{conf}: committed records only, in order"


def test_open_transaction_holds_back_the_last_stable_offset(clients, topic_name):
    create_topic(clients, topic_name)
    plain = clients.ck_producer({"enable.idempotence": True})
    produce_sync(plain, topic_name, vals("before", 2))          # offsets 0-1
    p = txn_producer(clients, f"txn-{uuid.uuid4().hex[:8]}")
    p.begin_transaction()
    assert produce_sync(p, topic_name, vals("t", 3)) == [2, 3, 4]
    assert produce_sync(plain, topic_name, vals("after", 2)) == [5, 6]

    ru = consumer(clients, "read_uncommitted")
    got, eof = read_to_eof(ru, topic_name, start=0)
    assert got == vals("before", 2) + vals("t", 3) + vals("after", 2)
    assert eof == 7
    assert end_offset(ru, topic_name) == 7

    rc = consumer(clients, "read_committed")
    got, eof = read_to_eof(rc, topic_name, start=0)
    assert got == vals("before", 2), "nothing of the open transaction, nothing after it"
    assert eof == 2, "read_committed stops at the LSO = the open transaction's first offset"
    assert end_offset(rc, topic_name) == 2, "ListOffsets read_committed answers the LSO"

    p.commit_transaction(OP_TIMEOUT_S)                          # commit marker at 7
    wait_end(rc, topic_name, 8)
    got, eof = read_to_eof(rc, topic_name)
    assert got == vals("t", 3) + vals("after", 2)
    assert eof == 8


def committed_offset(c, topic, partition=0, timeout=10):
    tp = c.committed([TopicPartition(topic, partition)], timeout=timeout)[0]
    assert tp.error is None, tp.error
    return tp.offset


def test_consume_transform_produce_commits_offsets_only_with_the_transaction(
        clients, make_topic_name, group_id):
    src, dst = make_topic_name("in"), make_topic_name("out")
    create_topic(clients, src)
    create_topic(clients, dst)
    plain = clients.ck_producer()
    produce_sync(plain, src, vals("in", 10))

    app = consumer(clients, "read_committed", **{"group.id": group_id,
                                                 "enable.partition.eof": False})
    app.subscribe([src])
    p = txn_producer(clients, f"ctp-{uuid.uuid4().hex[:8]}")
    checker = consumer(clients, "read_uncommitted", **{"group.id": group_id})
    stable_checker = consumer(clients, "read_committed", **{"group.id": group_id})
    out_reader = consumer(clients, "read_committed")

    def process(n):
        """Consumes n records, produces their upper-cased copies and the consumer's positions
        in one transaction (left open)."""
        got = []
        deadline = time.monotonic() + OP_TIMEOUT_S
        while len(got) < n and time.monotonic() < deadline:
            m = app.poll(0.2)
            if m is not None and not m.error():
                got.append(m.value())
        assert len(got) == n, f"the app consumed {len(got)} of {n}"
        p.begin_transaction()
        produce_sync(p, dst, [v.upper() for v in got])
        p.send_offsets_to_transaction(app.position(app.assignment()),
                                      app.consumer_group_metadata(), OP_TIMEOUT_S)
        return got

    # Round 1: committed.
    got = process(6)
    assert got == vals("in", 6)
    # Pending: the group's offset is not visible yet (require_stable: not answered at all).
    assert committed_offset(checker, src) == OFFSET_INVALID
    with pytest.raises(KafkaException) as pending:
        tp = stable_checker.committed([TopicPartition(src, 0)], timeout=3)[0]
        if tp.error is not None:
            raise KafkaException(tp.error)
    assert pending.value.args[0].code() in (KafkaError.UNSTABLE_OFFSET_COMMIT,
                                            KafkaError._TIMED_OUT), pending.value
    out, eof = read_to_eof(out_reader, dst, start=0)
    assert out == [] and eof == 0
    p.commit_transaction(OP_TIMEOUT_S)
    wait_committed(checker, src, 6)
    assert committed_offset(stable_checker, src) == 6
    wait_end(out_reader, dst, 7)
    out, eof = read_to_eof(out_reader, dst)
    assert out == [v.upper() for v in vals("in", 6)]
    assert eof == 7

    # Round 2: aborted; the group's offset stays, the app rewinds and redoes it.
    got = process(4)
    assert got == vals("in", 10)[6:]
    p.abort_transaction(OP_TIMEOUT_S)
    wait_end(out_reader, dst, 12)          # 4 aborted records + the abort marker
    assert committed_offset(stable_checker, src) == 6, "resolved: stable again, unchanged"
    assert committed_offset(checker, src) == 6
    out, eof = read_to_eof(out_reader, dst)
    assert out == [] and eof == 12, "none of the aborted records visible"
    app.seek(TopicPartition(src, 0, 6))
    got = process(4)
    assert got == vals("in", 10)[6:]
    p.commit_transaction(OP_TIMEOUT_S)
    wait_committed(checker, src, 10)
    assert committed_offset(stable_checker, src) == 10

    # Exactly once: every input's copy once, in order, nothing of the aborted attempt.
    fresh = consumer(clients, "read_committed")
    wait_end(fresh, dst, 17)
    out, eof = read_to_eof(fresh, dst, start=0)
    assert out == [v.upper() for v in vals("in", 10)]
    assert eof == 17


def test_second_producer_with_same_transactional_id_fences_the_first(clients, topic_name):
    create_topic(clients, topic_name)
    txn_id = f"zombie-{uuid.uuid4().hex[:8]}"
    first = txn_producer(clients, txn_id)
    first.begin_transaction()
    produce_sync(first, topic_name, vals("zombie", 3))           # offsets 0-2

    second = txn_producer(clients, txn_id)   # bumps the epoch; aborts the first's transaction
    with pytest.raises(KafkaException) as fenced:
        first.commit_transaction(OP_TIMEOUT_S)
    err = fenced.value.args[0]
    assert err.fatal(), f"fencing is fatal for the zombie: {err}"
    assert err.code() in FENCED_CODES, err

    second.begin_transaction()
    produce_sync(second, topic_name, vals("new", 2))
    second.commit_transaction(OP_TIMEOUT_S)

    rc = consumer(clients, "read_committed")
    wait_end(rc, topic_name, 7)
    got, eof = read_to_eof(rc, topic_name, start=0)
    assert got == vals("new", 2), "nothing of the fenced producer's transaction"
    ru = consumer(clients, "read_uncommitted")
    got, eof2 = read_to_eof(ru, topic_name, start=0)
    assert got == vals("zombie", 3) + vals("new", 2)
    assert eof == eof2 == 7, "3 + abort marker + 2 + commit marker"


def test_transaction_left_open_past_its_timeout_is_aborted_by_the_broker(clients, topic_name):
    create_topic(clients, topic_name)
    txn_id = f"timeout-{uuid.uuid4().hex[:8]}"
    # (librdkafka wants socket.timeout.ms <= transaction.timeout.ms + 100)
    p = txn_producer(clients, txn_id, **{"transaction.timeout.ms": 3000,
                                         "message.timeout.ms": 3000, "socket.timeout.ms": 3000})
    p.begin_transaction()
    produce_sync(p, topic_name, vals("late", 3))                 # offsets 0-2
    ru = consumer(clients, "read_uncommitted")
    rc = consumer(clients, "read_committed")
    assert end_offset(rc, topic_name) == 0

    # The producer idles; the broker must write the abort marker (high watermark 4) and move
    # the LSO past it. Kafka checks every 10 s (transaction.abort.timed.out.transaction.
    # cleanup.interval.ms), so allow timeout + interval + slack.
    wait_until(lambda: end_offset(ru, topic_name) == 4, timeout=45,
               what="the broker to abort the timed-out transaction (abort marker at 3)")
    wait_until(lambda: end_offset(rc, topic_name) == 4, timeout=10, what="the LSO to pass it")
    got, eof = read_to_eof(rc, topic_name, start=0)
    assert got == [] and eof == 4

    # The producer learns on its next transactional call: fenced (fatal) or abortable.
    with pytest.raises(KafkaException) as failed:
        p.commit_transaction(OP_TIMEOUT_S)
    err = failed.value.args[0]
    assert err.fatal() or err.txn_requires_abort(), err
    if err.fatal():
        assert err.code() in FENCED_CODES | {KafkaError.INVALID_TXN_STATE}, err

    # The id is usable again by a new instance.
    q = txn_producer(clients, txn_id)
    q.begin_transaction()
    produce_sync(q, topic_name, vals("ok", 1))
    q.commit_transaction(OP_TIMEOUT_S)
    wait_end(rc, topic_name, 6)            # 4 + the record + its commit marker
    got, _ = read_to_eof(rc, topic_name)
    assert got == vals("ok", 1)


# =============================================================================
# kafkajs
# =============================================================================

@pytest.fixture(scope="session")
def node_bin():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH (kafkajs tests need Node.js)")
    if not (NODE_DIR / "node_modules" / "kafkajs" / "package.json").is_file():
        pytest.skip(f"kafkajs is not installed in {NODE_DIR} (run setup_node.sh; it needs npm)")
    return node


class KjsTxnProducer:
    """`node kafkajs_txn.js producer`: one transactional kafkajs producer; each command line on
    stdin is answered by one JSON line on stdout."""

    def __init__(self, node, bootstrap, txn_id, stderr_path):
        self.stderr_path = stderr_path
        opts = {"brokers": [bootstrap], "transactionalId": txn_id}
        with open(stderr_path, "w") as err:
            self.proc = subprocess.Popen([node, str(KJS_TXN), "producer", json.dumps(opts)],
                                         cwd=NODE_DIR, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.expect("ready")

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def expect(self, what):
        try:
            line = self.lines.get(timeout=OP_TIMEOUT_S)
        except queue.Empty:
            pytest.fail(f"kafkajs producer: no answer to {what} within {OP_TIMEOUT_S:.0f}s\n"
                        f"{self.stderr()}")
        if line is None:
            pytest.fail(f"kafkajs producer exited (code {self.proc.poll()}) before answering "
                        f"{what}\n{self.stderr()}")
        res = json.loads(line)
        if not res.get("ok"):
            pytest.fail(f"kafkajs {what} failed: {res}\n{self.stderr()}")
        return res

    def stderr(self):
        return "--- kafkajs stderr ---\n" + "\n".join(
            Path(self.stderr_path).read_text(errors="replace").splitlines()[-30:])

    def cmd(self, cmd, **args):
        self.proc.stdin.write(json.dumps(dict(cmd=cmd, **args)) + "\n")
        self.proc.stdin.flush()
        return self.expect(cmd)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)


class KafkaJsTxn:
    def __init__(self, node, bootstrap, tmp_path):
        self.node, self.bootstrap, self.tmp_path = node, bootstrap, tmp_path
        self.producers = []

    def producer(self, txn_id):
        p = KjsTxnProducer(self.node, self.bootstrap, txn_id,
                           self.tmp_path / f"kjs-producer-{len(self.producers)}.stderr")
        self.producers.append(p)
        return p

    def run(self, command, **opts):
        opts.setdefault("brokers", [self.bootstrap])
        try:
            proc = subprocess.run([self.node, str(KJS_TXN), command, "-"], cwd=NODE_DIR,
                                  input=json.dumps(opts), capture_output=True, text=True,
                                  timeout=OP_TIMEOUT_S + 15)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"kafkajs {command} did not finish\n{e.stderr}")
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        res = json.loads(lines[-1]) if lines else None
        if proc.returncode != 0 or not res or not res.get("ok"):
            tail = "\n".join(proc.stderr.splitlines()[-30:])
            pytest.fail(f"kafkajs {command} failed (exit {proc.returncode}): {res}\n{tail}")
        return res

    def read(self, topic, count, read_uncommitted=False, group=None):
        """A kafkajs group member (subscribe, from the beginning) reads `count` records; the
        values in order."""
        res = self.run("read", topic=topic, count=count, readUncommitted=read_uncommitted,
                       groupId=group or f"kjs-read-{uuid.uuid4().hex[:8]}",
                       timeoutMs=int(OP_TIMEOUT_S * 1000))
        return [r["value"].encode() for r in res["records"]]

    def close_all(self):
        for p in self.producers:
            p.close()


@pytest.fixture
def kjs(node_bin, broker, tmp_path):
    k = KafkaJsTxn(node_bin, broker.bootstrap, tmp_path)
    try:
        yield k
    finally:
        k.close_all()


def test_kafkajs_transaction_commit_and_abort(kjs, clients, topic_name):
    create_topic(clients, topic_name)
    p = kjs.producer(f"kjs-{uuid.uuid4().hex[:8]}")
    p.cmd("begin")
    p.cmd("send", topic=topic_name, values=[v.decode() for v in vals("a", 3)])
    p.cmd("abort")
    p.cmd("begin")
    p.cmd("send", topic=topic_name, values=[v.decode() for v in vals("c", 2)])
    p.cmd("commit")

    # kafkajs' default is readUncommitted=false: only the committed transaction; the aborted
    # records come first in the log, so getting exactly these 2 proves they were skipped.
    assert kjs.read(topic_name, 2) == vals("c", 2)
    assert kjs.read(topic_name, 5, read_uncommitted=True) == vals("a", 3) + vals("c", 2)
    # librdkafka agrees on what is in the log.
    rc = consumer(clients, "read_committed")
    wait_end(rc, topic_name, 7)
    got, eof = read_to_eof(rc, topic_name, start=0)
    assert got == vals("c", 2) and eof == 7


def test_kafkajs_read_committed_consumer_reads_only_committed_librdkafka_transactions(
        kjs, clients, topic_name):
    create_topic(clients, topic_name)
    ck = txn_producer(clients, f"ck-{uuid.uuid4().hex[:8]}")
    ck.begin_transaction()
    produce_sync(ck, topic_name, vals("open", 2))                  # offsets 0-1, LSO 0
    rc = consumer(clients, "read_committed")
    assert end_offset(rc, topic_name) == 0
    ck.commit_transaction(OP_TIMEOUT_S)
    ck.begin_transaction()
    produce_sync(ck, topic_name, vals("aborted", 2))
    ck.abort_transaction(OP_TIMEOUT_S)
    ck.begin_transaction()
    produce_sync(ck, topic_name, vals("last", 1))
    ck.commit_transaction(OP_TIMEOUT_S)
    # A librdkafka transaction read by kafkajs: committed ones only, markers skipped.
    assert kjs.read(topic_name, 3) == vals("open", 2) + vals("last", 1)


def test_kafkajs_send_offsets_commit_then_abort(kjs, clients, make_topic_name, group_id):
    src, dst = make_topic_name("in"), make_topic_name("out")
    create_topic(clients, src)
    create_topic(clients, dst)
    produce_sync(clients.ck_producer(), src, vals("in", 5))
    checker = consumer(clients, "read_uncommitted", **{"group.id": group_id})

    p = kjs.producer(f"kjs-ctp-{uuid.uuid4().hex[:8]}")
    p.cmd("begin")
    p.cmd("send", topic=dst, values=[v.decode().upper() for v in vals("in", 3)])
    p.cmd("sendOffsets", groupId=group_id, topic=src, partition=0, offset=3)
    assert committed_offset(checker, src) == OFFSET_INVALID, "pending until the commit"
    p.cmd("commit")
    wait_committed(checker, src, 3)
    assert kjs.run("group-offsets", groupId=group_id, topic=src)["offsets"] == {"0": 3}

    p.cmd("begin")
    p.cmd("send", topic=dst, values=[v.decode().upper() for v in vals("in", 5)[3:]])
    p.cmd("sendOffsets", groupId=group_id, topic=src, partition=0, offset=5)
    p.cmd("abort")
    rc = consumer(clients, "read_committed")
    wait_end(rc, dst, 7)                   # 3 + commit marker + 2 aborted + abort marker
    stable = consumer(clients, "read_committed", **{"group.id": group_id})
    assert committed_offset(stable, src) == 3, "an aborted transaction's offsets are dropped"

    p.cmd("begin")
    p.cmd("send", topic=dst, values=[v.decode().upper() for v in vals("in", 5)[3:]])
    p.cmd("sendOffsets", groupId=group_id, topic=src, partition=0, offset=5)
    p.cmd("commit")
    wait_committed(checker, src, 5)
    wait_end(rc, dst, 10)
    got, _ = read_to_eof(rc, dst, start=0)
    assert got == [v.upper() for v in vals("in", 5)], "each output once, none of the aborted"
