"""Idempotent producers against the real broker through a proxy that cuts every connection
mid-stream: the log must end with every record exactly once, in order, with no gaps.

The broker advertises the proxy's address, so every client connection (bootstrap and
partition leader alike) goes through the proxy and is cut repeatedly while batches are in
flight. librdkafka (enable.idempotence=true) then retries with the same producer id and
sequence numbers; the broker must answer retries of already-written batches with their
original offsets instead of writing them twice.
"""
import socket
import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer
from confluent_kafka import TopicPartition as CkTP

from conftest import Broker, HOST


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class CuttingProxy:
    """TCP proxy to `target` that, while `cutting` is set, closes all live connections every
    `cut_every_s`, at most `max_cuts` times (librdkafka must get time to reconnect between)."""

    def __init__(self, port, target, cut_every_s, max_cuts):
        self.target = target
        self.cut_every_s = cut_every_s
        self.max_cuts = max_cuts
        self.listener = socket.create_server((HOST, port))
        self.listener.settimeout(0.2)
        self.conns = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.cutting = threading.Event()
        self.cuts = 0
        self.threads = [threading.Thread(target=self._accept, daemon=True),
                        threading.Thread(target=self._cutter, daemon=True)]
        for t in self.threads:
            t.start()

    def _pipe(self, src, dst, muted):
        try:
            while not self.stop.is_set():
                data = src.recv(65536)
                if not data:
                    break
                if muted is not None and muted.is_set():
                    continue  # responses are swallowed: the broker wrote, the client never hears
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _accept(self):
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            muted = threading.Event()
            with self.lock:
                self.conns.append((client, upstream, muted))
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, muted), daemon=True).start()

    def _cutter(self):
        while not self.stop.wait(self.cut_every_s):
            if not self.cutting.is_set() or self.cuts >= self.max_cuts:
                continue
            with self.lock:
                conns, self.conns = self.conns, []
            if conns:
                self.cuts += 1
            # First lose responses while requests still reach the broker, then cut: produce
            # requests in that window are written but unacknowledged, so the client retries.
            for _, _, muted in conns:
                muted.set()
            time.sleep(0.1)  # the fault itself: 100 ms of writes that go unanswered
            for client, upstream, _ in conns:
                for s in (client, upstream):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                        s.close()
                    except OSError:
                        pass

    def close(self):
        self.stop.set()
        self.listener.close()


class ProxiedBroker(Broker):
    def __init__(self, *args, advertised, **kwargs):
        super().__init__(*args, **kwargs)
        self.advertised = advertised

    def command(self):
        return [str(self.binary), "--listen", self.bootstrap,
                "--advertised-addr", self.advertised, "--data-dir", str(self.data_dir)]


@pytest.fixture
def proxied(broker_binary, tmp_path):
    broker_port, proxy_port = free_port(), free_port()
    b = ProxiedBroker(broker_binary, tmp_path / "data", tmp_path / "broker.log",
                      port=broker_port, advertised=f"{HOST}:{proxy_port}")
    b.start()
    proxy = CuttingProxy(proxy_port, (HOST, broker_port), cut_every_s=0.4, max_cuts=5)
    yield b, proxy, f"{HOST}:{proxy_port}"
    proxy.close()
    b.stop(expect_clean=True)


def test_idempotent_producer_with_cut_connections_has_no_duplicates_or_gaps(proxied):
    broker, proxy, bootstrap = proxied
    topic = "idem-cut"
    n = 20000
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 200,
        "message.timeout.ms": 120000,
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 200,
        "partitioner": "murmur2_random",
    })
    failures = []
    producer.produce(topic, value=b"warmup")  # creates the topic, fetches a producer id
    assert producer.flush(30) == 0
    proxy.cutting.set()
    started = time.monotonic()
    for i in range(n):
        while True:
            try:
                producer.produce(topic, value=str(i).encode(),
                                 on_delivery=lambda err, msg: err and failures.append(err))
                break
            except BufferError:
                producer.poll(0.05)
        if i % 500 == 0:
            producer.poll(0)
            time.sleep(0.05)  # pace the stream so it spans many connection cuts
    deadline = time.monotonic() + 120
    while producer.flush(1) > 0 and time.monotonic() < deadline:
        pass
    print(f"produce phase done after {time.monotonic() - started:.1f}s, {proxy.cuts} cuts")
    proxy.cutting.clear()
    assert producer.flush(30) == 0
    assert not failures, failures[:5]
    assert proxy.cuts >= 3, f"the proxy cut connections only {proxy.cuts} times"

    consumer = Consumer({"bootstrap.servers": f"{HOST}:{broker.port}", "group.id": "idem-check",
                         "enable.auto.commit": False,
                         "client.dns.lookup": "use_all_dns_ips"})
    # Read directly from the broker's own listener (metadata still advertises the proxy,
    # which no longer cuts).
    consumer.assign([CkTP(topic, 0, OFFSET_BEGINNING)])
    values = []
    deadline = time.monotonic() + 60
    while len(values) < n + 1 and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        values.append(msg.value())
    # Nothing more arrives: no duplicates hiding after the expected count.
    print(f"consumed {len(values)} after {time.monotonic() - started:.1f}s")
    extra = consumer.poll(2.0)
    consumer.close()
    assert extra is None or extra.error() is not None, "more records than were produced"
    assert values[0] == b"warmup"
    got = [int(v) for v in values[1:]]
    assert len(got) == n, f"expected {n} records, got {len(got)}"
    assert got == list(range(n)), "records duplicated, lost or reordered"
