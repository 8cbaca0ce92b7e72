"""Client-compatibility tests: real Kafka clients against a real thorstream broker.

Clients: kafka-python ("kp", pure python) and confluent-kafka ("ck", librdkafka), plus the
kcat CLI (system librdkafka). Every test uses its own topic(s) (see `topic_name` /
`make_topic_name` in conftest.py) and bounded timeouts, so tests are order independent,
except the broker-restart tests which are kept at the end of this file.

Broker facts assumed here: single node, node id 1, advertised as 127.0.0.1:19093.
"""

import subprocess
import time

import pytest
from confluent_kafka import (OFFSET_BEGINNING, OFFSET_END, OFFSET_INVALID,
                             TIMESTAMP_CREATE_TIME, KafkaError, KafkaException)
from confluent_kafka import TopicPartition as CkTP
from confluent_kafka.admin import ConfigResource as CkConfigResource
from confluent_kafka.admin import NewPartitions as CkNewPartitions
from confluent_kafka.admin import NewTopic as CkNewTopic
from confluent_kafka.admin import ResourceType as CkResourceType
from kafka import OffsetAndMetadata
from kafka import TopicPartition as KpTP
from kafka import errors as kp_errors
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType as KpConfigResourceType
from kafka.admin import NewPartitions as KpNewPartitions
from kafka.admin import NewTopic as KpNewTopic
from kafka.partitioner.default import murmur2 as kp_murmur2
from kafka.protocol.metadata import MetadataRequest
from kafka.protocol.produce import ProduceRequest
from kafka.record.memory_records import MemoryRecordsBuilder

from conftest import wait_until

NODE_ID = 1
POLL_TIMEOUT_S = 10.0      # upper bound for any "wait until N records arrived" loop
QUIET_POLL_S = 0.5         # extra poll after the expected records, to catch duplicates
ADMIN_TIMEOUT_S = 15.0     # also conftest.wait_until's default bound
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
ACKS = [0, 1, "all"]

# Kafka error codes (wire level)
ERR_NONE = 0
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3


# =============================================================================
# helpers
# =============================================================================

