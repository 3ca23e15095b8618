#!/usr/bin/env bash
# Smoke test of the agent as installed on hosts (scripts/build-agent.sh: static Swift runtime, -Osize, no PIE):
# the test suite runs debug builds, and a fault only the optimised build has (it happened: a crash at start in
# the inventory's task group) would otherwise first show on a user's VPS.
#
#   scripts/smoke-release-agent.sh        # after scripts/test.sh (uses its debug crowsnest-server)
#
# Five containers, the server on its embedded PostgreSQL, the release agent at --interval 1 for SMOKE_SECONDS (20):
# the agent must still run, and the server must have stored its sweeps with every container's figures read from
# the cgroup files.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${SMOKE_SECONDS:-20}
# Quiet unless the build fails: CI shows only the tail of its output, where the test summary should stay.
build_log=$(mktemp /tmp/crowsnest-agent-build.XXXXXX)
AGENT_BIN=$(scripts/build-agent.sh 2>"$build_log") || { tail -40 "$build_log" >&2; echo "smoke-release-agent: the release build failed" >&2; exit 1; }
rm -f "$build_log"
export AGENT_BIN
[ -x .build/debug/crowsnest-server ] || swift build --product crowsnest-server >/dev/null
source scripts/lib/local-deployment.sh
fail() { echo "smoke-release-agent: FAILED: $*" >&2; tail -20 "$root/agent.log" >&2 || true; exit 1; }

# What a bare VPS must provide: glibc's libraries (split into several before glibc 2.34) and libgcc_s, nothing
# else (libstdc++ is linked in).
needed=$(ldd "$AGENT_BIN" | awk '{ print $1 }' \
  | grep -vE '^(linux-vdso\.so\.1|linux-gate\.so\.1|(/.*/)?ld-linux[-a-z0-9_.]*\.so\.[0-9]+|lib(c|m|pthread|dl|rt|util)\.so\.[0-9]+|libgcc_s\.so\.1)$' || true)
[ -z "$needed" ] || { echo "smoke-release-agent: FAILED: the release agent needs shared libraries beyond glibc and libgcc_s: $needed" >&2; exit 1; }

for i in 1 2 3 4 5; do docker run -d --name "$prefix-$i" "$image" sleep 600 >/dev/null; done
deployment_start smoke
agent_start 1
sleep "$SECONDS_TO_RUN"
kill -0 "$agent_pid" 2>/dev/null || fail "the release agent exited (status $(wait "$agent_pid"; echo $?))"
sweeps=$(db "SELECT count(*) FROM host_samples")
# Counters present means they were read (cgroup files, or Docker's stats as the fallback); pids > 0 that the
# cgroup's own pids.current was found.
with_figures=$(db "SELECT count(DISTINCT name) FROM container_samples
                   WHERE name LIKE '$prefix-%' AND cpu_usage_ns > 0 AND memory_usage_bytes > 0")
[ "$sweeps" -ge $((SECONDS_TO_RUN / 2)) ] || fail "only $sweeps sweeps stored in $SECONDS_TO_RUN s"
[ "$with_figures" -eq 5 ] || fail "figures of $with_figures of 5 containers stored"
echo "smoke-release-agent: ok ($sweeps sweeps in ${SECONDS_TO_RUN} s, 5 of 5 containers, $(du -h "$AGENT_BIN" | cut -f1) static binary)"
