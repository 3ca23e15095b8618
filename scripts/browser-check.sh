#!/usr/bin/env bash
# Runs scripts/browser-check.py with selenium from PyPI in a virtual environment (installed there when missing),
# against Debian's chromium and chromedriver (scripts/ensure-packages.sh installs them). Arguments are passed on.
#
# Environment: CROWSNEST_BROWSER_VENV (default .build-venv-browser).
set -euo pipefail
SELENIUM_REQUIREMENT="selenium==4.45.0"
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${CROWSNEST_BROWSER_VENV:-$root/.build-venv-browser}"
fail() { echo "browser-check: $*" >&2; exit 2; }
command -v chromium >/dev/null || fail "chromium is missing (scripts/ensure-packages.sh installs it)"
[ -x /usr/bin/chromedriver ] || fail "chromedriver is missing (scripts/ensure-packages.sh installs chromium-driver)"
if ! "$venv/bin/python3" -c 'import selenium' 2>/dev/null; then
    log="$(mktemp)"
    { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check "$SELENIUM_REQUIREMENT"; } >"$log" 2>&1 \
        || { tail -n 5 "$log" >&2; rm -f "$log"; fail "installing $SELENIUM_REQUIREMENT into $venv failed"; }
    rm -f "$log"
fi
exec "$venv/bin/python3" "$root/scripts/browser-check.py" "$@"
