#!/usr/bin/env bash
# Checks server/openapi.yaml against a running crowsnest-server with schemathesis: every documented route,
# with generated and documented inputs, must answer without a 5xx, with a documented status, content type,
# headers and body shape.
#
#   scripts/api-conformance.sh [SERVER_BINARY]
#
# SERVER_BINARY defaults to $CROWSNEST_SERVER_BIN, else .build/debug/crowsnest-server (build it first; this
# script does not build). It makes a throw-away data directory (embedded PostgreSQL), a tenant `conf` with an
# admin key (the check routes write; every read route answers admins and readers alike), starts `serve` on a
# free loopback port, seeds a small fixed data set (the ids the document's examples name) and runs schemathesis
# with a fixed seed and a bounded number of examples, under
# `timeout 300`. The server is stopped and everything removed on every exit path. Exit status: 0 when
# schemathesis finds nothing, non-zero otherwise (its summary and the server log's tail are printed).
#
# Environment: CROWSNEST_CONFORMANCE_SEED (default 20250131), CROWSNEST_CONFORMANCE_MAX_EXAMPLES (default 50),
# CROWSNEST_CONFORMANCE_VENV (default .build-venv; schemathesis is installed there from PyPI when missing),
# CROWSNEST_CONFORMANCE_REPORT_DIR=DIR writes schemathesis' JUnit report and a HAR of every request there,
# CROWSNEST_CONFORMANCE_KEEP=1 keeps the data directory and logs for inspection.
set -euo pipefail

SCHEMATHESIS_REQUIREMENT="schemathesis==4.32.5"
SEED="${CROWSNEST_CONFORMANCE_SEED:-20250131}"
MAX_EXAMPLES="${CROWSNEST_CONFORMANCE_MAX_EXAMPLES:-50}"
RUN_TIMEOUT=300

fail() {
    echo "api-conformance: $*" >&2
    exit 1
}
say() { echo "api-conformance: $*" >&2; }

# Resolve the binary against the caller's directory before moving to the repository root.
bin="${1:-${CROWSNEST_SERVER_BIN:-}}"
cd "$(dirname "$0")/.."
root="$(pwd)"
if [ -z "$bin" ]; then
    bin="$root/.build/debug/crowsnest-server"
elif [ "${bin#/}" = "$bin" ]; then
    bin="$OLDPWD/$bin"
fi
[ -x "$bin" ] || fail "server binary $bin not found or not executable (build it with 'swift build', or pass its path)"
spec="$root/server/openapi.yaml"
[ -f "$spec" ] || fail "$spec is missing"
command -v python3 >/dev/null || fail "python3 is missing (apt-get install python3 python3-venv)"
command -v curl >/dev/null || fail "curl is missing (apt-get install curl)"

