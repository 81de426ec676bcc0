"""The order events stream through a consumer group, and order exports (module and CLI)."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys

import msgspec
import orjson
import pytest

from engine.commerce.checkout_request import CheckoutRequest
from engine.commerce.order_feed import CSV_COLUMNS, OrderFeed, export
from engine.commerce.orders import load_orders
from tests.conftest import ADDRESS, Store


async def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, timeout=60, check=True
    )


async def paid_and_cancelled(store: Store) -> None:
    sale = await store.sale()
    paid = await store.checkout("ana", [await store.reserve(sale, "ana")],
                                [await store.coupon("ana", amount=300)])  # fmt: skip
    await store.pay(paid)
    cancelled = await store.checkout("bob", [await store.reserve(sale, "bob")])
    await store.orders.cancel(store.room, cancelled.id, "bob")


async def test_every_state_change_reaches_the_group_once(store: Store) -> None:
    await paid_and_cancelled(store)
    redis = store.shop.redis
    first = OrderFeed(redis, store.room, "erp", "worker-1")
    second = OrderFeed(redis, store.room, "erp", "worker-2")
    await first.ensure_group()
    await first.ensure_group()  # idempotent
    got_first = await first.read(count=2)
    got_second = await second.read(count=100)
    types = [fields["type"] for _, fields in got_first + got_second]
    assert types == ["order_created", "order_paid", "order_created", "order_cancelled"]
    assert await second.read() == []
    # Unacknowledged events stay pending for their consumer, and can be taken over.
    assert [i for i, _ in await first.pending()] == [i for i, _ in got_first]
    claimed = await second.claim_stale(min_idle_ms=0)
    assert {i for i, _ in claimed} == {i for i, _ in got_first + got_second}
    assert await first.pending() == []
    assert await second.ack([i for i, _ in claimed]) == 4
    assert await second.pending() == []


async def test_exports_as_csv_and_jsonl(store: Store) -> None:
    await paid_and_cancelled(store)
    orders = await load_orders(store.shop.redis, store.room)
    rows = list(csv.DictReader(io.StringIO("".join(export(orders, "csv")))))
    assert [r["state"] for r in rows] == ["paid", "cancelled"]
    assert list(rows[0]) == CSV_COLUMNS
    assert rows[0]["total"] == str(orders[0].total)
    assert rows[0]["lines"].startswith("SKU-1 x1 @2500")
    lines = [orjson.loads(line) for line in export(orders, "jsonl")]
    assert [line["id"] for line in lines] == [o.id for o in orders]
    with pytest.raises(ValueError, match="unknown export format"):
        list(export(orders, "xml"))


async def test_cli_export_and_feed(store: Store, redis_url: str) -> None:
    await paid_and_cancelled(store)
    base = [sys.executable, "-m", "engine.cli", "orders"]
    exported = await run([*base, "export", store.room, "--format", "jsonl", "--redis-url",
                          redis_url])  # fmt: skip
    assert [orjson.loads(line)["state"] for line in exported.stdout.splitlines()] == [
        "paid",
        "cancelled",
    ]
    feed = [*base, "feed", store.room, "--group", "cli-test", "--redis-url", redis_url]
    first = await run(feed)
    assert len(first.stdout.splitlines()) == 4
    again = await run(feed)
    assert again.stdout == ""  # acknowledged the first time


FORMULAS = {"name": "=HYPERLINK(\"http://x.example\",\"open\")", "line1": "+cmd|' /C calc'!A0",
            "city": "@SUM(1+1)", "line2": "-2+3"}  # fmt: skip


async def test_a_csv_export_never_hands_a_spreadsheet_a_formula(store: Store) -> None:
    """Buyer-typed fields that a spreadsheet would run (=, +, -, @) are written with a
    leading `'` (OWASP's rule; engine/core/csv_cells.py, which the report's CSVs use too); the
    JSON-lines export keeps the exact text."""
    sale = await store.sale(allotment=5)
    body = {
        "reservations": [await store.reserve(sale, "ana")], "coupons": [],
        "shipping_address": {**ADDRESS, **FORMULAS},
        "contact": {"email": "@ana@example.com"}, "idempotency_key": "formula-1",
    }  # fmt: skip
    await store.orders.checkout(store.room, "ana", msgspec.convert(body, CheckoutRequest))
    orders = await load_orders(store.shop.redis, store.room)
    [row] = list(csv.DictReader(io.StringIO("".join(export(orders, "csv")))))
    for field, value in {**FORMULAS, "email": "@ana@example.com"}.items():
        assert row[field] == "'" + value, field
    assert row["total"] == str(orders[0].total)  # numbers untouched
    [line] = [orjson.loads(text) for text in export(orders, "jsonl")]
    assert line["shipping_address"]["name"] == FORMULAS["name"]
