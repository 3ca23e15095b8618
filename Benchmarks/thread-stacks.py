#!/usr/bin/env python3
"""Resident stack of every thread of a process: which thread's stack holds how much memory.

    Benchmarks/thread-stacks.py PID

A thread blocked in a system call shows its stack pointer in /proc/PID/task/TID/syscall; the private mapping
holding that address is its stack, and the mapping's Rss in /proc/PID/smaps is what the stack keeps resident.
Threads that are running (no stack pointer shown) are listed without a figure.
"""
import re
import sys

pid = sys.argv[1]
mappings = []  # (start, end, rss_kib)
current = None
for line in open(f"/proc/{pid}/smaps"):
    m = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
    if m:
        current = [int(m.group(1), 16), int(m.group(2), 16), 0]
        mappings.append(current)
    elif line.startswith("Rss:") and current is not None:
        current[2] = int(line.split()[1])

import os
for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
    name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
    try:
        fields = open(f"/proc/{pid}/task/{tid}/syscall").read().split()
    except OSError:
        fields = []
    if len(fields) >= 8:
        sp = int(fields[-2], 16)
        found = next((m for m in mappings if m[0] <= sp < m[1]), None)
        if found:
            print(f"{found[2]:8d} KiB resident of {(found[1] - found[0]) // 1024:8d} KiB stack  thread {tid} {name}")
            continue
    print(f"{'?':>8s}                                    thread {tid} {name} (running)")
