#!/usr/bin/env bash
# Where the CPU of end-to-end ingest goes: runs one round of crowsnest-bench (release) and records the whole
# machine with perf during its end-to-end phase (simulated agents' TLS, the server's decode, cleaning, rates, COPY
# encoding, PostgreSQL backends), then reports the shares by process and library and the hottest symbols.
#
#   Benchmarks/ingest-profile.sh            # builds crowsnest-bench in release first (SKIP_BUILD=1 to reuse it)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SKIP_BUILD:-0}" = 1 ] || swift build -c release --product crowsnest-bench >&2
out=$(mktemp -d /tmp/cn-ingest-profile-XXXXXX)
.build/release/crowsnest-bench --runs 1 --profile-batches 0 --skip-direct --warmup 8 --duration 20 >"$out/bench.txt" 2>&1 &
bench=$!
# Enrollment and warm-up take about 10 s; record 15 s of the measured end-to-end phase.
sleep 14
perf record -q -a -g -F 299 -o "$out/perf.data" -- sleep 15 2>/dev/null
wait "$bench" || { cat "$out/bench.txt"; exit 1; }
cat "$out/bench.txt"
echo
echo "CPU by process and library (perf, whole machine, 15 s of the end-to-end phase):"
perf report -i "$out/perf.data" --stdio --no-children --sort comm,dso -g none --percent-limit 1 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30
echo
echo "hottest symbols:"
perf report -i "$out/perf.data" --stdio --no-children --sort comm,symbol -g none --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$' | head -50
echo "(perf data kept in $out)"
