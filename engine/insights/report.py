"""The post-live report of one show (`livecart report ROOM --out DIR`, CONTRACTS.md):
summary.json, metrics.csv (one row per minute), orders.csv and a self-contained
report.html, for a finished or a running show. Served from the console too
(engine/server/api/reports.py).

Audience, engagement and funnel counts come from the show metrics (engine/store/meter.py);
orders, paid orders, buyers, GMV, refunds and coupon redemptions are read from the orders
and coupons themselves, the records the audit checks (docs/metrics.md says which is which).
New and returning buyers need the books (the shop's earlier shows): given the ledger's
pool, a buyer is returning if they bought from the same shop in another show before this
one started (engine/ledger/customers.py); without it those figures are null.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from engine.commerce.catalog import Catalog, Product
from engine.commerce.orders import Order, load_orders
from engine.commerce.sales import Sale, SaleStore
from engine.core.csv_cells import rows_text
from engine.core.feature import Feature, load_features
from engine.core.settings import DEFAULT_FEATURES
from engine.insights.report_html import render
from engine.insights.show_metrics import (
    MINUTE_COLUMNS,
    SHORT_SHOW_S,
    Counters,
    SecondView,
    derived,
    main_currency,
    minute_rows,
    ratio,
    second_rows,
    sell_through_ms,
    sell_through_text,
)
from engine.ledger.customers import returning_buyers
from engine.rooms.rooms import Room, RoomStore
from engine.social.referrals import Referrals
from engine.store import keys
from engine.store.meter import Metric
from engine.store.redis_client import stream_rows, text
from engine.store.scripts import Scripts

log = logging.getLogger("livecart.report")

ORDER_COLUMNS = (
    "id", "user", "state", "currency", "units", "total", "refunded", "net", "coupons",
    "created_at", "paid_at", "referrer",
)  # fmt: skip


@dataclass(frozen=True)
class ShowData:
    """Everything the report reads of one room."""

    room: Room
    counters: Counters
    markers: list[dict[str, Any]]
    unique_viewers: int
    peak: int
    likes: int
    watch_ms: list[int]  # per signed-in viewer, sessions in progress included
    lineup: list[Product]
    sales: list[Sale]
    sell_through: dict[str, int | None]  # sale id -> ms
    orders: list[Order]
    coupon_states: Counter[str]
    referrers: dict[str, str]  # buyer -> referrer (attributed orders only)
    referral_gmv: dict[str, int]
    features: dict[str, Any] = field(default_factory=dict)  # each feature's report section
    # Per-second sources (short shows): comment times from the room log's entry ids (ms),
    # the log's oldest entry, and grab times of the sales' reservation records.
    comment_times: list[int] = field(default_factory=list)
    log_first: int | None = None
    grab_times: list[int] = field(default_factory=list)
    # Buyers who bought from the shop in an earlier show; None without the books.
    returning: set[str] | None = None


async def load_show(redis: Redis, room_id: str, *, at_ms: int | None = None,
                    features: Sequence[Feature] | None = None,
                    ledger: asyncpg.Pool | None = None) -> ShowData:  # fmt: skip
    scripts = Scripts()
    rooms = RoomStore(redis, scripts, 0)
    catalog = Catalog(redis, scripts, 0)
    room = await rooms.get(room_id)
    now = int(time.time() * 1000) if at_ms is None else at_ms
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.show_metrics(room_id))
        pipe.lrange(keys.show_markers(room_id), 0, -1)
        pipe.hlen(keys.uniques(room_id))
        pipe.get(keys.peak(room_id))
        pipe.get(keys.likes(room_id))
        pipe.hgetall(keys.watch_ms(room_id))
        pipe.hgetall(keys.watch_since(room_id))
        pipe.hgetall(keys.coupons(room_id))
        pipe.hgetall(keys.referred_by(room_id))
        (
            metrics,
            markers,
            uniques,
            peak,
            likes,
            done,
            since,
            coupons,
            referred,
        ) = await pipe.execute()
    watched: Counter[str] = Counter({text(u): int(ms) for u, ms in done.items()})
    for user, start in since.items():
        watched[text(user)] += max(0, now - int(start))
    sales = await SaleStore(redis, scripts, catalog, 0, 0).list(room_id, private=True)
    through, grabbed = {}, []
    for sale in sales:
        raw = await redis.hgetall(keys.sale_reservations(room_id, sale.id))
        records = [orjson.loads(v) for v in raw.values()]
        through[sale.id] = sell_through_ms(sale, records)
        grabbed += [int(r["c"]) for r in records if "c" in r]
    comment_times, log_first = await _comment_times(redis, room_id)
    referral = await Referrals(redis, "", scripts).report(room_id, 0)
    sections = {f.name: await f.report(redis, room_id)
                for f in (load_features(DEFAULT_FEATURES) if features is None else features)
                if f.report is not None}  # fmt: skip
    orders = await load_orders(redis, room_id)
    return ShowData(
        room=room,
        counters=Counters.parse(metrics),
        markers=[orjson.loads(m) for m in markers],
        unique_viewers=int(uniques),
        peak=int(peak or 0),
        likes=int(likes or 0),
        watch_ms=list(watched.values()),
        lineup=await catalog.lineup(room_id),
        sales=sales,
        sell_through=through,
        orders=orders,
        coupon_states=Counter(orjson.loads(v)["s"] for v in coupons.values()),
        referrers={text(v): text(r).split(" ")[0] for v, r in referred.items()},
        referral_gmv=referral["referred_gmv"],
        features=sections,
        comment_times=comment_times,
        log_first=log_first,
        grab_times=grabbed,
        returning=await _returning(ledger, room, orders, now),
    )


async def _returning(ledger: asyncpg.Pool | None, room: Room, orders: list[Order],
                     now: int) -> set[str] | None:  # fmt: skip
    """This show's buyers who bought from its shop in another show before it started; None
    without the books, or when they cannot be read (the report never fails for them)."""
    if ledger is None:
        return None
    buyers = {order.user for order in _sold(orders)}
    if not buyers:
        return set()
    started = room.live_at or room.created_at or now
    try:
        return await returning_buyers(ledger, room.host, room.id, buyers, before=started)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        log.warning("report of %s: returning buyers unknown: %s", room.id, exc)
        return None


async def _comment_times(redis: Redis, room_id: str) -> tuple[list[int], int | None]:
    """When each comment still in the room log was posted (its entry id's milliseconds), and
    the log's oldest entry (the log is capped at the stream_maxlen setting)."""
    entries = stream_rows(await redis.xrange(keys.room_stream(room_id)))
    stamps = [(int(text(entry_id).split("-")[0]), fields.get(b"k"))
              for entry_id, fields in entries]  # fmt: skip
    times = [at for at, kind in stamps if kind is not None and text(kind) == "comment"]
    return times, stamps[0][0] if stamps else None


def second_view(show: ShowData, summary: dict[str, Any]) -> SecondView | None:
    """The per-second view of a show shorter than SHORT_SHOW_S, else None."""
    start = summary.get("started_at")
    end = summary.get("ended_at") or summary.get("generated_at")
    if not start or not end or end - start >= SHORT_SHOW_S * 1000:
        return None
    currency = summary.get("currency")
    paid = [(int(o.fields["paid_at"]), o.total - o.refunded) for o in _sold(show.orders)
            if o.currency == currency and "paid_at" in o.fields]  # fmt: skip
    rows = second_rows(start, end, comments=show.comment_times, reservations=show.grab_times,
                       orders=(o.created_at for o in show.orders), paid=paid)  # fmt: skip
    logged = sum(1 for at in show.comment_times if start <= at)
    trimmed = logged < summary.get("comments", 0) and show.log_first is not None
    return SecondView(start, end, rows, show.log_first if trimmed else None)


def _sold(orders: list[Order]) -> list[Order]:
    return [order for order in orders if order.state.counts_as_sale]


def _product_rows(show: ShowData) -> list[dict[str, Any]]:
    counters = show.counters
    impressions, clicks = counters.by_dim(Metric.IMPRESSIONS), counters.by_dim(Metric.CLICKS)
    sale_product = {sale.id: sale.product for sale in show.sales}
    attempts: Counter[str] = Counter()
    reservations: Counter[str] = Counter()
    units: Counter[str] = Counter()
    for sale in show.sales:
        attempts[sale.product] += counters.total(Metric.GRAB_ATTEMPTS, sale.id)
        reservations[sale.product] += counters.total(Metric.RESERVATIONS, sale.id)
        units[sale.product] += sale.sold
    orders: defaultdict[str, set[str]] = defaultdict(set)
    value: Counter[str] = Counter()
    for order in show.orders:
        for line in order.lines:
            product = line.get("product") or sale_product.get(line["sale"], "")
            orders[product].add(order.id)
            if order.state.counts_as_sale:
                value[product] += line["unit_price"] * line["quantity"]
    return [
        {"id": p.id, "title": p.title, "impressions": impressions.get(p.id, 0),
         "clicks": clicks.get(p.id, 0), "grab_attempts": attempts[p.id],
         "reservations": reservations[p.id], "orders": len(orders[p.id]),
         "units_sold": units[p.id], "gmv": value[p.id],
         "image": p.images[0] if p.images else None}
        for p in show.lineup
    ]  # fmt: skip


def _flash_sales(show: ShowData) -> list[dict[str, Any]]:
    rows = []
    for sale in show.sales:
        if sale.private is not None:
            continue
        through = show.sell_through.get(sale.id)
        rows.append({
            "sale": sale.id, "product": sale.product, "sku": sale.sku, "title": sale.title,
            "allotment": sale.units, "sold": sale.sold, "reserved": sale.reserved,
            "started_at": sale.starts_at, "sold_out_after_ms": through,
            "sell_through": sell_through_text(sale.units, through),
        })  # fmt: skip
    return rows


def summarize(show: ShowData, *, generated_at: int) -> dict[str, Any]:
    """summary.json (CONTRACTS.md's fields and more; docs/metrics.md defines each)."""
    counters, room = show.counters, show.room
    sold = _sold(show.orders)
    gmv: Counter[str] = Counter()
    refunded: Counter[str] = Counter()
    for order in sold:
        gmv[order.currency] += order.total - order.refunded
        refunded[order.currency] += order.refunded
    fallback = show.lineup[0].currency if show.lineup else None
    currency = main_currency(dict(gmv), fallback)
    products = _product_rows(show)
    clicks = sum(row["clicks"] for row in products)
    views = counters.total(Metric.VIEWS)
    span = counters.span_ms()
    started = room.live_at or (span[0] if span else None)
    ended = room.ended_at
    duration_end = ended or generated_at
    main_gmv = gmv[currency] if currency else 0
    paid_at = [int(o.fields["paid_at"]) for o in sold
               if o.currency == currency and "paid_at" in o.fields]  # fmt: skip
    return {
        "room": room.id, "title": room.title, "state": room.state.value, "currency": currency,
        "generated_at": generated_at, "started_at": started, "ended_at": ended,
        "duration_s": max(0, (duration_end - started) // 1000) if started else 0,
        "unique_viewers": show.unique_viewers,
        "new_viewers": counters.total(Metric.NEW_VIEWERS),
        "returning_viewers": counters.total(Metric.RETURNING_VIEWERS),
        "views": views, "peak_concurrent": show.peak,
        "average_watch_s": round(sum(show.watch_ms) / len(show.watch_ms) / 1000, 1)
        if show.watch_ms else 0.0,
        "comments": counters.total(Metric.COMMENTS), "likes": show.likes,
        "shares": counters.total(Metric.SHARES),
        "product_impressions": sum(row["impressions"] for row in products),
        "product_clicks": clicks,
        "grab_attempts": counters.total(Metric.GRAB_ATTEMPTS),
        "grab_results": dict(sorted(counters.by_dim(Metric.GRAB_RESULTS).items())),
        "reservations": counters.total(Metric.RESERVATIONS),
        "orders": len(show.orders), "paid_orders": len(sold),
        "paid_buyers": len({order.user for order in sold}),
        **_buyers(show, {order.user for order in sold}),
        "gmv": main_gmv, "gmv_by_currency": dict(sorted(gmv.items())),
        "first_paid_at": min(paid_at, default=None),
        "refunds": sum(len(order.refunds()) for order in sold),
        "refunded": refunded[currency] if currency else 0,
        "coupon_drops": counters.total(Metric.COUPON_DROPS),
        "coupon_claims": sum(show.coupon_states.values()),
        "coupon_redemptions": show.coupon_states["used"],
        "giveaway_entries": counters.total(Metric.GIVEAWAY_ENTRIES),
        "auction_bids": counters.total(Metric.AUCTION_BIDS),
        **derived(
            viewers=show.unique_viewers, views=views, clicks=clicks,
            grab_attempts=counters.total(Metric.GRAB_ATTEMPTS),
            reservations=counters.total(Metric.RESERVATIONS), orders=len(show.orders),
            paid_orders=len(sold), paid_buyers=len({order.user for order in sold}),
            gmv=main_gmv, claims=sum(show.coupon_states.values()),
            redemptions=show.coupon_states["used"],
            referral_gmv=show.referral_gmv.get(currency, 0) if currency else 0,
        ),
        "flash_sales": _flash_sales(show),
        "products": products,
        **show.features,
    }  # fmt: skip


def _buyers(show: ShowData, buyers: set[str]) -> dict[str, Any]:
    """New and returning buyers and the repeat-buyer rate; null without the books."""
    if show.returning is None:
        return {"new_buyers": None, "returning_buyers": None, "repeat_buyer_rate": None}
    returning = len(buyers & show.returning)
    return {"new_buyers": len(buyers) - returning, "returning_buyers": returning,
            "repeat_buyer_rate": ratio(returning, len(buyers))}  # fmt: skip


def _csv(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> bytes:
    return rows_text(columns, rows, header=True).encode()


def order_rows(show: ShowData) -> list[dict[str, Any]]:
    return [
        {"id": o.id, "user": o.user, "state": o.state.value, "currency": o.currency,
         "units": sum(line["quantity"] for line in o.lines), "total": o.total,
         "refunded": o.refunded, "net": o.total - o.refunded if o.state.counts_as_sale else 0,
         "coupons": " ".join(o.coupons), "created_at": o.created_at,
         "paid_at": o.fields.get("paid_at"), "referrer": show.referrers.get(o.user)}
        for o in show.orders
    ]  # fmt: skip


def build(
    show: ShowData, *, generated_at: int | None = None, origin: str | None = None
) -> dict[str, bytes]:
    """The report's four files, by name; `origin` (the engine's, as `http://host:port`)
    makes the page's same-origin image paths whole URLs (report_html.thumbnail)."""
    summary = summarize(show, generated_at=generated_at or int(time.time() * 1000))
    minutes = minute_rows(show.counters, summary["currency"])
    return {
        "summary.json": orjson.dumps(summary, option=orjson.OPT_INDENT_2),
        "metrics.csv": _csv(MINUTE_COLUMNS, minutes),
        "orders.csv": _csv(ORDER_COLUMNS, order_rows(show)),
        "report.html": render(
            summary, minutes, show.markers, second_view(show, summary), origin=origin
        ).encode(),
    }


def write(files: dict[str, bytes], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        path = out / name
        path.write_bytes(data)
        paths.append(path)
    return paths
