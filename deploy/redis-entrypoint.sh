#!/bin/sh
# Start Redis with the password in REDIS_PASSWORD, given on stdin as a one-line config file, never
# on the command line. Nothing is saved: what the platform keeps there (channel messages, cache,
# queued tasks) is transient, and a restart loses only what was in flight.
set -eu
: "${REDIS_PASSWORD:?set REDIS_PASSWORD}"
printf 'requirepass %s\n' "$REDIS_PASSWORD" |
    exec redis-server - --port 6379 --bind '* -::*' --save '' --appendonly no --dir /tmp
