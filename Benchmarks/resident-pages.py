#!/usr/bin/env python3
"""Where a running program's resident memory is: its executable's resident pages by ELF section and by the
module their code belongs to (Swift module, BoringSSL copy, Swift runtime), from /proc/PID/pagemap.

Usage (as root, which /proc/PID/pagemap needs for other processes):
    Benchmarks/resident-pages.py PID [EXECUTABLE]

Reads /proc/PID/maps for the executable's mappings and /proc/PID/pagemap for which of their pages are present,
then attributes each resident page to the ELF section and to the symbol at its middle (`nm -n`). The figures
are pages mapped into the process, which is what VmRSS counts (the kernel maps up to 16 neighbouring cached
pages on each fault, so a touched function costs its whole 64 KiB neighbourhood).
"""
import collections
import os
import re
import struct
import subprocess
import sys

PAGE = os.sysconf("SC_PAGE_SIZE")


def mappings(pid, path):
    result = []
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and os.path.realpath(fields[5]) == path:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                result.append((start, end, fields[1], int(fields[2], 16)))
    return result


def resident_pages(pid, start, end):
    pages = []
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        pagemap.seek(start // PAGE * 8)
        data = pagemap.read((end - start) // PAGE * 8)
    for index in range(len(data) // 8):
        (entry,) = struct.unpack_from("<Q", data, index * 8)
        if entry >> 63:
            pages.append(start + index * PAGE)
    return pages


def sections(path):
    """(file offset start, end, name) of allocated sections."""
    out = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True, check=True).stdout
    result = []
    for line in out.splitlines():
        match = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+\S+\s+(\S*)", line)
        if match and "A" in match.group(5):
            name, offset, size = match.group(1), int(match.group(3), 16), int(match.group(4), 16)
            result.append((offset, offset + size, name))
    return sorted(result)


def symbols(path):
    """Sorted (virtual address, name) of defined symbols."""
    out = subprocess.run(["nm", "-n", "--defined-only", path], capture_output=True, text=True).stdout
    result = []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTrRdDbBwWvV":
            result.append((int(parts[0], 16), parts[2]))
    return result


def module(symbol):
    match = re.match(r"_?\$s(\d+)([A-Za-z_][A-Za-z0-9_]*)", symbol)
    if match:
        return match.group(2)[: int(match.group(1))]
    if symbol.startswith(("$sS", "_$sS", "$ss", "_$ss")):
        return "Swift"
    for prefix, name in (("CNIOBoringSSL_", "BoringSSL (swift-nio-ssl copy)"),
                         ("CCryptoBoringSSL_", "BoringSSL (swift-crypto copy)"),
                         ("swift_", "Swift runtime"), ("_swift_", "Swift runtime"), ("_ZN5swift", "Swift runtime"),
                         ("_ZN", "C++"), ("__", "compiler support")):
        if symbol.startswith(prefix):
            return name
    return "other C"


def main():
    pid = sys.argv[1]
    path = os.path.realpath(sys.argv[2] if len(sys.argv) > 2 else f"/proc/{pid}/exe")
    maps = mappings(pid, path)
    if not maps:
        sys.exit(f"{path} is not mapped by process {pid}")
    # Virtual address in the file's own numbering = offset-relative: vaddr(file) = offset + (first load's vaddr - 0).
    by_section = collections.Counter()
    by_module = collections.Counter()
    table = symbols(path)
    addresses = [address for address, _ in table]
    section_table = sections(path)
    # A position-independent executable's symbols are relative to where it was loaded; a fixed one's are absolute.
    header = subprocess.run(["readelf", "-h", path], capture_output=True, text=True, check=True).stdout
    base = 0 if re.search(r"Type:\s+EXEC", header) else min(start - offset for start, _, _, offset in maps)
    import bisect
    total = 0
    for start, end, _, offset in maps:
        for page in resident_pages(pid, start, end):
            total += PAGE
            file_offset = page - start + offset
            name = next((n for s, e, n in section_table if s <= file_offset + PAGE // 2 < e), "(headers/padding)")
            by_section[name] += PAGE
            if name in (".text", ".rodata", ".data.rel.ro", ".data", ".eh_frame"):
                virtual = page - base + PAGE // 2
                index = bisect.bisect_right(addresses, virtual) - 1
                by_module[module(table[index][1]) if index >= 0 else "?"] += PAGE
    print(f"{total / 1048576:.1f} MiB of {path} resident in process {pid}")
    print("by section:")
    for name, size in by_section.most_common(12):
        print(f"  {size / 1048576:6.1f} MiB  {name}")
    print("by module (symbol at the middle of each resident page of .text, .rodata, .data*, .eh_frame):")
    for name, size in by_module.most_common(25):
        print(f"  {size / 1048576:6.1f} MiB  {name}")


if __name__ == "__main__":
    main()
