"""Room hubs across engine processes sharing one Redis: cross-process fan-out, one
subscription per room per process, presence totals, hub lifecycle."""

from __future__ import annotations

import redis.asyncio as aioredis

from engine.server.app import Engine
from engine.store import keys
from tests.conftest import EngineFactory, ViewerFactory, eventually
from tests.test_gateway import collect_comments


async def subscribers(redis: aioredis.Redis, room: str) -> int:
    """Subscriptions to the room's bus (sharded: the suite's Redis is 7, tests/test_bus.py)."""
    counts = await redis.execute_command("PUBSUB", "SHARDNUMSUB", keys.room_bus(room))
    return int(counts[1])


async def test_comment_posted_on_one_engine_reaches_viewers_on_another(
    engine: Engine, engine_factory: EngineFactory, room: str, viewer_factory: ViewerFactory
) -> None:
    other = await engine_factory()
    poster = await viewer_factory(room, target=engine)
    watchers_here = [await viewer_factory(room, target=engine) for _ in range(2)]
    watchers_there = [await viewer_factory(room, target=other) for _ in range(2)]
    for n in range(5):
        await poster.comment(f"cross {n}")
    for watcher in watchers_here + watchers_there:
        assert await collect_comments(watcher, 5) == [f"cross {n}" for n in range(5)]
        assert watcher.gaps == 0


async def test_one_subscription_per_room_per_process(
    engine: Engine,
    engine_factory: EngineFactory,
    room: str,
    viewer_factory: ViewerFactory,
    redis: aioredis.Redis,
) -> None:
    other = await engine_factory()
    for _ in range(10):
        await viewer_factory(room, target=engine)
    for _ in range(10):
        await viewer_factory(room, target=other)
    assert await subscribers(redis, room) == 2


async def test_presence_adds_up_across_engines(
    engine: Engine, engine_factory: EngineFactory, room: str, viewer_factory: ViewerFactory
) -> None:
    other = await engine_factory()
    here = [await viewer_factory(room, target=engine) for _ in range(3)]
    for _ in range(2):
        await viewer_factory(room, target=other)
    tick = await here[0].wait_for(lambda e: e.get("stats", {}).get("online") == 5)
    assert tick["stats"]["peak"] == 5
    assert tick["stats"]["unique"] == 5
    await here[1].close()
    await here[2].close()
    tick = await here[0].wait_for(lambda e: e.get("stats", {}).get("online") == 3)
    assert tick["stats"]["peak"] == 5


async def test_idle_hub_unsubscribes_and_comes_back(
    engine: Engine, room: str, viewer_factory: ViewerFactory, redis: aioredis.Redis
) -> None:
    client = await viewer_factory(room)
    assert room in engine.node.hubs if engine.node else False
    await client.close()

    async def gone() -> bool:
        return engine.node is not None and room not in engine.node.hubs

    await eventually(gone)  # hub_linger_s is 0.5 s in tests

    async def unsubscribed() -> bool:
        return await subscribers(redis, room) == 0

    await eventually(unsubscribed)
    again = await viewer_factory(room)
    entry = await again.comment("back again")
    assert (await again.wait_for(lambda e: "entries" in e))["entries"][0]["id"] == entry["id"]
