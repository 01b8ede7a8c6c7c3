#!/usr/bin/env bash
# The Kafka fault tests at a chosen size, with a broker (started if none runs), e.g.
#   npm run kafka:faults -- --events 100000 --keys 5000 --faults 8
#   npm run kafka:faults -- --only broker --events 20000 --keys 2000 --outages 2 --down-ms 5000 --batch 1000
# Prints one "[kafka-faults] ..." / "[kafka-broker-faults] ..." line of figures per scenario.
# The broker-loss tests start a broker of their own (KAFKA_PORT + 100 upwards, or KAFKA_FAULT_PORT).
set -euo pipefail
cd "$(dirname "$0")/.."
files=(test/integration/kafka-faults.test.ts test/integration/kafka-broker-faults.test.ts)
usage="usage: npm run kafka:faults -- [--only process|broker] [--events N] [--keys N] [--faults N] [--outages N] [--down-ms MS] [--batch N] [--slow-restore-ms MS] [--heartbeat-ms MS]"
while [[ $# -gt 0 ]]; do
  case "$1" in
  --events) export KAFKA_FAULTS_EVENTS="$2"; shift 2 ;;
  --keys) export KAFKA_FAULTS_KEYS="$2"; shift 2 ;;
  --faults) export KAFKA_FAULTS_FAULTS="$2"; shift 2 ;;
  --outages) export KAFKA_BROKER_FAULTS_OUTAGES="$2"; shift 2 ;;
  --down-ms) export KAFKA_BROKER_FAULTS_DOWN_MS="$2"; shift 2 ;;
  --batch) export KAFKA_BROKER_FAULTS_BATCH="$2"; shift 2 ;;
  --slow-restore-ms) export KAFKA_BROKER_FAULTS_SLOW_RESTORE_MS="$2"; shift 2 ;;
  --heartbeat-ms) export KAFKA_BROKER_FAULTS_HEARTBEAT_MS="$2"; shift 2 ;;
  --only)
    case "$2" in
    process) files=(test/integration/kafka-faults.test.ts) ;;
    broker) files=(test/integration/kafka-broker-faults.test.ts) ;;
    *) echo "$usage (unknown --only: $2)" >&2; exit 2 ;;
    esac
    shift 2
    ;;
  *) echo "$usage (unknown: $1)" >&2; exit 2 ;;
  esac
done
npm run --silent build
exec scripts/kafka/with-kafka.sh npx vitest run "${files[@]}"
