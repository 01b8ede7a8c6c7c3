#!/usr/bin/env bash
# Start Apicurio Registry (in-memory storage, Confluent-compatible API at /apis/ccompat/v7) on
# 127.0.0.1:$REGISTRY_PORT for tests and development, unless one already answers there. Waits
# until it answers, then prints its Confluent-compatible URL.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if registry_port_open "$REGISTRY_PORT"; then
  if registry_answers; then
    registry_log "a registry already answers at $REGISTRY_URL; not starting another"
    echo "$REGISTRY_URL"
    exit 0
  fi
  registry_die "port $REGISTRY_PORT is in use by something that is not a schema registry; choose another REGISTRY_PORT"
fi

"$REGISTRY_SCRIPTS_DIR/fetch.sh"

mkdir -p "$REGISTRY_DATA_DIR"
exec 9>"$REGISTRY_DATA_DIR/.lock"
flock -w "$REGISTRY_START_TIMEOUT" 9 || registry_die "another start.sh holds $REGISTRY_DATA_DIR/.lock"
if pid="$(registry_our_pid)"; then
  registry_die "registry pid $pid is running but not answering at $REGISTRY_URL; see $REGISTRY_LOG_FILE or run stop.sh"
fi

started_at=$SECONDS
rm -f "$REGISTRY_MARKER_FILE"
# setsid: its own session, so a Ctrl-C meant for a test run does not reach it (with-registry.sh
# stops it in order). The inner shell records its pid, then becomes the JVM. Storage is in-memory
# (the app's default): every start is a clean registry, as tests want.
setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$REGISTRY_PID_FILE" \
  java $REGISTRY_HEAP_OPTS -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
  -Dquarkus.http.host=$REGISTRY_HOST -Dquarkus.http.port=$REGISTRY_PORT \
  -Dquarkus.log.level=WARN -Dquarkus.log.category.\"io.apicurio\".level=WARN \
  -jar "$REGISTRY_JAR" \
  </dev/null >"$REGISTRY_LOG_FILE" 2>&1 &
for _ in $(seq 100); do registry_our_pid >/dev/null && break; sleep 0.1; done
echo "$REGISTRY_URL started $(date -u +%FT%TZ)" >"$REGISTRY_MARKER_FILE"
registry_log "starting registry pid $(cat "$REGISTRY_PID_FILE") on $REGISTRY_HOST:$REGISTRY_PORT (log $REGISTRY_LOG_FILE)"

while ((SECONDS - started_at < REGISTRY_START_TIMEOUT)); do
  if ! registry_our_pid >/dev/null; then
    tail -n 40 "$REGISTRY_LOG_FILE" >&2 || true
    rm -f "$REGISTRY_PID_FILE" "$REGISTRY_MARKER_FILE"
    registry_die "the registry exited during start-up (log above, full log $REGISTRY_LOG_FILE)"
  fi
  if registry_answers; then
    registry_log "registry ready at $REGISTRY_URL after $((SECONDS - started_at)) s"
    echo "$REGISTRY_URL"
    exit 0
  fi
  sleep 0.3
done
tail -n 40 "$REGISTRY_LOG_FILE" >&2 || true
registry_log "registry not ready after $REGISTRY_START_TIMEOUT s; stopping it"
"$REGISTRY_SCRIPTS_DIR/stop.sh" || true
registry_die "the registry did not answer at $REGISTRY_URL within $REGISTRY_START_TIMEOUT s (log above, full log $REGISTRY_LOG_FILE)"
