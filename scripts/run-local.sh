#!/usr/bin/env bash
# The main job on one machine: builds, starts the server on its embedded PostgreSQL, creates a tenant,
# enrolls and starts a local agent against the local Docker engine, and prints the API address and key.
#   scripts/run-local.sh          start (or restart) everything
#   scripts/run-local.sh stop     stop the agent and the server
# State lives in ./.run (server data, agent state, logs).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="$PWD/.run"
HTTP_PORT="${CROWSNEST_HTTP_PORT:-8080}"
AGENT_PORT="${CROWSNEST_AGENT_PORT:-7443}"
INTERVAL="${CROWSNEST_INTERVAL:-5}"
mkdir -p "$RUN"

stop() {
  for name in agent server; do
    if [ -f "$RUN/$name.pid" ] && kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then
      kill -TERM "$(cat "$RUN/$name.pid")" || true
      for _ in $(seq 1 30); do kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -f "$RUN/$name.pid"
  done
}
if [ "${1:-}" = stop ]; then stop; echo "stopped"; exit 0; fi

command -v swift >/dev/null || { echo "run-local: the Swift toolchain is missing (swift not on PATH)" >&2; exit 1; }
scripts/ensure-packages.sh
scripts/ensure-postgres.sh
scripts/ensure-docker.sh
echo "building (first build takes several minutes)..."
swift build -c release --product crowsnest-server >/dev/null
swift build -c release --product crowsnest-agent >/dev/null
BIN="$(swift build -c release --show-bin-path)"
stop

SERVER=("$BIN/crowsnest-server")
DATA=(--data-dir "$RUN/server")
nohup "${SERVER[@]}" serve "${DATA[@]}" --agent-listen "127.0.0.1:$AGENT_PORT" --http-listen "127.0.0.1:$HTTP_PORT" \
  >"$RUN/server.log" 2>&1 </dev/null &
echo $! >"$RUN/server.pid"
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$(cat "$RUN/server.pid")" 2>/dev/null || { echo "run-local: server exited; see $RUN/server.log:" >&2; tail -5 "$RUN/server.log" >&2; exit 1; }
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null || { echo "run-local: server not ready after 60 s; see $RUN/server.log" >&2; exit 1; }

"${SERVER[@]}" tenant create local "${DATA[@]}" --json >/dev/null 2>&1 || true   # exists after the first run
if [ ! -f "$RUN/agent/agent.pem" ]; then
  TOKEN_JSON="$("${SERVER[@]}" token create --tenant local "${DATA[@]}" --json)"
  TOKEN="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' <<<"$TOKEN_JSON")"
  PIN="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["ca_pin"])' <<<"$TOKEN_JSON")"
  "$BIN/crowsnest-agent" enroll --server "127.0.0.1:$AGENT_PORT" --token "$TOKEN" --ca-pin "$PIN" --state-dir "$RUN/agent"
fi
KEY="$("${SERVER[@]}" apikey create --tenant local --role admin "${DATA[@]}" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"

nohup "$BIN/crowsnest-agent" run --state-dir "$RUN/agent" --interval "$INTERVAL" >"$RUN/agent.log" 2>&1 </dev/null &
echo $! >"$RUN/agent.pid"

echo
echo "Crowsnest is running (logs in $RUN/server.log and $RUN/agent.log)."
echo "API:     http://127.0.0.1:$HTTP_PORT/api/v1"
echo "API key: $KEY"
echo "Try:     curl -H 'Authorization: Bearer $KEY' http://127.0.0.1:$HTTP_PORT/api/v1/infrastructure"
echo "Stop:    scripts/run-local.sh stop"
