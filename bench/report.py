#!/usr/bin/env python3
"""Turns bench/run.sh's results.jsonl into a Markdown section of BENCHMARKS.md and a PNG plot.

usage: report.py RESULTS.jsonl OUT_DIR BENCHMARKS.md COMMAND

The section replaces whatever sits between the `bench/run.sh:begin` / `:end` markers (it is
appended when the markers are missing). Set BENCH_NO_WRITE=1 to print it instead.
"""

import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys

BEGIN = "<!-- bench/run.sh:begin -->"
END = "<!-- bench/run.sh:end -->"


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){mem}, Linux {platform.release()}"


def pct(x, limit):
    return f"{100 * x / limit:.0f}%" if limit else "n/a"


def f1(x):
    return "n/a" if x is None else (f"{x:,.0f}" if abs(x) >= 100 else f"{x:.2f}")


def main():
    results, out_dir, bench_md, command = sys.argv[1:5]
    rows = load(results)
    dd = [r["mb_per_s"] for r in rows if r["kind"] == "dd"]
    disk = statistics.median(dd) if dd else None
    tcp = next((r["mb_per_s"] for r in rows if r["kind"] == "tcp_bw"), None)
    fs = next((r for r in rows if r["kind"] == "fsync_lat"), {})
    limit = min(x for x in (disk, tcp) if x) if (disk or tcp) else None

    matrix = [r for r in rows if r["kind"] == "produce" and r.get("label") == "matrix"]
    consumes = {
        (r["fsync"], r.get("label")): r for r in rows if r["kind"] == "consume"
    }

    def consume_of(p):
        key = f"matrix size={p['record_size']} acks={p['acks']} partitions={p['partitions']}"
        return consumes.get((p["fsync"], key))

    lines = []
    w = lines.append
    w(BEGIN)
    w(f"### Latest full run: `{command}`")
    w("")
    w(f"Run {datetime.date.today().isoformat()} on {machine()}. The load tool (librdkafka "
      "2.12 through the `rdkafka` crate, bench/loadgen) and the broker share these cores, so "
      "throughput is a property of the pair; the broker's own CPU-seconds per GB (from "
      "/proc/<pid>/stat) is the figure that carries across machines. Each cell starts a fresh "
      "broker on an empty data directory (same disk as the raw limits), page cache dropped.")
    w("")
    w("#### Raw limits (same run, same disk)")
    w("")
    w("| limit | figure |")
    w("|---|---|")
    if dd:
        w(f"| sequential write, `dd bs=1M count=2048 conv=fdatasync` (median of {len(dd)}: "
          f"{', '.join(f'{x:,.0f}' for x in dd)}) | **{disk:,.0f} MB/s** |")
        dd_sys = [r["sys_s_per_gb"] for r in rows if r["kind"] == "dd" and "sys_s_per_gb" in r]
        if dd_sys:
            w(f"| kernel CPU of those buffered writes (dd's system time per GB: "
              f"{', '.join(f'{x:.2f}' for x in dd_sys)}) | {statistics.median(dd_sys):.2f} "
              "CPU-s/GB |")
    if fs:
        w(f"| append 4 KiB + fdatasync | {fs.get('fsyncs_per_s', 0):,.0f}/s, p50 "
          f"{fs.get('fsync_p50_ms')} ms, p99 {fs.get('fsync_p99_ms')} ms |")
    if tcp:
        w(f"| loopback TCP, one stream, 1 MiB writes | **{tcp:,.0f} MB/s** |")
    if limit:
        w(f"| min(disk, loopback) = the produce limit used below | {limit:,.0f} MB/s |")
    w("")
    w("#### Produce and consume matrix (1 producer instance, linger.ms=5, batch.size=1 MB, no "
      "compression, no keys)")
    w("")
    w("| fsync | record | acks | partitions | produce rec/s | produce MB/s | % of limit | "
      "ack p99 ms | broker CPU-s/GB | consumers | consume MB/s | consume / produce | consume CPU-s/GB |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for p in matrix:
        c = consume_of(p) or {}
        ratio = (c.get("mb_per_s", 0) / p["mb_per_s"]) if p.get("mb_per_s") else None
        w(f"| {p['fsync']} | {p['record_size']} B | {p['acks']} | {p['partitions']} | "
          f"{p['records_per_s']:,.0f} | {p['mb_per_s']:,.0f} | {pct(p['mb_per_s'], limit)} | "
          f"{f1(p.get('ack_p99_ms'))} | {f1(p.get('broker_cpu_s_per_gb'))} | "
          f"{c.get('consumers', 1):.0f} | {f1(c.get('mb_per_s'))} | {f1(ratio)}x | {f1(c.get('broker_cpu_s_per_gb'))} |")
    w("")

    gc = {r["fsync"]: r for r in rows if r["kind"] == "produce" and r.get("label") == "group-commit"}
    if gc:
        w("#### Group commit: 8 producer instances, acks=all, 1 KiB, 4 partitions")
        w("")
        w("| fsync | MB/s | ack p50 ms | ack p99 ms | broker CPU-s/GB |")
        w("|---|---|---|---|---|")
        for k in ("never", "always"):
            if k in gc:
                r = gc[k]
                w(f"| {k} | {r['mb_per_s']:,.0f} | {f1(r.get('ack_p50_ms'))} | "
                  f"{f1(r.get('ack_p99_ms'))} | {f1(r.get('broker_cpu_s_per_gb'))} |")
        w("")

    txn = [r for r in rows if r["kind"] == "produce" and r.get("label") == "txn"]
    txn_base = {r["fsync"]: r for r in rows if r["kind"] == "produce"
                and r.get("label") == "txn-baseline"}
    if txn:
        w("#### Transactional produce: 1 KiB, 1 partition, acks=all, 1 producer instance "
          "(commit_transaction every N records), against the same cell without transactions "
          "(idempotent)")
        w("")
        w("| fsync | records/txn | rec/s | MB/s | txn/s | ack p99 ms | broker CPU-s/GB | "
          "plain rec/s | % of plain |")
        w("|---|---|---|---|---|---|---|---|---|")
        for r in txn:
            b = txn_base.get(r["fsync"], {})
            w(f"| {r['fsync']} | {r.get('records_per_txn', 0):,.0f} | {r['records_per_s']:,.0f} | "
              f"{r['mb_per_s']:,.0f} | {f1(r.get('transactions_per_s'))} | "
              f"{f1(r.get('ack_p99_ms'))} | {f1(r.get('broker_cpu_s_per_gb'))} | "
              f"{f1(b.get('records_per_s'))} | {pct(r['records_per_s'], b.get('records_per_s'))} |")
        w("")

    e2e = [r for r in rows if r["kind"] == "e2e" and not r.get("label", "").startswith("steady")]
    if e2e:
        w("#### End-to-end latency at a fixed rate: 50% and 10% of the measured maximum produce "
          "rate of the same cell (1 KiB, 4 partitions, linger.ms=5, the librdkafka default; "
          "producer and consumer in one client process)")
        w("")
        w("| rate | fsync | acks | rec/s | delivered | ack p99 ms | e2e p50 ms | e2e p99 ms | "
          "e2e p999 ms |")
        w("|---|---|---|---|---|---|---|---|---|")
        for r in e2e:
            share = r.get("label", "e2e-50").split("-")[-1]
            w(f"| {share}% | {r['fsync']} | {r['acks']} | {r['records_per_s']:,.0f} | "
              f"{r.get('e2e_received', 0):,.0f}/{r['records']:,.0f} | {f1(r.get('ack_p99_ms'))} | "
              f"{f1(r.get('e2e_p50_ms'))} | {f1(r.get('e2e_p99_ms'))} | {f1(r.get('e2e_p999_ms'))} |")
        w("")

    steady = [r for r in rows if r["kind"] == "produce" and r.get("label") == "steady"]
    steady_e2e = [r for r in rows if r["kind"] == "e2e"
                  and r.get("label", "").startswith("steady-e2e")]
    if steady:
        w("#### Steady-state page cache: the broker in a 1 GiB memory cgroup, 1.5 GB written "
          "before each cell (1 KiB, 4 partitions, 1 producer instance)")
        w("")
        w("The cells above start a broker on an empty page cache; on this VM, whose freed pages "
          "go back to the host at once, every page the broker writes then costs a host page "
          "fault. Here the broker's page cache is full and recycles pages, as on a server that "
          "has been running for a while (see \"What limits it\").")
        w("")
        w("| fsync | acks | produce MB/s | % of limit | ack p99 ms | broker CPU-s/GB | "
          "e2e p99 ms at 50% (rate) | e2e p99 ms at 10% (rate) |")
        w("|---|---|---|---|---|---|---|---|")
        for p in steady:
            cells = []
            for share in ("50", "10"):
                r = next((e for e in steady_e2e if e["fsync"] == p["fsync"]
                          and e["acks"] == p["acks"]
                          and e.get("label") == f"steady-e2e-{share}"), None)
                cells.append(f"{f1(r.get('e2e_p99_ms'))} ({r['records_per_s']:,.0f}/s, "
                             f"{r.get('e2e_received', 0):,.0f}/{r['records']:,.0f} delivered)"
                             if r else "-")
            w(f"| {p['fsync']} | {p['acks']} | {p['mb_per_s']:,.0f} | {pct(p['mb_per_s'], limit)} | "
              f"{f1(p.get('ack_p99_ms'))} | {f1(p.get('broker_cpu_s_per_gb'))} | "
              f"{cells[0]} | {cells[1]} |")
        w("")

    idle = next((r for r in rows if r["kind"] == "idle"), None)

    # Targets of issue #5.
    def find(fsync, size, acks, parts):
        return next((p for p in matrix if p["fsync"] == fsync and p["record_size"] == size
                     and p["acks"] == acks and p["partitions"] == parts), None)

    t = []
    best_1k = max((p["mb_per_s"] for p in matrix if p["fsync"] == "never"
                   and p["record_size"] == 1024 and p["acks"] == "1"), default=None)
    if best_1k and limit:
        t.append(("1 KiB, acks=1, fsync never >= 70% of min(disk, loopback)",
                  f"{best_1k:,.0f} MB/s = {pct(best_1k, limit)} of {limit:,.0f}",
                  best_1k >= 0.7 * limit))
    s1 = next((p for p in steady if p["fsync"] == "never" and p["acks"] == "1"), None)
    if s1 and limit:
        t.append(("... the same, steady-state page cache",
                  f"{s1['mb_per_s']:,.0f} MB/s = {pct(s1['mb_per_s'], limit)} of {limit:,.0f}",
                  s1["mb_per_s"] >= 0.7 * limit))
    if "never" in gc and "always" in gc:
        r = gc["always"]["mb_per_s"] / gc["never"]["mb_per_s"]
        t.append(("fsync always >= 50% of never (acks=all, 8 producers)",
                  f"{gc['always']['mb_per_s']:,.0f} / {gc['never']['mb_per_s']:,.0f} MB/s = "
                  f"{100 * r:.0f}%", r >= 0.5))
    ratios = []
    for p in matrix:
        c = consume_of(p)
        if c and p.get("mb_per_s"):
            ratios.append(c["mb_per_s"] / p["mb_per_s"])
    if ratios:
        worst = min(ratios)
        t.append(("consume >= 1.5x produce",
                  f"median {statistics.median(ratios):.2f}x, worst {worst:.2f}x across cells",
                  worst >= 1.5))
    best_100 = max((p["records_per_s"] for p in matrix if p["fsync"] == "never"
                    and p["record_size"] == 100), default=None)
    if best_100:
        t.append(("100 B records >= 1M rec/s, fsync never", f"{best_100:,.0f} rec/s",
                  best_100 >= 1e6))
    half = [r for r in e2e if r.get("label", "e2e-50") in ("e2e", "e2e-50")]
    if half:
        worst = max(r.get("e2e_p99_ms", 1e9) for r in half)
        t.append(("e2e p99 < 10 ms at 50% of max rate", f"worst cell {worst:.2f} ms", worst < 10))
    steady_half = [r for r in steady_e2e if r.get("label") == "steady-e2e-50"]
    if steady_half:
        worst = max(r.get("e2e_p99_ms", 1e9) for r in steady_half)
        t.append(("... the same, steady-state page cache",
                  ", ".join(f"{r['fsync']}/acks={r['acks']} {r.get('e2e_p99_ms', 0):.2f} ms"
                            for r in steady_half), worst < 10))
    if idle and "broker_cpu_pct" in idle:
        t.append(("1,000 idle connections < 1% CPU",
                  f"{idle['broker_cpu_pct']:.2f}% ({idle.get('still_open', 0):.0f} open)",
                  idle["broker_cpu_pct"] < 1))
    cpu_1k = [p.get("broker_cpu_s_per_gb") for p in matrix
              if p["record_size"] == 1024 and p.get("broker_cpu_s_per_gb")]
    cpu_1kc = [(consume_of(p) or {}).get("broker_cpu_s_per_gb") for p in matrix
               if p["record_size"] == 1024]
    cpu_1kc = [x for x in cpu_1kc if x]
    if cpu_1k:
        t.append(("broker CPU-s/GB produced, 1 KiB < 0.5",
                  f"median {statistics.median(cpu_1k):.2f}, best {min(cpu_1k):.2f}",
                  statistics.median(cpu_1k) < 0.5))
    cpu_steady = [p["broker_cpu_s_per_gb"] for p in steady if p.get("broker_cpu_s_per_gb")]
    if cpu_steady:
        t.append(("... the same, steady-state page cache",
                  ", ".join(f"{p['fsync']}/acks={p['acks']} {p['broker_cpu_s_per_gb']:.2f}"
                            for p in steady if p.get("broker_cpu_s_per_gb")),
                  max(cpu_steady) < 0.5))
    if cpu_1kc:
        t.append(("broker CPU-s/GB consumed, 1 KiB < 0.5",
                  f"median {statistics.median(cpu_1kc):.2f}, best {min(cpu_1kc):.2f}",
                  statistics.median(cpu_1kc) < 0.5))
    w("#### Targets (issue #5)")
    w("")
    w("| target | this run | met |")
    w("|---|---|---|")
    for name, fig, ok in t:
        w(f"| {name} | {fig} | {'yes' if ok else '**no**'} |")
    w("")

    png = plot(matrix, consume_of, out_dir)
    if png:
        w(f"![throughput and p99 latency across the matrix]({os.path.relpath(png, os.path.dirname(os.path.abspath(bench_md)))})")
        w("")
    w(END)
    section = "\n".join(lines) + "\n"

    if os.environ.get("BENCH_NO_WRITE"):
        print(section)
        return
    try:
        with open(bench_md) as f:
            text = f.read()
    except FileNotFoundError:
        text = "# Benchmarks\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(bench_md, "w") as f:
        f.write(text)
    print(section)


def plot(matrix, consume_of, out_dir):
    if not matrix or not shutil.which("gnuplot"):
        return None
    dat = os.path.join(out_dir, "matrix.dat")
    with open(dat, "w") as f:
        f.write("# label produce_mb consume_mb ack_p99_ms\n")
        for p in matrix:
            c = consume_of(p) or {}
            label = f"{p['fsync'][0].upper()}/{p['record_size']}/{p['acks']}/{p['partitions']}"
            f.write(f"\"{label}\" {p['mb_per_s']:.1f} {c.get('mb_per_s', 0):.1f} "
                    f"{max(p.get('ack_p99_ms', 0.001), 0.001):.3f}\n")
    png = os.path.join(out_dir, "matrix.png")
    script = f"""
set terminal pngcairo size 1400,900 font ",10" noenhanced
set output "{png}"
set multiplot layout 2,1 title "Thorstream, librdkafka load tool on the same 2 cores. x: fsync(N=never,A=always)/record bytes/acks/partitions"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel "MB/s"
set xtics rotate by -45 scale 0
set key top right
set grid ytics
plot "{dat}" using 2:xtic(1) title "produce MB/s", "" using 3 title "consume MB/s"
set ylabel "produce-ack p99 (ms, log)"
set logscale y
unset key
plot "{dat}" using 4:xtic(1) title "ack p99 ms" linecolor rgb "#c0392b"
unset multiplot
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True,
                       stderr=subprocess.PIPE)
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"plot failed: {e}", file=sys.stderr)
        return None
    return png


if __name__ == "__main__":
    main()
