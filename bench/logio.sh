#!/usr/bin/env bash
# bench/logio.sh: Thorstream's two segment I/O modes (--log-io buffered, the default, and
# direct) beside Apache Kafka, in one session: the durable matrix cells (fsync always beside
# Kafka's flush.messages=1; acks=all; 1 KiB and 100 B; 1, 4 and 16 partitions; produce, then
# consume from the start) run by bench/peer.sh, the three brokers back to back per cell (each
# fresh, page cache dropped; the order reversed in even rounds), ROUNDS times over. Results:
# bench/results/logio.jsonl; the table it prints is the "Direct log I/O" section of
# BENCHMARKS.md (medians over the rounds).
#
#   bash bench/logio.sh [ROUNDS=2]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
ROUNDS=${1:-2}
OUT="$ROOT/bench/results/logio.jsonl"
mkdir -p "$ROOT/bench/results"
: >"$OUT"
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r of $ROUNDS" >&2
    # Odd rounds run the brokers in one order, even rounds in the reverse (bench/lib.sh).
    brokers=$(run_order "$r" thorstream thorstream-direct kafka)
    PEER_ONLY=matrix PEER_ROUNDS=1 PEER_DURABILITIES=durable PEER_ACKS=all PEER_SIZES="${LOGIO_SIZES:-1024 100}" \
        PEER_BROKERS="$brokers" PEER_RESULTS="$OUT.round" \
        bash "$ROOT/bench/peer.sh"
    python3 -c 'import json, sys
r = sys.argv[2]
for line in open(sys.argv[1]):
    d = json.loads(line); d["round"] = int(r); print(json.dumps(d))' "$OUT.round" "$r" >>"$OUT"
done
rm -f "$OUT.round"
python3 "$ROOT/bench/logio_report.py" "$OUT"
