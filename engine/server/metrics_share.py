"""`/metrics` summed over the workers of `livecart serve --workers N` (docs/api.md §
GET /metrics, docs/deploy.md § Scraping metrics).

The supervisor (engine/server/workers.py) makes a fresh directory for the run (`make_dir`: in
/dev/shm when there is one) and gives every worker its path and a file name of its own
(one per start: a restarted worker gets a new one). In it:

- `<name>.json`: a live worker's samples (`Metrics.snapshot`, orjson). The worker writes
  it at its start, every SNAPSHOT_INTERVAL_S, and once more when it stops, each time to a
  temporary file renamed over the last one, so a reader sees a whole snapshot or the
  previous one. The hot path is untouched: counting stays a dict update in memory.
- `dead.json`: what exited workers leave behind: `{"absorbed": [names], "metrics": ...}`,
  their counters and histograms summed, gauges dropped (a worker's connections close with
  it), as prometheus_client's multiprocess mode does with `mark_process_dead`. When a
  worker exits the supervisor adds its last file to it (`DeadWorkers.absorb`), rewrites it
  (temporary file, rename), then deletes the worker's file.

The worker that takes a scrape first writes its own file, then renders its live values
(the same, nothing runs in between) plus every other file (`SharedMetrics.others`):
counters and histograms summed, each gauge by its `merge` (sum or max). What a scrape
showed is in the files from then on, so counters never go down from one scrape to the
next, whichever workers answer them (Prometheus would read a drop as a reset). A reader
reads the workers' files first and `dead.json` last, and skips the files `dead.json`
names: a file deleted meanwhile is in the `dead.json` it then reads, so an exit is counted
once, never zero or two times. What the other workers counted in the last second may be
missing from a scrape (their files trail by up to SNAPSHOT_INTERVAL_S), and a worker
killed with SIGKILL loses what it counted since its last write (never what a scrape
already showed).

Without the supervisor's environment (`serve` with one worker, `livecart demo`, engines
inside the tests) nothing of this runs: `/metrics` renders the process's registry alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from engine.core.metrics import METRICS, Metrics, Snapshot, add_up

log = logging.getLogger("livecart.metrics")

DIR_ENV = "LIVECART_METRICS_DIR"  # set by the supervisor for its workers only
NAME_ENV = "LIVECART_METRICS_NAME"
SNAPSHOT_INTERVAL_S = 1.0
SUFFIX = ".json"
DEAD = "dead"


SHM = Path("/dev/shm")


def make_dir() -> Path:
    """A fresh directory for one supervisor's run (removed by `remove_dir`): in memory
    (/dev/shm) where there is one, so a write costs no disk I/O (about 0.1 ms for a
    few rooms, against about 1 ms on a disk), else in the temporary directory."""
    memory = SHM.is_dir() and os.access(SHM, os.W_OK | os.X_OK)
    return Path(tempfile.mkdtemp(prefix="livecart-metrics-", dir=SHM if memory else None))


def remove_dir(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def _write(directory: Path, name: str, data: dict[str, Any]) -> None:
    """`<name>.json`, whole or not at all: written aside, then renamed over the old one."""
    temporary = directory / f".{name}.tmp"
    temporary.write_bytes(orjson.dumps(data))
    os.replace(temporary, directory / f"{name}{SUFFIX}")


def _read(path: Path) -> dict[str, Any] | None:
    """A file's content; None once it is gone (or unreadable, logged)."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        log.warning("metrics file left out: %s", exc, extra={"path": str(path)})
        return None
    return data if isinstance(data, dict) else None


def read_all(directory: Path, skip: str = "") -> list[Snapshot]:
    """Every worker's snapshot in `directory` but `skip`'s, and what the dead left."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    live: dict[str, Snapshot] = {}
    for file_name in names:
        name = file_name.removesuffix(SUFFIX)
        if not file_name.endswith(SUFFIX) or file_name.startswith(".") or name in (skip, DEAD):
            continue
        data = _read(directory / file_name)
        if data is not None:
            live[name] = data.get("metrics", {})
    # Last: a worker's file deleted after the listing is in this one.
    dead = _read(directory / f"{DEAD}{SUFFIX}") or {}
    absorbed = set(dead.get("absorbed", ()))
    found = [snapshot for name, snapshot in live.items() if name not in absorbed]
    if dead:
        found.append(dead.get("metrics", {}))
    return found


class SharedMetrics:
    """A worker's side: writes its snapshot, reads the others' when scraped."""

    def __init__(self, directory: Path, name: str, metrics: Metrics = METRICS) -> None:
        self.directory = directory
        self.name = name
        self.metrics = metrics

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SharedMetrics | None:
        env = os.environ if env is None else env
        directory, name = env.get(DIR_ENV), env.get(NAME_ENV)
        return cls(Path(directory), name) if directory and name else None

    def write(self) -> bool:
        """Write this worker's file now; False (logged) when it could not be written."""
        data = {"pid": os.getpid(), "metrics": self.metrics.snapshot()}
        try:
            _write(self.directory, self.name, data)
        except OSError as exc:  # a full or removed directory: the next write may do
            log.warning("metrics snapshot not written: %s", exc)
            return False
        return True

    def others(self) -> list[Snapshot]:
        """The other files, read for a scrape after writing this worker's own: so what a
        scrape shows of a worker is in its file by then, and the next scrape, whichever
        worker takes it, never shows less (a counter going down reads as a reset)."""
        self.write()
        return read_all(self.directory, skip=self.name)

    async def run(self, interval_s: float = SNAPSHOT_INTERVAL_S) -> None:
        """Write the snapshot every `interval_s` until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            self.write()

    def install(self) -> None:
        """Make this process's `/metrics` answer for the whole server."""
        self.metrics.peers = self.others


class DeadWorkers:
    """The supervisor's side: folds an exited worker's last snapshot into `dead.json`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.absorbed: list[str] = []
        self.totals: Snapshot = {}

    def absorb(self, name: str) -> None:
        path = self.directory / f"{name}{SUFFIX}"
        data = _read(path)
        self.absorbed.append(name)
        if data is not None:
            self.totals = add_up([self.totals, data.get("metrics", {})])
        _write(self.directory, DEAD, {"absorbed": self.absorbed, "metrics": self.totals})
        path.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (self.directory / f".{name}.tmp").unlink()  # killed in the middle of a write
