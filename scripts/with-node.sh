#!/usr/bin/env bash
# with-node.sh VERSION CMD [ARGS...]: run CMD with Node.js VERSION (a major such as 24, or an exact
# 24.22.3) first on PATH, so `node`, `npm` and `npx` (npm is a `#!/usr/bin/env node` script) all
# run on it. The binary comes from the npm registry, where Node's releases are published as the
# packages node-<os>-<arch> (bin/node and the Node-API headers in include/node, which
# scripts/build-native.mjs compiles the native kernel against); it is fetched once into
# $CELLSTREAM_NODE_CACHE (default ~/.cache/cellstream-node/<version>) and reused. A major is
# resolved to its newest release on each run; when the registry cannot be reached, the newest
# cached release of that major is used instead. CMD sees CELLSTREAM_NODE_VERSION=<version>.
# Needs a Node with npm already on PATH to fetch (any supported one: the machine's own).
set -euo pipefail

die() {
  echo "with-node.sh: $*" >&2
  exit 2
}

[[ $# -ge 2 ]] || die "usage: scripts/with-node.sh VERSION CMD [ARGS...]  (VERSION: a major such as 24, or an exact release such as 24.22.3)"
spec=$1
shift
[[ $spec =~ ^[0-9]+(\.[0-9]+\.[0-9]+)?$ ]] ||
  die "'$spec' is not a Node.js version: give a major such as 24, or an exact release such as 24.22.3"
command -v npm >/dev/null || die "npm is not on PATH: it fetches the Node.js binary from the npm registry; install Node.js >= 20.19 with npm first"

case "$(uname -s)" in
Linux) os=linux ;;
Darwin) os=darwin ;;
*) die "no Node.js binary for $(uname -s) on the npm registry that this script knows of; install Node.js $spec yourself and put it first on PATH" ;;
esac
case "$(uname -m)" in
x86_64 | amd64) arch=x64 ;;
aarch64 | arm64) arch=arm64 ;;
*) die "no Node.js binary for the $(uname -m) architecture on the npm registry that this script knows of (x64 and arm64 only); install Node.js $spec yourself and put it first on PATH" ;;
esac
pkg="node-$os-$arch"
[[ -n ${CELLSTREAM_NODE_CACHE:-}${XDG_CACHE_HOME:-}${HOME:-} ]] ||
  die "no cache directory: HOME is not set; set CELLSTREAM_NODE_CACHE to a directory to keep Node.js releases in"
cache=${CELLSTREAM_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cellstream-node}
registry=$(npm config get registry 2>/dev/null || echo "the npm registry")

# The newest cached release matching spec (a major matches its releases, an exact one itself).
newest_cached() {
  [[ -d $cache ]] || return 0
  local d
  for d in "$cache"/*/; do
    d=$(basename "$d")
    if [[ $d == "$spec" || $d == "$spec".* ]] && [[ -x $cache/$d/bin/node ]]; then echo "$d"; fi
  done | sort -t. -k1,1n -k2,2n -k3,3n | tail -n 1
}

# Resolve spec to a release. npm prints a string for one match, an array for several (in
# publishing order, which need not be version order), and an {"error": ...} object for none (404)
# or no network.
out=$(npm view "$pkg@$spec" version --json --fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000 --fetch-timeout=30000 2>/dev/null) || true
version=$(node -e '
  let v; try { v = JSON.parse(process.argv[1]); } catch { process.exit(0); }
  const key = (s) => s.split(".").map(Number);
  const newer = (a, b) => { const [x, y] = [key(a), key(b)]; return x[0] - y[0] || x[1] - y[1] || x[2] - y[2]; };
  if (Array.isArray(v)) v = v.sort(newer).pop();
  if (typeof v === "string") console.log(v);
  else if (v && v.error) console.log("ERROR " + v.error.code + " " + String(v.error.summary).split("\n")[0]);
' "$out")
if [[ -z $version || $version == ERROR* ]]; then
  if [[ $version == "ERROR E404"* ]]; then
    majors=$(npm view "$pkg" versions --json 2>/dev/null | node -e '
      let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => {
        try { console.log([...new Set(JSON.parse(s).map((v) => +v.split(".")[0]))].filter((m) => m >= 20).join(", ")); } catch {}
      });' || true)
    die "no Node.js $spec for $os-$arch on $registry (package $pkg)${majors:+; majors there from 20 on: $majors}"
  fi
  why=${version#ERROR }
  version=$(newest_cached)
  [[ -n $version ]] ||
    die "cannot reach $registry to fetch Node.js $spec (package $pkg${why:+: $why}) and none is cached in $cache; check the network or the npm registry setting, or install Node.js $spec yourself and put it first on PATH"
  echo "with-node.sh: $registry not reachable; using the cached Node.js $version" >&2
fi

dir=$cache/$version
if [[ ! -x $dir/bin/node ]]; then
  echo "with-node.sh: fetching Node.js $version ($pkg) from $registry into $dir" >&2
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.fetch-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # npm pack checks the tarball against the registry's integrity hash.
  (cd "$tmp" && npm pack "$pkg@$version" --silent --fetch-retries=2 >/dev/null) ||
    die "could not fetch $pkg@$version from $registry; check the network or the npm registry setting"
  tar -xzf "$tmp"/*.tgz -C "$tmp" || die "could not unpack $pkg@$version (in $tmp)"
  [[ -x $tmp/package/bin/node ]] || die "$pkg@$version has no bin/node; cannot use it"
  # A rename, so a concurrent run never sees a half-unpacked release.
  mv -T "$tmp/package" "$dir" 2>/dev/null || [[ -x $dir/bin/node ]] || die "could not move Node.js $version into $dir"
  rm -rf "$tmp"
  trap - EXIT
fi

# It must run here (a glibc build does not run on musl systems such as Alpine, for one).
got=$("$dir/bin/node" --version 2>&1) || die "the Node.js $version binary in $dir does not run on this machine: $got"
[[ $got == "v$version" ]] || die "$dir/bin/node says '$got', not v$version; delete $dir and run again"

export PATH="$dir/bin:$PATH"
export CELLSTREAM_NODE_VERSION=$version
exec "$@"
