#!/usr/bin/env python3
"""Prints the cgroup-reader file list for the given container init PIDs: the files the agent reads per sweep.

    file-list.py PID...

Host: /proc/stat, meminfo, loadavg, uptime, boot_id, net/dev and /proc/1/mounts, plus statvfs of every
block-device filesystem in that table (what HostReader measures). Per container: its cgroup v2 directory's
cpu.stat, memory.current, memory.max, memory.stat, io.stat, pids.current, or on cgroup v1 cpuacct.usage,
cpu.stat, memory.usage_in_bytes, memory.limit_in_bytes, memory.stat, the two recursive blkio throttle files and
pids.current (what CgroupV2Reader / CgroupV1Reader read), and /proc/<pid>/net/dev.
"""
import os
import sys

CGROUP = "/sys/fs/cgroup"
V1_FILES = [("cpuacct", "cpuacct.usage"), ("cpu", "cpu.stat"), ("memory", "memory.usage_in_bytes"),
            ("memory", "memory.limit_in_bytes"), ("memory", "memory.stat"),
            ("blkio", "blkio.throttle.io_service_bytes_recursive"), ("blkio", "blkio.throttle.io_serviced_recursive"),
            ("pids", "pids.current")]
V2_FILES = ["cpu.stat", "memory.current", "memory.max", "memory.stat", "io.stat", "pids.current"]

mounts = [line.split() for line in open("/proc/1/mounts")]
print("host /proc/stat /proc/meminfo /proc/loadavg /proc/uptime /proc/sys/kernel/random/boot_id /proc/net/dev "
      "/proc/1/mounts")
seen_devices = set()
measured = []
for device, mountpoint, *_ in mounts:
    if device.startswith("/dev/") and device not in seen_devices:
        seen_devices.add(device)
        measured.append(mountpoint)
if measured:
    print("statvfs " + " ".join(measured))

v2 = os.path.exists(CGROUP + "/cgroup.controllers")
controller_mounts = {}
for device, mountpoint, fstype, options, *_ in mounts:
    if fstype == "cgroup":
        for option in options.split(","):
            controller_mounts.setdefault(option, mountpoint)

for pid in sys.argv[1:]:
    paths = {}
    for line in open(f"/proc/{pid}/cgroup"):
        hierarchy, controllers, path = line.rstrip("\n").split(":", 2)
        for controller in (controllers.split(",") if controllers else [""]):
            paths[controller] = path
    if v2:
        files = [f"{CGROUP}{paths['']}/{name}" for name in V2_FILES]
    else:
        files = [f"{controller_mounts[c]}{paths[c]}/{name}" for c, name in V1_FILES if c in paths and c in controller_mounts]
    files.append(f"/proc/{pid}/net/dev")
    print("container " + " ".join(files))
