#!/usr/bin/env bash
# Builds the Crowsnest images on crowsnest-base:bookworm (deploy/build-base-image.sh, made once with debootstrap;
# no registry is needed): crowsnest-server (with the agent downloads for the one-line install),
# crowsnest-agent, and for the compose stacks crowsnest-postgres (PostgreSQL 15) and crowsnest-haproxy.
#   deploy/build-images.sh [--debug] [TAG]        (default tag: latest)
# Release (default): the server built with --static-swift-stdlib and the agent with scripts/build-agent.sh; build
# on Debian 12 or older (the images' glibc is Debian 12's).
# --debug: the debug binaries of .build/debug (swift build), with the Swift runtime they link copied into the
# images where their RUNPATH points. Quick to make, large and slow: for tests, never for production.
set -euo pipefail
die() { echo "build-images.sh: $*" >&2; exit 1; }
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DEBUG=0
if [ "${1:-}" = --debug ]; then DEBUG=1; shift; fi
TAG="${1:-latest}"
command -v swift >/dev/null || die "the Swift toolchain is missing (swift not on PATH)"
command -v docker >/dev/null || die "docker is missing"
deploy/build-base-image.sh || die "the base image could not be built"

rm -rf server/dist agent/dist
mkdir -p server/dist/swift-runtime server/dist/agent-downloads agent/dist/swift-runtime
RUNTIME_DIR=/opt/swift/usr/lib/swift/linux
if [ "$DEBUG" -eq 1 ]; then
  # The debug binaries as they are (swift build, or swift build --build-tests): building here with other flags
  # than the test build's would rebuild everything and replace the binaries the tests are running.
  BIN="${CROWSNEST_BIN_DIR:-.build/debug}"
  for binary in crowsnest-server crowsnest-agent; do
    [ -x "$BIN/$binary" ] || die "$BIN/$binary is missing: run 'swift build' first (or set CROWSNEST_BIN_DIR)"
  done
  SERVER="$BIN/crowsnest-server"
  AGENT="$BIN/crowsnest-agent"
  # The runtime libraries the binaries load from the toolchain, at the path their RUNPATH names.
  RUNTIME_DIR="$(readelf -d "$SERVER" | sed -n 's/.*R\(UN\)\{0,1\}PATH.*\[\([^:]*\).*/\2/p' | head -n 1)"
  [ -d "$RUNTIME_DIR" ] || die "cannot find the Swift runtime the debug binaries link ($RUNTIME_DIR)"
  for binary in "$SERVER" "$AGENT"; do
    ldd "$binary" | awk -v dir="$RUNTIME_DIR/" 'index($3, dir) == 1 { print $3 }'
  done | sort -u | while read -r library; do cp -L "$library" server/dist/swift-runtime/; done
  cp server/dist/swift-runtime/* agent/dist/swift-runtime/ 2>/dev/null || true
else
  FLAGS=(-c release --static-swift-stdlib)
  echo "building crowsnest-server (release)..."
  swift build "${FLAGS[@]}" --product crowsnest-server >/dev/null || die "swift build of crowsnest-server failed; run 'swift build ${FLAGS[*]} --product crowsnest-server' to see why"
  BIN="$(swift build "${FLAGS[@]}" --show-bin-path)"
  SERVER="$BIN/crowsnest-server"
  echo "building crowsnest-agent (scripts/build-agent.sh)..."
  AGENT="$(scripts/build-agent.sh 2>/dev/null)" || die "the agent build failed; run scripts/build-agent.sh to see why"
  for binary in "$SERVER" "$AGENT"; do
    if ldd "$binary" | grep -q 'libswiftCore'; then
      die "$binary links the Swift runtime dynamically; it would not run in the image"
    fi
  done
fi
[ -d "$BIN/crowsnest_CrowsnestServer.resources" ] || die "$BIN/crowsnest_CrowsnestServer.resources (the server's migrations) is missing"
cp -R "$BIN/crowsnest_CrowsnestServer.resources" server/dist/
if [ "$DEBUG" -eq 1 ]; then
  # Debug binaries without their DWARF sections (function names stay, for backtraces): a third smaller, about
  # 120 MB less per build across the two images (measured: server 154 -> 105 MB, agent 108 -> 72 MB); the
  # disks of CI machines are shared and have run full during this build.
  command -v strip >/dev/null || die "strip (binutils) is missing"
  strip --strip-debug -o server/dist/crowsnest-server "$SERVER"
  strip --strip-debug -o agent/dist/crowsnest-agent "$AGENT"
else
  cp "$SERVER" server/dist/crowsnest-server
  cp "$AGENT" agent/dist/crowsnest-agent
fi
cp agent/dist/crowsnest-agent server/dist/agent-downloads/crowsnest-agent
cp agent/install.sh agent/crowsnest-agent.service agent/agent.yaml server/dist/agent-downloads/

build() {  # NAME CONTEXT
  docker build -q --build-arg "SWIFT_RUNTIME_DIR=$RUNTIME_DIR" -t "$1:$TAG" "$2" >/dev/null \
    || die "docker build of $1 failed; run 'docker build -t $1:$TAG $2' to see why"
  echo "built $1:$TAG"
}
build crowsnest-server server
build crowsnest-agent agent
build crowsnest-postgres deploy/postgres
build crowsnest-haproxy deploy/haproxy
