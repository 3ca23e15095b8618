#!/usr/bin/env bash
# Database bytes per stored sample, for sizing (deploy/README.md): a server on its embedded PostgreSQL, one agent
# at a 1 s interval on this host with N idle busybox containers for D seconds, then the size of the sample
# partitions (table, TOAST and indexes) divided by their rows, and the per-host-per-month figures that follow.
#   Benchmarks/storage-per-host.sh [CONTAINERS=20] [SECONDS=180]
# Uses the debug binaries (.build/debug; sizes do not depend on the build) and the test image
# (scripts/build-test-image.sh). Takes about SECONDS plus a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
containers="${1:-20}"; duration="${2:-180}"
die() { echo "storage-per-host: $*" >&2; exit 1; }
bin=.build/debug
[ -x "$bin/crowsnest-server" ] && [ -x "$bin/crowsnest-agent" ] || die "build first: swift build"
root=$(mktemp -d /tmp/cn-storage-XXXXXX)
chmod 755 "$root"  # the embedded PostgreSQL runs as an unprivileged user
port_agents=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
port_http=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
names=()
cleanup() {
  [ -n "${agent:-}" ] && kill -9 "$agent" 2>/dev/null
  [ -n "${server:-}" ] && kill -TERM "$server" 2>/dev/null && sleep 5
  [ ${#names[@]} -gt 0 ] && docker rm -f "${names[@]}" >/dev/null 2>&1
  rm -rf "$root"
}
trap cleanup EXIT
"$bin/crowsnest-server" serve --data-dir "$root/server" --agent-listen "127.0.0.1:$port_agents" \
  --http-listen "127.0.0.1:$port_http" >"$root/server.log" 2>&1 &
server=$!
for _ in $(seq 1 90); do curl -fsS "http://127.0.0.1:$port_http/readyz" >/dev/null 2>&1 && break; sleep 1; done
"$bin/crowsnest-server" tenant create bench --data-dir "$root/server" >/dev/null
token=$("$bin/crowsnest-server" token create --tenant bench --data-dir "$root/server" --json)
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$token" "$1"; }
CROWSNEST_ENROLLMENT_TOKEN=$(field token) "$bin/crowsnest-agent" enroll --server "127.0.0.1:$port_agents" \
  --ca-pin "$(field ca_pin)" --state-dir "$root/agent" >/dev/null
for i in $(seq 1 "$containers"); do
  names+=("cn-storage-$$-$i")
  docker run -d --name "cn-storage-$$-$i" --label "com.example.service=web-$i" crowsnest-test/busybox:latest sleep 3600 >/dev/null
done
"$bin/crowsnest-agent" run --state-dir "$root/agent" --interval 1 >"$root/agent.log" 2>&1 &
agent=$!
echo "storage-per-host: $containers containers, one sample a second for $duration s..."
sleep "$duration"
kill -TERM "$agent"; wait "$agent" 2>/dev/null || true; agent=""
export PGPASSWORD; PGPASSWORD=$(cat "$root/server/postgres-password")
psql -X -At -h "$root/server/postgres/run" -U crowsnest -d crowsnest -v containers="$containers" <<'SQL'
CHECKPOINT;
WITH parts AS (
    SELECT p.relname AS parent, sum(pg_total_relation_size(i.inhrelid)) AS bytes
    FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
    WHERE p.relname IN ('container_samples', 'host_samples') GROUP BY p.relname),
rows AS (
    SELECT 'container_samples' AS parent, count(*) AS n FROM container_samples
    UNION ALL SELECT 'host_samples', count(*) FROM host_samples)
SELECT parent || ': ' || n || ' rows, ' || bytes || ' bytes, ' || round(bytes::numeric / greatest(n, 1)) || ' bytes per row'
FROM parts JOIN rows USING (parent) ORDER BY parent;
SQL
