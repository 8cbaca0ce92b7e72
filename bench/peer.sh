#!/usr/bin/env bash
# bench/peer.sh: Thorstream beside Apache Kafka on this machine, in one run. Every cell runs
# against both brokers back to back (Thorstream first, then Kafka, then the next cell), each on a
# fresh broker with an empty data dir on the same disk and (as root) a dropped page cache, with
# the same load tool (bench/loadgen, librdkafka). Results: bench/results/peer.jsonl (one JSON
# line per run, with "broker", "durability" and the cell's settings).
#
#   bash bench/peer.sh                 # the whole matrix
#   PEER_ONLY=smoke bash bench/peer.sh # one cell per broker, to check the stage works
#   BENCH_SECONDS=4 bash bench/peer.sh # shorter runs, noisier
#
# Durability at parity, stated per cell:
#   default: Kafka's default (no fsync; flush.messages unset) beside Thorstream --fsync never
#   durable: Kafka with flush.messages=1                     beside Thorstream --fsync always
# Kafka: 4.4 from Maven Central (bench/kafka/pom.xml), one KRaft node in combined mode, Kafka's
# default JVM settings (-Xmx1G; bench/kafka/kafka.sh), ready when it logs "Kafka Server started".
#
# Environment: BENCH_DIR (data directories; default bench/data), BENCH_SECONDS (default 8),
# BENCH_PORT (default 19300; Kafka's controller takes the port after it).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/bench/results"
DATA=${BENCH_DIR:-$ROOT/bench/data}/peer
SECONDS_PER_RUN=${BENCH_SECONDS:-8}
PORT=${BENCH_PORT:-19300}
ADDR="127.0.0.1:$PORT"
THORSTREAM="${CARGO_TARGET_DIR:-$ROOT/target}/release/thorstream"
LOADGEN="$ROOT/bench/loadgen/target/release/loadgen"
RESULTS="$OUT/peer.jsonl"
mkdir -p "$OUT" "$DATA"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "== building (release) and resolving Kafka" >&2
(cd "$ROOT" && cargo build --release --quiet --bin thorstream)
(cd "$ROOT/bench/loadgen" && env -u CARGO_TARGET_DIR cargo build --release --quiet)
if [ ! -s "$ROOT/bench/kafka/classpath.txt" ]; then
    mvn -B -q -Dmaven.repo.local="$ROOT/bench/kafka/.m2" -f "$ROOT/bench/kafka/pom.xml" \
        dependency:build-classpath -Dmdep.outputFile="$ROOT/bench/kafka/classpath.txt" >&2
fi

PID=
LOG="$OUT/peer-broker.log"
stop() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        PID=
    fi
}
trap stop EXIT

fresh() {
    rm -rf "$DATA/broker"
    mkdir -p "$DATA/broker"
    if [ "$(id -u)" = 0 ]; then
        sync
        echo 3 >/proc/sys/vm/drop_caches || true
    fi
}

# Starts BROKER (thorstream|kafka) at DURABILITY (default|durable) on a fresh data dir and waits
# until it serves; sets READY_MS (milliseconds from exec to serving) and PID (not in a subshell:
# call it directly).
start() {
    local broker=$1 durability=$2 t0
    stop
    fresh
    t0=$(date +%s%N)
    if [ "$broker" = thorstream ]; then
        local fsync=never
        [ "$durability" = durable ] && fsync=always
        "$THORSTREAM" --listen "$ADDR" --data-dir "$DATA/broker" --fsync "$fsync" >"$LOG" 2>&1 &
        PID=$!
        until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
            kill -0 "$PID" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
            sleep 0.005
        done
    else
        local mode=
        [ "$durability" = durable ] && mode=durable
        # exec: the pid is the JVM's, so /proc/<pid> CPU and RSS are Kafka's own.
        bash "$ROOT/bench/kafka/kafka.sh" "$PORT" "$DATA/broker" $mode \
            >"$LOG" 2>&1 &
        PID=$!
        until grep -q "Kafka Server started" "$LOG"; do
            kill -0 "$PID" 2>/dev/null || { tail -30 "$LOG" >&2; exit 1; }
            sleep 0.05
        done
        # kafka.sh execs java, so $PID is the JVM once it runs.
    fi
    READY_MS=$((($(date +%s%N) - t0) / 1000000))
}

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$PID/status"; }

