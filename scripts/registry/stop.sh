#!/usr/bin/env bash
# Stop the registry that start.sh started (pid file in $REGISTRY_DATA_DIR): SIGTERM, wait up to
# $REGISTRY_STOP_TIMEOUT s, then SIGKILL. Leaves any other registry alone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ ! -f "$REGISTRY_MARKER_FILE" && ! -f "$REGISTRY_PID_FILE" ]]; then
  registry_log "no registry started by start.sh in $REGISTRY_DATA_DIR; nothing to stop"
  exit 0
fi
if ! pid="$(registry_our_pid)"; then
  registry_log "registry from $REGISTRY_DATA_DIR is not running; cleaning up its pid file"
  rm -f "$REGISTRY_PID_FILE" "$REGISTRY_MARKER_FILE"
  exit 0
fi
registry_log "stopping registry pid $pid"
kill -TERM "$pid" 2>/dev/null || true
for ((i = 0; i < REGISTRY_STOP_TIMEOUT * 10; i++)); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
  registry_log "registry pid $pid still running after $REGISTRY_STOP_TIMEOUT s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
fi
rm -f "$REGISTRY_PID_FILE" "$REGISTRY_MARKER_FILE"
registry_log "registry stopped"
