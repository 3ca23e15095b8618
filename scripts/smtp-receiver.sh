#!/usr/bin/env bash
# Runs scripts/smtp-receiver.py with aiosmtpd from PyPI in a virtual environment (installed there when missing).
# Arguments are passed on. Used by the alert tests; needs python3 with venv, and openssl for the test certificate.
#
# Environment: CROWSNEST_SMTP_VENV (default .build-venv-smtp).
set -euo pipefail
AIOSMTPD_REQUIREMENT="aiosmtpd==1.4.6"
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${CROWSNEST_SMTP_VENV:-$root/.build-venv-smtp}"
fail() { echo "smtp-receiver: $*" >&2; exit 2; }
command -v openssl >/dev/null || fail "openssl is missing (apt-get install openssl)"
if ! "$venv/bin/python3" -c 'import aiosmtpd' 2>/dev/null; then
    log="$(mktemp)"
    # Another test may be installing it at the same moment: one at a time.
    exec 9>"$root/.build-venv-smtp.lock"
    flock 9
    if ! "$venv/bin/python3" -c 'import aiosmtpd' 2>/dev/null; then
        { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check "$AIOSMTPD_REQUIREMENT"; } >"$log" 2>&1 \
            || { tail -n 5 "$log" >&2; rm -f "$log"; fail "installing $AIOSMTPD_REQUIREMENT into $venv failed"; }
    fi
    rm -f "$log"
    exec 9>&-
fi
exec "$venv/bin/python3" "$root/scripts/smtp-receiver.py" "$@"
