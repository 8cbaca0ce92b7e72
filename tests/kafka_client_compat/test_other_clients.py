"""Client compatibility beyond kafka-python and confluent-kafka: kafkajs (Node.js) and aiokafka
(Python asyncio).

kafkajs runs in subprocesses through node/kafkajs_driver.js, which prints JSON lines on stdout
(one-shot commands: create-topic, produce, offsets, group-offsets; a long-lived `member` of a
consumer group that reads commit/stop commands on stdin). setup_node.sh installs the pinned
kafkajs with `npm ci`; without node or npm the kafkajs tests skip.

For each client: records with keys, headers, timestamps, null/empty keys and values come back
byte-exact (and read the same through kafka-python), keyed records land on the Java murmur2
partition; a group member commits and a new member resumes from the commit; two members split
4 partitions disjointly and consume every record exactly once; a member that leaves hands its
partitions to the other within the session timeout (kafkajs also: a killed member); idempotent
producers write every record once with one producer id and gapless sequence numbers, kafkajs
also through a proxy that cuts its connections mid-stream.
"""
import asyncio
import base64
import json
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kafka import TopicPartition as KpTP
from kafka.admin import NewTopic as KpNewTopic
from kafka.partitioner.default import murmur2 as kp_murmur2
from kafka.protocol.fetch import FetchRequest
from kafka.protocol.metadata import MetadataRequest
from kafka.record.memory_records import MemoryRecords

from conftest import HOST, wait_until
from test_idempotence import CuttingProxy, ProxiedBroker, free_port

NODE_DIR = Path(__file__).resolve().parent / "node"
KJS_DRIVER = NODE_DIR / "kafkajs_driver.js"

NODE_ID = 1
OP_TIMEOUT_S = 30.0         # bound for one client operation or one "wait until" loop
QUIET_S = 0.5               # extra polling after the expected records, to catch duplicates
GROUP_SESSION_MS = 6000     # the broker's minimum session timeout
CODECS = ["none", "gzip"]   # kafkajs ships only gzip (snappy/lz4/zstd need plugins)


# =============================================================================
# shared helpers
# =============================================================================

def java_partition(key: bytes, num_partitions: int) -> int:
    """The Java client's partition for a non-null key (murmur2, as kafka-python computes it)."""
    return (kp_murmur2(key) & 0x7FFFFFFF) % num_partitions


def kp_partition_count(admin, topic):
    req = MetadataRequest[1](topics=[topic])
    for t in admin.send_request(req).to_object()["topics"]:
        if t["topic"] == topic and t["error_code"] == 0:
            return len(t["partitions"])
    return None


def kp_create_topic(admin, topic, partitions):
    admin.create_topics([KpNewTopic(topic, num_partitions=partitions, replication_factor=1)],
                        timeout_ms=10000)
    wait_until(lambda: kp_partition_count(admin, topic) == partitions, timeout=OP_TIMEOUT_S,
               what=f"topic {topic} with {partitions} partitions")


def kp_produce(clients, topic, partitions, per_partition, tag):
    """Keyless records `tag-p-i` to each partition; returns nothing (flushes with acks=all)."""
    prod = clients.kp_producer(acks="all")
    for p in partitions:
        for i in range(per_partition):
            prod.send(topic, value=f"{tag}-{p}-{i}".encode(), partition=p)
    prod.flush(timeout=OP_TIMEOUT_S)


def kp_read_all(clients, topic, partitions, count):
    """Every record of the topic through kafka-python: sorted (partition, offset, key, value,
    headers, timestamp) rows."""
    c = clients.kp_consumer()
    c.assign([KpTP(topic, p) for p in range(partitions)])
    c.seek_to_beginning()
    rows = []

    def poll(timeout_ms):
        for recs in c.poll(timeout_ms=timeout_ms).values():
            rows.extend((r.partition, r.offset, r.key, r.value,
                         [(k, bytes(v)) for k, v in r.headers or []], r.timestamp) for r in recs)

    deadline = time.monotonic() + OP_TIMEOUT_S
    while len(rows) < count and time.monotonic() < deadline:
        poll(200)
    poll(int(QUIET_S * 1000))  # nothing more may arrive
    return sorted(rows, key=lambda row: row[:2])


def kp_group_offsets(clients, group, topic):
    got = clients.kp_admin().list_consumer_group_offsets(group)
    return {tp.partition: om.offset for tp, om in got.items() if tp.topic == topic}


