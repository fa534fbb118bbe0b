#!/usr/bin/env bash
# Installs what the platform and its tests need and is missing: Debian packages,
# the virtualenv with requirements.txt, Apache Kafka's jars. Fast when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package that provides it
declare -A NEED=(
  [redis-server]=redis-server [rabbitmq-server]=rabbitmq-server [nats-server]=nats-server
  [activemq]=activemq [bwrap]=bubblewrap [chromium]=chromium [kcat]=kcat [ip]=iproute2
  [ps]=procps [fuser]=psmisc [msgfmt]=gettext [java]=openjdk-17-jre-headless [mvn]=maven
  [curl]=curl
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${NEED[$cmd]}")
done
# Packages with no command of their own (ActiveMQ's advisory messages need these over STOMP).
# Postgres: the test suite starts its own server from Debian's binaries (production points DATABASE_URL at one).
for pkg in libxstream-java libjettison-java postgresql; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages: ${missing[*]}. Run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "==> installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating the virtualenv (.venv)"
  "$PY" -m venv .venv
fi
want=$(sha256sum requirements.txt | cut -d' ' -f1)
have=$(cat .venv/.requirements.sha 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  echo "==> installing Python packages from requirements.txt"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > .venv/.requirements.sha
fi

if [ -x scripts/fetch-kafka.sh ]; then
  scripts/fetch-kafka.sh
fi
