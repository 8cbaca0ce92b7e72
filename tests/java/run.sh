#!/usr/bin/env bash
# The Java compatibility suite: the Java clients, Kafka's own CLI tools, Kafka Streams and Kafka
# Connect (4.x, resolved by Maven into tests/java/.m2) against the release broker binary, which
# each test class starts on a free loopback port with a temporary data dir.
# Extra arguments go to Maven, e.g.:  tests/java/run.sh -Dtest=ProducerTest
# (-Dthorstream.bin=PATH runs the tests against another broker binary).
# Exits non-zero if the build or any test fails; prints each failure and a closing count.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

echo "[java] cargo build --release --bin thorstream"
cargo build --release --bin thorstream

# Java 17+ and Maven (present on the project's machines; installed from Debian's packages if not).
if ! command -v mvn >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
  echo "[java] installing Maven and a JDK (apt-get)"
  apt-get update -qq && apt-get install -y -qq maven openjdk-17-jdk-headless >/dev/null
fi

# The openssl CLI (SecurityTest makes its certificates with it).
if ! command -v openssl >/dev/null 2>&1; then
  echo "[java] installing openssl (apt-get)"
  apt-get update -qq && apt-get install -y -qq openssl >/dev/null
fi

cd "$HERE"
rm -rf target/surefire-reports
echo "[java] mvn test (Maven local repository: tests/java/.m2)"
set +e
# (Debian's Maven prints colour resets even with -B; strip them so the lines stay plain.)
mvn -B -q -Dmaven.repo.local="$HERE/.m2" test "$@" 2>&1 | sed -u 's/\x1b\[0m//g'
code=${PIPESTATUS[0]}
set -e

# Surefire's per-class reports: a closing count, and the output of each failed class.
passed=0; failed=0; skipped=0
shopt -s nullglob
for xml in target/surefire-reports/TEST-*.xml; do
  head="$(grep -o '<testsuite [^>]*>' "$xml" | head -1)"
  attr() { printf '%s' "$head" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*' || echo 0; }
  t=$(attr tests); f=$(attr failures); e=$(attr errors); s=$(attr skipped)
  passed=$((passed + t - f - e - s)); failed=$((failed + f + e)); skipped=$((skipped + s))
  if [ $((f + e)) -gt 0 ]; then
    cls="$(basename "$xml" .xml)"; cls="${cls#TEST-}"
    echo "[java] FAILED in $cls: tests/java/target/surefire-reports/$cls.txt and $cls-output.txt"
  fi
done
if [ "$code" -ne 0 ] && [ $((passed + failed + skipped)) -eq 0 ]; then
  echo "[java] Maven failed before any test ran (its errors are above)"
fi
echo "java: $passed passed, $failed failed, $skipped skipped"
if [ "$code" -eq 0 ] && [ "$failed" -gt 0 ]; then
  code=1
fi
exit "$code"
