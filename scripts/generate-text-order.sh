#!/usr/bin/env bash
# Regenerates agent/text-order.txt: every function the agent runs — start-up, the sweeps, spooling, shipping over
# mTLS — listed for the linker, which places them together at the start of .text (scripts/build-agent.sh).
#
#   scripts/generate-text-order.sh       # as root, with dockerd (scripts/ensure-docker.sh); about 5 minutes
#
# Why: the kernel maps an executable's code 64 KiB around every page it faults in. Scattered across a 14 MiB
# .text (Swift runtime and stdlib, Foundation, BoringSSL, NIO, …) the few functions a steady agent runs pull in
# most of it; packed together they fault in a small block (docs/BENCHMARKS.md, agent memory).
#
# How: an unordered build of the agent runs for RUN_SECONDS (90) under valgrind's callgrind, which records every
# function executed, against a real server with CONTAINERS (20) containers; the functions with any cost, hottest
# first, become the ordering file (mangled names, as the linker sees them). Then a second run with CHECKS (100)
# http checks every 5 s assigned to the agent: the functions only it ran (the probes, the check runner) follow,
# hottest first, so an agent without checks keeps them out of its resident block and one with checks finds them
# packed. Functions missing from the list (code that changed since) only end up unordered: regenerate whenever
# the agent's code changes (an outdated list costs about 1.5 MiB of resident code, docs/BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
CONTAINERS=${CONTAINERS:-20}
RUN_SECONDS=${RUN_SECONDS:-90}
CHECKS=${CHECKS:-100}
command -v valgrind >/dev/null || { echo "generate-text-order: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
built=$(TEXT_ORDER=none scripts/build-agent.sh)
# valgrind 3.19 cannot read the DWARF 5 debug information; the symbol table is all it needs here.
AGENT_BIN=$(mktemp /tmp/crowsnest-agent-profiled.XXXXXX)
strip --strip-debug -o "$AGENT_BIN" "$built"
export AGENT_BIN
[ -x .build/debug/crowsnest-server ] || swift build --product crowsnest-server >&2
source scripts/lib/local-deployment.sh
for i in $(seq "$CONTAINERS"); do docker run -d --name "$prefix-$i" "$image" sleep 3600 >/dev/null; done
deployment_start order

# Runs the agent under callgrind for RUN_SECONDS and prints the functions it executed, hottest first.
profile() {
  local out="$root/callgrind-$1.out"
  valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no --dump-instr=no \
    --callgrind-out-file="$out" "$AGENT_BIN" run --state-dir "$root/agent" --interval 1 >"$root/agent-$1.log" 2>&1 &
  agent_pid=$!
  sleep "$RUN_SECONDS"
  kill -INT "$agent_pid"
  wait "$agent_pid" || true
  agent_pid=''
  # callgrind's uncompressed output: "fn=NAME" opens a function's cost lines ("LINE COST"); sum the costs per name.
  awk '/^fn=/ { fn = substr($0, 4); next }
       /^(cfn|cfi|cob|calls|fl|fi|fe|ob)=/ { if ($0 ~ /^calls=/) skip = 1; next }
       /^[0-9+-]/ { if (skip) { skip = 0; next } if (fn != "") cost[fn] += $2 }
       END { for (f in cost) if (cost[f] > 0) print cost[f], f }' "$out" \
    | sed -E "s/'[0-9]+$//" | sort -k2 -u | sort -rn | awk '{ print $2 }' | grep -v '^0x'
}

profile sweeps >"$root/order-sweeps.txt"
[ "$(db "SELECT count(*) FROM host_samples")" -gt 5 ] || { tail -20 "$root/agent-sweeps.log" >&2; echo "generate-text-order: the agent stored no sweeps" >&2; exit 1; }
cp "$root/order-sweeps.txt" agent/text-order.txt

if [ "$CHECKS" -gt 0 ]; then
  target_port=$(free_port)
  mkdir -p "$root/www" && echo ok >"$root/www/health"
  python3 -m http.server --bind 127.0.0.1 --directory "$root/www" "$target_port" >"$root/target.log" 2>&1 &
  target_pid=$!
  trap 'kill "$target_pid" 2>/dev/null; deployment_cleanup' EXIT
  admin_key=$(admin apikey create --tenant order --role admin | json_field key)
  for i in $(seq "$CHECKS"); do
    curl -fsS -o /dev/null -H "Authorization: Bearer $admin_key" -H 'Content-Type: application/json' \
      --data-binary "{\"name\":\"order-$i\",\"type\":\"http\",\"target\":\"http://127.0.0.1:$target_port/health\",\"interval_seconds\":5}" \
      "http://127.0.0.1:$http_port/api/v1/checks"
  done
  profile checks >"$root/order-checks.txt"
  [ "$(db "SELECT count(*) FROM check_results")" -gt 0 ] || { tail -20 "$root/agent-checks.log" >&2; echo "generate-text-order: the agent ran no checks" >&2; exit 1; }
  # The functions only the run with checks executed, in its order, after the others.
  awk 'NR == FNR { seen[$0] = 1; next } !($0 in seen)' "$root/order-sweeps.txt" "$root/order-checks.txt" >>agent/text-order.txt
fi
rm -f "$AGENT_BIN"
echo "generate-text-order: $(wc -l <agent/text-order.txt) functions in agent/text-order.txt ($(wc -l <"$root/order-sweeps.txt") without checks)"
