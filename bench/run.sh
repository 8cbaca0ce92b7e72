#!/usr/bin/env bash
# bench/run.sh: measure this machine's raw limits, then the standard matrix against the real
# broker binary, driven by librdkafka (bench/loadgen), and write the results into BENCHMARKS.md
# (between the bench/run.sh markers) plus bench/results/matrix.png.
#
#   bash bench/run.sh            # full run (~15 min on 2 cores, then ~45 min of bench/peer.sh)
#   BENCH_SECONDS=3 bash bench/run.sh   # quicker, noisier
#
# Environment: BENCH_DIR (data directory; default bench/data, i.e. the repo's disk),
# BENCH_SECONDS (seconds per produce run, default 8), BENCH_PORT (default 19200),
# BENCH_NO_WRITE=1 (do not touch BENCHMARKS.md), BENCH_PEER=0 (skip the Apache Kafka
# side-by-side, bench/peer.sh, run at the end), BENCH_ONLY=txn (only the transactional
# produce cells and their plain baseline; results in bench/results/results.jsonl, BENCHMARKS.md
# untouched).
#
# Every cell starts a fresh broker on an empty data directory, produces for BENCH_SECONDS,
# then consumes everything it produced from the start; the broker's CPU time is read from
# /proc/<pid>/stat around each phase. When run as root, the page cache is dropped before each
# cell so that every cell starts from the same memory state (on this VM, writing into pages the
# guest never touched before costs 2-5x more kernel time than reusing freed ones).
#
# Steady state: on this VM (Firecracker, free page reporting on) every page the guest frees is
# handed back to the host within moments, so a write(2) into the page cache of a fresh broker
# pays a host page fault per 4 KiB page: several times the cost of the copy itself. A broker
# that has run for a while has a full page cache and recycles pages instead. As root, with a
# cgroup memory controller, a last stage runs the broker inside a 1 GiB memory cgroup and
# writes 1.5 GB before measuring, so the cells measure a recycling page cache (labels
# `steady*` in the results; BENCHMARKS.md explains).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
OUT="$ROOT/bench/results"
DATA=${BENCH_DIR:-$ROOT/bench/data}
SECONDS_PER_RUN=${BENCH_SECONDS:-8}
PORT=${BENCH_PORT:-19200}
ADDR="127.0.0.1:$PORT"
BROKER="${CARGO_TARGET_DIR:-$ROOT/target}/release/thorstream"
LOADGEN="$ROOT/bench/loadgen/target/release/loadgen"
RESULTS="$OUT/results.jsonl"

mkdir -p "$OUT" "$DATA"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if ! command -v gnuplot >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y -q gnuplot-nox >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q gnuplot-nox >/dev/null; }
    else
        echo "bench/run.sh: gnuplot not found (the plot will be skipped)" >&2
    fi
fi

echo "== building (release)" >&2
(cd "$ROOT" && cargo build --release --quiet --bin thorstream)
# (loadgen is its own workspace with its own target dir, whatever CARGO_TARGET_DIR says)
(cd "$ROOT/bench/loadgen" && env -u CARGO_TARGET_DIR cargo build --release --quiet)

# Memory cgroup for the steady-state stage (empty: not available, the stage is skipped).
MEMCG=
setup_memcg() {
    [ "$(id -u)" = 0 ] || return 1
    local limit=$((1024 * 1024 * 1024))
    if [ -w /sys/fs/cgroup/memory ]; then # cgroup v1
        MEMCG=/sys/fs/cgroup/memory/thorstream-bench
        mkdir -p "$MEMCG" && echo "$limit" >"$MEMCG/memory.limit_in_bytes" || MEMCG=
    elif grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then # cgroup v2
        echo +memory >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
        MEMCG=/sys/fs/cgroup/thorstream-bench
        mkdir -p "$MEMCG" && echo "$limit" >"$MEMCG/memory.max" || MEMCG=
    fi
    [ -n "$MEMCG" ]
}

