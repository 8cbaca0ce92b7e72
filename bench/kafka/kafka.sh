#!/usr/bin/env bash
# Runs Apache Kafka (the jars bench/kafka/pom.xml resolves; no other download) as one KRaft node
# in combined mode (broker + controller) in the foreground, for the side-by-side benchmark.
#
#   bash bench/kafka/kafka.sh PORT DATA_DIR [durable]
#
# PLAINTEXT on 127.0.0.1:PORT, the controller on PORT+1; the data dir is formatted on first use.
# `durable` sets flush.messages=1 (log.flush.interval.messages=1: every append is fsynced
# before it is acknowledged, the parity of Thorstream's --fsync always); without it, Kafka's
# default (no fsync; the OS writes back). Internal topics have one replica and one partition
# (one node), group.initial.rebalance.delay.ms 0 (as the loadgen's consumers assign partitions
# manually, it is unused). JVM: Kafka's defaults from kafka-server-start.sh / kafka-run-class.sh
# (-Xmx1G -Xms1G, G1 with MaxGCPauseMillis=20, InitiatingHeapOccupancyPercent=35,
# ExplicitGCInvokesConcurrent). Ready when its log says "Kafka Server started".
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=$1
DATA=$2
MODE=${3:-default}
CP_FILE="$HERE/classpath.txt"
if [ ! -s "$CP_FILE" ]; then
    mvn -B -q -Dmaven.repo.local="$HERE/.m2" -f "$HERE/pom.xml" dependency:build-classpath \
        -Dmdep.outputFile="$CP_FILE" >&2
fi
CP=$(cat "$CP_FILE")
mkdir -p "$DATA"
PROPS="$DATA/server.properties"
cat >"$PROPS" <<P
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$((PORT + 1))
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$((PORT + 1))
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA/log
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
P
if [ "$MODE" = durable ]; then
    echo "log.flush.interval.messages=1" >>"$PROPS"
fi
JVM=(-Xmx1G -Xms1G -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
    -Djava.awt.headless=true)
if [ ! -f "$DATA/log/meta.properties" ]; then
    id=$(java -cp "$CP" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    java -cp "$CP" kafka.tools.StorageTool format -t "$id" -c "$PROPS" >"$DATA/format.log" 2>&1
fi
# KAFKA_JVM_EXTRA: more JVM options, split on spaces (e.g. a Flight Recorder profile of a cell:
# KAFKA_JVM_EXTRA="-XX:StartFlightRecording=filename=k.jfr,settings=profile").
# shellcheck disable=SC2086
exec java "${JVM[@]}" ${KAFKA_JVM_EXTRA:-} -cp "$CP" kafka.Kafka "$PROPS"