def java_murmur2(data: bytes) -> int:
    """Kafka's org.apache.kafka.common.utils.Utils.murmur2 (signed 32-bit result)."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    for i in range(length // 4):
        i4 = i * 4
        k = (data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24))
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rem = length % 4
    tail = length & ~3
    if rem == 3:
        h ^= data[tail + 2] << 16
    if rem >= 2:
        h ^= data[tail + 1] << 8
    if rem >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key: bytes, num_partitions: int) -> int:
    """Java DefaultPartitioner / BuiltInPartitioner for a non-null key."""
    return (java_murmur2(key) & 0x7FFFFFFF) % num_partitions


def norm_headers(headers):
    return [(k, bytes(v) if v is not None else None) for k, v in (headers or [])]


# ---- kafka-python helpers ---------------------------------------------------

def kp_create_topic(admin, name, partitions=1):
    admin.create_topics([KpNewTopic(name, num_partitions=partitions, replication_factor=1)],
                        timeout_ms=10000)
    wait_until(lambda: kp_partition_count(admin, name) == partitions,
               what=f"topic {name} with {partitions} partitions in metadata")


def kp_metadata(admin, topics=None):
    """Raw Metadata request (no auto-create, no authorized-operations) through the kafka-python
    admin connection. Helpers use this instead of admin.describe_topics()/list_topics() so
    that a problem in those (tested separately) does not cascade into every test."""
    version = admin._client.api_version(MetadataRequest, max_version=8)
    if version >= 8:
        req = MetadataRequest[version](topics=topics, allow_auto_topic_creation=False,
                                       include_cluster_authorized_operations=False,
                                       include_topic_authorized_operations=False)
    elif version >= 4:
        req = MetadataRequest[version](topics=topics, allow_auto_topic_creation=False)
    else:
        req = MetadataRequest[version](topics=topics)
    return admin.send_request(req).to_object()


def kp_topic_names(admin):
    return {t["topic"] for t in kp_metadata(admin, None)["topics"] if t["error_code"] == 0}


def kp_partition_count(admin, name):
    for t in kp_metadata(admin, [name])["topics"]:
        if t["topic"] == name and t["error_code"] == 0:
            return len(t["partitions"])
    return None


def kp_consume(consumer, n, timeout=POLL_TIMEOUT_S, quiet=QUIET_POLL_S):
    """Poll until n records arrived (bounded), then poll briefly for unexpected extras."""
    records = []
    deadline = time.monotonic() + timeout
    while len(records) < n and time.monotonic() < deadline:
        for recs in consumer.poll(timeout_ms=200).values():
            records.extend(recs)
    if len(records) >= n and quiet:
        end = time.monotonic() + quiet
        while time.monotonic() < end:
            for recs in consumer.poll(timeout_ms=100).values():
                records.extend(recs)
    return records


def kp_rows(records):
    return sorted(((r.partition, r.offset, r.key, r.value, norm_headers(r.headers), r.timestamp)
                   for r in records), key=lambda row: row[:2])


# ---- confluent-kafka helpers ------------------------------------------------

def ck_result(futures, timeout=ADMIN_TIMEOUT_S):
    """Wait for all admin futures; returns {key: result}; raises the first KafkaException."""
    return {k: f.result(timeout=timeout) for k, f in futures.items()}


def ck_create_topic(admin, name, partitions=1):
    ck_result(admin.create_topics([CkNewTopic(name, num_partitions=partitions, replication_factor=1)],
                                  operation_timeout=10, request_timeout=15))
    wait_until(lambda: ck_partition_count(admin, name) == partitions,
               what=f"topic {name} with {partitions} partitions in metadata")


def ck_partition_count(admin, name):
    md = admin.list_topics(topic=name, timeout=10)
    t = md.topics.get(name)
    if t is None or t.error is not None:
        return None
    return len(t.partitions)


def ck_consume(consumer, n, timeout=POLL_TIMEOUT_S, quiet=QUIET_POLL_S):
    """Poll until n messages arrived (bounded); errors other than partition EOF raise."""
    msgs = []

    def poll_once(t):
        m = consumer.poll(t)
        if m is None:
            return
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                return
            raise KafkaException(m.error())
        msgs.append(m)

    deadline = time.monotonic() + timeout
    while len(msgs) < n and time.monotonic() < deadline:
        poll_once(0.2)
    if len(msgs) >= n and quiet:
        end = time.monotonic() + quiet
        while time.monotonic() < end:
            poll_once(0.1)
    return msgs


def ck_rows(msgs):
    return sorted(((m.partition(), m.offset(), m.key(), m.value(), norm_headers(m.headers()),
                    m.timestamp()[1]) for m in msgs), key=lambda row: row[:2])


class CkDelivery:
    """Collects confluent-kafka delivery reports in produce order."""

    def __init__(self):
        self.reports = []

    def __call__(self, err, msg):
        self.reports.append((err, msg.partition(), msg.offset(), msg.key()))

    def errors(self):
        return [r for r in self.reports if r[0] is not None]


def ck_flush(producer, expected, delivery, timeout=POLL_TIMEOUT_S + 5):
    remaining = producer.flush(timeout)
    assert remaining == 0, f"{remaining} messages not delivered within {timeout}s"
    assert len(delivery.reports) == expected
    assert not delivery.errors(), f"delivery errors: {delivery.errors()[:5]}"


# ---- test data --------------------------------------------------------------

def make_records(count, base_ts, num_partitions):
    """Deterministic mixed records: keyed/unkeyed/explicit-partition, headers, a tombstone."""
    recs = []
    for i in range(count):
        key = None if i % 4 == 3 else f"key-{i % 7}".encode()
        value = None if i == 5 else (f"value-{i}:" + "x" * (i * 13 % 50)).encode() + bytes([i % 256, 0, 255])
        if i % 3 == 0:
            headers = []
        elif i % 3 == 1:
            headers = [("h1", b"a"), ("h2", b"")]
        else:
            headers = [("dup", b"1"), ("dup", b"2"), ("bin-\u00fc", bytes([0, 1, 254, 255]))]
        partition = (i % num_partitions) if i % 5 == 4 else None
        recs.append(dict(key=key, value=value, headers=headers, partition=partition,
                         timestamp=base_ts + i))
    return recs


def expected_rows(recs, partitions):
    """Rows as consumed: offsets are dense from 0 per partition, in produce order."""
    next_offset = {}
    rows = []
    for rec, p in zip(recs, partitions):
        off = next_offset.get(p, 0)
        next_offset[p] = off + 1
        rows.append((p, off, rec["key"], rec["value"], rec["headers"], rec["timestamp"]))
    return sorted(rows, key=lambda row: row[:2])


def now_ms_rounded():
    # A recent, whole-second timestamp base (recent so no time-based retention can apply).
    return (int(time.time()) - 600) * 1000


# =============================================================================
# sanity: broker up, API versions, cluster metadata
# =============================================================================

def test_java_murmur2_reference_vectors():
    # Vectors from Kafka's UtilsTest.testMurmur2 (Java), cross-checked with kafka-python.
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
             b"a-little-bit-longer-string": -1486304829,
             b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, b"abc": 479470107}
    for data, want in cases.items():
        assert java_murmur2(data) == want, data
        assert (kp_murmur2(data) & 0x7FFFFFFF) == (want & 0x7FFFFFFF), data


def test_broker_accepts_tcp(broker):
    assert broker.is_running()
    assert broker.bootstrap == f"127.0.0.1:{broker.port}"


def test_kp_api_version_probe(clients):
    """kafka-python probes ApiVersions (v4 first, falling back on UNSUPPORTED_VERSION) and
    infers a broker version from the advertised ranges; < (2, 1) disables zstd."""
    admin = clients.kp_admin()
    inferred = admin.config["api_version"]
    api_versions = admin._client.get_api_versions()
    required = {0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
                9: "OffsetFetch", 10: "FindCoordinator", 18: "ApiVersions", 19: "CreateTopics",
                20: "DeleteTopics", 21: "DeleteRecords", 32: "DescribeConfigs",
                37: "CreatePartitions", 60: "DescribeCluster"}
    missing = {name for key, name in required.items() if key not in api_versions}
    assert not missing, f"ApiVersions response lacks {sorted(missing)}; got {api_versions}"
    for key, (lo, hi) in api_versions.items():
        assert 0 <= lo <= hi, f"bad range for api {key}: {lo}..{hi}"
    assert inferred >= (2, 1), (
        f"kafka-python inferred broker version {inferred} from {api_versions}; it needs >= (2, 1) "
        f"(e.g. Fetch v10 or Produce v8 advertised) to allow zstd")


def test_kp_metadata_authorized_operations(clients, topic_name):
    """kafka-python's admin (describe_topics/list_topics/describe_cluster) always sends Metadata v8
    with include_*_authorized_operations=true and maps every set bit to an ACLOperation (valid bits
    3..13). INT32_MIN (bit 31, Java's "not requested" value) makes it raise
    `ValueError: 31 is not a valid ACLOperation`."""
    admin = clients.kp_admin()
    kp_create_topic(admin, topic_name, 1)
    version = admin._client.api_version(MetadataRequest, max_version=8)
    if version < 8:
        pytest.skip(f"broker Metadata max version {version} < 8: no authorized operations")
    resp = admin.send_request(MetadataRequest[version](
        topics=[topic_name], allow_auto_topic_creation=False,
        include_cluster_authorized_operations=True, include_topic_authorized_operations=True))
    valid_bits = set(range(3, 14))
    cluster_ops = set(resp.authorized_operations)
    topic_ops = set(resp.topics[0][-1])
    assert cluster_ops <= valid_bits, f"cluster authorized_operations bits {sorted(cluster_ops)}"
    assert topic_ops <= valid_bits, f"topic authorized_operations bits {sorted(topic_ops)}"


def test_kp_describe_cluster(clients, broker):
    admin = clients.kp_admin()
    cluster = admin.describe_cluster()
    assert cluster["controller_id"] == NODE_ID
    brokers = [(b["node_id"], b["host"], b["port"]) for b in cluster["brokers"]]
    assert brokers == [(NODE_ID, broker.host, broker.port)]


def test_ck_describe_cluster(clients, broker):
    admin = clients.ck_admin()
    md = admin.list_topics(timeout=10)
    assert md.controller_id == NODE_ID
    assert {b.id: (b.host, b.port) for b in md.brokers.values()} == {NODE_ID: (broker.host, broker.port)}
    # DescribeCluster API (key 60)
    desc = admin.describe_cluster(request_timeout=10).result(timeout=ADMIN_TIMEOUT_S)
    assert desc.controller is not None and desc.controller.id == NODE_ID
    assert [(n.id, n.host, n.port) for n in desc.nodes] == [(NODE_ID, broker.host, broker.port)]


# =============================================================================
# admin: create / list / describe / create partitions / delete
# =============================================================================

def test_kp_admin_topic_lifecycle(clients, topic_name):
    admin = clients.kp_admin()
    admin.create_topics([KpNewTopic(topic_name, num_partitions=3, replication_factor=1)],
                        timeout_ms=10000)
    wait_until(lambda: topic_name in admin.list_topics(), what="topic listed")
    desc = [t for t in admin.describe_topics([topic_name]) if t["topic"] == topic_name]
    assert len(desc) == 1 and desc[0]["error_code"] == 0
    parts = sorted(desc[0]["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    assert all(p["leader"] == NODE_ID and p["error_code"] == 0 for p in parts)

    with pytest.raises(kp_errors.TopicAlreadyExistsError):
        admin.create_topics([KpNewTopic(topic_name, num_partitions=3, replication_factor=1)],
                            timeout_ms=10000)

    admin.create_partitions({topic_name: KpNewPartitions(total_count=5)}, timeout_ms=10000)
    wait_until(lambda: kp_partition_count(admin, topic_name) == 5, what="5 partitions")

    admin.delete_topics([topic_name], timeout_ms=10000)
    wait_until(lambda: topic_name not in admin.list_topics(), what="topic gone from list")


def test_ck_admin_topic_lifecycle(clients, topic_name):
    admin = clients.ck_admin()
    ck_result(admin.create_topics([CkNewTopic(topic_name, num_partitions=3, replication_factor=1)],
                                  operation_timeout=10, request_timeout=15))
    wait_until(lambda: topic_name in admin.list_topics(timeout=10).topics, what="topic listed")
    t = admin.list_topics(topic=topic_name, timeout=10).topics[topic_name]
    assert t.error is None
    assert sorted(t.partitions) == [0, 1, 2]
    assert all(p.leader == NODE_ID for p in t.partitions.values())

    with pytest.raises(KafkaException) as exc:
        ck_result(admin.create_topics([CkNewTopic(topic_name, num_partitions=3, replication_factor=1)],
                                      operation_timeout=10, request_timeout=15))
    assert exc.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    ck_result(admin.create_partitions([CkNewPartitions(topic_name, 5)],
                                      operation_timeout=10, request_timeout=15))
    wait_until(lambda: ck_partition_count(admin, topic_name) == 5, what="5 partitions")

    ck_result(admin.delete_topics([topic_name], operation_timeout=10, request_timeout=15))
    wait_until(lambda: topic_name not in admin.list_topics(timeout=10).topics,
               what="topic gone from list")


def test_kp_describe_configs(clients, topic_name):
    admin = clients.kp_admin()
    kp_create_topic(admin, topic_name, 1)
    responses = admin.describe_configs([KpConfigResource(KpConfigResourceType.TOPIC, topic_name)])
    resources = [r for resp in responses for r in resp.resources]
    assert len(resources) == 1
    error_code, _msg, rtype, rname = resources[0][:4]
    assert (error_code, rname) == (0, topic_name)


def test_ck_describe_configs(clients, topic_name):
    admin = clients.ck_admin()
    ck_create_topic(admin, topic_name, 1)
    res = CkConfigResource(CkResourceType.TOPIC, topic_name)
    configs = ck_result(admin.describe_configs([res], request_timeout=10))[res]
    assert isinstance(configs, dict)


# =============================================================================
# produce (keys, headers, acks, codecs) + consume back with both clients
# =============================================================================

def produce_with_kp(clients, topic, recs, acks, codec):
    producer = clients.kp_producer(acks=acks, compression_type=None if codec == "none" else codec,
                                   linger_ms=20)
    futures = [producer.send(topic, key=r["key"], value=r["value"], headers=r["headers"],
                             partition=r["partition"], timestamp_ms=r["timestamp"]) for r in recs]
    producer.flush(timeout=POLL_TIMEOUT_S)
    metas = [f.get(timeout=POLL_TIMEOUT_S) for f in futures]
    if acks == 0:
        kp_push_acks0_bytes(producer)
    return [m.partition for m in metas], [m.offset for m in metas]


def kp_push_acks0_bytes(producer):
    """Work around a kafka-python 2.3.x client bug: with acks=0 the request future completes at
    enqueue time, so KafkaClient.send() never marks the connection as having pending bytes and
    the ProduceRequest stays in the client's send buffer until some later request goes out on the
    same connection. Force a Metadata request (same connection, single broker) to flush it."""
    future = producer._metadata.request_update()
    producer._sender.wakeup()
    wait_until(lambda: future.is_done, timeout=POLL_TIMEOUT_S, interval=0.05,
               what="the metadata refresh that flushes the acks=0 produce bytes")


@pytest.mark.parametrize("acks", ACKS, ids=lambda a: f"acks={a}")
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("producer_client", ["kafka-python", "confluent-kafka"])
def test_produce_consume_roundtrip(clients, topic_name, producer_client, codec, acks):
    nparts = 3
    kp_create_topic(clients.kp_admin(), topic_name, nparts)
    recs = make_records(24, now_ms_rounded(), nparts)

    if producer_client == "kafka-python":
        partitions, offsets = produce_with_kp(clients, topic_name, recs, acks, codec)
    else:
        # confluent-kafka produce() is async; to pair reports with records, produce one at a
        # time in order and let each delivery report (in per-partition order) tell the partition.
        producer = clients.ck_producer({"acks": acks, "compression.type": codec, "linger.ms": 20})
        delivery = CkDelivery()
        for i, r in enumerate(recs):
            kwargs = dict(key=r["key"], value=r["value"], headers=r["headers"] or None,
                          timestamp=r["timestamp"],
                          on_delivery=lambda err, msg, i=i: delivery.reports.append(
                              (err, i, msg.partition(), msg.offset())))
            if r["partition"] is not None:
                kwargs["partition"] = r["partition"]
            producer.produce(topic_name, **kwargs)
        remaining = producer.flush(POLL_TIMEOUT_S + 5)
        assert remaining == 0, f"{remaining} messages not delivered"
        errs = [d for d in delivery.reports if d[0] is not None]
        assert not errs, f"delivery errors: {errs[:5]}"
        by_index = {i: (p, o) for _, i, p, o in delivery.reports}
        assert sorted(by_index) == list(range(len(recs)))
        partitions = [by_index[i][0] for i in range(len(recs))]
        offsets = [by_index[i][1] for i in range(len(recs))]

    for r, p in zip(recs, partitions):
        assert 0 <= p < nparts
        if r["partition"] is not None:
            assert p == r["partition"]
        elif r["key"] is not None:
            assert p == java_partition(r["key"], nparts), "keyed record not on murmur2 partition"
    want = expected_rows(recs, partitions)
    if acks != 0:  # with acks=0 the clients cannot know the offsets
        got_offsets = sorted((p, o) for p, o in zip(partitions, offsets))
        assert got_offsets == [(row[0], row[1]) for row in want]

    tps = list(range(nparts))
    kc = clients.kp_consumer()
    kc.assign([KpTP(topic_name, p) for p in tps])
    kc.seek_to_beginning()
    assert kp_rows(kp_consume(kc, len(recs))) == want

    cc = clients.ck_consumer()
    cc.assign([CkTP(topic_name, p, OFFSET_BEGINNING) for p in tps])
    msgs = ck_consume(cc, len(recs))
    assert ck_rows(msgs) == want
    assert all(m.timestamp()[0] == TIMESTAMP_CREATE_TIME for m in msgs)


# =============================================================================
# keyed partitioning (Java murmur2)
# =============================================================================

PARTITIONER_KEYS = ([f"user-{i}".encode() for i in range(40)]
                    + [b"a", b"ab", b"abc", b"abcd", b"\x00", b"\xff\xfe\xfd",
                       "\u00fcnic\u00f8de-\u2603".encode()])


def test_keyed_partitioning_matches_java_murmur2(clients, topic_name):
    nparts = 7
    kp_create_topic(clients.kp_admin(), topic_name, nparts)
    expect = {k: java_partition(k, nparts) for k in PARTITIONER_KEYS}

    kp_prod = clients.kp_producer(acks=1, linger_ms=5)
    kp_meta = []
    for rnd in range(2):  # same key twice -> same partition
        futs = [(k, kp_prod.send(topic_name, key=k, value=b"kp-%d" % rnd)) for k in PARTITIONER_KEYS]
        kp_prod.flush(timeout=POLL_TIMEOUT_S)
        kp_meta += [(k, f.get(timeout=POLL_TIMEOUT_S).partition) for k, f in futs]

    ck_prod = clients.ck_producer({"acks": 1, "linger.ms": 5})
    delivery = CkDelivery()
    for rnd in range(2):
        for k in PARTITIONER_KEYS:
            ck_prod.produce(topic_name, key=k, value=b"ck-%d" % rnd, on_delivery=delivery)
    ck_flush(ck_prod, 2 * len(PARTITIONER_KEYS), delivery)
    ck_meta = [(k, p) for _, p, _, k in delivery.reports]

    for k, p in kp_meta:
        assert p == expect[k], f"kafka-python put {k!r} on {p}, Java murmur2 says {expect[k]}"
    for k, p in ck_meta:
        assert p == expect[k], f"confluent-kafka put {k!r} on {p}, Java murmur2 says {expect[k]}"

    # and the broker stored each record on exactly that partition
    total = 4 * len(PARTITIONER_KEYS)
    kc = clients.kp_consumer()
    kc.assign([KpTP(topic_name, p) for p in range(nparts)])
    kc.seek_to_beginning()
    records = kp_consume(kc, total)
    assert len(records) == total
    for r in records:
        assert r.partition == expect[r.key]
    per_part = {}
    for r in records:
        per_part.setdefault(r.partition, []).append(r.offset)
    for p, offs in per_part.items():
        assert sorted(offs) == list(range(len(offs))), f"offsets not dense on partition {p}"


# =============================================================================
# seek, watermarks, offsets_for_times
# =============================================================================
# A test that looks records up (watermarks, ListOffsets, DeleteRecords, a fetch that must see
# them, kcat -e) right after producing them produces with acks=all: under fsync=always (the
# broker's default) the high watermark is the durable offset, so an acks=1 or acks=0 write is
# acknowledged before it is visible and becomes visible only after the next group commit.
# Tests that consume with a bounded poll loop (kp_consume, ck_consume) may use any acks.

def test_kp_seek_middle(clients, topic_name):
    kp_create_topic(clients.kp_admin(), topic_name, 1)
    prod = clients.kp_producer(acks="all")
    for i in range(10):
        prod.send(topic_name, key=b"k%d" % i, value=b"v%d" % i, partition=0)
    prod.flush(timeout=POLL_TIMEOUT_S)

    tp = KpTP(topic_name, 0)
    c = clients.kp_consumer()
    c.assign([tp])
    c.seek(tp, 4)
    recs = kp_consume(c, 6)
    assert [(r.offset, r.value) for r in recs] == [(i, b"v%d" % i) for i in range(4, 10)]
    assert c.position(tp) == 10
    c.seek(tp, 8)
    assert [r.offset for r in kp_consume(c, 2)] == [8, 9]


def test_ck_seek_middle(clients, topic_name):
    ck_create_topic(clients.ck_admin(), topic_name, 1)
    prod = clients.ck_producer({"acks": "all"})
    delivery = CkDelivery()
    for i in range(10):
        prod.produce(topic_name, key=b"k%d" % i, value=b"v%d" % i, partition=0, on_delivery=delivery)
    ck_flush(prod, 10, delivery)

    c = clients.ck_consumer()
    c.assign([CkTP(topic_name, 0, 4)])
    msgs = ck_consume(c, 6)
    assert [(m.offset(), m.value()) for m in msgs] == [(i, b"v%d" % i) for i in range(4, 10)]
    c.seek(CkTP(topic_name, 0, 7))
    assert [m.offset() for m in ck_consume(c, 3)] == [7, 8, 9]


def test_kp_watermarks(clients, topic_name):
    kp_create_topic(clients.kp_admin(), topic_name, 2)
    prod = clients.kp_producer(acks="all")
    for i in range(10):
        prod.send(topic_name, value=b"v%d" % i, partition=0)
    prod.flush(timeout=POLL_TIMEOUT_S)
    c = clients.kp_consumer()
    tps = [KpTP(topic_name, 0), KpTP(topic_name, 1)]
    assert c.beginning_offsets(tps) == {tps[0]: 0, tps[1]: 0}
    assert c.end_offsets(tps) == {tps[0]: 10, tps[1]: 0}


def test_ck_watermarks(clients, topic_name):
    ck_create_topic(clients.ck_admin(), topic_name, 2)
    prod = clients.ck_producer({"acks": "all"})
    delivery = CkDelivery()
    for i in range(10):
        prod.produce(topic_name, value=b"v%d" % i, partition=0, on_delivery=delivery)
    ck_flush(prod, 10, delivery)
    c = clients.ck_consumer()
    assert c.get_watermark_offsets(CkTP(topic_name, 0), timeout=10, cached=False) == (0, 10)
    assert c.get_watermark_offsets(CkTP(topic_name, 1), timeout=10, cached=False) == (0, 0)


def test_kp_offsets_for_times(clients, topic_name):
    kp_create_topic(clients.kp_admin(), topic_name, 1)
    base = now_ms_rounded()
    prod = clients.kp_producer(acks="all", linger_ms=20)
    for i in range(10):
        prod.send(topic_name, value=b"v%d" % i, partition=0, timestamp_ms=base + i * 1000)
    prod.flush(timeout=POLL_TIMEOUT_S)

    tp = KpTP(topic_name, 0)
    c = clients.kp_consumer()

    def lookup(ts):
        return c.offsets_for_times({tp: ts})[tp]

    r = lookup(base + 2500)
    assert (r.offset, r.timestamp) == (3, base + 3000)
    r = lookup(base - 100000)
    assert (r.offset, r.timestamp) == (0, base)
    r = lookup(base + 9000)
    assert (r.offset, r.timestamp) == (9, base + 9000)
    assert lookup(base + 9001) is None

    c.assign([tp])
    c.seek_to_beginning()
    recs = kp_consume(c, 10)
    assert [(r.offset, r.timestamp, r.timestamp_type) for r in recs] == \
        [(i, base + i * 1000, 0) for i in range(10)]


def test_ck_offsets_for_times(clients, topic_name):
    ck_create_topic(clients.ck_admin(), topic_name, 1)
    base = now_ms_rounded()
    prod = clients.ck_producer({"acks": "all", "linger.ms": 20})
    delivery = CkDelivery()
    for i in range(10):
        prod.produce(topic_name, value=b"v%d" % i, partition=0, timestamp=base + i * 1000,
                     on_delivery=delivery)
    ck_flush(prod, 10, delivery)

    c = clients.ck_consumer()

    def lookup(ts):
        res = c.offsets_for_times([CkTP(topic_name, 0, ts)], timeout=10)
        assert len(res) == 1 and res[0].error is None
        return res[0].offset

    assert lookup(base + 2500) == 3
    assert lookup(base - 100000) == 0
    assert lookup(base + 9000) == 9
    assert lookup(base + 9001) == OFFSET_END  # -1: no such record

    c.assign([CkTP(topic_name, 0, OFFSET_BEGINNING)])
    msgs = ck_consume(c, 10)
    assert [(m.offset(), m.timestamp()) for m in msgs] == \
        [(i, (TIMESTAMP_CREATE_TIME, base + i * 1000)) for i in range(10)]


# =============================================================================
# delete records (DeleteRecords moves the log start offset)
# =============================================================================
# acks=all, as above: an acks=1 write becomes deletable only once it is visible.

def test_kp_delete_records(clients, topic_name):
    admin = clients.kp_admin()
    kp_create_topic(admin, topic_name, 1)
    prod = clients.kp_producer(acks="all")
    for i in range(10):
        prod.send(topic_name, value=b"v%d" % i, partition=0)
    prod.flush(timeout=POLL_TIMEOUT_S)
    tp = KpTP(topic_name, 0)
    result = admin.delete_records({tp: 4}, timeout_ms=10000)
    assert result[tp]["low_watermark"] == 4
    c = clients.kp_consumer()
    assert c.beginning_offsets([tp]) == {tp: 4}
    assert c.end_offsets([tp]) == {tp: 10}
    c.assign([tp])
    c.seek_to_beginning()
    assert [r.offset for r in kp_consume(c, 6)] == list(range(4, 10))


def test_ck_delete_records(clients, topic_name):
    admin = clients.ck_admin()
    ck_create_topic(admin, topic_name, 1)
    prod = clients.ck_producer({"acks": "all"})
    delivery = CkDelivery()
    for i in range(10):
        prod.produce(topic_name, value=b"v%d" % i, partition=0, on_delivery=delivery)
    ck_flush(prod, 10, delivery)
    futs = admin.delete_records([CkTP(topic_name, 0, 4)], request_timeout=10, operation_timeout=10)
    (deleted,) = [f.result(timeout=ADMIN_TIMEOUT_S) for f in futs.values()]
    assert deleted.low_watermark == 4
    c = clients.ck_consumer()
    assert c.get_watermark_offsets(CkTP(topic_name, 0), timeout=10, cached=False) == (4, 10)
    c.assign([CkTP(topic_name, 0, OFFSET_BEGINNING)])
    assert [m.offset() for m in ck_consume(c, 6)] == list(range(4, 10))


# =============================================================================
# manual offset commit with assign() (no group membership)
# =============================================================================

def test_kp_manual_commit(clients, topic_name, group_id):
    kp_create_topic(clients.kp_admin(), topic_name, 2)
    prod = clients.kp_producer(acks="all")
    for i in range(10):
        prod.send(topic_name, value=b"v%d" % i, partition=0)
    prod.flush(timeout=POLL_TIMEOUT_S)
    tp0, tp1 = KpTP(topic_name, 0), KpTP(topic_name, 1)

    a = clients.kp_consumer(group_id=group_id)
    a.assign([tp0, tp1])
    assert a.committed(tp0) is None
    a.seek_to_beginning()
    assert len(kp_consume(a, 10)) == 10
    a.commit({tp0: OffsetAndMetadata(6, "meta-6", -1)})
    assert a.committed(tp0) == 6
    assert a.committed(tp0, metadata=True).metadata == "meta-6"
    assert a.committed(tp1) is None
    a.close(autocommit=False)

    b = clients.kp_consumer(group_id=group_id)
    b.assign([tp0])
    recs = kp_consume(b, 4)
    assert [r.offset for r in recs] == [6, 7, 8, 9], "second member did not resume at committed offset"
    b.commit()  # commit current positions
    assert b.committed(tp0) == 10


def test_ck_manual_commit(clients, topic_name, group_id):
    ck_create_topic(clients.ck_admin(), topic_name, 2)
    prod = clients.ck_producer({"acks": "all"})
    delivery = CkDelivery()
    for i in range(10):
        prod.produce(topic_name, value=b"v%d" % i, partition=0, on_delivery=delivery)
    ck_flush(prod, 10, delivery)

    a = clients.ck_consumer({"group.id": group_id})
    a.assign([CkTP(topic_name, 0, OFFSET_BEGINNING), CkTP(topic_name, 1, OFFSET_BEGINNING)])
    assert len(ck_consume(a, 10)) == 10
    a.commit(offsets=[CkTP(topic_name, 0, 6, metadata="meta-6")], asynchronous=False)
    got = a.committed([CkTP(topic_name, 0), CkTP(topic_name, 1)], timeout=10)
    assert [(t.partition, t.offset) for t in got] == [(0, 6), (1, OFFSET_INVALID)]
    assert got[0].metadata == "meta-6"
    a.close()

    b = clients.ck_consumer({"group.id": group_id})
    b.assign([CkTP(topic_name, 0)])  # no offset: start from the committed one
    msgs = ck_consume(b, 4)
    assert [m.offset() for m in msgs] == [6, 7, 8, 9], "second member did not resume at committed offset"
    b.commit(asynchronous=False)  # commit current positions
    assert b.committed([CkTP(topic_name, 0)], timeout=10)[0].offset == 10


def test_commit_cross_client(clients, topic_name, group_id):
    """Offsets committed by one client library are read by the other (same group)."""
    kp_create_topic(clients.kp_admin(), topic_name, 1)
    prod = clients.kp_producer(acks=1)
    for i in range(5):
        prod.send(topic_name, value=b"v%d" % i, partition=0)
    prod.flush(timeout=POLL_TIMEOUT_S)

    kc = clients.kp_consumer(group_id=group_id)
    tp = KpTP(topic_name, 0)
    kc.assign([tp])
    kc.commit({tp: OffsetAndMetadata(3, "", -1)})

    cc = clients.ck_consumer({"group.id": group_id})
    assert cc.committed([CkTP(topic_name, 0)], timeout=10)[0].offset == 3
    cc.commit(offsets=[CkTP(topic_name, 0, 5)], asynchronous=False)
    assert kc.committed(tp) == 5


# =============================================================================
# errors
# =============================================================================

def test_kp_produce_unknown_partition(clients, topic_name):
    kp_create_topic(clients.kp_admin(), topic_name, 2)
    prod = clients.kp_producer(acks=1)
    t0 = time.monotonic()
    # kafka-python validates the partition against metadata before sending
    with pytest.raises((AssertionError, kp_errors.KafkaError)):
        prod.send(topic_name, value=b"x", partition=5).get(timeout=POLL_TIMEOUT_S)
    assert time.monotonic() - t0 < POLL_TIMEOUT_S + 2


def test_ck_produce_unknown_partition(clients, topic_name):
    ck_create_topic(clients.ck_admin(), topic_name, 2)
    prod = clients.ck_producer({"acks": 1})
    delivery = CkDelivery()
    codes = []
    try:
        prod.produce(topic_name, value=b"x", partition=5, on_delivery=delivery)
        prod.flush(POLL_TIMEOUT_S + 5)
        codes = [err.code() for err, *_ in delivery.reports if err is not None]
        assert delivery.reports, "no delivery report for message to unknown partition"
    except KafkaException as e:  # raised synchronously when metadata is already known
        codes = [e.args[0].code()]
    assert codes and codes[0] in (KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART), codes


def _raw_produce(admin, topic, partition, value=b"raw"):
    """Send a ProduceRequest built by hand (kafka-python protocol structs) and return the
    (error_code, base_offset) for the single partition."""
    version = admin._client.api_version(ProduceRequest, max_version=8)
    builder = MemoryRecordsBuilder(magic=2 if version >= 3 else 1, compression_type=0,
                                   batch_size=1 << 20)
    builder.append(timestamp=int(time.time() * 1000), key=b"k", value=value, headers=[])
    builder.close()
    kwargs = dict(required_acks=1, timeout=10000,
                  topics=[(topic, [(partition, builder.buffer())])])
    if version >= 3:
        kwargs["transactional_id"] = None
    response = admin.send_request(ProduceRequest[version](**kwargs), node_id=NODE_ID)
    (rtopic, parts), = response.topics
    assert rtopic == topic
    (rpart, error_code, base_offset, *_), = parts
    assert rpart == partition
    return error_code, base_offset


def test_wire_produce_unknown_partition(clients, topic_name):
    """Broker-level check (no client-side validation): UNKNOWN_TOPIC_OR_PARTITION (3)."""
    admin = clients.kp_admin()
    kp_create_topic(admin, topic_name, 2)
    assert _raw_produce(admin, topic_name, 0) == (ERR_NONE, 0)
    assert _raw_produce(admin, topic_name, 0) == (ERR_NONE, 1)
    assert _raw_produce(admin, topic_name, 5)[0] == ERR_UNKNOWN_TOPIC_OR_PARTITION
    assert _raw_produce(admin, topic_name, -1)[0] == ERR_UNKNOWN_TOPIC_OR_PARTITION


def test_kp_fetch_offset_out_of_range(clients, topic_name):
    kp_create_topic(clients.kp_admin(), topic_name, 1)
    # acks=all: the offset-3 fetch below must find the high watermark at 3 already.
    prod = clients.kp_producer(acks="all")
    for i in range(3):
        prod.send(topic_name, value=b"v%d" % i, partition=0)
    prod.flush(timeout=POLL_TIMEOUT_S)

    tp = KpTP(topic_name, 0)
    c = clients.kp_consumer(auto_offset_reset="none")
    c.assign([tp])
    # offset == high watermark is in range: empty fetch, no error
    c.seek(tp, 3)
    assert kp_consume(c, 1, timeout=1.5, quiet=0) == []
    # beyond the high watermark: OFFSET_OUT_OF_RANGE surfaces as an exception from poll()
    c.seek(tp, 100)
    with pytest.raises(kp_errors.OffsetOutOfRangeError):
        deadline = time.monotonic() + POLL_TIMEOUT_S
        while time.monotonic() < deadline:
            c.poll(timeout_ms=200)


def test_ck_fetch_offset_out_of_range(clients, topic_name):
    ck_create_topic(clients.ck_admin(), topic_name, 1)
    # acks=all: the offset-3 fetch below must find the high watermark at 3 already.
    prod = clients.ck_producer({"acks": "all"})
    delivery = CkDelivery()
    for i in range(3):
        prod.produce(topic_name, value=b"v%d" % i, partition=0, on_delivery=delivery)
    ck_flush(prod, 3, delivery)

    # offset == high watermark: partition EOF, no error
    c = clients.ck_consumer({"auto.offset.reset": "error", "enable.partition.eof": True})
    c.assign([CkTP(topic_name, 0, 3)])
    deadline = time.monotonic() + POLL_TIMEOUT_S
    eof = False
    while not eof and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        assert m.error() is not None, f"unexpected message at offset {m.offset()}"
        assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
        eof = True
    assert eof, "no partition EOF at the high watermark"

    c2 = clients.ck_consumer({"auto.offset.reset": "error"})
    c2.assign([CkTP(topic_name, 0, 100)])
    deadline = time.monotonic() + POLL_TIMEOUT_S
    err = None
    while err is None and time.monotonic() < deadline:
        m = c2.poll(0.2)
        if m is not None:
            assert m.error() is not None, f"unexpected message at offset {m.offset()}"
            err = m.error()
    assert err is not None, "no error for an out-of-range fetch offset"
    assert err.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE), err


# =============================================================================
# auto topic creation (Metadata with allow_auto_topic_creation)
# =============================================================================

def test_kp_auto_create_topic(clients, topic_name):
    prod = clients.kp_producer(acks=1)
    metas = [prod.send(topic_name, value=b"auto-%d" % i).get(timeout=POLL_TIMEOUT_S) for i in range(3)]
    parts = prod.partitions_for(topic_name)
    assert parts and len(parts) >= 1
    admin = clients.kp_admin()
    assert kp_partition_count(admin, topic_name) == len(parts)
    assert all(m.partition in parts for m in metas)

    c = clients.kp_consumer()
    c.assign([KpTP(topic_name, p) for p in sorted(parts)])
    c.seek_to_beginning()
    assert sorted(r.value for r in kp_consume(c, 3)) == [b"auto-0", b"auto-1", b"auto-2"]


def test_ck_auto_create_topic(clients, topic_name):
    prod = clients.ck_producer({"acks": 1})
    delivery = CkDelivery()
    for i in range(3):
        prod.produce(topic_name, value=b"auto-%d" % i, on_delivery=delivery)
    ck_flush(prod, 3, delivery)
    nparts = ck_partition_count(clients.ck_admin(), topic_name)
    assert nparts and nparts >= 1
    c = clients.ck_consumer()
    c.assign([CkTP(topic_name, p, OFFSET_BEGINNING) for p in range(nparts)])
    assert sorted(m.value() for m in ck_consume(c, 3)) == [b"auto-0", b"auto-1", b"auto-2"]


# =============================================================================
# kcat (system librdkafka)
# =============================================================================

def run_kcat(kcat_bin, broker, args, stdin=None, timeout=30):
    cmd = [kcat_bin, "-b", broker.bootstrap, "-X", "broker.address.family=v4", *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, (f"{cmd} exited {proc.returncode}\nstdout:\n"
                                  f"{proc.stdout.decode(errors='replace')}\nstderr:\n"
                                  f"{proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


@pytest.mark.kcat
def test_kcat_metadata(kcat_bin, broker, clients, topic_name):
    kp_create_topic(clients.kp_admin(), topic_name, 2)
    out = run_kcat(kcat_bin, broker, ["-L", "-m", "10"])
    assert f'topic "{topic_name}" with 2 partitions:' in out, out
    assert f"broker {NODE_ID} at {broker.bootstrap}" in out, out
    out = run_kcat(kcat_bin, broker, ["-L", "-t", topic_name, "-m", "10"])
    assert f'topic "{topic_name}" with 2 partitions:' in out, out
    assert f"partition 0, leader {NODE_ID}," in out and f"partition 1, leader {NODE_ID}," in out, out


@pytest.mark.kcat
def test_kcat_produce_consume(kcat_bin, broker, clients, topic_name):
    kp_create_topic(clients.kp_admin(), topic_name, 1)
    lines = [(f"k{i}", f"value {i} " + "z" * i) for i in range(12)]
    stdin = "".join(f"{k}:{v}\n" for k, v in lines).encode()
    # kcat -P produces with librdkafka's default acks=all, so -C -e below sees every record.
    run_kcat(kcat_bin, broker, ["-P", "-t", topic_name, "-p", "0", "-K:"], stdin=stdin)

    out = run_kcat(kcat_bin, broker, ["-C", "-t", topic_name, "-o", "beginning", "-e", "-q",
                                      "-f", "%p|%o|%k|%s\n"])
    assert out.splitlines() == [f"0|{i}|{k}|{v}" for i, (k, v) in enumerate(lines)]

    # and a different client library reads the same bytes
    c = clients.kp_consumer()
    c.assign([KpTP(topic_name, 0)])
    c.seek_to_beginning()
    recs = kp_consume(c, len(lines))
    assert [(r.offset, r.key, r.value) for r in recs] == \
        [(i, k.encode(), v.encode()) for i, (k, v) in enumerate(lines)]


@pytest.mark.kcat
def test_kcat_consumes_kafka_python_headers(kcat_bin, broker, clients, topic_name):
    kp_create_topic(clients.kp_admin(), topic_name, 1)
    # acks=all: kcat -e stops at the first end of partition it sees, so the records must be
    # visible (below the high watermark) when it starts.
    prod = clients.kp_producer(acks="all", compression_type="gzip", linger_ms=20)
    for i in range(3):
        prod.send(topic_name, key=b"k%d" % i, value=b"v%d" % i, partition=0,
                  headers=[("ha", b"x%d" % i), ("hb", b"y")])
    prod.flush(timeout=POLL_TIMEOUT_S)
    out = run_kcat(kcat_bin, broker, ["-C", "-t", topic_name, "-o", "beginning", "-e", "-q",
                                      "-f", "%o|%k|%s|%h\n"])
    assert out.splitlines() == [f"{i}|k{i}|v{i}|ha=x{i},hb=y" for i in range(3)]


# =============================================================================
# consumer groups with subscribe() (JoinGroup / SyncGroup / Heartbeat / LeaveGroup)
# =============================================================================
# Both libraries, through one adapter (`GroupMember`): subscribe, consume, commit, resume; two
# members split partitions; a member that leaves or is killed hands its partitions over; an
# embedded Thorstream consumer and a librdkafka consumer share a group; kcat -G.

GROUP_SESSION_MS = 6000      # the broker's minimum (Kafka's group.min.session.timeout.ms)
GROUP_WAIT_S = 30.0          # upper bound for any "wait until the group settled" loop
GROUP_KINDS = ["kp", "ck"]


class GroupMember:
    """A subscribed consumer of either library: poll -> [(partition, offset, value)]."""

    def __init__(self, kind, consumer):
        self.kind = kind
        self.c = consumer

    def poll(self, timeout_s=0.2):
        if self.kind == "kp":
            out = []
            for recs in self.c.poll(timeout_ms=int(timeout_s * 1000)).values():
                out.extend((r.partition, r.offset, r.value) for r in recs)
            return out
        out = []
        for m in self.c.consume(num_messages=500, timeout=timeout_s):
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(m.error())
            out.append((m.partition(), m.offset(), m.value()))
        return out

    def assignment(self):
        return {tp.partition for tp in self.c.assignment()}

    def commit(self):
        if self.kind == "kp":
            self.c.commit()
            return
        try:
            self.c.commit(asynchronous=False)
        except KafkaException as e:
            if e.args[0].code() != KafkaError._NO_OFFSET:  # nothing consumed since assignment
                raise

    def committed(self, topic, partitions):
        if self.kind == "kp":
            return {p: self.c.committed(KpTP(topic, p)) for p in partitions}
        got = self.c.committed([CkTP(topic, p) for p in partitions], timeout=10)
        return {t.partition: (None if t.offset == OFFSET_INVALID else t.offset) for t in got}

    def close(self):
        if self.kind == "kp":
            self.c.close(autocommit=False)
        else:
            try:
                self.c.close()
            except RuntimeError:
                pass


def group_member(clients, kind, group_id, topic, **cfg):
    if kind == "kp":
        conf = dict(group_id=group_id, session_timeout_ms=GROUP_SESSION_MS,
                    heartbeat_interval_ms=1000)
        conf.update(cfg)
        c = clients.kp_consumer(**conf)
    else:
        conf = {"group.id": group_id, "session.timeout.ms": GROUP_SESSION_MS,
                "heartbeat.interval.ms": 1000}
        conf.update(cfg)
        c = clients.ck_consumer(conf)
    c.subscribe([topic])
    return GroupMember(kind, c)


def poll_members(members, until, timeout=GROUP_WAIT_S, what="group condition"):
    """Polls every member in turn until `until(records_by_member)` holds; returns the records."""
    got = [[] for _ in members]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i, m in enumerate(members):
            got[i].extend(m.poll(0.1))
        if until(got):
            return got
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; assignments: "
                f"{[sorted(m.assignment()) for m in members]}, records: {[len(g) for g in got]}")


def produce_per_partition(clients, topic, partitions, per_partition, tag):
    prod = clients.kp_producer(acks="all")
    for p in partitions:
        for i in range(per_partition):
            prod.send(topic, value=f"{tag}-{p}-{i}".encode(), partition=p)
    prod.flush(timeout=POLL_TIMEOUT_S)


def assert_split(members, partitions):
    owned = [m.assignment() for m in members]
    assert all(owned), f"a member owns nothing: {owned}"
    assert set().union(*owned) == set(partitions), owned
    assert sum(len(o) for o in owned) == len(partitions), f"overlap: {owned}"


@pytest.mark.parametrize("kind", GROUP_KINDS)
def test_group_subscribe_consume_commit_resume(clients, topic_name, group_id, kind):
    kp_create_topic(clients.kp_admin(), topic_name, 2)
    produce_per_partition(clients, topic_name, [0, 1], 5, "first")
    a = group_member(clients, kind, group_id, topic_name)
    [got] = poll_members([a], lambda g: len(g[0]) >= 10, what="10 records")
    assert sorted((p, o) for p, o, _ in got) == [(p, o) for p in (0, 1) for o in range(5)]
    assert a.assignment() == {0, 1}, "a lone member gets every partition"
    a.commit()
    assert a.committed(topic_name, [0, 1]) == {0: 5, 1: 5}
    a.close()

    produce_per_partition(clients, topic_name, [0, 1], 2, "second")
    b = group_member(clients, kind, group_id, topic_name)
    [got] = poll_members([b], lambda g: len(g[0]) >= 4, what="4 new records")
    got.extend(b.poll(QUIET_POLL_S))  # nothing more may arrive
    assert sorted((p, o) for p, o, _ in got) == [(0, 5), (0, 6), (1, 5), (1, 6)], \
        "the new member did not resume from the committed offsets"


@pytest.mark.parametrize("kind", GROUP_KINDS)
def test_group_auto_commit_persists_positions(clients, topic_name, group_id, kind):
    kp_create_topic(clients.kp_admin(), topic_name, 1)
    produce_per_partition(clients, topic_name, [0], 6, "auto")
    cfg = ({"enable_auto_commit": True, "auto_commit_interval_ms": 100} if kind == "kp"
           else {"enable.auto.commit": True, "auto.commit.interval.ms": 100})
    a = group_member(clients, kind, group_id, topic_name, **cfg)
    poll_members([a], lambda g: len(g[0]) >= 6, what="6 records")
    wait_until(lambda: (a.poll(0.1) or True) and a.committed(topic_name, [0])[0] == 6,
               timeout=15, what="auto commit of offset 6")


@pytest.mark.parametrize("kind,strategy", [("kp", None), ("ck", None), ("ck", "cooperative-sticky")])
def test_group_two_members_split_partitions_exactly_once(clients, topic_name, group_id, kind,
                                                          strategy):
    kp_create_topic(clients.kp_admin(), topic_name, 4)
    cfg = {"partition.assignment.strategy": strategy} if strategy else {}
    a = group_member(clients, kind, group_id, topic_name, **cfg)
    poll_members([a], lambda g: a.assignment() == {0, 1, 2, 3}, what="a lone member with 4 partitions")
    b = group_member(clients, kind, group_id, topic_name, **cfg)
    poll_members([a, b], lambda g: len(a.assignment()) == 2 and len(b.assignment()) == 2,
                 what="2 + 2 partitions")
    assert_split([a, b], range(4))

    produce_per_partition(clients, topic_name, range(4), 10, "split")
    got = poll_members([a, b], lambda g: len(g[0]) + len(g[1]) >= 40, what="40 records")
    for m, recs in zip([a, b], got):
        recs.extend(m.poll(QUIET_POLL_S))
        assert {p for p, _, _ in recs} <= m.assignment(), "a record from a partition not owned"
    keys = [(p, o) for recs in got for p, o, _ in recs]
    assert len(keys) == 40 and len(set(keys)) == 40, "records lost or consumed twice"
    assert sorted(keys) == [(p, o) for p in range(4) for o in range(10)]


@pytest.mark.parametrize("kind", GROUP_KINDS)
def test_group_member_leaving_hands_over_from_committed_offsets(clients, topic_name, group_id,
                                                                kind):
    kp_create_topic(clients.kp_admin(), topic_name, 4)
    a = group_member(clients, kind, group_id, topic_name)
    b = group_member(clients, kind, group_id, topic_name)
    poll_members([a, b], lambda g: len(a.assignment()) == 2 and len(b.assignment()) == 2,
                 what="a 2 + 2 split")
    assert_split([a, b], range(4))
    produce_per_partition(clients, topic_name, range(4), 5, "before")
    got = poll_members([a, b], lambda g: len(g[0]) + len(g[1]) >= 20, what="20 records")
    a.commit()
    b.commit()
    b_parts = b.assignment()
    b.close()  # LeaveGroup: no need to wait for the session timeout
    left = time.monotonic()
    poll_members([a], lambda g: a.assignment() == {0, 1, 2, 3}, timeout=GROUP_WAIT_S,
                 what="the remaining member to own all partitions")
    assert time.monotonic() - left < GROUP_SESSION_MS / 1000, "takeover waited for a timeout"
    produce_per_partition(clients, topic_name, sorted(b_parts), 3, "after")
    [more] = poll_members([a], lambda g: len(g[0]) >= 6, what="records of the taken-over partitions")
    more.extend(a.poll(QUIET_POLL_S))
    assert sorted((p, o) for p, o, _ in more) == [(p, o) for p in sorted(b_parts) for o in (5, 6, 7)], \
        "taken-over partitions must resume at the leaver's commits"
    assert len(got[0]) + len(got[1]) == 20


KILLABLE_MEMBER = r"""
import sys
kind, bootstrap, group, topic, session_ms = sys.argv[1:6]
if kind == "ck":
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "broker.address.family": "v4",
                  "session.timeout.ms": int(session_ms), "heartbeat.interval.ms": 1000,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    poll = lambda: c.poll(0.1)
else:
    from kafka import KafkaConsumer
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                      session_timeout_ms=int(session_ms), heartbeat_interval_ms=1000,
                      enable_auto_commit=False, auto_offset_reset="earliest")
    poll = lambda: c.poll(timeout_ms=100)