BROKER_PID=
stop_broker() {
    if [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
        BROKER_PID=
    fi
}
trap stop_broker EXIT

fresh_state() {
    rm -rf "$DATA/broker"
    mkdir -p "$DATA/broker"
    drop_page_cache
}

start_broker() { # fsync policy [memcg]
    stop_broker
    fresh_state
    if [ -n "${2:-}" ]; then
        # The shell joins the cgroup, then becomes the broker (same pid).
        sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$2" \
            "$BROKER" --listen "$ADDR" --data-dir "$DATA/broker" --fsync "$1" \
            >"$OUT/broker.log" 2>&1 &
    else
        "$BROKER" --listen "$ADDR" --data-dir "$DATA/broker" --fsync "$1" \
            >"$OUT/broker.log" 2>&1 &
    fi
    BROKER_PID=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "broker did not start; see $OUT/broker.log" >&2
    exit 1
}

# Appends the JSON line of one loadgen run to the results, with the cell's settings merged in.
record() { # fsync-policy, then the loadgen arguments
    local fsync=$1
    shift
    local line
    line=$("$LOADGEN" "$@") || { echo "loadgen $* failed" >&2; return 1; }
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["fsync"]=sys.argv[2]; print(json.dumps(d))' \
        "$line" "$fsync" >>"$RESULTS"
    tail -n 1 "$RESULTS"
}

: >"$RESULTS"

COMMON=(--brokers "$ADDR" --duration "$SECONDS_PER_RUN")

# Transactional produce (KIP-98): 1 KiB records, 100 and 1,000 records per transaction
# (commit_transaction after each, which waits for every delivery), beside the same cell without
# transactions (acks=all, idempotent as a transactional producer is), per fsync policy.
txn_cells() {
    echo "== transactional produce: 1 KiB, 1 partition, acks=all" >&2
    for fsync in never always; do
        start_broker "$fsync"
        record "$fsync" produce "${COMMON[@]}" --topic txn-plain --record-size 1024 --acks all \
            --partitions 1 --prop enable.idempotence=true --broker-pid "$BROKER_PID" \
            --label "txn-baseline" >/dev/null
        tail -n 1 "$RESULTS" | cut -c1-220 >&2
        for per_txn in 100 1000; do
            start_broker "$fsync"
            record "$fsync" produce "${COMMON[@]}" --topic "txn-$per_txn" --record-size 1024 \
                --acks all --partitions 1 --transactional-id "bench-txn-$per_txn" \
                --records-per-txn "$per_txn" --broker-pid "$BROKER_PID" \
                --label "txn" >/dev/null
            tail -n 1 "$RESULTS" | cut -c1-260 >&2
        done
    done
    stop_broker
}

if [ "${BENCH_ONLY:-}" = txn ]; then
    txn_cells
    python3 - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = {r["fsync"]: r for r in rows if r.get("label") == "txn-baseline"}
for r in rows:
    if r.get("label") == "txn":
        b = base.get(r["fsync"])
        share = f"{100 * r['records_per_s'] / b['records_per_s']:.0f}% of plain" if b else ""
        print(f"fsync={r['fsync']} records/txn={r['records_per_txn']:.0f}: "
              f"{r['records_per_s']:,.0f} rec/s, {r['mb_per_s']:.1f} MB/s, "
              f"{r['transactions_per_s']:,.1f} txn/s, ack p99 {r.get('ack_p99_ms')} ms {share}")
for f, b in base.items():
    print(f"fsync={f} plain (acks=all, idempotent): {b['records_per_s']:,.0f} rec/s, "
          f"{b['mb_per_s']:.1f} MB/s")
EOF
    exit 0
fi

echo "== raw limits" >&2
# One unmeasured pass first: the first write into never-touched guest pages is much slower
# than later ones on this VM, and the broker runs below are measured in the warmed state.
dd if=/dev/zero of="$DATA/dd.tmp" bs=1M count=1024 conv=fdatasync 2>/dev/null
rm -f "$DATA/dd.tmp"
for i in 1 2 3; do
    fresh_state
    # dd's own system time is the kernel's cost of buffered writes per GB on this machine: the
    # floor under the broker's CPU-s/GB for produce.
    out=$( { LC_ALL=C /usr/bin/time -f "SYS %S" dd if=/dev/zero of="$DATA/dd.tmp" bs=1M count=2048 conv=fdatasync 2>&1 >/dev/null; } )
    secs=$(echo "$out" | awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") print $(i-1) }')
    sys=$(echo "$out" | awk '/^SYS/ { print $2 }')
    rm -f "$DATA/dd.tmp"
    python3 -c 'import json,sys; s=float(sys.argv[1]); print(json.dumps({"kind":"dd","run":int(sys.argv[2]),"seconds":s,"mb_per_s":2147.483648/s,"sys_s_per_gb":float(sys.argv[3])/2.147483648}))' \
        "$secs" "$i" "$sys" >>"$RESULTS"
    tail -n 1 "$RESULTS"
done
"$LOADGEN" fsync-lat --dir "$DATA" --block 4096 --count 2000 >>"$RESULTS"; tail -n 1 "$RESULTS"
"$LOADGEN" tcp-bw --seconds 5 >>"$RESULTS"; tail -n 1 "$RESULTS"

echo "== produce / consume matrix" >&2
for fsync in never always; do
    for size in 100 1024; do
        for acks in 1 all; do
            for parts in 1 4 16; do
                label="produce fsync=$fsync size=$size acks=$acks partitions=$parts"
                echo "-- $label" >&2
                start_broker "$fsync"
                topic="m-$size-$acks-$parts"
                record "$fsync" produce "${COMMON[@]}" --topic "$topic" --record-size "$size" \
                    --acks "$acks" --partitions "$parts" --broker-pid "$BROKER_PID" \
                    --label "matrix" >/dev/null
                n=$(tail -n 1 "$RESULTS" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["records"]))')
                # One librdkafka consumer is CPU-bound in the client (records are handed over
                # one poll() at a time); with several partitions, two instances share them.
                consumers=$((parts > 1 ? 2 : 1))
                record "$fsync" consume --brokers "$ADDR" --topic "$topic" --records "$n" \
                    --consumers "$consumers" \
                    --broker-pid "$BROKER_PID" --label "matrix size=$size acks=$acks partitions=$parts" >/dev/null
                tail -n 2 "$RESULTS" | cut -c1-220 >&2
            done
        done
    done
done

echo "== group commit: 8 producers, acks=all" >&2
for fsync in never always; do
    start_broker "$fsync"
    record "$fsync" produce "${COMMON[@]}" --topic gc --record-size 1024 --acks all \
        --partitions 4 --producers 8 --broker-pid "$BROKER_PID" --label "group-commit" >/dev/null
    tail -n 1 "$RESULTS" | cut -c1-220 >&2
done

echo "== end-to-end latency at 50% and 10% of the measured maximum" >&2
for pct in 50 10; do
for fsync in never always; do
    for acks in 1 all; do
        max=$(python3 - "$RESULTS" "$fsync" "$acks" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in rows:
    if (r.get("kind") == "produce" and r.get("label") == "matrix" and r["fsync"] == sys.argv[2]
            and r["acks"] == sys.argv[3] and r["record_size"] == 1024 and r["partitions"] == 4):
        print(int(r["records_per_s"]))
EOF
)
        rate=$((max * pct / 100))
        start_broker "$fsync"
        record "$fsync" e2e --brokers "$ADDR" --duration 10 --topic e2e --record-size 1024 \
            --acks "$acks" --partitions 4 --rate "$rate" --linger-ms 5 \
            --broker-pid "$BROKER_PID" --label "e2e-$pct" >/dev/null
        tail -n 1 "$RESULTS" | cut -c1-260 >&2
    done
done
done

txn_cells

echo "== 1000 idle connections" >&2
start_broker always
record always idle --brokers "$ADDR" --connections 1000 --seconds 10 --broker-pid "$BROKER_PID" >/dev/null
tail -n 1 "$RESULTS" >&2
stop_broker

if setup_memcg; then
    echo "== steady-state page cache: broker in a 1 GiB memory cgroup, 1.5 GB written first" >&2
    prefill() {
        "$LOADGEN" produce --brokers "$ADDR" --topic prefill --records 1500000 \
            --record-size 1024 --partitions 4 >/dev/null
    }
    for cell in "never 1" "always all"; do
        read -r fsync acks <<<"$cell"
        start_broker "$fsync" "$MEMCG"
        prefill
        record "$fsync" produce "${COMMON[@]}" --topic "s-$acks" --record-size 1024 \
            --acks "$acks" --partitions 4 --broker-pid "$BROKER_PID" --label "steady" >/dev/null
        tail -n 1 "$RESULTS" | cut -c1-220 >&2
        max=$(tail -n 1 "$RESULTS" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["records_per_s"]))')
        for pct in 50 10; do
            start_broker "$fsync" "$MEMCG"
            prefill
            record "$fsync" e2e --brokers "$ADDR" --duration 10 --topic e2e --record-size 1024 \
                --acks "$acks" --partitions 4 --rate $((max * pct / 100)) --linger-ms 5 \
                --broker-pid "$BROKER_PID" --label "steady-e2e-$pct" >/dev/null
            tail -n 1 "$RESULTS" | cut -c1-260 >&2
        done
    done
    stop_broker
    rmdir "$MEMCG" 2>/dev/null || true
else
    echo "== steady-state stage skipped (needs root and a cgroup memory controller)" >&2
fi
rm -rf "$DATA/broker"

echo "== report" >&2
python3 "$ROOT/bench/report.py" "$RESULTS" "$OUT" "$ROOT/BENCHMARKS.md" \
    "bash bench/run.sh (BENCH_SECONDS=$SECONDS_PER_RUN)"

# The side-by-side with Apache Kafka (its own section of BENCHMARKS.md; ~30 min more).
if [ "${BENCH_PEER:-1}" != 0 ] && [ "${BENCH_ONLY:-}" != txn ]; then
    echo "== peer stage: bench/peer.sh (BENCH_PEER=0 skips it)" >&2
    BENCH_PORT=$((PORT + 100)) bash "$ROOT/bench/peer.sh"
fi
