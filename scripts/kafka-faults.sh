#!/usr/bin/env bash
# The Kafka fault tests at a chosen size, with a broker (started if none runs), e.g.
#   npm run kafka:faults -- --events 100000 --keys 5000 --faults 8
# Prints one "[kafka-faults] ..." line of figures per scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
while [[ $# -gt 0 ]]; do
  case "$1" in
  --events) export KAFKA_FAULTS_EVENTS="$2"; shift 2 ;;
  --keys) export KAFKA_FAULTS_KEYS="$2"; shift 2 ;;
  --faults) export KAFKA_FAULTS_FAULTS="$2"; shift 2 ;;
  *) echo "usage: npm run kafka:faults -- [--events N] [--keys N] [--faults N] (unknown: $1)" >&2; exit 2 ;;
  esac
done
npm run --silent build
exec scripts/kafka/with-kafka.sh npx vitest run test/integration/kafka-faults.test.ts
