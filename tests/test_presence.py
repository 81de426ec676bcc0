"""engine.rooms.presence: room-wide online counts, peak, likes and uniques across processes."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from engine.rooms.presence import Arrival, Presence, RoomStats
from engine.store import keys
from engine.store.redis_client import text
from engine.store.scripts import Scripts

PresenceFactory = Callable[..., Presence]


@pytest.fixture
async def room(redis: aioredis.Redis) -> AsyncIterator[str]:
    room_id = f"t-{secrets.token_hex(4)}"
    yield room_id
    await redis.delete(
        keys.presence(room_id), keys.likes(room_id), keys.peak(room_id), keys.uniques(room_id)
    )


@pytest.fixture
async def process(redis: aioredis.Redis) -> PresenceFactory:
    scripts = Scripts()
    await scripts.load(redis)

    def make(process_id: str, stale_ms: int = 60_000) -> Presence:
        return Presence(redis, scripts, process_id, stale_ms=stale_ms)

    return make


async def reporters(redis: aioredis.Redis, room: str) -> set[str]:
    return {text(k) for k in await redis.hkeys(keys.presence(room))}


def test_stats_to_wire() -> None:
    assert RoomStats(1, 2, 3, 4).to_wire() == {"online": 1, "peak": 2, "likes": 3, "unique": 4}
    assert RoomStats().to_wire() == {"online": 0, "peak": 0, "likes": 0, "unique": 0}


async def test_counts_of_processes_add_up(process: PresenceFactory, room: str) -> None:
    a, b = process("node-a"), process("node-b")
    assert await a.sync(room, 3, 0) == RoomStats(online=3, peak=3, likes=0, unique=0)
    assert await b.sync(room, 4, 0) == RoomStats(online=7, peak=7, likes=0, unique=0)
    # A process's new report replaces its old one; it does not add to it.
    assert await a.sync(room, 1, 0) == RoomStats(online=5, peak=7, likes=0, unique=0)
    assert await a.sync(room, 0, 0) == RoomStats(online=4, peak=7, likes=0, unique=0)


async def test_minus_one_withdraws_a_process(
    process: PresenceFactory, room: str, redis: aioredis.Redis
) -> None:
    a, b = process("node-a"), process("node-b")
    await a.sync(room, 3, 0)
    await b.sync(room, 2, 0)
    assert await reporters(redis, room) == {"node-a", "node-b"}
    assert await a.sync(room, -1, 0) == RoomStats(online=2, peak=5, likes=0, unique=0)
    assert await reporters(redis, room) == {"node-b"}


async def test_peak_is_the_maximum_ever_seen(process: PresenceFactory, room: str) -> None:
    a = process("node-a")
    peaks = [(await a.sync(room, n, 0)).peak for n in (2, 9, 4, 0, 10, 1)]
    assert peaks == [2, 9, 9, 9, 10, 10]


async def test_likes_add_up(process: PresenceFactory, room: str) -> None:
    a, b = process("node-a"), process("node-b")
    assert (await a.sync(room, 1, 5)).likes == 5
    assert (await b.sync(room, 1, 2)).likes == 7
    assert (await a.sync(room, 1, 0)).likes == 7
    assert (await b.sync(room, -1, 3)).likes == 10  # likes still count when withdrawing
    assert (await a.sync(room, 1, -4)).likes == 10  # negative deltas are ignored


async def test_read_reports_nothing(
    process: PresenceFactory, room: str, redis: aioredis.Redis
) -> None:
    a = process("node-a")
    await a.sync(room, 6, 11)
    assert await process("api").read(room) == RoomStats(online=6, peak=6, likes=11, unique=0)
    assert await a.read(room) == RoomStats(online=6, peak=6, likes=11, unique=0)
    assert await reporters(redis, room) == {"node-a"}


async def test_read_of_an_unknown_room(process: PresenceFactory) -> None:
    assert await process("api").read(f"t-{secrets.token_hex(4)}") == RoomStats()


async def test_uniques_count_identities_once(process: PresenceFactory, room: str) -> None:
    a, b = process("node-a"), process("node-b")
    host = f"h-{secrets.token_hex(3)}"
    arrivals = [await a.seen(room, identity, host) for identity in ("u1", "u2", "u1", "anon:x")]
    assert arrivals == [Arrival.NEW, Arrival.NEW, Arrival.AGAIN, Arrival.NEW]
    assert await b.seen(room, "u2", host) is Arrival.AGAIN
    assert (await a.sync(room, 0, 0)).unique == 3
    assert (await b.read(room)).unique == 3
    # The host's next show: u1 comes back, u3 is new to the host.
    later = f"t-{secrets.token_hex(4)}"
    assert await a.seen(later, "u1", host) is Arrival.RETURNING
    assert await a.seen(later, "u3", host) is Arrival.NEW
    assert await a.seen(later, "u3", f"h-{secrets.token_hex(3)}") is Arrival.AGAIN


async def test_stale_processes_drop_out(
    process: PresenceFactory, room: str, redis: aioredis.Redis
) -> None:
    crashed = process("crashed")
    await crashed.sync(room, 5, 0)
    # The same process id seen with a lenient and a strict horizon.
    assert await process("alive").sync(room, 2, 0) == RoomStats(online=7, peak=7)
    alive = process("alive", stale_ms=200)
    # Keep `alive` reporting until `crashed`'s entry ages past alive's horizon. Time is
    # only the condition here; what is asserted is the state afterwards.
    deadline = time.monotonic() + 30
    stats = await alive.sync(room, 2, 0)
    while "crashed" in await reporters(redis, room):
        assert time.monotonic() < deadline, "stale entry never dropped"
        await asyncio.sleep(0.05)
        stats = await alive.sync(room, 2, 0)
    assert stats == RoomStats(online=2, peak=7, likes=0, unique=0)
    assert await reporters(redis, room) == {"alive"}


async def test_fresh_entries_survive_a_strict_reader(
    process: PresenceFactory, room: str, redis: aioredis.Redis
) -> None:
    await process("a").sync(room, 1, 0)
    await process("b").sync(room, 1, 0)
    # A horizon of an hour keeps both entries, whatever the scheduling delays.
    assert (await process("c", stale_ms=3_600_000).sync(room, 1, 0)).online == 3
    assert await reporters(redis, room) == {"a", "b", "c"}
