"""engine.store.redis_server: the private redis-server (start, lock, durability, no orphans)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from engine.core.settings import Settings
from engine.store.redis_server import (
    EmbeddedRedis,
    RedisServerError,
    find_redis_server,
    free_port,
    redis_version,
)

ServerFactory = Callable[..., EmbeddedRedis]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[ServerFactory]:
    """Makes (unstarted) servers in tmp_path and stops every one at the end."""
    made: list[EmbeddedRedis] = []

    def make(name: str = "data", **kw: Any) -> EmbeddedRedis:
        server = EmbeddedRedis(tmp_path / name, **kw)
        made.append(server)
        return server

    yield make
    for server in reversed(made):
        server.stop()


def client(server: EmbeddedRedis) -> sync_redis.Redis:
    return sync_redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)


def config(server: EmbeddedRedis, name: str) -> str:
    with client(server) as c:
        reply: dict[str | bytes, str | bytes] = c.config_get(name)
    value = reply[name]
    return value.decode() if isinstance(value, bytes) else value


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def process_gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie nobody reaped yet counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# ---- binary -----------------------------------------------------------------------------


def test_find_redis_server_returns_an_executable() -> None:
    binary = find_redis_server()
    assert Path(binary).is_file()
    assert os.access(binary, os.X_OK)
    major, minor, patch = redis_version(binary)
    assert major >= 6
    assert min(minor, patch) >= 0


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# ---- start / config ---------------------------------------------------------------------


def test_starts_with_aof_and_fsync_from_settings(servers: ServerFactory) -> None:
    settings = Settings(appendfsync="always")
    server = servers(appendfsync=settings.appendfsync)
    server.start()
    assert server.port > 0
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    assert config(server, "appendonly") == "yes"
    assert config(server, "appendfsync") == "always"
    assert config(server, "appendfilename") == "livecart.aof"
    assert config(server, "save") == ""
    assert config(server, "bind") == "127.0.0.1"
    assert Path(config(server, "dir")) == server.data_dir.resolve()
    assert server.log_path.exists()


def test_its_files_are_the_service_account_s_alone(servers: ServerFactory) -> None:
    """The AOF holds buyers' addresses and contacts: no group or other access."""
    server = servers()
    server.start()
    client = sync_redis.Redis(port=server.port)
    try:
        client.set("k", "v")
        client.execute_command("BGREWRITEAOF")  # write the AOF's files for sure
    finally:
        client.close()
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
    written = [path for path in server.data_dir.rglob("*") if path.is_file()]
    assert any(path.name.startswith("livecart.aof") for path in written)
    for path in written:
        if path.name != "url":  # where tools find the server: an address, no secret
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_default_fsync_is_everysec(servers: ServerFactory) -> None:
    server = servers()
    server.start()
    assert config(server, "appendfsync") == "everysec"


def test_context_manager_stops_and_unlocks(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "d") as server:
        port = server.port
        with client(server) as c:
            assert c.ping() is True
    assert server.process is None
    assert not port_open(port)
    # The data dir lock went with it: a new server can use the directory.
    with EmbeddedRedis(tmp_path / "d") as again, client(again) as c:
        assert c.ping() is True


def test_data_dir_lock_refuses_a_second_server(servers: ServerFactory) -> None:
    first = servers("shared")
    first.start()
    second = servers("shared")
    with pytest.raises(RedisServerError, match="in use by another engine's Redis"):
        second.start()
    assert second.process is None
    with client(first) as c:
        assert c.ping() is True  # the first one is untouched
    first.stop()
    second.start()
    with client(second) as c:
        assert c.ping() is True


def test_start_failure_raises_and_releases_the_lock(servers: ServerFactory) -> None:
    # A fixed port means one attempt (a free port would be retried five times).
    broken = servers("d", port=free_port(), extra_args=("--no-such-option", "1"))
    with pytest.raises(RedisServerError, match="did not start"):
        broken.start(timeout_s=5)
    assert broken.process is None
    healthy = servers("d")
    healthy.start()
    with client(healthy) as c:
        assert c.ping() is True


# ---- durability -------------------------------------------------------------------------


def test_restart_keeps_data_via_aof(servers: ServerFactory) -> None:
    server = servers()
    server.start()
    port = server.port
    with client(server) as c:
        c.set("k", "v")
        c.xadd("s", {"f": "1"}, id="5-1")
    server.restart()
    assert server.port == port
    with client(server) as c:
        assert c.get("k") == b"v"
        assert c.xrange("s") == [(b"5-1", {b"f": b"1"})]


def test_kill_then_restart_replays_aof(servers: ServerFactory) -> None:
    server = servers(appendfsync="always")
    server.start()
    with client(server) as c:
        c.incrby("counter", 41)
        c.incr("counter")
    pid = server.process.pid if server.process else -1
    server.kill()
    assert server.process is None
    assert process_gone(pid)
    assert not port_open(server.port)
    server.restart()
    with client(server) as c:
        assert c.get("counter") == b"42"


# ---- no orphans -------------------------------------------------------------------------

CHILD = """
import sys, time
from pathlib import Path
from engine.store.redis_server import EmbeddedRedis

server = EmbeddedRedis(Path(sys.argv[1]))
server.start()
print(server.process.pid, server.port, flush=True)
time.sleep(600)
"""


def test_redis_dies_with_a_sigkilled_parent(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "child")],
        stdout=subprocess.PIPE,
        text=True,
    )
    redis_pid = -1
    try:
        assert child.stdout is not None
        redis_pid, port = (int(part) for part in child.stdout.readline().split())
        assert not process_gone(redis_pid)
        assert port_open(port)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert wait_for(lambda: process_gone(redis_pid)), "redis-server outlived its parent"
        assert not port_open(port)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
        if redis_pid > 0 and not process_gone(redis_pid):
            os.kill(redis_pid, signal.SIGKILL)  # the orphan this test started
