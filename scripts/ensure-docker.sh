#!/usr/bin/env bash
# Makes sure a Docker engine answers on /var/run/docker.sock (or the unix socket in DOCKER_HOST).
# Idempotent: installs docker.io from Debian when dockerd is missing, starts dockerd in the
# background when nothing answers, and waits up to 30 s for `docker info`.
# Prints one clear line and exits non-zero when it cannot.
set -u

log=/tmp/crowsnest-dockerd.log
sock=/var/run/docker.sock
case "${DOCKER_HOST:-}" in
  unix://*) sock="${DOCKER_HOST#unix://}" ;;
  "") ;;
  *) echo "ensure-docker: DOCKER_HOST=${DOCKER_HOST} is not a unix socket; only unix:// is supported" >&2; exit 1 ;;
esac

fail() { echo "ensure-docker: $*" >&2; exit 1; }

# docker CLI and daemon answering already? Nothing to do.
if command -v docker >/dev/null 2>&1 && docker -H "unix://${sock}" info >/dev/null 2>&1; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  if [ "$(id -u)" != "0" ]; then
    fail "dockerd is not installed and installing docker.io needs root"
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || fail "apt-get update failed"
  apt-get install -y -qq docker.io >/dev/null 2>&1 || fail "apt-get install docker.io failed"
  command -v dockerd >/dev/null 2>&1 || fail "dockerd still missing after installing docker.io"
fi

if docker -H "unix://${sock}" info >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" != "0" ]; then
  fail "no Docker engine answers on ${sock} and starting dockerd needs root"
fi

# A stale socket or pid file from a dead daemon would block a new one.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null; then
  rm -f /var/run/docker.pid
fi
if ! pgrep -x dockerd >/dev/null 2>&1; then
  rm -f "${sock}"
  # Plain `dockerd` works on this machine kind (cgroup v1, overlay2 on ext4, iptables available).
  # A sandbox without iptables or overlay support gets a second try with conservative flags.
  nohup dockerd -H "unix://${sock}" >>"${log}" 2>&1 </dev/null &
fi

wait_for_engine() {
  for _ in $(seq 1 "$1"); do
    if docker -H "unix://${sock}" info >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  return 1
}

if wait_for_engine 30; then
  exit 0
fi

# Second attempt with flags for restricted sandboxes, only when our daemon died.
if ! pgrep -x dockerd >/dev/null 2>&1; then
  rm -f "${sock}" /var/run/docker.pid
  echo "ensure-docker: retrying dockerd with --iptables=false --storage-driver=vfs" >>"${log}"
  nohup dockerd -H "unix://${sock}" --iptables=false --ip-masq=false --storage-driver=vfs >>"${log}" 2>&1 </dev/null &
  if wait_for_engine 30; then
    exit 0
  fi
fi

fail "Docker engine did not answer on ${sock} within 30 s (see ${log}: $(tail -n 1 "${log}" 2>/dev/null))"
