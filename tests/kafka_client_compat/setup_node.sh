#!/usr/bin/env bash
# Idempotent setup of the kafkajs driver used by test_other_clients.py:
#   runs `npm ci` in tests/kafka_client_compat/node (kafkajs pinned by package.json and
#   package-lock.json) when node_modules is missing or package-lock.json changed.
# Without node or npm, or when the install fails, it only warns: the kafkajs tests then skip
# with a clear reason. Called by setup_venv.sh (and so by run.sh).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODE_DIR="$HERE/node"
STAMP="$NODE_DIR/node_modules/.package-lock.sha256"

log() { echo "[setup_node] $*"; }
warn() { echo "[setup_node] WARNING: $*" >&2; }

if ! command -v node >/dev/null 2>&1; then
    warn "node not on PATH; kafkajs tests will be skipped"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    warn "npm not on PATH (node $(node --version)); cannot install kafkajs; kafkajs tests will be skipped"
    exit 0
fi

lock_hash="$(sha256sum "$NODE_DIR/package-lock.json" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$lock_hash" ] \
   && [ -f "$NODE_DIR/node_modules/kafkajs/package.json" ]; then
    log "kafkajs already installed (package-lock.json unchanged)"
    exit 0
fi

log "npm ci in $NODE_DIR (node $(node --version), npm $(npm --version 2>/dev/null))"
if (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error); then
    echo "$lock_hash" > "$STAMP"
    log "installed kafkajs $(node -p 'require(process.argv[1]).version' "$NODE_DIR/node_modules/kafkajs/package.json")"
else
    warn "npm ci failed; kafkajs tests will be skipped"
fi
