#!/usr/bin/env bash
# Builds kwok (fake Kubernetes nodes, sigs.k8s.io/kwok) from the Go module proxy into the cache, once,
# with the stages it needs (a fake node becomes Ready and keeps beating; a pod on one becomes Running
# and Ready at once, and goes when deleted), taken from the same module version. Reused when present.
#
#   scripts/kwok-build.sh           prints the kwok binary on its last line; the stages file is
#                                   next to it (kwok-stages.yaml)
#   scripts/kwok-build.sh --built   exits 0 when it is built, 1 otherwise
#
# Used by the k8s simulation (bench/k8s_sim.py, tests/k8s/test_kwok.py) against the lab's API server.
set -euo pipefail

KWOK_VERSION=0.8.0
CACHE=${BROKER_ACADEMY_CACHE:-/root/.cache/broker-academy}
BIN=$CACHE/kwok-v$KWOK_VERSION/bin
WORK=$CACHE/k8s-build

built() { [ -x "$BIN/kwok" ] && [ -s "$BIN/kwok-stages.yaml" ]; }
if [ "${1:-}" = --built ]; then built; exit; fi
if built; then
  echo "$BIN/kwok"
  exit 0
fi
# One build at a time per cache, shared with scripts/k8s-build.sh (the same Go caches).
mkdir -p "$CACHE"
exec 8>"$CACHE/k8s-build.lock"
flock 8
if built; then
  echo "$BIN/kwok"
  exit 0
fi
command -v go >/dev/null || { echo "kwok-build: go is not installed" >&2; exit 1; }

mkdir -p "$BIN" "$WORK/tmp" "$WORK/kwok-gobin"
export GOTOOLCHAIN=local GOPATH=$WORK/gopath GOMODCACHE=$WORK/gomod GOCACHE=$WORK/gocache GOFLAGS=-mod=mod TMPDIR=$WORK/tmp
started=$(date +%s)
if [ ! -x "$BIN/kwok" ]; then
  GOBIN=$WORK/kwok-gobin nice -n 19 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  mv "$WORK/kwok-gobin/kwok" "$BIN/kwok"
fi

# The module's own stage definitions: nodes initialised fast and kept Ready by a heartbeat, pods fast.
dir=$(go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
stage=$dir/kustomize/stage
{
  for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"
    cat "$stage/$f"
  done
} >"$BIN/kwok-stages.yaml.partial"
mv "$BIN/kwok-stages.yaml.partial" "$BIN/kwok-stages.yaml"

echo "kwok-build: done in $(($(date +%s) - started)) s" >&2
echo "$BIN/kwok"
