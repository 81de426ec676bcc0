"""engine.store.meter: counts in memory, written to one hash per room by flush; nothing lost on a
failed write; nothing counted when off."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from engine.insights.show_metrics import Counters
from engine.store import keys
from engine.store.meter import MARKERS_MAX, MarkerKind, Meter, Metric, minute_of, off


def fresh_room() -> str:
    return f"m-{secrets.token_hex(4)}"


async def test_a_flush_writes_minutes_totals_dimensions_and_money(
    redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = 1_900_000_000.0
    monkeypatch.setattr(time, "time", lambda: at)  # one known minute
    meter = Meter(redis)
    room = fresh_room()
    minute = minute_of(at)
    meter.count(room, Metric.COMMENTS)
    meter.count(room, Metric.COMMENTS, 2)
    meter.count(room, Metric.CLICKS, dim="p1")
    meter.count_dim(room, Metric.ORDERS, "s1")
    meter.money(room, Metric.GMV, "USD", 5600)
    meter.count(room, Metric.SHARES, 0)  # nothing to add: no field
    await meter.flush()
    raw = {k.decode(): int(v) for k, v in (await redis.hgetall(keys.show_metrics(room))).items()}
    assert raw == {
        f"{minute}:comments": 3, "t:comments": 3,
        f"{minute}:clicks": 1, "t:clicks": 1, "t:clicks.p1": 1,
        "t:orders.s1": 1,
        f"{minute}:gmv.USD": 5600, "t:gmv.USD": 5600,
    }  # fmt: skip
    # A second process (or flush) adds to the same fields.
    other = Meter(redis)
    other.count(room, Metric.CLICKS, dim="p1")
    await other.flush()
    counters = Counters.parse(await redis.hgetall(keys.show_metrics(room)))
    assert counters.total(Metric.CLICKS) == counters.total(Metric.CLICKS, "p1") == 2
    assert counters.by_dim(Metric.GMV) == {"USD": 5600}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_failed_flush_keeps_the_counts_for_the_next(redis: aioredis.Redis) -> None:
    room = fresh_room()
    down = aioredis.Redis(port=closed_port(), socket_connect_timeout=0.5)
    meter = Meter(down)
    meter.count(room, Metric.VIEWS, 2)
    meter.mark(room, MarkerKind.PIN, "Mug pinned")
    with pytest.raises(RedisConnectionError):
        await meter.flush()
    meter.count(room, Metric.VIEWS)  # counted while Redis was away
    meter.redis = redis  # ... and it is back
    await meter.flush()
    await down.aclose()
    counters = Counters.parse(await redis.hgetall(keys.show_metrics(room)))
    assert counters.total(Metric.VIEWS) == 3
    assert len(await redis.lrange(keys.show_markers(room), 0, -1)) == 1


async def test_markers_are_capped_and_keep_the_newest(redis: aioredis.Redis) -> None:
    room = fresh_room()
    meter = Meter(redis)
    for n in range(MARKERS_MAX + 5):
        meter.mark(room, MarkerKind.FLASH_SALE, f"sale {n}")
    meter.mark(room, MarkerKind.GIVEAWAY, "x" * 500)
    await meter.flush()
    stored = await redis.lrange(keys.show_markers(room), 0, -1)
    assert len(stored) == MARKERS_MAX
    assert b'"label":"sale 6"' in stored[0]
    assert len(stored[-1]) < 200  # labels are cut to 120 characters


async def test_off_counts_nothing(redis: aioredis.Redis) -> None:
    room = fresh_room()
    for meter in (Meter(redis, enabled=False), off()):
        meter.count(room, Metric.COMMENTS)
        meter.money(room, Metric.GMV, "USD", 100)
        meter.mark(room, MarkerKind.PIN, "p")
        await meter.flush()
        assert not meter.pending
    assert await redis.exists(keys.show_metrics(room), keys.show_markers(room)) == 0


async def test_the_background_flush_runs_and_stop_writes_the_rest(
    redis: aioredis.Redis,
) -> None:
    room = fresh_room()
    meter = Meter(redis, flush_s=0.02)
    meter.start()
    meter.count(room, Metric.LIKES, 4)
    for _ in range(100):
        if await redis.hget(keys.show_metrics(room), "t:likes") == b"4":
            break
        await asyncio.sleep(0.02)
    meter.count(room, Metric.LIKES)
    await meter.stop()  # writes what the last interval counted
    assert await redis.hget(keys.show_metrics(room), "t:likes") == b"5"