# --- schemathesis ---------------------------------------------------------------------------------------
venv="${CROWSNEST_CONFORMANCE_VENV:-$root/.build-venv}"
schemathesis="$venv/bin/schemathesis"
wanted_version="${SCHEMATHESIS_REQUIREMENT#*==}"
installed_version() { "$1" --version 2>/dev/null | awk '{print $NF}'; }
if [ ! -x "$schemathesis" ] || [ "$(installed_version "$schemathesis")" != "$wanted_version" ]; then
    say "installing $SCHEMATHESIS_REQUIREMENT into $venv"
    pip_log="$(mktemp)"
    if [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" >"$pip_log" 2>&1; then
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$SCHEMATHESIS_REQUIREMENT" >"$pip_log" 2>&1 \
            || { tail -n 5 "$pip_log" >&2; rm -f "$pip_log"; fail "pip install $SCHEMATHESIS_REQUIREMENT failed"; }
    else
        # No venv module (Debian without python3-venv): install for the system interpreter instead.
        rm -rf "$venv"
        python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$SCHEMATHESIS_REQUIREMENT" \
            >"$pip_log" 2>&1 \
            || { tail -n 5 "$pip_log" >&2; rm -f "$pip_log"; fail "neither 'python3 -m venv' nor 'pip install --break-system-packages' worked (apt-get install python3-venv)"; }
        schemathesis="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/schemathesis"
    fi
    rm -f "$pip_log"
    [ "$(installed_version "$schemathesis")" = "$wanted_version" ] || fail "schemathesis $wanted_version did not install"
fi

# --- PostgreSQL binaries (embedded cluster) ---------------------------------------------------------------
"$root/scripts/ensure-postgres.sh"
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
psql="$pg_bin/psql"
[ -x "$psql" ] || psql="$(command -v psql || true)"
[ -n "$psql" ] && [ -x "$psql" ] || fail "psql not found (apt-get install postgresql-client-15)"

# --- scratch space and cleanup ------------------------------------------------------------------------------
work="$(mktemp -d /tmp/crowsnest-conformance.XXXXXX)"
# Run as root, the embedded PostgreSQL runs as an unprivileged user, which must be able to pass through here.
chmod 711 "$work"
data="$work/data"
server_log="$work/server.log"
server_pid=""
schemathesis_pid=""

stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 300); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            say "server did not stop within 30 s of SIGTERM; killing it"
            kill -KILL "$server_pid" 2>/dev/null || true
        fi
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
    # The embedded PostgreSQL outlives a killed server (or an interrupted admin command): stop ours by its pid file.
    local pidfile="$data/postgres/data/postmaster.pid"
    if [ -f "$pidfile" ]; then
        local pg_pid
        pg_pid="$(head -n 1 "$pidfile" 2>/dev/null || true)"
        # Only when that pid is still a postgres serving this data directory (a stale file's pid may be reused).
        if [ -n "$pg_pid" ] && grep -qa -- "$data/postgres" "/proc/$pg_pid/cmdline" 2>/dev/null; then
            kill -INT "$pg_pid" 2>/dev/null || true   # fast shutdown
            for _ in $(seq 1 100); do
                kill -0 "$pg_pid" 2>/dev/null || break
                sleep 0.1
            done
        fi
    fi
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$schemathesis_pid" ] && kill -0 "$schemathesis_pid" 2>/dev/null; then
        kill -TERM "$schemathesis_pid" 2>/dev/null || true   # timeout passes it on to schemathesis
        wait "$schemathesis_pid" 2>/dev/null || true
    fi
    stop_server
    if [ "${CROWSNEST_CONFORMANCE_KEEP:-0}" = "1" ]; then
        say "kept $work (server log: $server_log)"
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

admin() {
    timeout 120 "$bin" "$@" --data-dir "$data" 2>>"$work/admin.log" \
        || { tail -n 20 "$work/admin.log" >&2; fail "'crowsnest-server $*' failed"; }
}

json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# --- tenant, key, server ------------------------------------------------------------------------------------
tenant_json="$(admin tenant create conf --json)" || exit 1
tenant_id="$(json_field id <<<"$tenant_json")"
key_json="$(admin apikey create --tenant conf --role admin --json)" || exit 1
api_key="$(json_field key <<<"$key_json")"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
base_url="http://127.0.0.1:$port"
# The fuzzer sends thousands of requests a minute with one key: lift the per-key limit (it has its own test).
CROWSNEST_API_REQUESTS_PER_MINUTE=10000000 \
"$bin" serve --data-dir "$data" --agent-listen 127.0.0.1:0 --http-listen "127.0.0.1:$port" >"$server_log" 2>&1 &
server_pid=$!

ready=""
for _ in $(seq 1 240); do
    kill -0 "$server_pid" 2>/dev/null || { tail -n 30 "$server_log" >&2; fail "server exited during start"; }
    if curl -fsS -o /dev/null --max-time 2 "$base_url/readyz" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.5
done
[ -n "$ready" ] || { tail -n 30 "$server_log" >&2; fail "server not ready at $base_url/readyz within 120 s"; }