shown = None
while True:
    poll()
    owned = sorted(tp.partition for tp in c.assignment())
    if owned != shown:
        print("assigned " + ",".join(map(str, owned)), flush=True)
        shown = owned
"""


class LineReader:
    """Collects a subprocess's stdout lines on a thread."""

    def __init__(self, proc):
        import queue
        import threading
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._run, args=(proc,), daemon=True).start()

    def _run(self, proc):
        for line in proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def drain(self):
        import queue
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return self.seen

    def last_assignment(self):
        owned = [l for l in self.drain() if l.startswith("assigned")]
        if not owned:
            return None
        text = owned[-1][len("assigned"):].strip()
        return {int(p) for p in text.split(",")} if text else set()


@pytest.mark.parametrize("kind", GROUP_KINDS)
def test_group_killed_member_partitions_move_within_the_session_timeout(
        broker, clients, topic_name, group_id, kind):
    import signal
    import sys
    kp_create_topic(clients.kp_admin(), topic_name, 4)
    a = group_member(clients, kind, group_id, topic_name)
    poll_members([a], lambda g: a.assignment() == {0, 1, 2, 3}, what="a lone member")
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE_MEMBER, kind, broker.bootstrap,
                             group_id, topic_name, str(GROUP_SESSION_MS)],
                            stdout=subprocess.PIPE, text=True)
    try:
        reader = LineReader(proc)
        poll_members([a], lambda g: len(a.assignment()) == 2
                     and reader.last_assignment() == {0, 1, 2, 3} - a.assignment(),
                     what="the subprocess member to own the other 2 partitions")
        victim = reader.last_assignment()
        proc.send_signal(signal.SIGKILL)  # no LeaveGroup: only the session timeout notices
        proc.wait(timeout=10)
        killed = time.monotonic()
        poll_members([a], lambda g: a.assignment() == {0, 1, 2, 3}, timeout=GROUP_WAIT_S,
                     what="the survivor to take over the killed member's partitions")
        took = time.monotonic() - killed
        # Session timeout, plus up to one housekeeping tick and one heartbeat interval to rejoin.
        assert took < GROUP_SESSION_MS / 1000 + 5, f"takeover took {took:.1f}s"
        produce_per_partition(clients, topic_name, sorted(victim), 2, "orphan")
        [got] = poll_members([a], lambda g: len(g[0]) >= 4, what="records of the taken-over partitions")
        assert {p for p, _, _ in got} == victim
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_kp_admin_describe_list_and_delete_groups(clients, topic_name, group_id):
    kp_create_topic(clients.kp_admin(), topic_name, 2)
    a = group_member(clients, "kp", group_id, topic_name)
    poll_members([a], lambda g: a.assignment() == {0, 1}, what="assignment")
    admin = clients.kp_admin()
    assert dict(admin.list_consumer_groups()).get(group_id) == "consumer"
    [desc] = admin.describe_consumer_groups([group_id])
    assert (desc.state, desc.protocol_type, desc.protocol) == ("Stable", "consumer", "range")
    [member] = desc.members
    assert member.client_id == "compat-kp-consumer"
    assert {tp.partition for tp in member.member_assignment.partitions()} == {0, 1}
    assert list(member.member_metadata.topics) == [topic_name]
    # A group with members cannot be deleted (NON_EMPTY_GROUP); once empty it can.
    [(_, error)] = admin.delete_consumer_groups([group_id])
    assert error is kp_errors.NonEmptyGroupError
    a.commit()
    a.close()
    [(_, error)] = admin.delete_consumer_groups([group_id])
    assert error is kp_errors.NoError
    assert group_id not in dict(admin.list_consumer_groups())
    assert admin.list_consumer_group_offsets(group_id) == {}


