"""Orders for downstream systems (order management, ERP): the room's order events stream
read through a Redis consumer group, and exports of the orders themselves.

Every order and payment state change is appended to `{room}:order_events` by the same
script that makes the change, so the feed can never miss or invent one. A consumer group
gives each event to one consumer of the group; events stay pending until acknowledged,
and a consumer that died leaves them to be claimed by another after `min_idle_ms`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from engine.commerce.orders import Order
from engine.core.csv_cells import rows_text
from engine.store import keys
from engine.store.redis_client import text

CSV_COLUMNS = [
    "id", "user", "device", "state", "review", "currency", "subtotal", "discount", "shipping",
    "total", "refunded", "coupons", "lines", "created_at", "expires_at", "paid_at", "payment",
    "late_payment", "closed_at", "reason", "fulfilled_at", "name", "line1", "line2", "city",
    "region", "postal_code", "country", "email", "phone",
]  # fmt: skip


def csv_row(order: Order) -> dict[str, Any]:
    wire = order.to_wire()
    pricing = wire["pricing"]
    row = {column: wire.get(column) for column in CSV_COLUMNS}
    row.update({k: pricing[k] for k in ("subtotal", "discount", "shipping", "total")})
    row["coupons"] = " ".join(wire["coupons"])
    row["lines"] = "; ".join(
        f"{line['sku']} x{line['quantity']} @{line['unit_price']} ({line['reservation']})"
        for line in wire["lines"]
    )
    row.update(wire["shipping_address"])
    row.update(wire["contact"])
    return {k: "" if v is None else v for k, v in row.items()}


def export(orders: Iterable[Order], fmt: str) -> Iterator[str]:
    """The orders as CSV (header first) or JSON lines, one chunk per order."""
    if fmt == "jsonl":
        for order in orders:
            yield orjson.dumps(order.to_wire()).decode() + "\n"
        return
    if fmt != "csv":
        raise ValueError(f"unknown export format {fmt!r} (csv or jsonl)")
    yield rows_text(CSV_COLUMNS, [], header=True)
    for order in orders:
        yield rows_text(CSV_COLUMNS, [csv_row(order)], header=False)


Event = tuple[str, dict[str, str]]


class OrderFeed:
    """One consumer of a consumer group on a room's order events."""

    def __init__(self, redis: Redis, room: str, group: str, consumer: str) -> None:
        self.redis = redis
        self.stream = keys.order_events(room)
        self.group = group
        self.consumer = consumer

    async def ensure_group(self, start: str = "0") -> None:
        """Create the group (from the first event by default) unless it exists."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    @staticmethod
    def _events(rows: Any) -> list[Event]:
        return [(text(i), {text(k): text(v) for k, v in f.items()}) for i, f in rows or []]

    async def read(self, count: int = 100, block_ms: int | None = None) -> list[Event]:
        """New events for this consumer (they stay pending until `ack`)."""
        reply: Any = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        return self._events(reply[0][1]) if reply else []

    async def pending(self, count: int = 100) -> list[Event]:
        """Events delivered to this consumer and not yet acknowledged (after a crash)."""
        reply: Any = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: "0"}, count=count
        )
        return self._events(reply[0][1]) if reply else []

    async def claim_stale(self, min_idle_ms: int, count: int = 100) -> list[Event]:
        """Take over events another consumer received but did not acknowledge in time."""
        reply: Any = await self.redis.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_ms, "0-0", count=count
        )
        return self._events(reply[1])

    async def ack(self, event_ids: list[str]) -> int:
        if not event_ids:
            return 0
        return int(await self.redis.xack(self.stream, self.group, *event_ids))
