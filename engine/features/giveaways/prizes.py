"""A giveaway's prizes: set aside when it opens, given to each winner after the draw.

    label    the text in `prize`; the host fulfils it
    product  at open, a private sale of `winners` units of `sku` (engine/commerce/sales.py
             `create_private`); each winner is awarded one unit at price 0, held for
             PRIZE_HOLD_MS, to check out as a zero-price line (shipping still charged)
    coupon   at open, a private drop of `winners` coupons of `template` (its total is set
             aside); one coupon is claimed on each winner's behalf

Awards follow the draw; each is idempotent (per giveaway and winner: the unit's award
reference and the coupon's claim id are fixed) and recorded per winner, and every close or
read of a closed giveaway not yet fully awarded finishes them
(engine/features/giveaways/store.py), so a process dying between the draw and the awards loses
nothing. Each winner gets a private `giveaway_won` notice when their award is recorded.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

from engine.commerce.coupons import MAX_WINDOW_S, Coupons, DropTerms
from engine.commerce.sales import SaleStore
from engine.commerce.stock import GrabRequest, Stock
from engine.features.giveaways.model import Giveaway, PrizeKind, prize_owner
from engine.store import keys
from engine.store.roomlog import notify_user

PRIZE_HOLD_MS = 3600 * 1000  # a winner's time to check out a product prize


class Prizes:
    def __init__(self, redis: Redis, *, sales: SaleStore, stock: Stock,
                 coupons: Coupons) -> None:  # fmt: skip
        self.redis = redis
        self.scripts = sales.scripts  # the engine's scripts: winners' notices go on the bus
        self.sales = sales
        self.stock = stock
        self.coupons = coupons

    async def default_label(self, room: str, kind: PrizeKind, sku: str,
                            template: str) -> str | None:  # fmt: skip
        """What `prize` says when the host leaves it out: the product's title (with its
        variant), or the coupon template's title; None for a label prize (it is required).
        Raises `sku_not_found` / `template_not_found`."""
        if kind is PrizeKind.PRODUCT:
            product, variant = await self.sales.catalog.find_sku(room, sku)
            return product.title_of(variant)
        if kind is PrizeKind.COUPON:
            return (await self.coupons.template(room, template)).title
        return None

    async def set_aside(self, room: str, giveaway_id: str, *, kind: PrizeKind, sku: str,
                        template: str, winners: int) -> dict[str, str]:  # fmt: skip
        """The prize's units or coupons, reserved for the winners before anyone enters; the
        fields to store with the giveaway (`prize_sale` or `prize_drop`)."""
        owner = prize_owner(giveaway_id)
        if kind is PrizeKind.PRODUCT:
            sale = await self.sales.create_private(
                room, sku, winners, owner=owner, hold_ms=PRIZE_HOLD_MS
            )
            return {"prize_sale": sale.id}
        if kind is PrizeKind.COUPON:
            # The longest claim window: awards may be finished late, after a crash.
            terms = DropTerms(quantity=winners, claim_window_s=MAX_WINDOW_S)
            drop = await self.coupons.drop(room, template, terms, private=owner)
            return {"prize_drop": drop.id}
        return {}

    async def finish(self, room: str, giveaway: Giveaway) -> None:
        """Give every winner without a recorded award their prize, record it, tell them, and
        mark the giveaway `awarded`. Each step is idempotent, so any number of processes may
        run this at once or again."""
        awards_key = keys.giveaway_awards(room, giveaway.id)
        for user in giveaway.winners:
            if user in giveaway.awards:
                continue
            award = await self.give(room, giveaway, user)
            if await self.redis.hsetnx(awards_key, user, orjson.dumps(award)):
                await notify_user(self.redis, self.scripts, room, user, "giveaway_won",
                                  giveaway=giveaway.id, title=giveaway.title, prize=giveaway.prize,
                                  prize_kind=giveaway.prize_kind.value, **award)  # fmt: skip
        await self.redis.hset(keys.giveaway(room, giveaway.id), "awarded", "1")

    async def give(self, room: str, giveaway: Giveaway, user: str) -> dict[str, Any]:
        """One winner's award (replayed, not doubled, when given before): `{}` for a label;
        `{"sale", "reservation", "expires_at", "price", "currency"}` for a product;
        `{"coupon", "drop", "template"}` for a coupon; `{"status"}` when it could not be
        given."""
        if giveaway.prize_kind is PrizeKind.PRODUCT:
            assert giveaway.prize_sale is not None
            answer = await self.stock.award(
                room, giveaway.prize_sale, user, f"{giveaway.id} {user}", units=1, price=0,
                hold_ms=PRIZE_HOLD_MS,
            )  # fmt: skip
            if answer["status"] != "reserved":
                return {"status": answer["status"]}
            return {"sale": giveaway.prize_sale, "reservation": answer["reservation"],
                    "expires_at": answer["expires_at"], "price": answer["price"],
                    "currency": answer["currency"]}  # fmt: skip
        if giveaway.prize_kind is PrizeKind.COUPON:
            assert giveaway.prize_drop is not None
            [claim] = await self.coupons.claim_batch(
                room, giveaway.prize_drop, [GrabRequest(user, f"giveaway {giveaway.id}", 1)],
                owner=giveaway.owner,
            )  # fmt: skip
            if claim.status != "claimed":
                # e.g. limit_reached: they already hold the template's per-user limit
                return {"status": claim.status}
            return {"coupon": claim.body["coupon"], "drop": giveaway.prize_drop,
                    "template": giveaway.template}  # fmt: skip
        return {}
