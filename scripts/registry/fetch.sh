#!/usr/bin/env bash
# Fetch Apicurio Registry (the Quarkus app distribution) from Maven Central into
# $CELLSTREAM_REGISTRY_HOME. Idempotent: does nothing when it is already unpacked there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

command -v java >/dev/null || registry_die "java not found: Apicurio Registry $REGISTRY_VERSION needs Java 17+ (e.g. apt-get install openjdk-17-jre-headless)"
java_major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
[[ "${java_major%%.*}" -ge 17 ]] 2>/dev/null || registry_die "Java 17+ required, found '${java_major:-unknown}' at $(command -v java)"

if registry_ready_files; then
  registry_log "present: $REGISTRY_APP"
  exit 0
fi
command -v mvn >/dev/null || registry_die "mvn not found: Maven is needed once to fetch the registry (e.g. apt-get install maven)"

artifact="io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all"
registry_log "fetching $artifact from Maven Central"
mkdir -p "$CELLSTREAM_REGISTRY_HOME"
tmp="$(mktemp -d "$CELLSTREAM_REGISTRY_HOME/app.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# dependency:get puts it in the local Maven repository; copy from there (path per Maven's layout).
if ! mvn -q -B dependency:get "-Dartifact=$artifact" -Dtransitive=false >"$tmp/mvn.log" 2>&1; then
  cat "$tmp/mvn.log" >&2
  registry_die "mvn could not fetch $artifact (is Maven Central reachable?)"
fi
m2="$(mvn -q -B help:evaluate -Dexpression=settings.localRepository -DforceStdout 2>/dev/null || true)"
[[ -d "$m2" ]] || m2="$HOME/.m2/repository"
tarball="$m2/io/apicurio/apicurio-registry-app/$REGISTRY_VERSION/apicurio-registry-app-$REGISTRY_VERSION-all.tar.gz"
[[ -f "$tarball" ]] || registry_die "mvn reported success but $tarball is missing"
mkdir "$tmp/app"
tar -xzf "$tarball" -C "$tmp/app"
[[ -f "$tmp/app/apicurio-registry-app-$REGISTRY_VERSION-runner.jar" ]] ||
  registry_die "the tarball has no apicurio-registry-app-$REGISTRY_VERSION-runner.jar"
echo "apicurio-registry-app $REGISTRY_VERSION" >"$tmp/app/.complete"
# Swap in the complete directory in one step, so an interrupted fetch never looks complete.
rm -rf "$REGISTRY_APP"
mv "$tmp/app" "$REGISTRY_APP"
registry_log "fetched into $REGISTRY_APP ($(du -sh "$REGISTRY_APP" | cut -f1))"
