"""`livecart serve --workers N` as operators run it: N engine processes on one port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from clients import HostClient, ViewerClient
from engine.bench.stats import process_tree
from engine.core.identity import Role
from engine.core.settings import Settings
from engine.rooms import auth
from engine.server.listener import reuseport_socket
from engine.server.metrics_share import SNAPSHOT_INTERVAL_S
from engine.server.workers import Supervisor, worker_env
from engine.store import keys
from tests.conftest import SECRET, eventually, poll
from tests.test_gateway import collect_comments
from tests.test_metrics import parse

LIVECART = [sys.executable, "-m", "engine.cli"]


def children(pid: int) -> list[int]:
    """The processes `pid` started (the bench's reading: a thread or child that ends while
    it looks is not an error)."""
    return process_tree(pid)[1:]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def workers_of(pid: int) -> set[int]:
    return {child for child in children(pid) if "engine.server.workers" in cmdline(child)}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextmanager
def serving_workers(
    tmp_path: Path, *args: str
) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """`livecart serve --port 0 ARGS` with its stderr in a file; yields (process, url, log)."""
    log = tmp_path / "serve.log"
    env = {**os.environ, "LIVECART_SECRET": SECRET}
    env.pop("REDIS_URL", None)
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*LIVECART, "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
        )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on http://" in line, (line, log.read_text())
        workers = args[args.index("--workers") + 1] if "--workers" in args else "1"
        assert line.rstrip().endswith(f"; {workers} workers)" if workers != "1" else "/{room})")
        yield process, line.split("listening on ", 1)[1].split()[0], log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def ready_logged(log: Path, pid: int) -> bool:
    return any(
        "worker ready" in line and f"pid={pid}]" in line for line in log.read_text().splitlines()
    )


async def all_answer(url: str, connections: int = 8) -> None:
    """Fresh connections (each may land on another worker) all get a ready engine."""
    for _ in range(connections):
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            assert (await http.get("/readyz")).json()["ok"] is True


def numsub(redis_url: str, channel: str) -> int:
    """Subscribers of a room's bus (sharded pub/sub: the suite's Redis is 7)."""
    client = redis.Redis.from_url(redis_url)
    try:
        count: int = client.execute_command("PUBSUB", "SHARDNUMSUB", channel)[1]
        return count
    finally:
        client.close()


async def test_workers_share_one_port_fan_out_restart_and_stop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serving_workers(tmp_path, "--workers", "2", "--data-dir", str(data)) as (
        process, url, log
    ):  # fmt: skip
        assert url.startswith("http://127.0.0.1:")
        workers = workers_of(process.pid)
        assert len(workers) == 2, log.read_text()
        redis_url = (data / "redis" / "url").read_text().strip()
        redis_pids = [c for c in children(process.pid) if "redis-server" in cmdline(c)]
        assert len(redis_pids) == 1  # one embedded Redis for all workers
        # Every fresh connection is answered, whichever worker takes it.
        await all_answer(url)

        room = "workers-fanout"
        host_token = auth.mint(SECRET, room=room, role=Role.HOST, user="host-1")
        async with HostClient(url, room, host_token) as host:
            await host.create_room("one port, two workers")
            await host.go_live()
        ws_url = url.replace("http://", "ws://") + "/ws"
        viewer_token = auth.mint(SECRET, room=room, role=Role.VIEWER, user="poster")
        viewers = [ViewerClient(ws_url, room, viewer_token, reconnect=False)]
        try:
            await viewers[0].connect()
            # The kernel spreads connections by a hash: open viewers until both workers
            # have some (each worker then holds its own subscription to the room).
            while len(viewers) < 40 and (
                len(viewers) < 4 or numsub(redis_url, keys.room_bus(room)) < 2
            ):
                viewers.append(ViewerClient(ws_url, room, None, reconnect=False))
                await viewers[-1].connect()
            await eventually(lambda: numsub(redis_url, keys.room_bus(room)) == 2)
            await viewers[0].comment("hello from one worker")
            for viewer in viewers:
                assert await collect_comments(viewer, 1) == ["hello from one worker"]
        finally:
            for viewer in viewers:
                await viewer.close()

        # A worker that dies is replaced; the port keeps serving.
        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        await eventually(lambda: killed not in workers_of(process.pid)
                         and len(workers_of(process.pid)) == 2, timeout_s=20)  # fmt: skip
        (replacement,) = workers_of(process.pid) - workers
        await eventually(lambda: ready_logged(log, replacement), timeout_s=20)
        assert "worker exited; restarting it" in log.read_text()
        await all_answer(url)

        everyone = [*workers_of(process.pid), *redis_pids]
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()
    assert not [pid for pid in everyone if alive(pid)]
    assert not (data / "redis" / "url").exists()


def test_one_worker_is_the_single_process_engine(tmp_path: Path) -> None:
    with serving_workers(tmp_path, "--workers", "1", "--data-dir", str(tmp_path / "data")) as (
        process, url, _
    ):  # fmt: skip
        assert not workers_of(process.pid)
        assert httpx.get(f"{url}/readyz", timeout=10).json()["ok"] is True


def test_workers_must_be_positive() -> None:
    result = subprocess.run([*LIVECART, "serve", "--workers", "0"], capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 2
    assert "--workers" in result.stderr


def test_a_taken_port_is_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match="in use"):
            Supervisor(Settings(port=port, secret=SECRET, redis_url="redis://x"), 2).run()


def test_reuseport_sockets_share_a_port() -> None:
    first = reuseport_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = reuseport_socket("127.0.0.1", port)
    try:
        first.listen()
        second.listen()
        assert second.getsockname()[1] == port
    finally:
        first.close()
        second.close()


def test_worker_env_spells_out_the_settings(tmp_path: Path) -> None:
    settings = Settings(port=1234, redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path,
                        tick_ms=50, metrics=False, secret=SECRET,
                        allowed_origins=("https://a.example", "https://b.example"),
                        handshakes_per_ip_per_s=0)  # fmt: skip
    env = worker_env(settings, 3)
    assert Settings.from_env(env) == settings
    assert env["LIVECART_WORKER"] == "3"
    assert env["LIVECART_SUPERVISOR_PID"] == str(os.getpid())


async def scrape(url: str) -> dict[str, float]:
    """GET /metrics on a fresh connection (so on either worker): `name{labels}` -> value."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    parse(response.text)  # valid exposition text, each family once
    out: dict[str, float] = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


