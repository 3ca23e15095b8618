#!/usr/bin/env bash
# Full-size hostile-label run (too long for CI): one server on its embedded PostgreSQL, one agent at a 2 s
# interval, a plain container, and COUNT (300) containers with LABELS (20) labels of 15,000 characters each.
# Passes when every container reaches /api/v1/infrastructure and the plain container's newest figure stays
# within 6 s of now for a minute afterwards; prints the agent's resident memory and the ingest counters.
#
#   scripts/soak-hostile-labels.sh            # uses .build/debug; BIN_DIR=… for another build
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-300}
LABELS=${LABELS:-20}
BIN_DIR=${BIN_DIR:-.build/debug}
BIN_DIR=$(cd "$BIN_DIR" && pwd)
scripts/ensure-docker.sh >/dev/null
scripts/build-test-image.sh >/dev/null
image=crowsnest-test/busybox:latest
root=$(mktemp -d /tmp/cn-soak-XXXXXX)
chmod 755 "$root"  # the embedded cluster's own user must reach its directory
prefix=cn-soak-$(basename "$root" | cut -d- -f3 | tr 'A-Z' 'a-z')
agent_pid='' server_pid=''
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  sleep 2
  docker ps -aq --filter "name=$prefix" | xargs -r docker rm -f >/dev/null 2>&1 || true
  pidfile="$root/server/postgres/data/postmaster.pid"
  [ -f "$pidfile" ] && kill -INT "$(head -1 "$pidfile")" 2>/dev/null || true
  [ -z "${KEEP:-}" ] && rm -rf "$root" || echo "kept $root"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
agent_port=$(port) http_port=$(port)
admin() { "$BIN_DIR/crowsnest-server" "$@" --data-dir "$root/server" --json; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

"$BIN_DIR/crowsnest-server" serve --data-dir "$root/server" --agent-listen "127.0.0.1:$agent_port" \
  --http-listen "127.0.0.1:$http_port" >"$root/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 90); do
  curl -fs "http://127.0.0.1:$http_port/readyz" >/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { echo "server exited:"; tail -5 "$root/server.log"; exit 1; }
  sleep 1
done
admin tenant create soak >/dev/null
key=$(admin apikey create --tenant soak --role read | field key)
token=$(admin token create --tenant soak)
"$BIN_DIR/crowsnest-agent" enroll --server "127.0.0.1:$agent_port" --token "$(echo "$token" | field token)" \
  --ca-pin "$(echo "$token" | field ca_pin)" --state-dir "$root/agent" >/dev/null

docker run -d --name "$prefix-plain" "$image" sleep 3600 >/dev/null
value=$(head -c 15000 /dev/zero | tr '\0' 'v')
labels=()
for i in $(seq "$LABELS"); do labels+=(--label "soak.$i=$value"); done
echo "creating $COUNT containers with $LABELS labels of 15,000 characters each…"
started=$(date +%s)
for i in $(seq "$COUNT"); do
  docker run -d --name "$prefix-$i" "${labels[@]}" "$image" sleep 3600 >/dev/null
done
echo "created in $(( $(date +%s) - started )) s"

"$BIN_DIR/crowsnest-agent" run --state-dir "$root/agent" --interval 2 >"$root/agent.log" 2>&1 &
agent_pid=$!
api() { curl -fs -H "Authorization: Bearer $key" "http://127.0.0.1:$http_port$1"; }
want=$((COUNT + 1))
seen=0
for _ in $(seq 120); do
  seen=$(api /api/v1/infrastructure | python3 -c "
import json,sys; d=json.load(sys.stdin)
print(sum(1 for h in d['hosts'] for c in h['containers'] if c['name'].startswith('$prefix')))" || echo 0)
  [ "$seen" -ge "$want" ] && break
  sleep 2
done
echo "containers in /infrastructure: $seen of $want"
[ "$seen" -ge "$want" ] || { tail -20 "$root/agent.log"; exit 1; }

plain_id=$(api /api/v1/infrastructure | python3 -c "
import json,sys; d=json.load(sys.stdin)
print([c['id'] for h in d['hosts'] for c in h['containers'] if c['name']=='$prefix-plain'][0])")
worst=0
for _ in $(seq 12); do
  sleep 5
  age=$(api "/api/v1/metrics/$plain_id" | python3 -c "
import json,sys,datetime; d=json.load(sys.stdin)
ts=datetime.datetime.fromisoformat(d['ts'].replace('Z','+00:00'))
print(int((datetime.datetime.now(datetime.timezone.utc)-ts).total_seconds()))")
  [ "$age" -gt "$worst" ] && worst=$age
done
rss=$(awk '/VmRSS/ {print $2}' "/proc/$agent_pid/status")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$agent_pid/status")
echo "plain container's newest figure, oldest seen over a minute: ${worst} s"
echo "agent RSS ${rss} KiB, peak ${hwm} KiB"
api /api/v1/infrastructure | python3 -c "
import json,sys; h=json.load(sys.stdin)['hosts'][0]
print('ingest_rejections', h.get('ingest_rejections'), 'truncated_values', h.get('truncated_values'), 'duplicate_samples', h.get('duplicate_samples'))"
echo "agent warnings/errors: $(grep -c 'warning\|error' "$root/agent.log" || true)"
[ "$worst" -le 6 ] || { echo "FAIL: the plain container's figures went stale"; exit 1; }
echo "PASS"
