#!/usr/bin/env bash
# The Kafka tests again with cellstream's Kafka code on another client library (kafka.client),
# as CI runs them after `npm test`: `npm run test:platformatic`. The tests' own fixture producers
# and consumers stay kafkajs. Both delivery modes run on either client (docs/kafka.md).
# Kept out of `npm test` so the README's suite stays near 10 minutes on 2 cores; the fault
# scenarios run smaller here (2 faults of each kind instead of 5, one broker outage per mode).
# At full size: CELLSTREAM_TEST_KAFKA_CLIENT=platformatic npm run kafka:faults.
set -euo pipefail
cd "$(dirname "$0")/.."

client="${1:-}"
case "$client" in
  platformatic | kafkajs) ;;
  *)
    echo "usage: scripts/test-kafka-client.sh platformatic|kafkajs [FILES...]" >&2
    exit 2
    ;;
esac
shift

npm run --silent build

report=$(mktemp -t cellstream-vitest-XXXXXX.json)
trap 'rm -f "$report"' EXIT

files=("$@")
((${#files[@]})) || files=(test/integration/kafka- test/state/changelogStore.test.ts)

status=0
CELLSTREAM_TEST_KAFKA_CLIENT="$client" KAFKA_FAULTS_FAULTS="${KAFKA_FAULTS_FAULTS:-2}" \
  KAFKA_BROKER_FAULTS_OUTAGES="${KAFKA_BROKER_FAULTS_OUTAGES:-1}" \
  scripts/kafka/with-kafka.sh scripts/registry/with-registry.sh npx vitest run \
  --reporter=default --reporter=json --outputFile="$report" "${files[@]}" || status=$?

printf '%s: ' "$client"
node scripts/summarize-vitest.mjs "$report" "Kafka tests on $client"
exit "$status"
