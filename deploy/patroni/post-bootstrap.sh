#!/bin/sh
# Run once by Patroni on the first primary: the role and database the Crowsnest servers use.
set -eu
[ -n "${CROWSNEST_DB_PASSWORD:-}" ] || { echo "crowsnest-post-bootstrap: CROWSNEST_DB_PASSWORD is empty" >&2; exit 1; }
psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -U postgres -d postgres \
  -v password="$CROWSNEST_DB_PASSWORD" <<'SQL'
CREATE ROLE crowsnest LOGIN PASSWORD :'password';
CREATE DATABASE crowsnest OWNER crowsnest;
SQL
