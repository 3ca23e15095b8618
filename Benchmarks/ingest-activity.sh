#!/usr/bin/env bash
# What the database is doing during a crowsnest-bench run: samples the active queries of the newest benchmark
# cluster (/tmp/cn-bench-*) every 0.5 s and prints how often each statement was seen, most frequent first.
#
#   .build/release/crowsnest-bench --runs 3 --profile-batches 0 &
#   sleep 15; N=150 Benchmarks/ingest-activity.sh      # N samples (default 80)
set -euo pipefail
dir=$(ls -dt /tmp/cn-bench-* 2>/dev/null | head -1)
[ -n "$dir" ] || { echo "no /tmp/cn-bench-* cluster: start crowsnest-bench first" >&2; exit 1; }
export PGPASSWORD
PGPASSWORD=$(cat "$dir/postgres-password")
for _ in $(seq 1 "${N:-80}"); do
  psql -h "$dir/postgres/run" -U crowsnest -d crowsnest -Atc \
    "SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 70) FROM pg_stat_activity
     WHERE state = 'active' AND pid <> pg_backend_pid()" || true
  sleep 0.5
done | sort | uniq -c | sort -rn
