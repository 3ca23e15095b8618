#!/usr/bin/env bash
# Agent CPU beside its cost floor, and what it costs the Docker daemons, in one run on one engine:
#
#   1. CONTAINERS (50) idle containers and a crowsnest-server on its embedded PostgreSQL (the debug build in
#      BIN_DIR, default .build/debug: the server's CPU is not measured).
#   2. Three baseline windows of SWEEPS (300) seconds with no agent: dockerd + containerd CPU. During the first
#      the C reader (Benchmarks/cgroup-reader) reads the agent's files with them kept open, during the second
#      opening them each time; neither calls Docker.
#   3. The agent as installed on hosts (scripts/build-agent.sh, or AGENT_BIN=…) at --interval 1 for SWEEPS sweeps
#      after WARMUP (15) s: whole-process CPU (utime + stime of all its threads: sampling, spooling, TLS
#      shipping), dockerd + containerd CPU in the same window, and resident memory every second (RSS, RssAnon; PSS
#      from smaps_rollup every 10 s).
#
#   Benchmarks/agent-cpu.sh
#   SKIP_BUILD=1 SWEEPS=60 Benchmarks/agent-cpu.sh     # reuse .build-agent's binary; a shorter run
#   PROFILE=1 SKIP_BUILD=1 SWEEPS=30 Benchmarks/agent-cpu.sh   # and where the agent's time goes (perf; the
#                                                              # sampling costs CPU too: not for the figures)
#
# CPU is reported per container per sweep: CPU time / sweeps stored by the server / containers running.
# Needs root, dockerd (scripts/ensure-docker.sh), gcc, psql, python3. Containers are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
CONTAINERS=${CONTAINERS:-50}
SWEEPS=${SWEEPS:-300}
WARMUP=${WARMUP:-15}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  swift build --product crowsnest-server >&2
  AGENT_BIN=${AGENT_BIN:-$(scripts/build-agent.sh)}
fi
AGENT_BIN=${AGENT_BIN:-$(pwd)/.build-agent/release/crowsnest-agent}
[ -x "$AGENT_BIN" ] || { echo "agent-cpu: no agent binary at $AGENT_BIN (run without SKIP_BUILD=1)" >&2; exit 1; }
export AGENT_BIN
source scripts/lib/local-deployment.sh
gcc -O2 -Wall -o "$root/cgroup-reader" Benchmarks/cgroup-reader/cgroup-reader.c
hz=$(getconf CLK_TCK)

