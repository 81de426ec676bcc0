"""engine/store/redis_config.py: the engine reads its Redis's configuration at start and refuses
one that evicts keys or persists nothing (unless overridden: then /readyz says so), against
real redis-server processes started with those settings."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from engine.core.settings import Settings
from engine.server.app import Engine
from engine.store import redis_config
from engine.store.redis_config import RedisConfigError
from engine.store.redis_server import EmbeddedRedis
from engine.tools.dev_cluster import DevCluster
from tests.conftest import make_settings

EVICTING = ("--maxmemory-policy", "allkeys-lru")
NOT_PERSISTING = ("--appendonly", "no")  # and EmbeddedRedis's `--save ""`
CONFIG_DISABLED = ("--rename-command", "CONFIG", "")


@pytest.fixture
def redis_with(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start redis-servers with extra settings: `redis_with(*args)` -> its URL."""
    servers: list[EmbeddedRedis] = []

    def start(*args: str) -> str:
        server = EmbeddedRedis(tmp_path / f"redis-{len(servers)}", extra_args=args)
        server.start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


async def started(settings: Settings) -> Engine:
    engine = Engine(settings)
    await engine.start()
    return engine


async def ready(engine: Engine) -> httpx.Response:
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as http:
        return await http.get("/readyz")


# ---- the engine's own Redis passes -----------------------------------------------------------


async def test_the_embedded_redis_passes(tmp_path: Path) -> None:
    engine = await started(make_settings(tmp_path, redis_url=None))  # its own redis-server
    try:
        assert engine.node is not None
        assert engine.node.redis_config == redis_config.RedisConfigCheck(checked=True)
        body = (await ready(engine)).json()
        assert body == {
            "ok": True,
            "checks": {"redis": True, "scripts": True, "pubsub": True},
            "simulated_psp": True,
        }
    finally:
        await engine.stop()


