#!/usr/bin/env bash
# Builds crowsnest-agent the way it is installed on hosts, and prints the path of the binary.
#
#   --static-swift-stdlib      the Swift runtime and FoundationEssentials inside the binary; with libstdc++ linked
#                              in as well (below) the host needs only glibc and libgcc_s (any Debian 11+/Ubuntu
#                              20.04+ VPS)
#   -Xlinker --no-export-dynamic
#                              no dynamic symbol table for the agent's own code (nothing loads plugins into it)
#   -no-pie                    a fixed-address executable: no 82,000 start-up relocations and no relocated copies
#                              of Swift metadata; the heap, stack, mmap areas and shared libraries stay randomised
#                              (Go builds its agents this way by default)
#   -Osize                     Swift code optimised for size: a fifth less machine code to page in
#   lld --symbol-ordering-file agent/text-order.txt
#                              the functions a running agent executes placed together at the start of .text
#                              (C compiled with -ffunction-sections so each can be placed): the kernel maps code
#                              64 KiB around every page faulted in, so packed they fault in a small block instead
#                              of most of .text. scripts/generate-text-order.sh regenerates the list;
#                              TEXT_ORDER=none builds without it.
#
# Together they keep about 7 MiB of relocation, symbol-table, dirtied metadata and code pages out of the agent's
# resident memory (docs/BENCHMARKS.md, section 1). Built in its own scratch directory so these flags do not force
# rebuilds of the default debug/release builds. Set PIE=1 for a position-independent build.
set -euo pipefail
cd "$(dirname "$0")/.."
flags=(-c release --scratch-path .build-agent --product crowsnest-agent --static-swift-stdlib
       -Xlinker --no-export-dynamic)
[ "${PIE:-0}" = 1 ] || flags+=(-Xswiftc -Xclang-linker -Xswiftc -no-pie)
flags+=(-Xswiftc -Osize -Xcc -ffunction-sections -Xswiftc -use-ld=lld)
if [ "${STATIC_CXX:-1}" = 1 ]; then
  # The toolchain links with -lstdc++: a directory holding only libstdc++.a, searched before the compiler's,
  # answers it with the static library.
  # The toolchain's own clang, beside swift, asked which libstdc++.a its links use.
  toolchain_clang="$(dirname "$(readlink -f "$(command -v swift)")")/clang"
  archive=$("$toolchain_clang" -print-file-name=libstdc++.a 2>/dev/null || true)
  if [ -f "$archive" ]; then
    mkdir -p .build-agent/static-libstdc++
    ln -sf "$archive" .build-agent/static-libstdc++/libstdc++.a
    flags+=(-Xlinker -L"$(pwd)/.build-agent/static-libstdc++")
  else
    echo "build-agent: libstdc++.a not found (Debian: libstdc++-12-dev); linking libstdc++ dynamically, so hosts need libstdc++ too (the release smoke test refuses such a binary)" >&2
    rm -f .build-agent/static-libstdc++/libstdc++.a
  fi
fi
order="$(pwd)/agent/text-order.txt"
if [ "${TEXT_ORDER:-}" != none ] && [ -f "$order" ]; then
  flags+=(-Xlinker "--symbol-ordering-file=$order" -Xlinker --no-warn-symbol-ordering)
  # SwiftPM does not know the list is an input of the link: relink when it is newer than the binary.
  binary="$(swift build "${flags[@]}" --show-bin-path)/crowsnest-agent"
  [ ! -e "$binary" ] || [ ! "$order" -nt "$binary" ] || rm -f "$binary"
fi
swift build "${flags[@]}" >&2
echo "$(swift build "${flags[@]}" --show-bin-path)/crowsnest-agent"
