"""`livecart bench ledger`: how fast the ledger writer copies order events into PostgreSQL,
against a raw COPY and a raw executemany of the same rows in the same run, and against the
order rate `livecart bench checkout` reaches on this machine (docs/ledger.md § Benchmark).

Setup (not timed): a fresh embedded Redis; `--rooms` live rooms; orders made by the engine's
own order store and scripts, in process (grab, checkout, payment through `order_pay.lua`,
a partial refund for one order in ten, a cancellation for another one in ten), until the
rooms' order event streams hold `--events` events: real order hashes, real payment records,
the mix the ledger sees in a show. PostgreSQL: an embedded one with fsync on, as in
production, unless `--database-url`.

Timed:
- `ledger`: the real `LedgerWriter` (engine/ledger/writer.py) drains every stream in batches
  of `--batch`: each batch read from the consumer group, completed from the order hashes,
  written in one transaction of upserts (events, orders, payments, refunds, coupons, shows)
  and acknowledged. `ledger_events_per_second` = events ÷ that time.
- `copy`: the same event rows (`rows.event_row`) into a plain table by asyncpg's
  `copy_records_to_table` in one COPY; `executemany`: the same rows by an INSERT through
  `executemany`. `ratio_to_copy` and `ratio_to_executemany` = ledger events/s ÷ their rows/s.
- The target: `livecart bench checkout --orders --checkout-orders` runs after the rest (the
  ledger off in its engine: the highest order rate, the hardest target), or
  `--orders-per-second` takes a rate measured before; `ratio_to_checkout_orders` = ledger
  events/s ÷ checkout orders/s, against `target_ratio` (10). An order makes about 2.1 events
  here, so the headroom in orders is about half that ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import orjson
from redis.asyncio import Redis

from engine.bench.harness import print_result, redis_for
from engine.commerce.catalog import Catalog, ProductTerms
from engine.commerce.checkout_request import CheckoutRequest
from engine.commerce.coupons import Coupons
from engine.commerce.orders import OrderStore
from engine.commerce.risk import RiskRules
from engine.commerce.sales import SaleStore, SaleTerms
from engine.commerce.stock import GrabRequest, Stock
from engine.ledger import database, rows
from engine.ledger.writer import GROUP, LedgerWriter
from engine.store import keys, redis_client
from engine.store.postgres_server import EmbeddedPostgres
from engine.store.redis_client import stream_rows, text
from engine.store.scripts import Scripts

TARGET_RATIO = 10
_MAXLEN = 10_000_000  # streams never trimmed during a bench
_GRABS = 200  # grabs per script call while making orders
_AT_ONCE = 64  # orders made concurrently
_ADDRESS = {"name": "Bench Buyer", "line1": "1 Load St", "city": "Testville",
            "postal_code": "12345", "country": "US"}  # fmt: skip


def progress(message: str) -> None:
    print(f"[bench ledger] {message}", file=sys.stderr, flush=True)


def events_of(n: int) -> int:
    """Order n's events: created and paid, and a partial refund (n % 10 == 3); created and
    cancelled (n % 10 == 9)."""
    return 3 if n % 10 == 3 else 2


class Shop:
    """The engine's order store on one Redis, in process (what the HTTP routes call)."""

    def __init__(self, redis: Redis, scripts: Scripts) -> None:
        self.redis = redis
        catalog = Catalog(redis, scripts, 1000)
        self.catalog = catalog
        self.stock = Stock(redis, scripts, outbox_maxlen=_MAXLEN, max_batch=_GRABS)
        self.sales = SaleStore(redis, scripts, catalog, 1000, _MAXLEN)
        self.coupons = Coupons(redis, scripts, log_maxlen=1000, outbox_maxlen=_MAXLEN)
        self.orders = OrderStore(
            redis, scripts, sales=self.sales, stock=self.stock, coupons=self.coupons,
            risk=RiskRules(max_orders_per_user=10**6, max_orders_per_device=10**6,
                           review_threshold=10**9),
            payment_window_ms=3_600_000, shipping_fee=600, events_maxlen=_MAXLEN,
            outbox_maxlen=_MAXLEN,
        )  # fmt: skip

    async def close(self) -> None:
        await self.stock.close()
        await self.coupons.close()

    async def open_room(self, room: str, units: int) -> str:
        await self.redis.hset(keys.room_meta(room), mapping={
            "state": "live", "host": "bench-host", "title": "bench", "created_at": 0})  # fmt: skip
        await self.redis.sadd(keys.rooms_index(), room)
        terms = ProductTerms(title="Bench hoodie", currency="USD",
                             skus=[{"sku": "HOOD-1", "list_price": 5900}])  # fmt: skip
        await self.catalog.create(room, terms)
        sale = await self.sales.create(room, SaleTerms(sku="HOOD-1", allotment=units,
                                                       duration_s=86_400, hold_s=3600))  # fmt: skip
        return sale.id

    async def order(self, room: str, n: int, reservation: str, gate: asyncio.Semaphore) -> None:
        async with gate:
            body = {"reservations": [reservation], "coupons": [], "shipping_address": _ADDRESS,
                    "contact": {"email": f"b{n}@example.org"},
                    "idempotency_key": f"bench-order-{n}"}  # fmt: skip
            request = msgspec.convert(body, CheckoutRequest)
            order, _ = await self.orders.checkout(room, f"b{n}", request)
            if n % 10 == 9:
                await self.orders.cancel(room, order.id, f"b{n}", owner=f"b{n}")
                return
            await self.orders.apply_payment(room, order, f"pay_bench_{room}_{n}",
                                            event="succeeded", amount=order.total,
                                            currency=order.currency)  # fmt: skip
            if n % 10 == 3:
                await self.orders.refund(room, order.id, f"r{n}", amount=1000,
                                         reason="bench", who="bench-host")  # fmt: skip


