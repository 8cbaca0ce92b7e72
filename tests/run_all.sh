#!/usr/bin/env bash
# Runs every test Thorstream has, on a fresh machine: formatting and lints, the Rust unit,
# property and integration tests, then the Kafka client-compatibility suite (which installs
# its own Python venv, pip packages, kafkajs (npm) and kcat). Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "==> layering: no upward imports between layers, no import cycles between files"
cargo test --test layering
echo "==> cargo test (unit, property and integration tests)"
cargo test
echo "==> the library as a dependency (README snippet in a crate outside the repo)"
bash tests/external/run.sh
echo "==> Kafka client compatibility (kafka-python, confluent-kafka, aiokafka, kafkajs, kcat)"
bash tests/kafka_client_compat/run.sh
echo "==> Java suite (Java clients, Kafka CLI tools, Kafka Streams, Kafka Connect; Maven repo in tests/java/.m2)"
bash tests/java/run.sh
