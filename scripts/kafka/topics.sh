#!/usr/bin/env bash
# topics.sh ARGS...: Kafka's topic CLI against the local broker, e.g.
#   scripts/kafka/topics.sh --list
#   scripts/kafka/topics.sh --create --topic events --partitions 3
#   scripts/kafka/topics.sh --describe --topic events
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
kafka_libs_ready || "$KAFKA_SCRIPTS_DIR/fetch.sh"
kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "${KAFKA_BROKERS:-$KAFKA_BOOTSTRAP}" "$@"
