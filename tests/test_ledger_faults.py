"""The ledger under faults (docs/ledger.md § Faults): PostgreSQL stopped for 30 s while
buyers grab, check out and pay (nothing fails, the lag grows and drains), and the engine
holding a batch killed with SIGKILL (another engine takes the batch over: nothing lost,
nothing twice). Each test runs its own PostgreSQL: stopping the session's would stop every
other ledger test of this process."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from clients import HostClient, ShopperClient, ViewerClient
from engine.commerce.orders import load_orders
from engine.ledger.writer import GROUP
from engine.store import keys
from engine.store.postgres_server import EmbeddedPostgres
from tests.conftest import ADDRESS, SECRET, EngineFactory, eventually, token
from tests.test_api_catalog import JACKET
from tests.test_cli import serving


@pytest.fixture
def redis_url(own_redis_url: str) -> str:
    """This module's tests keep books: a Redis of their own (tests/conftest.py)."""
    return own_redis_url


OUTAGE_S = 30.0  # the "PostgreSQL stopped for 30 s during a load test"


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, fsync on as in production. Its folder is under the
    system's temp dir and open to others: run by root, the server runs as another user."""
    folder = Path(tempfile.mkdtemp(prefix="livecart-pg-faults-"))
    folder.chmod(0o755)
    server = EmbeddedPostgres(folder / "pg")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


async def open_shop(base_url: str, room: str, units: int) -> str:
    """A live room with one sale of `units` (up to 100 a buyer); its sale id."""
    async with HostClient(base_url, room, token(room, "host", "host-1")) as host:
        await host.create_room("Faults")
        await host.go_live()
        await host.create_product(**JACKET)
        sale: dict[str, Any] = await host.launch_sale("DJ-M", units, price=5000,
                                                      per_user_limit=100)  # fmt: skip
    return str(sale["id"])


@dataclass
class Load:
    """Buyers who each grab, check out and pay, again and again, until told to stop;
    every step that does not succeed is counted in `failures`."""

    base_url: str
    room: str
    sale: str
    paid: int = 0
    failures: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def buyer(self, user: str, rounds: int) -> None:
        ws_url = self.base_url.replace("http", "ws", 1) + "/ws"
        viewer = ViewerClient(ws_url, self.room, token(self.room, "viewer", user))
        await viewer.connect()
        try:
            async with ShopperClient(self.base_url, self.room,
                                     token(self.room, "viewer", user)) as me:  # fmt: skip
                for _ in range(rounds):
                    if self.stop.is_set():
                        return
                    await self.buy(viewer, me)
        finally:
            await viewer.close()

    async def buy(self, viewer: ViewerClient, me: ShopperClient) -> None:
        grabbed = await viewer.grab(self.sale)
        if grabbed["status"] != "reserved":
            self.failures.append(f"grab {grabbed['status']}")
            return
        order = await me.checkout([grabbed["reservation"]], address=ADDRESS,
                                  contact={"email": "buyer@example.org"})  # fmt: skip
        payment = await me.start_payment(order["id"])
        paid = await me.pay(payment["payment"])
        if paid.get("engine", {}).get("outcome") != "paid":
            self.failures.append(f"payment {paid}")
            return
        self.paid += 1


async def ledger_matches_redis(url: str, redis: aioredis.Redis, room: str) -> dict[str, int]:
    """The books equal Redis for the room: every order (state, money, buyer, payment),
    every payment, every refund, and one row per order event, none twice."""
    orders = await load_orders(redis, room)
    payments = {k.decode(): orjson.loads(v)
                for k, v in (await redis.hgetall(keys.payments(room))).items()}  # fmt: skip
    events = await redis.xlen(keys.order_events(room))
    connection = await asyncpg.connect(url)
    try:
        books = {r["order_id"]: tuple(r) for r in await connection.fetch(
            "SELECT order_id, state, total, refunded, user_id, payment_id FROM orders"
            " WHERE room = $1", room)}  # fmt: skip
        paid = {r["payment_id"]: tuple(r) for r in await connection.fetch(
            "SELECT payment_id, state, amount, order_id FROM payments"
            " WHERE room = $1", room)}  # fmt: skip
        refunds = sorted(tuple(r) for r in await connection.fetch(
            "SELECT order_id, refund_id, amount FROM refunds WHERE room = $1", room))  # fmt: skip
        written = await connection.fetchval(
            "SELECT count(*) FROM order_events WHERE room = $1", room)  # fmt: skip
    finally:
        await connection.close()
    assert books == {o.id: (o.id, o.state.value, o.total, o.refunded, o.user,
                            o.fields.get("payment")) for o in orders}  # fmt: skip
    assert paid == {p: (p, r["s"], r["a"], r["o"]) for p, r in payments.items()}
    assert refunds == sorted((o.id, r["id"], r["amount"]) for o in orders for r in o.refunds())
    assert written == events
    return {"orders": len(books), "payments": len(paid), "refunds": len(refunds),
            "events": written}  # fmt: skip


