#!/usr/bin/env bash
# The Java client over TLS beside plaintext: Kafka 4.4's ProducerPerformance and
# ConsumerPerformance with their defaults (1M × 1 KiB, acks=1, 1 partition, `--fsync never`;
# the consumer in a group, its fetch-phase rate), rounds alternating plaintext and TLS, a fresh
# broker (PLAINTEXT and SSL listeners) and a dropped page cache per run. Truststore: the CA as
# PEM (`ssl.truststore.type=PEM`). Prints one line per run.
#   bash bench/tls_java.sh [rounds=2]
# Env: THORSTREAM_BIN (the broker binary), PORT (19440; the SSL listener is PORT+1).
# Needs bench/kafka/classpath.txt (bench/peer.sh or bench/kafka/kafka.sh resolves it) and openssl.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
B="${THORSTREAM_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/thorstream}"
CP=$(cat "$ROOT/bench/kafka/classpath.txt")
PORT=${PORT:-19440}
TLS_PORT=$((PORT + 1))
DATA=$(mktemp -d)
BP=
stop() { [ -n "$BP" ] && kill "$BP" 2>/dev/null && wait "$BP" 2>/dev/null; BP=; true; }
trap 'stop; rm -rf "$DATA"' EXIT
make_certs "$DATA"
printf 'security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location=%s\n' \
    "$DATA/ca.pem" >"$DATA/tls.properties"
: >"$DATA/plain.properties"
for round in $(seq 1 "${1:-2}"); do
    for mode in plain tls; do
        rm -rf "$DATA/b"
        drop_page_cache
        "$B" --listeners "PLAINTEXT://127.0.0.1:$PORT,SSL://127.0.0.1:$TLS_PORT" \
            --ssl-cert "$DATA/server.pem" --ssl-key "$DATA/server.key" --data-dir "$DATA/b" \
            --fsync never --group-initial-rebalance-delay-ms 0 >"$DATA/log" 2>&1 &
        BP=$!
        for _ in $(seq 1 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$TLS_PORT") 2>/dev/null && break
            sleep 0.1
        done
        addr=127.0.0.1:$PORT
        [ "$mode" = tls ] && addr=127.0.0.1:$TLS_PORT
        p=$(java -Xmx512m -cp "$CP" org.apache.kafka.tools.ProducerPerformance --topic pt \
            --num-records 1000000 --record-size 1024 --throughput -1 \
            --producer.config "$DATA/$mode.properties" \
            --producer-props bootstrap.servers="$addr" acks=1 2>/dev/null | tail -n 1 \
            | sed -E 's/.* ([0-9.]+) records\/sec.*/\1/')
        c=$(java -Xmx512m -cp "$CP" org.apache.kafka.tools.ConsumerPerformance \
            --bootstrap-server "$addr" --consumer.config "$DATA/$mode.properties" --topic pt \
            --num-records 1000000 --timeout 60000 2>/dev/null | grep -A1 '^start.time' \
            | tail -n 1 | awk -F', ' '{ print $10 }')
        printf 'round %s %-5s produce %8.0f rec/s  consume (fetch phase) %8.0f rec/s\n' \
            "$round" "$mode" "$p" "$c"
        stop
    done
done