def test_ck_admin_describe_and_list_groups(clients, topic_name, group_id):
    ck_create_topic(clients.ck_admin(), topic_name, 2)
    a = group_member(clients, "ck", group_id, topic_name)
    poll_members([a], lambda g: a.assignment() == {0, 1}, what="assignment")
    admin = clients.ck_admin()
    listed = admin.list_consumer_groups(request_timeout=10).result(timeout=ADMIN_TIMEOUT_S)
    assert group_id in {g.group_id for g in listed.valid}, listed.valid
    desc = admin.describe_consumer_groups([group_id], request_timeout=10)[group_id].result(
        timeout=ADMIN_TIMEOUT_S)
    assert desc.state.name == "STABLE" and desc.partition_assignor == "range"
    [member] = desc.members
    assert {tp.partition for tp in member.assignment.topic_partitions} == {0, 1}


@pytest.mark.kcat
def test_kcat_balanced_consumer_group(kcat_bin, broker, clients, topic_name, group_id):
    kp_create_topic(clients.kp_admin(), topic_name, 2)
    produce_per_partition(clients, topic_name, [0, 1], 3, "kcat")
    out = run_kcat(kcat_bin, broker, ["-G", group_id, "-o", "beginning", "-e", "-q",
                                      "-X", "enable.auto.commit=true",
                                      "-f", "%p|%o|%s\n", topic_name], timeout=60)
    assert sorted(out.splitlines()) == sorted(f"{p}|{i}|kcat-{p}-{i}" for p in (0, 1) for i in range(3))


