#!/usr/bin/env bash
# Time from a container's start/die (Docker's event time) to the server storing the event (container_events
# .stored_at, the storing transaction's start), p50/p99/max over CYCLES (40) kill/start cycles of CONTAINERS (1)
# containers killed and started together (a burst, as when a host's stack restarts).
# The agent runs at a 30 s interval, so the figure is the event-only path, not the next sweep.
#
#   Benchmarks/event-latency.sh              # BIN_DIR=… for another build (default .build/debug)
#   CONTAINERS=10 CYCLES=15 Benchmarks/event-latency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${CYCLES:-40}
CONTAINERS=${CONTAINERS:-1}
source scripts/lib/local-deployment.sh
deployment_start latency
names=()
for i in $(seq "$CONTAINERS"); do
  names+=("$prefix-flip-$i")
  docker run -d --name "$prefix-flip-$i" "$image" sleep 3600 >/dev/null
done
agent_start 30
for _ in $(seq 90); do
  [ "$(db "SELECT count(*) FROM containers WHERE name LIKE '$prefix-flip-%'" 2>/dev/null || echo 0)" = "$CONTAINERS" ] && break
  sleep 1
done
since=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
for _ in $(seq "$CYCLES"); do
  docker kill "${names[@]}" >/dev/null
  sleep 1.5
  docker start "${names[@]}" >/dev/null
  sleep 1.5
done
sleep 3
db "SELECT action, count(*),
           round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at - ts)) * 1000)::numeric, 1),
           round((percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at - ts)) * 1000)::numeric, 1),
           round((max(extract(epoch FROM stored_at - ts)) * 1000)::numeric, 1)
    FROM container_events WHERE name LIKE '$prefix-flip-%' AND ts > '$since' AND action IN ('start', 'die')
    GROUP BY action ORDER BY action" | awk -F'|' 'BEGIN { print "action  events  p50_ms  p99_ms  max_ms" }
                                                   { printf "%-7s %6s %7s %7s %7s\n", $1, $2, $3, $4, $5 }'
echo "expected per action: $((CONTAINERS * CYCLES)); stored more than 1 s after the event:"
db "SELECT action, name, ts, round((extract(epoch FROM stored_at - ts) * 1000)::numeric, 1)
    FROM container_events WHERE name LIKE '$prefix-flip-%' AND ts > '$since' AND action IN ('start', 'die')
      AND stored_at - ts > interval '1 second' ORDER BY ts" | sed 's/^/  /'
echo "sweeps stored meanwhile: $(db "SELECT count(*) FROM host_samples") (interval 30 s)"