async def processes_apart(url: str) -> dict[str, float]:
    """Every scrape shows one `process_*` series per live worker, told apart by `worker`
    (engine/core/process_metrics.py), and the build once; returns each worker's start time."""
    for _ in range(4):
        values = await scrape(url)
        starts = {k: v for k, v in values.items() if k.startswith("process_start_time_seconds")}
        if set(starts) == {f'process_start_time_seconds{{worker="{i}"}}' for i in (0, 1)}:
            break
        await asyncio.sleep(2 * SNAPSHOT_INTERVAL_S)  # a restarted worker's first file
    assert set(starts) == {f'process_start_time_seconds{{worker="{i}"}}' for i in (0, 1)}
    for worker in ("0", "1"):
        assert values[f'process_resident_memory_bytes{{worker="{worker}"}}'] > 1e6
        assert values[f'process_cpu_seconds_total{{worker="{worker}"}}'] > 0
    (build,) = [k for k in values if k.startswith("livecart_build_info")]
    assert values[build] == 1  # not summed over the workers
    return starts


async def scrapes_agree(url: str, expected: Callable[[], dict[str, float]], times: int = 8) -> None:
    """Until each worker's file has caught up (about a second), a scrape may miss the other
    workers' latest counts; then every scrape, whichever worker takes it, shows `expected()`."""

    def shown(values: dict[str, float]) -> dict[str, float]:
        return {name: values.get(name, 0.0) for name in expected()}

    await poll(lambda: scrape(url), lambda values: shown(values) == expected(), timeout_s=15)
    await asyncio.sleep(2 * SNAPSHOT_INTERVAL_S)  # every worker has written its file since
    for _ in range(times):
        assert shown(await scrape(url)) == expected()


