"""Log compaction with a real client (confluent-kafka / librdkafka).

The test runs its own broker (port THORSTREAM_TEST_PORT + 1) with a 100 ms
`--log-cleaner-backoff-ms`, so the `thorstream-cleaner` thread cleans as soon as a
topic is dirty. A topic is created with `cleanup.policy=compact` and small segments,
keys are overwritten and deleted (tombstones), the test waits until the partition's
files shrink (the cleaner ran: a state, not a sleep), and a consumer reading from the
start sees the last value of every key, tombstones included. A keyless record sent to
the compacted topic fails with INVALID_RECORD, and the broker keeps serving.
"""
import os
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import HOST, PORT, Broker, wait_until

CLEANER_PORT = int(os.environ.get("THORSTREAM_COMPACTION_TEST_PORT", str(PORT + 1)))


class CleanerBroker(Broker):
    def command(self):
        return super().command() + ["--log-cleaner-backoff-ms", "100"]


@pytest.fixture
def cleaner_broker(broker_binary, tmp_path):
    b = CleanerBroker(broker_binary, data_dir=tmp_path / "data", log_path=tmp_path / "broker.log",
                      host=HOST, port=CLEANER_PORT)
    b.start()
    try:
        yield b
    finally:
        b.stop(expect_clean=False)


def log_bytes(data_dir, topic):
    return sum(p.stat().st_size for p in Path(data_dir, f"{topic}-0").glob("*.log"))


def consume_all(bootstrap, topic):
    """Every record from the start up to the high watermark, as (offset, key, value)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader",
                  "enable.auto.commit": False})
    try:
        _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.assign([TopicPartition(topic, 0, 0)])
        out = []
        position = 0
        while position < high:
            msg = c.poll(5.0)
            assert msg is not None, f"no record at position {position} of {high}"
            assert msg.error() is None, msg.error()
            out.append((msg.offset(), msg.key(), msg.value()))
            position = c.position([TopicPartition(topic, 0)])[0].offset
        return out
    finally:
        c.close()


def test_compacted_topic_reads_back_as_the_last_value_per_key(cleaner_broker, topic_name):
    bootstrap = cleaner_broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = {"cleanup.policy": "compact", "segment.bytes": "2048",
               "min.cleanable.dirty.ratio": "0.01"}
    admin.create_topics([NewTopic(topic_name, 1, 1, config=configs)])[topic_name].result(10)

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    model = {}
    produced = 0
    for round_ in range(60):
        for k in range(10):
            key = f"key-{k}".encode()
            value = None if (k == 7 and round_ >= 50) else f"v{round_}-{k}".encode()
            p.produce(topic_name, key=key, value=value)
            model[key] = value
            produced += 1
        p.flush(10)
    size_before = log_bytes(cleaner_broker.data_dir, topic_name)

    wait_until(lambda: log_bytes(cleaner_broker.data_dir, topic_name) < size_before / 2,
               timeout=30, what="the cleaner to shrink the compacted partition")

    records = consume_all(bootstrap, topic_name)
    assert len(records) < produced / 2
    assert all(a[0] < b[0] for a, b in zip(records, records[1:])), "offsets increase"
    seen = {}
    for _, key, value in records:
        seen[key] = value
    assert seen == model, "last value of every key (key-7 deleted)"

    errors = []
    p.produce(topic_name, value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == KafkaError.INVALID_RECORD, errors[0]

    delivered = []
    p.produce(topic_name, key=b"key-0", value=b"after",
              on_delivery=lambda err, msg: delivered.append(err))
    p.flush(10)
    assert delivered == [None], "the broker keeps serving"
