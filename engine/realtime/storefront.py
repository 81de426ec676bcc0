"""What a room is selling right now, as one process's hub shows it: the pinned product's
card, the stock of its running sales, its open coupon drops, and what each feature shows of
the room (for welcomes: a joining viewer sees them without asking the HTTP API).

Stock and drop counters are read from Redis once per sync interval (one round trip for
all running sales and open drops of the room) and go out in the next tick only when they
changed, so viewers see availability at most once per tick however fast grabs arrive,
and see it rise when units come back.
Product card impressions (a pin reaching a viewer, or a joiner seeing the pinned card)
are counted here and added to Redis in the same rhythm.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from engine.commerce.coupons import Drop, Template
from engine.commerce.sales import Sale, SaleState
from engine.core.clock import now_ms
from engine.core.errors import NotFoundError
from engine.core.feature import RoomView
from engine.realtime.rush_pace import RUSH_QUIET_S, StockPace
from engine.store import keys
from engine.store.meter import Metric
from engine.store.roomlog import Entry

if TYPE_CHECKING:
    from engine.realtime.services import RoomServices

log = logging.getLogger("livecart.storefront")


def drop_card(template: Template, drop: Drop, now: int) -> dict[str, Any]:
    """A drop as viewers see it: the template's terms, the drop and its counters."""
    return {**template.card(), **drop.to_wire(now), "drop": drop.id}