async def test_one_scrape_adds_up_every_worker(tmp_path: Path) -> None:
    """`/metrics` of `serve --workers 2` is the server's: counters of both workers summed,
    whichever worker the kernel gives the scrape; a killed worker's counts stay, its
    connections go."""
    data = tmp_path / "data"
    with serving_workers(tmp_path, "--workers", "2", "--data-dir", str(data)) as (
        process, url, log
    ):  # fmt: skip
        workers = workers_of(process.pid)
        assert len(workers) == 2, log.read_text()
        redis_url = (data / "redis" / "url").read_text().strip()
        room = "workers-metrics"
        host_token = auth.mint(SECRET, room=room, role=Role.HOST, user="host-1")
        async with HostClient(url, room, host_token) as host:
            await host.create_room("one scrape, two workers")
            await host.go_live()
        ws_url = url.replace("http://", "ws://") + "/ws"
        viewers: list[ViewerClient] = []
        try:
            # Viewers until both workers have some (each then subscribes to the room).
            while len(viewers) < 40 and (
                len(viewers) < 6 or numsub(redis_url, keys.room_bus(room)) < 2
            ):
                viewers.append(ViewerClient(ws_url, room, None, reconnect=False))
                await viewers[-1].connect()
            await eventually(lambda: numsub(redis_url, keys.room_bus(room)) == 2)
            # HTTP errors, each on a fresh connection: spread over both workers too.
            for _ in range(12):
                async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                    assert (await http.get("/api/rooms/r-does-not-exist")).status_code == 404
            opened = float(len(viewers))
            await scrapes_agree(url, lambda: {
                "livecart_connections_total": opened,
                'livecart_open_connections{codec="json"}': opened,
                f'livecart_room_viewers{{room="{room}"}}': opened,
                "livecart_rooms_active": 2,  # one hub on each worker
                'livecart_errors_total{code="room_not_found"}': 12,
            })  # fmt: skip
            await processes_apart(url)

            # A killed worker's viewers are gone; what it counted stays counted.
            killed = min(workers)
            os.kill(killed, signal.SIGKILL)
            await eventually(lambda: sum(v.close_code is not None for v in viewers) > 0)
            await eventually(lambda: len(workers_of(process.pid) - workers) == 1, timeout_s=20)
            (replacement,) = workers_of(process.pid) - workers
            await eventually(lambda: ready_logged(log, replacement), timeout_s=20)

            def still() -> float:
                """Viewers whose connection is open (not on the killed worker)."""
                return float(sum(v.close_code is None for v in viewers))

            await scrapes_agree(url, lambda: {
                "livecart_connections_total": opened,
                'livecart_open_connections{codec="json"}': still(),
                f'livecart_room_viewers{{room="{room}"}}': still(),
                "livecart_rooms_active": 1,
                'livecart_errors_total{code="room_not_found"}': 12,
            })  # fmt: skip
            assert 0 < still() < opened
            # The restarted worker's process series are its own: a new start time.
            started = await processes_apart(url)
            assert len(set(started.values())) == 2
        finally:
            for viewer in viewers:
                await viewer.close()
        metrics_dir = metrics_dir_of(min(workers_of(process.pid)))
        assert metrics_dir.is_dir()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()
    assert not metrics_dir.exists()  # the supervisor removes the directory it made


def metrics_dir_of(pid: int) -> Path:
    """The directory a worker shares its metrics in (its LIVECART_METRICS_DIR)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    return Path(env["LIVECART_METRICS_DIR"])
