#!/usr/bin/env python3
"""Transactional crash harness: SIGKILL the real broker while a transactional producer runs.

One confluent-kafka transactional producer (one transactional.id for the whole run) runs
transactions back to back on a 2-partition topic: each writes 1-40 records alternating between
the partitions, then commits (80%) or aborts (20%). Each value names its transaction, its index
and the transaction's size (`t<txn>-<i>-<size>`). A read_committed consumer reads both
partitions the whole time. In most cycles a timer thread SIGKILLs the broker at a random moment
(sometimes again while it recovers) and restarts it on the same data directory; the call the
producer was in (produce, commit, abort) rides through the restart to its own outcome. In every
third cycle the broker is instead killed while a transaction is open with all its records
written; that producer is then replaced without ending it. Once the
broker is back the producer finishes its transaction and the harness checks, reading both
partitions read_committed from offset 0 up to the LSO, after waiting for LSO == high watermark:

  1. every transaction whose commit_transaction() returned is there whole (all its records,
     each once);
  2. nothing of a transaction whose abort_transaction() returned, nor of one that never reached
     commit (open when the broker died: recovery or the next InitProducerId aborts it);
  3. a transaction whose commit was in flight at the kill (the call failed) is whole or absent;
  4. no record twice, and no record the read_committed consumer ever returned belongs to a
     transaction that is not (whole) in the log: it never saw aborted or unfinished data.

Long form (by hand):
    tests/kafka_client_compat/.venv/bin/python tests/crash/txn_crash_harness.py \
        --cycles 100 --fsync always --seed 1
Short form: tests/kafka_client_compat/test_crash.py::test_sigkill_during_transactions_*.

Prints a JSON summary on stdout; exits 1 if any check failed.
"""

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crash_harness import HOST, BrokerProcess, find_binary, free_port, retry  # noqa: E402

TOPIC = "txn-crash"
PARTITIONS = 2
TXN_ID = "txn-crash-producer"
CALL_TIMEOUT_S = 30.0
MAX_FAILURES_KEPT = 50


def value_of(txn, i, size):
    return b"t%d-%d-%d" % (txn, i, size)


def parse(value):
    txn, i, size = value[1:].split(b"-")
    return int(txn), int(i), int(size)


class CommittedReader(threading.Thread):
    """A read_committed consumer of both partitions for the whole run; keeps every value."""

    def __init__(self, bootstrap):
        super().__init__(daemon=True, name="txn-crash-reader")
        self.lock = threading.Lock()
        self.values = []
        self.errors = []
        self.stop_event = threading.Event()
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": "txn-crash-reader",
            "isolation.level": "read_committed", "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "fetch.wait.max.ms": 50,
            "socket.timeout.ms": 5000, "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200, "broker.address.family": "v4",
            "error_cb": lambda err: None, "log_level": 0,
        })

    def run(self):
        self.consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        while not self.stop_event.is_set():
            for m in self.consumer.consume(500, timeout=0.05):
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        with self.lock:
                            self.errors.append(str(m.error()))
                    continue
                with self.lock:
                    self.values.append((m.partition(), m.offset(), m.value()))
        self.consumer.close()

    def snapshot(self):
        with self.lock:
            return list(self.values)