async def make_orders(redis: Redis, want_events: int, room_count: int) -> dict[str, Any]:
    """Orders spread over the rooms until their streams hold `want_events` events."""
    scripts = Scripts()
    await scripts.load(redis)
    shop = Shop(redis, scripts)
    counts, events, n = [0] * room_count, 0, 0
    while events < want_events:
        counts[n % room_count] += 1
        events += events_of(n)
        n += 1
    cancelled = sum(1 for k in range(n) if k % 10 == 9)
    rooms = [f"bench-ledger-{i}" for i in range(room_count)]
    gate = asyncio.Semaphore(_AT_ONCE)
    try:
        for i, room in enumerate(rooms):
            sale = await shop.open_room(room, max(1, counts[i]))
            numbers = list(range(i, n, room_count))
            for start in range(0, len(numbers), _GRABS):
                chunk = numbers[start : start + _GRABS]
                answers = await shop.stock.grab_batch(
                    room, sale, [GrabRequest(f"b{k}", f"g{k}", 1) for k in chunk]
                )
                await asyncio.gather(*(
                    shop.order(room, k, answer.body["reservation"], gate)
                    for k, answer in zip(chunk, answers, strict=True)
                ))  # fmt: skip
    finally:
        await shop.close()
    made = sum([await redis.xlen(keys.order_events(room)) for room in rooms])
    return {"rooms": rooms, "orders": n, "events": made, "paid": n - cancelled,
            "refunds": sum(1 for k in range(n) if k % 10 == 3)}  # fmt: skip


async def event_rows(redis: Redis, rooms: list[str]) -> list[rows.Row]:
    """Every event as the ledger's row (for the raw baselines)."""
    found: list[rows.Row] = []
    for room in rooms:
        for event_id, fields in stream_rows(await redis.xrange(keys.order_events(room))):
            found.append(rows.event_row(room, text(event_id),
                                        {text(k): text(v) for k, v in fields.items()}))  # fmt: skip
    return found


async def drain(redis: Redis, pool: asyncpg.Pool, total: int, batch: int) -> dict[str, Any]:
    """The real writer, one consumer of the ledger's group, until it wrote `total` events."""
    writer = LedgerWriter(redis, pool, "bench", batch_size=batch)
    batches = 0
    started = time.perf_counter()
    while writer.written < total:
        if not await writer.drain_once():
            break
        batches += 1
    elapsed = time.perf_counter() - started
    return {"written": writer.written, "batches": batches, "seconds": round(elapsed, 3),
            "events_per_second": round(writer.written / elapsed, 1)}  # fmt: skip


_PLAIN = """CREATE TABLE {name} (room text, event_id text, version bigint, type text,
order_id text, user_id text, payment_id text, amount bigint, currency text, at_ms bigint,
data jsonb)"""


async def raw_baselines(pool: asyncpg.Pool, event_rows: list[rows.Row]) -> dict[str, Any]:
    """The same rows into plain tables (no key, no index): one COPY, one executemany."""
    columns = list(rows.EVENTS_COLUMNS)
    records = list(event_rows)  # `data` is JSON text, as asyncpg takes jsonb
    out: dict[str, Any] = {}
    async with pool.acquire() as connection:
        for name in ("bench_copy", "bench_executemany"):
            await connection.execute(f"DROP TABLE IF EXISTS {name}")
            await connection.execute(_PLAIN.format(name=name))
        started = time.perf_counter()
        await connection.copy_records_to_table("bench_copy", records=records, columns=columns)
        copy_s = time.perf_counter() - started
        insert = (f"INSERT INTO bench_executemany ({', '.join(columns)}) VALUES "
                  f"({', '.join(f'${i}' for i in range(1, len(columns) + 1))})")  # fmt: skip
        started = time.perf_counter()
        await connection.executemany(insert, records)
        many_s = time.perf_counter() - started
        copied = await connection.fetchval("SELECT count(*) FROM bench_copy")
        inserted = await connection.fetchval("SELECT count(*) FROM bench_executemany")
        for name in ("bench_copy", "bench_executemany"):
            await connection.execute(f"DROP TABLE {name}")
    out["copy"] = {"rows": copied, "seconds": round(copy_s, 3),
                   "rows_per_second": round(copied / copy_s, 1)}  # fmt: skip
    out["executemany"] = {"rows": inserted, "seconds": round(many_s, 3),
                          "rows_per_second": round(inserted / many_s, 1)}  # fmt: skip
    return out


