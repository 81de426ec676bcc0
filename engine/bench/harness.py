"""What the benchmarks share: child processes spoken to in JSON lines, an engine
process (`livecart serve`) on a free port, and a room to measure in."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import httpx
import orjson
import redis

from engine.core.identity import Role
from engine.rooms import auth
from engine.store.redis_server import EmbeddedRedis


class Child:
    """A child process spoken to in JSON lines."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
        )

    @property
    def stdout(self) -> IO[str]:
        assert self.process.stdout is not None
        return self.process.stdout

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(orjson.dumps(command).decode() + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        line = self.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.process.args!r} exited ({self.process.poll()})")
        reply: dict[str, Any] = orjson.loads(line)
        return reply

    def ask(self, **command: Any) -> dict[str, Any]:
        self.send(**command)
        return self.receive()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def bench_env(**extra: str) -> dict[str, str]:
    """The environment of a benchmark's processes: a fresh secret, quiet logs, no admission
    limits (UNLIMITED_ADMISSION), no drain on stop (no load balancer is waiting to be
    told), no ledger unless LIVECART_LEDGER says so, `extra`."""
    return {**os.environ, "LIVECART_SECRET": secrets.token_urlsafe(24),
            "LIVECART_LOG_LEVEL": "WARNING", "LIVECART_DRAIN_S": "0",
            "LIVECART_SIMULATED_PSP": "on",
            # The books are `bench ledger`'s to measure: elsewhere they are off unless asked.
            "LIVECART_LEDGER": os.environ.get("LIVECART_LEDGER", "off"),
            **UNLIMITED_ADMISSION, **extra}  # fmt: skip


# Every simulated viewer comes from this machine's one address: no handshake rate, no
# connection cap per address, every anonymous viewer counted.
UNLIMITED_ADMISSION = {"LIVECART_HANDSHAKES_PER_IP_PER_S": "0", "LIVECART_HANDSHAKES_PER_S": "0",
                       "LIVECART_CONNECTIONS_PER_IP": "0",
                       "LIVECART_ANONYMOUS_VIEWERS_PER_IP": "0"}  # fmt: skip


def local_redis_pid(redis_url: str) -> int | None:
    """The Redis server's process id (from INFO) when it runs on this machine, else None."""
    if urlsplit(redis_url).hostname not in {"127.0.0.1", "localhost", "::1"}:
        return None
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def redis_for(stack: contextlib.ExitStack, redis_url: str | None) -> str:
    """`redis_url`, or an embedded Redis for this run (stopped and removed with `stack`)."""
    if redis_url is not None:
        return redis_url
    data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="livecart-bench-")))
    return stack.enter_context(EmbeddedRedis(data, appendfsync="everysec")).url


def print_result(result: dict[str, Any], as_json: bool, width: int = 24) -> None:
    """One JSON object, or one `key value` line per figure (the nested audit left out)."""
    if as_json:
        print(orjson.dumps(result).decode())
        return
    for key, value in result.items():
        if key != "audit":
            print(f"{key:{width}} {value}")


@contextlib.contextmanager
def engine_process(
    redis_url: str, tick_ms: int, env: dict[str, str], *, workers: int = 1, port: int = 0
) -> Iterator[tuple[Child, int]]:
    """`livecart serve` on `port` (0: a free one); yields (process, port) and stops it
    after. One worker unless asked: a benchmark measures (and samples the CPU of) one
    process."""
    argv = [sys.executable, "-m", "engine.cli", "serve", "--port", str(port),
            "--redis-url", redis_url, "--tick-ms", str(tick_ms),
            "--workers", str(workers)]  # fmt: skip
    engine = Child(argv, env)
    try:
        line = engine.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"engine did not start: {line!r}")
        port = int(line.split("http://", 1)[1].split()[0].rsplit(":", 1)[1])
        yield engine, port
    finally:
        engine.stop()


def metric_values(port: int, pattern: str) -> dict[str, float]:
    """Values of the engine's /metrics samples whose line matches `pattern` (a regex with
    one group naming the sample, then the value), keyed by that group. The engine inherits
    this environment: with LIVECART_METRICS_TOKEN set it wants that token, from loopback too."""
    token = os.environ.get("LIVECART_METRICS_TOKEN", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=10)
    response.raise_for_status()
    text = response.text
    found = re.findall(rf"^{pattern} (\S+)$", text, re.MULTILINE)
    return {name: float(value) for name, value in found}


def create_room(port: int, secret: str, settings: dict[str, Any]) -> str:
    """A live room for a benchmark; returns its id."""
    room = f"bench-{secrets.token_hex(4)}"
    with host_http(port, secret, room) as http:
        body = {"id": room, "title": "bench", "settings": settings}
        http.post("/api/rooms", json=body).raise_for_status()
        http.post(f"/api/rooms/{room}/go-live").raise_for_status()
    return room


def host_http(port: int, secret: str, room: str) -> httpx.Client:
    token = auth.mint(secret, room=room, role=Role.HOST, user="bench-host")
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {token}"}
    )


def connect(loader: Child, port: int, room: str, viewers: int, *, posters: int, mode: str,
            report: Callable[[str], None]) -> None:  # fmt: skip
    """Have the load process open `viewers` connections (the first `posters` signed in)."""
    reply = loader.ask(cmd="connect", host="127.0.0.1", port=port, path=f"/ws/{room}",
                       viewers=viewers, posters=posters, mode=mode)  # fmt: skip
    report(f"{reply['connected']} viewers connected in {reply['seconds']}s ({mode})")
    if reply["failed"]:
        raise RuntimeError(f"{reply['failed']} connections failed: {reply['failures']}")
