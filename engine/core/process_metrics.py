"""The standard `process_*` series of a Prometheus target, read from /proc at scrape time,
and `livecart_build_info`.

The names, types and units are prometheus_client's process collector's
(`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), so the usual
dashboards and alerts apply, without taking prometheus_client into the engine.

Each series carries `worker`: the process's index under `livecart serve --workers N`
(`LIVECART_WORKER`, 0..N-1), "0" for a process serving alone. A scrape of a server
merges every worker's snapshot (engine/server/metrics_share.py), so one scrape shows one
series per live worker, each process kept apart: `sum without (worker)` gives the
server's. They are gauges to that merge (`engine.core.metrics.Gauge`): an exited worker's
series leave with it rather than being folded into the dead workers' counts, and its
restart starts a new process (CPU from 0, a new start time), which Prometheus reads as
the counter reset it is.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import resource
import time
from pathlib import Path
from typing import Literal

from engine import __version__

LabelValues = tuple[str, ...]
WORKER_ENV = "LIVECART_WORKER"  # the supervisor's name for it (engine/server/workers.py)
PROC = Path("/proc")


def worker_label() -> str:
    return os.environ.get(WORKER_ENV, "0")


def _boot_time(proc: Path) -> float | None:
    try:
        for line in (proc / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = resource.getpagesize()
_BOOT = _boot_time(PROC)


FDS_EVERY_S = 10.0


def open_fds(fd_dir: Path) -> tuple[int, bool]:
    """The number of open descriptors, and whether that was cheap: since Linux 6.2 the
    size of /proc/self/fd says it (3 µs); before, a listing does (about 2.7 ms with 5,000
    viewers' sockets, too slow to repeat at a worker's every-second snapshot, so
    `ProcessReader` then lists at most every FDS_EVERY_S)."""
    size = fd_dir_size(fd_dir)
    return (size, True) if size > 0 else (len(os.listdir(fd_dir)), False)


def fd_dir_size(fd_dir: Path) -> int:
    return os.stat(fd_dir).st_size  # 0 before Linux 6.2


def read(proc: Path = PROC) -> dict[str, float]:
    """This process's figures, by series name, but open descriptors (`open_fds`); those
    /proc cannot give are left out."""
    times = os.times()
    out: dict[str, float] = {"process_cpu_seconds_total": times.user + times.system}
    try:
        stat = (proc / "self" / "stat").read_text()
    except OSError:
        stat = ""
    if stat:
        # Fields after the command name, which is in parentheses and may hold spaces.
        fields = stat[stat.rindex(")") + 2 :].split()
        out["process_virtual_memory_bytes"] = float(fields[20])
        out["process_resident_memory_bytes"] = float(fields[21]) * _PAGE
        if _BOOT is not None:
            out["process_start_time_seconds"] = _BOOT + float(fields[19]) / _TICKS
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        out["process_max_fds"] = float(soft)
    return out


# name -> (type, help), in prometheus_client's words.
SERIES: dict[str, tuple[Literal["gauge", "counter"], str]] = {
    "process_cpu_seconds_total": ("counter", "Total user and system CPU time spent in seconds."),
    "process_virtual_memory_bytes": ("gauge", "Virtual memory size in bytes."),
    "process_resident_memory_bytes": ("gauge", "Resident memory size in bytes."),
    "process_start_time_seconds": (
        "gauge", "Start time of the process since unix epoch in seconds.",
    ),
    "process_open_fds": ("gauge", "Number of open file descriptors."),
    "process_max_fds": ("gauge", "Maximum number of open file descriptors."),
}  # fmt: skip

STARTED = time.time()  # a fallback start time where /proc has none


class ProcessReader:
    """One read of /proc per scrape (or snapshot), shared by the six series."""

    def __init__(self, proc: Path = PROC) -> None:
        self.proc = proc
        self._at = -1.0
        self._last: dict[str, float] = {}
        self._fds: float | None = None
        self._fds_at = -math.inf
        self._fds_cheap = True

    def values(self) -> dict[str, float]:
        now = time.monotonic()
        if now - self._at > 0.01:  # the six callbacks of one render share one read
            self._last = read(self.proc)
            self._last.setdefault("process_start_time_seconds", STARTED)
            if self._fds_cheap or now - self._fds_at >= FDS_EVERY_S:
                self._fds = None
                with contextlib.suppress(OSError):
                    count, self._fds_cheap = open_fds(self.proc / "self" / "fd")
                    self._fds = float(count)
                self._fds_at = now
            if self._fds is not None:
                self._last["process_open_fds"] = self._fds
            self._at = now
        return self._last

    def series(self, name: str) -> dict[LabelValues, float]:
        value = self.values().get(name)
        return {} if value is None else {(worker_label(),): value}


def build_labels() -> LabelValues:
    return (__version__, platform.python_version())
