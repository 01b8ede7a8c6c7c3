#!/usr/bin/env bash
# The whole test suite, as the README's test command runs it: build, then every vitest test
# against real components. Starts a local Kafka broker and a schema registry (Apicurio, for the
# Avro / JSON Schema / Protobuf tests) when none is running, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

npm run --silent build

report=$(mktemp -t cellstream-vitest-XXXXXX.json)
second=$(mktemp -t cellstream-vitest-XXXXXX.json)
trap 'rm -f "$report" "$second"' EXIT

status=0
scripts/kafka/with-kafka.sh scripts/registry/with-registry.sh npx vitest run --reporter=default --reporter=json --outputFile="$report" "$@" ||
  status=$?

# A whole run (no files named) runs the Kafka tests again with cellstream's Kafka code on the
# second client library, @platformatic/kafka (kafka.client platformatic; the tests' own fixture
# clients stay kafkajs), in at-least-once only: that client refuses exactly-once at start-up
# (docs/kafka.md), and the tests take their modes from the client under test. Its fault scenarios run smaller — 2 faults of each kind instead of 5, one
# broker outage per mode — so the suite stays near 10 minutes on 2 cores; at full size:
# CELLSTREAM_TEST_KAFKA_CLIENT=platformatic npm run kafka:faults.
if (($# == 0)); then
  echo "== the Kafka tests on @platformatic/kafka (CELLSTREAM_TEST_KAFKA_CLIENT=platformatic)"
  CELLSTREAM_TEST_KAFKA_CLIENT=platformatic KAFKA_FAULTS_FAULTS="${KAFKA_FAULTS_FAULTS:-2}" \
    KAFKA_BROKER_FAULTS_OUTAGES="${KAFKA_BROKER_FAULTS_OUTAGES:-1}" \
    scripts/kafka/with-kafka.sh scripts/registry/with-registry.sh npx vitest run --reporter=default --reporter=json --outputFile="$second" \
    test/integration/kafka- test/state/changelogStore.test.ts || status=$?
fi

# One plain closing line per run that any CI reader understands.
node scripts/summarize-vitest.mjs "$report"
if (($# == 0)); then
  printf 'platformatic: '
  node scripts/summarize-vitest.mjs "$second"
fi
exit "$status"
