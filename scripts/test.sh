#!/usr/bin/env bash
# Runs the whole test suite: installs and starts what the tests need (PostgreSQL binaries, a Docker
# engine, the busybox test image), builds, and runs every test. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v swift >/dev/null || { echo "test: the Swift toolchain is missing (swift not on PATH)" >&2; exit 1; }
scripts/ensure-packages.sh
scripts/ensure-postgres.sh
scripts/ensure-docker.sh
scripts/build-test-image.sh
deploy/build-base-image.sh

swift build --build-tests 2>&1 | grep -v '^\[' || true
swift build --build-tests >/dev/null  # fail here (with the compiler's output above) if the build broke
status=0
# The test log is kept so that the failures can be repeated at the very end: CI shows only the tail.
log=$(mktemp /tmp/crowsnest-test-log.XXXXXX)
swift test --skip-build "$@" 2>&1 | tee "$log" || status=$?  # pipefail: swift test's own status
# The whole suite (no filter given) also checks server/openapi.yaml against the running server.
if [ $# -eq 0 ]; then
  scripts/api-conformance.sh .build/debug/crowsnest-server || status=1
fi
if [ $status -ne 0 ]; then
  echo "test: FAILED. The failing tests and their messages:" >&2
  grep -E ": error: |Fatal error|' failed \(|^Test Suite '(All|Selected) tests' |✘" "$log" | tail -60 >&2 || true
else
  echo "test: all tests passed"
fi
rm -f "$log"
exit $status