class Storefront:
    def __init__(self, room_id: str, node: RoomServices) -> None:
        self.room_id = room_id
        self.node = node
        self.product: dict[str, Any] | None = None
        self.sales: dict[str, Sale | None] = {}  # running sales; None until loaded
        self.shown: dict[str, dict[str, Any]] = {}  # stock last put in a tick
        self.pace = StockPace()  # a rushed sale's counters: not in every tick
        self.changes: dict[str, dict[str, Any]] = {}
        self.impressions: Counter[str] = Counter()
        self.stale: set[str] = set()  # sales whose terms changed since they were read
        # Open drops: id -> card with counters (None until read from Redis, so every process
        # shows the same card however it learnt of the drop).
        self.drops: dict[str, dict[str, Any] | None] = {}
        self.drops_shown: dict[str, dict[str, Any]] = {}
        self.drop_changes: dict[str, dict[str, Any]] = {}
        # What each feature shows in this room (engine/core/feature.py), by its name, and
        # the room-log entry kinds it follows.
        self.views: dict[str, RoomView] = {
            f.name: f.room_view(node.feature_services[f.name], room_id)
            for f in node.features if f.room_view is not None
        }  # fmt: skip
        self.view_kinds = {f.name: f.entry_kinds for f in node.features if f.name in self.views}

    async def load(self, pinned_product: str | None) -> None:
        if pinned_product:
            self.product = (await self.node.catalog.get(self.room_id, pinned_product)).to_wire()
        now = now_ms()
        for sale in await self.node.sales.list(self.room_id):
            if sale.state(now) is not SaleState.ENDED:
                self.sales[sale.id] = sale
                self.shown[sale.id] = sale.stock(now)
        templates = {t.id: t for t in await self.node.coupons.templates(self.room_id)}
        for drop in await self.node.coupons.drops(self.room_id):
            if drop.state(now) != "ended" and drop.template in templates:
                self.drops[drop.id] = drop_card(templates[drop.template], drop, now)
                self.drops_shown[drop.id] = drop.counters(now)

    async def _load_drops(self) -> None:
        """Read the cards of drops this process learnt of from the room log."""
        for drop_id in [d for d, card in self.drops.items() if card is None]:
            try:
                drop = await self.node.coupons.get_drop(self.room_id, drop_id)
                template = await self.node.coupons.template(self.room_id, drop.template)
            except NotFoundError:
                del self.drops[drop_id]
                continue
            now = now_ms()
            self.drops[drop_id] = drop_card(template, drop, now)
            self.drops_shown[drop_id] = self.drop_changes[drop_id] = drop.counters(now)

    def apply(self, entry: Entry) -> None:
        """A delivered log entry that changes what the room is selling."""
        self._apply_to_views(entry)
        if entry.kind == "product_pinned":
            self.product = entry.data
        elif entry.kind == "product_unpinned":
            self.product = None
        elif entry.kind == "product_updated" and self.product and self.product["id"] == entry.ref:
            self.product = entry.data
        elif entry.kind == "coupon_dropped":
            self.drops.setdefault(entry.ref, None)
        elif entry.kind in {"sale_announced", "sale_updated", "sale_ended"}:
            # (Re)load its terms and stock; until then a welcome loads it on demand.
            self.stale.add(entry.ref)
            self.sales.setdefault(entry.ref, None)

    def _apply_to_views(self, entry: Entry) -> None:
        for name, kinds in self.view_kinds.items():
            if entry.kind.startswith(kinds):
                self.views[name].apply(entry.kind, entry.ref, entry.data)

    def seen(self, viewers: int) -> None:
        """The pinned card reached `viewers` viewers."""
        if self.product is not None and viewers > 0:
            self.impressions[self.product["id"]] += viewers

    async def poll(self) -> None:
        """Read the running sales' stock; note what changed for the next tick."""
        if self.impressions:
            counts, self.impressions = dict(self.impressions), Counter()
            await self.node.catalog.add_impressions(self.room_id, counts)
            for product_id, n in counts.items():
                self.node.meter.count(self.room_id, Metric.IMPRESSIONS, n, dim=product_id)
        await self._poll_views()
        if not self.sales and not self.drops:
            return
        await self._load_drops()
        redis = self.node.redis
        ids = list(self.sales)
        drop_ids = list(self.drops)
        async with redis.pipeline(transaction=False) as pipe:
            for sale_id in ids:
                pipe.hgetall(keys.sale(self.room_id, sale_id))
                pipe.scard(keys.sale_waiting(self.room_id, sale_id))
            for drop_id in drop_ids:
                pipe.hgetall(keys.coupon_drop(self.room_id, drop_id))
            raws = await pipe.execute()
        now, clock = now_ms(), time.monotonic()
        self._drops_polled(drop_ids, raws[2 * len(ids) :], now)
        sale_raws = raws[: 2 * len(ids) : 2]
        waiting = raws[1 : 2 * len(ids) : 2]
        self.stale.difference_update(ids)
        for sale_id, raw, waiters in zip(ids, sale_raws, waiting, strict=True):
            if not raw:
                self.sales.pop(sale_id, None)
                continue
            sale = Sale.from_hash(raw, int(waiters))
            self.sales[sale_id] = sale
            stock = sale.stock(now)
            shown = self.shown.get(sale_id)
            rushed = self.node.stock.grabbed_within(self.room_id, sale_id, RUSH_QUIET_S)
            if stock != shown and self.pace.due(sale_id, stock, shown, rushed, clock):
                self.shown[sale_id] = self.changes[sale_id] = stock
            if stock["state"] == SaleState.ENDED.value and sale_id not in self.changes:
                # Its final state has gone out: stop polling it.
                del self.sales[sale_id]
                self.shown.pop(sale_id, None)
                self.pace.forget(sale_id)

    async def _poll_views(self) -> None:
        for name, view in self.views.items():
            try:
                await view.poll()
            except (RedisError, OSError):
                raise
            except Exception:  # one feature's fault must not stop the room's stock and drops
                log.exception("feature %s: its room view failed to poll room %s", name,
                              self.room_id)  # fmt: skip

    def _drops_polled(self, drop_ids: list[str], raws: list[Any], now: int) -> None:
        for drop_id, raw in zip(drop_ids, raws, strict=True):
            if not raw:
                self.drops.pop(drop_id, None)
                continue
            counters = Drop.from_hash(raw).counters(now)
            card = self.drops[drop_id]
            assert card is not None
            card.update(counters)
            if counters != self.drops_shown.get(drop_id):
                self.drops_shown[drop_id] = self.drop_changes[drop_id] = counters
            if counters["state"] == "ended" and drop_id not in self.drop_changes:
                del self.drops[drop_id]
                self.drops_shown.pop(drop_id, None)

    def take_changes(self) -> dict[str, Any]:
        """What changed since the last tick, by its tick field: `stock` and `drops`
        counters, and each feature's changes under its name (nothing: an empty dict)."""
        changes: dict[str, Any] = {}
        if self.changes:
            changes["stock"], self.changes = self.changes, {}
        if self.drop_changes:
            changes["drops"], self.drop_changes = self.drop_changes, {}
        for name, view in self.views.items():
            changed = view.take_changes()
            if changed is not None:
                changes[name] = changed
        return changes

    async def refresh(self) -> None:
        """Read sales and drops announced or changed since the last poll, and what the
        features show (before a welcome)."""
        await self._load_drops()
        for view in self.views.values():
            await view.refresh()
        for sale_id in list(self.stale):
            self.stale.discard(sale_id)
            if sale_id in self.sales:
                self.sales[sale_id] = await self.node.sales.get(self.room_id, sale_id)

    def welcome(self) -> dict[str, Any]:
        now = now_ms()
        return {
            "product": self.product,
            "sales": [sale.to_wire(now) for sale in self.sales.values() if sale is not None],
            "drops": [card for card in self.drops.values() if card is not None],
            # What checkout adds to an order (LIVECART_SHIPPING_FEE): a page can show the
            # total before the order is placed.
            "shipping_fee": self.node.settings.shipping_fee,
            **{name: view.welcome() for name, view in self.views.items()},
        }
