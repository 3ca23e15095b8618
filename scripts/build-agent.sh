#!/usr/bin/env bash
# Builds crowsnest-agent the way it is installed on hosts, and prints the path of the binary.
#
#   --static-swift-stdlib      the Swift runtime and FoundationEssentials inside the binary: the host needs only
#                              glibc and libstdc++ (any Debian 11+/Ubuntu 20.04+ VPS)
#   -Xlinker --no-export-dynamic
#                              no dynamic symbol table for the agent's own code (nothing loads plugins into it)
#   -no-pie                    a fixed-address executable: no 82,000 start-up relocations and no relocated copies
#                              of Swift metadata; the heap, stack, mmap areas and shared libraries stay randomised
#                              (Go builds its agents this way by default)
#
# Together the last two keep about 5 MiB of relocation, symbol-table and dirtied metadata pages out of the
# agent's resident memory (docs/BENCHMARKS.md, section 1). Built in its own scratch directory so these linker
# flags do not force rebuilds of the default debug/release builds. Set PIE=1 for a position-independent build.
set -euo pipefail
cd "$(dirname "$0")/.."
flags=(-c release --scratch-path .build-agent --product crowsnest-agent --static-swift-stdlib
       -Xlinker --no-export-dynamic)
[ "${PIE:-0}" = 1 ] || flags+=(-Xswiftc -Xclang-linker -Xswiftc -no-pie)
swift build "${flags[@]}" >&2
echo "$(swift build "${flags[@]}" --show-bin-path)/crowsnest-agent"
