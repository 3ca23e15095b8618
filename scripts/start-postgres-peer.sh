#!/usr/bin/env bash
# A PostgreSQL cluster for the postgres probe's tests, the way a monitored database looks: TCP on 127.0.0.1,
# password sign-in. Users: scram_user/scram-secret (scram-sha-256), md5_user/md5-secret (md5),
# plain_user/plain-secret (password: cleartext), trust_user (trust). TLS on, with a self-signed certificate.
#   start-postgres-peer.sh start DIR PORT     initdb in DIR, start on 127.0.0.1:PORT (waits until it answers)
#   start-postgres-peer.sh stop DIR           stop it and remove DIR
# Runs PostgreSQL as the unprivileged user crowsnest-pgpeer (created when missing) when started as root.
set -euo pipefail
# The daemon must not inherit the caller's descriptors beyond 0-2 (a test runner's internal pipes would stay
# open in it, and the runner would wait for them forever).
for fd in $(ls /proc/$$/fd); do
  if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
done
fail() { echo "start-postgres-peer: $*" >&2; exit 1; }
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/initdb" ] || fail "PostgreSQL is not installed (scripts/ensure-postgres.sh installs it)"
command=${1:-}; dir=${2:-}
[ -n "$dir" ] || fail "usage: start-postgres-peer.sh start DIR PORT | stop DIR"

as_user=()
if [ "$(id -u)" = 0 ]; then
  user=crowsnest-pgpeer
  id "$user" >/dev/null 2>&1 || useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin --comment "crowsnest postgres probe test peer" "$user" 2>/dev/null || id "$user" >/dev/null
  as_user=(setpriv "--reuid=$user" "--regid=$user" --init-groups --)
fi

case "$command" in
start)
  port=${3:-}; [ -n "$port" ] || fail "start needs DIR and PORT"
  mkdir -p "$dir"
  [ ${#as_user[@]} -eq 0 ] || chown "$user:$user" "$dir"
  chmod 700 "$dir"
  "${as_user[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync >"$dir/initdb.log" 2>&1 \
    || fail "initdb failed: $(tail -n 3 "$dir/initdb.log")"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost -keyout "$dir/data/server.key" \
    -out "$dir/data/server.crt" >/dev/null 2>&1 || fail "openssl could not make the test certificate"
  chmod 600 "$dir/data/server.key"
  [ ${#as_user[@]} -eq 0 ] || chown "$user:$user" "$dir/data/server.key" "$dir/data/server.crt"
  cat >> "$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
ssl = on
fsync = off
CONF
  cat > "$dir/data/pg_hba.conf" <<HBA
local all all trust
host all scram_user 127.0.0.1/32 scram-sha-256
host all md5_user 127.0.0.1/32 md5
host all plain_user 127.0.0.1/32 password
host all trust_user 127.0.0.1/32 trust
HBA
  "${as_user[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || fail "PostgreSQL did not start: $(tail -n 5 "$dir/server.log")"
  "${as_user[@]}" "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q <<SQL >/dev/null
SET password_encryption = 'scram-sha-256';
CREATE ROLE scram_user LOGIN PASSWORD 'scram-secret';
CREATE ROLE plain_user LOGIN PASSWORD 'plain-secret';
SET password_encryption = 'md5';
CREATE ROLE md5_user LOGIN PASSWORD 'md5-secret';
CREATE ROLE trust_user LOGIN;
CREATE DATABASE app OWNER scram_user;
SQL
  ;;
stop)
  [ -d "$dir/data" ] && "${as_user[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*) fail "unknown command $command (start or stop)" ;;
esac