async def complete(pool: asyncpg.Pool, redis: Redis, made: dict[str, Any]) -> dict[str, Any]:
    """The ledger holds every event, order, payment and refund made, and nothing is pending."""
    async with pool.acquire() as connection:
        counts = {table: await connection.fetchval(f"SELECT count(*) FROM {table}")
                  for table in ("order_events", "orders", "payments", "refunds")}  # fmt: skip
    pending = 0
    for room in made["rooms"]:
        pending += int((await redis.xpending(keys.order_events(room), GROUP))["pending"])
    want = {"order_events": made["events"], "orders": made["orders"], "payments": made["paid"],
            "refunds": made["refunds"]}  # fmt: skip
    return {"counts": counts, "expected": want, "pending": pending,
            "ok": counts == want and pending == 0}  # fmt: skip


async def measure(redis_url: str, database_url: str, args: argparse.Namespace) -> dict[str, Any]:
    redis = redis_client.connect(redis_url)
    pool = None
    try:
        started = time.perf_counter()
        made = await make_orders(redis, args.events, args.rooms)
        progress(f"{made['orders']} orders, {made['events']} events in {len(made['rooms'])} "
                 f"rooms, made in {time.perf_counter() - started:.1f}s")  # fmt: skip
        pool = await database.migrate_and_connect(database_url)
        ledger = await drain(redis, pool, made["events"], args.batch)
        progress(f"ledger: {ledger['events_per_second']} events/s in {ledger['batches']} batches")
        baselines = await raw_baselines(pool, await event_rows(redis, made["rooms"]))
        progress(f"copy: {baselines['copy']['rows_per_second']} rows/s, executemany: "
                 f"{baselines['executemany']['rows_per_second']} rows/s")  # fmt: skip
        return {"made": made, "ledger": ledger, **baselines,
                "complete": await complete(pool, redis, made)}  # fmt: skip
    finally:
        if pool is not None:
            await pool.close()
        await redis.aclose()


def checkout_rate(orders: int) -> float:
    """`livecart bench checkout` on this machine, its engine without a ledger."""
    progress(f"livecart bench checkout --orders {orders} (the ledger off in its engine)")
    env = {**os.environ, "LIVECART_LEDGER": "off"}
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "bench", "checkout", "--orders", str(orders),
         "--json"], capture_output=True, text=True, env=env, check=False, timeout=1800,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"bench checkout failed: {done.stderr[-2000:]}")
    rate: float = orjson.loads(done.stdout)["orders_per_second"]
    return rate


def run(args: argparse.Namespace) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="livecart-bench-ledger-"))
        stack.callback(shutil.rmtree, folder, True)
        # Open to others: run by root, the embedded PostgreSQL runs as another user.
        folder.chmod(0o755)
        redis_url = redis_for(stack, args.redis_url)
        database_url = args.database_url
        if database_url is None:
            database_url = stack.enter_context(EmbeddedPostgres(folder / "pg")).url
        figures = asyncio.run(measure(redis_url, database_url, args))
    rate = args.orders_per_second
    if rate is None and args.checkout_orders:
        rate = checkout_rate(args.checkout_orders)
    ledger = figures["ledger"]["events_per_second"]
    ratio = round(ledger / rate, 2) if rate else None
    return {
        "events": figures["made"]["events"],
        "orders": figures["made"]["orders"],
        "rooms": args.rooms,
        "batch": args.batch,
        "ledger_events_per_second": ledger,
        "ledger_seconds": figures["ledger"]["seconds"],
        "ledger_batches": figures["ledger"]["batches"],
        "copy_rows_per_second": figures["copy"]["rows_per_second"],
        "executemany_rows_per_second": figures["executemany"]["rows_per_second"],
        "ratio_to_copy": round(ledger / figures["copy"]["rows_per_second"], 3),
        "ratio_to_executemany": round(ledger / figures["executemany"]["rows_per_second"], 3),
        "checkout_orders_per_second": rate,
        "ratio_to_checkout_orders": ratio,
        "target_ratio": TARGET_RATIO,
        "target_met": None if ratio is None else ratio >= TARGET_RATIO,
        "ledger_complete": figures["complete"]["ok"],
        "postgres": "external" if args.database_url else "embedded, fsync on",
        "complete": figures["complete"],
    }


def main(args: argparse.Namespace) -> int:
    result = run(args)
    print_result(result, args.json, width=28)
    return 0 if result["ledger_complete"] else 1
