#!/bin/sh
# Installs, upgrades or removes the Crowsnest agent on a systemd host with Docker. Run as root.
#
#   install.sh [install] [--binary PATH] [--server HOST:PORT[,HOST:PORT...]] [--ca-pin sha256:HEX]
#              [--as-root | --as-user] [--no-start]
#   install.sh uninstall
#
# The usual way in is the line 'crowsnest-server token create --tenant NAME' prints: it downloads this script
# from the server (which fills in the values below), checks its SHA-256, and runs it with the enrollment token in
# CROWSNEST_ENROLLMENT_TOKEN. The script then downloads the agent binary, its systemd unit and the example
# configuration from the same server, refuses any of them whose SHA-256 differs from the one written here,
# creates the system user crowsnest-agent (in the group that owns the Docker socket), installs the files,
# enrolls with the pinned CA and starts the service.
#
# Running it again upgrades in place: the binary and unit are replaced when they changed, the configuration,
# the agent's identity and its spool of unsent batches are kept, and no token is needed. 'uninstall' stops the
# agent and removes its binary, unit, configuration, user, identity and spool.
#
# From a checkout or a release archive (no server to download from): --binary PATH (or a crowsnest-agent next to
# this script) and the agent.yaml and crowsnest-agent.service next to it are installed; --server and --ca-pin
# enroll (the token again from CROWSNEST_ENROLLMENT_TOKEN, never from the command line).
#   --as-root    run the agent as root with only CAP_DAC_READ_SEARCH instead of the crowsnest-agent user (see
#                the unit file for the trade-off); --as-user the other way. Without either, a host keeps the way
#                it runs now (a new install: the crowsnest-agent user).
#   --no-start   install and enable, but do not start or restart.
# Needs only POSIX sh, curl or wget, sha256sum, useradd and systemctl.
set -eu

# Filled in by crowsnest-server when it serves this script; left as they are in a checkout.
SERVER_URL='@@SERVER_URL@@'
AGENT_SERVERS='@@AGENT_SERVERS@@'
CA_PIN='@@CA_PIN@@'
AGENT_SHA256='@@AGENT_SHA256@@'
UNIT_SHA256='@@UNIT_SHA256@@'
CONFIG_SHA256='@@CONFIG_SHA256@@'

PROG=crowsnest-install
BIN_PATH=/usr/local/bin/crowsnest-agent
CONFIG=/etc/crowsnest/agent.yaml
UNIT_NAME=crowsnest-agent.service
UNIT=/etc/systemd/system/$UNIT_NAME
DROPIN_DIR=/etc/systemd/system/$UNIT_NAME.d
DROPIN=$DROPIN_DIR/10-user.conf
STATE_DIR=/var/lib/crowsnest-agent
SERVICE_USER=crowsnest-agent
DOCKER_SOCKET=/var/run/docker.sock

die() { echo "$PROG: $*" >&2; exit 1; }
note() { echo "$PROG: $*"; }
placeholder() { case "$1" in @@*@@) return 0 ;; *) return 1 ;; esac; }

ACTION=install
BINARY=""
MODE=""
START=1
while [ $# -gt 0 ]; do
  case "$1" in
    install|uninstall) ACTION=$1; shift ;;
    --binary|--server|--ca-pin)
      [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"
      case "$1" in --binary) BINARY=$2 ;; --server) AGENT_SERVERS=$2 ;; --ca-pin) CA_PIN=$2 ;; esac
      shift 2 ;;
    --token|--token=*) die "the enrollment token is read from CROWSNEST_ENROLLMENT_TOKEN, never from the command line (where every user of the host can read it)" ;;
    --as-root) MODE=root; shift ;;
    --as-user) MODE=user; shift ;;
    --no-start) START=0; shift ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
placeholder "$SERVER_URL" && SERVER_URL=""
placeholder "$AGENT_SERVERS" && AGENT_SERVERS=""
placeholder "$CA_PIN" && CA_PIN=""

