#!/usr/bin/env bash
# bench/peer.sh: Thorstream beside Apache Kafka on this machine, in one run. Every cell runs
# against both brokers back to back, PEER_ROUNDS times (default 2), the order reversed in every
# other round and from cell to cell (T K K T, then K T T K: on this VM the slot a run takes
# moves its figures, see bench/lib.sh; the report takes each cell's median), each on a
# fresh broker with an empty data dir on the same disk and (as root) a dropped page cache, with
# the same load tool (bench/loadgen, librdkafka). Results: bench/results/peer.jsonl (one JSON
# line per run, with "broker", "durability" and the cell's settings); a whole run then writes
# the "Thorstream vs Apache Kafka on this machine" section of BENCHMARKS.md (bench/peer_report.py).
# bench/run.sh ends by calling it (BENCH_PEER=0 skips it there).
#
#   bash bench/peer.sh                 # the whole matrix
#   PEER_ONLY=smoke bash bench/peer.sh # one cell per broker, to check the stage works
#   BENCH_SECONDS=4 bash bench/peer.sh # shorter runs, noisier
#   PEER_ONLY=startup,partitions bash bench/peer.sh  # only those stages (results overwritten)
#
# Durability at parity, stated per cell:
#   default: Kafka's default (no fsync; flush.messages unset) beside Thorstream --fsync never
#   durable: Kafka with flush.messages=1                     beside Thorstream --fsync always
# Kafka: 4.4 from Maven Central (bench/kafka/pom.xml), one KRaft node in combined mode, Kafka's
# default JVM settings (-Xmx1G; bench/kafka/kafka.sh), ready when it logs "Kafka Server started".
#
# Environment: BENCH_DIR (data directories; default bench/data), BENCH_SECONDS (default 8),
# BENCH_PORT (default 19300; Kafka's controller takes the port after it), PEER_RESULTS (the
# JSON lines file; default bench/results/peer.jsonl), PEER_ROUNDS (runs per cell and broker of
# the matrix, group-commit, e2e and perf stages; default 2), PEER_SIZES (the matrix's record sizes;
# default "100 1024"); PEER_DURABILITIES, PEER_ACKS, PEER_PARTITIONS narrow the matrix (defaults
# "default durable", "1 all", "1 4 16"), and PEER_BROKERS names its brokers in run order
# (default "thorstream kafka"; `thorstream-direct` is Thorstream with --log-io direct, see
# bench/logio.sh), PEER_LOADGEN another load tool binary (an older build, for an A/B of the tool).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
OUT="$ROOT/bench/results"
DATA=${BENCH_DIR:-$ROOT/bench/data}/peer
SECONDS_PER_RUN=${BENCH_SECONDS:-8}
PORT=${BENCH_PORT:-19300}
ADDR="127.0.0.1:$PORT"
THORSTREAM="${CARGO_TARGET_DIR:-$ROOT/target}/release/thorstream"
LOADGEN="${PEER_LOADGEN:-$ROOT/bench/loadgen/target/release/loadgen}"
RESULTS="${PEER_RESULTS:-$OUT/peer.jsonl}"
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

fresh() { # [warm]: keep the page cache (the binary and jars stay cached)
    rm -rf "$DATA/broker"
    mkdir -p "$DATA/broker"
    if [ "${1:-}" != warm ]; then
        drop_page_cache
    fi
}

# Execs BROKER (thorstream|kafka) at DURABILITY (default|durable) in the background, without
# waiting; sets PID and T0 (ns since the epoch, taken right before the exec). A third argument
# `keep` reuses the data dir (a restart); `warm` starts empty but keeps the page cache;
# otherwise it starts empty with (as root) a dropped page cache.
launch() {
    local broker=$1 durability=$2 keep=${3:-}
    stop
    case "$keep" in
        keep) ;;
        warm) fresh warm ;;
        *) fresh ;;
    esac
    mkdir -p "$DATA/broker"
    T0=$(date +%s%N)
    if [ "$broker" != kafka ]; then
        local fsync=never log_io=buffered
        [ "$durability" = durable ] && fsync=always
        [ "$broker" = thorstream-direct ] && log_io=direct
        # The initial rebalance delay is 0 on both brokers (kafka.sh sets Kafka's), so the
        # Java consumer's group join is not a fixed 3 s wait on either.
        "$THORSTREAM" --listen "$ADDR" --data-dir "$DATA/broker" --fsync "$fsync" \
            --log-io "$log_io" --group-initial-rebalance-delay-ms 0 >"$LOG" 2>&1 &
    else
        local mode=
        [ "$durability" = durable ] && mode=durable
        # kafka.sh execs java, so $PID is the JVM's and /proc/<pid> CPU and RSS are Kafka's own.
        bash "$ROOT/bench/kafka/kafka.sh" "$PORT" "$DATA/broker" $mode >"$LOG" 2>&1 &
    fi
    PID=$!
}

