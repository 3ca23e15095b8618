#!/usr/bin/env bash
# Builds crowsnest-base:bookworm, the one base image of every Crowsnest image and deployment test, without a
# registry: a Debian 12 root filesystem made with debootstrap from Debian's mirror, imported with `docker import`.
# It carries systemd (so a test can boot it as a fresh VPS, with systemd as PID 1), curl and CA certificates.
#   deploy/build-base-image.sh [--force]     (idempotent: does nothing when the image exists, unless --force)
# Needs root, debootstrap (Debian's package) and a running Docker engine. Set DEBIAN_MIRROR to use another mirror.
set -euo pipefail
IMAGE=crowsnest-base:bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
die() { echo "build-base-image.sh: $*" >&2; exit 1; }
command -v docker >/dev/null || die "docker is missing"
docker info >/dev/null 2>&1 || die "no Docker engine answers (run scripts/ensure-docker.sh first)"
if [ "${1:-}" != --force ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi
[ "$(id -u)" = 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"

rootfs="$(mktemp -d /tmp/crowsnest-base-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
log="$rootfs.log"
echo "build-base-image.sh: debootstrap bookworm from $MIRROR (about a minute)..."
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,curl,ca-certificates,procps \
    bookworm "$rootfs" "$MIRROR" >"$log" 2>&1 \
  || die "debootstrap failed (no route to $MIRROR?); its log: $log"
# What makes each container its own machine is created when it boots, not baked in.
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id" "$rootfs/etc/hostname"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
# Units a container cannot or need not run.
for unit in systemd-networkd-wait-online.service systemd-timesyncd.service getty@tty1.service apt-daily.timer \
            apt-daily-upgrade.timer; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
tar -C "$rootfs" -c . | docker import \
    --change 'ENV container=docker' \
    --change 'CMD ["/sbin/init"]' \
    --message "debootstrap bookworm minbase with systemd, curl, ca-certificates" \
    - "$IMAGE" >/dev/null || die "docker import failed"
rm -f "$log"
echo "build-base-image.sh: built $IMAGE"
