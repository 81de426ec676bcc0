"""What a room is selling right now, as one process's hub shows it: the pinned product's
card and the stock of its running sales.

Stock is read from Redis once per sync interval (one round trip for all running sales of
the room) and goes out in the next tick only when it changed, so viewers see availability
at most once per tick however fast grabs arrive, and see it rise when units come back.
Product card impressions (a pin reaching a viewer, or a joiner seeing the pinned card)
are counted here and added to Redis in the same rhythm.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from engine import keys
from engine.roomlog import Entry
from engine.sales import Sale, SaleState, now_ms

if TYPE_CHECKING:
    from engine.node import Node


class Storefront:
    def __init__(self, room_id: str, node: Node) -> None:
        self.room_id = room_id
        self.node = node
        self.product: dict[str, Any] | None = None
        self.sales: dict[str, Sale | None] = {}  # running sales; None until loaded
        self.shown: dict[str, dict[str, Any]] = {}  # stock last put in a tick
        self.changes: dict[str, dict[str, Any]] = {}
        self.impressions: Counter[str] = Counter()
        self.stale: set[str] = set()  # sales whose terms changed since they were read

    async def load(self, pinned_product: str | None) -> None:
        if pinned_product:
            self.product = (await self.node.catalog.get(self.room_id, pinned_product)).to_wire()
        now = now_ms()
        for sale in await self.node.sales.list(self.room_id):
            if sale.state(now) is not SaleState.ENDED:
                self.sales[sale.id] = sale
                self.shown[sale.id] = sale.stock(now)

    def apply(self, entry: Entry) -> None:
        """A delivered log entry that changes what the room is selling."""
        if entry.kind == "product_pinned":
            self.product = entry.data
        elif entry.kind == "product_unpinned":
            self.product = None
        elif entry.kind == "product_updated" and self.product and self.product["id"] == entry.ref:
            self.product = entry.data
        elif entry.kind in {"sale_announced", "sale_updated", "sale_ended"}:
            # (Re)load its terms and stock; until then a welcome loads it on demand.
            self.stale.add(entry.ref)
            self.sales.setdefault(entry.ref, None)

    def seen(self, viewers: int) -> None:
        """The pinned card reached `viewers` viewers."""
        if self.product is not None and viewers > 0:
            self.impressions[self.product["id"]] += viewers

    async def poll(self) -> None:
        """Read the running sales' stock; note what changed for the next tick."""
        if self.impressions:
            counts, self.impressions = dict(self.impressions), Counter()
            await self.node.catalog.add_impressions(self.room_id, counts)
        if not self.sales:
            return
        redis = self.node.redis
        ids = list(self.sales)
        async with redis.pipeline(transaction=False) as pipe:
            for sale_id in ids:
                pipe.hgetall(keys.sale(self.room_id, sale_id))
            raws = await pipe.execute()
        now = now_ms()
        self.stale.difference_update(ids)
        for sale_id, raw in zip(ids, raws, strict=True):
            if not raw:
                self.sales.pop(sale_id, None)
                continue
            sale = Sale.from_hash(raw)
            self.sales[sale_id] = sale
            stock = sale.stock(now)
            if stock != self.shown.get(sale_id):
                self.shown[sale_id] = self.changes[sale_id] = stock
            if stock["state"] == SaleState.ENDED.value and sale_id not in self.changes:
                # Its final state has gone out: stop polling it.
                del self.sales[sale_id]
                self.shown.pop(sale_id, None)

    def take_changes(self) -> dict[str, dict[str, Any]] | None:
        changes, self.changes = self.changes, {}
        return changes or None

    async def refresh(self) -> None:
        """Read sales announced or changed since the last poll (before a welcome)."""
        for sale_id in list(self.stale):
            self.stale.discard(sale_id)
            if sale_id in self.sales:
                self.sales[sale_id] = await self.node.sales.get(self.room_id, sale_id)

    def welcome(self) -> dict[str, Any]:
        now = now_ms()
        return {
            "product": self.product,
            "sales": [sale.to_wire(now) for sale in self.sales.values() if sale is not None],
        }
