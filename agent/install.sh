#!/usr/bin/env bash
# Installs the Crowsnest agent on a systemd host, as root. Safe to run again: it
# upgrades the binary and the unit, keeps an existing configuration and
# existing credentials, and restarts the service only when something changed.
#
#   install.sh [BINARY | BUILD_DIR] [--server HOST:PORT[,HOST:PORT...] --token TOKEN --ca-pin sha256:HEX]
#              [--as-user] [--no-start]
#
#   BINARY | BUILD_DIR  the crowsnest-agent to install, or a directory holding it
#                       (e.g. .build/release). Default: ./crowsnest-agent next to
#                       this script, else ../.build/release/crowsnest-agent.
#                       Build it with scripts/build-agent.sh (prints its path).
#   --server, --token, --ca-pin
#                       enroll with the server ('crowsnest-server token create
#                       --tenant NAME' prints the token and the pin). Skipped when
#                       the host is already enrolled.
#   --as-user           run as the unprivileged user crowsnest-agent in the docker
#                       group instead of root (see the unit file for the trade-off).
#   --no-start          install and enable, but do not start or restart.
#
# Installs /usr/local/bin/crowsnest-agent, /etc/crowsnest/agent.yaml (only if
# absent) and /etc/systemd/system/crowsnest-agent.service. With DESTDIR=/some/dir
# it only stages those files under that directory (no root, users, enrollment
# or systemctl), e.g. for packaging.
set -euo pipefail

PROG=install.sh
die() { echo "$PROG: $*" >&2; exit 1; }
note() { echo "$PROG: $*"; }
usage() { sed -n '6,20p' "$0" | sed 's/^# \{0,1\}//'; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DESTDIR="${DESTDIR:-}"
BIN_PATH=/usr/local/bin/crowsnest-agent
CONFIG=/etc/crowsnest/agent.yaml
UNIT_NAME=crowsnest-agent.service
UNIT=/etc/systemd/system/$UNIT_NAME
DROPIN=/etc/systemd/system/$UNIT_NAME.d/10-user.conf
STATE_DIR=/var/lib/crowsnest-agent
SERVICE_USER=crowsnest-agent

SOURCE=""
SERVER=""
TOKEN=""
CA_PIN=""
AS_USER=0
START=1
while [ $# -gt 0 ]; do
  case "$1" in
    --server|--token|--ca-pin)
      if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi
      case "$1" in --server) SERVER="$2" ;; --token) TOKEN="$2" ;; --ca-pin) CA_PIN="$2" ;; esac
      shift 2 ;;
    --server=*) SERVER="${1#*=}"; shift ;;
    --token=*) TOKEN="${1#*=}"; shift ;;
    --ca-pin=*) CA_PIN="${1#*=}"; shift ;;
    --as-user) AS_USER=1; shift ;;
    --no-start) START=0; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (try --help)" ;;
    *)
      [ -z "$SOURCE" ] || die "only one binary or build directory may be given (got '$SOURCE' and '$1')"
      SOURCE="$1"; shift ;;
  esac
done
ENROLL=0
if [ -n "$SERVER$TOKEN$CA_PIN" ]; then
  if [ -z "$SERVER" ] || [ -z "$TOKEN" ] || [ -z "$CA_PIN" ]; then
    die "--server, --token and --ca-pin go together; give all three to enroll, or none"
  fi
  ENROLL=1
fi

# --- Preconditions: checked before anything is changed. ---
if [ -z "$SOURCE" ]; then
  for candidate in "$HERE/crowsnest-agent" "$HERE/../.build-agent/release/crowsnest-agent" "$HERE/../.build/release/crowsnest-agent"; do
    if [ -f "$candidate" ]; then SOURCE="$candidate"; break; fi
  done
  [ -n "$SOURCE" ] || die "no binary given and none next to this script or in .build/release; build one with scripts/build-agent.sh and pass its path"
