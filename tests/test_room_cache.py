"""A value per room kept for a short time (engine/core/room_cache.py)."""

from __future__ import annotations

import asyncio

from engine.core.room_cache import RoomCache


class Source:
    """What the cache reads: a value per room, counting reads, optionally held mid-read."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.reads = 0
        self.hold: asyncio.Event | None = None

    async def load(self, room: str) -> int:
        self.reads += 1
        value = self.values.get(room, 0)
        if self.hold is not None:
            await self.hold.wait()
        return value


async def test_a_value_is_read_once_then_kept() -> None:
    source = Source()
    source.values["r"] = 1
    cache = RoomCache(source.load, ttl_s=60)
    assert [await cache.get("r") for _ in range(5)] == [1] * 5
    assert source.reads == 1
    source.values["r"] = 2
    assert await cache.get("r") == 1  # kept: the change was not seen
    assert await cache.get("other") == 0
    assert source.reads == 2


async def test_forget_makes_the_next_get_read_again() -> None:
    source = Source()
    cache = RoomCache(source.load, ttl_s=60)
    assert await cache.get("r") == 0
    source.values["r"] = 7
    cache.forget("r")
    assert await cache.get("r") == 7
    assert source.reads == 2


async def test_a_value_is_read_again_once_it_expires() -> None:
    source = Source()
    cache = RoomCache(source.load, ttl_s=0.05)
    assert await cache.get("r") == 0
    source.values["r"] = 3
    await asyncio.sleep(0.1)
    assert await cache.get("r") == 3


async def test_a_read_under_way_when_the_value_changes_is_not_kept() -> None:
    """The read began before the change and may have its old value: it answers the get
    that asked, but the next get reads again."""
    source = Source()
    cache = RoomCache(source.load, ttl_s=60)
    source.hold = asyncio.Event()
    reading = asyncio.create_task(cache.get("r"))
    await asyncio.sleep(0)  # the read has taken the old value and waits
    source.values["r"] = 5
    cache.forget("r")
    source.hold.set()
    assert await reading == 0
    source.hold = None
    assert await cache.get("r") == 5
    assert source.reads == 2
