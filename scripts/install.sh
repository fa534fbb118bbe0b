#!/usr/bin/env bash
# Installs what the platform and its tests need and is missing: Debian packages,
# the virtualenv with requirements.txt, and the brokers at the versions pinned in
# sandboxes/brokers/versions.py: Apache Kafka's and ActiveMQ's jars from Maven Central,
# nats-server and natscli built with Go. Fast when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package that provides it
declare -A NEED=(
  [redis-server]=redis-server [rabbitmq-server]=rabbitmq-server
  [bwrap]=bubblewrap [chromium]=chromium [kcat]=kcat [ip]=iproute2
  [ps]=procps [fuser]=psmisc [msgfmt]=gettext [java]=openjdk-17-jre-headless [mvn]=maven
  [curl]=curl [mkfs.ext4]=e2fsprogs [losetup]=mount
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${NEED[$cmd]}")
done
# Packages with no command of their own. Postgres: the test suite starts its own server from
# Debian's binaries (production points DATABASE_URL at one).
for pkg in postgresql python3-venv; do
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

# Debian's Python, not whichever python3 comes first on root's PATH: web, worker and beat run as the
# platform's own user, who must be able to run the virtualenv's interpreter (one under /root is not theirs).
PY=${PYTHON:-/usr/bin/python3}
home=$(dirname "$(readlink -f "$PY")")
if [ ! -x .venv/bin/python ] || ! grep -qx "home = $home" .venv/pyvenv.cfg; then
  echo "==> creating the virtualenv (.venv) from $PY"
  rm -rf .venv
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

# The platform's own user and group: web, worker and beat run as it; only the unit launcher
# (python -m sandboxes.launcher) runs as root, and serves this group (SANDBOX_PLATFORM_GROUP).
if ! getent passwd broker-academy >/dev/null; then
  echo "==> creating the platform's user and group broker-academy"
  useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin broker-academy
fi

# The brokers not taken from Debian, each into the cache at its pinned version; each step
# returns at once when its copy is already there.
scripts/fetch-jars.sh kafka
scripts/fetch-jars.sh activemq
scripts/fetch-jars.sh activemq-console
scripts/build-nats.sh
# Kafka's classes as one archive the JVM maps (sandboxes/brokers/class_archive.py): a broker starts in about 3.5 s
# instead of 5.5; made once per JVM and jars (about 15 s), then nothing to do.
.venv/bin/python -m sandboxes.brokers.class_archive_make
# RabbitMQ stays Debian's package: no newer release installs from the registries here.
rabbitmq_pin=$(python3 -m sandboxes.brokers.versions rabbitmq)
rabbitmq_have=$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || true)
case "$rabbitmq_have" in
  "$rabbitmq_pin".*) ;;
  *) echo "warning: rabbitmq-server is ${rabbitmq_have:-not installed}, sandboxes/brokers/versions.py pins $rabbitmq_pin" >&2 ;;
esac
