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
source scripts/lib/local-deployment.sh
deployment_start soak

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

agent_start 2
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
