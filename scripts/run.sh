#!/usr/bin/env bash
# `make run`: install what is missing, migrate, load the course, create the demo
# users, start Redis, the ASGI server, the Celery worker and beat under one
# supervisor, and print where to go. Ctrl+C stops everything, brokers included.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
export PORT=${PORT:-8000} REDIS_PORT=${REDIS_PORT:-6379}
# honcho hands each process its own PORT; the web server reads WEB_PORT instead.
export WEB_PORT=$PORT
# One ready broker of each kind waits, so the first cell a learner runs starts at once.
export SANDBOX_WARM_POOL="${SANDBOX_WARM_POOL:-kafka=1;rabbitmq=1;nats=1;activemq=1}"
mkdir -p var
# Redis asks for a password even here; it is made once and kept in var/, readable by root only.
umask 077
[ -s var/redis.pass ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > var/redis.pass
printf 'port %s\nbind 127.0.0.1\nsave ""\nappendonly no\nrequirepass %s\n' "$REDIS_PORT" "$(cat var/redis.pass)" > var/redis.conf
umask 022
export REDIS_URL=${REDIS_URL:-redis://:$(cat var/redis.pass)@127.0.0.1:$REDIS_PORT/0}
PY=.venv/bin/python
# Web, worker and beat run as the platform's own user (scripts/install.sh makes it), with what they write in
# var/platform; only Redis and the unit launcher (sandboxes/launcher: namespaces, cgroups, disks) stay root.
export PLATFORM_DATA=$PWD/var/platform
procs=(redis web worker beat)
if [ "$(id -u)" = 0 ]; then
  export AS_PLATFORM="setpriv --reuid=broker-academy --regid=broker-academy --init-groups"
  procs+=(launcher)
  install -d -o broker-academy -g broker-academy -m 0750 "$PLATFORM_DATA"
  # A database made by an earlier `make run` (as root, in var/) moves in with its owner changed.
  for f in var/db.sqlite3 var/db.sqlite3-wal var/db.sqlite3-shm; do
    [ -e "$f" ] && [ ! -e "$PLATFORM_DATA/${f#var/}" ] && mv "$f" "$PLATFORM_DATA/"
  done
  chown -R broker-academy:broker-academy "$PLATFORM_DATA"
else
  export AS_PLATFORM=""
  mkdir -p "$PLATFORM_DATA"
fi
# The brokers' files stay where the install step put them (the launcher's agents read them).
export BROKER_ACADEMY_CACHE=${BROKER_ACADEMY_CACHE:-$HOME/.cache/broker-academy}
export HOME=$PLATFORM_DATA
$AS_PLATFORM $PY manage.py migrate --noinput -v 0
$AS_PLATFORM $PY manage.py course_load
$AS_PLATFORM $PY manage.py demo_users

if ss -ltn "( sport = :$PORT )" | grep -q LISTEN; then
  echo "Port $PORT is taken: stop what uses it, or run PORT=8001 make run" >&2
  exit 1
fi

.venv/bin/honcho start -f Procfile "${procs[@]}" &
supervisor=$!
cleanup() {
  trap - INT TERM EXIT
  kill -TERM "$supervisor" 2>/dev/null || true
  wait "$supervisor" 2>/dev/null || true
  # Sandboxes are separate process groups; stop every unit this platform owns.
  $PY manage.py sandbox_stop_all >/dev/null 2>&1 || true
}
trap cleanup INT TERM EXIT

for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then break; fi
  kill -0 "$supervisor" 2>/dev/null || { echo "the platform did not start; see the output above" >&2; exit 1; }
  sleep 0.5
done
cat <<BANNER

  Broker Academy is running:  http://127.0.0.1:$PORT/

  Demo learner:     learner / learner-demo-pass
  Demo instructor:  teacher / teacher-demo-pass

  Ctrl+C stops the platform and every sandbox it started.

BANNER
wait "$supervisor"
