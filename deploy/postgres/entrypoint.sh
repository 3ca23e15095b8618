#!/bin/sh
# First start of an empty data directory: initdb, listen on every address with password (SCRAM) sign-in, and
# create POSTGRES_USER / POSTGRES_DB. Then (and on every later start) run PostgreSQL in the foreground.
set -eu
die() { echo "crowsnest-postgres: $*" >&2; exit 1; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "${POSTGRES_PASSWORD:-}" ] || die "POSTGRES_PASSWORD is empty: set it (compose reads CROWSNEST_DB_PASSWORD from .env)"
  user="${POSTGRES_USER:-postgres}"
  database="${POSTGRES_DB:-$user}"
  printf '%s\n' "$POSTGRES_PASSWORD" >/tmp/pwfile
  initdb -D "$PGDATA" -U "$user" --pwfile=/tmp/pwfile --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null || die "initdb failed"
  rm -f /tmp/pwfile
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$database" != postgres ]; then
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null || die "could not start PostgreSQL to create $database"
    psql -X -q -U "$user" -d postgres -c "CREATE DATABASE \"$database\" OWNER \"$user\"" || die "could not create $database"
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "crowsnest-postgres: initialised $PGDATA (role $user, database $database)"
fi
exec postgres -D "$PGDATA"
