#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries (initdb, pg_ctl, postgres) are installed, for the server's embedded
# cluster and its tests. Idempotent: does nothing when /usr/lib/postgresql/<version>/bin/initdb exists.
# Installs Debian's postgresql-15 (or the distribution default `postgresql`) without creating or starting the
# packaged "main" cluster: crowsnest runs its own cluster, on a unix socket, in its data directory.
set -euo pipefail

have_postgres() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

if have_postgres; then
    exit 0
fi

fail() {
    echo "ensure-postgres: $*" >&2
    exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "PostgreSQL is not installed and apt-get is unavailable; install PostgreSQL 15+ server binaries by hand"

SUDO=""
if [ "$(id -u)" != "0" ]; then
    command -v sudo >/dev/null 2>&1 || fail "PostgreSQL is not installed; run as root (or install sudo) to apt-get install postgresql-15"
    SUDO="sudo"
fi

# Keep the package from creating (and starting) a "main" cluster on port 5432.
$SUDO mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/crowsnest-no-main-cluster.conf >/dev/null

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! $SUDO apt-get update >"$log" 2>&1; then
    fail "apt-get update failed: $(tail -n 1 "$log")"
fi
if ! $SUDO apt-get install -y --no-install-recommends postgresql-15 >"$log" 2>&1; then
    if ! $SUDO apt-get install -y --no-install-recommends postgresql >"$log" 2>&1; then
        fail "apt-get install postgresql-15 / postgresql failed: $(tail -n 1 "$log")"
    fi
fi

have_postgres || fail "PostgreSQL packages installed but no /usr/lib/postgresql/*/bin/initdb was found"
echo "ensure-postgres: installed $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
