#!/usr/bin/env bash
# Produce and consume over TLS beside plaintext, one broker per cell, one session: 1 KiB
# records, 1 and 4 partitions, acks=1 and acks=all, under --fsync never (the network path's
# own cost: no fsync in the way) and always (the default). Each broker has a PLAINTEXT and an
# SSL listener; the cells alternate plaintext and TLS runs on the same broker build, each on a
# fresh broker and data dir. Prints one line per run (records/s, MB/s, broker CPU-s per GB) and
# appends JSON lines to bench/results/tls.jsonl.
# Needs the release broker and bench/loadgen built (bench/run.sh builds both) and openssl.
# Usage: bash bench/tls.sh [port] (the SSL listener is port+1)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
L="${LOADGEN:-$ROOT/bench/loadgen/target/release/loadgen}"
B="${CARGO_TARGET_DIR:-$ROOT/target}/release/thorstream"
PORT=${1:-21700}
TLS_PORT=$((PORT + 1))
SECONDS_PER_RUN=${BENCH_SECONDS:-8}
OUT="$ROOT/bench/results"
mkdir -p "$OUT"
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT

make_certs "$DATA"

start() { # fsync policy
    rm -rf "$DATA/t"
    drop_page_cache
    "$B" --listeners "PLAINTEXT://127.0.0.1:$PORT,SSL://127.0.0.1:$TLS_PORT" \
        --ssl-cert "$DATA/server.pem" --ssl-key "$DATA/server.key" \
        --data-dir "$DATA/t" --fsync "$1" >"$DATA/broker.log" 2>&1 &
    BP=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$TLS_PORT") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "broker did not start" >&2
    cat "$DATA/broker.log" >&2
    exit 1
}
stop() { kill "$BP" 2>/dev/null || true; wait "$BP" 2>/dev/null || true; }

# The client side of each transport, as librdkafka properties.
props() { # plain|tls
    if [ "$1" = tls ]; then
        echo "--prop security.protocol=ssl --prop ssl.ca.location=$DATA/ca.pem"
    fi
}
addr() { if [ "$1" = tls ]; then echo "127.0.0.1:$TLS_PORT"; else echo "127.0.0.1:$PORT"; fi; }

report() { # label: reads loadgen's JSON on stdin
    python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
d["label"] = sys.argv[1]
per_gb = d.get("broker_cpu_s_per_gb")
print("%-34s %9.0f rec/s %7.1f MB/s  broker CPU-s/GB %s" % (sys.argv[1], d["records_per_s"],
      d["mb_per_s"], "%.2f" % per_gb if per_gb is not None else "-"))
with open(sys.argv[2], "a") as f:
    f.write(json.dumps(d) + "\n")' "$1" "$OUT/tls.jsonl"
}

# The machine: TLS's cost is the CPU's AES-GCM speed on both sides (runs on different VMs of
# this kind have differed 5x in it), so every run says which CPU and crypto extensions it had.
machine=$(python3 -c '
import re
info = open("/proc/cpuinfo").read()
model = re.search(r"model name\s*:\s*(.*)", info)
flags = set(re.search(r"flags\s*:\s*(.*)", info)[1].split())
want = ["aes", "vaes", "pclmulqdq", "vpclmulqdq", "avx2", "avx512f", "sha_ni"]
print("%s; %s" % (model[1] if model else "?", " ".join(f if f in flags else "no-" + f for f in want)))')
echo "machine: $machine; $(openssl version)"
echo "{\"kind\": \"machine\", \"cpu\": \"$machine\", \"openssl\": \"$(openssl version)\"}" >>"$OUT/tls.jsonl"

cell() { # fsync acks partitions transport
    local fsync=$1 acks=$2 parts=$3 t=$4 label
    label="$fsync acks=$acks p$parts $t"
    start "$fsync"
    # shellcheck disable=SC2046
    "$L" produce --brokers "$(addr "$t")" --topic b --duration "$SECONDS_PER_RUN" \
        --record-size 1024 --acks "$acks" --partitions "$parts" --broker-pid "$BP" \
        $(props "$t") 2>/dev/null | tee "$DATA/produce.json" | report "produce $label"
    local n
    n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["records"])' "$DATA/produce.json")
    # shellcheck disable=SC2046
    "$L" consume --brokers "$(addr "$t")" --topic b --records "$n" --broker-pid "$BP" \
        $(props "$t") 2>/dev/null | report "consume $label"
    stop
}

for fsync in never always; do
    for acks in 1 all; do
        for parts in 1 4; do
            for t in plain tls; do cell "$fsync" "$acks" "$parts" "$t"; done
        done
    done
done
