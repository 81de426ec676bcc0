"""engine/ledger/writer.py: order events copied into a real PostgreSQL, once in effect."""

from __future__ import annotations

import asyncpg
import pytest
import redis.asyncio as aioredis

from clients import HostClient, ShopperClient
from engine.commerce.orders import load_orders
from engine.ledger import database
from engine.ledger.writer import GROUP, LedgerWriter, room_lag, write
from engine.server.app import Engine
from engine.store import keys
from tests.conftest import EngineFactory, RoomFactory, ViewerFactory, eventually, token
from tests.test_psp import ana_order


@pytest.fixture
def redis_url(own_redis_url: str) -> str:
    """This module's tests keep books: a Redis of their own (tests/conftest.py)."""
    return own_redis_url


async def ledger_orders(url: str, room: str) -> dict[str, dict[str, object]]:
    connection = await asyncpg.connect(url)
    try:
        found = await connection.fetch(
            "SELECT order_id, state, total, refunded, payment_id, user_id, shop"
            " FROM orders WHERE room = $1", room,
        )  # fmt: skip
    finally:
        await connection.close()
    return {row["order_id"]: dict(row) for row in found}


async def redis_orders(engine: Engine, room: str) -> dict[str, dict[str, object]]:
    assert engine.node is not None
    orders = await load_orders(engine.node.redis, room)
    return {
        o.id: {"order_id": o.id, "state": o.state.value, "total": o.total, "refunded": o.refunded,
               "payment_id": o.fields.get("payment"), "user_id": o.user, "shop": "host-1"}
        for o in orders
    }  # fmt: skip


async def test_a_paid_and_refunded_order_reaches_the_ledger(
    engine_factory: EngineFactory,
    room_factory: RoomFactory,
    viewer_factory: ViewerFactory,
    ledger_url: str,
) -> None:
    engine = await engine_factory(ledger=True, database_url=ledger_url)
    room = await room_factory(engine)
    order = await ana_order(engine, room, viewer_factory)
    async with ShopperClient(engine.base_url, room, token(room, "viewer", "ana")) as ana:
        payment = await ana.start_payment(order)
        await ana.pay(payment["payment"])
    async with HostClient(engine.base_url, room, token(room, "host", "host-1")) as host:
        await host.refund(order, "r-1", amount=1000)

    async def caught_up() -> bool:
        # Every event written (an order's row can show the refund before the refund's own
        # event is in: the row is the order as Redis holds it when its batch is read).
        assert engine.node is not None
        if await room_lag(engine.node.redis, room):
            return False
        return await ledger_orders(ledger_url, room) == await redis_orders(engine, room)

    await eventually(caught_up)
    connection = await asyncpg.connect(ledger_url)
    try:
        kinds = [r["type"] for r in await connection.fetch(
            "SELECT type FROM order_events WHERE room = $1 ORDER BY version", room)]  # fmt: skip
        payment_row = await connection.fetchrow("SELECT * FROM payments WHERE payment_id = $1",
                                                payment["payment"])  # fmt: skip
        refund = await connection.fetchrow("SELECT * FROM refunds WHERE room = $1", room)
        show = await connection.fetchrow("SELECT * FROM shows WHERE room = $1", room)
    finally:
        await connection.close()
    assert kinds == ["order_created", "order_paid", "order_partially_refunded"]
    assert payment_row is not None
    assert (payment_row["state"], payment_row["amount"], payment_row["order_id"]) == (
        "succeeded", 5600, order,
    )  # fmt: skip
    assert refund is not None
    assert (refund["refund_id"], refund["amount"], refund["payment_id"]) == (
        "r-1", 1000, payment["payment"],
    )  # fmt: skip
    assert show is not None
    assert show["shop"] == "host-1"


async def test_a_batch_written_twice_changes_nothing(
    engine_factory: EngineFactory,
    room_factory: RoomFactory,
    viewer_factory: ViewerFactory,
    ledger_url: str,
    redis_url: str,
) -> None:
    """The crash between commit and acknowledgement: the same events again, no doubles."""
    engine = await engine_factory()
    room = await room_factory(engine)
    await ana_order(engine, room, viewer_factory)
    await database.migrate(ledger_url)
    pool = await database.connect(ledger_url)
    client = aioredis.Redis.from_url(redis_url)
    try:
        first = LedgerWriter(client, pool, "first", batch_size=100)
        batch = await first._complete({room: await (await first._feed(room)).read(100)})
        async with pool.acquire() as connection:
            await write(connection, batch)
            await write(connection, batch)
            count = await connection.fetchval("SELECT count(*) FROM order_events")
            orders = await connection.fetchval("SELECT count(*) FROM orders")
        assert (count, orders) == (1, 1)
        # Nothing was acknowledged: the events are still this consumer's, pending.
        pending = await client.xpending(keys.order_events(room), GROUP)
        assert pending["pending"] == 1
        assert await first.drain_once() == 1
        assert (await client.xpending(keys.order_events(room), GROUP))["pending"] == 0
    finally:
        await client.aclose()
        await pool.close()


@pytest.mark.parametrize("url", ["mysql://x@h/db", "postgresql://h", "not a url"])
def test_a_database_url_must_name_a_postgresql_database(url: str) -> None:
    with pytest.raises(ValueError, match="DATABASE_URL must look like"):
        database.check_url(url)
