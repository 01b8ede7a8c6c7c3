#!/usr/bin/env bash
# Fetch the Apache Kafka broker jars from Maven Central into $CELLSTREAM_KAFKA_HOME/libs.
# Idempotent: does nothing when the jars for this pom.xml are already there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

command -v java >/dev/null || kafka_die "java not found: Kafka $KAFKA_VERSION needs Java 17+ (e.g. apt-get install openjdk-17-jre-headless)"
java_major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
[[ "${java_major%%.*}" -ge 17 ]] 2>/dev/null || kafka_die "Java 17+ required, found '${java_major:-unknown}' at $(command -v java)"

if kafka_libs_ready; then
  kafka_log "jars present: $KAFKA_LIBS ($(cat "$KAFKA_LIBS/.complete"))"
  exit 0
fi
command -v mvn >/dev/null || kafka_die "mvn not found: Maven is needed once to fetch the Kafka jars (e.g. apt-get install maven)"

kafka_log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
mkdir -p "$CELLSTREAM_KAFKA_HOME"
tmp="$(mktemp -d "$CELLSTREAM_KAFKA_HOME/libs.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
if ! mvn -q -B -f "$KAFKA_SCRIPTS_DIR/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime "-DoutputDirectory=$tmp" >"$tmp/mvn.log" 2>&1; then
  cat "$tmp/mvn.log" >&2
  kafka_die "mvn could not fetch the Kafka jars (is Maven Central reachable?)"
fi
rm -f "$tmp/mvn.log"
[[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" && -f "$tmp/reload4j-1.2.25.jar" ]] ||
  kafka_die "fetched jars are incomplete: $(ls "$tmp" | wc -l) files in $tmp"
kafka_stamp >"$tmp/.complete"
# Swap in the complete directory in one step, so an interrupted fetch never looks complete.
rm -rf "$KAFKA_LIBS"
mv "$tmp" "$KAFKA_LIBS"
trap - EXIT
kafka_log "fetched $(ls "$KAFKA_LIBS" | wc -l) jars ($(du -sh "$KAFKA_LIBS" | cut -f1))"
