"""engine.rooms.watchtime: sessions per user and room (a second connection adds nothing, guests
are not counted), the session in progress counted from any process, finished sessions
summed, and the hub opening and closing them as viewers join and leave."""

from __future__ import annotations

import secrets

from redis import asyncio as aioredis

from engine.core.identity import Author, Role
from engine.rooms.watchtime import WatchTime
from engine.server.app import Engine
from engine.store import keys
from tests.conftest import ViewerFactory, eventually, poll

T0 = 1_900_000_000_000
ann, bob = Author("ann", "Ann", Role.VIEWER), Author("bob", "Bob", Role.VIEWER)


async def test_sessions_add_up(redis: aioredis.Redis) -> None:
    room = f"w-{secrets.token_hex(4)}"
    watch = WatchTime(redis)
    other_process = WatchTime(redis)
    assert await watch.watched_ms(room, "ann", at_ms=T0) == 0
    watch.joined(room, ann, at_ms=T0)
    watch.joined(room, ann, at_ms=T0 + 5_000)  # a second tab: the same session
    await watch.flush()
    assert await other_process.watched_ms(room, "ann", at_ms=T0 + 10_000) == 10_000
    watch.left(room, ann, at_ms=T0 + 20_000)  # one tab left: still watching
    await watch.flush()
    assert await redis.hget(keys.watch_ms(room), "ann") is None
    watch.left(room, ann, at_ms=T0 + 30_000)
    await watch.flush()
    assert await redis.hget(keys.watch_ms(room), "ann") == b"30000"
    assert await redis.hget(keys.watch_since(room), "ann") is None
    # nothing accrues between sessions; the next one adds to the total
    assert await other_process.watched_ms(room, "ann", at_ms=T0 + 90_000) == 30_000
    watch.joined(room, ann, at_ms=T0 + 100_000)
    await watch.flush()
    assert await other_process.watched_ms(room, "ann", at_ms=T0 + 101_500) == 31_500
    watch.left(room, ann, at_ms=T0 + 102_000)
    watch.left(room, ann, at_ms=T0 + 200_000)  # a leave without a join is ignored
    await watch.flush()
    assert await watch.watched_ms(room, "ann", at_ms=T0 + 300_000) == 32_000
    # per room and per user
    assert await watch.watched_ms(room, "bob", at_ms=T0 + 300_000) == 0
    assert await watch.watched_ms(f"{room}-2", "ann", at_ms=T0 + 300_000) == 0
    await redis.delete(keys.watch_ms(room), keys.watch_since(room))


async def test_writes_are_queued_until_flushed(redis: aioredis.Redis) -> None:
    room = f"w-{secrets.token_hex(4)}"
    watch = WatchTime(redis)
    watch.joined(room, ann, at_ms=T0)
    watch.left(room, ann, at_ms=T0 + 1_000)
    watch.joined(room, bob, at_ms=T0)
    watch.joined(room, Author("anon-d1", "guest", Role.ANONYMOUS), at_ms=T0)  # not counted
    assert len(watch.queue) == 3  # synchronous calls: nothing sent yet
    await watch.flush()
    assert watch.queue == []
    assert await redis.hgetall(keys.watch_ms(room)) == {b"ann": b"1000"}
    assert await redis.hgetall(keys.watch_since(room)) == {b"bob": str(T0).encode()}
    await redis.delete(keys.watch_ms(room), keys.watch_since(room))


async def test_the_hub_opens_and_closes_sessions(
    engine: Engine, room: str, redis: aioredis.Redis, viewer_factory: ViewerFactory
) -> None:
    watch = engine.node.service("giveaways").watchtime
    first = await viewer_factory(room, user="ann")
    second = await viewer_factory(room, user="ann")
    since = await poll(lambda: redis.hget(keys.watch_since(room), "ann"), lambda v: v is not None)
    assert watch.sessions[(room, "ann")][0] == 2
    await first.close()
    await eventually(lambda: watch.sessions[(room, "ann")][0] == 1)
    await watch.flush()
    # the other tab is still on: the same session, nothing added yet
    assert await redis.hget(keys.watch_since(room), "ann") == since
    assert await redis.hget(keys.watch_ms(room), "ann") is None
    await second.close()
    total = await poll(lambda: redis.hget(keys.watch_ms(room), "ann"), lambda v: v is not None)
    assert await redis.hget(keys.watch_since(room), "ann") is None
    assert await watch.watched_ms(room, "ann") == int(total)
