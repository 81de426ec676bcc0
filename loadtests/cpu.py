"""CPU used during a load test, in percent of one core: the local engine's, and the load
generator's (every process this one started except the engine and its Redis: locust's
master and forked workers, or the asyncio generator processes).

Forked locust workers are not waited for by this process, so `getrusage(RUSAGE_CHILDREN)`
would miss them; instead a sampler reads /proc twice a second and keeps each process's
first and last CPU reading. A process that exits loses at most its last half second."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import defaultdict

from engine.bench.stats import cpu_seconds

SAMPLE_S = 0.5


def descendants(root: int) -> set[int]:
    """Process ids below `root` in the process tree (Linux /proc)."""
    children: defaultdict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
        children[ppid].append(int(entry))
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


class CpuMeter:
    """`start()` when the load starts, `await stop()` when it ends: the percentages."""

    def __init__(self, engine_pid: int | None, service_pids: set[int]) -> None:
        self.engine_pid = engine_pid
        self.service_pids = service_pids  # the local engine and Redis: not the generator
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.started = 0.0
        self.task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        for pid in descendants(os.getpid()):  # the local engine and Redis among them
            with contextlib.suppress(OSError, ValueError, IndexError):
                seconds = cpu_seconds(pid)
                if pid not in self.first:
                    # There at the start: count from then; started later: count it all.
                    self.first[pid] = 0.0 if self.started else seconds
                self.last[pid] = seconds

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_S)
            self.sample()

    def start(self) -> None:
        self.started = 0.0
        self.sample()
        self.started = time.monotonic()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> dict[str, float | None]:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.sample()
        wall = max(time.monotonic() - self.started, 1e-9)

        def percent(pids: set[int]) -> float:
            used = sum(self.last[pid] - self.first[pid] for pid in pids)
            return round(100 * used / wall, 1)

        generator = set(self.last) - self.service_pids
        engine = percent({self.engine_pid}) if self.engine_pid in self.last else None
        return {"engine_cpu_percent": engine, "generator_cpu_percent": percent(generator)}
