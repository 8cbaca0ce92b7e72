#!/usr/bin/env bash
# A/B of two broker binaries on the same machine in the same run, alternating, on the cells a
# change touches: consume (1 KiB records, 4 partitions, 2 consumers), lz4-compressed
# produce (1 KiB, acks=1), and end-to-end latency at a fixed rate (1 KiB, 4 partitions,
# 20,000 records/s, acks=1; a consumer long-polling beside the producer). Prints one JSON line per run with the binary's label.
#   bash bench/ab.sh <label-a> <binary-a> <label-b> <binary-b> [rounds=4]
# The order alternates by round (a b, b a, ...; use an even number of rounds; `run_order` in
# bench/lib.sh): one binary on both sides consumed ~25 % faster in the first slot of both rounds
# here (2026-12-02; BENCHMARKS.md), so a fixed order would credit the slot to one side.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
LOADGEN=bench/loadgen/target/release/loadgen
[ -x "$LOADGEN" ] || cargo build --release --manifest-path bench/loadgen/Cargo.toml
PORT=${PORT:-19292}
ADDR=127.0.0.1:$PORT
DATA=$(mktemp -d /tmp/thorstream-ab.XXXXXX)
ROUNDS=${5:-4}
BROKER_PID=
stop() { [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null; BROKER_PID=; true; }
trap 'stop; rm -rf "$DATA"' EXIT
start() { # binary
    stop
    rm -rf "$DATA/b"; mkdir -p "$DATA/b"
    drop_page_cache
    "$1" --listen "$ADDR" --data-dir "$DATA/b" --fsync never >"$DATA/log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "broker did not start" >&2; exit 1
}
tag() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["binary"]=sys.argv[2]; print(json.dumps(d))' "$1" "$2"; }
for round in $(seq 1 "$ROUNDS"); do
    for side in $(run_order "$round" a b); do
        if [ $side = a ]; then label=$1; bin=$2; else label=$3; bin=$4; fi
        start "$bin"
        out=$("$LOADGEN" produce --brokers "$ADDR" --topic c --partitions 4 --record-size 1024 --duration 8 --label "produce-plain r$round")
        n=$(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["records"]))' "$out")
        tag "$("$LOADGEN" consume --brokers "$ADDR" --topic c --records "$n" --consumers 2 --broker-pid "$BROKER_PID" --label "consume r$round")" "$label"
        tag "$("$LOADGEN" produce --brokers "$ADDR" --topic z --partitions 4 --record-size 1024 --duration 8 --compression lz4 --broker-pid "$BROKER_PID" --label "produce-lz4 r$round")" "$label"
        tag "$("$LOADGEN" e2e --brokers "$ADDR" --topic e --partitions 4 --record-size 1024 --duration 8 --rate 20000 --linger-ms 5 --broker-pid "$BROKER_PID" --label "e2e-20k r$round")" "$label"
    done
done
