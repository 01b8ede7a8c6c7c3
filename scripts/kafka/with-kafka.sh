#!/usr/bin/env bash
# with-kafka.sh CMD [ARGS...]: run CMD with a Kafka broker on $KAFKA_PORT. Starts one if none
# answers, stops it afterwards (also on failure, Ctrl-C or SIGTERM), and exits with CMD's status.
# A broker that was already running is used and left running. CMD sees KAFKA_BROKERS (default
# 127.0.0.1:$KAFKA_PORT).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $# -gt 0 ]] || kafka_die "usage: scripts/kafka/with-kafka.sh CMD [ARGS...]"

started=0
finish() {
  local rc=$?
  trap - EXIT INT TERM
  if ((started)); then "$KAFKA_SCRIPTS_DIR/stop.sh" || true; fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if kafka_answers >/dev/null 2>&1; then
  kafka_log "using the broker already running on $KAFKA_BOOTSTRAP (it stays up)"
else
  started=1
  "$KAFKA_SCRIPTS_DIR/start.sh" >/dev/null
fi

export KAFKA_BROKERS="${KAFKA_BROKERS:-$KAFKA_BOOTSTRAP}"
set +e
"$@"
rc=$?
set -e
exit "$rc"
