"""The reservation sweeper: expiry across rooms, several sweepers at once, and expiry
that carries on when the engine restarts."""

from __future__ import annotations

import asyncio
import secrets

import redis.asyncio as aioredis

from clients import HostClient, ViewerClient
from engine.commerce.catalog import Catalog, ProductTerms
from engine.commerce.sales import SaleStore, SaleTerms
from engine.commerce.stock import GrabRequest, Stock
from engine.core.metrics import METRICS
from engine.insights.audit import audit_room
from engine.server.sweeper import Sweeper
from engine.store import keys
from engine.store.scripts import Scripts
from tests.conftest import T0, EngineFactory, eventually, token
from tests.test_stock import age, launch


async def make_room(redis: aioredis.Redis, scripts: Scripts, allotment: int) -> tuple[str, str]:
    room = f"sweep-{secrets.token_hex(4)}"
    await redis.hset(keys.room_meta(room), mapping={"state": "live", "title": "t"})
    await redis.sadd(keys.rooms_index(), room)
    catalog = Catalog(redis, scripts, 1000)
    await catalog.create(
        room, ProductTerms(title="Mug", currency="GBP", skus=[{"sku": "MUG", "list_price": 900}])
    )
    sale = await SaleStore(redis, scripts, catalog, 1000, 10_000).create(
        room, SaleTerms(sku="MUG", allotment=allotment, per_user_limit=5, hold_s=60), at_ms=T0
    )
    return room, sale.id


async def test_one_pass_expires_due_holds_in_every_room(redis: aioredis.Redis) -> None:
    scripts = Scripts()
    await scripts.load(redis)
    stock = Stock(redis, scripts, outbox_maxlen=1000)
    rooms = [await make_room(redis, scripts, 3) for _ in range(3)]
    for room, sale in rooms:
        await stock.grab_batch(room, sale, [GrabRequest("early", "1", 2)], at_ms=T0)
        await stock.grab_batch(room, sale, [GrabRequest("late", "1", 1)], at_ms=T0 + 30_000)
    sweeper = Sweeper(redis, stock)
    # Holds are 60 s: at T0 + 60 s only the early ones are due.
    assert await sweeper.sweep(at_ms=T0 + 60_000) >= 3
    for room, sale in rooms:
        record = await stock.reservation(room, f"{sale}.1")
        assert record["state"] == "expired"
        assert (await stock.reservation(room, f"{sale}.2"))["state"] == "held"
        assert (await audit_room(redis, room)).ok


async def test_each_pass_reports_how_late_each_room_s_oldest_due_hold_is(
    redis: aioredis.Redis,
) -> None:
    scripts = Scripts()
    await scripts.load(redis)
    stock = Stock(redis, scripts, outbox_maxlen=1000)
    late, on_time = await make_room(redis, scripts, 3), await make_room(redis, scripts, 3)
    await stock.grab_batch(*late, [GrabRequest("a", "1", 1)], at_ms=T0)
    await stock.grab_batch(*late, [GrabRequest("b", "1", 1)], at_ms=T0 + 1_000)
    await stock.grab_batch(*on_time, [GrabRequest("c", "1", 1)], at_ms=T0 + 30_000)
    sweeper = Sweeper(redis, stock, batch=1)  # one hold per pass: the oldest goes first
    await sweeper.sweep(at_ms=T0 + 62_500)  # the first hold expired 2.5 s ago
    assert METRICS.room_sweeper_lag.values[(late[0],)] == 2.5
    assert (on_time[0],) not in METRICS.room_sweeper_lag.values  # nothing due there yet
    await sweeper.sweep(at_ms=T0 + 62_500)
    assert METRICS.room_sweeper_lag.values[(late[0],)] == 1.5
    await sweeper.sweep(at_ms=T0 + 62_500)
    assert (late[0],) not in METRICS.room_sweeper_lag.values  # caught up


async def test_many_sweepers_at_once_return_each_unit_once(redis: aioredis.Redis) -> None:
    scripts = Scripts()
    await scripts.load(redis)
    stock = Stock(redis, scripts, outbox_maxlen=10_000)
    room, sale = await make_room(redis, scripts, 200)
    requests = [GrabRequest(f"u{n}", "1", 1) for n in range(200)]
    await stock.grab_batch(room, sale, requests, at_ms=T0)
    sweepers = [Sweeper(redis, stock, batch=50) for _ in range(4)]
    expired = await asyncio.gather(*(s.sweep(at_ms=T0 + 61_000) for s in sweepers))
    while sum(expired) < 200:  # each pass takes up to `batch` per room
        more = await asyncio.gather(*(s.sweep(at_ms=T0 + 61_000) for s in sweepers))
        assert sum(more) > 0
        expired += more
    assert sum(expired) == 200
    counters = await redis.hmget(keys.sale(room, sale), ["available", "reserved"])
    assert [int(c) for c in counters] == [200, 0]
    assert (await audit_room(redis, room)).ok


async def test_expiry_carries_on_after_an_engine_restart(engine_factory: EngineFactory) -> None:
    first = await engine_factory(sweep_ms=50)
    room = f"restart-{secrets.token_hex(3)}"
    async with HostClient(first.base_url, room, token(room, "host")) as host:
        await host.create_room("t")
        sale = await launch(host, 2, hold_s=10)
        buyer = ViewerClient(first.ws_url, room, token(room, user="buyer"), reconnect=False)
        await buyer.connect()
        reservation = (await buyer.grab(sale))["reservation"]
        await buyer.close()
        await first.stop()  # the engine goes away with the hold outstanding
        second = await engine_factory(sweep_ms=50)
        assert second.node is not None
        assert (await second.node.stock.reservation(room, reservation))["state"] == "held"
        await age(second.node.redis, room, sale, reservation)

        async def expired() -> bool:
            assert second.node is not None
            record = await second.node.stock.reservation(room, reservation)
            return record["state"] == "expired"

        await eventually(expired)
    async with HostClient(second.base_url, room, token(room, "host")) as host:
        assert (await host.sale(sale))["available"] == 2
