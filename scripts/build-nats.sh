#!/bin/sh
# Build nats-server and the nats command-line tool (natscli) with the machine's Go from
# the Go module proxy into the Broker Academy cache, where sandboxes/brokers/nats/kind.py
# (and the nats image) look for them.
#
#   scripts/build-nats.sh
#
# The versions are the ones pinned in sandboxes/brokers/versions.py (nats, natscli);
# each lands in <cache>/<name>-<version>/ (python3 -m sandboxes.brokers.versions --home NAME).
# Idempotent: a binary already in place is left alone. Static (CGO off), so the same
# binary runs in the Debian image. Built in a temporary folder and renamed at the end.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")

GO=$(command -v go || true)
[ -n "$GO" ] || { [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go; } || true
[ -n "$GO" ] || { echo "build-nats: go not found (nats-server needs Go 1.26 or newer; Debian's is older)" >&2; exit 1; }

# name, the Go package to install, the binary it makes
build() {
    name=$1 package=$2 binary=$3
    version=$(cd "$ROOT" && python3 -m sandboxes.brokers.versions "$name")
    dest=$(cd "$ROOT" && python3 -m sandboxes.brokers.versions --home "$name")
    if [ -x "$dest/$binary" ]; then
        echo "$name $version already in $dest"
        return 0
    fi
    mkdir -p "$(dirname "$dest")"
    tmp=$(mktemp -d "$dest.partial.XXXXXX")
    chmod 755 "$tmp"  # mktemp makes it private; brokers may run as another account
    echo "Building $name $version ($package@v$version) into $dest"
    if ! CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-buildvcs=false "$GO" install -trimpath "$package@v$version"; then
        rm -rf "$tmp"
        return 1
    fi
    rm -rf "$dest"
    mv "$tmp" "$dest"
    echo "$name $version: $("$dest/$binary" --version 2>&1 | head -n 1)"
}

build nats github.com/nats-io/nats-server/v2 nats-server
build natscli github.com/nats-io/natscli/nats nats
