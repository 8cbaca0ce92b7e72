"""Topic and broker configs over the wire, with real clients: creation with Kafka's configs,
DescribeConfigs (values, sources, synonyms), IncrementalAlterConfigs and AlterConfigs on live
topics and on the broker's dynamic defaults, validate_only, Kafka's INVALID_CONFIG messages,
and the configs that change what is stored: compression.type (recompression),
message.timestamp.type=LogAppendTime, timestamp bounds (INVALID_TIMESTAMP) and
min.insync.replicas (capped at the one replica, as Kafka 3.7+). The restart test runs its own
broker.
"""
import os
import socket
import struct
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as CkTP
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, TIMESTAMP_CREATE_TIME
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewTopic, ResourceType)
from kafka import errors as kp_errors
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType as KpConfigResourceType

from conftest import Broker, Clients, HOST, wait_until

TIMEOUT_S = 15


def create(clients, name, config=None, partitions=1):
    admin = clients.ck_admin()
    fs = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})],
                             request_timeout=TIMEOUT_S)
    fs[name].result(timeout=TIMEOUT_S)
    return admin


def describe(admin, rtype, name):
    res = ConfigResource(rtype, name)
    return admin.describe_configs([res], request_timeout=TIMEOUT_S)[res].result(timeout=TIMEOUT_S)


def incremental(admin, rtype, name, ops, validate_only=False):
    """ops: [(config, value, AlterConfigOpType)]. Returns the future's result or raises."""
    res = ConfigResource(rtype, name, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=op) for k, v, op in ops])
    fs = admin.incremental_alter_configs([res], request_timeout=TIMEOUT_S,
                                         validate_only=validate_only)
    return fs[res].result(timeout=TIMEOUT_S)


def kafka_error(excinfo):
    return excinfo.value.args[0]


def first_batch_attributes(data_dir, topic):
    """Attributes and max timestamp of the first stored batch of `topic`-0 (read from its file:
    RecordBatch v2 header, attributes at byte 21, maxTimestamp at 35)."""
    log = Path(data_dir) / f"{topic}-0" / "00000000000000000000.log"
    head = log.read_bytes()[:61]
    assert len(head) == 61, f"{log} holds no batch"
    (attributes,) = struct.unpack(">h", head[21:23])
    (max_ts,) = struct.unpack(">q", head[35:43])
    return attributes, max_ts


# =============================================================================
# creation and DescribeConfigs
# =============================================================================

