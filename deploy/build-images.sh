#!/usr/bin/env bash
# Builds release binaries with the Swift standard library linked in, stages them
# in server/dist and agent/dist, and builds the crowsnest-server and
# crowsnest-agent images from server/Dockerfile and agent/Dockerfile.
#   deploy/build-images.sh [TAG]        (default tag: latest)
# Needs the Swift toolchain and Docker with BuildKit (Docker 23 or newer).
# Build on Debian 12 (or older): the images' glibc is Debian 12's.
set -euo pipefail
die() { echo "build-images.sh: $*" >&2; exit 1; }
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TAG="${1:-latest}"
command -v swift >/dev/null || die "the Swift toolchain is missing (swift not on PATH)"
command -v docker >/dev/null || die "docker is missing"

FLAGS=(-c release --static-swift-stdlib)
echo "building crowsnest-server (release)..."
swift build "${FLAGS[@]}" --product crowsnest-server >/dev/null || die "swift build of crowsnest-server failed; run 'swift build ${FLAGS[*]} --product crowsnest-server' to see why"
BIN="$(swift build "${FLAGS[@]}" --show-bin-path)"
echo "building crowsnest-agent (scripts/build-agent.sh)..."
AGENT="$(scripts/build-agent.sh 2>/dev/null)" || die "the agent build failed; run scripts/build-agent.sh to see why"
for binary in "$BIN/crowsnest-server" "$AGENT"; do
  if ldd "$binary" | grep -q 'libswiftCore'; then
    die "$binary links the Swift runtime dynamically; it would not run in the image"
  fi
done
[ -d "$BIN/crowsnest_CrowsnestServer.resources" ] || die "$BIN/crowsnest_CrowsnestServer.resources (the server's migrations) is missing"

rm -rf server/dist agent/dist
mkdir -p server/dist agent/dist
cp -R "$BIN/crowsnest-server" "$BIN/crowsnest_CrowsnestServer.resources" server/dist/
cp "$AGENT" agent/dist/

docker build -t "crowsnest-server:$TAG" server || die "docker build of crowsnest-server failed"
docker build -t "crowsnest-agent:$TAG" agent || die "docker build of crowsnest-agent failed"
echo "built crowsnest-server:$TAG and crowsnest-agent:$TAG"
