# shellcheck shell=bash
# Shared settings and helpers for scripts/kafka/*.sh (sourced, not run).
# Every setting can be overridden from the environment; see docs/kafka.md.

KAFKA_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_REPO_ROOT="$(cd "$KAFKA_SCRIPTS_DIR/../.." && pwd)"

KAFKA_VERSION=3.9.1 # keep in step with pom.xml
CELLSTREAM_KAFKA_HOME="${CELLSTREAM_KAFKA_HOME:-$HOME/.cache/cellstream-kafka}"
KAFKA_LIBS="$CELLSTREAM_KAFKA_HOME/libs"
KAFKA_HOST=127.0.0.1
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_BOOTSTRAP="$KAFKA_HOST:$KAFKA_PORT"
KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$KAFKA_REPO_ROOT/.kafka}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

KAFKA_PID_FILE="$KAFKA_DATA_DIR/broker.pid"
KAFKA_MARKER_FILE="$KAFKA_DATA_DIR/started-by-us"
KAFKA_LOG_FILE="$KAFKA_DATA_DIR/broker.log"

kafka_log() { echo "[kafka] $*" >&2; }
kafka_die() {
  echo "[kafka] error: $*" >&2
  exit 1
}

# The stamp names the Kafka version and a hash of pom.xml, so a changed pom re-fetches.
kafka_stamp() { echo "kafka $KAFKA_VERSION pom $(sha256sum "$KAFKA_SCRIPTS_DIR/pom.xml" | cut -c1-16)"; }
kafka_libs_ready() { [[ -f "$KAFKA_LIBS/.complete" && "$(cat "$KAFKA_LIBS/.complete")" == "$(kafka_stamp)" ]]; }

# Is something listening on the broker port? (bash /dev/tcp: no JVM, no client library)
kafka_port_open() { (exec 3<>"/dev/tcp/$KAFKA_HOST/$1") 2>/dev/null; }

# Does a Kafka broker really answer on the broker port? Lists topics with Kafka's own CLI class,
# bounded by short client timeouts. Prints the topic list on stdout.
kafka_answers() {
  kafka_port_open "$KAFKA_PORT" || return 1
  kafka_libs_ready || return 1
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
    --command-config "$(kafka_client_config)" --list
}

# Run a Kafka CLI class with the fetched jars, a small fast-starting JVM and quiet logging.
kafka_tool() {
  local log4j="$CELLSTREAM_KAFKA_HOME/tools-log4j.properties"
  if [[ ! -f "$log4j" ]]; then
    printf '%s\n' 'log4j.rootLogger=ERROR, stderr' \
      'log4j.appender.stderr=org.apache.log4j.ConsoleAppender' \
      'log4j.appender.stderr.Target=System.err' \
      'log4j.appender.stderr.layout=org.apache.log4j.PatternLayout' \
      'log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n' >"$log4j"
  fi
  java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
    "-Dlog4j.configuration=file:$log4j" -cp "$KAFKA_LIBS/*" "$@"
}

# Admin-client settings for kafka_answers: fail within seconds instead of the 60 s default.
kafka_client_config() {
  local f="$CELLSTREAM_KAFKA_HOME/check-client.properties"
  [[ -f "$f" ]] || printf '%s\n' 'request.timeout.ms=3000' 'default.api.timeout.ms=5000' \
    'socket.connection.setup.timeout.ms=2000' 'reconnect.backoff.max.ms=500' >"$f"
  echo "$f"
}

# Pid of the broker this project started, if it is still that process (guards against pid reuse).
kafka_our_pid() {
  [[ -f "$KAFKA_PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$KAFKA_PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "kafka.Kafka $KAFKA_DATA_DIR/server.properties" || return 1
  echo "$pid"
}