def test_kafka_topic_configs_are_accepted_and_described_with_sources(clients, topic_name):
    admin = create(clients, topic_name, {
        "cleanup.policy": "compact,delete", "compression.type": "zstd",
        "message.timestamp.type": "LogAppendTime", "min.insync.replicas": "1",
        "retention.ms": "3600000", "segment.bytes": "1048576", "max.message.bytes": "2000000",
        "unclean.leader.election.enable": "false", "preallocate": "false"})
    cfg = describe(admin, ResourceType.TOPIC, topic_name)
    assert cfg["cleanup.policy"].value == "compact,delete"
    assert cfg["compression.type"].value == "zstd"
    assert cfg["message.timestamp.type"].value == "LogAppendTime"
    assert cfg["retention.ms"].value == "3600000"
    assert cfg["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["segment.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert cfg["segment.ms"].value == "604800000"
    assert cfg["max.compaction.lag.ms"].value == "9223372036854775807"
    # Synonyms as Kafka reports them: the topic's own value, then the broker's default.
    syn = [(s.name, s.value, s.source) for s in cfg["retention.ms"].synonyms.values()]
    assert syn[0] == ("retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert ("log.retention.hours", "168", ConfigSource.DEFAULT_CONFIG.value) in syn


def test_describe_configs_filters_keys_with_kafka_python(clients, topic_name):
    create(clients, topic_name, {"retention.ms": "5000"})
    admin = clients.kp_admin()
    resp = admin.describe_configs([KpConfigResource(KpConfigResourceType.TOPIC, topic_name,
                                                    configs={"retention.ms": None,
                                                             "segment.bytes": None})])
    resources = [r for x in resp for r in x.resources]
    error_code, _msg, _rtype, rname, entries = resources[0][:5]
    assert (error_code, rname) == (0, topic_name)
    by_name = {e[0]: e[1] for e in entries}
    assert by_name == {"retention.ms": "5000", "segment.bytes": "1073741824"}


@pytest.mark.parametrize("config,message", [
    ({"retention.ms": "soon"},
     "Invalid value soon for configuration retention.ms: Not a number of type LONG"),
    ({"segment.bytes": "13"},
     "Invalid value 13 for configuration segment.bytes: Value must be at least 14"),
    ({"cleanup.policy": "forever"},
     "Invalid value forever for configuration cleanup.policy: String must be one of: compact, "
     "delete"),
    ({"retention.mss": "1"}, "Unknown topic config name: retention.mss"),
    ({"remote.storage.enable": "true"},
     "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with "
     "remote log storage."),
])
def test_invalid_topic_configs_are_refused_with_kafkas_message(clients, topic_name, config,
                                                               message):
    admin = clients.ck_admin()
    fs = admin.create_topics([NewTopic(topic_name, 1, 1, config=config)],
                             request_timeout=TIMEOUT_S)
    with pytest.raises(KafkaException) as e:
        fs[topic_name].result(timeout=TIMEOUT_S)
    assert kafka_error(e).code() == KafkaError.INVALID_CONFIG
    assert message in kafka_error(e).str()
    assert topic_name not in admin.list_topics(timeout=TIMEOUT_S).topics


# =============================================================================
# IncrementalAlterConfigs / AlterConfigs on live topics
# =============================================================================

def test_incremental_alter_segment_bytes_rolls_the_live_topic(clients, broker, topic_name):
    admin = create(clients, topic_name)
    incremental(admin, ResourceType.TOPIC, topic_name,
                [("segment.bytes", "4096", AlterConfigOpType.SET)])
    assert describe(admin, ResourceType.TOPIC, topic_name)["segment.bytes"].value == "4096"
    producer = clients.ck_producer({"linger.ms": 0, "batch.size": 2000})
    for i in range(40):
        producer.produce(topic_name, value=b"x" * 1000, partition=0)
        producer.flush(TIMEOUT_S)
    logs = sorted((Path(broker.data_dir) / f"{topic_name}-0").glob("*.log"))
    assert len(logs) >= 5, f"no roll at the new segment.bytes: {logs}"
    # And retention by size, set live, deletes the old segments (housekeeping, within seconds).
    incremental(admin, ResourceType.TOPIC, topic_name,
                [("retention.bytes", "8192", AlterConfigOpType.SET)])
    consumer = clients.ck_consumer()
    wait_until(lambda: consumer.get_watermark_offsets(CkTP(topic_name, 0),
                                                      timeout=TIMEOUT_S)[0] > 0,
               what="retention to move the log start offset")


def test_validate_only_changes_nothing(clients, topic_name):
    admin = create(clients, topic_name, {"retention.ms": "5000"})
    incremental(admin, ResourceType.TOPIC, topic_name,
                [("retention.ms", "9000", AlterConfigOpType.SET),
                 ("cleanup.policy", "compact", AlterConfigOpType.SET)], validate_only=True)
    cfg = describe(admin, ResourceType.TOPIC, topic_name)
    assert (cfg["retention.ms"].value, cfg["cleanup.policy"].value) == ("5000", "delete")
    # An invalid change with validate_only answers as the real call would.
    with pytest.raises(KafkaException) as e:
        incremental(admin, ResourceType.TOPIC, topic_name,
                    [("retention.ms", "-2", AlterConfigOpType.SET)], validate_only=True)
    assert kafka_error(e).code() == KafkaError.INVALID_CONFIG


def test_invalid_alter_is_refused_and_leaves_the_config(clients, topic_name):
    admin = create(clients, topic_name)
    for ops, code in [
        ([("segment.ms", "0", AlterConfigOpType.SET)], KafkaError.INVALID_CONFIG),
        ([("nope.config", "1", AlterConfigOpType.SET)], KafkaError.INVALID_CONFIG),
        ([("retention.ms", "5", AlterConfigOpType.APPEND)], KafkaError.INVALID_CONFIG),
    ]:
        with pytest.raises(KafkaException) as e:
            incremental(admin, ResourceType.TOPIC, topic_name, ops)
        assert kafka_error(e).code() == code, ops
    assert describe(admin, ResourceType.TOPIC, topic_name)["segment.ms"].value == "604800000"


def test_append_and_subtract_cleanup_policy(clients, topic_name):
    admin = create(clients, topic_name)
    incremental(admin, ResourceType.TOPIC, topic_name,
                [("cleanup.policy", "compact", AlterConfigOpType.APPEND)])
    assert describe(admin, ResourceType.TOPIC, topic_name)["cleanup.policy"].value == \
        "delete,compact"
    incremental(admin, ResourceType.TOPIC, topic_name,
                [("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT)])
    cfg = describe(admin, ResourceType.TOPIC, topic_name)
    assert cfg["cleanup.policy"].value == "compact"
    incremental(admin, ResourceType.TOPIC, topic_name,
                [("cleanup.policy", None, AlterConfigOpType.DELETE)])
    cfg = describe(admin, ResourceType.TOPIC, topic_name)
    assert (cfg["cleanup.policy"].value, cfg["cleanup.policy"].source) == \
        ("delete", ConfigSource.DEFAULT_CONFIG.value)


def test_kafka_python_alter_configs_replaces_the_whole_set(clients, topic_name):
    create(clients, topic_name, {"segment.bytes": "65536", "retention.ms": "1000"})
    admin = clients.kp_admin()
    resp = admin.alter_configs([KpConfigResource(KpConfigResourceType.TOPIC, topic_name,
                                                 configs={"retention.ms": "7000"})])
    assert [r[0] for r in resp.resources] == [0]
    cfg = describe(clients.ck_admin(), ResourceType.TOPIC, topic_name)
    assert cfg["retention.ms"].value == "7000"
    assert (cfg["segment.bytes"].value, cfg["segment.bytes"].source) == \
        ("1073741824", ConfigSource.DEFAULT_CONFIG.value)


def kp_set_cluster_default(kp, configs):
    resp = kp.alter_configs([KpConfigResource(KpConfigResourceType.BROKER, "", configs=configs)])
    assert [r[0] for r in resp.resources] == [0], resp


def test_broker_dynamic_default_is_followed_by_topics_without_their_own(clients, topic_name,
                                                                       make_topic_name):
    own = make_topic_name("own")
    admin = create(clients, topic_name)
    create(clients, own, {"retention.ms": "1000"})
    kp = clients.kp_admin()
    try:
        # The cluster-wide default (resource name ""; librdkafka refuses an empty name, so
        # kafka-python's AlterConfigs, which replaces the scope's whole set).
        kp_set_cluster_default(kp, {"log.retention.ms": "1234567890"})
        cfg = describe(admin, ResourceType.TOPIC, topic_name)["retention.ms"]
        assert (cfg.value, cfg.source) == \
            ("1234567890", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
        assert describe(admin, ResourceType.TOPIC, own)["retention.ms"].value == "1000"
        b = describe(admin, ResourceType.BROKER, "1")
        assert b["log.retention.ms"].value == "1234567890"
        assert b["log.dirs"].is_read_only
        # The node's own setting wins over the cluster default.
        incremental(admin, ResourceType.BROKER, "1",
                    [("log.retention.ms", "1234567891", AlterConfigOpType.SET)])
        cfg = describe(admin, ResourceType.TOPIC, topic_name)["retention.ms"]
        assert (cfg.value, cfg.source) == ("1234567891", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
        with pytest.raises(KafkaException) as e:
            incremental(admin, ResourceType.BROKER, "1",
                        [("log.dirs", "/elsewhere", AlterConfigOpType.SET)])
        assert kafka_error(e).code() == KafkaError.INVALID_REQUEST
        assert "Cannot update these configs dynamically" in kafka_error(e).str()
    finally:
        incremental(admin, ResourceType.BROKER, "1",
                    [("log.retention.ms", None, AlterConfigOpType.DELETE)])
        kp_set_cluster_default(kp, {})
    cfg = describe(admin, ResourceType.TOPIC, topic_name)["retention.ms"]
    assert (cfg.value, cfg.source) == ("604800000", ConfigSource.DEFAULT_CONFIG.value)


# =============================================================================
# configs that change what is stored
# =============================================================================

@pytest.mark.parametrize("codec", ["gzip", "none", "lz4"])
def test_a_zstd_topic_stores_zstd_whatever_the_producer_sent(clients, broker, topic_name, codec):
    create(clients, topic_name, {"compression.type": "zstd"})
    producer = clients.ck_producer({"compression.type": codec, "linger.ms": 50})
    values = [f"value-{i}".encode() * 20 for i in range(50)]
    for v in values:
        producer.produce(topic_name, value=v, key=b"k", partition=0)
    assert producer.flush(TIMEOUT_S) == 0
    attributes, _ = first_batch_attributes(broker.data_dir, topic_name)
    assert attributes & 0x07 == 4, f"stored codec {attributes & 7}, not zstd"
    consumer = clients.ck_consumer()
    consumer.assign([CkTP(topic_name, 0, 0)])
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < len(values) and time.monotonic() < deadline:
        m = consumer.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value())
    assert got == values
    kp = clients.kp_consumer()
    from kafka import TopicPartition
    kp.assign([TopicPartition(topic_name, 0)])
    kp.seek_to_beginning()
    kp_got = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(kp_got) < len(values) and time.monotonic() < deadline:
        for recs in kp.poll(timeout_ms=1000).values():
            kp_got.extend(r.value for r in recs)
    assert kp_got == values


def test_log_append_time_topics_carry_the_brokers_timestamps(clients, broker, topic_name):
    create(clients, topic_name, {"message.timestamp.type": "LogAppendTime"})
    producer = clients.ck_producer({"linger.ms": 0})
    before_ms = int(time.time() * 1000)
    producer.produce(topic_name, value=b"old", timestamp=1000, partition=0)
    assert producer.flush(TIMEOUT_S) == 0
    after_ms = int(time.time() * 1000)
    attributes, max_ts = first_batch_attributes(broker.data_dir, topic_name)
    assert attributes & 0x08, "timestamp type bit not set"
    assert before_ms - 1000 <= max_ts <= after_ms + 1000
    consumer = clients.ck_consumer()
    consumer.assign([CkTP(topic_name, 0, 0)])
    m = wait_until(lambda: (lambda m: m if m is not None and m.error() is None else None)(
        consumer.poll(0.5)), what="the record")
    ts_type, ts = m.timestamp()
    assert ts_type == TIMESTAMP_LOG_APPEND_TIME
    assert ts == max_ts
    # kafka-python sees the same.
    kp = clients.kp_consumer()
    from kafka import TopicPartition
    kp.assign([TopicPartition(topic_name, 0)])
    kp.seek_to_beginning()
    recs = wait_until(lambda: [r for rs in kp.poll(timeout_ms=500).values() for r in rs],
                      what="the record (kafka-python)")
    assert (recs[0].timestamp_type, recs[0].timestamp) == (1, max_ts)
    # The Produce response's log_append_time_ms reaches the producer (kafka-python reports it
    # as the record's timestamp).
    md = clients.kp_producer(acks=1).send(topic_name, value=b"new", timestamp_ms=1000,
                                          partition=0).get(timeout=TIMEOUT_S)
    assert md.timestamp >= max_ts, md


def test_create_time_out_of_bounds_is_refused_with_invalid_timestamp(clients, topic_name):
    create(clients, topic_name, {"message.timestamp.before.max.ms": "60000",
                                 "message.timestamp.after.max.ms": "60000"})
    producer = clients.kp_producer(acks=1, retries=0)
    now = int(time.time() * 1000)
    for ts in (now - 3_600_000, now + 3_600_000):
        with pytest.raises(kp_errors.InvalidTimestampError):
            producer.send(topic_name, value=b"x", timestamp_ms=ts, partition=0).get(
                timeout=TIMEOUT_S)
    md = producer.send(topic_name, value=b"ok", timestamp_ms=now, partition=0).get(
        timeout=TIMEOUT_S)
    assert md.offset == 0


def test_min_insync_replicas_above_the_replica_count_does_not_refuse_acks_all(clients,
                                                                             topic_name):
    # Kafka (3.7+, KAFKA-15583) caps min.insync.replicas at the replication factor: a topic
    # with one replica and min.insync.replicas=2 takes acks=all writes.
    admin = create(clients, topic_name, {"min.insync.replicas": "2"})
    assert describe(admin, ResourceType.TOPIC, topic_name)["min.insync.replicas"].value == "2"
    strict = clients.kp_producer(acks="all", retries=0)
    assert strict.send(topic_name, value=b"x", partition=0).get(timeout=TIMEOUT_S).offset == 0


# =============================================================================
# persistence across a restart (own broker)
# =============================================================================

def free_port():
    env = os.environ.get("THORSTREAM_CONFIGS_TEST_PORT")
    if env:
        return int(env)
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def test_altered_configs_survive_a_restart(broker_binary, tmp_path, request):
    b = Broker(broker_binary, tmp_path / "data", tmp_path / "broker.log", port=free_port())
    b.start()
    clients = Clients(b.bootstrap, request.node.name)
    try:
        admin = create(clients, "persisted", {"segment.bytes": "65536"})
        incremental(admin, ResourceType.TOPIC, "persisted",
                    [("retention.ms", "4242", AlterConfigOpType.SET),
                     ("segment.bytes", None, AlterConfigOpType.DELETE)])
        kp_set_cluster_default(clients.kp_admin(), {"log.segment.bytes": "1234567890"})
        b.restart()
        admin = clients.ck_admin()
        cfg = describe(admin, ResourceType.TOPIC, "persisted")
        assert (cfg["retention.ms"].value, cfg["retention.ms"].source) == \
            ("4242", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
        assert (cfg["segment.bytes"].value, cfg["segment.bytes"].source) == \
            ("1234567890", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    finally:
        clients.close_all()
        b.stop(expect_clean=False)
