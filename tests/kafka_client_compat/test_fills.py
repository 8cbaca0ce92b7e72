"""Protocol fills found missing by real clients: the committed leader epoch, ListOffsets
v7+ special timestamps, DescribeLogDirs and
DescribeProducers, the initial rebalance delay (the broker runs with Kafka's default, 3 s)."""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, OFFSET_BEGINNING
from confluent_kafka import TopicPartition as CkTP
from confluent_kafka.admin import NewTopic as CkNewTopic

from conftest import wait_until

ADMIN_TIMEOUT_S = 15.0


def ck_create_topic(admin, name, partitions=1):
    fs = admin.create_topics([CkNewTopic(name, num_partitions=partitions, replication_factor=1)])
    for f in fs.values():
        f.result(timeout=ADMIN_TIMEOUT_S)
    wait_until(lambda: name in admin.list_topics(timeout=5).topics, what=f"topic {name} visible")


def test_ck_committed_leader_epoch_round_trips(clients, topic_name, group_id):
    ck_create_topic(clients.ck_admin(), topic_name, 2)
    c = clients.ck_consumer({"group.id": group_id})
    c.commit(offsets=[CkTP(topic_name, 0, 5, leader_epoch=7),
                      CkTP(topic_name, 1, 3)], asynchronous=False)
    got = c.committed([CkTP(topic_name, 0), CkTP(topic_name, 1)], timeout=10)
    assert [(t.partition, t.offset, t.leader_epoch) for t in got] == [
        (0, 5, 7), (1, 3, None)], "the committed leader epoch comes back; none is -1 (None)"
    c.close()


def test_ck_list_offsets_max_timestamp(clients, topic_name):
    from confluent_kafka.admin import OffsetSpec
    admin = clients.ck_admin()
    ck_create_topic(admin, topic_name, 1)
    prod = clients.ck_producer({"acks": "all", "linger.ms": 0})
    for ts in (1_000, 5_000, 3_000):
        prod.produce(topic_name, value=b"v", partition=0, timestamp=ts)
        prod.flush(10)
    tp = CkTP(topic_name, 0)
    futures = admin.list_offsets({tp: OffsetSpec.max_timestamp()}, request_timeout=10)
    got = futures[tp].result(timeout=ADMIN_TIMEOUT_S)
    assert (got.offset, got.timestamp) == (1, 5_000)
    latest = admin.list_offsets({tp: OffsetSpec.latest()})[tp].result(timeout=ADMIN_TIMEOUT_S)
    assert latest.offset == 3


def test_kp_describe_log_dirs_lists_the_topic(clients, topic_name):
    """kafka-python sends DescribeLogDirs v0 (Kafka 4 still serves it)."""
    ck_create_topic(clients.ck_admin(), topic_name, 2)
    resp = clients.kp_admin().describe_log_dirs()
    dirs = resp.log_dirs
    assert len(dirs) == 1
    error_code, log_dir, topics = dirs[0]
    assert error_code == 0 and log_dir
    parts = {(t, p[0]) for t, ps in topics for p in ps}
    assert {(topic_name, 0), (topic_name, 1)} <= parts


def test_ck_members_starting_together_get_one_rebalance(clients, topic_name, group_id):
    """group.initial.rebalance.delay.ms (3 s, Kafka's default): two members subscribing at
    the same time are both in the first generation, so neither has partitions revoked."""
    ck_create_topic(clients.ck_admin(), topic_name, 4)
    events = {"assigned": [], "revoked": []}

    def member(name):
        c = clients.ck_consumer({"group.id": group_id})

        def on_assign(_, parts):
            events["assigned"].append((name, sorted(p.partition for p in parts)))

        def on_revoke(_, parts):
            if parts:
                events["revoked"].append((name, sorted(p.partition for p in parts)))

        c.subscribe([topic_name], on_assign=on_assign, on_revoke=on_revoke)
        return c

    a, b = member("a"), member("b")

    def both_assigned():
        a.poll(0.1)
        b.poll(0.1)
        names = {n for n, parts in events["assigned"] if parts}
        return names == {"a", "b"}

    wait_until(both_assigned, timeout=30, what="both members assigned")
    assert events["revoked"] == [], events
    got = sorted(p for _, parts in events["assigned"] for p in parts)
    assert got == [0, 1, 2, 3], events