# --- fixed data set -----------------------------------------------------------------------------------------
# The ids match the `examples` of the Target parameter in server/openapi.yaml. Written straight into the tables
# (schema of migration 0001) because no agent runs here; partitions are named as PartitionStore names them.
cat >"$work/seed.sql" <<'SQL'
BEGIN;
DO $$
DECLARE d date;
BEGIN
    FOR d IN SELECT generate_series((now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date, interval '1 day')::date LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF container_samples FOR VALUES FROM (%L) TO (%L)',
                       'container_samples_' || to_char(d, 'YYYYMMDD'), d || ' 00:00:00+00', (d + 1) || ' 00:00:00+00');
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF host_samples FOR VALUES FROM (%L) TO (%L)',
                       'host_samples_' || to_char(d, 'YYYYMMDD'), d || ' 00:00:00+00', (d + 1) || ' 00:00:00+00');
        IF (SELECT relkind FROM pg_class WHERE relname = 'container_events') = 'p' THEN
            EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF container_events FOR VALUES FROM (%L) TO (%L)',
                           'container_events_' || to_char(d, 'YYYYMMDD'), d || ' 00:00:00+00', (d + 1) || ' 00:00:00+00');
        END IF;
        IF to_regclass('check_results') IS NOT NULL THEN
            EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF check_results FOR VALUES FROM (%L) TO (%L)',
                           'check_results_' || to_char(d, 'YYYYMMDD'), d || ' 00:00:00+00', (d + 1) || ' 00:00:00+00');
        END IF;
    END LOOP;
END $$;

INSERT INTO agents (tenant_id, id, hostname, agent_version, interval_seconds, last_seen, memory_total_bytes,
                    containers_unavailable_reason)
VALUES (:'tenant', '0c0ffee0-0000-4000-8000-000000000001', 'alpha', '0.1.0', 30, now(), 8589934592, ''),
       (:'tenant', '0c0ffee0-0000-4000-8000-000000000002', 'zulu', '0.1.0', 30, NULL, 0,
        'permission denied on /var/run/docker.sock');

INSERT INTO containers (tenant_id, agent_id, name, docker_id, image, state, health, health_output, exit_code,
                        restart_count, oom_killed, started_at, finished_at, memory_limit_bytes, updated_at, removed_at)
VALUES (:'tenant', '0c0ffee0-0000-4000-8000-000000000001', 'web', repeat('a', 64), 'nginx:1.27', 'running', 'healthy',
        'OK', 0, 2, false, now() - interval '3 hours', now() - interval '3 hours 1 minute', 268435456, now(), NULL),
       (:'tenant', '0c0ffee0-0000-4000-8000-000000000001', 'batch_job.1', repeat('b', 64), 'busybox:latest', 'exited',
        'none', '', 137, 0, true, now() - interval '5 hours', now() - interval '4 hours', 0, now(), NULL),
       (:'tenant', '0c0ffee0-0000-4000-8000-000000000001', 'gone', repeat('c', 64), 'redis:7', 'exited',
        'unhealthy', 'connection refused', 1, 0, false, NULL, NULL, 0, now(), now() - interval '1 hour');

INSERT INTO container_events (tenant_id, agent_id, name, ts, action, docker_id, exit_code, detail)
VALUES (:'tenant', '0c0ffee0-0000-4000-8000-000000000001', 'web', now() - interval '3 hours 1 minute', 'die', repeat('a', 64), 0, ''),
       (:'tenant', '0c0ffee0-0000-4000-8000-000000000001', 'web', now() - interval '3 hours', 'start', repeat('a', 64), NULL, ''),
       (:'tenant', '0c0ffee0-0000-4000-8000-000000000001', 'web', now() - interval '2 hours 59 minutes', 'health_status: healthy', repeat('a', 64), NULL, ''),
       (:'tenant', '0c0ffee0-0000-4000-8000-000000000001', 'web', now() - interval '2 hours', 'exec_start', repeat('a', 64), NULL, 'curl -f localhost'),
       (:'tenant', '0c0ffee0-0000-4000-8000-000000000001', 'batch_job.1', now() - interval '4 hours', 'oom', repeat('b', 64), NULL, ''),
       (:'tenant', '0c0ffee0-0000-4000-8000-000000000001', 'batch_job.1', now() - interval '4 hours', 'die', repeat('b', 64), 137, '');

