#!/usr/bin/env bash
# Installs the Debian packages the build and tests use, when missing (idempotent).
set -euo pipefail
missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v runuser >/dev/null || missing+=(util-linux)
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v curl >/dev/null || missing+=(curl)
# The probe tests run real peers: nginx (stub_status) and a PostgreSQL with a self-signed certificate.
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v openssl >/dev/null || missing+=(openssl)
# The HA end-to-end test runs the shipped deploy/haproxy.cfg.
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v python3 >/dev/null || missing+=(python3)
# The clock-skew end-to-end test runs the agent under libfaketime.
command -v faketime >/dev/null || missing+=(faketime)
# The SLA report test renders the printable HTML page in headless Chromium.
command -v chromium >/dev/null || missing+=(chromium)
# The web pages' end-to-end test drives Chromium through chromedriver (selenium from PyPI, scripts/browser-check.sh).
command -v chromedriver >/dev/null || missing+=(chromium-driver)
# The metrics exposition is checked with promtool (Debian's prometheus package).
command -v promtool >/dev/null || missing+=(prometheus)
# The deployment tests build their base image (Debian with systemd) with debootstrap (deploy/build-base-image.sh).
command -v debootstrap >/dev/null || missing+=(debootstrap)
# The compose stack's test runs deploy/compose-replicas.yaml with Debian's docker-compose.
[ -x /usr/bin/docker-compose ] || missing+=(docker-compose)
# The agent-as-a-container test measures a loop-mounted ext4 disk.
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
# The API conformance check installs schemathesis from PyPI into a virtual environment.
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "ensure-packages: missing ${missing[*]} and installing needs root" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || { echo "ensure-packages: apt-get update failed" >&2; exit 1; }
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || { echo "ensure-packages: apt-get install ${missing[*]} failed" >&2; exit 1; }
fi
