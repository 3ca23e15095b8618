#!/usr/bin/env bash
# Builds the tiny test image crowsnest-test/busybox:latest with `docker import` from a rootfs
# holding Debian's static busybox (no registry needed). Idempotent: does nothing when the
# image exists. Needs a running engine (see scripts/ensure-docker.sh).
set -eu

image="crowsnest-test/busybox:latest"
fail() { echo "build-test-image: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || fail "docker CLI not found"
docker info >/dev/null 2>&1 || fail "no Docker engine answers (run scripts/ensure-docker.sh first)"

if docker image inspect "${image}" >/dev/null 2>&1; then
  exit 0
fi

busybox=/bin/busybox
if [ ! -x "${busybox}" ] || ! "${busybox}" --list >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || fail "apt-get update failed"
  apt-get install -y -qq busybox-static >/dev/null 2>&1 || fail "apt-get install busybox-static failed"
fi
[ -x "${busybox}" ] || fail "${busybox} missing after installing busybox-static"
if ldd "${busybox}" >/dev/null 2>&1; then
  fail "${busybox} is dynamically linked; the test image needs busybox-static"
fi

rootfs="$(mktemp -d /tmp/crowsnest-test-rootfs.XXXXXX)"
trap 'rm -rf "${rootfs}"' EXIT
mkdir -p "${rootfs}"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root,var/run}
chmod 1777 "${rootfs}/tmp"
cp "${busybox}" "${rootfs}/bin/busybox"
for applet in $("${busybox}" --list); do
  [ "${applet}" = "busybox" ] && continue
  ln -sf busybox "${rootfs}/bin/${applet}"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"${rootfs}/etc/passwd"
echo 'root:x:0:' >"${rootfs}/etc/group"

tar -C "${rootfs}" -c . | docker import \
  --change 'CMD ["/bin/sh"]' \
  --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
  --message "crowsnest test image (Debian busybox-static)" \
  - "${image}" >/dev/null || fail "docker import failed"

docker image inspect "${image}" >/dev/null 2>&1 || fail "image ${image} missing after import"
