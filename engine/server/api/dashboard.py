"""The live dashboard for hosts and moderators: audience, chat pace, the funnel, grabs,
orders, GMV and conversion, per-product numbers and the show's minutes so far.

It reads the show metrics (engine/store/meter.py: one hash of per-minute and total counters),
presence, the lineup and the sales: a few cheap reads however busy the room, so a console
polling every few seconds costs the same at 100 viewers or 100,000. Counters reach Redis
once per `metrics_flush_ms` from each process, so figures trail events by about that; the
post-live report (engine/insights/report.py) reads money from the orders themselves.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

import orjson
from starlette.routing import Route

from engine.commerce.sales import Sale
from engine.core.clock import now_ms
from engine.insights.show_metrics import (
    Counters,
    derived,
    main_currency,
    minute_rows,
    sell_through_ms,
)
from engine.server.api.base import MODERATORS, Call, route
from engine.store import keys
from engine.store.meter import Metric, minute_of

MAX_MINUTES = 240


async def read_counters(call: Call) -> tuple[Counters, list[dict[str, Any]]]:
    """The room's counters and timeline markers."""
    async with call.node.redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.show_metrics(call.room))
        pipe.lrange(keys.show_markers(call.room), 0, -1)
        raw, markers = await pipe.execute()
    return Counters.parse(raw), [orjson.loads(m) for m in markers]


def comments_last_minute(counters: Counters, at_s: float) -> int:
    """Comments in the last 60 s, estimated from the per-minute counts: this minute's, plus
    the previous minute's in proportion to the part of it still inside the window."""
    minute = minute_of(at_s)
    now = counters.minutes.get(minute, {}).get(str(Metric.COMMENTS), 0)
    before = counters.minutes.get(minute - 1, {}).get(str(Metric.COMMENTS), 0)
    return now + round(before * (1 - (at_s % 60) / 60))


async def _coupon_use(call: Call) -> dict[str, dict[str, int]]:
    """Per drop: its coupons locked to an unpaid order and used by a paid one."""
    states: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for raw in (await call.node.redis.hgetall(keys.coupons(call.room))).values():
        record = orjson.loads(raw)
        states[record["d"]][record["s"]] += 1
    return {drop: {"locked": n["locked"], "used": n["used"]} for drop, n in sorted(states.items())}


# A sale's first sell-out never changes once it happened: remembered, so later polls do
# not read its reservations again (bounded: the oldest entries go first).
_SOLD_OUT_AFTER: dict[tuple[str, str], int] = {}
_SOLD_OUT_MAX = 10_000


async def _sell_through(call: Call, sale: Sale) -> int | None:
    """The sale's sell-through time, read from its reservations when it is seen sold out
    (a sale that sold out and got units back before any poll saw it shows in the report)."""
    key = (call.room, sale.id)
    if key in _SOLD_OUT_AFTER:
        return _SOLD_OUT_AFTER[key]
    if sale.available > 0:
        return None
    raw = await call.node.redis.hgetall(keys.sale_reservations(call.room, sale.id))
    through = sell_through_ms(sale, (orjson.loads(v) for v in raw.values()))
    if through is not None:
        if len(_SOLD_OUT_AFTER) >= _SOLD_OUT_MAX:
            del _SOLD_OUT_AFTER[next(iter(_SOLD_OUT_AFTER))]
        _SOLD_OUT_AFTER[key] = through
    return through


async def _products(call: Call, counters: Counters, sales: list[Sale]) -> list[dict[str, Any]]:
    impressions = counters.by_dim(Metric.IMPRESSIONS)
    clicks = counters.by_dim(Metric.CLICKS)
    rows: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"reservations": 0, "sold": 0, "grab_attempts": 0, "sell_through_ms": None}
    )
    for sale in sales:
        row = rows[sale.product]
        row["reservations"] += counters.total(Metric.RESERVATIONS, sale.id)
        row["grab_attempts"] += counters.total(Metric.GRAB_ATTEMPTS, sale.id)
        row["sold"] += sale.sold
        through = await _sell_through(call, sale)
        if through is not None and (row["sell_through_ms"] is None
                                    or through < row["sell_through_ms"]):  # fmt: skip
            row["sell_through_ms"] = through
    return [
        {"id": p.id, "title": p.title, "views": impressions.get(p.id, 0),
         "clicks": clicks.get(p.id, 0), **rows[p.id]}
        for p in await call.node.catalog.lineup(call.room)
    ]  # fmt: skip


def _net_gmv(counters: Counters) -> dict[str, int]:
    refunded = counters.by_dim(Metric.REFUNDED)
    paid = counters.by_dim(Metric.GMV)
    return {c: paid.get(c, 0) - refunded.get(c, 0) for c in sorted(paid.keys() | refunded.keys())}


@route("/api/rooms/{room}/dashboard", ["GET"], roles=MODERATORS)
async def dashboard(call: Call) -> Any:
    """The dashboard's figures (docs/api.md, "Dashboard"; docs/metrics.md defines them)."""
    await call.node.rooms.get(call.room)
    server_time = now_ms()
    stats = await call.node.presence.read(call.room)
    counters, markers = await read_counters(call)
    sales = await call.node.sales.list(call.room, private=True)
    gmv = _net_gmv(counters)
    paid_orders = counters.total(Metric.PAID_ORDERS)
    paid_by = counters.by_dim(Metric.PAID_ORDERS)
    currency = main_currency(gmv)
    figures = derived(
        viewers=stats.unique, views=counters.total(Metric.VIEWS),
        clicks=counters.total(Metric.CLICKS), grab_attempts=counters.total(Metric.GRAB_ATTEMPTS),
        reservations=counters.total(Metric.RESERVATIONS), orders=counters.total(Metric.ORDERS),
        paid_orders=paid_orders, paid_buyers=counters.total(Metric.PAID_BUYERS),
        gmv=gmv.get(currency, 0) if currency else 0,
        claims=counters.total(Metric.COUPON_CLAIMS),
        redemptions=counters.total(Metric.COUPON_REDEMPTIONS), referral_gmv=0,
    )  # fmt: skip
    views = counters.total(Metric.VIEWS)
    return {
        "room": call.room,
        "server_time": server_time,
        **stats.to_wire(),
        "views": views,
        "shares": counters.total(Metric.SHARES),
        "clicks": counters.total(Metric.CLICKS),
        "comments_last_minute": comments_last_minute(counters, time.time()),
        "grab_attempts": counters.total(Metric.GRAB_ATTEMPTS),
        "reservations": counters.total(Metric.RESERVATIONS),
        "orders": counters.total(Metric.ORDERS),
        "paid_orders": paid_orders,
        "paid_buyers": counters.total(Metric.PAID_BUYERS),
        "gmv": gmv,
        "average_order_value": {c: v // n for c, v in gmv.items() if (n := paid_by.get(c, 0))},
        "gmv_per_thousand_views": {c: v * 1000 // views for c, v in gmv.items()} if views else {},
        "conversion": figures["conversion"],
        "click_to_order_rate": figures["click_to_order_rate"],
        "coupon_redemption_rate": figures["coupon_redemption_rate"],
        "coupon_claims": counters.total(Metric.COUPON_CLAIMS),
        "funnel": figures["funnel"],
        "products": await _products(call, counters, sales),
        "coupon_drops": await _coupon_use(call),
        "minutes": minute_rows(counters, currency)[-MAX_MINUTES:],
        "markers": markers,
    }


ROUTES: list[Route] = [dashboard]
