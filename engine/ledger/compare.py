"""Does the ledger say what Redis says? One room's orders, payments and refunds, side by
side: the audit's "ledger matches Redis" check (GET /api/rooms/{room}/audit on an engine
with a ledger, so a load test's verdict judges the books too), the fault tests and
reconciliation's `ledger_behind_redis`.

The writer is asynchronous: `wait_caught_up` first waits (bounded) until every event of the
room's stream is acknowledged by the ledger's group, then the two are compared.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from engine.commerce.orders import load_orders
from engine.ledger.writer import room_lag
from engine.store import keys
from engine.store.redis_client import text

# What is compared of an order, a payment and a refund (the ledger's column names).
ORDER_FIELDS = ("state", "currency", "total", "refunded", "payment_id", "user_id")
PAYMENT_FIELDS = ("order_id", "amount", "currency", "state")


async def wait_caught_up(redis: Redis, room: str, timeout_s: float = 15.0) -> int:
    """Wait until the ledger has every event of the room, or `timeout_s`; what is left."""
    deadline = time.monotonic() + timeout_s
    while True:  # polled: the writer is in another process as often as in this one
        left = await room_lag(redis, room)
        if not left or time.monotonic() >= deadline:
            return left
        await asyncio.sleep(0.1)


async def redis_books(redis: Redis, room: str) -> dict[str, dict[str, Any]]:
    """The room's orders, payments and refunds as Redis holds them, keyed as the ledger's."""
    books: dict[str, dict[str, Any]] = {}
    for order in await load_orders(redis, room):
        books[f"order {order.id}"] = {
            "state": order.state.value, "currency": order.currency, "total": order.total,
            "refunded": order.refunded, "payment_id": order.fields.get("payment"),
            "user_id": order.user,
        }  # fmt: skip
        for refund in order.refunds():
            books[f"refund {refund['id']}"] = {"amount": refund["amount"]}
    for payment_id, raw in (await redis.hgetall(keys.payments(room))).items():
        record = orjson.loads(raw)
        books[f"payment {text(payment_id)}"] = {
            "order_id": record["o"], "amount": int(record["a"]), "currency": record["c"],
            "state": record["s"],
        }  # fmt: skip
        if record.get("rf"):
            books[f"refund {record['rf']}"] = {"amount": int(record["a"])}
    return books


async def ledger_books(pool: asyncpg.Pool, room: str) -> dict[str, dict[str, Any]]:
    books: dict[str, dict[str, Any]] = {}
    async with pool.acquire() as connection:
        for row in await connection.fetch(
            f"SELECT order_id, {', '.join(ORDER_FIELDS)} FROM orders WHERE room = $1", room
        ):
            books[f"order {row['order_id']}"] = {f: row[f] for f in ORDER_FIELDS}
        for row in await connection.fetch(
            f"SELECT payment_id, {', '.join(PAYMENT_FIELDS)} FROM payments WHERE room = $1", room
        ):
            books[f"payment {row['payment_id']}"] = {f: row[f] for f in PAYMENT_FIELDS}
        for row in await connection.fetch(
            "SELECT refund_id, amount FROM refunds WHERE room = $1", room
        ):
            books[f"refund {row['refund_id']}"] = {"amount": row["amount"]}
    return books


def differences(redis_side: dict[str, dict[str, Any]],
                ledger_side: dict[str, dict[str, Any]]) -> list[str]:  # fmt: skip
    """Each record missing on one side or different, in words."""
    problems = []
    for name in sorted(redis_side.keys() | ledger_side.keys()):
        ours, theirs = redis_side.get(name), ledger_side.get(name)
        if theirs is None:
            problems.append(f"{name} is not in the ledger")
        elif ours is None:
            problems.append(f"{name} is in the ledger only")
        elif ours != theirs:
            changed = [f"{k} {ours[k]!r} in Redis, {theirs.get(k)!r} in the ledger"
                       for k in ours if ours[k] != theirs.get(k)]  # fmt: skip
            problems.append(f"{name}: {', '.join(changed)}")
    return problems


async def compare_room(redis: Redis, pool: asyncpg.Pool, room: str,
                       timeout_s: float = 15.0) -> tuple[list[str], str]:  # fmt: skip
    """(problems, what was compared) once the ledger has caught up with the room."""
    left = await wait_caught_up(redis, room, timeout_s)
    if left:
        return [f"the ledger is {left} events behind after {timeout_s:.0f} s"], ""
    ours, theirs = await redis_books(redis, room), await ledger_books(pool, room)
    counts = {kind: sum(1 for n in ours if n.startswith(kind)) for kind in ("order", "payment")}
    return differences(ours, theirs), (
        f"{counts['order']} orders, {counts['payment']} payments and "
        f"{len(ours) - sum(counts.values())} refunds alike"
    )
