#!/usr/bin/env bash
# Agent footprint benchmark: resident memory and CPU per sweep of a release crowsnest-agent sampling
# CONTAINERS idle containers on the local Docker engine at --interval 1, shipping to a real release
# crowsnest-server (embedded PostgreSQL) on loopback.
#
#   Benchmarks/agent-footprint.sh                # build both variants, 3 runs of 60 sweeps each
#   RUNS=5 SWEEPS=60 Benchmarks/agent-footprint.sh
#   SKIP_BUILD=1 Benchmarks/agent-footprint.sh   # reuse the binaries copied by the last run
#   VARIANTS="dynamic static static:MALLOC_ARENA_MAX=2" Benchmarks/agent-footprint.sh
#   CHECKS=100 Benchmarks/agent-footprint.sh     # also CHECKS http checks (every 5 s) assigned to the agent
#
# A variant is `dynamic` (plain `swift build -c release`: shared Swift runtime from the toolchain) or `static`
# (the build installed on hosts, scripts/build-agent.sh), optionally followed by `:NAME=VALUE` environment for the agent.
# Needs: root (cgroups, docker socket, embedded PostgreSQL), dockerd, the image crowsnest-test/busybox:latest
# (scripts/build-test-image.sh), PostgreSQL server binaries, curl, jq, psql.
# The CONTAINERS containers are named crowsnest-bench-N and removed on exit, also on failure or Ctrl-C.
set -euo pipefail

CONTAINERS=${CONTAINERS:-50}
CHECKS=${CHECKS:-0}
SWEEPS=${SWEEPS:-60}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-10}
VARIANTS=${VARIANTS:-"dynamic static"}
IMAGE=${IMAGE:-crowsnest-test/busybox:latest}
SKIP_BUILD=${SKIP_BUILD:-0}

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.build/bench-bin"
work=$(mktemp -d /tmp/cn-bench-XXXXXX)   # short: the embedded PostgreSQL socket path must stay under 107 bytes
chmod 0755 "$work"                        # the embedded PostgreSQL runs as postgres and must reach it
server_pid=""
agent_pid=""

say() { printf '%s\n' "$*" >&2; }
die() { say "agent-footprint: $*"; exit 1; }

