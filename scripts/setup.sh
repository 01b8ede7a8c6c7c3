#!/usr/bin/env bash
# Everything a fresh clone needs before `npm start` and `npm test`, in one step (README quick start;
# .ci/run runs it too, so the two never drift): the system packages the tests and the native
# kernel need, installed with apt-get where missing, then `npm ci`, which builds dist/ and the
# native kernel. Needs Node.js >= 20.19 and npm already; run as root or with sudo available.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== system packages"
# Java 17 + Maven fetch and run the test Kafka broker (scripts/kafka) and schema registry
# (scripts/registry, which curl polls until ready), docker-compose validates
# docker-compose.yml (no container engine needed), Chromium runs the dashboard's browser test, a
# C compiler builds the native kernel (scripts/build-native.mjs; without one the wasm kernel runs).
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v curl >/dev/null || need+=(curl)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v chromium >/dev/null || need+=(chromium)
command -v cc >/dev/null || need+=(gcc libc6-dev)
if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null; then
      echo "cellstream setup: not root and no sudo; install these first, then run this again:" >&2
      echo "  apt-get install -y --no-install-recommends ${need[*]}" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  if ! command -v apt-get >/dev/null; then
    echo "cellstream setup: no apt-get here; install the equivalents of: ${need[*]}" >&2
    exit 1
  fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "all present"
fi

echo "== npm ci"
npm ci --no-audit --no-fund
