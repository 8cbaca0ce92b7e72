#!/usr/bin/env bash
# A/B of two broker binaries under Kafka's own Java producer (ProducerPerformance with its
# defaults: batch.size 16 KiB, linger.ms 5, 5 requests in flight), alternating in one session,
# a fresh broker and a dropped page cache per run. The Java producer sends many small requests
# per connection, so this is the cell where per-request cost shows (librdkafka's 1 MB
# requests hide it). Prints one line per run: records/s, p99, the broker's CPU-s per GB.
#   bash bench/java_ab.sh <label-a> <binary-a> <label-b> <binary-b> [rounds=4]
# The order is reversed every other round, as in bench/ab.sh (the slot moves figures here).
# Env: FSYNC (never), ACKS (1), PARTITIONS (1), RECORDS (1000000), PORT (19400).
# Needs bench/kafka/classpath.txt (bench/peer.sh or bench/kafka/kafka.sh resolves it).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
CP=$(cat bench/kafka/classpath.txt)
FSYNC=${FSYNC:-never} ACKS=${ACKS:-1} PARTS=${PARTITIONS:-1} N=${RECORDS:-1000000}
PORT=${PORT:-19400}
DATA=$(mktemp -d /tmp/thorstream-java-ab.XXXXXX)
BP=
stop() { [ -n "$BP" ] && kill "$BP" 2>/dev/null && wait "$BP" 2>/dev/null; BP=; true; }
trap 'stop; rm -rf "$DATA"' EXIT
for round in $(seq 1 "${5:-4}"); do
    for side in $(run_order "$round" a b); do
        if [ $side = a ]; then label=$1 bin=$2; else label=$3 bin=$4; fi
        rm -rf "$DATA/b"
        drop_page_cache
        "$bin" --listen "127.0.0.1:$PORT" --data-dir "$DATA/b" --fsync "$FSYNC" \
            --num-partitions "$PARTS" >"$DATA/log" 2>&1 &
        BP=$!
        for _ in $(seq 1 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
            sleep 0.1
        done
        c0=$(awk '{ print $14 + $15 }' "/proc/$BP/stat")
        line=$(java -Xmx512m -cp "$CP" org.apache.kafka.tools.ProducerPerformance --topic pt \
            --num-records "$N" --record-size 1024 --throughput -1 \
            --producer-props bootstrap.servers="127.0.0.1:$PORT" acks="$ACKS" 2>/dev/null | tail -n 1)
        c1=$(awk '{ print $14 + $15 }' "/proc/$BP/stat")
        stop
        python3 - "$label" "$round" "$line" "$c0" "$c1" "$N" "$FSYNC $ACKS $PARTS" <<'PY'
import re, sys
label, rnd, line, c0, c1, n, cell = sys.argv[1:]
m = re.search(r"([\d.]+) records/sec .* (\d+) ms 99th", line)
cpu = (float(c1) - float(c0)) / 100 / (int(n) * 1024 / 1e9)
print("%s r%s fsync/acks/partitions %s: %s rec/s, p99 %s ms, broker %.2f CPU-s/GB"
      % (label, rnd, cell, m[1] if m else "?", m[2] if m else "?", cpu))
PY
    done
done