class TxnHarness:
    def __init__(self, binary, work_dir, cycles, fsync, seed, port=None, run_s=(0.2, 0.6),
                 abort_p=0.2, early_kill_p=0.15, open_kill_every=3, log=None):
        self.rng = random.Random(seed)
        self.seed, self.cycles, self.fsync = seed, cycles, fsync
        self.run_s, self.abort_p, self.early_kill_p = run_s, abort_p, early_kill_p
        self.open_kill_every = open_kill_every
        self.work_dir = Path(work_dir)
        self.port = port or free_port()
        self.bootstrap = f"{HOST}:{self.port}"
        self.broker = BrokerProcess(binary, self.work_dir / "data", self.work_dir / "broker.log",
                                    self.port, fsync)
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.status = {}        # txn -> committed | aborted | open | commit_in_doubt
        self.sizes = {}         # txn -> records it wrote
        self.next_txn = 0
        self.failures = []
        self.counts = {}
        self.kills = self.early_kills = 0
        self.producers_created = 0
        self.fatal_errors = []
        self.call_errors = []
        self.kill_hit = {"produce": 0, "commit": 0, "abort": 0, "begin": 0, "idle": 0,
                         "open_txn": 0}
        self.phase = "idle"
        self.restart_s = []
        self.log_records = 0
        self.reader_values_checked = 0

    def fail(self, kind, detail):
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append(f"{kind}: {detail}")
            self.log(f"[txn-crash] FAILURE {kind}: {detail}")

    # -- the producer ------------------------------------------------------
    def make_producer(self):
        self.producers_created += 1
        p = Producer({
            "bootstrap.servers": self.bootstrap, "transactional.id": TXN_ID,
            "linger.ms": 2, "message.timeout.ms": 60000, "socket.timeout.ms": 10000,
            "retry.backoff.ms": 20, "retry.backoff.max.ms": 100,
            "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 200,
            "broker.address.family": "v4", "log_level": 0,
            "error_cb": lambda err: self.fatal_errors.append(str(err)) if err.fatal() else None,
        })
        retry(lambda: p.init_transactions(CALL_TIMEOUT_S), timeout=60)
        return p

    def one_txn(self, producer):
        """Runs one transaction to its outcome; returns False if the producer must be replaced."""
        txn = self.next_txn
        self.next_txn += 1
        size = self.rng.randint(1, 40)
        commit = self.rng.random() >= self.abort_p
        self.sizes[txn] = size
        self.status[txn] = "open"
        delivery_errors = []
        try:
            self.phase = "begin"
            producer.begin_transaction()
            self.phase = "produce"
            for i in range(size):
                while True:
                    try:
                        producer.produce(TOPIC, value=value_of(txn, i, size), partition=i % PARTITIONS,
                                         on_delivery=lambda err, msg: err and delivery_errors.append(err))
                        break
                    except BufferError:
                        producer.poll(0.01)
            producer.poll(0)
            if commit and not delivery_errors:
                self.phase = "commit"
                self.status[txn] = "commit_in_doubt"
                producer.commit_transaction(CALL_TIMEOUT_S)   # flushes first
                self.status[txn] = "committed"
            else:
                self.phase = "abort"
                producer.abort_transaction(CALL_TIMEOUT_S)
                self.status[txn] = "aborted"
            self.phase = "idle"
            return True
        except KafkaException as e:
            err = e.args[0]
            self.call_errors.append(f"{self.phase}: {err}")
            self.phase = "idle"
            if err.fatal():
                return False
            if err.txn_requires_abort():
                try:
                    producer.abort_transaction(CALL_TIMEOUT_S)
                    self.status[txn] = "aborted"
                    return True
                except KafkaException as e2:
                    self.call_errors.append(f"abort after error: {e2.args[0]}")
            return False

    # -- the run -------------------------------------------------------------
    def killer(self, delay, restarted):
        time.sleep(delay)  # the kill's random moment: a schedule, not a synchronisation
        self.kill_hit[self.phase] += 1
        self.broker.kill()
        self.kills += 1
        if self.rng.random() < self.early_kill_p:
            self.broker.spawn()
            time.sleep(self.rng.uniform(0.0, 0.05))
            self.broker.kill()
            self.kills += 1
            self.early_kills += 1
        self.broker.spawn()
        self.restart_s.append(self.broker.wait_ready())
        restarted.set()

    def run(self):
        started = time.monotonic()
        self.broker.spawn()
        self.broker.wait_ready()
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "broker.address.family": "v4",
                             "log_level": 0})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(timeout=15)
        producer = self.make_producer()
        verifier = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "txn-crash-verify",
                             "isolation.level": "read_committed", "enable.auto.commit": False,
                             "enable.partition.eof": True, "broker.address.family": "v4",
                             "fetch.wait.max.ms": 10, "reconnect.backoff.ms": 20,
                             "reconnect.backoff.max.ms": 200, "error_cb": lambda err: None,
                             "log_level": 0})
        self.hw_consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "txn-crash-hw",
                                     "isolation.level": "read_uncommitted",
                                     "broker.address.family": "v4", "reconnect.backoff.ms": 20,
                                     "reconnect.backoff.max.ms": 200, "error_cb": lambda err: None,
                                     "log_level": 0})
        reader = CommittedReader(self.bootstrap)
        reader.start()
        try:
            for cycle in range(1, self.cycles + 1):
                first_txn = self.next_txn
                if self.open_kill_every and cycle % self.open_kill_every == 0:
                    # Transactions for a while, then one left open with its records written
                    # (delivered) when the broker dies: it must never become visible.
                    end = time.monotonic() + self.rng.uniform(*self.run_s)
                    while time.monotonic() < end:
                        if not self.one_txn(producer):
                            producer = self.replace(producer)
                    producer = self.open_txn_then_kill(producer)
                else:
                    # The kill at a random moment while transactions run back to back.
                    restarted = threading.Event()
                    killer = threading.Thread(target=self.killer, daemon=True,
                                              args=(self.rng.uniform(*self.run_s), restarted))
                    killer.start()
                    while not restarted.is_set():
                        if not self.one_txn(producer):
                            producer = self.replace(producer)
                    killer.join()
                # The broker is back: one more transaction to completion proves the producer
                # (or its replacement) works again, then check the log.
                while not self.one_txn(producer):
                    producer = self.replace(producer)
                self.verify(verifier, reader, cycle)
                self.log(f"[txn-crash] cycle {cycle}/{self.cycles}: txns {first_txn}..{self.next_txn - 1}, "
                         f"log {self.log_records} records, producers {self.producers_created}, "
                         f"restart {self.restart_s[-1] * 1000:.0f} ms, failures {len(self.failures)}")
        finally:
            reader.stop_event.set()
            reader.join(timeout=15)
            verifier.close()
            self.hw_consumer.close()
            self.broker.stop()
        self.reader = reader
        return self.summary(time.monotonic() - started)

    def open_txn_then_kill(self, producer):
        """Begins a transaction, writes its records (waits for their delivery), then the broker
        is SIGKILLed and restarted with the transaction open; the producer is replaced without
        ending it (its new instance's InitProducerId aborts whatever is left). Its status stays
        `open`: nothing of it may ever be visible."""
        txn = self.next_txn
        self.next_txn += 1
        size = self.rng.randint(1, 40)
        self.sizes[txn] = size
        self.status[txn] = "open"
        try:
            producer.begin_transaction()
            for i in range(size):
                producer.produce(TOPIC, value=value_of(txn, i, size), partition=i % PARTITIONS)
            producer.flush(CALL_TIMEOUT_S)
        except KafkaException as e:
            self.call_errors.append(f"open txn: {e.args[0]}")
        self.phase = "open_txn"
        self.killer(0.0, threading.Event())
        self.phase = "idle"
        return self.replace(producer)

    def replace(self, producer):
        """A fatal error (e.g. fenced after the broker aborted the transaction on recovery):
        a new instance with the same transactional.id, as an application would."""
        try:
            producer.purge()
        except KafkaException:
            pass
        del producer
        return self.make_producer()

    def _read_committed(self, verifier):
        """Waits until LSO == high watermark on both partitions (no transaction left open),
        then reads both read_committed from 0 to the end: {(partition, offset): value}."""
        def stable():
            ends = {}
            for p in range(PARTITIONS):
                tp = TopicPartition(TOPIC, p)
                lso = retry(lambda: verifier.get_watermark_offsets(tp, timeout=5, cached=False))[1]
                ends[p] = lso
            return ends
        deadline = time.monotonic() + 60
        while True:
            lsos = stable()
            hws = {p: retry(lambda p=p: self.hw_consumer.get_watermark_offsets(
                TopicPartition(TOPIC, p), timeout=5, cached=False))[1] for p in range(PARTITIONS)}
            if lsos == hws:
                break
            if time.monotonic() > deadline:
                self.fail("lso_stuck", f"LSO {lsos} != high watermark {hws} 60 s after the restart")
                break
            time.sleep(0.05)
        verifier.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        log = {}
        pending = {p for p in range(PARTITIONS) if lsos[p] > 0}
        eof_seen = set()
        deadline = time.monotonic() + 60
        while len(eof_seen) < PARTITIONS and time.monotonic() < deadline:
            for m in verifier.consume(2000, timeout=0.05):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF and m.offset() >= lsos[m.partition()]:
                        eof_seen.add(m.partition())
                    continue
                log[(m.partition(), m.offset())] = m.value()
        verifier.unassign()
        if len(eof_seen) < PARTITIONS:
            self.fail("read_incomplete", f"no EOF at the LSOs {lsos} (pending {pending})")
        return log

    def verify(self, verifier, reader, cycle):
        log = self._read_committed(verifier)
        self.log_records = len(log)
        seen = {}      # txn -> set of indexes
        for (p, off), val in log.items():
            txn, i, size = parse(val)
            if i in seen.setdefault(txn, set()):
                self.fail("duplicate", f"cycle {cycle}: record {val!r} twice (again at {(p, off)})")
            seen[txn].add(i)
            if i % PARTITIONS != p:
                self.fail("wrong_partition", f"cycle {cycle}: {val!r} at {(p, off)}")
        for txn, status in self.status.items():
            got = len(seen.get(txn, ()))
            size = self.sizes[txn]
            if status == "committed" and got != size:
                self.fail("committed_incomplete", f"cycle {cycle}: committed txn {txn} has {got} "
                                                  f"of {size} records")
            elif status in ("aborted", "open") and got:
                self.fail(f"{status}_visible", f"cycle {cycle}: {status} txn {txn} shows {got} of "
                                               f"{size} records to read_committed")
            elif status == "commit_in_doubt" and got not in (0, size):
                self.fail("in_doubt_partial", f"cycle {cycle}: txn {txn} (commit in flight at the "
                                              f"kill) shows {got} of {size} records")
        for txn in seen:
            if txn not in self.status:
                self.fail("unknown_txn", f"cycle {cycle}: records of txn {txn} never produced")
        reads = reader.snapshot()
        for p, off, val in reads:
            txn, i, size = parse(val)
            if log.get((p, off)) != val:
                self.fail("reader_saw_invisible", f"cycle {cycle}: read_committed consumer returned "
                                                  f"{val!r} at {(p, off)}, not in the committed log "
                                                  f"(txn {txn} {self.status.get(txn)})")
        self.reader_values_checked = len(reads)

    def summary(self, duration):
        by_status = {}
        for s in self.status.values():
            by_status[s] = by_status.get(s, 0) + 1
        r = self.reader
        restart_ms = sorted(int(s * 1000) for s in self.restart_s) or [0]
        ok = not self.failures and not r.errors
        return {
            "ok": ok, "fsync": self.fsync, "seed": self.seed, "cycles": self.cycles,
            "kills": self.kills, "kills_during_startup": self.early_kills,
            "kill_hit_phase": self.kill_hit, "transactions": len(self.status),
            "transactions_by_outcome": by_status, "records_in_log": self.log_records,
            "reader_values_checked": self.reader_values_checked,
            "producers_created": self.producers_created,
            "producer_fatal_errors": self.fatal_errors[:10],
            "call_errors": len(self.call_errors), "call_errors_first": self.call_errors[:10],
            "restart_ms_median": restart_ms[len(restart_ms) // 2],
            "restart_ms_max": restart_ms[-1], "duration_s": round(duration, 1),
            "failure_counts": self.counts, "reader_errors": r.errors[:10],
            "failures": self.failures, "broker_log": str(self.broker.log_path),
        }


def run_txn_harness(binary, work_dir, cycles, fsync, seed, **kwargs):
    return TxnHarness(binary, work_dir, cycles, fsync, seed, **kwargs).run()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=50)
    ap.add_argument("--fsync", default="always", help="always | never | <N>ms")
    ap.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    ap.add_argument("--port", type=int, default=None, help="default: a free port")
    ap.add_argument("--work-dir", default=None, help="default: a temp dir, removed if ok")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="ts-txn-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    summary = run_txn_harness(find_binary(), work, args.cycles, args.fsync, seed, port=args.port)
    print(json.dumps(summary, indent=2))
    if summary["ok"] and not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
