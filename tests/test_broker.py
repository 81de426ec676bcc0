"""The pub/sub broker under connection loss and Redis restarts: nothing a viewer should
see is lost, nothing is seen twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from clients import HostClient, ViewerClient
from engine.core.metrics import METRICS
from engine.server.app import Engine
from engine.store.broker import room_of_channel
from engine.store.redis_server import EmbeddedRedis
from tests.conftest import EngineFactory, token
from tests.test_gateway import collect_comments


def test_room_of_channel() -> None:
    assert room_of_channel("lc:{shop-7}:bus") == "shop-7"


async def host_and_watcher(engine: Engine, room: str) -> tuple[ViewerClient, ViewerClient]:
    """A new live room with its host and one viewer connected (the caller closes them)."""
    async with HostClient(engine.base_url, room, token(room, "host")) as h:
        await h.create_room("t")
        await h.go_live()
    host = ViewerClient(engine.ws_url, room, token(room, "host"))
    watcher = ViewerClient(engine.ws_url, room, token(room))
    await host.connect()
    await watcher.connect()
    return host, watcher


@pytest.mark.parametrize("pubsub", ["sharded", "plain"])
async def test_killed_pubsub_connection_is_backfilled(
    pubsub: str, engine_factory: EngineFactory, redis: aioredis.Redis
) -> None:
    engine = await engine_factory(pubsub=pubsub)
    host, watcher = await host_and_watcher(engine, "backfill-" + pubsub)
    try:
        await host.comment("before")
        await collect_comments(watcher, 1)
        before = METRICS.broker_reconnects.value()
        # Drop every pub/sub connection, then post while the broker is reconnecting.
        await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        for n in range(5):
            await host.comment(f"during {n}")
        assert await collect_comments(watcher, 5) == [f"during {n}" for n in range(5)]
        assert METRICS.broker_reconnects.value() > before
        assert watcher.duplicates == 0
        assert watcher.gaps == 0
    finally:
        await host.close()
        await watcher.close()


async def test_redis_restart_mid_show(engine_factory: EngineFactory, tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis") as server:
        engine = await engine_factory(redis_url=server.url)
        host, watcher = await host_and_watcher(engine, "restart-room")
        try:
            await host.comment("before restart")
            await collect_comments(watcher, 1)
            server.kill()
            await asyncio.sleep(0.2)  # the point: Redis stays down a while (a short outage)
            server.restart()  # the AOF brings the room back
            texts = []
            async with asyncio.timeout(20):
                while not texts:
                    try:
                        texts.append((await host.comment("after restart"))["text"])
                    except Exception:  # refused with `unavailable` while Redis is back-filling
                        await asyncio.sleep(0.2)
            got = await collect_comments(watcher, 1, timeout_s=20)
            assert got == ["after restart"]
            assert watcher.gaps == 0
            assert watcher.duplicates == 0
        finally:
            await host.close()
            await watcher.close()
