#!/usr/bin/env bash
# Long-poll read cost: a consumer with fetch.min.bytes = 1 MiB (and a 10 s max wait) reads a
# partition fed ~1 KiB records at 1000/s (librdkafka, linger 5 ms: ~200 small produces a
# second), fsync never. Reports the broker's bytes read by syscalls (/proc/<pid>/io rchar:
# segment preads plus the produce requests' socket reads) against the bytes delivered.
# A broker that re-reads a parked Fetch on every wake-up reads ~quadratically more.
#   bash bench/longpoll.sh <label-a> <binary-a> <label-b> <binary-b> [rounds=2]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
LOADGEN=bench/loadgen/target/release/loadgen
[ -x "$LOADGEN" ] || cargo build --release --manifest-path bench/loadgen/Cargo.toml
PORT=${PORT:-19293}
ADDR=127.0.0.1:$PORT
DATA=$(mktemp -d /tmp/thorstream-lp.XXXXXX)
ROUNDS=${5:-2}
RECORDS=10000
BROKER_PID=
stop() { [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null; BROKER_PID=; true; }
trap 'stop; rm -rf "$DATA"' EXIT
rchar() { awk '/^rchar/{print $2}' "/proc/$1/io"; }
run() { # label binary round
    stop
    rm -rf "$DATA/b"; mkdir -p "$DATA/b"
    "$2" --listen "$ADDR" --data-dir "$DATA/b" --fsync never >"$DATA/log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
        sleep 0.1
    done
    "$LOADGEN" produce --brokers "$ADDR" --topic lp --partitions 1 --records 1 >/dev/null
    before=$(rchar "$BROKER_PID")
    "$LOADGEN" consume --brokers "$ADDR" --topic lp --records $((RECORDS + 1)) --idle-timeout 30 \
        --prop fetch.min.bytes=1048576 --prop fetch.wait.max.ms=10000 --label "longpoll r$3" >"$DATA/consume.json" &
    cpid=$!
    "$LOADGEN" produce --brokers "$ADDR" --topic lp --partitions 1 --records "$RECORDS" --rate 1000 \
        --record-size 1024 --linger-ms 5 >/dev/null
    wait "$cpid"
    after=$(rchar "$BROKER_PID")
    python3 - "$1" "$((after - before))" "$RECORDS" "$3" <<'PY'
import json, sys
label, read, records, rnd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
delivered = records * 1024
print(json.dumps({"binary": label, "round": int(rnd), "broker_rchar_bytes": read,
                  "payload_bytes": delivered, "read_per_payload_byte": round(read / delivered, 2)}))
PY
}
for round in $(seq 1 "$ROUNDS"); do
    for side in $(run_order "$round" a b); do # bench/lib.sh says why
        if [ "$side" = a ]; then run "$1" "$2" "$round"; else run "$3" "$4" "$round"; fi
    done
done