[ "$(id -u)" -eq 0 ] || die "run as root (e.g. with sudo -E, so that CROWSNEST_ENROLLMENT_TOKEN is kept)"
SYSTEMD=0
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then SYSTEMD=1; fi

uninstall() {
  if [ "$SYSTEMD" -eq 1 ] && [ -f "$UNIT" ]; then
    systemctl disable --now --quiet "$UNIT_NAME" 2>/dev/null || true
  fi
  removed=""
  for path in "$UNIT" "$DROPIN_DIR" "$BIN_PATH" "$CONFIG" "$STATE_DIR"; do
    if [ -e "$path" ]; then rm -rf "$path" && removed="$removed $path"; fi
  done
  rmdir /etc/crowsnest 2>/dev/null || true
  if [ "$SYSTEMD" -eq 1 ]; then
    systemctl daemon-reload 2>/dev/null || true
    systemctl reset-failed "$UNIT_NAME" >/dev/null 2>&1 || true
  fi
  if id -u "$SERVICE_USER" >/dev/null 2>&1; then
    userdel "$SERVICE_USER" >/dev/null 2>&1 || die "cannot remove the user $SERVICE_USER (userdel failed)"
    removed="$removed user:$SERVICE_USER"
  fi
  if getent group crowsnest-docker >/dev/null 2>&1; then
    groupdel crowsnest-docker >/dev/null 2>&1 && removed="$removed group:crowsnest-docker"
  fi
  if [ -n "$removed" ]; then note "removed$removed"; else note "the agent is not installed here; nothing to remove"; fi
  note "the host stays listed on the server; revoke its agent there to refuse its certificate"
}
if [ "$ACTION" = uninstall ]; then uninstall; exit 0; fi
[ "$SYSTEMD" -eq 1 ] || die "systemd is not running on this host; run the agent as a container instead (see deploy/README.md)"

[ -S "$DOCKER_SOCKET" ] || die "no Docker socket at $DOCKER_SOCKET: install and start Docker first (the agent monitors its containers)"
# Staged under /var/lib, not /tmp: the downloaded binary is run once (--version) and /tmp is often noexec.
mkdir -p /var/lib/crowsnest-install && chmod 0700 /var/lib/crowsnest-install \
  || die "cannot create /var/lib/crowsnest-install"
WORK=$(mktemp -d /var/lib/crowsnest-install/run.XXXXXX) || die "cannot create a directory under /var/lib/crowsnest-install"
trap 'rm -rf "$WORK"; rmdir /var/lib/crowsnest-install 2>/dev/null || true' EXIT

# Where the files come from: the server this script was downloaded from, or the script's own directory.
fetch() {  # URL FILE
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 2 --connect-timeout 10 -o "$2" "$1" 2>"$WORK/fetch.err" \
      || die "cannot download $1 (no route to the server, or it refused): $(tail -n 1 "$WORK/fetch.err")"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -T 10 -t 2 -O "$2" "$1" 2>"$WORK/fetch.err" \
      || die "cannot download $1 (no route to the server, or it refused): wget exit status $?"
  else
    die "neither curl nor wget is installed; install one of them and run this again"
  fi
}
verify() {  # FILE SHA256 WHAT
  echo "$2  $1" | sha256sum -c - >/dev/null 2>&1 \
    || die "the downloaded $3 does not match the SHA-256 this script carries ($2); nothing was installed"
}
if [ -n "$SERVER_URL" ]; then
  [ -z "$BINARY" ] || die "--binary is for a checkout; this script installs the binary its server serves"
  [ "$(uname -m)" = x86_64 ] || die "this server serves the agent for x86_64 only; this host is $(uname -m)"
  fetch "$SERVER_URL/downloads/crowsnest-agent-linux-x86_64" "$WORK/crowsnest-agent"
  verify "$WORK/crowsnest-agent" "$AGENT_SHA256" "agent binary"
  fetch "$SERVER_URL/downloads/crowsnest-agent.service" "$WORK/$UNIT_NAME"
  verify "$WORK/$UNIT_NAME" "$UNIT_SHA256" "systemd unit"
  fetch "$SERVER_URL/downloads/agent.yaml" "$WORK/agent.yaml"
  verify "$WORK/agent.yaml" "$CONFIG_SHA256" "example configuration"
  chmod 0755 "$WORK/crowsnest-agent"
  SOURCE=$WORK