say() { printf 'agent-cpu: %s\n' "$*" >&2; }
ticks_of() { local total=0 pid s; for pid in "$@"; do s=$(cat "/proc/$pid/stat" 2>/dev/null) || continue; s=${s##*) }
  set -- $s; total=$((total + ${12} + ${13})); done; echo "$total"; }  # utime + stime, in clock ticks
daemon_ticks() { ticks_of $(pgrep -x dockerd) $(pgrep -x containerd); }
now() { date +%s.%N; }
calc() { python3 -c "print(round($1, 2))"; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

others=$(docker ps -q | wc -l)
[ "$others" -eq 0 ] || say "warning: $others containers were already running; the agent samples them too (counted)"
say "starting $CONTAINERS idle containers"
for i in $(seq "$CONTAINERS"); do docker run -d --name "$prefix-$i" "$image" sleep 86400 >/dev/null; done
running=$(docker ps -q | wc -l)
python3 Benchmarks/cgroup-reader/file-list.py $(docker ps -q --filter "name=$prefix" | xargs docker inspect -f '{{.State.Pid}}') \
  >"$root/files.txt"
deployment_start bench
agent_id=$(python3 -c "import json; print(json.load(open('$root/agent/identity.json'))['agent_id'])")

# --- baselines (no agent), with the C reader beside the first two ----------------------------------------
declare -a baseline_us
c_keep='' c_reopen=''
for run in 1 2 3; do
  mode=$([ $run = 1 ] && echo keep || { [ $run = 2 ] && echo reopen || echo none; })
  say "baseline $run/3 ($SWEEPS s, no agent; C reader: $mode)"
  d0=$(daemon_ticks) t0=$(now)
  if [ "$mode" = none ]; then sleep "$SWEEPS"; else
    line=$("$root/cgroup-reader" "$mode" "$root/files.txt" "$SWEEPS" 1000)
    per=$(sed -E 's/.*us_per_container_per_sweep=([0-9.]+).*/\1/' <<<"$line")
    [ "$mode" = keep ] && c_keep=$per || c_reopen=$per
  fi
  d1=$(daemon_ticks) t1=$(now)
  # As if the window had been 1 s sweeps over the running containers.
  baseline_us[$run]=$(calc "($d1 - $d0) * 1e6 / $hz / (($t1 - $t0) / 1.0) / $running")
  say "  dockerd + containerd: ${baseline_us[$run]} us per container per second"
done

# --- the agent -----------------------------------------------------------------------------------------
say "agent: $AGENT_BIN, --interval 1, $WARMUP s warm-up, then $SWEEPS sweeps"
agent_start 1
sleep "$WARMUP"
kill -0 "$agent_pid" 2>/dev/null || { tail -20 "$root/agent.log" >&2; exit 1; }
sweeps_stored() { db "SELECT count(*) FROM host_samples WHERE agent_id = '$agent_id'"; }
s0=$(sweeps_stored) a0=$(ticks_of "$agent_pid") d0=$(daemon_ticks)
perf_pid=''
if [ "${PROFILE:-0}" = 1 ]; then
  perf record -q -F 499 -g -p "$agent_pid" -o "$root/perf.data" -- sleep "$SWEEPS" 2>/dev/null &
  perf_pid=$!
fi
: >"$root/rss"; : >"$root/anon"; : >"$root/pss"
for i in $(seq "$SWEEPS"); do
  awk '$1 == "VmRSS:" { print $2 }' "/proc/$agent_pid/status" >>"$root/rss"
  awk '$1 == "RssAnon:" { print $2 }' "/proc/$agent_pid/status" >>"$root/anon"
  [ $((i % 10)) = 0 ] && awk '$1 == "Pss:" { print $2 }' "/proc/$agent_pid/smaps_rollup" >>"$root/pss"
  sleep 1
done
a1=$(ticks_of "$agent_pid") d1=$(daemon_ticks) s1=$(sweeps_stored)
if [ -n "$perf_pid" ]; then
  wait "$perf_pid" || true
  perf report -i "$root/perf.data" --stdio --no-children --percent-limit 1.5 --sort symbol -g none 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | head -45 >"$root/perf.txt" || true
fi
peak=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$agent_pid/status")
sweeps=$((s1 - s0))
[ "$sweeps" -gt 0 ] || { echo "agent-cpu: no sweep was stored (see $root/agent.log)" >&2; exit 1; }
agent_us=$(calc "($a1 - $a0) * 1e6 / $hz / $sweeps / $running")
daemons_us=$(calc "($d1 - $d0) * 1e6 / $hz / $sweeps / $running")
mib() { python3 -c "print(round($1 / 1024, 1))"; }

echo "machine: $(nproc) cpus, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)," \
  "cgroup $([ -e /sys/fs/cgroup/cgroup.controllers ] && echo v2 || echo v1), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "containers running: $running; sweeps stored in the agent window: $sweeps of $SWEEPS s"
echo
echo "CPU per container per sweep (us)"
printf '  %-48s %8s\n' "C reader, files kept open (pread at 0)" "$c_keep" \
  "C reader, files opened each time" "$c_reopen" \
  "crowsnest-agent, whole process" "$agent_us" \
  "  ratio to the kept-open C reader" "$(calc "$agent_us / $c_keep")x" \
  "dockerd + containerd, agent window" "$daemons_us" \
  "dockerd + containerd, baselines (no agent)" "${baseline_us[1]} ${baseline_us[2]} ${baseline_us[3]}"
echo
[ -n "$perf_pid" ] && { echo "where the agent's CPU went (perf, symbols over 1.5 %):"; cat "$root/perf.txt"; echo; }
echo "agent resident memory (MiB): RSS median $(mib "$(median <"$root/rss")"), peak $(mib "$peak")," \
  "RssAnon median $(mib "$(median <"$root/anon")"), PSS median $(mib "$(median <"$root/pss")")"
