#!/bin/sh
# Create the local base image debian:bookworm-slim that sandboxes/images/ builds on.
#
#   scripts/docker-base.sh
#
# No container registry is reachable from these machines, so the image is made here:
# debootstrap --variant=minbase bookworm from Debian's mirror, trimmed the way the
# official slim image is (no docs, man pages or locales; no apt caches), then imported
# into the local engine through its API. Idempotent: an existing image is left alone.
# Needs root and an engine (scripts/docker-engine.sh).
set -eu

IMAGE_REPO=debian
IMAGE_TAG=bookworm-slim
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SOCKET=/var/run/docker.sock

api() {
    curl -fsS --unix-socket "$SOCKET" "$@"
}

if api "http://docker/images/$IMAGE_REPO:$IMAGE_TAG/json" >/dev/null 2>&1; then
    echo "$IMAGE_REPO:$IMAGE_TAG already exists"
    exit 0
fi
# One build at a time: a second caller waits for the first, then finds the image.
exec 9>/run/lock/broker-academy-docker-base.lock
flock 9
if api "http://docker/images/$IMAGE_REPO:$IMAGE_TAG/json" >/dev/null 2>&1; then
    echo "$IMAGE_REPO:$IMAGE_TAG already exists"
    exit 0
fi
api http://docker/_ping >/dev/null || { echo "docker-base: no Docker Engine answers; run scripts/docker-engine.sh" >&2; exit 1; }
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || {
    echo "docker-base: debootstrap missing (apt-get install debootstrap, or run scripts/docker-engine.sh)" >&2; exit 1; }

WORK=$(mktemp -d /var/tmp/docker-base.XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM
ROOTFS=$WORK/rootfs

echo "==> debootstrap --variant=minbase bookworm (from $MIRROR)"
PATH=$PATH:/usr/sbin:/sbin debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 30 "$WORK/debootstrap.log" >&2; exit 1; }

# What the official slim image configures, so that images built on this one stay small.
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
cat >"$ROOTFS/etc/apt/apt.conf.d/docker" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
cat >"$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
EOF
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/var/log/*.log \
    "$ROOTFS"/var/log/apt/* "$ROOTFS"/tmp/*
: >"$ROOTFS/etc/hostname"
: >"$ROOTFS/etc/resolv.conf"

echo "==> importing as $IMAGE_REPO:$IMAGE_TAG"
tar --numeric-owner --xattrs -C "$ROOTFS" -cf "$WORK/rootfs.tar" .
api -X POST -H "Content-Type: application/x-tar" --data-binary "@$WORK/rootfs.tar" \
    "http://docker/images/create?fromSrc=-&repo=$IMAGE_REPO&tag=$IMAGE_TAG" >"$WORK/import.log"
api "http://docker/images/$IMAGE_REPO:$IMAGE_TAG/json" >/dev/null || { cat "$WORK/import.log" >&2; exit 1; }
echo "$IMAGE_REPO:$IMAGE_TAG created ($(du -sh "$WORK/rootfs.tar" | cut -f1) uncompressed)"