def sample_records(base_ts):
    """Records covering keys (also null and empty), values (also null and binary), headers (also
    repeated keys, empty and binary values, non-ASCII keys) and explicit timestamps. Timestamps
    are unique, so they identify each record."""
    recs = [dict(key=f"key-{i % 7}".encode(), value=f"value-{i}".encode(),
                 headers=[("idx", str(i).encode()), ("src", b"compat")])
            for i in range(24)]
    recs += [
        dict(key=None, value=b"keyless-1", headers=[]),
        dict(key=None, value=b"keyless-2", headers=[("only", b"header")]),
        dict(key=b"tombstone", value=None, headers=[("empty", b"")]),
        dict(key=b"", value=b"", headers=[]),
        dict(key=b"\x00\xff\xfe binary", value=bytes(range(256)) * 8,
             headers=[("bin", bytes([0, 1, 254, 255]))]),
        dict(key="clé-ü".encode(), value="héllo wörld ✓".encode(),
             headers=[("ünïcode", "✓".encode()), ("dup", b"a"), ("dup", b"b")]),
        dict(key=b"big", value=b"x" * 100_000, headers=[]),
    ]
    for i, r in enumerate(recs):
        r["timestamp"] = base_ts + i
    return recs


def check_roundtrip(recs, rows, num_partitions):
    """rows: (partition, offset, key, value, headers, timestamp) of every consumed record."""
    assert len(rows) == len(recs), f"consumed {len(rows)} records, produced {len(recs)}"
    by_ts = {r["timestamp"]: r for r in recs}
    assert sorted(row[5] for row in rows) == sorted(by_ts), "records lost, duplicated or re-stamped"
    per_partition = {}
    for p, o, key, value, headers, ts in sorted(rows, key=lambda row: row[:2]):
        want = by_ts[ts]
        assert (key, value, headers) == (want["key"], want["value"], want["headers"]), \
            f"record {ts - recs[0]['timestamp']} at {p}/{o} differs"
        if key is not None:
            want_p = java_partition(key, num_partitions)
            assert p == want_p, f"key {key!r} on partition {p}, Java murmur2 says {want_p}"
        per_partition.setdefault(p, []).append((o, ts))
    for p, got in per_partition.items():
        assert [o for o, _ in got] == list(range(len(got))), f"partition {p}: offsets not 0..n-1"
        assert [ts for _, ts in got] == sorted(ts for _, ts in got), \
            f"partition {p}: records not in produce order"


def now_ms():
    return int(time.time() * 1000) // 1000 * 1000


def raw_batches(admin, topic, partition):
    """Every record batch of a partition read with raw Fetch v4 requests:
    [(base_offset, producer_id, producer_epoch, base_sequence, [values])]."""
    batches, offset, high = [], 0, None
    while high is None or offset < high:
        req = FetchRequest[4](replica_id=-1, max_wait_time=0, min_bytes=0, max_bytes=8 << 20,
                              isolation_level=0, topics=[(topic, [(partition, offset, 8 << 20)])])
        (_, parts), = admin.send_request(req, node_id=NODE_ID).topics
        (_, error, high, _, _, data), = parts
        assert error == 0, f"fetch {topic}/{partition}@{offset}: error {error}"
        records = MemoryRecords(data)
        progressed = False
        while (batch := records.next_batch()) is not None:
            values = [r.value for r in batch]
            batches.append((batch.base_offset, batch.producer_id, batch.producer_epoch,
                            batch.base_sequence, values))
            offset = batch.base_offset + len(values)
            progressed = True
        assert progressed or offset >= high, f"fetch {topic}/{partition}@{offset} returned nothing"
    return batches


def check_idempotent_log(admin, topic, expected):
    """expected: {partition: [values in produce order]}. Each partition holds exactly those
    values once, in order, in batches of one producer id whose sequences start at 0 and have
    no gaps. Returns the producer ids."""
    pids = set()
    for p, want in expected.items():
        batches = raw_batches(admin, topic, p)
        got = [v for *_, values in batches for v in values]
        assert len(got) == len(want), f"partition {p}: {len(got)} records, produced {len(want)}"
        assert got == want, f"partition {p}: records duplicated, lost or reordered"
        seq = 0
        for base_offset, pid, epoch, base_seq, values in batches:
            assert pid >= 0 and epoch >= 0, f"batch at {p}/{base_offset} is not idempotent ({pid})"
            assert base_seq == seq, \
                f"batch at {p}/{base_offset}: sequence {base_seq}, expected {seq}"
            seq += len(values)
            pids.add(pid)
    assert len(pids) == 1, f"more than one producer id: {pids}"
    return pids


