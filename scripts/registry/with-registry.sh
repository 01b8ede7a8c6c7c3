#!/usr/bin/env bash
# with-registry.sh CMD [ARGS...]: run CMD with a schema registry at $REGISTRY_PORT. Starts
# Apicurio Registry if none answers, stops it afterwards (also on failure, Ctrl-C or SIGTERM), and
# exits with CMD's status. A registry that was already running is used and left running. CMD sees
# SCHEMA_REGISTRY_URL (its Confluent-compatible API).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $# -gt 0 ]] || registry_die "usage: scripts/registry/with-registry.sh CMD [ARGS...]"

started=0
finish() {
  local rc=$?
  trap - EXIT INT TERM
  if ((started)); then "$REGISTRY_SCRIPTS_DIR/stop.sh" || true; fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if registry_answers; then
  registry_log "using the registry already running at $REGISTRY_URL (it stays up)"
else
  started=1
  "$REGISTRY_SCRIPTS_DIR/start.sh" >/dev/null
fi

export SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-$REGISTRY_URL}"
set +e
"$@"
rc=$?
set -e
exit "$rc"
