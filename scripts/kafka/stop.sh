#!/usr/bin/env bash
# Stop the broker that start.sh started (pid file in $KAFKA_DATA_DIR): SIGTERM, wait up to
# $KAFKA_STOP_TIMEOUT s for a clean shutdown, then SIGKILL. Leaves any other broker alone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ ! -f "$KAFKA_MARKER_FILE" && ! -f "$KAFKA_PID_FILE" ]]; then
  kafka_log "no broker started by start.sh in $KAFKA_DATA_DIR; nothing to stop"
  exit 0
fi
if ! pid="$(kafka_our_pid)"; then
  kafka_log "broker from $KAFKA_DATA_DIR is not running; cleaning up its pid file"
  rm -f "$KAFKA_PID_FILE" "$KAFKA_MARKER_FILE"
  exit 0
fi

kafka_log "stopping broker pid $pid"
kill -TERM "$pid" 2>/dev/null || true
for ((i = 0; i < KAFKA_STOP_TIMEOUT * 10; i++)); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
  kafka_log "broker pid $pid still running after $KAFKA_STOP_TIMEOUT s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
fi
rm -f "$KAFKA_PID_FILE" "$KAFKA_MARKER_FILE"
kafka_log "broker stopped"
