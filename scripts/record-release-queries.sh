#!/usr/bin/env bash
# Records the SQL this release runs, for the next release's rolling-upgrade test: runs the server's test suite
# against a PostgreSQL that logs every statement, keeps each distinct query (SELECT, INSERT, UPDATE, DELETE,
# WITH) that PostgreSQL can prepare on this release's schema, and writes them to
#   Tests/CrowsnestServerTests/Fixtures/previous-release-queries.sql
# which RollingUpgradeTests prepares against the newest migrations: a migration that breaks a query the previous
# release runs (a dropped or renamed column, a changed type) fails there. Run it when cutting a release, after
# `swift build --build-tests`; takes a few minutes. Needs PostgreSQL (scripts/ensure-postgres.sh) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "record-release-queries: $*" >&2; exit 1; }
out=Tests/CrowsnestServerTests/Fixtures/previous-release-queries.sql
dir=$(mktemp -d /tmp/cn-record-XXXXXX)
chmod 755 "$dir"  # PostgreSQL runs as an unprivileged user
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
trap 'scripts/start-postgres-peer.sh stop "$dir/pg" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
scripts/start-postgres-peer.sh start "$dir/pg" "$port" >/dev/null || die "cannot start PostgreSQL"
psql=(psql -X -q -h "$dir/pg" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)
"${psql[@]}" -c "ALTER SYSTEM SET log_statement = 'all'" -c "ALTER SYSTEM SET log_line_prefix = '@@@ '" \
  -c "SELECT pg_reload_conf()" >/dev/null
echo "record-release-queries: running the server's tests with every statement logged..."
CROWSNEST_TEST_DATABASE_URL="postgres://postgres@:$port/postgres?host=$dir/pg" \
  swift test --skip-build --filter CrowsnestServerTests >"$dir/tests.log" 2>&1 \
  || echo "record-release-queries: some tests failed (recording what ran anyway); see the suite's output by running it"
python3 - "$dir/pg/server.log" "$dir/candidates.sql" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
queries = set()
for entry in text.split("@@@ ")[1:]:
    match = re.match(r"LOG:\s+(?:execute [^:]*|statement): (.*)", entry, re.S)
    if not match:
        continue
    sql = match.group(1).strip()
    head = sql.lstrip("(").split(None, 1)[0].upper() if sql else ""
    if head not in ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH"):
        continue
    # The tests' own catalog reads and database housekeeping are not the release's queries.
    if re.search(r"\bpg_(catalog|class|index|constraint|attribute|namespace|database|stat_activity|terminate_backend)\b", sql):
        continue
    queries.add(sql)
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for sql in sorted(queries):
        out.write(sql.replace("\n", "\n  ") + "\n;;\n")
print(len(queries))
PY
# Keep what this release's schema can prepare (PostgreSQL infers the parameters' types): the next release must too.
"${psql[@]}" -c "CREATE DATABASE record_schema" >/dev/null
.build/debug/crowsnest-server tenant create record-schema --database-url "postgres://postgres@:$port/record_schema?host=$dir/pg" \
  >/dev/null || die "cannot migrate the schema database with .build/debug/crowsnest-server (swift build first)"
python3 - "$dir/candidates.sql" "$out" "$dir/pg" "$port" <<'PY'
import subprocess, sys
candidates, out, host, port = sys.argv[1:]
statements = [s.strip().replace("\n  ", "\n") for s in open(candidates, encoding="utf-8").read().split("\n;;\n") if s.strip()]
kept = []
for sql in statements:
    check = subprocess.run(["psql", "-X", "-q", "-h", host, "-p", port, "-U", "postgres", "-d", "record_schema",
                            "-v", "ON_ERROR_STOP=1", "-c", "PREPARE recorded AS " + sql],
                           capture_output=True, text=True)
    if check.returncode == 0:
        kept.append(sql)
with open(out, "w", encoding="utf-8") as f:
    f.write("-- The SQL the previous release runs, recorded by scripts/record-release-queries.sh; RollingUpgradeTests\n")
    f.write("-- prepares each statement against the newest migrations. Statements are separated by a line ';;'.\n")
    for sql in kept:
        f.write(sql + "\n;;\n")
print(f"record-release-queries: kept {len(kept)} of {len(statements)} distinct queries (the rest cannot be prepared without their parameters' types)")
PY
echo "record-release-queries: wrote $out"
