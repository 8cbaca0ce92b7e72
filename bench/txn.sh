#!/usr/bin/env bash
# Transactional produce beside plain produce, one broker per cell, one session: 1 KiB records,
# 1 partition, acks=all; plain (idempotent) vs transactions of 100 records with 1, 8 and 32
# producers (one transactional.id each; plain with as many producers beside each) and of 1,000
# records (1 producer), under --fsync never and always. The 8- and 32-producer cells show the
# broker's capacity; the 1-producer cells one client's round trips. Prints one line per cell
# (records/s, transactions/s, ack p99).
# Needs the release broker and bench/loadgen built (bench/run.sh builds both).
# Usage: bash bench/txn.sh [port]
# Env: THORSTREAM_BIN (the broker binary), FSYNCS (default "never always"), BENCH_SECONDS (8),
#      LABEL (prefixed to every line: for alternating two binaries in one session).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
L="${LOADGEN:-$ROOT/bench/loadgen/target/release/loadgen}"
B="${THORSTREAM_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/thorstream}"
SECS=${BENCH_SECONDS:-8}
LABEL=${LABEL:-}
PORT=${1:-21600}
DATA=$(mktemp -d)
BP=
trap 'stop; rm -rf "$DATA"' EXIT
start() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        echo "port $PORT is already in use" >&2
        exit 1
    fi
    rm -rf "$DATA/t"
    drop_page_cache
    "$B" --listen "127.0.0.1:$PORT" --data-dir "$DATA/t" --fsync "$1" >"$DATA/broker.log" 2>&1 &
    BP=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "broker did not start" >&2
    exit 1
}
stop() {
    if [ -n "$BP" ]; then
        kill "$BP" 2>/dev/null || true
        wait "$BP" 2>/dev/null || true
        BP=
    fi
}
run() { # label, then loadgen arguments
    local label=$1
    shift
    # A cell that fails (e.g. loadgen's 60 s final flush under a plain x32 backlog) prints
    # "failed" and the matrix goes on.
    { "$L" produce --brokers "127.0.0.1:$PORT" --duration "$SECS" --record-size 1024 --acks all \
        --partitions 1 --broker-pid "$BP" "$@" 2>/dev/null || true; } | python3 -c '
import json, sys
try:
    d = json.loads(sys.stdin.read())
except ValueError:
    print("%-40s failed" % sys.argv[1])
    sys.exit(0)
print("%-40s %8.0f rec/s %7.1f txn/s  ack p99 %s ms" % (sys.argv[1], d["records_per_s"],
      d.get("transactions_per_s", 0), d.get("ack_p99_ms")))' "$LABEL$label"
}
for fsync in ${FSYNCS:-never always}; do
    start "$fsync"; run "$fsync plain x1" --topic p --prop enable.idempotence=true; stop
    start "$fsync"; run "$fsync txn100 x1" --topic a --transactional-id b1 --records-per-txn 100; stop
    start "$fsync"; run "$fsync txn1000 x1" --topic a --transactional-id b2 --records-per-txn 1000; stop
    for n in 8 32; do
        start "$fsync"; run "$fsync plain x$n" --topic p --prop enable.idempotence=true --producers "$n"; stop
        start "$fsync"; run "$fsync txn100 x$n" --topic a --transactional-id "b$n" --records-per-txn 100 --producers "$n"; stop
    done
done
