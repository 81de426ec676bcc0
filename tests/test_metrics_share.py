"""engine.server.metrics_share: the files through which one scrape of `serve --workers N` adds up
every worker (the real server: tests/test_workers.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import orjson

from engine.core.metrics import Metrics
from engine.server.metrics_share import (
    DEAD,
    SHM,
    SUFFIX,
    DeadWorkers,
    SharedMetrics,
    make_dir,
    read_all,
    remove_dir,
)
from tests.conftest import eventually
from tests.test_metrics import engine_part, parse


def worker(directory: Path, name: str, connections: float, frames: float) -> SharedMetrics:
    metrics = Metrics()
    metrics.connections.read = lambda: {("json",): connections}
    metrics.frames_sent.inc(frames, "tick")
    return SharedMetrics(directory, name, metrics)


def value(text: str, family: str) -> float:
    """The one sample of `family` in an exposition text (0 when it has none)."""
    samples = parse(text)[family][1]
    assert len(samples) <= 1, samples
    return samples[0][2] if samples else 0.0


def test_a_scrape_adds_the_other_workers_files(tmp_path: Path) -> None:
    one = worker(tmp_path, "worker-0-1", connections=2, frames=10)
    two = worker(tmp_path, "worker-1-2", connections=3, frames=20)
    one.write()
    two.write()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["worker-0-1.json", "worker-1-2.json"]
    one.install()
    two.install()
    # Whichever worker is scraped: its live values plus the other's file.
    text = two.metrics.render()
    assert value(text, "livecart_frames_sent_total") == 30
    assert value(text, "livecart_open_connections") == 5
    one.metrics.frames_sent.inc(1, "tick")  # not in worker one's file yet
    assert value(two.metrics.render(), "livecart_frames_sent_total") == 30
    # A scrape of worker one writes its file first: what one scrape showed, the next
    # shows too, whichever worker takes it (a counter never goes down).
    assert value(one.metrics.render(), "livecart_frames_sent_total") == 31
    assert value(two.metrics.render(), "livecart_frames_sent_total") == 31
    # The same text, but for the process's own series, read from /proc at each render.
    assert engine_part(two.metrics.render()) == engine_part(one.metrics.render())


def test_an_exited_worker_keeps_its_counts_and_loses_its_gauges(tmp_path: Path) -> None:
    survivor = worker(tmp_path, "worker-0-1", connections=2, frames=10)
    exited = worker(tmp_path, "worker-1-2", connections=3, frames=20)
    survivor.write()
    exited.write()
    dead = DeadWorkers(tmp_path)
    dead.absorb("worker-1-2")
    assert not (tmp_path / f"worker-1-2{SUFFIX}").exists()
    text = survivor.metrics.render(survivor.others())
    assert value(text, "livecart_frames_sent_total") == 30
    assert value(text, "livecart_open_connections") == 2

    # Its replacement (a new name), then that one exits too: both exits stay counted.
    replacement = worker(tmp_path, "worker-1-3", connections=1, frames=5)
    replacement.write()
    assert value(survivor.metrics.render(survivor.others()), "livecart_open_connections") == 3
    dead.absorb("worker-1-3")
    dead.absorb("worker-1-4")  # one that died before its first write: nothing to add
    text = survivor.metrics.render(survivor.others())
    assert value(text, "livecart_frames_sent_total") == 35
    assert value(text, "livecart_open_connections") == 2
    kept = orjson.loads((tmp_path / f"{DEAD}{SUFFIX}").read_bytes())
    assert kept["absorbed"] == ["worker-1-2", "worker-1-3", "worker-1-4"]
    assert "livecart_open_connections" not in kept["metrics"]


def test_an_exit_is_counted_once_while_dead_json_is_rewritten(tmp_path: Path) -> None:
    """Between rewriting dead.json and deleting the worker's file a reader sees both: the
    file is skipped. A file already deleted is in the dead.json read after it."""
    survivor = worker(tmp_path, "worker-0-1", connections=2, frames=10)
    exited = worker(tmp_path, "worker-1-2", connections=3, frames=20)
    survivor.write()
    exited.write()
    left = (tmp_path / f"worker-1-2{SUFFIX}").read_bytes()
    DeadWorkers(tmp_path).absorb("worker-1-2")
    (tmp_path / f"worker-1-2{SUFFIX}").write_bytes(left)  # as if not yet deleted
    totals = Metrics()
    assert value(totals.render(read_all(tmp_path)), "livecart_frames_sent_total") == 30
    assert value(totals.render(read_all(tmp_path)), "livecart_open_connections") == 2


def test_files_that_are_not_snapshots_are_left_out(tmp_path: Path) -> None:
    one = worker(tmp_path, "worker-0-1", connections=2, frames=10)
    one.write()
    (tmp_path / ".worker-1-2.tmp").write_bytes(b'{"metrics": {"livecart_')  # a write under way
    (tmp_path / "notes.txt").write_text("not a snapshot")
    (tmp_path / f"broken{SUFFIX}").write_bytes(b"{not json")
    (tmp_path / f"list{SUFFIX}").write_bytes(b"[1, 2]")
    snapshots = read_all(tmp_path)
    assert len(snapshots) == 1
    assert read_all(tmp_path, skip="worker-0-1") == []
    assert read_all(tmp_path / "gone") == []


def test_from_env_only_in_a_supervised_worker(tmp_path: Path) -> None:
    assert SharedMetrics.from_env({}) is None
    assert SharedMetrics.from_env({"LIVECART_METRICS_DIR": str(tmp_path)}) is None
    shared = SharedMetrics.from_env(
        {"LIVECART_METRICS_DIR": str(tmp_path), "LIVECART_METRICS_NAME": "worker-0-1"}
    )
    assert shared is not None
    assert (shared.directory, shared.name) == (tmp_path, "worker-0-1")


async def test_the_writer_keeps_the_file_fresh(tmp_path: Path) -> None:
    shared = worker(tmp_path, "worker-0-1", connections=0, frames=1)
    task = asyncio.create_task(shared.run(interval_s=0.01))
    try:
        path = tmp_path / f"worker-0-1{SUFFIX}"
        await eventually(path.exists)
        shared.metrics.frames_sent.inc(1, "tick")
        await eventually(
            lambda: value(Metrics().render(read_all(tmp_path)), "livecart_frames_sent_total") == 2
        )
        remove_dir(tmp_path)  # a write that fails is logged, and the writer goes on
        await asyncio.sleep(0.05)
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_make_and_remove_dir() -> None:
    directory = make_dir()
    assert directory.stat().st_mode & 0o777 == 0o700  # the engine's user's only
    if SHM.is_dir() and os.access(SHM, os.W_OK):
        assert directory.parent == SHM  # in memory: a write costs no disk I/O
    worker(directory, "worker-0-1", connections=1, frames=1).write()
    DeadWorkers(directory).absorb("worker-0-1")
    remove_dir(directory)
    assert not directory.exists()
