#!/usr/bin/env python3
"""Crash harness: SIGKILL the real broker at random moments under a real client's load.

A confluent-kafka Producer (acks=all, enable.idempotence=true) produces numbered records to a
2-partition topic while a consumer reads the same partitions and commits its position (simple
commits: assign() + group.id, generation -1; asynchronous, one outstanding at a time). Each cycle produces for a random 0.2-1 s (seeded
RNG), then the broker is killed with SIGKILL mid-stream and restarted on the same data
directory (sometimes killed a second time while it is still recovering). After every restart
the harness checks:

  1. every acknowledged record (delivery callback without error) is present exactly once, at
     its acknowledged (partition, offset), with its value; no value appears twice; offsets are
     dense from 0 to the high watermark;
  2. the committed offsets of the group are intact: >= the last commit the broker
     acknowledged, <= the last one attempted;
  3. no consumer ever read a record that later vanished: every (partition, offset, value) the
     consumer read is still there with the same value.

Long form (by hand; RELIABILITY.md cites its figures):
    tests/kafka_client_compat/.venv/bin/python tests/crash/crash_harness.py \
        --cycles 200 --fsync always --seed 1
Short form: tests/kafka_client_compat/test_crash.py (runs in the normal suite).

Prints a JSON summary on stdout; exits 1 if any check failed. The broker binary is
THORSTREAM_BIN or target/release/thorstream (built with cargo if missing).
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
TOPIC = "crash"
GROUP = "crash-group"
PARTITIONS = 2
START_TIMEOUT_S = 30.0
MAX_FAILURES_KEPT = 50


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_accepts(port, timeout=0.2):
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_binary():
    env = os.environ.get("THORSTREAM_BIN")
    if env:
        return Path(env)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    binary = target / "release" / "thorstream"
    if not binary.is_file():
        subprocess.run(["cargo", "build", "--release", "--bin", "thorstream"], cwd=REPO_ROOT,
                       check=True)
    return binary


def retry(call, timeout=30.0):
    """Calls `call` until it stops raising KafkaException (a client that reconnected after a
    restart may briefly report an unknown partition or coordinator while it refreshes)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except KafkaException:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def value_of(n):
    """Record n's value: its number plus filler whose length varies with n (2..80 bytes)."""
    return b"%09d-" % n + b"x" * (n % 79 + 1)


def number_of(value):
    return int(value.split(b"-", 1)[0])


class BrokerProcess:
    """The thorstream binary on a fixed port and data dir; killed and restarted at will."""

    def __init__(self, binary, data_dir, log_path, port, fsync, log_io="buffered"):
        self.binary, self.data_dir, self.log_path = Path(binary), Path(data_dir), Path(log_path)
        self.port, self.fsync, self.log_io = port, fsync, log_io
        self.proc = None
        self.starts = 0

    def spawn(self):
        assert self.proc is None
        self.starts += 1
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"), RUST_BACKTRACE="1")
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== [crash harness] start #{self.starts} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(self.binary), "--listen", f"{HOST}:{self.port}",
                 "--advertised-addr", f"{HOST}:{self.port}", "--data-dir", str(self.data_dir),
                 "--fsync", self.fsync, "--log-io", self.log_io,
                 "--num-partitions", str(PARTITIONS)],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

    def wait_ready(self):
        """Seconds until the port accepts connections (the broker recovers before listening)."""
        started = time.monotonic()
        while time.monotonic() - started < START_TIMEOUT_S:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with code {self.proc.returncode} during "
                                   f"startup; log tail:\n{self.log_tail()}")
            if port_accepts(self.port):
                return time.monotonic() - started
            time.sleep(0.005)
        raise RuntimeError(f"broker not ready after {START_TIMEOUT_S}s; log:\n{self.log_tail()}")

    def kill(self):
        """SIGKILL (no shutdown code runs) and reap. Returns the exit status."""
        self.proc.send_signal(signal.SIGKILL)
        code = self.proc.wait(timeout=10)
        self.proc = None
        with open(self.log_path, "ab") as log:
            log.write(b"===== [crash harness] SIGKILL =====\n")
        return code

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self, lines=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as e:
            return f"<{e}>"


