#!/usr/bin/env bash
# Start a single-node Apache Kafka broker (KRaft, combined broker+controller) on 127.0.0.1 for
# tests and development, unless one already answers on $KAFKA_PORT. Waits until it answers.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if kafka_port_open "$KAFKA_PORT"; then
  if kafka_answers >/dev/null 2>&1; then
    kafka_log "a broker already answers on $KAFKA_BOOTSTRAP; not starting another"
    echo "$KAFKA_BOOTSTRAP"
    exit 0
  fi
  kafka_libs_ready || kafka_die "port $KAFKA_PORT is in use (run scripts/kafka/fetch.sh to check whether it is a broker)"
  kafka_die "port $KAFKA_PORT is in use by something that is not an answering Kafka broker; choose another KAFKA_PORT"
fi
kafka_port_open "$KAFKA_CONTROLLER_PORT" && kafka_die "controller port $KAFKA_CONTROLLER_PORT is in use; set KAFKA_CONTROLLER_PORT"

"$KAFKA_SCRIPTS_DIR/fetch.sh"

mkdir -p "$KAFKA_DATA_DIR"
# One start at a time per data dir.
exec 9>"$KAFKA_DATA_DIR/.lock"
flock -w "$KAFKA_START_TIMEOUT" 9 || kafka_die "another start.sh holds $KAFKA_DATA_DIR/.lock"
if pid="$(kafka_our_pid)"; then
  kafka_die "broker pid $pid from $KAFKA_DATA_DIR is running but not answering on $KAFKA_BOOTSTRAP; see $KAFKA_LOG_FILE or run stop.sh"
fi

# Fresh storage on every start (tests want a clean broker); KAFKA_KEEP_DATA=1 keeps topics.
if [[ "${KAFKA_KEEP_DATA:-0}" != 1 ]]; then rm -rf "$KAFKA_DATA_DIR/logs"; fi

cat >"$KAFKA_DATA_DIR/server.properties" <<PROPS
# Written by scripts/kafka/start.sh — single-node KRaft broker for tests and development.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DATA_DIR/logs

# One node: everything replicated once.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
# Few internal partitions: fast to create, enough for one node.
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
# Consumer groups form at once instead of after 3 s.
group.initial.rebalance.delay.ms=0
# Tests create their topics explicitly.
auto.create.topics.enable=false
num.partitions=1
# Small footprint (default dedupe buffer is 128 MiB).
log.cleaner.dedupe.buffer.size=16777216
num.io.threads=4
num.network.threads=2
num.recovery.threads.per.data.dir=1
PROPS
# Extra key=value lines (later keys win), e.g. KAFKA_EXTRA_CONFIG=$'log.cleaner.backoff.ms=1000'.
if [[ -n "${KAFKA_EXTRA_CONFIG:-}" ]]; then printf '\n# KAFKA_EXTRA_CONFIG\n%s\n' "$KAFKA_EXTRA_CONFIG" >>"$KAFKA_DATA_DIR/server.properties"; fi

cat >"$KAFKA_DATA_DIR/log4j.properties" <<'PROPS'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.controller=WARN
log4j.logger.kafka.log.LogCleaner=WARN
PROPS

if [[ ! -f "$KAFKA_DATA_DIR/logs/meta.properties" ]]; then
  # A cluster id is a base64url-encoded random 16-byte UUID (22 characters). One starting with '-'
  # (1 in 64) would be read by the tool's argument parser as an option: draw again.
  cluster_id=-
  while [[ $cluster_id == -* ]]; do
    cluster_id="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  done
  kafka_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_DATA_DIR/server.properties" >/dev/null ||
    kafka_die "could not format storage in $KAFKA_DATA_DIR/logs"
fi

started_at=$SECONDS
rm -f "$KAFKA_MARKER_FILE"
# setsid: the broker gets its own session, so a Ctrl-C meant for a test run does not reach it
# (with-kafka.sh stops it in order). The inner shell records its pid, then becomes the JVM.
setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$KAFKA_PID_FILE" \
  java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
  -Djava.awt.headless=true "-Dlog4j.configuration=file:$KAFKA_DATA_DIR/log4j.properties" \
  -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_DATA_DIR/server.properties" \
  </dev/null >"$KAFKA_LOG_FILE" 2>&1 &
for _ in $(seq 100); do kafka_our_pid >/dev/null && break; sleep 0.1; done
echo "$KAFKA_BOOTSTRAP started $(date -u +%FT%TZ)" >"$KAFKA_MARKER_FILE"
kafka_log "starting broker pid $(cat "$KAFKA_PID_FILE") on $KAFKA_BOOTSTRAP (data $KAFKA_DATA_DIR, log $KAFKA_LOG_FILE)"

# Wait until it really answers: cheap port polls first, then a topic listing with Kafka's CLI.
while ((SECONDS - started_at < KAFKA_START_TIMEOUT)); do
  if ! kafka_our_pid >/dev/null; then
    tail -n 40 "$KAFKA_LOG_FILE" >&2 || true
    rm -f "$KAFKA_PID_FILE" "$KAFKA_MARKER_FILE"
    kafka_die "the broker exited during start-up (log above, full log $KAFKA_LOG_FILE)"
  fi
  if kafka_port_open "$KAFKA_PORT" && kafka_answers >/dev/null 2>&1; then
    kafka_log "broker ready on $KAFKA_BOOTSTRAP after $((SECONDS - started_at)) s"
    echo "$KAFKA_BOOTSTRAP"
    exit 0
  fi
  sleep 0.5
done
tail -n 40 "$KAFKA_LOG_FILE" >&2 || true
kafka_log "broker not ready after $KAFKA_START_TIMEOUT s; stopping it"
"$KAFKA_SCRIPTS_DIR/stop.sh" || true
kafka_die "the broker did not answer on $KAFKA_BOOTSTRAP within $KAFKA_START_TIMEOUT s (log above, full log $KAFKA_LOG_FILE)"