else
  HERE=$(cd "$(dirname "$0")" && pwd)
  if [ -z "$BINARY" ]; then
    for candidate in "$HERE/crowsnest-agent" "$HERE/../.build-agent/release/crowsnest-agent" "$HERE/../.build/release/crowsnest-agent"; do
      if [ -f "$candidate" ]; then BINARY=$candidate; break; fi
    done
    [ -n "$BINARY" ] || die "no agent binary next to this script; give one with --binary PATH (scripts/build-agent.sh builds it)"
  fi
  [ -f "$BINARY" ] || die "--binary $BINARY: no such file"
  for file in agent.yaml "$UNIT_NAME"; do
    [ -f "$HERE/$file" ] || die "$HERE/$file is missing (run this script from the agent/ folder or a release archive)"
  done
  cp "$BINARY" "$WORK/crowsnest-agent" && chmod 0755 "$WORK/crowsnest-agent" || die "cannot copy $BINARY"
  cp "$HERE/agent.yaml" "$HERE/$UNIT_NAME" "$WORK/" || die "cannot copy the files next to this script"
  SOURCE=$WORK
fi
VERSION=$("$SOURCE/crowsnest-agent" --version 2>&1) \
  || die "the agent binary does not run on this host (another architecture, or built without --static-swift-stdlib): $(echo "$VERSION" | head -n 1)"

# How the agent runs: as asked, else as it runs now (a unit without the drop-in: root), else (new) as its user.
if [ -z "$MODE" ]; then
  if [ -f "$UNIT" ] && [ ! -f "$DROPIN" ]; then MODE=root; else MODE=user; fi
fi
# Everything that can refuse is checked before any file changes.
if [ "$MODE" = user ]; then
  SOCKET_GID=$(stat -c %g "$DOCKER_SOCKET") || die "cannot read the owner of $DOCKER_SOCKET"
  [ "$SOCKET_GID" != 0 ] || die "$DOCKER_SOCKET belongs to group root, so only root can use it; run this again with --as-root, or give the socket a docker group"
  command -v useradd >/dev/null 2>&1 || die "useradd is missing (install the passwd package)"
fi

CHANGED=0
UNIT_CHANGED=0
put() {  # SOURCE TARGET MODE: replaces TARGET through a rename unless identical; returns 1 when unchanged
  if [ -f "$2" ] && cmp -s "$1" "$2"; then return 1; fi
  mkdir -p "$(dirname "$2")" || die "cannot create $(dirname "$2")"
  cp "$1" "$2.new" && chmod "$3" "$2.new" && mv -f "$2.new" "$2" || die "cannot write $2"
  return 0
}
if put "$SOURCE/crowsnest-agent" "$BIN_PATH" 0755; then CHANGED=1; note "installed $BIN_PATH ($VERSION)"; else note "$BIN_PATH is up to date ($VERSION)"; fi
if [ -e "$CONFIG" ]; then
  note "kept the existing $CONFIG"
else
  put "$SOURCE/agent.yaml" "$CONFIG" 0644 && note "installed $CONFIG (all defaults)"
fi
if put "$SOURCE/$UNIT_NAME" "$UNIT" 0644; then UNIT_CHANGED=1; note "installed $UNIT"; fi

# The service user, in the group that owns the Docker socket (which gives it Docker access: that is
# root-equivalent on any host, see the unit file).
if [ "$MODE" = user ]; then
  SOCKET_GROUP=$(getent group "$SOCKET_GID" | cut -d: -f1)
  if [ -z "$SOCKET_GROUP" ]; then
    # The socket's group has no name here (e.g. a socket shared into a container): name it.
    groupadd --system --gid "$SOCKET_GID" crowsnest-docker || die "cannot create a group with the Docker socket's id $SOCKET_GID"
    SOCKET_GROUP=crowsnest-docker
  fi
  if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin \
      --comment "Crowsnest agent" "$SERVICE_USER" || die "cannot create the system user $SERVICE_USER (useradd failed)"
    note "created the system user $SERVICE_USER"
  fi
  cat >"$WORK/dropin" <<EOF
