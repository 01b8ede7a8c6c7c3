# shellcheck shell=bash
# Shared settings and helpers for scripts/registry/*.sh (sourced, not run).
# Every setting can be overridden from the environment; see docs/kafka.md.

REGISTRY_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REGISTRY_REPO_ROOT="$(cd "$REGISTRY_SCRIPTS_DIR/../.." && pwd)"

REGISTRY_VERSION=3.0.9
CELLSTREAM_REGISTRY_HOME="${CELLSTREAM_REGISTRY_HOME:-$HOME/.cache/cellstream-registry}"
REGISTRY_APP="$CELLSTREAM_REGISTRY_HOME/apicurio-registry-app-$REGISTRY_VERSION"
REGISTRY_JAR="$REGISTRY_APP/apicurio-registry-app-$REGISTRY_VERSION-runner.jar"
REGISTRY_HOST=127.0.0.1
REGISTRY_PORT="${REGISTRY_PORT:-18081}"
# The Confluent-compatible API; what cellstream's kafka.registry.url points at.
REGISTRY_URL="http://$REGISTRY_HOST:$REGISTRY_PORT/apis/ccompat/v7"
REGISTRY_DATA_DIR="${REGISTRY_DATA_DIR:-$REGISTRY_REPO_ROOT/.registry}"
REGISTRY_HEAP_OPTS="${REGISTRY_HEAP_OPTS:--Xms64m -Xmx384m}"
REGISTRY_START_TIMEOUT="${REGISTRY_START_TIMEOUT:-90}"
REGISTRY_STOP_TIMEOUT="${REGISTRY_STOP_TIMEOUT:-20}"

REGISTRY_PID_FILE="$REGISTRY_DATA_DIR/registry.pid"
REGISTRY_MARKER_FILE="$REGISTRY_DATA_DIR/started-by-us"
REGISTRY_LOG_FILE="$REGISTRY_DATA_DIR/registry.log"

registry_log() { echo "[registry] $*" >&2; }
registry_die() {
  echo "[registry] error: $*" >&2
  exit 1
}

registry_ready_files() { [[ -f "$REGISTRY_APP/.complete" && -f "$REGISTRY_JAR" ]]; }

registry_port_open() { (exec 3<>"/dev/tcp/$REGISTRY_HOST/$1") 2>/dev/null; }

# Does a Confluent-compatible registry answer? GET /subjects returns a JSON array.
registry_answers() {
  registry_port_open "$REGISTRY_PORT" || return 1
  local body
  body="$(curl -fsS --max-time 3 "$REGISTRY_URL/subjects" 2>/dev/null)" || return 1
  [[ "$body" == \[* ]]
}

# Pid of the registry this project started, if it is still that process (guards against pid reuse).
registry_our_pid() {
  [[ -f "$REGISTRY_PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$REGISTRY_PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "-Dquarkus.http.port=$REGISTRY_PORT .*-jar $REGISTRY_JAR" || return 1
  echo "$pid"
}
