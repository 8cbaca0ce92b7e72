#!/usr/bin/env bash
# bench/txn.sh's cells against Apache Kafka (bench/kafka/kafka.sh: one KRaft node, Kafka's
# default JVM settings), for scale: plain (idempotent) and transactions of 100 records, 1 and 8
# producers, 1 KiB records, 1 partition, acks=all; Kafka's default (no fsync) and `durable`
# (flush.messages=1). One fresh broker and a dropped page cache per cell. Prints one line per
# cell (records/s, transactions/s).
# Usage: bash bench/txn_kafka.sh [port]   Env: BENCH_SECONDS (8).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
L="${LOADGEN:-$ROOT/bench/loadgen/target/release/loadgen}"
PORT=${1:-19450}
SECS=${BENCH_SECONDS:-8}
DATA=$(mktemp -d)
KP=
stop() {
    if [ -n "$KP" ]; then
        # kafka.sh execs java: this is the JVM.
        kill "$KP" 2>/dev/null || true
        wait "$KP" 2>/dev/null || true
        KP=
    fi
}
trap 'stop; rm -rf "$DATA"' EXIT
cells=(
    "plain x1|--topic p --prop enable.idempotence=true"
    "txn100 x1|--topic a --transactional-id b1 --records-per-txn 100"
    "plain x8|--topic p --prop enable.idempotence=true --producers 8"
    "txn100 x8|--topic a --transactional-id b8 --records-per-txn 100 --producers 8"
)
for mode in default durable; do
    for cell in "${cells[@]}"; do
        name=${cell%%|*}
        read -r -a args <<<"${cell#*|}"
        rm -rf "$DATA/k"
        mkdir -p "$DATA/k"
        drop_page_cache
        m=
        [ "$mode" = durable ] && m=durable
        bash "$ROOT/bench/kafka/kafka.sh" "$PORT" "$DATA/k" $m >"$DATA/log" 2>&1 &
        KP=$!
        until grep -q "Kafka Server started" "$DATA/log"; do
            kill -0 "$KP" 2>/dev/null || { tail -20 "$DATA/log" >&2; exit 1; }
            sleep 0.2
        done
        { "$L" produce --brokers "127.0.0.1:$PORT" --duration "$SECS" --record-size 1024 \
            --acks all --partitions 1 "${args[@]}" 2>/dev/null || true; } | python3 -c '
import json, sys
try:
    d = json.loads(sys.stdin.read())
except ValueError:
    print("kafka %-8s %-10s failed" % (sys.argv[1], sys.argv[2]))
    sys.exit(0)
print("kafka %-8s %-10s %8.0f rec/s %7.1f txn/s" % (sys.argv[1], sys.argv[2],
      d["records_per_s"], d.get("transactions_per_s", 0)))' "$mode" "$name"
        stop
    done
done
