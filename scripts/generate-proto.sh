#!/usr/bin/env bash
# Regenerates Sources/CrowsnestWire/Generated from proto/ with Debian's protoc
# and swift-protobuf's protoc-gen-swift (built once: see README "Wire contract").
# Also records the proto files' checksum; a test fails when they drift apart.
set -euo pipefail
cd "$(dirname "$0")/.."
PLUGIN="${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}"
if [ -z "$PLUGIN" ]; then
  echo "protoc-gen-swift not found: build it with 'swift build -c release --product protoc-gen-swift' in a checkout of swift-protobuf 1.39.0 and set PROTOC_GEN_SWIFT" >&2
  exit 1
fi
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
OUT=Sources/CrowsnestWire/Generated
mkdir -p "$OUT"
rm -f "$OUT"/*.pb.swift
protoc --plugin=protoc-gen-swift="$PLUGIN" --swift_opt=Visibility=Public \
  --swift_out="$OUT" -I proto proto/crowsnest/v1/*.proto
# flatten crowsnest/v1/x.pb.swift into Generated/
find "$OUT" -mindepth 2 -name '*.pb.swift' -exec mv {} "$OUT"/ \;
find "$OUT" -mindepth 1 -type d -empty -delete
( cd proto && find . -name '*.proto' | LC_ALL=C sort | xargs sha256sum ) > "$OUT/proto.sha256"
echo "generated $(ls "$OUT"/*.pb.swift | wc -l) file(s) into $OUT"
