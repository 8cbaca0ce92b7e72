#!/usr/bin/env python3
"""Turns bench/peer.sh's peer.jsonl into the "Thorstream vs Apache Kafka on this machine" section
of BENCHMARKS.md and a plot (throughput and p99 side by side).

usage: peer_report.py PEER.jsonl OUT_DIR BENCHMARKS.md COMMAND

The section replaces whatever sits between the `bench/peer.sh:begin` / `:end` markers; when they
are missing it is inserted right after the file's title. BENCH_NO_WRITE=1 prints it instead.
Text between `<!-- peer-notes:begin -->` and `<!-- peer-notes:end -->` inside the old section
(hand-written notes on what limits each side) is kept.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys

BEGIN = "<!-- bench/peer.sh:begin -->"
END = "<!-- bench/peer.sh:end -->"
NOTES_BEGIN = "<!-- peer-notes:begin -->"
NOTES_END = "<!-- peer-notes:end -->"

PARITY = {
    "durable": "Thorstream `--fsync always` (its default) vs Kafka `flush.messages=1`",
    "default": "Thorstream `--fsync never` vs Kafka's default (no fsync)",
}


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# The kinds peer.sh runs once per round; the fields that name a run's cell (everything else in
# a row is a measurement or, like rss_kb, a reading taken with it).
ROUNDED_KINDS = ("produce", "consume", "e2e", "perf-test")
CELL_FIELDS = ("kind", "broker", "durability", "cell", "record_size", "acks", "partitions",
               "producers")


def merge_rounds(rows):
    """One row per cell and broker: each number the median over its rounds (peer.sh runs a cell
    PEER_ROUNDS times, the brokers' order reversed every other round, so the slot effect cancels
    in the median); `rounds` is how many there were, `round_rps` the per-round records/s in
    round order. Rows of other kinds, and rows without a round, pass through. A cell keeps the
    place of its first round."""
    groups = {}
    for i, r in enumerate(rows):
        if r.get("kind") in ROUNDED_KINDS and "round" in r:
            key = ("cell",) + tuple(r.get(k) for k in CELL_FIELDS)
        else:
            key = ("row", i)
        groups.setdefault(key, []).append(r)
    return [runs[0] if key[0] == "row" else median_row(runs) for key, runs in groups.items()]


def median_row(runs):
    runs = sorted(runs, key=lambda r: r["round"])
    row = dict(runs[0])
    for field in row:
        if field in CELL_FIELDS or field == "round":
            continue
        vals = [r.get(field) for r in runs]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            row[field] = statistics.median(vals)
    row["rounds"] = len(runs)
    row["round_rps"] = [r.get("records_per_s") for r in runs]
    return row


def rounds_of(rows):
    return max((r.get("rounds", 1) for r in rows if r.get("kind") in ROUNDED_KINDS), default=1)


def per_round(t, k):
    """The per-round Thorstream/Kafka ratios of a cell, as text ('' for one round)."""
    tr, kr = t.get("round_rps") or [], k.get("round_rps") or []
    if len(tr) < 2 or len(tr) != len(kr) or not all(tr) or not all(kr):
        return ""
    return "; rounds " + ", ".join(f"{a / b:.2f}×" for a, b in zip(tr, kr))


def num(x, digits=0):
    if x is None:
        return "–"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.{digits}f}×"


def lat(r, prefix):
    if r is None or f"{prefix}_p50_ms" not in r:
        return "–"
    return " / ".join(num(r.get(f"{prefix}_{q}_ms"), 1) for q in ("p50", "p99", "p999"))


def split(r):
    """The broker's CPU-s/GB as user + kernel (loadgen's /proc utime and stime)."""
    if not r or "broker_user_cpu_s_per_gb" not in r:
        return "–"
    return f"{r['broker_user_cpu_s_per_gb']:.2f} + {r['broker_system_cpu_s_per_gb']:.2f}"


def cores(r):
    """The broker's and the load tool's CPU over the run, in cores (of the 2 they share)."""
    if not r or not r.get("seconds") or "broker_cpu_s" not in r:
        return "–"
    sec = r["seconds"]
    return f"{r['broker_cpu_s'] / sec:.2f} + {r.get('client_cpu_s', 0) / sec:.2f}"


def find(rows, **kw):
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def section(rows, command, png_rel):
    out = []
    w = out.append
    w(BEGIN)
    w("## Thorstream vs Apache Kafka on this machine")
    w("")
    n_rounds = rounds_of(rows)
    rounds_text = (f"{n_rounds} rounds per cell, the brokers' order reversed in every other round "
                   "and from cell to cell, every figure the median of its rounds"
                   if n_rounds > 1 else "in alternating order from cell to cell")
    w(f"`{command}`: both brokers in one run, every cell back to back ({rounds_text}), "
      "each on a fresh broker with an empty data dir on the same disk and a dropped page cache, "
      "driven by the same load tool (bench/loadgen, librdkafka 2.12, `linger.ms` 5, "
      "`batch.size` 1 MB, no compression, no keys, one producer instance unless stated). "
      "Apache Kafka 4.4.0 from Maven Central (bench/kafka/pom.xml), one KRaft node in combined "
      "mode, Kafka's default JVM settings (`-Xmx1G -Xms1G`, G1, `MaxGCPauseMillis=20`), ready "
      "when it logs `Kafka Server started`. CPU-s/GB is the broker process's own CPU time "
      "(/proc/<pid>/stat) per GB moved. Latencies are produce-ack p50 / p99 / p999 in ms, "
      "measured by the client at its maximum rate (they include the client's queue); the "
      "fixed-rate end-to-end table is the latency comparison. The client shares the 2 cores "
      "with the broker.")
    w("")
    if png_rel:
        w(f"![throughput and p99 side by side]({png_rel})")
        w("")

    prod = [r for r in rows if r.get("kind") == "produce" and r.get("cell") == "matrix"]
    cons = [r for r in rows if r.get("kind") == "consume" and r.get("cell") == "matrix"]
    cells = []
    for r in prod:
        key = (r["durability"], r["record_size"], r["acks"], r["partitions"])
        if key not in cells:
            cells.append(key)
    order = {"durable": 0, "default": 1}
    cells.sort(key=lambda k: (order.get(k[0], 9), -k[1], 0 if k[2] == "all" else 1, k[3]))

    def pc(b, key, kind_rows):
        d, size, acks, parts = key
        return find(kind_rows, broker=b, durability=d, record_size=size, acks=acks,
                    partitions=parts)

    for d in ("durable", "default"):
        dcells = [k for k in cells if k[0] == d]
        if not dcells:
            continue
        title = ("The durable default (read this first)" if d == "durable"
                 else "Without fsync")
        w(f"### Produce: {title} — {PARITY[d]}")
        w("")
        w("| record | acks | partitions | Thorstream rec/s | Kafka rec/s | ratio | Thorstream "
          "MB/s | Kafka MB/s | CPU-s/GB T / K | CPU ratio | CPU-s/GB user + kernel T / K | "
          "cores broker + client T / K | ack p50/p99/p999 ms T | ack p50/p99/p999 ms K |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for k in dcells:
            t, kf = pc("thorstream", k, prod), pc("kafka", k, prod)
            w(f"| {k[1]} B | {k[2]} | {k[3]} | {num(t and t['records_per_s'])} | "
              f"{num(kf and kf['records_per_s'])} | "
              f"**{ratio(t and t['records_per_s'], kf and kf['records_per_s'])}** | "
              f"{num(t and t['mb_per_s'], 1)} | {num(kf and kf['mb_per_s'], 1)} | "
              f"{num(t and t.get('broker_cpu_s_per_gb'), 2)} / "
              f"{num(kf and kf.get('broker_cpu_s_per_gb'), 2)} | "
              f"{ratio(t and t.get('broker_cpu_s_per_gb'), kf and kf.get('broker_cpu_s_per_gb'))} | "
              f"{split(t)} / {split(kf)} | "
              f"{cores(t)} / {cores(kf)} | {lat(t, 'ack')} | {lat(kf, 'ack')} |")
        w("")
        w(f"### Consume from the start — {PARITY[d]}")
        w("")
        w("(the records the produce cell above wrote, read back by one consumer instance, two "
          "for 4 and 16 partitions; assigned, no group)")
        w("")
        w("| record | acks | partitions | Thorstream rec/s | Kafka rec/s | ratio | Thorstream "
          "MB/s | Kafka MB/s | CPU-s/GB T / K |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for k in dcells:
            t, kf = pc("thorstream", k, cons), pc("kafka", k, cons)
            w(f"| {k[1]} B | {k[2]} | {k[3]} | {num(t and t['records_per_s'])} | "
              f"{num(kf and kf['records_per_s'])} | "
              f"**{ratio(t and t['records_per_s'], kf and kf['records_per_s'])}** | "
              f"{num(t and t['mb_per_s'], 1)} | {num(kf and kf['mb_per_s'], 1)} | "
              f"{num(t and t.get('broker_cpu_s_per_gb'), 2)} / "
              f"{num(kf and kf.get('broker_cpu_s_per_gb'), 2)} |")
        w("")

    gc = [r for r in rows if r.get("cell") == "group-commit"]
    if gc:
        w("### Group commit: 8 producer instances, acks=all, 1 KiB, 4 partitions")
        w("")
        w("| durability | Thorstream rec/s | Kafka rec/s | ratio | CPU-s/GB T / K | ack "
          "p50/p99/p999 ms T | ack p50/p99/p999 ms K |")
        w("| --- | --- | --- | --- | --- | --- | --- |")
        for d in ("durable", "default"):
            t = find(gc, broker="thorstream", durability=d)
            kf = find(gc, broker="kafka", durability=d)
            if not (t or kf):
                continue
            w(f"| {PARITY[d]} | {num(t and t['records_per_s'])} | "
              f"{num(kf and kf['records_per_s'])} | "
              f"**{ratio(t and t['records_per_s'], kf and kf['records_per_s'])}** | "
              f"{num(t and t.get('broker_cpu_s_per_gb'), 2)} / "
              f"{num(kf and kf.get('broker_cpu_s_per_gb'), 2)} | {lat(t, 'ack')} | "
              f"{lat(kf, 'ack')} |")
        w("")

    e2e = [r for r in rows if str(r.get("cell", "")).startswith("e2e-")]
    if e2e:
        w("### End-to-end latency at a fixed rate (1 KiB, acks=all, 4 partitions, `linger.ms` 5)")
        w("")
        w("Producer and consumer in one client process; every payload carries its send time. "
          "The rate is 10 % and 50 % of the *slower* broker's maximum in the matching produce "
          "cell of this run.")
        w("")
        w("| durability | rate | rec/s | Thorstream e2e p50/p99/p999 ms | Kafka e2e "
          "p50/p99/p999 ms | p99 ratio | p999 ratio |")
        w("| --- | --- | --- | --- | --- | --- | --- |")
        for d in ("durable", "default"):
            for pct in (10, 50):
                t = find(e2e, broker="thorstream", durability=d, cell=f"e2e-{pct}")
                kf = find(e2e, broker="kafka", durability=d, cell=f"e2e-{pct}")
                if not (t or kf):
                    continue
                rate = (t or kf).get("slower_max", 0) * pct // 100
                w(f"| {PARITY[d]} | {pct} % | {num(rate)} | {lat(t, 'e2e')} | "
                  f"{lat(kf, 'e2e')} | "
                  f"{ratio(t and t.get('e2e_p99_ms'), kf and kf.get('e2e_p99_ms'), 3)} | "
                  f"{ratio(t and t.get('e2e_p999_ms'), kf and kf.get('e2e_p999_ms'), 3)} |")
        w("")

    st = [r for r in rows if r.get("kind") == "startup"]
    if st:
        w("### Start to first produce, and RSS")
        w("")
        w("From the broker's exec to its port accepting and to a first acknowledged record "
          "(`loadgen first`: a librdkafka producer, `linger.ms` 0, acks=all, the topic "
          "auto-created), empty data dir; the median of 4 warm starts (binary and jars in the "
          "page cache) and one cold start (page cache dropped). RSS right after that record and "
          "after 5 s idle; peak RSS (VmHWM) under the produce matrix's load.")
        w("")
        w("| broker | accepting, warm (ms) | first produce, warm (ms) | first produce, cold "
          "(ms) | RSS idle | peak RSS under load |")
        w("| --- | --- | --- | --- | --- | --- |")
        for b in ("thorstream", "kafka"):
            rs = [r for r in st if r["broker"] == b]
            warm = [r for r in rs if r.get("cache") == "warm"] or rs
            cold = [r for r in rs if r.get("cache") == "cold"]
            peaks = [r.get("rss_peak_kb", 0) for r in prod if r["broker"] == b]
            idle = statistics.median(r["rss_idle_kb"] for r in rs) / 1024
            w(f"| {b} | {num(statistics.median(r['accepting_ms'] for r in warm))} | "
              f"{num(statistics.median(r['first_produce_ms'] for r in warm))} | "
              f"{num(cold[0]['first_produce_ms']) if cold else '–'} | {idle:.1f} MB | "
              f"{(max(peaks) / 1024 if peaks else 0):.0f} MB |")
        w("")

    parts = [r for r in rows if r.get("kind") == "partitions"]
    if parts:
        w("### 10,000 partitions: metadata and idle cost")
        w("")
        w("100 topics × 100 partitions created over the wire (CreateTopics, 10 topics per "
          "request; *answered* is when the last CreateTopics returned, *listed* when a full "
          "Metadata first listed all 10,000), 20 full Metadata requests timed, the idle broker's "
          "CPU over 10 s after 10 s left alone, its RSS; then a clean stop and a restart on the "
          "same data dir, timed from the exec to a first acknowledged record.")
        w("")
        w("| broker | created, answered / listed (s) | Metadata p50 / p99 (ms) | idle CPU | RSS | "
          "restart to first produce (ms) |")
        w("| --- | --- | --- | --- | --- | --- |")
        for b in ("thorstream", "kafka"):
            r = find(parts, broker=b)
            if not r:
                continue
            w(f"| {b} | {num(r.get('create_s'), 1)} / {num(r.get('listed_s'), 1)} | "
              f"{num(r.get('metadata_p50_ms'), 1)} / "
              f"{num(r.get('metadata_p99_ms'), 1)} | {num(r.get('idle_broker_cpu_pct'), 1)} % | "
              f"{r.get('rss_kb', 0) / 1024:.0f} MB | "
              f"{num(r.get('restart_first_produce_ms'))} |")
        w("")

    pt = [r for r in rows if r.get("kind") == "perf-test"]
    if pt:
        w("### Second opinion: Kafka's own kafka-producer-perf-test / kafka-consumer-perf-test")
        w("")
        w("The Java client 4.4 with its defaults (`batch.size` 16 KiB, `linger.ms` 5; the "
          "consumer in a group, its fetch-phase rate), 1 KiB records, 4 partitions; 1,000,000 "
          "records without fsync, 300,000 durable. The JVM client needs much more CPU than "
          "librdkafka, so on 2 shared cores these figures are lower for both brokers.")
        w("")
        w("| durability | acks | Thorstream rec/s | Kafka rec/s | ratio | CPU-s/GB T / K | "
          "p50/p99/p999 ms T | p50/p99/p999 ms K | consume rec/s T / K |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for d in ("durable", "default"):
            for acks in ("all", "1"):
                t = find(pt, broker="thorstream", durability=d, acks=acks)
                kf = find(pt, broker="kafka", durability=d, acks=acks)
                if not (t or kf):
                    continue

                def pl(r):
                    if not r or "p50_ms" not in r:
                        return "–"
                    return f"{r['p50_ms']:.0f} / {r['p99_ms']:.0f} / {r['p999_ms']:.0f}"

                w(f"| {PARITY[d]} | {acks} | {num(t and t.get('records_per_s'))} | "
                  f"{num(kf and kf.get('records_per_s'))} | "
                  f"**{ratio(t and t.get('records_per_s'), kf and kf.get('records_per_s'))}** | "
                  f"{num(t and t.get('broker_cpu_s_per_gb'), 2)} / "
                  f"{num(kf and kf.get('broker_cpu_s_per_gb'), 2)} | {pl(t)} | {pl(kf)} | "
                  f"{num(t and t.get('consume_records_per_s'))} / "
                  f"{num(kf and kf.get('consume_records_per_s'))} |")
        w("")

    w(targets(rows, prod, cons, gc, e2e, st))
    w(NOTES_BEGIN)
    w(NOTES_END)
    w(END)
    return "\n".join(out)


def targets(rows, prod, cons, gc, e2e, st):
    out = ["### Targets (issue 16), from this run", ""]
    w = out.append

    def pairs(kind_rows):
        for t in kind_rows:
            if t["broker"] != "thorstream":
                continue
            k = find(kind_rows, broker="kafka", durability=t["durability"],
                     record_size=t.get("record_size"), acks=t.get("acks"),
                     partitions=t.get("partitions"), cell=t.get("cell"))
            if k:
                yield t, k

    def verdict(ok):
        return "met" if ok else "**missed**"

    pr = [(t["records_per_s"] / k["records_per_s"], t, k) for t, k in pairs(prod + gc)]
    if pr:
        worst = min(pr, key=lambda x: x[0])
        w(f"- Produce ≥ 1.5× Kafka in every cell: {verdict(worst[0] >= 1.5)} (lowest "
          f"{worst[0]:.2f}×: {worst[1]['durability']}, {worst[1].get('record_size')} B, acks "
          f"{worst[1].get('acks')}, {worst[1].get('partitions')} partitions"
          f"{per_round(worst[1], worst[2])}; "
          f"{sum(1 for x in pr if x[0] >= 1.5)} of {len(pr)} cells at ≥ 1.5×).")
    cr = [(t["broker_cpu_s_per_gb"] / k["broker_cpu_s_per_gb"], t, k) for t, k in pairs(prod + gc)
          if t.get("broker_cpu_s_per_gb") and k.get("broker_cpu_s_per_gb")]
    if cr:
        worst = max(cr, key=lambda x: x[0])
        w(f"- Broker CPU-s/GB ≤ 0.5× Kafka's in every produce cell: {verdict(worst[0] <= 0.5)} "
          f"(highest {worst[0]:.2f}×: {worst[1]['durability']}, {worst[1].get('record_size')} B, "
          f"acks {worst[1].get('acks')}, {worst[1].get('partitions')} partitions).")
    ur = [(t["broker_user_cpu_s_per_gb"] / k["broker_user_cpu_s_per_gb"], t, k)
          for t, k in pairs(prod + gc)
          if t.get("broker_user_cpu_s_per_gb") and k.get("broker_user_cpu_s_per_gb")]
    if ur:
        worst = max(ur, key=lambda x: x[0])
        kern = [(t["broker_system_cpu_s_per_gb"], k["broker_system_cpu_s_per_gb"]) for _, t, k in ur]
        w(f"  - of it, user-space CPU-s/GB (the brokers' own code; the kernel's share, mostly "
          f"the copy into the page cache, is {min(x for x, _ in kern):.2f}–"
          f"{max(x for x, _ in kern):.2f} for Thorstream and {min(y for _, y in kern):.2f}–"
          f"{max(y for _, y in kern):.2f} for Kafka): highest {worst[0]:.2f}× "
          f"({worst[1]['durability']}, {worst[1].get('record_size')} B, acks "
          f"{worst[1].get('acks')}, {worst[1].get('partitions')} partitions).")
    cc = [(t["records_per_s"] / k["records_per_s"], t, k) for t, k in pairs(cons)]
    if cc:
        worst = min(cc, key=lambda x: x[0])
        w(f"- Consume ≥ Kafka's: {verdict(worst[0] >= 1.0)} (lowest {worst[0]:.2f}×: "
          f"{worst[1]['durability']}, {worst[1].get('record_size')} B, acks "
          f"{worst[1].get('acks')}, {worst[1].get('partitions')} partitions"
          f"{per_round(worst[1], worst[2])}; "
          f"{sum(1 for x in cc if x[0] >= 1.0)} of {len(cc)} cells at ≥ 1×).")
    if e2e:
        bad = []
        for t in e2e:
            if t["broker"] != "thorstream":
                continue
            k = find(e2e, broker="kafka", durability=t["durability"], cell=t["cell"])
            if not k:
                continue
            for q in ("p99", "p999"):
                if t.get(f"e2e_{q}_ms", 1e9) >= k.get(f"e2e_{q}_ms", 0):
                    bad.append(f"{t['durability']} {t['cell']} {q}")
        w(f"- e2e p99 and p999 below Kafka's at both rates: {verdict(not bad)}"
          + (f" ({', '.join(bad)})" if bad else "") + ".")
    if st:
        ts = [r for r in st if r["broker"] == "thorstream"]
        warm = [r for r in ts if r.get("cache") == "warm"] or ts
        if warm:
            m = statistics.median(r["first_produce_ms"] for r in warm)
            w(f"- Start to first produce < 100 ms: {verdict(m < 100)} ({m:.0f} ms warm, median).")
            idle = statistics.median(r["rss_idle_kb"] for r in ts) / 1024
            w(f"- RSS idle < 20 MB: {verdict(idle < 20)} ({idle:.1f} MB).")
    w("")
    return "\n".join(out)


def plot(rows, out_dir):
    if not shutil.which("gnuplot"):
        print("peer_report: no gnuplot (apt-get install gnuplot-nox): peer.png not drawn, and "
              "the section is written without it", file=sys.stderr)
        return None
    prod = [r for r in rows if r.get("kind") == "produce" and r.get("cell") == "matrix"]
    if not prod:
        return None
    dat = os.path.join(out_dir, "peer.dat")
    with open(dat, "w") as f:
        f.write("# label thorstream_mb kafka_mb thorstream_p99 kafka_p99\n")
        for t in prod:
            if t["broker"] != "thorstream":
                continue
            k = find(prod, broker="kafka", durability=t["durability"],
                     record_size=t["record_size"], acks=t["acks"], partitions=t["partitions"])
            if not k:
                continue
            label = (f"{'D' if t['durability'] == 'durable' else 'N'}/{t['record_size']}/"
                     f"{t['acks']}/{t['partitions']}")
            f.write(f"\"{label}\" {t['mb_per_s']:.1f} {k['mb_per_s']:.1f} "
                    f"{max(t.get('ack_p99_ms', 0.001), 0.001):.3f} "
                    f"{max(k.get('ack_p99_ms', 0.001), 0.001):.3f}\n")
    png = os.path.join(out_dir, "peer.png")
    script = f"""
