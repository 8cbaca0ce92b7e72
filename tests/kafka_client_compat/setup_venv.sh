#!/usr/bin/env bash
# Idempotent setup of the Kafka client-compatibility test environment.
#   - creates tests/kafka_client_compat/.venv (python3 -m venv) if missing
#   - pip installs the pinned packages from requirements.txt (skipped if already satisfied)
#   - installs kcat via apt when running as root and kcat is missing (otherwise warns;
#     the kcat tests then skip with a clear reason)
#   - installs the openssl CLI via apt when running as root and it is missing (test_security.py
#     makes its certificates with it; without it those tests skip)
#   - installs kafkajs (npm ci in node/) through setup_node.sh (without node/npm it warns;
#     the kafkajs tests then skip with a clear reason)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
REQ="$HERE/requirements.txt"
PY="${PYTHON:-python3}"
STAMP="$VENV/.requirements.sha256"

log() { echo "[setup_venv] $*"; }
warn() { echo "[setup_venv] WARNING: $*" >&2; }

start=$(date +%s)

# 1. virtualenv
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "venv exists: $VENV"
else
    log "creating venv: $VENV (using $("$PY" --version 2>&1))"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
fi

# 2. pinned packages (re-run pip only when requirements.txt changed or imports fail)
req_hash="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$req_hash" ] \
   && "$VENV/bin/python" -c 'import pytest, pytest_timeout, kafka, confluent_kafka, aiokafka, snappy, lz4.frame, zstandard' >/dev/null 2>&1; then
    log "pinned packages already installed (requirements.txt unchanged)"
else
    log "installing pinned packages from $REQ"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
    echo "$req_hash" > "$STAMP"
    log "installed:"
    "$VENV/bin/python" -m pip list --disable-pip-version-check --format=freeze 2>/dev/null \
        | grep -iE '^(pytest|pytest-timeout|kafka-python|confluent-kafka|aiokafka|python-snappy|cramjam|lz4|zstandard|crc32c)==' \
        | sed 's/^/[setup_venv]   /'
fi

# 3. kcat
if command -v kcat >/dev/null 2>&1; then
    log "kcat present: $(command -v kcat)"
elif [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    log "kcat missing; installing with apt-get"
    if apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null; then
        log "kcat installed: $(command -v kcat || echo '?')"
    else
        warn "apt-get install kcat failed; kcat tests will be skipped"
    fi
else
    warn "kcat not on PATH and cannot apt-get install it (not root or no apt); kcat tests will be skipped"
fi

# 4. the openssl CLI (test_security.py makes its certificates with it)
if command -v openssl >/dev/null 2>&1; then
    log "openssl present: $(command -v openssl)"
elif [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    log "openssl missing; installing with apt-get"
    if apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; then
        log "openssl installed: $(command -v openssl || echo '?')"
    else
        warn "apt-get install openssl failed; test_security.py will be skipped"
    fi
else
    warn "openssl not on PATH and cannot apt-get install it; test_security.py will be skipped"
fi

# 5. kafkajs (node/)
"$HERE/setup_node.sh"

log "done in $(( $(date +%s) - start ))s"
