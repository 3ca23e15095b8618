#!/usr/bin/env bash
# CPU seconds per 1,000 HTTP probes: crowsnest's prober (crowsnest-bench --probe-target, release build) beside
# Prometheus' blackbox_exporter (Debian's prometheus-blackbox-exporter, module http_2xx), both probing the same
# local nginx over plain HTTP with a new connection per probe, at the same rate, in the same run; and beside
# them the floor: a C program making the same probes with nothing else (Benchmarks/probe-floor/probe-floor.c).
# Usage: [RATE=50] [DURATION=40] [SKIP_BUILD=1] Benchmarks/probe-cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-50}
DURATION=${DURATION:-40}
for package in nginx-light prometheus-blackbox-exporter; do
  dpkg -s "$package" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null; }
done
[ "${SKIP_BUILD:-}" = 1 ] || swift build -c release --product crowsnest-bench >/dev/null
work=$(mktemp -d /tmp/cn-probe-cpu.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/logs"
cat > "$work/nginx.conf" <<CONF
worker_processes 1; daemon on; pid $work/nginx.pid; error_log $work/logs/error.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:18181; location / { return 200 "ok\n"; } } }
CONF
nginx -p "$work" -c "$work/nginx.conf"
cat > "$work/blackbox.yml" <<CONF
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http: { preferred_ip_protocol: ip4 }
CONF
prometheus-blackbox-exporter --config.file="$work/blackbox.yml" --web.listen-address=127.0.0.1:19115 >"$work/blackbox.log" 2>&1 &
bb=$!
sleep 2
ticks=$(getconf CLK_TCK)
cpu() { awk -v t="$ticks" '{ print ($14 + $15) / t }' "/proc/$1/stat"; }
# blackbox: driven by one curl per probe at RATE/s (curl's own CPU is not counted).
count=$(awk -v r="$RATE" -v d="$DURATION" 'BEGIN { printf "%d", r * d }')
before=$(cpu $bb)
interval=$(awk -v r="$RATE" 'BEGIN { printf "%.4f", 1 / r }')
for _ in $(seq "$count"); do
  curl -s -o /dev/null "http://127.0.0.1:19115/probe?module=http_2xx&target=http://127.0.0.1:18181/" &
  sleep "$interval"
done
wait $(jobs -p | grep -v "^$bb\$") 2>/dev/null || true
after=$(cpu $bb)
awk -v b="$before" -v a="$after" -v n="$count" -v r="$RATE" 'BEGIN { printf "blackbox_exporter: %d probes at %s/s; CPU %.3f s = %.3f s per 1,000 probes\n", n, r, a - b, (a - b) / n * 1000 }'
if command -v cc >/dev/null; then
  cc -O2 -o "$work/probe-floor" Benchmarks/probe-floor/probe-floor.c && "$work/probe-floor" 18181 "$count" "$RATE" || true
else
  echo "C floor: skipped (no C compiler)"
fi
# Paced by a timer of the thread the runs wait on (as the C floor paces itself), then by an event loop's timer (the
# thread that, in the agent, reads the Assign frames that start runs): the second pays one more thread wake-up per probe.
echo -n "paced on the prober's thread: "
.build/release/crowsnest-bench --probe-target http://127.0.0.1:18181/ --probe-rate "$RATE" --duration "$DURATION" --warmup 3
echo -n "paced on an event loop: "
.build/release/crowsnest-bench --probe-target http://127.0.0.1:18181/ --probe-pacing loop --probe-rate "$RATE" --duration "$DURATION" --warmup 3