cleanup() {
  set +e
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
  [ -n "${target_pid:-}" ] && kill "$target_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  # The embedded cluster outlives a killed server by design: stop it.
  if [ -f "$work/server/postgres/data/postmaster.pid" ]; then
    pg=$(head -1 "$work/server/postgres/data/postmaster.pid")
    kill -INT "$pg" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pg" 2>/dev/null || break; sleep 0.1; done
  fi
  names=$(docker ps -aq --filter "name=^crowsnest-bench-" 2>/dev/null)
  [ -n "$names" ] && docker rm -f $names >/dev/null 2>&1
  if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else say "kept $work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in docker curl jq psql; do command -v "$tool" >/dev/null || die "$tool is missing"; done
docker info >/dev/null 2>&1 || die "no Docker engine answers (scripts/ensure-docker.sh)"
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE is missing (scripts/build-test-image.sh)"

# --- build -------------------------------------------------------------------------------------------------
mkdir -p "$bin"
if [ "$SKIP_BUILD" != 1 ]; then
  cd "$root"
  say "building crowsnest-server (release)"
  swift build -c release --product crowsnest-server >&2
  cp .build/release/crowsnest-server "$bin/crowsnest-server"
  say "building crowsnest-agent as installed on hosts (scripts/build-agent.sh: static Swift runtime, no PIE)"
  cp "$(scripts/build-agent.sh)" "$bin/crowsnest-agent-static"
  say "building crowsnest-agent (release, dynamic)"
  swift build -c release --product crowsnest-agent >&2
  cp .build/release/crowsnest-agent "$bin/crowsnest-agent-dynamic"
fi
for b in crowsnest-server $(for v in $VARIANTS; do echo "crowsnest-agent-${v%%:*}"; done | sort -u); do
  [ -x "$bin/$b" ] || die "$bin/$b is missing; run without SKIP_BUILD=1"
done

# --- containers --------------------------------------------------------------------------------------------
say "starting $CONTAINERS idle containers"
for i in $(seq 1 "$CONTAINERS"); do
  docker rm -f "crowsnest-bench-$i" >/dev/null 2>&1 || true
  docker run -d --name "crowsnest-bench-$i" --label crowsnest.bench=1 "$IMAGE" sleep 3600 >/dev/null
done

# --- server ------------------------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
agent_port=$(free_port)
http_port=$(free_port)
"$bin/crowsnest-server" serve --data-dir "$work/server" --agent-listen "127.0.0.1:$agent_port" \
  --http-listen "127.0.0.1:$http_port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 180); do
  curl -fsS -o /dev/null "http://127.0.0.1:$http_port/readyz" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { tail -20 "$work/server.log" >&2; die "server exited"; }
  sleep 0.5
done
curl -fsS -o /dev/null "http://127.0.0.1:$http_port/readyz" || die "server not ready"
admin() { "$bin/crowsnest-server" "$@" --data-dir "$work/server" --json; }
sql() { PGPASSWORD=$(cat "$work/server/postgres-password") psql -X -At -h "$work/server/postgres/run" -U crowsnest -d crowsnest -v ON_ERROR_STOP=1 -c "$1"; }
admin tenant create bench >/dev/null
token_json=$(admin token create --tenant bench)
first_variant=${VARIANTS%% *}
"$bin/crowsnest-agent-${first_variant%%:*}" enroll --server "127.0.0.1:$agent_port" --token "$(jq -r .token <<<"$token_json")" \
  --ca-pin "$(jq -r .ca_pin <<<"$token_json")" --state-dir "$work/agent" >"$work/enroll.log" 2>&1 \
  || { cat "$work/enroll.log" >&2; die "enroll failed"; }
agent_id=$(jq -r .agent_id "$work/agent/identity.json")

# --- checks: CHECKS http checks every 5 s against a local HTTP server, run by the agent ------------------------
if [ "$CHECKS" -gt 0 ]; then
  target_port=$(free_port)
  mkdir -p "$work/www" && echo ok >"$work/www/health"
  python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$target_port" >"$work/target.log" 2>&1 &
  target_pid=$!
  key=$(admin apikey create --tenant bench --role admin | jq -r .key)
  for i in $(seq 1 "$CHECKS"); do
    curl -fsS -o /dev/null -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
      --data-binary "{\"name\":\"bench-$i\",\"type\":\"http\",\"target\":\"http://127.0.0.1:$target_port/health\",\"interval_seconds\":5}" \
      "http://127.0.0.1:$http_port/api/v1/checks" || die "cannot create check $i"
  done
  say "created $CHECKS http checks (every 5 s) against 127.0.0.1:$target_port"
fi
checks_run() { sql "SELECT count(*) || ' results, ' || count(*) FILTER (WHERE NOT ok) || ' failed' FROM check_results WHERE agent_id = '$agent_id'"; }
hz=$(getconf CLK_TCK)

cpu_ticks() { local s; s=$(cat "/proc/$1/stat"); s=${s##*) }; set -- $s; echo $(( ${12} + ${13} )); }  # utime+stime
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
sweeps_so_far() { sql "SELECT count(*) FROM host_samples WHERE agent_id = '$agent_id'"; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# --- runs --------------------------------------------------------------------------------------------------
printf 'variant\trun\tcontainers_seen\tsweeps\trss_median_mib\trss_peak_mib\tcpu_ms_per_sweep\trss_anon_mib\trss_file_mib\tpss_median_mib\n' >"$work/results.tsv"
for variant in $VARIANTS; do
  kind=${variant%%:*}
  environment=()
  [ "$kind" != "$variant" ] && IFS=, read -r -a environment <<<"${variant#*:}"
  binary="$bin/crowsnest-agent-$kind"
  [ -x "$binary" ] || die "unknown variant $variant"
  for run in $(seq 1 "$RUNS"); do
    env "${environment[@]}" "$binary" run --state-dir "$work/agent" --interval 1 >"$work/agent-$variant-$run.log" 2>&1 &
    agent_pid=$!
    sleep "$WARMUP"
    kill -0 "$agent_pid" 2>/dev/null || { tail -20 "$work/agent-$variant-$run.log" >&2; die "agent exited"; }
    seen=$(docker ps -q | wc -l)
    sweeps0=$(sweeps_so_far); ticks0=$(cpu_ticks "$agent_pid")
    : >"$work/rss"; : >"$work/pss"
    for i in $(seq 1 "$SWEEPS"); do
      kib "$agent_pid" VmRSS >>"$work/rss"
      # PSS (shared pages split among the processes mapping them) every 10 s: smaps_rollup walks every mapping.
      [ $((i % 10)) = 0 ] && awk '$1 == "Pss:" { print $2 }' "/proc/$agent_pid/smaps_rollup" >>"$work/pss"
      sleep 1
    done
    ticks1=$(cpu_ticks "$agent_pid"); sweeps1=$(sweeps_so_far)
    peak=$(kib "$agent_pid" VmHWM); anon=$(kib "$agent_pid" RssAnon); file=$(kib "$agent_pid" RssFile)
    # Where the resident pages are: the largest mappings (file-backed ones are the binary and shared libraries).
    awk '/^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "" ? "[anon]" : $6) } /^Rss:/ { rss[name] += $2 }
         END { for (n in rss) if (rss[n] >= 256) printf "%8.1f MiB  %s\n", rss[n] / 1024, n }' "/proc/$agent_pid/smaps" \
      | sort -rn | head -12 >"$work/smaps-$variant-$run.txt"
    # The private (anonymous) mappings one by one: heap arenas reserve 64 MiB, thread stacks 8 MiB, so the size
    # says what each resident figure is.
    python3 - "/proc/$agent_pid/smaps" >"$work/anon-$variant-$run.txt" <<'PY'
import re, sys
rows, name, size, keep = [], "", 0, False
for line in open(sys.argv[1]):
    m = re.match(r"([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)", line)
    if m:
        size = (int(m.group(2), 16) - int(m.group(1), 16)) // 1024
        name = m.group(3).strip() or "[anon]"
        keep = name.startswith("[")
    elif keep and line.startswith("Rss:") and int(line.split()[1]) >= 64:
        rows.append((int(line.split()[1]), size, name))
for rss, size, name in sorted(rows, reverse=True):
    print(f"{rss:8d} KiB resident of {size:8d} KiB  {name}")
PY
    python3 "$root/Benchmarks/thread-stacks.py" "$agent_pid" >>"$work/anon-$variant-$run.txt" 2>&1 || true
    # And the executable's resident pages by section and by module (Benchmarks/resident-pages.py).
    python3 "$root/Benchmarks/resident-pages.py" "$agent_pid" "$binary" >"$work/pages-$variant-$run.txt" 2>&1 || true
    kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent_pid=""
    sweeps=$((sweeps1 - sweeps0))
    [ "$sweeps" -gt 0 ] || die "no sweeps were stored during the run (see $work/agent-$variant-$run.log)"
    rss=$(median <"$work/rss"); pss=$(median <"$work/pss")
    printf '%s\t%s\t%s\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\n' "$variant" "$run" "$seen" "$sweeps" "$(echo "$rss / 1024" | bc -l)" \
      "$(echo "$peak / 1024" | bc -l)" "$(echo "($ticks1 - $ticks0) * 1000 / $hz / $sweeps" | bc -l)" \
      "$(echo "$anon / 1024" | bc -l)" "$(echo "$file / 1024" | bc -l)" "$(echo "$pss / 1024" | bc -l)" | tee -a "$work/results.tsv" >&2
  done
done

# --- summary: medians over runs ----------------------------------------------------------------------------
echo
echo "machine: $(nproc) cpus, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "containers running on the engine during runs: $(cut -f3 "$work/results.tsv" | tail -n +2 | sort -u | tr '\n' ' ')"
for b in $(for v in $VARIANTS; do echo "${v%%:*}"; done | sort -u); do
  echo "crowsnest-agent-$b: $(stat -c %s "$bin/crowsnest-agent-$b" | awk '{ printf "%.1f MiB", $1 / 1048576 }'), shared libraries: $(ldd "$bin/crowsnest-agent-$b" | awk '{ print $1 }' | tr '\n' ' ')"
done
printf '\n%-36s %5s %15s %13s %15s %10s %10s %10s\n' variant runs "median RSS MiB" "peak RSS MiB" "CPU ms/sweep" "anon MiB" "file MiB" "PSS MiB"
for variant in $VARIANTS; do
  rows=$(awk -F'\t' -v v="$variant" '$1 == v' "$work/results.tsv")
  printf '%-36s %5s %15s %13s %15s %10s %10s %10s\n' "$variant" "$(wc -l <<<"$rows")" \
    "$(cut -f5 <<<"$rows" | median)" "$(cut -f6 <<<"$rows" | median)" "$(cut -f7 <<<"$rows" | median)" \
    "$(cut -f8 <<<"$rows" | median)" "$(cut -f9 <<<"$rows" | median)" "$(cut -f10 <<<"$rows" | median)"
done
for variant in $VARIANTS; do
  echo; echo "largest resident mappings, $variant, last run:"; cat "$work/smaps-$variant-$RUNS.txt"
  echo; echo "the executable's resident pages, $variant, last run:"; cat "$work/pages-$variant-$RUNS.txt"
  echo; echo "private mappings of 64 KiB or more resident, then each thread's stack, $variant, last run:"
  cat "$work/anon-$variant-$RUNS.txt"
done
echo
echo "per run:"
cat "$work/results.tsv"
[ "$CHECKS" -gt 0 ] && echo "check runs by the agent over all runs: $(checks_run)"
true