# ---- an embedded Thorstream consumer and a librdkafka consumer in one group ---------------

def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def group_consumer_example():
    """examples/group_consumer.rs, built in release (the embedded member under test)."""
    import shutil
    from conftest import REPO_ROOT, _target_dir
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo not on PATH: cannot build examples/group_consumer.rs")
    proc = subprocess.run([cargo, "build", "--release", "--example", "group_consumer"],
                          cwd=REPO_ROOT, timeout=900)
    assert proc.returncode == 0, "cargo build --example group_consumer failed"
    return _target_dir() / "release" / "examples" / "group_consumer"


@pytest.mark.timeout(900)  # includes building the example on a cold cache
def test_group_embedded_consumer_and_librdkafka_share_a_group(group_consumer_example, tmp_path):
    import signal
    from confluent_kafka import Consumer as CkConsumer
    from confluent_kafka import Producer as CkProducer
    bootstrap = f"127.0.0.1:{_free_port()}"
    topic, group = "shared", "mixed"
    proc = subprocess.Popen([str(group_consumer_example), "--serve", bootstrap,
                             "--data-dir", str(tmp_path / "data"), "--topic", topic,
                             "--partitions", "4", "--group", group,
                             "--session-timeout-ms", str(GROUP_SESSION_MS)],
                            stdout=subprocess.PIPE, text=True)
    ck = None
    try:
        embedded = LineReader(proc)
        wait_until(lambda: embedded.last_assignment() == {0, 1, 2, 3}, timeout=GROUP_WAIT_S,
                   what="the embedded member to own every partition")
        ck = CkConsumer(dict(CK_COMMON_FOR_EXAMPLE, **{
            "bootstrap.servers": bootstrap, "group.id": group,
            "session.timeout.ms": GROUP_SESSION_MS, "heartbeat.interval.ms": 1000}))
        ck.subscribe([topic])
        member = GroupMember("ck", ck)
        poll_members([member], lambda g: len(member.assignment()) == 2
                     and embedded.last_assignment() == {0, 1, 2, 3} - member.assignment(),
                     what="a 2 + 2 split between the embedded and the librdkafka member")

        prod = CkProducer({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
        for p in range(4):
            for i in range(10):
                prod.produce(topic, value=f"mixed-{p}-{i}".encode(), partition=p)
        assert prod.flush(15) == 0

        def embedded_records():
            return [tuple(l.split(" ", 3)[1:]) for l in embedded.drain() if l.startswith("record ")]

        [mine] = poll_members([member], lambda g: len(g[0]) + len(embedded_records()) >= 40,
                              what="40 records between the two members")
        mine.extend(member.poll(QUIET_POLL_S))
        theirs = [(int(p), int(o), v.encode()) for p, o, v in embedded_records()]
        assert {p for p, _, _ in mine} == member.assignment()
        assert {p for p, _, _ in theirs} == {0, 1, 2, 3} - member.assignment()
        keys = [(p, o) for p, o, _ in mine + theirs]
        assert sorted(keys) == [(p, o) for p in range(4) for o in range(10)], \
            "each record exactly once"

        ck.close()  # LeaveGroup: the embedded member takes everything back
        ck = None
        wait_until(lambda: embedded.last_assignment() == {0, 1, 2, 3}, timeout=GROUP_WAIT_S,
                   what="the embedded member to own every partition again")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "stopped cleanly" in embedded.drain()
    finally:
        if ck is not None:
            ck.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


CK_COMMON_FOR_EXAMPLE = {
    "broker.address.family": "v4",
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "socket.timeout.ms": 10000,
}


# =============================================================================
# broker restart (keep LAST: these restart the shared session broker)
# =============================================================================

@pytest.mark.restart
def test_restart_persists_data_topics_and_offsets(broker, clients, make_topic_name, group_id):
    topic = make_topic_name("data")
    gone = make_topic_name("deleted")
    admin = clients.kp_admin()
    kp_create_topic(admin, topic, 3)
    kp_create_topic(admin, gone, 1)
    admin.delete_topics([gone], timeout_ms=10000)
    wait_until(lambda: gone not in kp_topic_names(admin), what="deleted topic gone")

    base = now_ms_rounded()
    prod = clients.kp_producer(acks="all", compression_type="gzip", linger_ms=20)
    for i in range(10):
        prod.send(topic, key=b"k%d" % i, value=b"kp-%d" % i, partition=0,
                  headers=[("i", str(i).encode())], timestamp_ms=base + i)
    for i in range(5):
        prod.send(topic, key=None, value=b"kp1-%d" % i, partition=1, timestamp_ms=base + 100 + i)
    prod.flush(timeout=POLL_TIMEOUT_S)
    ckp = clients.ck_producer({"acks": "all", "compression.type": "zstd"})
    delivery = CkDelivery()
    for i in range(4):
        ckp.produce(topic, key=b"c%d" % i, value=b"ck-%d" % i, partition=1,
                    headers=[("c", b"1")], timestamp=base + 200 + i, on_delivery=delivery)
    ck_flush(ckp, 4, delivery)
    # partition 2 stays empty

    tps = [KpTP(topic, p) for p in range(3)]
    kc = clients.kp_consumer(group_id=group_id)
    kc.assign(tps)
    kc.seek_to_beginning()
    before = kp_rows(kp_consume(kc, 19))
    assert len(before) == 19
    kc.commit({tps[0]: OffsetAndMetadata(7, "m0", -1), tps[1]: OffsetAndMetadata(2, "m1", -1)})
    ck_group = group_id + "-ck"
    cc = clients.ck_consumer({"group.id": ck_group})
    cc.commit(offsets=[CkTP(topic, 1, 9)], asynchronous=False)
    clients.close_all()

    broker.restart()

    admin = clients.kp_admin()
    assert kp_partition_count(admin, topic) == 3
    assert gone not in kp_topic_names(admin), "deleted topic came back after restart"

    kc = clients.kp_consumer(group_id=group_id)
    assert kc.end_offsets(tps) == {tps[0]: 10, tps[1]: 9, tps[2]: 0}
    assert kc.beginning_offsets(tps) == {tps[0]: 0, tps[1]: 0, tps[2]: 0}
    assert kc.committed(tps[0]) == 7 and kc.committed(tps[1]) == 2 and kc.committed(tps[2]) is None
    assert kc.committed(tps[0], metadata=True).metadata == "m0"
    kc.assign(tps)
    kc.seek_to_beginning()
    assert kp_rows(kp_consume(kc, 19)) == before

    cc = clients.ck_consumer({"group.id": ck_group})
    got = cc.committed([CkTP(topic, 1)], timeout=10)
    assert got[0].offset == 9
    cc.assign([CkTP(topic, p, OFFSET_BEGINNING) for p in range(3)])
    assert ck_rows(ck_consume(cc, 19)) == before

    # resume from committed offsets after restart (group of the kafka-python commit)
    resume = clients.ck_consumer({"group.id": group_id})
    resume.assign([CkTP(topic, 0)])
    assert [m.offset() for m in ck_consume(resume, 3)] == [7, 8, 9]

    # appends continue at the old log end offset
    prod = clients.kp_producer(acks="all")
    meta = prod.send(topic, value=b"after", partition=0).get(timeout=POLL_TIMEOUT_S)
    assert meta.offset == 10


@pytest.mark.restart
def test_restart_long_lived_clients_reconnect(broker, clients, topic_name):
    """Producers created before a restart keep working after it (client reconnect path)."""
    kp_create_topic(clients.kp_admin(), topic_name, 1)
    kprod = clients.kp_producer(acks=1)
    cprod = clients.ck_producer({"acks": 1})
    assert kprod.send(topic_name, value=b"kp-before", partition=0).get(timeout=POLL_TIMEOUT_S).offset == 0
    delivery = CkDelivery()
    cprod.produce(topic_name, value=b"ck-before", partition=0, on_delivery=delivery)
    ck_flush(cprod, 1, delivery)
    assert delivery.reports[0][2] == 1

    broker.restart()

    assert kprod.send(topic_name, value=b"kp-after", partition=0).get(timeout=POLL_TIMEOUT_S + 10).offset == 2
    delivery = CkDelivery()
    cprod.produce(topic_name, value=b"ck-after", partition=0, on_delivery=delivery)
    ck_flush(cprod, 1, delivery, timeout=POLL_TIMEOUT_S + 10)
    assert delivery.reports[0][2] == 3

    c = clients.kp_consumer()
    c.assign([KpTP(topic_name, 0)])
    c.seek_to_beginning()
    assert [(r.offset, r.value) for r in kp_consume(c, 4)] == \
        [(0, b"kp-before"), (1, b"ck-before"), (2, b"kp-after"), (3, b"ck-after")]
