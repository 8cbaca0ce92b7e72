#!/usr/bin/env bash
# Build the broker, set up the client venv (and kafkajs, via setup_venv.sh -> setup_node.sh), run the client-compatibility tests.
# Extra arguments are passed to pytest, e.g.:  tests/kafka_client_compat/run.sh -k kcat -x
# Exits with pytest's exit code.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

echo "[run.sh] cargo build --release --bin thorstream"
cargo build --release --bin thorstream

"$HERE/setup_venv.sh"

echo "[run.sh] pytest tests/kafka_client_compat -v $*"
set +e
"$HERE/.venv/bin/pytest" tests/kafka_client_compat -v "$@"
code=$?
set -e
exit "$code"
