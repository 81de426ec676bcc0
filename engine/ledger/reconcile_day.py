"""One UTC day reconciled (docs/ledger.md § Reconciliation): the inputs gathered from the
payment provider, Redis and the ledger, compared (engine/ledger/reconcile.py, pure), and
each exception matched with the adjustment that answered it, if any.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from engine.commerce.orders import load_orders
from engine.commerce.payments import PaymentProvider, SettlementLine
from engine.ledger.database import Db
from engine.ledger.reconcile import (
    CLASSES,
    BookOrder,
    BookRefund,
    Books,
    Discrepancy,
    Inputs,
    compare,
    day_bounds,
)
from engine.store import keys
from engine.store.redis_client import text, texts


async def gather(redis: Redis, db: Db, provider: PaymentProvider, day: datetime.date,
                 room: str | None = None) -> Inputs:  # fmt: skip
    """The provider's lines of the day (and of the days either side), and what Redis and the
    ledger hold of the rooms the day concerns (`room` only, when given)."""
    one = datetime.timedelta(days=1)
    lines = await provider.settlement(day)
    nearby = [*await provider.settlement(day - one), *await provider.settlement(day + one)]
    if room is not None:
        lines = [line for line in lines if line.room == room]
        nearby = [line for line in nearby if line.room == room]
    rooms = [room] if room is not None else await _rooms(redis, db, day, lines)
    return Inputs(day, lines, nearby, await _redis_books(redis, rooms),
                  await _ledger_books(db, rooms))  # fmt: skip


async def _rooms(redis: Redis, db: Db, day: datetime.date,
                 lines: Sequence[SettlementLine]) -> list[str]:  # fmt: skip
    """Every room Redis holds, the day's lines name, or the ledger paid or refunded in that
    day (a room already gone from Redis)."""
    start, end = day_bounds(day)
    booked = await db.fetch(
        "SELECT room FROM orders WHERE paid_at_ms >= $1 AND paid_at_ms < $2 UNION "
        "SELECT room FROM refunds WHERE at_ms >= $1 AND at_ms < $2", start, end,
    )  # fmt: skip
    found = set(texts(await redis.smembers(keys.rooms_index())))
    return sorted(found | {line.room for line in lines} | {row["room"] for row in booked})


async def _redis_books(redis: Redis, rooms: Sequence[str]) -> Books:
    orders: dict[tuple[str, str], BookOrder] = {}
    refunds: dict[tuple[str, str], BookRefund] = {}
    for room in rooms:
        for order in await load_orders(redis, room):
            payment = order.fields.get("payment")
            made = order.refunds()
            times = [order.created_at, *(int(order.fields[name]) for name in
                     ("paid_at", "closed_at", "fulfilled_at") if name in order.fields),
                     *(int(r["at"]) for r in made)]  # fmt: skip
            paid_at = order.fields.get("paid_at")
            orders[(room, order.id)] = BookOrder(
                room, order.id, order.state.value, order.currency, order.total, order.refunded,
                payment, int(paid_at) if paid_at else None, tuple(times),
            )  # fmt: skip
            for r in made:
                refunds[(room, r["id"])] = BookRefund(room, r["id"], order.id, payment,
                                                      int(r["amount"]), order.currency,
                                                      int(r["at"]))  # fmt: skip
        # Automatic refunds, paid out and settled (OrderStore.settle_refund) on the payment.
        for payment_id, raw in (await redis.hgetall(keys.payments(room))).items():
            record = orjson.loads(raw)
            if record.get("s") == "refunded" and record.get("rf"):
                refunds[(room, record["rf"])] = BookRefund(
                    room, record["rf"], record["o"], text(payment_id), int(record["a"]),
                    record["c"], int(record.get("x") or record.get("at") or 0),
                )  # fmt: skip
    return Books(orders, refunds)


async def _ledger_books(db: Db, rooms: Sequence[str]) -> Books:
    order_rows = await db.fetch(
        "SELECT room, order_id, state, currency, total, refunded, payment_id, paid_at_ms,"
        " created_at_ms, closed_at_ms, fulfilled_at_ms FROM orders WHERE room = ANY($1)",
        list(rooms),
    )  # fmt: skip
    refund_rows = await db.fetch(
        "SELECT room, refund_id, order_id, payment_id, amount, currency, at_ms FROM refunds"
        " WHERE room = ANY($1)", list(rooms),
    )  # fmt: skip
    orders = {
        (r["room"], r["order_id"]): BookOrder(
            r["room"], r["order_id"], r["state"], r["currency"], r["total"], r["refunded"],
            r["payment_id"], r["paid_at_ms"],
            tuple(t for t in (r["created_at_ms"], r["paid_at_ms"], r["closed_at_ms"],
                              r["fulfilled_at_ms"]) if t is not None),
        )
        for r in order_rows
    }  # fmt: skip
    refunds = {(r["room"], r["refund_id"]): BookRefund(*r.values()) for r in refund_rows}
    return Books(orders, refunds)


@dataclass(frozen=True, slots=True)
class Report:
    """A day's exceptions, each open or answered by an adjustment, and the day's adjustments."""

    day: datetime.date
    room: str | None
    items: list[Discrepancy]
    adjustments: Mapping[tuple[str, str], dict[str, Any]]  # (class, reference) -> adjustment

    def adjustment(self, item: Discrepancy) -> dict[str, Any] | None:
        return self.adjustments.get((item.cls, item.reference))

    @property
    def open(self) -> list[Discrepancy]:
        return [item for item in self.items if self.adjustment(item) is None]

    def find(self, exception_id: str) -> Discrepancy | None:
        return next((item for item in self.items if item.id == exception_id), None)

    def to_wire(self) -> dict[str, Any]:
        counts = {cls: 0 for cls in CLASSES}
        for item in self.open:
            counts[item.cls] += 1
        return {
            "date": self.day.isoformat(),
            "room": self.room,
            "clean": not self.open,
            "counts": counts,
            "exceptions": [
                {**item.to_wire(), "status": "resolved" if self.adjustment(item) else "open",
                 "adjustment": self.adjustment(item)}
                for item in self.items
            ],
            "adjustments": sorted(self.adjustments.values(), key=lambda a: (a["at"], a["id"])),
        }  # fmt: skip


def adjustment_wire(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": f"{row['class']}:{row['reference']}@{row['day'].isoformat()}",
        "class": row["class"], "reference": row["reference"], "room": row["room"],
        "day": row["day"].isoformat(), "remedy": row["remedy"], "who": row["who"],
        "why": row["why"], "at": row["at"].isoformat(), "detail": orjson.loads(row["detail"]),
    }  # fmt: skip


async def reconcile(redis: Redis, db: Db, provider: PaymentProvider, day: datetime.date,
                    room: str | None = None) -> Report:  # fmt: skip
    """The day's exceptions (of `room` only, when given), each with its adjustment if any."""
    items = compare(await gather(redis, db, provider, day, room))
    rows = await db.fetch(
        "SELECT * FROM adjustments WHERE (day = $1 AND ($2::text IS NULL OR room = $2))"
        " OR reference = ANY($3)", day, room, [item.reference for item in items],
    )  # fmt: skip
    adjustments = {(row["class"], row["reference"]): adjustment_wire(row) for row in rows}
    return Report(day, room, items, adjustments)