# launch, then wait until the broker serves (Thorstream: its port accepts; Kafka: it logs
# "Kafka Server started"); sets READY_MS (milliseconds from exec to serving). Not in a
# subshell: call it directly.
start() {
    local broker=$1
    launch "$@"
    if [ "$broker" != kafka ]; then
        until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
            kill -0 "$PID" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
            sleep 0.005
        done
    else
        until grep -q "Kafka Server started" "$LOG"; do
            kill -0 "$PID" 2>/dev/null || { tail -30 "$LOG" >&2; exit 1; }
            sleep 0.05
        done
    fi
    READY_MS=$((($(date +%s%N) - T0) / 1000000))
}

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$PID/status"; }
# Peak RSS since the broker started (VmHWM): its memory under the load just run.
rss_peak_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$PID/status"; }
# The broker's CPU seconds so far (utime + stime; neither command name has spaces).
cpu_s() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$PID/stat"; }

# Runs loadgen with the cell's arguments, merges broker/durability/cell fields into its JSON line.
record() { # broker durability extra-json, then loadgen arguments
    local broker=$1 durability=$2 extra=$3 line
    shift 3
    line=$("$LOADGEN" "$@" --broker-pid "$PID") || { echo "loadgen $* failed" >&2; return 1; }
    python3 -c '
import json, sys
d = json.loads(sys.argv[1])
d.update(broker=sys.argv[2], durability=sys.argv[3], rss_kb=int(sys.argv[5] or 0),
         rss_peak_kb=int(sys.argv[6] or 0), round=int(sys.argv[7]))
d.update(json.loads(sys.argv[4]))
print(json.dumps(d))' "$line" "$broker" "$durability" "$extra" "$(rss_kb)" "$(rss_peak_kb)" "$ROUND" >>"$RESULTS"
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

# The brokers of the next cell in run order (`run_order`, bench/lib.sh: reversed in even cells).
# Sets ORDER; call it directly, not in a subshell (it counts cells).
CELL_N=0
cell_order() {
    CELL_N=$((CELL_N + 1))
    ORDER=$(run_order "$CELL_N" "$@")
}

# The runs of the current cell as round:broker words, PEER_ROUNDS rounds of ORDER, reversed in
# even rounds; `use_run` takes one apart into ROUND and B. Loop as
#   for rb in $(cell_runs); do use_run "$rb"; ...; done
ROUNDS=${PEER_ROUNDS:-2}
ROUND=1
cell_runs() {
    local r b
    for r in $(seq 1 "$ROUNDS"); do
        # shellcheck disable=SC2086 # a list of broker names
        for b in $(run_order "$r" $ORDER); do echo "$r:$b"; done
    done
}
use_run() {
    ROUND=${1%%:*}
    B=${1#*:}
}

: >"$RESULTS"

if [ "${PEER_ONLY:-}" = smoke ]; then
    for b in thorstream kafka; do matrix_cell "$b" durable 1024 all 1; done
    stop
    exit 0
fi

# PEER_ONLY=startup,matrix,group,e2e,perf,partitions runs only those stages (all by default).
want() { [ -z "${PEER_ONLY:-}" ] || [[ ",$PEER_ONLY," == *",$1,"* ]]; }

if want startup; then
echo "== start to first produce, idle RSS" >&2
# From the exec to the port accepting and to a first acknowledged record (loadgen first: one
# librdkafka producer, linger 0, acks=all, the topic auto-created), 5 starts per broker: the
# first cold (page cache dropped: the binary or jars are read from disk), four warm; RSS right
# after that record and after 5 s idle.
for b in thorstream kafka; do
    for i in 1 2 3 4 5; do
        cache=warm
        [ "$i" = 1 ] && cache=cold
        launch "$b" durable "$([ "$cache" = warm ] && echo warm)"
        line=$("$LOADGEN" first --brokers "$ADDR" --topic first --since-unix-ns "$T0")
        rss_first=$(rss_kb)
        sleep 5 # idle on purpose: the RSS of a broker left alone, not a synchronisation
        echo "$line" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
d.update(kind="startup", broker=sys.argv[1], run=int(sys.argv[2]), rss_after_first_kb=int(sys.argv[3]),
         rss_idle_kb=int(sys.argv[4]), cache=sys.argv[5])
print(json.dumps(d))' "$b" "$i" "$rss_first" "$(rss_kb)" "$cache" >>"$RESULTS"
        tail -n 1 "$RESULTS" >&2
    done
done
fi

if want matrix; then
echo "== produce / consume matrix" >&2
for d in ${PEER_DURABILITIES:-default durable}; do
    for size in ${PEER_SIZES:-100 1024}; do
        for acks in ${PEER_ACKS:-1 all}; do
            for parts in ${PEER_PARTITIONS:-1 4 16}; do
                # shellcheck disable=SC2086 # a list of broker names
                cell_order ${PEER_BROKERS:-thorstream kafka}
                for rb in $(cell_runs); do
                    use_run "$rb"
                    matrix_cell "$B" "$d" "$size" "$acks" "$parts"
                done
            done
        done
    done
done
fi

if want group; then
echo "== group commit: 8 producers, acks=all, 1 KiB, 4 partitions" >&2
for d in default durable; do
    cell_order thorstream kafka
    for rb in $(cell_runs); do
        use_run "$rb"
        start "$B" "$d"
        record "$B" "$d" '{"cell":"group-commit"}' produce --brokers "$ADDR" --topic gc \
            --duration "$SECONDS_PER_RUN" --record-size 1024 --acks all --partitions 4 --producers 8
    done
done
fi

if want e2e; then
echo "== end-to-end latency at 10% and 50% of the slower broker's maximum (1 KiB, acks=all, 4 partitions)" >&2
for d in default durable; do
    slower=$(python3 - "$RESULTS" "$d" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rates = {}
for r in rows:
    if (r.get("kind") == "produce" and r.get("cell") == "matrix" and r["durability"] == sys.argv[2]
            and r["record_size"] == 1024 and r["acks"] == "all" and r["partitions"] == 4):
        rates.setdefault(r["broker"], []).append(r["records_per_s"])
# the slower broker by its median over the rounds, as the report compares them
print(int(min(statistics.median(v) for v in rates.values())) if rates else 1000)
EOF
)
    for pct in 10 50; do
        cell_order thorstream kafka
        for rb in $(cell_runs); do
            use_run "$rb"
            start "$B" "$d"
            record "$B" "$d" "{\"cell\":\"e2e-$pct\",\"slower_max\":$slower}" e2e --brokers "$ADDR" \
                --duration 10 --topic e2e --record-size 1024 --acks all --partitions 4 \
                --rate $((slower * pct / 100)) --linger-ms 5
        done
    done
done
fi

if want perf; then
echo "== second opinion: kafka-producer-perf-test / kafka-consumer-perf-test (Java client 4.4, its defaults)" >&2
# 1 KiB, 4 partitions (created by loadgen with one record), acks 1 and all, both durabilities:
# ProducerPerformance --throughput -1 with the Java producer's defaults (batch.size 16 KiB,
# linger.ms 5), then ConsumerPerformance (a group member; its fetch-phase rate is reported, the
# group join apart). The broker's CPU is read from /proc around each tool.
JAVA_CP=$(cat "$ROOT/bench/kafka/classpath.txt")
perf_cell() { # broker durability acks records
    local b=$1 d=$2 acks=$3 n=$4 c0 c1 c2 pline cline
    start "$b" "$d"
    "$LOADGEN" produce --brokers "$ADDR" --topic pt --records 1 --partitions 4 >/dev/null 2>&1
    c0=$(cpu_s)
    pline=$(java -Xmx512m -cp "$JAVA_CP" org.apache.kafka.tools.ProducerPerformance --topic pt \
        --num-records "$n" --record-size 1024 --throughput -1 \
        --producer-props bootstrap.servers="$ADDR" acks="$acks" 2>/dev/null | grep '99.9th' | tail -n 1)
    c1=$(cpu_s)
    cline=$(java -Xmx512m -cp "$JAVA_CP" org.apache.kafka.tools.ConsumerPerformance \
        --bootstrap-server "$ADDR" --topic pt --num-records "$n" --timeout 60000 2>/dev/null \
        | grep -A1 '^start.time' | tail -n 1)
    c2=$(cpu_s)
    python3 - "$b" "$d" "$acks" "$n" "$c0" "$c1" "$c2" "$pline" "$cline" "$(rss_peak_kb)" "$ROUND" >>"$RESULTS" <<'PY'
import json, re, sys
b, d, acks, n, c0, c1, c2, pline, cline, peak, rnd = sys.argv[1:]
n = int(n)
m = re.search(r"([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max "
              r"latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th", pline)
row = dict(kind="perf-test", broker=b, durability=d, acks=acks, record_size=1024, partitions=4,
           records=n, rss_peak_kb=int(peak or 0), round=int(rnd))
if m:
    row.update(records_per_s=float(m[1]), mb_per_s=float(m[2]), p50_ms=float(m[5]),
               p99_ms=float(m[7]), p999_ms=float(m[8]))
    gb = n * 1024 / 1e9
    row.update(broker_cpu_s=float(c1) - float(c0), broker_cpu_s_per_gb=(float(c1) - float(c0)) / gb)
c = [x.strip() for x in cline.split(",")]
if len(c) >= 10:
    gb = n * 1024 / 1e9
    row.update(consume_mb_per_s=float(c[8]), consume_records_per_s=float(c[9]),
               consume_group_join_ms=float(c[6]),
               consume_broker_cpu_s_per_gb=(float(c2) - float(c1)) / gb)
print(json.dumps(row))
PY
    tail -n 1 "$RESULTS" | cut -c1-240 >&2
}
for d in default durable; do
    n=1000000
    [ "$d" = durable ] && n=300000
    n=${PEER_PERF_RECORDS:-$n}
    for acks in 1 all; do
        cell_order thorstream kafka
        for rb in $(cell_runs); do
            use_run "$rb"
            perf_cell "$B" "$d" "$acks" "$n"
        done
    done
done
fi

if want partitions; then
echo "== 10,000 partitions: create, full Metadata, idle CPU and RSS, restart" >&2
# 100 topics x 100 partitions (CreateTopics of 10 topics per request), 20 full Metadata
# requests timed, 10 s of idle CPU; then a clean stop and a restart on the same data dir, timed
# from the exec to a first acknowledged record (loadgen first, to one of those partitions).
for b in thorstream kafka; do
    start "$b" durable
    line=$("$LOADGEN" partitions --brokers "$ADDR" --topics 100 --partitions 100 \
        --idle-seconds 10 --broker-pid "$PID") || { echo "partitions on $b failed" >&2; continue; }
    rss=$(rss_kb)
    launch "$b" durable keep
    restart=$("$LOADGEN" first --brokers "$ADDR" --topic parts-0 --since-unix-ns "$T0")
    python3 -c '
import json, sys
d = json.loads(sys.argv[1])
r = json.loads(sys.argv[2])
d.update(broker=sys.argv[3], rss_kb=int(sys.argv[4] or 0), restart_accepting_ms=r["accepting_ms"],
         restart_first_produce_ms=r["first_produce_ms"])
print(json.dumps(d))' "$line" "$restart" "$b" "$rss" >>"$RESULTS"
    tail -n 1 "$RESULTS" >&2
done
fi

stop
echo "== done: $RESULTS" >&2
# A whole run writes the opening section of BENCHMARKS.md and bench/results/peer.png.
if [ -z "${PEER_ONLY:-}" ] && [ -z "${BENCH_NO_WRITE:-}" ]; then
    python3 "$ROOT/bench/peer_report.py" "$RESULTS" "$OUT" "$ROOT/BENCHMARKS.md" \
        "bash bench/peer.sh$([ "$SECONDS_PER_RUN" = 8 ] || echo " (BENCH_SECONDS=$SECONDS_PER_RUN)")"
fi
