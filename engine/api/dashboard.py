"""The live dashboard for hosts and moderators: audience, chat pace, grabs, orders, GMV
and conversion, and per-product numbers, computed on each call from the state the engine
already keeps (nothing new is written on the hot path).

Sales, reservations and orders come from the audit's atomic snapshot (engine/audit.py);
presence, likes, the last minute of the room log, grab answers and card impressions are
read beside it, so they may be a few milliseconds apart from the snapshot.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import orjson
from redis.asyncio import Redis
from starlette.routing import Route

from engine import keys
from engine.api.base import MODERATORS, Call, route
from engine.audit import Snapshot, snapshot
from engine.audit_commerce import SOLD_STATES, net_gmv
from engine.redis_client import stream_rows
from engine.sales import Sale, now_ms

COMMENT_WINDOW_MS = 60_000


async def _comments_since(redis: Redis, room: str, since_ms: int) -> int:
    """Comment entries in the room log with an id time at or after `since_ms` (deleted
    comments are gone from the log and do not count)."""
    rows = stream_rows(await redis.xrange(keys.room_stream(room), min=f"{since_ms}-0"))
    return sum(1 for _, fields in rows if fields.get(b"k") == b"comment")


async def _grab_attempts(redis: Redis, room: str, sale_ids: list[str]) -> dict[str, int]:
    """Distinct grab requests answered per sale (one answer per user and request id, whatever
    it said: reserved, sold out, limit reached...; retries of a request count once)."""
    async with redis.pipeline(transaction=False) as pipe:
        for sale_id in sale_ids:
            pipe.hlen(keys.sale_answers(room, sale_id))
        counts = await pipe.execute()
    return {sale_id: int(n) for sale_id, n in zip(sale_ids, counts, strict=True)}


def _sell_through_ms(sale: Sale, records: list[dict[str, Any]]) -> int | None:
    """For a sale with no units left: when its last unit still held or sold was grabbed,
    minus its start. None while units are available (or if it never had a grab)."""
    if sale.available > 0:
        return None
    taken = [r["c"] for r in records if r["s"] in {"held", "sold"} and "c" in r]
    return max(taken) - sale.starts_at if taken else None


def _coupon_use(snap: Snapshot) -> dict[str, dict[str, int]]:
    """Per drop: its coupons locked to an unpaid order and used by a paid one."""
    states: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for record in snap.coupons.values():
        states[record["d"]][record["s"]] += 1
    return {drop: {"locked": n["locked"], "used": n["used"]} for drop, n in sorted(states.items())}


def _money(snap: Snapshot) -> dict[str, Any]:
    gmv: Counter[str] = Counter()
    paid: Counter[str] = Counter()
    buyers: set[str] = set()
    for order in snap.orders.values():
        if order.get("state") in SOLD_STATES:
            currency = order["currency"]
            gmv[currency] += net_gmv(order)
            paid[currency] += 1
            buyers.add(order["user"])
    return {
        "orders": len(snap.orders),
        "paid_orders": sum(paid.values()),
        "paid_buyers": len(buyers),
        "gmv": {c: gmv[c] for c in sorted(gmv)},
        "average_order_value": {c: gmv[c] // paid[c] for c in sorted(paid)},
    }


@route("/api/rooms/{room}/dashboard", ["GET"], roles=MODERATORS)
async def dashboard(call: Call) -> Any:
    """The dashboard's figures (docs/api.md, "Dashboard")."""
    await call.node.rooms.get(call.room)
    redis = call.node.redis
    server_time = now_ms()
    snap = await snapshot(redis, call.room)
    stats = await call.node.presence.read(call.room)
    comments = await _comments_since(redis, call.room, server_time - COMMENT_WINDOW_MS)
    attempts = await _grab_attempts(redis, call.room, list(snap.sales))
    impressions = await call.node.catalog.impressions(call.room)
    lineup = await call.node.catalog.lineup(call.room)

    per_product: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"reservations": 0, "sold": 0, "grab_attempts": 0, "sell_through_ms": None}
    )
    for sale_id, (sale_hash, raw_reservations, *_) in snap.sales.items():
        if not sale_hash:
            continue
        sale = Sale.from_hash(sale_hash)
        records = [orjson.loads(v) for v in raw_reservations.values()]
        row = per_product[sale.product]
        row["reservations"] += len(records)
        row["sold"] += sale.sold
        row["grab_attempts"] += attempts.get(sale_id, 0)
        through = _sell_through_ms(sale, records)
        if through is not None and (row["sell_through_ms"] is None
                                    or through < row["sell_through_ms"]):  # fmt: skip
            row["sell_through_ms"] = through
    products = [
        {"id": p.id, "title": p.title, "views": impressions.get(p.id, 0), **per_product[p.id]}
        for p in lineup
    ]
    money = _money(snap)
    return {
        "room": call.room,
        "server_time": server_time,
        **stats.to_wire(),
        "comments_last_minute": comments,
        "grab_attempts": sum(attempts.values()),
        "reservations": sum(row["reservations"] for row in per_product.values()),
        **money,
        "conversion": round(money["paid_buyers"] / stats.unique, 4) if stats.unique else 0.0,
        "products": products,
        "coupon_drops": _coupon_use(snap),
    }


ROUTES: list[Route] = [dashboard]
