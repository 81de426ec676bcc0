"""Small measurement helpers for the benchmarks: percentiles and /proc readings."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence

# Linux's CPU-time clock of a whole process (all its threads, exited ones too), in
# nanoseconds: MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED) from the kernel's headers. The
# ticks of /proc/<pid>/stat are 10 ms: too coarse for a burst that lasts a second.
_CPUCLOCK_SCHED = 2
_TCP_ESTABLISHED = "01"


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank) in the samples' unit, rounded to 0.1."""
    if not samples:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    ordered = sorted(samples)

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))], 1)

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    return time.clock_gettime((~pid << 3) | _CPUCLOCK_SCHED)


def total_cpu_seconds(pids: Sequence[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def cpu_by_process(others: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process, and by this one as "load"."""
    return {**{name: cpu_seconds(pid) for name, pid in others.items()},
            "load": time.process_time()}  # fmt: skip


def process_tree(pid: int) -> list[int]:
    """`pid` and its children (a `serve --workers N` supervisor and its workers)."""
    children = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # gone since the scan began
            with open(f"/proc/{entry.name}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            if parent == pid:
                children.append(int(entry.name))
    return [pid, *sorted(children)]


def connections_per_process(pids: Sequence[int], port: int) -> list[int]:
    """How many established TCP connections to local `port` each process holds (which
    worker the kernel gave each viewer to)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            next(handle)  # the header
            for line in handle:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == _TCP_ESTABLISHED:
                    inodes.add(fields[9])
    counts = []
    for pid in pids:
        held = 0
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):  # closed since the scan began
                link = os.readlink(fd.path)
                held += link.startswith("socket:[") and link[8:-1] in inodes
        counts.append(held)
    return counts


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
