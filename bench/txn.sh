#!/usr/bin/env bash
# Transactional produce beside plain produce, one broker per cell, one session: 1 KiB records,
# 1 partition, acks=all; plain (idempotent, 1 producer) vs transactions of 100 and 1,000
# records (1 producer) and of 100 records (8 producers, one transactional.id each), under
# --fsync never and always. Prints one line per cell (records/s, transactions/s, ack p99).
# Needs the release broker and bench/loadgen built (bench/run.sh builds both).
# Usage: bash bench/txn.sh [port]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
L="$ROOT/bench/loadgen/target/release/loadgen"
B="${CARGO_TARGET_DIR:-$ROOT/target}/release/thorstream"
PORT=${1:-21600}
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT
start() {
    rm -rf "$DATA/t"
    "$B" --listen "127.0.0.1:$PORT" --data-dir "$DATA/t" --fsync "$1" >"$DATA/broker.log" 2>&1 &
    BP=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "broker did not start" >&2
    exit 1
}
stop() { kill "$BP" 2>/dev/null || true; wait "$BP" 2>/dev/null || true; }
run() { # label, then loadgen arguments
    local label=$1
    shift
    "$L" produce --brokers "127.0.0.1:$PORT" --duration 8 --record-size 1024 --acks all \
        --partitions 1 --broker-pid "$BP" "$@" 2>/dev/null | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
print("%-32s %8.0f rec/s %7.1f txn/s  ack p99 %s ms" % (sys.argv[1], d["records_per_s"],
      d.get("transactions_per_s", 0), d.get("ack_p99_ms")))' "$label"
}
for fsync in never always; do
    start "$fsync"; run "$fsync plain x1" --topic p --prop enable.idempotence=true; stop
    start "$fsync"; run "$fsync txn100 x1" --topic a --transactional-id b1 --records-per-txn 100; stop
    start "$fsync"; run "$fsync txn1000 x1" --topic a --transactional-id b2 --records-per-txn 1000; stop
    start "$fsync"; run "$fsync txn100 x8" --topic a --transactional-id b3 --records-per-txn 100 --producers 8; stop
done