set terminal pngcairo size 1400,900 font ",10" noenhanced
set output "{png}"
set multiplot layout 2,1 title "Thorstream vs Apache Kafka 4.4, same machine, same run, librdkafka load tool. x: D=durable (fsync always / flush.messages=1), N=no fsync / record bytes / acks / partitions"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -45 scale 0
set key top right
set grid ytics
set ylabel "produce MB/s"
set yrange [0:*]
plot "{dat}" using 2:xtic(1) title "Thorstream" linecolor rgb "#2e86c1", "" using 3 title "Apache Kafka" linecolor rgb "#7f8c8d"
set ylabel "produce-ack p99 at max rate (ms, log)"
set yrange [*:*]
set logscale y
plot "{dat}" using 4:xtic(1) title "Thorstream" linecolor rgb "#2e86c1", "" using 5 title "Apache Kafka" linecolor rgb "#7f8c8d"
unset multiplot
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True,
                       stderr=subprocess.PIPE)
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"plot failed: {e}", file=sys.stderr)
        return None
    return png


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    results, out_dir, bench_md, command = sys.argv[1:]
    rows = merge_rounds(load(results))
    png = plot(rows, out_dir)
    png_rel = os.path.relpath(png, os.path.dirname(os.path.abspath(bench_md))) if png else None
    text = section(rows, command, png_rel)
    if os.environ.get("BENCH_NO_WRITE"):
        print(text)
        return
    try:
        with open(bench_md) as f:
            old = f.read()
    except FileNotFoundError:
        old = "# Benchmarks\n"
    if BEGIN in old and END in old:
        before, rest = old.split(BEGIN, 1)
        prev, after = rest.split(END, 1)
        if NOTES_BEGIN in prev and NOTES_END in prev:
            notes = prev.split(NOTES_BEGIN, 1)[1].split(NOTES_END, 1)[0]
            text = text.replace(NOTES_BEGIN + "\n" + NOTES_END, NOTES_BEGIN + notes + NOTES_END)
        new = before + text + after
    else:
        lines = old.split("\n", 1)
        new = lines[0] + "\n\n" + text + "\n\n" + (lines[1].lstrip("\n") if len(lines) > 1 else "")
    with open(bench_md, "w") as f:
        f.write(new)


if __name__ == "__main__":
    main()