class Reader(threading.Thread):
    """A consumer reading both partitions as the data arrives (assign, group.id set) and
    committing its position asynchronously every ~100 ms. Records every read and every
    acknowledged commit."""

    def __init__(self, bootstrap):
        super().__init__(daemon=True, name="crash-reader")
        self.lock = threading.Lock()
        self.reads = []              # (partition, offset, value)
        self.position = {}           # partition -> next offset to commit
        self.commit_attempted = {}   # partition -> highest offset sent in a commit
        self.commit_acked = {}       # partition -> highest offset the broker acknowledged
        self.commits_sent = 0
        self.commits_acked = 0
        self.commits_failed = 0
        # One commit outstanding at a time: librdkafka retries a failed OffsetCommit after a
        # backoff, so with several outstanding an older commit can reach the restarted broker
        # after a newer one and legitimately overwrite it (last write wins, as in Kafka).
        self.commit_pending = False
        self.errors = []
        self.stop_event = threading.Event()
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": GROUP,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
            "socket.timeout.ms": 5000,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
            "broker.address.family": "v4",
            "on_commit": self._on_commit,
            "error_cb": lambda err: None,  # transport errors while the broker is down
            "log_level": 0,
        })

    def _on_commit(self, err, partitions):
        with self.lock:
            self.commit_pending = False
            if err is not None:
                self.commits_failed += 1
                return
            ok = True
            for tp in partitions:
                if tp.error is not None:
                    ok = False
                    continue
                if tp.offset > self.commit_acked.get(tp.partition, -1):
                    self.commit_acked[tp.partition] = tp.offset
            if ok:
                self.commits_acked += 1
            else:
                self.commits_failed += 1

    def run(self):
        self.consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        last_commit = time.monotonic()
        while not self.stop_event.is_set():
            msgs = self.consumer.consume(500, timeout=0.05)
            with self.lock:
                for m in msgs:
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            self.errors.append(str(m.error()))
                        continue
                    self.reads.append((m.partition(), m.offset(), m.value()))
                    self.position[m.partition()] = m.offset() + 1
            if time.monotonic() - last_commit >= 0.1 and not self.commit_pending:
                last_commit = time.monotonic()
                with self.lock:
                    offsets = [TopicPartition(TOPIC, p, o) for p, o in self.position.items()
                               if o > self.commit_attempted.get(p, -1)]
                    for tp in offsets:
                        self.commit_attempted[tp.partition] = tp.offset
                    self.commit_pending = bool(offsets)
                if offsets:
                    try:
                        self.consumer.commit(offsets=offsets, asynchronous=True)
                        self.commits_sent += 1
                    except KafkaException as e:
                        with self.lock:
                            self.commit_pending = False
                            self.commits_failed += 1
                            self.errors.append(f"commit: {e}")
        self.consumer.close()

    def snapshot(self):
        with self.lock:
            return list(self.reads), dict(self.commit_acked), dict(self.commit_attempted)