# ---- an unsafe Redis is refused ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (EVICTING, "maxmemory-policy is allkeys-lru, so it may evict stock, reservation and "
                   "order keys under memory pressure: set maxmemory-policy noeviction"),
        (NOT_PERSISTING, "it persists nothing (appendonly no and save ''), so a restart loses "
                         "every room: set appendonly yes (or save rules)"),
    ],
)  # fmt: skip
async def test_an_unsafe_redis_is_refused_at_start(
    redis_with: Callable[..., str], tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    url = redis_with(*args)
    engine = Engine(make_settings(tmp_path, redis_url=url))
    with pytest.raises(RedisConfigError) as refused:
        await engine.start()
    address = url.removeprefix("redis://").removesuffix("/0")
    assert str(refused.value) == (
        f"refusing to start: Redis {address}: {said} (or set LIVECART_REDIS_UNSAFE_OK=1 to "
        "start anyway and risk losing orders)"
    )
    assert engine.node is None  # nothing left running
    assert engine.listener is None


async def test_both_problems_are_named_in_one_sentence(redis_with: Callable[..., str]) -> None:
    url = redis_with(*EVICTING, *NOT_PERSISTING)
    with pytest.raises(RedisConfigError) as refused:
        await redis_config.check_url(url)
    message = str(refused.value)
    assert "maxmemory-policy noeviction" in message
    assert "appendonly yes" in message
    assert "\n" not in message


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_refuses_it_in_one_line(
    redis_with: Callable[..., str], tmp_path: Path, workers: str
) -> None:
    url = redis_with(*EVICTING)
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "serve", "--port", "0", "--workers", workers,
         "--redis-url", url, "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    refusal = [line for line in result.stderr.splitlines() if line.startswith("livecart: ")]
    assert len(refusal) == 1, result.stderr
    assert "maxmemory-policy is allkeys-lru" in refusal[0]
    assert "LIVECART_REDIS_UNSAFE_OK=1" in refusal[0]
    assert "Traceback" not in result.stderr


# ---- the override ----------------------------------------------------------------------------


async def test_the_override_starts_warns_and_reports_on_readyz(
    redis_with: Callable[..., str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = redis_with(*EVICTING, *NOT_PERSISTING)
    settings = Settings.from_env(
        {"LIVECART_REDIS_UNSAFE_OK": "1", "LIVECART_LEDGER": "off"}, redis_url=url, port=0,
        data_dir=tmp_path / "data", secret="s" * 32,
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="livecart.redis_config"):
        engine = await started(settings)
    try:
        response = await ready(engine)
        assert response.status_code == 200  # ready: the operator chose to run on it
        body = response.json()
        assert body["ok"] is True
        problems = body["redis_config"]["problems"]
        assert body["redis_config"] == {"ok": False, "checked": True, "problems": problems}
        assert len(problems) == 2
        assert "maxmemory-policy is allkeys-lru" in problems[0]
        assert "persists nothing" in problems[1]
    finally:
        await engine.stop()
    loud = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(loud) == 2
    assert all("UNSAFE REDIS" in r.getMessage() for r in loud)


def test_the_override_setting() -> None:
    assert Settings.from_env({}).redis_unsafe_ok is False
    assert Settings.from_env({"LIVECART_REDIS_UNSAFE_OK": "1"}).redis_unsafe_ok is True
    assert Settings.from_env({"LIVECART_REDIS_UNSAFE_OK": ""}).redis_unsafe_ok is False
    assert Settings.from_env({"LIVECART_REDIS_UNSAFE_OK": "off"}).redis_unsafe_ok is False


# ---- a managed Redis without CONFIG ----------------------------------------------------------


async def test_a_redis_without_config_starts_with_a_warning(
    redis_with: Callable[..., str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = redis_with(*EVICTING, *CONFIG_DISABLED)  # unsafe, but nobody can tell
    with caplog.at_level(logging.WARNING, logger="livecart.redis_config"):
        engine = await started(make_settings(tmp_path, redis_url=url))
    try:
        body = (await ready(engine)).json()
        assert body["ok"] is True
        [note] = body["redis_config"]["problems"]
        assert body["redis_config"] == {"ok": False, "checked": False, "problems": [note]}
        assert note.startswith("cannot read the Redis configuration")
        assert "maxmemory-policy noeviction" in note
    finally:
        await engine.stop()
    assert any("cannot read the Redis configuration" in r.getMessage() for r in caplog.records)


# ---- a cluster: every master ------------------------------------------------------------------


async def test_every_master_of_a_cluster_is_checked(tmp_path: Path) -> None:
    with DevCluster(tmp_path / "cluster", replicas_per_master=0) as cluster:
        assert (await redis_config.check_url(cluster.url)).ok
        masters = cluster.master_ports()
        evicting = masters[1]
        with redis.Redis(port=evicting) as node:
            node.config_set("maxmemory-policy", "volatile-lru")
        with pytest.raises(RedisConfigError) as refused:
            await redis_config.check_url(cluster.url)
    message = str(refused.value)
    assert f"Redis 127.0.0.1:{evicting}: maxmemory-policy is volatile-lru" in message
    others = [p for p in masters if p != evicting]
    assert not any(f":{port}" in message for port in others)


EVICTS, PERSISTS_NOTHING = "maxmemory-policy is", "it persists nothing"


@pytest.mark.parametrize(
    ("config", "unsafe"),
    [
        ({"maxmemory-policy": "noeviction", "appendonly": "yes", "save": ""}, []),
        ({"maxmemory-policy": "noeviction", "appendonly": "no", "save": "3600 1"}, []),  # RDB
        ({"maxmemory-policy": "volatile-ttl", "appendonly": "yes", "save": ""}, [EVICTS]),
        ({"maxmemory-policy": "noeviction", "appendonly": "no", "save": ""}, [PERSISTS_NOTHING]),
        ({}, []),  # nothing reported: nothing judged
    ],
)
def test_what_counts_as_unsafe(config: dict[str, str], unsafe: list[str]) -> None:
    problems = redis_config.problems_of(config)
    assert len(problems) == len(unsafe)
    assert all(p.startswith(u) for p, u in zip(problems, unsafe, strict=True))
