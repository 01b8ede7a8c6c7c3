#!/usr/bin/env bash
# The whole test suite, as the README's test command runs it: build, then every vitest test
# against real components. Starts a local Kafka broker and a schema registry (Apicurio, for the
# Avro / JSON Schema / Protobuf tests) when none is running, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

npm run --silent build

report=$(mktemp -t cellstream-vitest-XXXXXX.json)
trap 'rm -f "$report"' EXIT

status=0
scripts/kafka/with-kafka.sh scripts/registry/with-registry.sh npx vitest run --reporter=default --reporter=json --outputFile="$report" "$@" ||
  status=$?

# One plain closing line that any CI reader understands.
node scripts/summarize-vitest.mjs "$report" "npm test"
exit "$status"
