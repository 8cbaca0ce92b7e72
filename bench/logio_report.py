"""Prints the "Direct log I/O" table of BENCHMARKS.md from bench/logio.sh's JSON lines: per
cell, the median over the rounds of each broker's produce rate, broker CPU-seconds per GB
(user + kernel) and consume rate, and direct's ratios to buffered and to Kafka."""
import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1])]
BROKERS = ("thorstream", "thorstream-direct", "kafka")


def med(kind, broker, size, parts, key):
    vals = [r[key] for r in rows
            if r.get("kind") == kind and r["broker"] == broker and r.get("cell") == "matrix"
            and r["record_size"] == size and r["partitions"] == parts and r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt_rate(v):
    return "–" if v is None else f"{v / 1000:.0f}k"


def ratio(a, b):
    return "–" if a is None or b in (None, 0) else f"{a / b:.2f}×"


rounds = len({r.get("round") for r in rows})
print(f"Medians of {rounds} rounds. Produce and consume: records/s; CPU: broker CPU-s/GB "
      "produced (user + kernel, from /proc).\n")
print("| cell | produce buffered / direct / Kafka | direct ÷ buffered, ÷ Kafka "
      "| CPU-s/GB buffered / direct / Kafka | direct ÷ Kafka "
      "| consume buffered / direct / Kafka | direct ÷ Kafka |")
print("|---|---|---|---|---|---|---|")
sizes = sorted({r["record_size"] for r in rows if r.get("kind") == "produce"}, reverse=True)
parts_all = sorted({r["partitions"] for r in rows if r.get("kind") == "produce"})
for size in sizes:
    for parts in parts_all:
        p = {b: med("produce", b, size, parts, "records_per_s") for b in BROKERS}
        c = {b: med("produce", b, size, parts, "broker_cpu_s_per_gb") for b in BROKERS}
        q = {b: med("consume", b, size, parts, "records_per_s") for b in BROKERS}
        name = f"{'1 KiB' if size == 1024 else f'{size} B'}, {parts} partition{'s' if parts > 1 else ''}"
        cpu = " / ".join("–" if c[b] is None else f"{c[b]:.2f}" for b in BROKERS)
        print(f"| {name} | {' / '.join(fmt_rate(p[b]) for b in BROKERS)} "
              f"| {ratio(p['thorstream-direct'], p['thorstream'])}, "
              f"{ratio(p['thorstream-direct'], p['kafka'])} "
              f"| {cpu} | {ratio(c['thorstream-direct'], c['kafka'])} "
              f"| {' / '.join(fmt_rate(q[b]) for b in BROKERS)} "
              f"| {ratio(q['thorstream-direct'], q['kafka'])} |")
