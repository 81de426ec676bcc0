"""Show metrics: what happened in a room, minute by minute, counted on every process.

Hot paths call `Meter.count` (a dict increment, no I/O). A background task writes what
was counted every `flush_s`, for all rooms in one pipelined round trip, into the room's
metrics hash (`keys.show_metrics`), adding to what the other processes wrote:

    "<minute>:<metric>"        the count in that UTC minute (epoch seconds // 60)
    "t:<metric>"               the total over the show
    "t:<metric>.<dimension>"   totals per product, sale, status or currency

Money metrics carry their currency in the name (`gmv.USD`), in minutes and totals alike.
Online viewers are sampled, and likes counted, by the presence sync (room_sync.lua) into
the same hash. Markers (pins, flash sales, coupon drops, giveaways, auctions) go to a
capped list for the report's timeline. A process killed with counts not yet written loses
them (at most `flush_s` of its counts); money totals in reports are read from the orders
themselves, never from these counters (docs/metrics.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from enum import StrEnum

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.core.loop import stop_tasks
from engine.store import keys

log = logging.getLogger("livecart.meter")

MARKERS_MAX = 1000


class Metric(StrEnum):
    """Counted metrics (docs/metrics.md defines each)."""

    VIEWS = "views"  # fresh joins (a resumed connection is not a new view)
    VIEWERS = "viewers"  # first joins of an identity (unique viewers, by minute)
    NEW_VIEWERS = "new_viewers"  # ... who never watched this host's shows before
    RETURNING_VIEWERS = "returning_viewers"
    COMMENTS = "comments"
    LIKES = "likes"  # written by room_sync.lua
    SHARES = "shares"  # share links handed out
    IMPRESSIONS = "impressions"  # pinned-card impressions, by product
    CLICKS = "clicks"  # product card taps, by product
    GRAB_ATTEMPTS = "grab_attempts"  # distinct grab requests answered, by sale
    GRAB_RESULTS = "grab_results"  # the same, by answer status
    RESERVATIONS = "reservations"  # grabs that reserved, by sale
    ORDERS = "orders"  # orders created, by sale
    PAID_ORDERS = "paid_orders"
    PAID_BUYERS = "paid_buyers"  # users whose first paid order this is
    GMV = "gmv"  # paid order totals, per currency
    REFUNDS = "refunds"
    REFUNDED = "refunded"  # refunded amounts, per currency
    COUPON_DROPS = "coupon_drops"
    COUPON_CLAIMS = "coupon_claims"
    COUPON_REDEMPTIONS = "coupon_redemptions"  # coupons used by paid orders
    GIVEAWAY_ENTRIES = "giveaway_entries"
    AUCTION_BIDS = "auction_bids"


class MarkerKind(StrEnum):
    PIN = "pin"
    FLASH_SALE = "flash_sale"
    COUPON_DROP = "coupon_drop"
    GIVEAWAY = "giveaway"
    AUCTION = "auction"


def minute_of(at_s: float) -> int:
    return int(at_s // 60)


def off() -> Meter:
    """A meter that counts nothing (services built without one, e.g. in unit tests)."""
    return Meter(None, enabled=False)


class Meter:
    def __init__(self, redis: Redis | None, *, enabled: bool = True, flush_s: float = 1.0) -> None:
        self.redis = redis
        self.enabled = enabled and redis is not None
        self.flush_s = flush_s
        self.pending: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.markers: defaultdict[str, list[bytes]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._sending = asyncio.Lock()

    # ---- counting (hot path: no I/O) -----------------------------------------------------

    def count(self, room: str, metric: Metric, n: int = 1, *, dim: str | None = None) -> None:
        """Add `n` to `metric` in this minute and in the totals (and the `dim` total)."""
        if not self.enabled or n == 0:
            return
        counts = self.pending[room]
        counts[f"{minute_of(time.time())}:{metric}"] += n
        counts[f"t:{metric}"] += n
        if dim is not None:
            counts[f"t:{metric}.{dim}"] += n

    def count_dim(self, room: str, metric: Metric, dim: str, n: int = 1) -> None:
        """Add `n` to one dimension's total only (an order counts once in `orders`, and once
        for each sale it buys from)."""
        if self.enabled and n:
            self.pending[room][f"t:{metric}.{dim}"] += n

    def money(self, room: str, metric: Metric, currency: str, amount: int) -> None:
        """Add an amount of money (minor units) to a per-currency metric."""
        if not self.enabled or amount == 0:
            return
        counts = self.pending[room]
        counts[f"{minute_of(time.time())}:{metric}.{currency}"] += amount
        counts[f"t:{metric}.{currency}"] += amount

    def mark(self, room: str, kind: MarkerKind | str, label: str) -> None:
        """A moment for the report's timeline (a pin, a flash sale starting ...); a feature
        marks with its own kind (its name)."""
        if not self.enabled:
            return
        marker = {"t": int(time.time() * 1000), "kind": str(kind), "label": label[:120]}
        self.markers[room].append(orjson.dumps(marker))

    # ---- writing -------------------------------------------------------------------------

    def start(self) -> None:
        if self.enabled:
            self._task = asyncio.create_task(self._run(), name="livecart-meter")

    async def stop(self) -> None:
        self._stopping = True  # the loop ends even if a cancellation is turned into an error
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None
        with contextlib.suppress(RedisError, OSError):
            await self.flush()

    async def _run(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.flush_s)
            try:
                await self.flush()
            except (RedisError, OSError) as exc:
                log.warning("metrics not written yet (kept for the next flush): %s", exc)

    async def flush(self) -> None:
        """Write everything counted so far; on failure it is kept for the next flush."""
        async with self._sending:
            pending, self.pending = self.pending, defaultdict(Counter)
            markers, self.markers = self.markers, defaultdict(list)
            if self.redis is None or (not pending and not markers):
                return
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for room, counts in pending.items():
                        for field, n in counts.items():
                            pipe.hincrby(keys.show_metrics(room), field, n)
                    for room, items in markers.items():
                        pipe.rpush(keys.show_markers(room), *items)
                        pipe.ltrim(keys.show_markers(room), -MARKERS_MAX, -1)
                    await pipe.execute()
            except BaseException:
                self._restore(pending, markers)
                raise

    def _restore(self, pending: dict[str, Counter[str]], markers: dict[str, list[bytes]]) -> None:
        # A failed pipeline may have applied part of its commands; re-sending all of it
        # could count some twice, losing it could count some never. Counts are not money
        # (docs/metrics.md), and a dead connection usually applied nothing: keep them.
        for room, counts in pending.items():
            self.pending[room].update(counts)
        for room, items in markers.items():
            self.markers[room][:0] = items