# =============================================================================
# kafkajs
# =============================================================================

def b64(data):
    return None if data is None else base64.b64encode(data).decode()


def unb64(text):
    return None if text is None else base64.b64decode(text)


def tail(text, lines=40):
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join((text or "").splitlines()[-lines:])


@pytest.fixture(scope="session")
def kafkajs_env():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH (kafkajs tests need Node.js)")
    pkg = NODE_DIR / "node_modules" / "kafkajs" / "package.json"
    if not pkg.is_file():
        pytest.skip(f"kafkajs is not installed in {NODE_DIR} (run setup_node.sh; it needs npm)")
    return node, json.loads(pkg.read_text())["version"]


class KjsMember:
    """A kafkajs group member in a `node kafkajs_driver.js member` subprocess."""

    def __init__(self, node, opts, stderr_path):
        self.opts = opts
        self.stderr_path = stderr_path
        with open(stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                [node, str(KJS_DRIVER), "member", json.dumps(opts)], cwd=NODE_DIR,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
        self.queue = queue.Queue()
        self.records = []        # (partition, offset, key, value, headers, timestamp)
        self.assignment = None   # partitions of the latest join, None before the first
        self.joins = 0
        self.commits = []
        self.errors = []
        self.stopped = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.queue.put(json.loads(line))
            except ValueError:
                self.queue.put({"event": "garbage", "line": line.rstrip("\n")})

    def pump(self):
        while True:
            try:
                ev = self.queue.get_nowait()
            except queue.Empty:
                return self
            kind = ev.get("event")
            if kind == "record":
                self.records.append((ev["partition"], ev["offset"], unb64(ev["key"]),
                                     unb64(ev["value"]),
                                     [(k, unb64(v)) for k, v in ev["headers"]], ev["timestamp"]))
            elif kind == "joined":
                self.assignment = set(ev["assignment"])
                self.joins += 1
            elif kind == "committed":
                self.commits.append({int(p): o for p, o in ev["offsets"].items()})
            elif kind == "stopped":
                self.stopped = True
            else:
                self.errors.append(ev)

    def describe(self):
        return (f"member(assignment={sorted(self.assignment or [])}, joins={self.joins}, "
                f"records={len(self.records)}, errors={self.errors[-3:]}, "
                f"exit={self.proc.poll()})\n--- kafkajs stderr ---\n"
                f"{tail(Path(self.stderr_path).read_text(errors='replace'))}")

    def send(self, cmd):
        self.proc.stdin.write(json.dumps({"cmd": cmd}) + "\n")
        self.proc.stdin.flush()

    def commit(self):
        """Commits the consumed positions of the assigned partitions; returns them."""
        n, e = len(self.commits), len(self.errors)
        self.send("commit")
        wait_members([self], lambda: len(self.commits) > n or len(self.errors) > e,
                     what="the commit to finish")
        if len(self.errors) > e:
            pytest.fail(f"kafkajs commit failed: {self.errors[e:]}")
        return self.commits[-1]

    def stop(self):
        """Disconnects (LeaveGroup) and waits for the process to exit."""
        self.send("stop")
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"kafkajs member did not stop within 15 s: {self.describe()}")
        # The reader thread ends at the end of the exited process's stdout: every line queued.
        self.reader.join(timeout=5)
        assert not self.reader.is_alive(), f"kafkajs member stdout still open: {self.describe()}"
        self.pump()
        assert self.stopped, f"kafkajs member exited without disconnecting: {self.describe()}"

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self):
        """At the end of a test: leave the group if still running (so the broker does not keep
        the member until its session expires), else kill."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # the driver disconnects at the end of stdin
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)


def kjs_quiet(members):
    """Keeps pumping `members` for QUIET_S after the expected records arrived: whatever comes
    now is a duplicate or a stray. A deliberate observation window (an absence cannot be
    waited for), not a synchronisation."""
    time.sleep(QUIET_S)
    for m in members:
        m.pump()


def wait_members(members, predicate, timeout=OP_TIMEOUT_S, what="group condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in members:
            m.pump()
        if predicate():
            return
        dead = [m for m in members if m.proc.poll() is not None and m.queue.empty()]
        if dead:
            pytest.fail(f"a kafkajs member exited while waiting for {what}: {dead[0].describe()}")
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}:\n"
                + "\n".join(m.describe() for m in members))


class KafkaJs:
    def __init__(self, node, version, bootstrap, tmp_path):
        self.node = node
        self.version = version
        self.bootstrap = bootstrap
        self.tmp_path = tmp_path
        self.members = []

    def run(self, command, timeout=OP_TIMEOUT_S, **opts):
        """Runs a one-shot driver command; returns its JSON result (fails the test on error)."""
        opts.setdefault("brokers", [self.bootstrap])
        try:
            proc = subprocess.run([self.node, str(KJS_DRIVER), command, "-"], cwd=NODE_DIR,
                                  input=json.dumps(opts), capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"kafkajs {command} did not finish within {timeout:.0f}s\n"
                        f"--- stderr ---\n{tail(e.stderr)}")
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        result = json.loads(lines[-1]) if lines else None
        if proc.returncode != 0 or not result or not result.get("ok"):
            pytest.fail(f"kafkajs {command} failed (exit {proc.returncode}): {result}\n"
                        f"--- stderr ---\n{tail(proc.stderr)}")
        return result

    def member(self, topic, group, **opts):
        opts = dict(brokers=[self.bootstrap], topic=topic, groupId=group,
                    sessionTimeout=GROUP_SESSION_MS, heartbeatInterval=1000, **opts)
        m = KjsMember(self.node, opts, self.tmp_path / f"member-{len(self.members)}.stderr")
        self.members.append(m)
        return m

    def close_all(self):
        for m in self.members:
            m.close()


@pytest.fixture
def kafkajs(kafkajs_env, broker, tmp_path):
    node, version = kafkajs_env
    k = KafkaJs(node, version, broker.bootstrap, tmp_path)
    try:
        yield k
    finally:
        k.close_all()


def kjs_wire(rec):
    return dict(key=b64(rec["key"]), value=b64(rec["value"]), timestamp=rec["timestamp"],
                headers=[[k, b64(v)] for k, v in rec["headers"]])


def test_kafkajs_version_pinned(kafkajs_env):
    pinned = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["kafkajs"]
    assert kafkajs_env[1] == pinned and pinned.startswith("2."), (kafkajs_env[1], pinned)


@pytest.mark.parametrize("codec", CODECS)
def test_kafkajs_produce_keys_headers_consume_back(kafkajs, clients, topic_name, group_id, codec):
    nparts = 3
    created = kafkajs.run("create-topic", topic=topic_name, partitions=nparts)
    assert created["created"] is True and created["partitions"] == [0, 1, 2]
    recs = sample_records(now_ms())
    res = kafkajs.run("produce", topic=topic_name, compression=codec,
                      messages=[kjs_wire(r) for r in recs])
    assert res["results"] and all(r["errorCode"] == 0 for r in res["results"]), res

    m = kafkajs.member(topic_name, group_id)
    wait_members([m], lambda: len(m.records) >= len(recs), what=f"{len(recs)} records")
    kjs_quiet([m])
    assert m.assignment == {0, 1, 2}
    m.stop()
    check_roundtrip(recs, m.records, nparts)

    # The watermarks kafkajs sees, and the same bytes through kafka-python.
    counts = {p: sum(1 for row in m.records if row[0] == p) for p in range(nparts)}
    offsets = kafkajs.run("offsets", topic=topic_name)["offsets"]
    assert offsets == [{"partition": p, "low": 0, "high": counts[p]} for p in range(nparts)]
    assert kp_read_all(clients, topic_name, nparts, len(recs)) == \
        sorted(m.records, key=lambda row: row[:2])


def test_kafkajs_group_commit_then_new_member_resumes(kafkajs, clients, topic_name, group_id):
    kp_create_topic(clients.kp_admin(), topic_name, 2)
    kp_produce(clients, topic_name, [0, 1], 5, "first")
    a = kafkajs.member(topic_name, group_id)
    wait_members([a], lambda: len(a.records) >= 10, what="10 records")
    assert sorted((p, o) for p, o, *_ in a.records) == [(p, o) for p in (0, 1) for o in range(5)]
    assert a.assignment == {0, 1}, "a lone member gets every partition"
    assert a.commit() == {0: 5, 1: 5}
    assert kafkajs.run("group-offsets", groupId=group_id, topic=topic_name)["offsets"] == \
        {"0": 5, "1": 5}
    assert kp_group_offsets(clients, group_id, topic_name) == {0: 5, 1: 5}
    a.stop()

    kp_produce(clients, topic_name, [0, 1], 2, "second")
    b = kafkajs.member(topic_name, group_id)
    wait_members([b], lambda: len(b.records) >= 4, what="4 new records")
    kjs_quiet([b])
    assert sorted((p, o, v) for p, o, _, v, *_ in b.records) == [
        (p, o, f"second-{p}-{o - 5}".encode()) for p in (0, 1) for o in (5, 6)], \
        "the new member did not resume from the committed offsets"


def kjs_settled_split(members, partitions):
    owned = [m.assignment for m in members]
    return (all(owned) and sum(len(o) for o in owned) == len(partitions)
            and set().union(*owned) == set(partitions)
            and all(len(o) == len(partitions) // len(members) for o in owned))


def test_kafkajs_two_members_split_partitions_exactly_once(kafkajs, clients, topic_name,
                                                            group_id):
    kp_create_topic(clients.kp_admin(), topic_name, 4)
    a = kafkajs.member(topic_name, group_id)
    wait_members([a], lambda: a.assignment == {0, 1, 2, 3}, what="a lone member with 4 partitions")
    b = kafkajs.member(topic_name, group_id)
    wait_members([a, b], lambda: kjs_settled_split([a, b], range(4)), what="a 2 + 2 split")

    kp_produce(clients, topic_name, range(4), 10, "split")
    wait_members([a, b], lambda: len(a.records) + len(b.records) >= 40, what="40 records")
    kjs_quiet([a, b])
    for m in (a, b):
        assert {p for p, *_ in m.records} <= m.assignment, "a record from a partition not owned"
    keys = [(p, o) for m in (a, b) for p, o, *_ in m.records]
    assert sorted(keys) == [(p, o) for p in range(4) for o in range(10)], \
        "records lost or consumed twice"
    assert a.joins == 2 and b.joins == 1, "extra rebalances"


@pytest.mark.parametrize("how", ["disconnect", "kill"])
def test_kafkajs_member_leaving_hands_over_its_partitions(kafkajs, clients, topic_name, group_id,
                                                          how):
    kp_create_topic(clients.kp_admin(), topic_name, 4)
    a = kafkajs.member(topic_name, group_id)
    wait_members([a], lambda: a.assignment == {0, 1, 2, 3}, what="a lone member")
    b = kafkajs.member(topic_name, group_id)
    wait_members([a, b], lambda: kjs_settled_split([a, b], range(4)), what="a 2 + 2 split")
    kp_produce(clients, topic_name, range(4), 5, "before")
    wait_members([a, b], lambda: len(a.records) + len(b.records) >= 20, what="20 records")
    a.commit()
    assert b.commit() == {p: 5 for p in b.assignment}
    b_parts = set(b.assignment)

    if how == "disconnect":
        b.stop()  # LeaveGroup: the group rebalances at once
    else:
        b.kill()  # no LeaveGroup: only the session timeout notices
    gone = time.monotonic()
    wait_members([a], lambda: a.assignment == {0, 1, 2, 3},
                 what="the remaining member to own all partitions")
    took = time.monotonic() - gone
    limit = GROUP_SESSION_MS / 1000 + (0 if how == "disconnect" else 5)
    assert took < limit, f"takeover took {took:.1f}s (limit {limit:.0f}s)"

    seen = len(a.records)
    kp_produce(clients, topic_name, sorted(b_parts), 3, "after")
    wait_members([a], lambda: len(a.records) >= seen + 6,
                 what="records of the taken-over partitions")
    kjs_quiet([a])
    assert sorted((p, o) for p, o, *_ in a.records[seen:]) == \
        [(p, o) for p in sorted(b_parts) for o in (5, 6, 7)], \
        "taken-over partitions must resume at the leaver's commits"


def test_kafkajs_idempotent_producer_no_duplicates(kafkajs, clients, topic_name):
    nparts = 2
    admin = clients.kp_admin()
    kp_create_topic(admin, topic_name, nparts)
    msgs = [dict(key=f"k{i % 11}".encode(), value=f"idem-{i}".encode(), headers=[],
                 timestamp=None) for i in range(300)]
    expected = {p: [] for p in range(nparts)}
    for m in msgs:
        expected[java_partition(m["key"], nparts)].append(m["value"])
    wire = [dict(key=b64(m["key"]), value=b64(m["value"])) for m in msgs]
    res = kafkajs.run("produce", topic=topic_name, idempotent=True, chunk=25, messages=wire)
    assert all(r["errorCode"] == 0 for r in res["results"]), res
    [pid] = check_idempotent_log(admin, topic_name, expected)

    # A second idempotent producer gets its own producer id and starts its sequences at 0.
    res = kafkajs.run("produce", topic=topic_name, idempotent=True, chunk=25, messages=wire)
    assert all(r["errorCode"] == 0 for r in res["results"]), res
    for p in range(nparts):
        batches = raw_batches(admin, topic_name, p)
        second = [b for b in batches if b[1] != pid]
        assert second and second[0][3] == 0, f"partition {p}: {[b[:4] for b in batches]}"
        assert [v for *_, vals in second for v in vals] == expected[p]


class CountingProxy(CuttingProxy):
    """A CuttingProxy that also counts the Produce requests it forwards to the broker."""

    def __init__(self, *args, **kwargs):
        self.produce_requests = 0
        super().__init__(*args, **kwargs)

    def _pipe(self, src, dst, muted):
        if muted is not None:  # broker -> client
            return super()._pipe(src, dst, muted)
        pending = b""
        try:
            while not self.stop.is_set():
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                pending += data
                while len(pending) >= 6:  # frames: int32 size, int16 api key, ...
                    size = int.from_bytes(pending[:4], "big")
                    if len(pending) < 4 + size:
                        break
                    if int.from_bytes(pending[4:6], "big") == 0:  # Produce
                        self.produce_requests += 1
                    pending = pending[4 + size:]
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def cut_proxied(broker_binary, tmp_path):
    """A broker of its own that advertises a proxy which cuts connections, losing responses."""
    broker_port, proxy_port = free_port(), free_port()
    b = ProxiedBroker(broker_binary, tmp_path / "data", tmp_path / "broker.log",
                      port=broker_port, advertised=f"{HOST}:{proxy_port}")
    b.start()
    proxy = CountingProxy(proxy_port, (HOST, broker_port), cut_every_s=0.4, max_cuts=5)
    try:
        yield b, proxy, f"{HOST}:{proxy_port}"
    finally:
        proxy.close()
        b.stop(expect_clean=True)


def test_kafkajs_idempotent_producer_with_cut_connections(kafkajs_env, cut_proxied, tmp_path,
                                                          make_topic_name):
    """kafkajs retries batches whose responses the proxy swallowed before cutting the
    connection: the broker must answer the retries with their original offsets instead of
    writing them twice."""
    node, version = kafkajs_env
    broker, proxy, bootstrap = cut_proxied
    kjs = KafkaJs(node, version, bootstrap, tmp_path)
    topic = make_topic_name()
    kjs.run("create-topic", topic=topic, partitions=1)
    n, chunk = 3000, 10
    wire = [dict(key=None, value=b64(str(i).encode())) for i in range(n)]
    proxy.cutting.set()
    kjs.run("produce", topic=topic, idempotent=True, chunk=chunk, pauseMs=5, messages=wire,
            connectAttempts=5, timeout=90)
    proxy.cutting.clear()
    print(f"{proxy.cuts} cuts, {proxy.produce_requests} Produce requests for {n // chunk} sends")
    assert proxy.cuts >= 3, f"the proxy cut connections only {proxy.cuts} times"
    assert proxy.produce_requests > n // chunk, \
        f"{proxy.produce_requests} Produce requests for {n // chunk} sends: kafkajs never retried"

    from kafka import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=f"{HOST}:{broker.port}", request_timeout_ms=10000)
    try:
        check_idempotent_log(admin, topic, {0: [str(i).encode() for i in range(n)]})
    finally:
        admin.close()


# =============================================================================
# aiokafka
# =============================================================================

class Aio:
    """Creates started aiokafka clients bound to the broker and stops them all at the end."""

    def __init__(self, bootstrap):
        self.bootstrap = bootstrap
        self.started = []

    async def producer(self, **cfg):
        from aiokafka import AIOKafkaProducer
        conf = dict(bootstrap_servers=self.bootstrap, client_id="compat-aiokafka-producer",
                    acks="all", request_timeout_ms=10000, retry_backoff_ms=100)
        conf.update(cfg)
        p = AIOKafkaProducer(**conf)
        await p.start()
        self.started.append(p)
        return p

    async def consumer(self, *topics, **cfg):
        from aiokafka import AIOKafkaConsumer
        conf = dict(bootstrap_servers=self.bootstrap, client_id="compat-aiokafka-consumer",
                    enable_auto_commit=False, auto_offset_reset="earliest",
                    fetch_max_wait_ms=100, request_timeout_ms=15000, retry_backoff_ms=100,
                    session_timeout_ms=GROUP_SESSION_MS, heartbeat_interval_ms=1000)
        conf.update(cfg)
        c = AIOKafkaConsumer(*topics, **conf)
        await c.start()
        self.started.append(c)
        return c

    async def close_all(self):
        while self.started:
            client = self.started.pop()
            try:
                await asyncio.wait_for(client.stop(), 10)
            except Exception as e:  # closing must never mask the test's own result
                print(f"[aiokafka] error while stopping {client!r}: {e!r}")


@pytest.fixture
def run_aio(broker):
    """run_aio(body): runs `await body(aio)` in a fresh event loop, bounded in time."""
    pytest.importorskip("aiokafka")

    def run(body, timeout=90):
        async def main():
            aio = Aio(broker.bootstrap)
            try:
                return await asyncio.wait_for(body(aio), timeout)
            finally:
                await aio.close_all()
        return asyncio.run(main())
    return run


def aio_owned(consumer):
    return {tp.partition for tp in consumer.assignment()}


async def aio_poll_until(members, until, timeout=OP_TIMEOUT_S, what="group condition"):
    """Polls every member in turn until `until(records_by_member)` holds; returns the records
    as [(partition, offset, value)] per member."""
    got = [[] for _ in members]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i, m in enumerate(members):
            for recs in (await m.getmany(timeout_ms=100)).values():
                got[i].extend((r.partition, r.offset, r.value) for r in recs)
        if until(got):
            return got
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; assignments: "
                f"{[sorted(aio_owned(m)) for m in members]}, records: {[len(g) for g in got]}")


async def aio_quiet(member, into):
    for recs in (await member.getmany(timeout_ms=int(QUIET_S * 1000))).values():
        into.extend((r.partition, r.offset, r.value) for r in recs)


async def aio_produce(aio, topic, partitions, per_partition, tag):
    p = await aio.producer()
    futs = [await p.send(topic, value=f"{tag}-{part}-{i}".encode(), partition=part)
            for part in partitions for i in range(per_partition)]
    await asyncio.gather(*futs)


@pytest.mark.parametrize("codec", CODECS)
def test_aiokafka_produce_keys_headers_consume_back(run_aio, clients, topic_name, group_id, codec):
    from aiokafka import TopicPartition
    nparts = 3
    kp_create_topic(clients.kp_admin(), topic_name, nparts)
    recs = sample_records(now_ms())

    async def body(aio):
        p = await aio.producer(compression_type=None if codec == "none" else codec)
        futs = [await p.send(topic_name, key=r["key"], value=r["value"], headers=r["headers"],
                             timestamp_ms=r["timestamp"]) for r in recs]
        metas = await asyncio.gather(*futs)
        for r, md in zip(recs, metas):
            if r["key"] is not None:
                assert md.partition == java_partition(r["key"], nparts)
        c = await aio.consumer(topic_name, group_id=group_id)
        rows = []
        deadline = time.monotonic() + OP_TIMEOUT_S
        while len(rows) < len(recs) and time.monotonic() < deadline:
            for batch in (await c.getmany(timeout_ms=200)).values():
                rows.extend((r.partition, r.offset, r.key, r.value, list(r.headers), r.timestamp)
                            for r in batch)
        for batch in (await c.getmany(timeout_ms=int(QUIET_S * 1000))).values():
            rows.extend((r.partition, r.offset, r.key, r.value, list(r.headers), r.timestamp)
                        for r in batch)
        assert aio_owned(c) == {0, 1, 2}
        ends = await c.end_offsets([TopicPartition(topic_name, q) for q in range(nparts)])
        return rows, {tp.partition: off for tp, off in ends.items()}

    rows, ends = run_aio(body)
    check_roundtrip(recs, rows, nparts)
    assert ends == {p: sum(1 for row in rows if row[0] == p) for p in range(nparts)}
    assert kp_read_all(clients, topic_name, nparts, len(recs)) == sorted(rows, key=lambda r: r[:2])


def test_aiokafka_group_commit_then_new_member_resumes(run_aio, clients, topic_name, group_id):
    from aiokafka import TopicPartition
    kp_create_topic(clients.kp_admin(), topic_name, 2)

    async def body(aio):
        await aio_produce(aio, topic_name, [0, 1], 5, "first")
        a = await aio.consumer(topic_name, group_id=group_id)
        [got] = await aio_poll_until([a], lambda g: len(g[0]) >= 10, what="10 records")
        assert sorted((p, o) for p, o, _ in got) == [(p, o) for p in (0, 1) for o in range(5)]
        assert aio_owned(a) == {0, 1}, "a lone member gets every partition"
        await a.commit()
        assert {p: await a.committed(TopicPartition(topic_name, p)) for p in (0, 1)} == {0: 5, 1: 5}
        assert kp_group_offsets(clients, group_id, topic_name) == {0: 5, 1: 5}
        await a.stop()

        await aio_produce(aio, topic_name, [0, 1], 2, "second")
        b = await aio.consumer(topic_name, group_id=group_id)
        [got] = await aio_poll_until([b], lambda g: len(g[0]) >= 4, what="4 new records")
        await aio_quiet(b, got)
        assert sorted(got) == [(p, o, f"second-{p}-{o - 5}".encode())
                               for p in (0, 1) for o in (5, 6)], \
            "the new member did not resume from the committed offsets"

    run_aio(body)


def aio_split(members, partitions):
    owned = [aio_owned(m) for m in members]
    return (all(owned) and sum(len(o) for o in owned) == len(partitions)
            and set().union(*owned) == set(partitions)
            and all(len(o) == len(partitions) // len(members) for o in owned))


def test_aiokafka_two_members_split_partitions_exactly_once(run_aio, clients, topic_name,
                                                             group_id):
    kp_create_topic(clients.kp_admin(), topic_name, 4)

    async def body(aio):
        a = await aio.consumer(topic_name, group_id=group_id)
        await aio_poll_until([a], lambda g: aio_owned(a) == {0, 1, 2, 3}, what="a lone member")
        b = await aio.consumer(topic_name, group_id=group_id)
        await aio_poll_until([a, b], lambda g: aio_split([a, b], range(4)), what="a 2 + 2 split")
        await aio_produce(aio, topic_name, range(4), 10, "split")
        got = await aio_poll_until([a, b], lambda g: len(g[0]) + len(g[1]) >= 40,
                                   what="40 records")
        for m, recs in zip((a, b), got):
            await aio_quiet(m, recs)
            assert {p for p, _, _ in recs} <= aio_owned(m), "a record from a partition not owned"
        keys = [(p, o) for recs in got for p, o, _ in recs]
        assert sorted(keys) == [(p, o) for p in range(4) for o in range(10)], \
            "records lost or consumed twice"

    run_aio(body)


def test_aiokafka_member_leaving_hands_over_its_partitions(run_aio, clients, topic_name,
                                                            group_id):
    kp_create_topic(clients.kp_admin(), topic_name, 4)

    async def body(aio):
        a = await aio.consumer(topic_name, group_id=group_id)
        await aio_poll_until([a], lambda g: aio_owned(a) == {0, 1, 2, 3}, what="a lone member")
        b = await aio.consumer(topic_name, group_id=group_id)
        await aio_poll_until([a, b], lambda g: aio_split([a, b], range(4)), what="a 2 + 2 split")
        await aio_produce(aio, topic_name, range(4), 5, "before")
        await aio_poll_until([a, b], lambda g: len(g[0]) + len(g[1]) >= 20, what="20 records")
        await a.commit()
        await b.commit()
        b_parts = aio_owned(b)
        await b.stop()  # LeaveGroup
        gone = time.monotonic()
        await aio_poll_until([a], lambda g: aio_owned(a) == {0, 1, 2, 3},
                             what="the remaining member to own all partitions")
        took = time.monotonic() - gone
        assert took < GROUP_SESSION_MS / 1000, f"takeover took {took:.1f}s"
        await aio_produce(aio, topic_name, sorted(b_parts), 3, "after")
        [more] = await aio_poll_until([a], lambda g: len(g[0]) >= 6,
                                      what="records of the taken-over partitions")
        await aio_quiet(a, more)
        assert sorted((p, o) for p, o, _ in more) == \
            [(p, o) for p in sorted(b_parts) for o in (5, 6, 7)], \
            "taken-over partitions must resume at the leaver's commits"

    run_aio(body)


def test_aiokafka_idempotent_producer_no_duplicates(run_aio, clients, topic_name):
    nparts = 2
    admin = clients.kp_admin()
    kp_create_topic(admin, topic_name, nparts)
    values = [f"idem-{i}".encode() for i in range(300)]
    keys = [f"k{i % 11}".encode() for i in range(300)]

    async def body(aio):
        p = await aio.producer(enable_idempotence=True)
        for start in range(0, len(values), 25):
            futs = [await p.send(topic_name, key=k, value=v)
                    for k, v in zip(keys[start:start + 25], values[start:start + 25])]
            await asyncio.gather(*futs)

    run_aio(body)
    expected = {p: [] for p in range(nparts)}
    for k, v in zip(keys, values):
        expected[java_partition(k, nparts)].append(v)
    check_idempotent_log(admin, topic_name, expected)