class Harness:
    def __init__(self, binary, work_dir, cycles, fsync, seed, produce_s=(0.2, 1.0), rate=3000,
                 early_kill_p=0.15, log=None, log_io="buffered"):
        self.rng = random.Random(seed)
        self.seed, self.cycles, self.fsync, self.log_io = seed, cycles, fsync, log_io
        self.produce_s, self.rate, self.early_kill_p = produce_s, rate, early_kill_p
        self.work_dir = Path(work_dir)
        self.port = free_port()
        self.bootstrap = f"{HOST}:{self.port}"
        self.broker = BrokerProcess(binary, self.work_dir / "data", self.work_dir / "broker.log",
                                    self.port, fsync, log_io)
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.acked = {}            # (partition, offset) -> value
        self.acked_values = {}     # number -> (partition, offset)
        self.delivery_failures = []
        self.fatal_errors = []
        self.produced = 0
        self.failures = []
        self.counts = dict(acknowledged_lost=0, acknowledged_wrong_value=0, duplicate_values=0,
                           offset_gaps=0, consumer_reads_vanished=0, commits_regressed=0,
                           commits_beyond_attempted=0, acked_twice=0)
        self.lost_per_cycle = []
        self.restart_s = []
        self.kills = 0
        self.early_kills = 0
        self.in_flight_at_kill = 0
        self.verified_reads = 0
        self.log_records = 0

    # -- reporting -----------------------------------------------------------
    def fail(self, kind, detail):
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append(f"{kind}: {detail}")
            self.log(f"[crash] FAILURE {kind}: {detail}")

    # -- clients -------------------------------------------------------------
    def _on_delivery(self, err, msg):
        if err is not None:
            self.delivery_failures.append(str(err))
            return
        key = (msg.partition(), msg.offset())
        n = number_of(msg.value())
        if msg.offset() < 0:
            self.fail("acked_without_offset", f"record {n} acknowledged with offset {msg.offset()}")
            return
        if key in self.acked or n in self.acked_values:
            self.fail("acked_twice", f"record {n} at {key}; earlier {self.acked.get(key)!r} / "
                                     f"{self.acked_values.get(n)}")
        self.acked[key] = msg.value()
        self.acked_values[n] = key

    def _error_cb(self, err):
        if err.fatal():
            self.fatal_errors.append(str(err))

    def make_producer(self):
        return Producer({
            "bootstrap.servers": self.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 2,
            "message.timeout.ms": 120000,
            "retry.backoff.ms": 20,
            "retry.backoff.max.ms": 100,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
            "socket.timeout.ms": 10000,
            "broker.address.family": "v4",
            "error_cb": self._error_cb,
            "log_level": 0,
        })

    # -- the run -------------------------------------------------------------
    def run(self):
        started = time.monotonic()
        self.broker.spawn()
        self.broker.wait_ready()
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "broker.address.family": "v4",
                             "log_level": 0})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(timeout=15)
        producer = self.make_producer()
        verifier = Consumer({"bootstrap.servers": self.bootstrap, "group.id": GROUP,
                             "enable.auto.commit": False, "broker.address.family": "v4",
                             "fetch.wait.max.ms": 10, "reconnect.backoff.ms": 20,
                             "reconnect.backoff.max.ms": 200, "error_cb": lambda err: None,
                             "log_level": 0})
        reader = Reader(self.bootstrap)
        reader.start()
        try:
            for cycle in range(1, self.cycles + 1):
                # One acknowledged record first, so the kill below hits a producer that has
                # reconnected (its idempotence state re-established) and is streaming.
                t_probe = time.monotonic()
                self._produce_one(producer)
                if producer.flush(30):
                    self.fail("producer_stuck", f"cycle {cycle}: no acknowledgement within 30 s")
                probe_ms = (time.monotonic() - t_probe) * 1000
                self._produce_for(producer, self.rng.uniform(*self.produce_s))
                unresolved = self.produced - len(self.acked) - len(self.delivery_failures)
                self.in_flight_at_kill += unresolved
                self.broker.kill()
                self.kills += 1
                if self.rng.random() < self.early_kill_p:
                    # Kill again while it is starting (recovering or just listening).
                    self.broker.spawn()
                    time.sleep(self.rng.uniform(0.0, 0.05))
                    self.broker.kill()
                    self.kills += 1
                    self.early_kills += 1
                self.broker.spawn()
                self.restart_s.append(self.broker.wait_ready())
                t_flush = time.monotonic()
                remaining = producer.flush(60)
                t_verify = time.monotonic()
                if remaining:
                    self.fail("producer_stuck", f"cycle {cycle}: {remaining} records unresolved "
                                                f"60 s after the restart")
                lost_before = self.counts["acknowledged_lost"]
                self.verify(verifier, reader, cycle)
                self.lost_per_cycle.append(self.counts["acknowledged_lost"] - lost_before)
                t_done = time.monotonic()
                self.log(f"[crash] cycle {cycle}/{self.cycles}: produced {self.produced}, "
                         f"acked {len(self.acked)}, unacked at kill {unresolved}, log {self.log_records}, "
                         f"reads {self.verified_reads}, commits acked {reader.commits_acked}, "
                         f"restart {self.restart_s[-1]*1000:.0f} ms, probe {probe_ms:.0f} ms, "
                         f"flush {(t_verify - t_flush)*1000:.0f} ms, "
                         f"verify {(t_done - t_verify)*1000:.0f} ms, "
                         f"failures {len(self.failures)}")
        finally:
            reader.stop_event.set()
            reader.join(timeout=15)
            producer.flush(10)
            verifier.close()
            self.broker.stop()
        self.reader = reader
        return self.summary(time.monotonic() - started)

    def _produce_one(self, producer):
        n = self.produced
        try:
            producer.produce(TOPIC, value=value_of(n), partition=n % PARTITIONS,
                             on_delivery=self._on_delivery)
        except BufferError:
            producer.poll(0.01)
            return
        self.produced += 1

    def _produce_for(self, producer, seconds):
        """Produces at `rate` for `seconds`, then returns a random 0-5 ms after the last burst
        so that the kill lands while records are queued, on the wire, being fsynced, or being
        answered (records go out in small bursts every 2 ms)."""
        deadline = time.monotonic() + seconds
        per_tick = max(1, self.rate // 500)
        while True:
            tick = time.monotonic()
            for _ in range(per_tick):
                self._produce_one(producer)
            producer.poll(0)
            if time.monotonic() >= deadline:
                time.sleep(self.rng.uniform(0.0, 0.002))
                producer.poll(0)
                return
            time.sleep(max(0.0, 0.002 - (time.monotonic() - tick)))

    def _read_log(self, verifier):
        """Every record of both partitions from offset 0 to the high watermark."""
        highs = {p: retry(lambda p=p: verifier.get_watermark_offsets(
            TopicPartition(TOPIC, p), timeout=5)[1]) for p in range(PARTITIONS)}
        verifier.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        records = {p: [] for p in range(PARTITIONS)}
        pending = {p for p in range(PARTITIONS) if highs[p] > 0}
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for m in verifier.consume(2000, timeout=0.05):
                if m.error():
                    continue
                p = m.partition()
                records[p].append((m.offset(), m.value()))
                if m.offset() >= highs[p] - 1:
                    pending.discard(p)
        verifier.unassign()
        if pending:
            self.fail("read_incomplete", f"could not read up to the high watermarks {highs}")
        return highs, records

    def verify(self, verifier, reader, cycle):
        reads, commit_acked, commit_attempted = reader.snapshot()
        highs, records = self._read_log(verifier)
        log = {}
        seen_values = {}
        for p, recs in records.items():
            expected = 0
            for off, val in recs:
                if off < expected:
                    continue  # a re-delivered message after a fetch retry
                if off != expected:
                    self.fail("offset_gaps", f"cycle {cycle}: partition {p} jumps from "
                                             f"{expected} to {off}")
                expected = off + 1
                log[(p, off)] = val
                n = number_of(val)
                if n in seen_values:
                    self.fail("duplicate_values", f"cycle {cycle}: record {n} at {(p, off)} and "
                                                  f"{seen_values[n]}")
                seen_values[n] = (p, off)
        self.log_records = len(log)
        for key, val in self.acked.items():
            got = log.get(key)
            if got is None:
                self.fail("acknowledged_lost", f"cycle {cycle}: record {number_of(val)} "
                                               f"acknowledged at {key} is gone (high watermarks "
                                               f"{highs})")
            elif got != val:
                self.fail("acknowledged_wrong_value", f"cycle {cycle}: at {key} acknowledged "
                                                      f"{val[:10]!r}, found {got[:10]!r}")
        for p, off, val in reads:
            got = log.get((p, off))
            if got != val:
                self.fail("consumer_reads_vanished", f"cycle {cycle}: consumer read {val[:10]!r} "
                                                     f"at {(p, off)}, log now has {got!r:.20}")
        self.verified_reads = len(reads)
        committed = retry(lambda: verifier.committed(
            [TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=5))
        for tp in committed:
            acked = commit_acked.get(tp.partition)
            if acked is None:
                continue
            if tp.error is not None or tp.offset < acked:
                self.fail("commits_regressed", f"cycle {cycle}: partition {tp.partition} "
                                               f"committed {tp.offset} (error {tp.error}) < "
                                               f"acknowledged {acked}")
            # The reader may commit again after its snapshot; reread the bound now.
            attempted = reader.snapshot()[2].get(tp.partition, -1)
            if tp.offset > attempted:
                self.fail("commits_beyond_attempted", f"cycle {cycle}: partition "
                                                      f"{tp.partition} committed {tp.offset} > "
                                                      f"attempted {attempted}")

    def summary(self, duration):
        acked = len(self.acked)
        r = self.reader
        ok = not self.failures and not self.fatal_errors and not r.errors
        restart_ms = sorted(int(s * 1000) for s in self.restart_s) or [0]
        return {
            "ok": ok,
            "fsync": self.fsync,
            "log_io": self.log_io,
            "seed": self.seed,
            "cycles": self.cycles,
            "kills": self.kills,
            "kills_during_startup": self.early_kills,
            "records_produced": self.produced,
            "records_acknowledged": acked,
            "records_unresolved_at_kill": self.in_flight_at_kill,
            "acknowledged_lost": self.counts["acknowledged_lost"],
            "acknowledged_lost_per_cycle_max": max(self.lost_per_cycle, default=0),
            "acknowledged_wrong_value": self.counts["acknowledged_wrong_value"],
            "duplicate_values": self.counts["duplicate_values"],
            "offset_gaps": self.counts["offset_gaps"],
            "delivery_failures": len(self.delivery_failures),
            "producer_fatal_errors": self.fatal_errors,
            "records_in_log": self.log_records,
            "unacknowledged_in_log": self.log_records - acked,
            "consumer_reads_checked": self.verified_reads,
            "consumer_reads_vanished": self.counts["consumer_reads_vanished"],
            "commits_sent": r.commits_sent,
            "commits_acknowledged": r.commits_acked,
            "commits_failed": r.commits_failed,
            "commits_regressed": self.counts["commits_regressed"],
            "restart_ms_median": restart_ms[len(restart_ms) // 2],
            "restart_ms_max": restart_ms[-1],
            "duration_s": round(duration, 1),
            "reader_errors": r.errors[:10],
            "failures": self.failures,
            "broker_log": str(self.broker.log_path),
        }


def run_harness(binary, work_dir, cycles, fsync, seed, **kwargs):
    return Harness(binary, work_dir, cycles, fsync, seed, **kwargs).run()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--fsync", default="always", help="always | never | <N>ms")
    ap.add_argument("--log-io", default="buffered", help="buffered | direct")
    ap.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    ap.add_argument("--rate", type=int, default=3000, help="records per second while producing")
    ap.add_argument("--min-produce-s", type=float, default=0.2)
    ap.add_argument("--max-produce-s", type=float, default=1.0)
    ap.add_argument("--work-dir", default=None, help="default: a temp dir, removed if ok")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="ts-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    summary = run_harness(find_binary(), work, args.cycles, args.fsync, seed,
                          produce_s=(args.min_produce_s, args.max_produce_s), rate=args.rate,
                          log_io=args.log_io)
    print(json.dumps(summary, indent=2))
    if summary["ok"] and not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