@pytest.mark.slow
async def test_postgres_away_for_30_s_under_load_costs_nothing_but_lag(
    own_postgres: EmbeddedPostgres, engine_factory: EngineFactory, redis: aioredis.Redis
) -> None:
    engine = await engine_factory(ledger=True, database_url=own_postgres.url,
                                  max_orders_per_user=1000)  # fmt: skip
    room = f"faults-{os.urandom(3).hex()}"
    buyers = 30
    load = Load(engine.base_url, room, await open_shop(engine.base_url, room, buyers * 100))
    running = asyncio.gather(*(load.buyer(f"buyer-{n}", 100) for n in range(buyers)))
    async with httpx.AsyncClient(base_url=engine.base_url, timeout=10) as http:

        async def ledger() -> dict[str, Any]:
            body: dict[str, Any] = (await http.get("/readyz")).json()
            return dict(body["ledger"])

        await eventually(lambda: load.paid >= 20, timeout_s=30)
        await asyncio.to_thread(own_postgres.pause)
        stopped = time.monotonic()
        paid_before = load.paid

        async def behind() -> bool:
            status = await ledger()
            return status["lag_events"] > 0 and status["error"] is not None

        await eventually(behind, timeout_s=OUTAGE_S)
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
        assert load.paid > paid_before  # buyers kept paying with the books away
        await asyncio.to_thread(own_postgres.resume)
        load.stop.set()
        await running
        assert load.failures == []

        async def drained() -> bool:
            status = await ledger()
            return status["lag_events"] == 0 and status["error"] is None

        await eventually(drained, timeout_s=30)
    counts = await ledger_matches_redis(own_postgres.url, redis, room)
    assert counts["orders"] == load.paid


@pytest.mark.slow
async def test_a_writer_killed_mid_batch_loses_and_doubles_nothing(
    own_postgres: EmbeddedPostgres, redis: aioredis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """The engine dies (SIGKILL) holding a batch it read and could not commit (its database
    away); another engine on the same Redis and database claims the dead writer's events
    and writes them once, with what the first one had already written."""
    env = {"LIVECART_LEDGER": "on", "DATABASE_URL": own_postgres.url, "LIVECART_SECRET": SECRET,
           "LIVECART_LEDGER_BATCH": "5000", "LIVECART_LEDGER_CLAIM_IDLE_MS": "1000",
           "LIVECART_MAX_ORDERS_PER_USER": "1000"}  # fmt: skip
    room = f"faults-{os.urandom(3).hex()}"
    args = ("--redis-url", redis_url, "--data-dir", str(tmp_path / "a"))
    with serving(*args, env=env) as (first, base_url):
        load = Load(base_url, room, await open_shop(base_url, room, 2000))
        await asyncio.gather(*(load.buyer(f"early-{n}", 5) for n in range(10)))
        await asyncio.to_thread(own_postgres.pause)
        # A burst of payments and refunds while the writer cannot commit: it reads them
        # (pending to it) and retries.
        await asyncio.gather(*(load.buyer(f"burst-{n}", 10) for n in range(20)))
        async with HostClient(base_url, room, token(room, "host", "host-1")) as host:
            orders = await load_orders(redis, room)
            for order in orders[::7]:
                await host.refund(order.id, f"r-{order.id}", amount=1000)
        assert load.failures == []

        async def in_flight() -> bool:
            consumers = await redis.xinfo_consumers(keys.order_events(room), GROUP)
            return any(c["pending"] for c in consumers)

        await eventually(in_flight, timeout_s=10)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    stranded = sum(c["pending"] for c in await redis.xinfo_consumers(
        keys.order_events(room), GROUP))  # fmt: skip
    assert stranded > 0
    await asyncio.to_thread(own_postgres.resume)
    args = ("--redis-url", redis_url, "--data-dir", str(tmp_path / "b"))
    with serving(*args, env=env) as (_, base_url):
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:

            async def drained() -> bool:
                status = (await http.get("/readyz")).json()["ledger"]
                return bool(status["lag_events"] == 0 and status["written"] > 0)

            await eventually(drained, timeout_s=30)
    counts = await ledger_matches_redis(own_postgres.url, redis, room)
    assert counts["orders"] == load.paid == 250
    assert counts["refunds"] == len(orders[::7]) > 0