-- Two hours of 30-second samples; some figures unknown (NULL) or unlimited (limit 0).
INSERT INTO container_samples (tenant_id, agent_id, name, ts, docker_id, state, memory_usage_bytes,
                               memory_working_set_bytes, memory_limit_bytes, pids, cpu_percent, net_rx_bytes_per_second,
                               net_tx_bytes_per_second, block_read_bytes_per_second, block_write_bytes_per_second)
SELECT :'tenant', '0c0ffee0-0000-4000-8000-000000000001', 'web', now() - i * interval '30 seconds', repeat('a', 64), 'running',
       50000000 + i * 1000, CASE WHEN i % 7 = 0 THEN NULL ELSE 40000000 + i * 1000 END,
       CASE WHEN i % 5 = 0 THEN 0 ELSE 268435456 END, 4 + i % 3,
       CASE WHEN i % 11 = 0 THEN NULL ELSE 12.5 + i % 40 END, 1024.5 * i, 2048.25 * i, 0, 512 * (i % 4)
FROM generate_series(0, 240) AS i;

INSERT INTO host_samples (tenant_id, agent_id, ts, cpu_count, memory_total_bytes, memory_available_bytes, cpu_percent,
                          net_rx_bytes_per_second, net_tx_bytes_per_second)
SELECT :'tenant', '0c0ffee0-0000-4000-8000-000000000001', now() - i * interval '30 seconds', 4, 8589934592,
       CASE WHEN i % 9 = 0 THEN NULL ELSE 4294967296 - i * 4096 END, 150.0 + i % 50, 10000.0 + i, 5000.0 + i
FROM generate_series(0, 240) AS i;

INSERT INTO status_spans (tenant_id, target_id, state, started_at, ended_at, cause)
VALUES (:'tenant', 'h-0c0ffee0-0000-4000-8000-000000000001', 'unknown', now() - interval '1 day', now() - interval '6 hours', 'not yet seen'),
       (:'tenant', 'h-0c0ffee0-0000-4000-8000-000000000001', 'down', now() - interval '6 hours', now() - interval '5 hours', 'agent offline'),
       (:'tenant', 'h-0c0ffee0-0000-4000-8000-000000000001', 'up', now() - interval '5 hours', NULL, ''),
       (:'tenant', 'c-0c0ffee0-0000-4000-8000-000000000001-web', 'up', now() - interval '3 hours', NULL, 'running, healthy');

-- Migration 0002: the ingest rejection log and the agents' clock offsets.
SELECT set_config('conformance.tenant', :'tenant', true);
DO $$
BEGIN
    IF to_regclass('ingest_rejections') IS NOT NULL THEN
        UPDATE agents SET clock_offset_ms = -42, truncated_values = 3
        WHERE tenant_id = current_setting('conformance.tenant')::uuid AND id = '0c0ffee0-0000-4000-8000-000000000001';
        INSERT INTO ingest_rejections (tenant_id, agent_id, batch_seq, batch_ts, part, sqlstate, reason, recorded_at)
        VALUES (current_setting('conformance.tenant')::uuid, '0c0ffee0-0000-4000-8000-000000000001', 17,
                now() - interval '2 hours', 'samples', '22003', 'numeric value out of range', now() - interval '2 hours'),
               (current_setting('conformance.tenant')::uuid, '0c0ffee0-0000-4000-8000-000000000001', 18,
                NULL, 'batch', '', 'batch time is more than 400 days in the past', now() - interval '1 hour');
    END IF;