# Runs loadgen with the cell's arguments, merges broker/durability/cell fields into its JSON line.
record() { # broker durability extra-json, then loadgen arguments
    local broker=$1 durability=$2 extra=$3 line
    shift 3
    line=$("$LOADGEN" "$@" --broker-pid "$PID") || { echo "loadgen $* failed" >&2; return 1; }
    python3 -c '
import json, sys
d = json.loads(sys.argv[1])
d.update(broker=sys.argv[2], durability=sys.argv[3], rss_kb=int(sys.argv[5] or 0))
d.update(json.loads(sys.argv[4]))
print(json.dumps(d))' "$line" "$broker" "$durability" "$extra" "$(rss_kb)" >>"$RESULTS"
    tail -n 1 "$RESULTS" | cut -c1-200 >&2
}

matrix_cell() { # broker durability size acks partitions
    local b=$1 d=$2 size=$3 acks=$4 parts=$5 topic n consumers
    topic="m-$size-$acks-$parts"
    start "$b" "$d"
    record "$b" "$d" '{"cell":"matrix"}' produce --brokers "$ADDR" --topic "$topic" \
        --duration "$SECONDS_PER_RUN" --record-size "$size" --acks "$acks" --partitions "$parts"
    n=$(tail -n 1 "$RESULTS" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["records"]))')
    consumers=$((parts > 1 ? 2 : 1))
    record "$b" "$d" "{\"cell\":\"matrix\",\"record_size\":$size,\"acks\":\"$acks\"}" consume \
        --brokers "$ADDR" --topic "$topic" --records "$n" --consumers "$consumers"
}

: >"$RESULTS"

if [ "${PEER_ONLY:-}" = smoke ]; then
    for b in thorstream kafka; do matrix_cell "$b" durable 1024 all 1; done
    stop
    exit 0
fi

echo "== start to first produce, idle RSS" >&2
for b in thorstream kafka; do
    for i in 1 2 3; do
        start "$b" durable
        ms=$READY_MS
        t0=$(date +%s%N)
        "$LOADGEN" produce --brokers "$ADDR" --topic first --records 1 --record-size 100 \
            --acks all >/dev/null
        first=$((($(date +%s%N) - t0) / 1000000))
        echo "{\"kind\":\"startup\",\"broker\":\"$b\",\"run\":$i,\"ready_ms\":$ms,\"first_produce_ms\":$first,\"rss_idle_kb\":$(rss_kb)}" >>"$RESULTS"
        tail -n 1 "$RESULTS" >&2
    done
done

echo "== produce / consume matrix" >&2
for d in default durable; do
    for size in 100 1024; do
        for acks in 1 all; do
            for parts in 1 4 16; do
                for b in thorstream kafka; do matrix_cell "$b" "$d" "$size" "$acks" "$parts"; done
            done
        done
    done
done

echo "== group commit: 8 producers, acks=all, 1 KiB, 4 partitions" >&2
for d in default durable; do
    for b in thorstream kafka; do
        start "$b" "$d"
        record "$b" "$d" '{"cell":"group-commit"}' produce --brokers "$ADDR" --topic gc \
            --duration "$SECONDS_PER_RUN" --record-size 1024 --acks all --partitions 4 --producers 8
    done
done

echo "== end-to-end latency at 10% and 50% of the slower broker's maximum (1 KiB, acks=all, 4 partitions)" >&2
for d in default durable; do
    slower=$(python3 - "$RESULTS" "$d" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rates = [r["records_per_s"] for r in rows
         if r.get("kind") == "produce" and r.get("cell") == "matrix" and r["durability"] == sys.argv[2]
         and r["record_size"] == 1024 and r["acks"] == "all" and r["partitions"] == 4]
print(int(min(rates)) if rates else 1000)
EOF
)
    for pct in 10 50; do
        for b in thorstream kafka; do
            start "$b" "$d"
            record "$b" "$d" "{\"cell\":\"e2e-$pct\",\"slower_max\":$slower}" e2e --brokers "$ADDR" \
                --duration 10 --topic e2e --record-size 1024 --acks all --partitions 4 \
                --rate $((slower * pct / 100)) --linger-ms 5
        done
    done
done
stop
echo "== done: $RESULTS" >&2
