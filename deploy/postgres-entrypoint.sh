#!/bin/sh
# Start Postgres on $PGDATA; the first time, create the cluster, its one database and its owner.
#   POSTGRES_DB, POSTGRES_USER, POSTGRES_PASSWORD (required; the password is read from the
#   environment and never put on a command line).
# Clients authenticate with scram-sha-256 from anywhere the network lets them (the manifests'
# NetworkPolicy limits who that is); local socket connections only as the postgres account.
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
DB=${POSTGRES_DB:-broker_academy}
OWNER=${POSTGRES_USER:-broker_academy}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    initdb --pgdata="$PGDATA" --username=postgres --auth-local=peer --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$PGDATA/postgresql.conf" <<CONF
listen_addresses = '*'
unix_socket_directories = '/var/run/postgresql'
password_encryption = scram-sha-256
# The image has no LLVM: the platform's queries are small, JIT would not pay anyway.
jit = off
CONF
    printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    # The owner and database, through a socket-only server that nothing else reaches yet.
    pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses=''" --wait --silent start
    psql --username=postgres --dbname=postgres --set=ON_ERROR_STOP=1 --quiet \
        --set=owner="$OWNER" --set=db="$DB" --set=password="$POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE :"owner" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"owner";
SQL
    pg_ctl --pgdata="$PGDATA" --mode=fast --wait --silent stop
fi
exec postgres
