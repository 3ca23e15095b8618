# Sourced by soaks and benchmarks: one crowsnest-server on its embedded PostgreSQL and one enrolled agent in a
# throw-away directory, all stopped and removed on exit (KEEP=1 keeps the directory).
#
#   source scripts/lib/local-deployment.sh   # from the repository root; BIN_DIR=… (default .build/debug),
#                                            # AGENT_BIN=… for another agent binary (default $BIN_DIR/crowsnest-agent)
#   deployment_start NAME                    # server up, tenant NAME, read key in $key, agent enrolled
#   agent_start INTERVAL                     # then: api PATH, db SQL, $root, $prefix (for container names)
BIN_DIR=${BIN_DIR:-.build/debug}
BIN_DIR=$(cd "$BIN_DIR" && pwd)
AGENT_BIN=${AGENT_BIN:-$BIN_DIR/crowsnest-agent}
image=crowsnest-test/busybox:latest
root=$(mktemp -d /tmp/cn-run-XXXXXX)
chmod 755 "$root"  # the embedded cluster's own user must reach its directory
prefix=cn-run-$(basename "$root" | cut -d- -f3 | tr 'A-Z' 'a-z')
agent_pid='' server_pid='' key=''

deployment_cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  sleep 2
  # In small groups: one `docker rm -f` of 300 containers with huge labels left dockerd unresponsive here.
  docker ps -aq --filter "name=$prefix" | xargs -r -n 20 timeout 120 docker rm -f >/dev/null 2>&1 || true
  local pidfile="$root/server/postgres/data/postmaster.pid"
  [ -f "$pidfile" ] && kill -INT "$(head -1 "$pidfile")" 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$root"; else echo "kept $root"; fi
}
trap deployment_cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
admin() { "$BIN_DIR/crowsnest-server" "$@" --data-dir "$root/server" --json; }
api() { curl -fs -H "Authorization: Bearer $key" "http://127.0.0.1:$http_port$1"; }
db() {
  PGPASSWORD=$(cat "$root/server/postgres-password") psql -X -At -h "$root/server/postgres/run" -U crowsnest \
    -d crowsnest -v ON_ERROR_STOP=1 -c "$1"
}

deployment_start() {
  scripts/ensure-docker.sh >/dev/null
  scripts/build-test-image.sh >/dev/null
  agent_port=$(free_port) http_port=$(free_port)
  "$BIN_DIR/crowsnest-server" serve --data-dir "$root/server" --agent-listen "127.0.0.1:$agent_port" \
    --http-listen "127.0.0.1:$http_port" >"$root/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 90); do
    curl -fs "http://127.0.0.1:$http_port/readyz" >/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { echo "server exited:"; tail -5 "$root/server.log"; exit 1; }
    sleep 1
  done
  admin tenant create "$1" >/dev/null
  key=$(admin apikey create --tenant "$1" --role read | json_field key)
  local token
  token=$(admin token create --tenant "$1")
  "$AGENT_BIN" enroll --server "127.0.0.1:$agent_port" --token "$(echo "$token" | json_field token)" \
    --ca-pin "$(echo "$token" | json_field ca_pin)" --state-dir "$root/agent" >/dev/null 2>&1
}

agent_start() {
  "$AGENT_BIN" run --state-dir "$root/agent" --interval "$1" >"$root/agent.log" 2>&1 &
  agent_pid=$!
}
