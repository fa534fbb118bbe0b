#!/bin/sh
# Make sure a Docker Engine answers on this machine, for the docker sandbox backend and its tests.
#
#   scripts/docker-engine.sh
#
# Installs Debian's docker.io (and debootstrap, which scripts/docker-base.sh needs) when
# missing, then starts dockerd in the background when no engine answers on
# /var/run/docker.sock. Idempotent and quick when an engine runs. Needs root.
# dockerd logs to var/dockerd.log and outlives this script (stop it by its pid in var/dockerd.pid).
#
# Two daemon options matter for sandboxes, and an operator's own engine should have them too:
#   --default-address-pool  every sandbox has a private network of its own; Docker's default
#                           pools hold about 30 networks, this one 4096 (/28 each);
#   --mtu                   the uplink's MTU, so that image builds behind a smaller MTU do not stall.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SOCKET=/var/run/docker.sock
LOG=$ROOT/var/dockerd.log
POOL=${DOCKER_ADDRESS_POOL:-base=10.213.0.0/16,size=28}

answers() {
    curl -fsS --max-time 3 --unix-socket "$SOCKET" http://docker/_ping >/dev/null 2>&1
}

if answers; then
    echo "Docker Engine answers on $SOCKET"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "docker-engine: no Docker Engine answers on $SOCKET, and starting one needs root" >&2
    exit 1
fi

# One caller at a time (two test workers, a user's `make images` beside `make test`): the second waits, then
# finds the engine the first started.
exec 9>/run/lock/broker-academy-docker-engine.lock
flock 9
if answers; then
    echo "Docker Engine answers on $SOCKET"
    exit 0
fi

missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing="$missing debootstrap"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
if [ -n "$missing" ]; then
    echo "==> installing Debian packages:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086 (one word per package)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing iptables >/dev/null
fi

# The uplink's MTU (the interface of the default route); Docker's bridges default to 1500.
dev=$(ip route show default 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')
mtu=$(cat "/sys/class/net/${dev:-lo}/mtu" 2>/dev/null || echo 1500)
[ "$mtu" -gt 1500 ] && mtu=1500

mkdir -p "$ROOT/var"
echo "==> starting dockerd (log: $LOG)"
# setsid: the engine must outlive this script and the test session that called it.
setsid dockerd --host "unix://$SOCKET" --mtu "$mtu" --default-address-pool "$POOL" \
    >>"$LOG" 2>&1 </dev/null &
echo $! >"$ROOT/var/dockerd.pid"

i=0
until answers; do
    i=$((i + 1))
    if [ $i -gt 120 ] || ! kill -0 "$(cat "$ROOT/var/dockerd.pid")" 2>/dev/null; then
        echo "docker-engine: dockerd did not answer within 60 s; the end of $LOG:" >&2
        tail -n 30 "$LOG" >&2
        exit 1
    fi
    sleep 0.5
done
echo "Docker Engine started (pid $(cat "$ROOT/var/dockerd.pid"))"