# Written by install.sh: the agent runs as $SERVICE_USER with Docker access through the group $SOCKET_GROUP.
# Delete this file (then systemctl daemon-reload), or run install.sh --as-root, to run it as root instead.
[Service]
User=$SERVICE_USER
Group=$SERVICE_USER
SupplementaryGroups=$SOCKET_GROUP
CapabilityBoundingSet=
AmbientCapabilities=
EOF
  if put "$WORK/dropin" "$DROPIN" 0644; then UNIT_CHANGED=1; note "the agent runs as $SERVICE_USER ($DROPIN)"; fi
elif [ -d "$DROPIN_DIR" ]; then
  rm -rf "$DROPIN_DIR" && UNIT_CHANGED=1 && note "the agent runs as root (removed $DROPIN_DIR)"
fi
[ "$UNIT_CHANGED" -eq 0 ] || systemctl daemon-reload || die "systemctl daemon-reload failed"

# Enrollment, once: the identity in $STATE_DIR is what makes this host the same host to the server.
if [ -f "$STATE_DIR/agent.pem" ]; then
  note "already enrolled (identity in $STATE_DIR kept)"
else
  [ -n "${CROWSNEST_ENROLLMENT_TOKEN:-}" ] \
    || die "this host is not enrolled and CROWSNEST_ENROLLMENT_TOKEN is not set: paste the whole line 'crowsnest-server token create' printed"
  [ -n "$AGENT_SERVERS" ] && [ -n "$CA_PIN" ] \
    || die "to enroll, give --server HOST:PORT and --ca-pin sha256:HEX ('crowsnest-server token create' prints both)"
  mkdir -p "$STATE_DIR" && chmod 0700 "$STATE_DIR" || die "cannot create $STATE_DIR"
  export CROWSNEST_ENROLLMENT_TOKEN
  if ! (umask 077 && "$BIN_PATH" enroll --config "$CONFIG" --state-dir "$STATE_DIR" --server "$AGENT_SERVERS" \
        --ca-pin "$CA_PIN") >"$WORK/enroll.out" 2>&1; then
    die "enrollment with $AGENT_SERVERS failed: $(grep -m 1 '^Error:' "$WORK/enroll.out" || tail -n 1 "$WORK/enroll.out")"
  fi
  note "$(tail -n 1 "$WORK/enroll.out")"
  CHANGED=1
fi
if [ "$MODE" = user ]; then
  chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR" || die "cannot hand $STATE_DIR to $SERVICE_USER"
fi

systemctl enable --quiet "$UNIT_NAME" || die "systemctl enable $UNIT_NAME failed"
if [ "$START" -eq 0 ]; then note "enabled $UNIT_NAME; not started (--no-start)"; exit 0; fi
if systemctl is-active --quiet "$UNIT_NAME"; then
  if [ "$CHANGED" -eq 0 ] && [ "$UNIT_CHANGED" -eq 0 ]; then note "$UNIT_NAME is running; nothing changed"; exit 0; fi
  systemctl restart "$UNIT_NAME" || die "systemctl restart $UNIT_NAME failed; see: journalctl -u $UNIT_NAME -n 20"
  note "restarted $UNIT_NAME"
else
  systemctl reset-failed "$UNIT_NAME" >/dev/null 2>&1 || true
  systemctl start "$UNIT_NAME" || die "systemctl start $UNIT_NAME failed; see: journalctl -u $UNIT_NAME -n 20"
  note "started $UNIT_NAME"
fi
# A bad configuration or unreadable credentials make it exit within a second or two.
sleep 3
systemctl is-active --quiet "$UNIT_NAME" || die "$UNIT_NAME did not stay up; see: journalctl -u $UNIT_NAME -n 20"
note "$UNIT_NAME is running; follow it with: journalctl -fu $UNIT_NAME"
