#!/usr/bin/env bash
# Time from Docker's die event of a container to the alert's webhook request, p50/p99/max over WAVES (5) waves of
# CONTAINERS (10) containers killed at random moments, with the agent sampling every 30 s: the alert follows the
# event-only batch, not the next sweep. One rule (every container carrying this run's label, down for 0 s), one
# webhook channel to scripts/webhook-receiver.py on loopback. Each wave waits for every firing, starts the
# containers again and waits for every recovery. Docker's event times come from `docker events`.
#
#   Benchmarks/alert-latency.sh              # BIN_DIR=… for another build (default .build/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
WAVES=${WAVES:-5}
CONTAINERS=${CONTAINERS:-10}
source scripts/lib/local-deployment.sh
deployment_start alerts
admin tenant allow-network alerts 127.0.0.0/8 >/dev/null
admin_key=$(admin apikey create --tenant alerts --role admin | json_field key)
post() { curl -fs -H "Authorization: Bearer $admin_key" -H 'Content-Type: application/json' -d "$2" "http://127.0.0.1:$http_port$1"; }

hook_port=$(free_port)
hooks="$root/hooks.jsonl"
python3 scripts/webhook-receiver.py --port "$hook_port" --log "$hooks" &
receiver_pid=$!
trap 'kill $receiver_pid 2>/dev/null || true; deployment_cleanup' EXIT

for n in $(seq "$CONTAINERS"); do
  docker run -d --name "$prefix-c$n" --label "cn.bench=$prefix" "$image" sh -c 'while true; do sleep 1; done' >/dev/null
done
agent_start 30
for _ in $(seq 120); do
  [ "$(db "SELECT count(*) FROM containers WHERE name LIKE '$prefix-c%'" 2>/dev/null || echo 0)" = "$CONTAINERS" ] && break
  sleep 1
done
channel=$(post /api/v1/alert-channels "{\"name\":\"bench\",\"type\":\"webhook\",\"url\":\"http://127.0.0.1:$hook_port/hook\"}" | json_field id)
post /api/v1/alert-rules "{\"name\":\"bench down\",\"labels\":[\"cn.bench=$prefix\"],\"for_seconds\":0,\"flap\":{\"changes\":100,\"minutes\":1},\"channels\":[\"$channel\"]}" >/dev/null
sleep 8  # a round with everything up

# How many notifications of kind $1 the receiver got.
count() {
  python3 -c 'import json, sys; print(sum(1 for line in open(sys.argv[1]) if json.loads(json.loads(line)["body"])["kind"] == sys.argv[2]))' \
    "$hooks" "$1" 2>/dev/null || echo 0
}
since=$(date +%s)
for wave in $(seq "$WAVES"); do
  for n in $(seq "$CONTAINERS"); do
    sleep "0.$((RANDOM % 9 + 1))"
    docker kill "$prefix-c$n" >/dev/null
  done
  for _ in $(seq 120); do
    [ "$(count firing)" -ge $((wave * CONTAINERS)) ] && break
    sleep 0.5
  done
  for n in $(seq "$CONTAINERS"); do docker start "$prefix-c$n" >/dev/null; done
  for _ in $(seq 120); do
    [ "$(count resolved)" -ge $((wave * CONTAINERS)) ] && break
    sleep 0.5
  done
  sleep "$((RANDOM % 5 + 1))"
done
docker events --since "$((since - 5))" --until "$(($(date +%s) + 1))" --filter "label=cn.bench=$prefix" --filter event=die \
  --format '{{.Actor.Attributes.name}} {{.TimeNano}}' >"$root/dies.txt"
python3 - "$hooks" "$root/dies.txt" <<'EOF'
import json, sys
dies = {}
for line in open(sys.argv[2]):
    name, nanos = line.split()
    dies.setdefault(name, []).append(int(nanos) / 1e9)
latencies = []
for line in open(sys.argv[1]):
    entry = json.loads(line)
    payload = json.loads(entry["body"])
    if payload["kind"] != "firing":
        continue
    name = payload["target"]["name"]
    before = [t for t in dies.get(name, []) if t <= entry["received_at"]]
    if before:
        latencies.append(entry["received_at"] - max(before))
latencies.sort()
def pct(p):
    return latencies[min(len(latencies) - 1, int(round(p * (len(latencies) - 1))))]
print(f"Docker die event to webhook request: {len(latencies)} firings, p50 {pct(0.5):.2f} s, p99 {pct(0.99):.2f} s, "
      f"max {latencies[-1]:.2f} s (agent interval 30 s, for_seconds 0)")
EOF
