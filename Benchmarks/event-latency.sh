#!/usr/bin/env bash
# Time from a container's start/die (Docker's event time) to the server storing the event (container_events
# .stored_at, the storing transaction's start), p50/p99/max over CYCLES (40) kill/start cycles of one container.
# The agent runs at a 30 s interval, so the figure is the event-only path, not the next sweep.
#
#   Benchmarks/event-latency.sh              # BIN_DIR=… for another build (default .build/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${CYCLES:-40}
source scripts/lib/local-deployment.sh
deployment_start latency
docker run -d --name "$prefix-flip" "$image" sleep 3600 >/dev/null
agent_start 30
for _ in $(seq 90); do
  [ "$(db "SELECT count(*) FROM containers WHERE name = '$prefix-flip'" 2>/dev/null || echo 0)" = 1 ] && break
  sleep 1
done
since=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
for _ in $(seq "$CYCLES"); do
  docker kill "$prefix-flip" >/dev/null
  sleep 1.5
  docker start "$prefix-flip" >/dev/null
  sleep 1.5
done
sleep 3
db "SELECT action, count(*),
           round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at - ts)) * 1000)::numeric, 1),
           round((percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at - ts)) * 1000)::numeric, 1),
           round((max(extract(epoch FROM stored_at - ts)) * 1000)::numeric, 1)
    FROM container_events WHERE name = '$prefix-flip' AND ts > '$since' AND action IN ('start', 'die')
    GROUP BY action ORDER BY action" | awk -F'|' 'BEGIN { print "action  events  p50_ms  p99_ms  max_ms" }
                                                   { printf "%-7s %6s %7s %7s %7s\n", $1, $2, $3, $4, $5 }'
echo "sweeps stored meanwhile: $(db "SELECT count(*) FROM host_samples") (interval 30 s)"
