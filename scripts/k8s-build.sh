#!/usr/bin/env bash
# Builds the pinned Kubernetes lab binaries from the Go module proxy into the cache, once:
# kube-apiserver, controller-manager, scheduler, kubelet, kubectl, kube-proxy (v1.37.2), etcd 3.6,
# the image registry (distribution v3) and a static pause binary. Reused when present.
#
#   scripts/k8s-build.sh            prints the bin folder on its last line
#   scripts/k8s-build.sh --background
#                                   starts this build and kwok's (scripts/kwok-build.sh) in the
#                                   background and returns at once; `make test` does so before the
#                                   suite, whose Kubernetes tests run last and wait for it
#
# One build at a time per cache (a lock in it): a second caller waits for the first and reuses it.
#
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces k8s.io/* with ./staging):
# the module is copied and the replaces are rewritten to the published k8s.io/* modules of
# the same version. etcd's server module needs the same treatment.
set -euo pipefail

K8S_VERSION=1.37.2
ETCD_VERSION=3.6.16
REGISTRY_VERSION=3.1.2
CACHE=${BROKER_ACADEMY_CACHE:-/root/.cache/broker-academy}
BIN=$CACHE/k8s-v$K8S_VERSION/bin
WORK=$CACHE/k8s-build
NEED=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy etcd registry pause)

complete() {
  for b in "${NEED[@]}"; do [ -x "$BIN/$b" ] || return 1; done
}
if [ "${1:-}" = --background ]; then
  kwok=$(dirname "$0")/kwok-build.sh
  if complete && "$kwok" --built; then exit 0; fi
  mkdir -p "$CACHE"
  # Niced and detached: it takes the cores the tests leave idle, and finishes even if the suite stops.
  setsid nohup bash -c '"$1" && "$2"' _ "$0" "$kwok" </dev/null >"$CACHE/k8s-build.log" 2>&1 &
  echo "k8s-build: building the Kubernetes lab's binaries in the background (log: $CACHE/k8s-build.log)" >&2
  exit 0
fi
if complete; then
  echo "$BIN"
  exit 0
fi
mkdir -p "$CACHE"
exec 8>"$CACHE/k8s-build.lock"
flock 8
if complete; then # built by the caller that held the lock
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || { echo "k8s-build: go is not installed" >&2; exit 1; }
command -v gcc >/dev/null || { echo "k8s-build: gcc is not installed (apt-get install gcc)" >&2; exit 1; }

mkdir -p "$BIN" "$WORK/tmp"
export GOTOOLCHAIN=local GOPATH=$WORK/gopath GOMODCACHE=$WORK/gomod GOCACHE=$WORK/gocache GOFLAGS=-mod=mod TMPDIR=$WORK/tmp
started=$(date +%s)

# Kubernetes: the module at the pinned version with its staging replaces pointed at the published modules.
src=$WORK/kubernetes-$K8S_VERSION
if [ ! -f "$src/.rewritten" ]; then
  dir=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$src" && cp -r "$dir" "$src" && chmod -R u+w "$src"
  rm -rf "$src/go.work" "$src/go.work.sum" "$src/vendor"
  sed -i -E "s#(k8s\\.io/[a-z0-9-]+) => \\./staging/src/k8s\\.io/[a-z0-9-]+#\\1 => \\1 v0.${K8S_VERSION#1.}#" "$src/go.mod"
  touch "$src/.rewritten"
fi
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy; do
  [ -x "$BIN/$c" ] && continue
  s=$(date +%s)
  (cd "$src" && nice -n 19 go build -trimpath -ldflags "$ld" -o "$BIN/$c.partial" "./cmd/$c")
  mv "$BIN/$c.partial" "$BIN/$c"
  echo "k8s-build: $c in $(($(date +%s) - s)) s" >&2
done

# etcd: same rewrite of its relative replaces.
if [ ! -x "$BIN/etcd" ]; then
  dir=$(go mod download -json "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  esrc=$WORK/etcd-$ETCD_VERSION
  rm -rf "$esrc" && cp -r "$dir" "$esrc" && chmod -R u+w "$esrc"
  sed -i -E "s#^(\\s*)(go\\.etcd\\.io/etcd/[a-z0-9/]+) => \\.\\./?[a-z0-9/]*#\\1\\2 => \\2 v$ETCD_VERSION#" "$esrc/go.mod"
  (cd "$esrc" && nice -n 19 go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.partial" .)
  mv "$BIN/etcd.partial" "$BIN/etcd"
fi

# The lab's image registry.
if [ ! -x "$BIN/registry" ]; then
  GOBIN=$WORK/gobin nice -n 19 go install -trimpath -ldflags "-s -w" \
    "github.com/distribution/distribution/v3/cmd/registry@v$REGISTRY_VERSION"
  mv "$WORK/gobin/registry" "$BIN/registry"
fi

# The pause binary of a pod's sandbox: Kubernetes' own pause.c, built static.
if [ ! -x "$BIN/pause" ]; then
  pause_c=$(find "$src/build/pause" -name pause.c | head -n 1)
  gcc -Os -static -o "$BIN/pause" "$pause_c" -DVERSION="v$K8S_VERSION"
fi

complete
echo "k8s-build: done in $(($(date +%s) - started)) s" >&2
echo "$BIN"
