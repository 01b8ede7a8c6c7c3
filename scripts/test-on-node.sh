#!/usr/bin/env bash
# test-on-node.sh VERSION [TEST FILES...]: install and test this checkout on Node.js VERSION, as a
# user on that Node would (`npm run test:node24` and .ci/run run it with 24): scripts/with-node.sh
# puts that Node first on PATH, then `npm ci` (it replaces node_modules; the install script and the
# build run on that Node, and the native kernel is rebuilt against its headers: build/native is
# removed first, or the build would keep the addon another Node's headers compiled), then
# `npm test` (the README's test command) with the files given, if any.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 1 ]] || { echo "usage: scripts/test-on-node.sh VERSION [TEST FILES...]" >&2; exit 2; }
version=$1
shift
exec scripts/with-node.sh "$version" bash -c '
  set -euo pipefail
  echo "== Node $(node --version), npm $(npm --version): npm ci, then npm test"
  rm -rf build/native
  npm ci --no-audit --no-fund
  npm test -- "$@"
' test-on-node "$@"
