"""Where a buyer sits in a room's commerce keys: orders, a sale's units and reservations,
coupons (wallets, holdings, records), grab and claim answers, and order counts. Each shape
finds (export) and queues the edits that erase (forget); a won prize stays (the draw's
record). A mixin of engine/ledger/privacy_redis.py's RoomScan.
"""

from __future__ import annotations

import re

import orjson

from engine.commerce.orders import Order
from engine.ledger.key_edits import (
    CHUNK,
    added,
    hash_items,
    keep,
    loads_or_none,
    rewrite_hash,
    split_wallet,
    swap_field,
)
from engine.ledger.privacy_scan import PRIZE_COUPON, PRIZE_UNIT, ScanState, records_naming
from engine.store import keys
from engine.store.redis_client import text


class CommerceKeys(ScanState):
    async def _order(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        raw = await self.redis.hgetall(key)
        if not raw or text(raw.get(b"user")) != self.who.user:
            return
        order = Order.from_hash(raw)
        self.add("orders", suffix, order=order.to_wire())
        self.who.saw(order.detail.get("shipping_address"), order.detail.get("contact"))
        if order.device:
            self.who.device(order.device)

        def edit(now: dict[str, str]) -> dict[str, str] | None:
            if now.get("user") != self.who.user:
                return None
            detail = orjson.loads(now["detail"])
            detail["shipping_address"], detail["contact"] = {}, {}
            changed = {"detail": orjson.dumps(detail).decode()}
            # Who did what: `user`, and `closed_by` when they cancelled it themselves.
            changed.update({k: self.who.alias for k, v in now.items() if v == self.who.user})
            for name, refund in records_naming(now, "refund:", "by", self.who.user).items():
                changed[name] = orjson.dumps({**refund, "by": self.who.alias}).decode()
            if now.get("device"):
                changed["device"] = self.who.device(now["device"])
            return changed

        self.edits.append(rewrite_hash(key, edit))

    async def _units(self, key: str, suffix: str, match: re.Match[str]) -> None:
        value = await self.redis.hget(key, self.who.user)
        if value is None:
            return
        self.add("units", suffix, sale=match["sale"], units=int(text(value)))
        if match["sale"] in self.prize_sales:
            self.stays(key, PRIZE_UNIT)
            return
        self.edits.append(swap_field(key, self.who.user, self.who.alias, added))

    async def _wallet(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        value = await self.redis.hget(key, self.who.user)
        if value is None:
            return
        coupons = text(value).split()
        self.add("coupon_wallet", suffix, coupons=coupons)
        moved = [c for c in coupons if c.split(".")[0] not in self.prize_drops]
        if len(moved) < len(coupons):
            self.stays(key, PRIZE_COUPON)
        if moved:
            self.edits.append(
                lambda redis: split_wallet(redis, key, self.who.user, self.who.alias, moved)
            )

    async def _answers(self, key: str, suffix: str, match: re.Match[str]) -> None:
        """Grabs and claims ("<user> <request id>") and awards ("award <ref>", a giveaway's
        ref naming its winner: "award g1 <user>")."""
        user, alias = self.who.user, self.who.alias
        prize = match["owner"] in self.prize_sales | self.prize_drops
        for pattern in (f"{user} *", f"award * {user}"):
            async for raw, value in self.redis.hscan_iter(key, match=pattern, count=CHUNK):
                name = text(raw)
                self.add("requests", suffix, request=name, answer=loads_or_none(text(value)))
                if prize:
                    self.stays(key, "a won prize's award (the draw's record)")
                    continue
                renamed = (f"{alias} {name[len(user) + 1 :]}" if name.startswith(f"{user} ")
                           else f"{name[: -len(user)]}{alias}")  # fmt: skip
                self.edits.append(swap_field(key, name, renamed, keep))

    async def _holders(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        user, alias = self.who.user, self.who.alias
        prize_templates = await self._prize_templates()
        async for raw, value in self.redis.hscan_iter(key, match=f"* {user}", count=CHUNK):
            template = text(raw)[: -len(user) - 1]
            self.add("coupon_holdings", suffix, template=template, coupons=int(text(value)))
            if template in prize_templates:
                self.stays(key, PRIZE_COUPON)
            else:
                self.edits.append(swap_field(key, text(raw), f"{template} {alias}", added))

    async def _prize_templates(self) -> set[str]:
        templates = set()
        for drop in self.prize_drops:
            template = await self.redis.hget(keys.coupon_drop(self.room, drop), "template")
            if template is not None:
                templates.add(text(template))
        return templates

    async def _counts(self, key: str, suffix: str, _match: re.Match[str]) -> None:
        tags = {f"u:{self.who.user}": f"u:{self.who.alias}"}
        tags.update({f"d:{d}": f"d:{alias}" for d, alias in self.who.devices.items()})
        for old, new in tags.items():
            value = await self.redis.hget(key, old)
            if value is not None:
                self.add("order_counts", suffix, entry=old, orders=int(text(value)))
                self.edits.append(swap_field(key, old, new, added))

    async def _records(self, key: str, suffix: str, match: re.Match[str]) -> None:
        sale = match["sale"]
        if sale in self.prize_sales:
            self.stays(key, PRIZE_UNIT)
            return
        needle = f'"u":"{self.who.user}"'
        for name, value in await hash_items(self.redis, key):
            if needle not in value:
                continue
            record = orjson.loads(value)
            if record.get("u") != self.who.user:
                continue
            if record.get("d") in self.prize_drops:
                self.stays(key, PRIZE_COUPON)
                continue
            self.add("reservations" if sale else "coupons", suffix, id=name, record=record)
            self.edits.append(swap_field(key, name, name, self._record_renamed))

    def _record_renamed(self, value: str, _there: str | None) -> str:
        record = orjson.loads(value)
        if record.get("u") == self.who.user:
            record["u"] = self.who.alias
        return orjson.dumps(record).decode()
