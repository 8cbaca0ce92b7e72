#!/usr/bin/env bash
# Runs one of Kafka's own tools from the Maven-resolved jars (no Kafka download), e.g.:
#   tests/java/kafka-tool.sh org.apache.kafka.tools.TopicCommand --bootstrap-server localhost:9092 --list
# Main classes (Kafka 4.x): kafka-topics = org.apache.kafka.tools.TopicCommand,
# kafka-configs = org.apache.kafka.tools.ConfigCommand,
# kafka-consumer-groups = org.apache.kafka.tools.consumer.group.ConsumerGroupCommand,
# console producer/consumer = org.apache.kafka.tools.ConsoleProducer / org.apache.kafka.tools.consumer.ConsoleConsumer,
# perf tests = org.apache.kafka.tools.ProducerPerformance / org.apache.kafka.tools.ConsumerPerformance,
# Connect = org.apache.kafka.connect.cli.ConnectDistributed.
# The first run resolves the jars into tests/java/.m2 and writes the classpath to target/classpath.txt.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -lt 1 ]; then
  echo "usage: $0 MAIN_CLASS [ARGS...]" >&2
  exit 2
fi
CP_FILE="$HERE/target/classpath.txt"
if [ ! -s "$CP_FILE" ] || [ "$HERE/pom.xml" -nt "$CP_FILE" ]; then
  mvn -B -q -f "$HERE/pom.xml" -Dmaven.repo.local="$HERE/.m2" dependency:build-classpath \
    -Dmdep.includeScope=test -Dmdep.outputFile="$CP_FILE" >&2
  touch "$CP_FILE" # the plugin leaves an unchanged file's mtime alone
fi
exec java -cp "$HERE/target/test-classes:$(cat "$CP_FILE")" "$@"