fi
BINARY="$SOURCE"
[ -d "$BINARY" ] && BINARY="$BINARY/crowsnest-agent"
[ -f "$BINARY" ] || die "binary $BINARY not found"
[ -x "$BINARY" ] || die "binary $BINARY is not executable"
if ! VERSION_OUTPUT="$("$BINARY" --version 2>&1)"; then
  die "$BINARY does not run on this host (built without --static-swift-stdlib, or for another architecture?): $(head -n 1 <<<"${VERSION_OUTPUT:-'--version' failed with no output}")"
fi
[ -f "$HERE/agent.yaml" ] || die "example configuration $HERE/agent.yaml is missing (run this script from the agent/ folder or a release archive)"
[ -f "$HERE/$UNIT_NAME" ] || die "unit file $HERE/$UNIT_NAME is missing (run this script from the agent/ folder or a release archive)"

if [ -z "$DESTDIR" ]; then
  [ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 ...), or set DESTDIR to stage the files only"
  if [ ! -d /run/systemd/system ] || ! command -v systemctl >/dev/null; then
    die "systemd is not running on this host; run the agent another way (see agent/Dockerfile) or set DESTDIR to stage the files only"
  fi
  if [ "$AS_USER" -eq 1 ]; then
    getent group docker >/dev/null || die "--as-user: there is no 'docker' group on this host (is Docker installed?)"
    command -v useradd >/dev/null || die "--as-user: useradd not found (install the passwd package)"
  fi
  [ -S /var/run/docker.sock ] || note "warning: /var/run/docker.sock not found; the agent samples the host only until Docker is up (set docker_host in $CONFIG if it lives elsewhere)"
else
  [ "$ENROLL" -eq 0 ] || die "DESTDIR only stages files; enroll on the target host"
  [ "$AS_USER" -eq 0 ] || die "DESTDIR only stages files; use --as-user on the target host"
fi

CHANGED=0
# Copies $1 to $DESTDIR$2 with mode $3 unless identical; a temporary file and a
# rename keep a running binary or a concurrent reader from seeing half a file.
put() {
  local source="$1" target="$DESTDIR$2" mode="$3"
  if [ -f "$target" ] && cmp -s "$source" "$target"; then
    return 1
  fi
  install -d -m 0755 "$(dirname "$target")" || die "cannot create directory $(dirname "$target")"
  install -m "$mode" "$source" "$target.new" || die "cannot write $target.new"
  mv -f "$target.new" "$target" || die "cannot replace $target"
  CHANGED=1
  return 0
}

# --- Files. ---
if put "$BINARY" "$BIN_PATH" 0755; then
  note "installed $BIN_PATH ($VERSION_OUTPUT)"
else
  note "$BIN_PATH is up to date ($VERSION_OUTPUT)"
fi

if [ -e "$DESTDIR$CONFIG" ]; then
  note "kept existing $CONFIG"
else
  install -d -m 0755 "$DESTDIR$(dirname "$CONFIG")" || die "cannot create directory $DESTDIR$(dirname "$CONFIG")"
  install -m 0644 "$HERE/agent.yaml" "$DESTDIR$CONFIG" || die "cannot write $DESTDIR$CONFIG"
  note "installed $CONFIG (all defaults; edit it to change settings)"
fi

UNIT_CHANGED=0
if put "$HERE/$UNIT_NAME" "$UNIT" 0644; then
  UNIT_CHANGED=1
  note "installed $UNIT"
fi

if [ -n "$DESTDIR" ]; then
  note "staged under $DESTDIR; on the target host run this script without DESTDIR to enroll and start"
  exit 0
fi

# --- Service user (optional). ---
if [ "$AS_USER" -eq 1 ]; then
  if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "Crowsnest agent" "$SERVICE_USER" \
      || die "cannot create user $SERVICE_USER"
    note "created system user $SERVICE_USER"
  fi
  DROPIN_TEXT="$(mktemp)"
  trap 'rm -f "$DROPIN_TEXT"' EXIT
  cat >"$DROPIN_TEXT" <<EOF