END $$;
-- Migration 0008: an HTTP check (the CheckID example) with results each minute of the hour the results route's
-- from/to examples name (the newest one failed), a TCP check that the delete route's example names, and a push
-- check the push route's example token names.
DO $$
BEGIN
    IF to_regclass('checks') IS NOT NULL THEN
        CREATE TABLE IF NOT EXISTS check_results_20250131 PARTITION OF check_results
            FOR VALUES FROM ('2025-01-31 00:00:00+00') TO ('2025-02-01 00:00:00+00');
        INSERT INTO checks (tenant_id, id, name, type, target, interval_seconds, timeout_ms, retries, run_on, options)
        VALUES (current_setting('conformance.tenant')::uuid, '0c0ffee0-0000-4000-8000-000000000009', 'home page', 'http',
                'https://example.com/', 60, 48000, 1, '{"mode":"any"}',
                '{"expected_status":["200-299"],"follow_redirects":true,"method":"GET"}'),
               (current_setting('conformance.tenant')::uuid, '0c0ffee0-0000-4000-8000-00000000000d', 'old database', 'tcp',
                'db.internal:5432', 30, 24000, 0, '{"mode":"labels","labels":["env=prod"]}', '{}');
        -- The push route's example token names this push check.
        INSERT INTO checks (tenant_id, id, name, type, target, interval_seconds, timeout_ms, retries, run_on, options,
                            push_token)
        VALUES (current_setting('conformance.tenant')::uuid, '0c0ffee0-0000-4000-8000-00000000000e', 'nightly backup',
                'push', '', 3600, 2880000, 0, '{"mode":"server"}', '{"grace_seconds":3600}',
                'cnp_conformance-push-token-0000000000000000000000');
        INSERT INTO check_results (tenant_id, check_id, slot_at, ts, agent_id, runner, token, ok, latency_ms, error,
                                   http_status, cert_not_after, figures)
        SELECT current_setting('conformance.tenant')::uuid, '0c0ffee0-0000-4000-8000-000000000009',
               timestamptz '2025-01-31 12:00:00+00' - i * interval '1 minute',
               timestamptz '2025-01-31 12:00:00.150+00' - i * interval '1 minute',
               CASE WHEN i % 2 = 0 THEN '0c0ffee0-0000-4000-8000-000000000001'::uuid END,
               CASE WHEN i % 2 = 0 THEN 'alpha' ELSE 'replica-1' END, i + 1, i <> 0,
               CASE WHEN i = 0 THEN NULL ELSE 20.5 + i END, CASE WHEN i = 0 THEN 'connection refused' ELSE '' END,
               CASE WHEN i = 0 THEN NULL ELSE 200 END, now() + interval '60 days', '{}'
        FROM generate_series(0, 59) AS i;
    END IF;
END $$;
COMMIT;
SQL
PGPASSWORD="$(cat "$data/postgres-password")" "$psql" -X -q -v ON_ERROR_STOP=1 -v tenant="$tenant_id" -f "$work/seed.sql" \
    -h "$data/postgres/run" -p 5432 -U crowsnest -d crowsnest >"$work/seed.log" 2>&1 \
    || { cat "$work/seed.log" >&2; fail "seeding the conformance data set failed"; }

# --- schemathesis -------------------------------------------------------------------------------------------
say "schemathesis $wanted_version against $base_url (seed $SEED, at most $MAX_EXAMPLES examples per operation)"
report_args=()
if [ -n "${CROWSNEST_CONFORMANCE_REPORT_DIR:-}" ]; then
    report_args=(--report junit,har --report-dir "$CROWSNEST_CONFORMANCE_REPORT_DIR")
fi
set +e
# From the scratch directory: schemathesis leaves a .schemathesis/ cache in its working directory.
cd "$work"
timeout "$RUN_TIMEOUT" "$schemathesis" run "$spec" "${report_args[@]}" \
    --url "$base_url" \
    --header "Authorization: Bearer $api_key" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,ignored_auth \
    --seed "$SEED" \
    --max-examples "$MAX_EXAMPLES" \
    --generation-database none \
    --workers 1 \
    --request-timeout 10 \
    --no-color &
schemathesis_pid=$!
# Waiting on a background job (not a foreground one) lets SIGINT/SIGTERM reach the trap at once.
wait "$schemathesis_pid"
status=$?
schemathesis_pid=""
set -e

if [ "$status" -eq 124 ]; then
    say "schemathesis did not finish within $RUN_TIMEOUT s"
fi
if [ "$status" -ne 0 ]; then
    echo "--- server log (last 40 lines) ---" >&2
    tail -n 40 "$server_log" >&2 || true
    fail "the server does not conform to server/openapi.yaml (schemathesis exit status $status)"
fi
say "ok"
