#!/bin/sh
# Start Redis with the password in REDIS_PASSWORD, given on stdin as a one-line config file, never
# on the command line. Nothing is saved: what the platform keeps there (channel messages, cache,
# queued tasks) is transient, and a restart loses only what was in flight.
# A here-document, not a pipe: `printf | exec redis-server` runs Redis in a child of this shell, which
# stays PID 1 and ignores SIGTERM, so every stop waited out the pod's whole grace period (30 s) and
# ended in SIGKILL. Here Redis replaces the shell and stops at once.
set -eu
: "${REDIS_PASSWORD:?set REDIS_PASSWORD}"
exec redis-server - --port 6379 --bind '* -::*' --save '' --appendonly no --dir /tmp <<CONFIG
requirepass $REDIS_PASSWORD
CONFIG