# Written by agent/install.sh --as-user: run unprivileged, with Docker access
# through the docker group. Delete this file (and daemon-reload) to run as root.
[Service]
User=$SERVICE_USER
Group=$SERVICE_USER
SupplementaryGroups=docker
CapabilityBoundingSet=
AmbientCapabilities=
EOF
  if put "$DROPIN_TEXT" "$DROPIN" 0644; then
    UNIT_CHANGED=1
    note "installed $DROPIN (runs as $SERVICE_USER)"
  fi
elif [ -f "$DROPIN" ]; then
  note "runs as $SERVICE_USER because of $DROPIN; delete it to run as root"
fi

if [ "$UNIT_CHANGED" -eq 1 ]; then
  systemctl daemon-reload || die "systemctl daemon-reload failed"
fi

# --- Enrollment. ---
if [ "$ENROLL" -eq 1 ]; then
  if [ -f "$STATE_DIR/agent.pem" ]; then
    note "already enrolled (credentials in $STATE_DIR); not enrolling again. To re-enroll, stop the service and remove agent.pem, agent-key.pem, ca.pem and identity.json from $STATE_DIR first"
  else
    install -d -m 0700 "$STATE_DIR" || die "cannot create $STATE_DIR"
    if ! ENROLL_OUTPUT="$(umask 077 && "$BIN_PATH" enroll --config "$CONFIG" --state-dir "$STATE_DIR" \
        --server "$SERVER" --token "$TOKEN" --ca-pin "$CA_PIN" 2>&1)"; then
      die "enrollment failed: $(grep -m 1 '^Error:' <<<"$ENROLL_OUTPUT" || tail -n 1 <<<"$ENROLL_OUTPUT")"
    fi
    note "$(tail -n 1 <<<"$ENROLL_OUTPUT")"
    CHANGED=1
  fi
fi
if [ -f "$DROPIN" ] && [ -d "$STATE_DIR" ]; then
  # systemd hands StateDirectory= to the service user too; this covers files written by root since.
  chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR" || die "cannot hand $STATE_DIR to $SERVICE_USER"
fi

# --- Service. ---
systemctl enable --quiet "$UNIT_NAME" || die "systemctl enable $UNIT_NAME failed"
if [ "$START" -eq 0 ]; then
  note "enabled $UNIT_NAME; not started (--no-start)"
  exit 0
fi
if [ ! -f "$STATE_DIR/agent.pem" ]; then
  note "enabled $UNIT_NAME; not started: this host is not enrolled yet. Enroll, then start it:"
  note "  $BIN_PATH enroll --config $CONFIG --server HOST:7443 --token TOKEN --ca-pin sha256:HEX && systemctl start $UNIT_NAME"
  note "  (or run this script again with --server, --token and --ca-pin)"
  exit 0
fi
if systemctl is-active --quiet "$UNIT_NAME"; then
  if [ "$CHANGED" -eq 1 ] || [ "$UNIT_CHANGED" -eq 1 ]; then
    systemctl restart "$UNIT_NAME" || die "systemctl restart $UNIT_NAME failed; see: journalctl -u $UNIT_NAME -n 20"
    note "restarted $UNIT_NAME"
  else
    note "$UNIT_NAME is running; nothing changed"
    exit 0
  fi
else
  # reset-failed: a unit left failed (e.g. by a bad configuration) starts afresh.
  systemctl reset-failed "$UNIT_NAME" >/dev/null 2>&1 || true
  systemctl start "$UNIT_NAME" || die "systemctl start $UNIT_NAME failed; see: journalctl -u $UNIT_NAME -n 20"
  note "started $UNIT_NAME"
fi
# A bad configuration or unreadable credentials make it exit within a second.
sleep 3
systemctl is-active --quiet "$UNIT_NAME" \
  || die "$UNIT_NAME did not stay up; see: journalctl -u $UNIT_NAME -n 20"
note "$UNIT_NAME is running; follow it with: journalctl -fu $UNIT_NAME"
