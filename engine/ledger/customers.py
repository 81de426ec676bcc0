"""Customers across shows: a profile per buyer of a shop, RFM scores and named tiers, read
from the books by SQL (docs/ledger.md § Customers and RFM says it for hosts).

A shop is a host: every show (room) of the same host user. A *purchase* is an order of
the shop whose state counts as a sale (`OrderState.counts_as_sale`) and that was not
refunded in full, dated by its payment, up to `as_of`. From the purchases, per buyer:

- recency: whole days from the last purchase to `as_of`; frequency: purchases, in any
  currency; monetary: spend in the shop's main currency (the currency with the most net
  spend, ties alphabetical), net of refunds. Spend in other currencies is in the profile
  (`spend`) but not scored: amounts in two currencies are not comparable.
- each scored 1-5 among the shop's buyers by the quintile of the buyer's middle rank:
  `1 + floor(5 * (below + ties / 2) / n)`, `below` the buyers with a worse value and
  `ties` those with the same one (the buyer included). With distinct values and n a
  multiple of 5 it is NTILE(5); unlike NTILE it gives tied buyers one score (NTILE splits
  a tie at random), and a tiny shop still spans the range (1 buyer: 3; 2 buyers: 2 and 4).
- the tier, by `tier_of`'s table; lifetime value: spend to date in the main currency.

Someone who watched a show of the shop (engine/ledger/viewers.py) and never bought is a
prospect, with no scores.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from engine.commerce.orders import OrderState
from engine.commerce.tiers import Tier
from engine.core.errors import ConflictError, NotFoundError, register_codes
from engine.store import keys

DAY_MS = 86_400_000
NEW_DAYS = 30  # a first and only purchase this recent makes a buyer `new`
SALE_STATES = [state.value for state in OrderState if state.counts_as_sale]
# The wire codes of the customers' routes (documented in docs/protocol.md § Errors).
register_codes({"ledger_disabled": ConflictError, "customer_not_found": NotFoundError})

_PURCHASES = """
purchases AS (
    SELECT user_id, room, currency, total - refunded AS net,
           COALESCE(paid_at_ms, created_at_ms) AS at_ms
    FROM orders
    WHERE shop = $1 AND state = ANY($2::text[]) AND total > refunded
      AND COALESCE(paid_at_ms, created_at_ms) <= $3
)"""
# $1 shop, $2 the sale states, $3 as of (ms). Integer division floors (every term >= 0).
_SCORED = f"""
WITH {_PURCHASES},
main AS (
    SELECT currency FROM purchases GROUP BY currency ORDER BY sum(net) DESC, currency LIMIT 1
),
spend AS (
    SELECT user_id, jsonb_object_agg(currency, net) AS spend
    FROM (SELECT user_id, currency, sum(net)::bigint AS net
          FROM purchases GROUP BY user_id, currency) AS per_currency
    GROUP BY user_id
),
buyers AS (
    SELECT user_id, count(*) AS orders, count(DISTINCT room) AS shows_bought,
           min(at_ms) AS first_at, max(at_ms) AS last_at,
           ($3 - max(at_ms)) / {DAY_MS} AS recency_days,
           COALESCE(sum(net) FILTER (WHERE currency = (SELECT currency FROM main)), 0)::bigint
               AS monetary
    FROM purchases GROUP BY user_id
),
ranked AS (
    SELECT buyers.*, count(*) OVER () AS n,
           rank() OVER (ORDER BY recency_days DESC) AS r_rank,
           count(*) OVER (PARTITION BY recency_days) AS r_ties,
           rank() OVER (ORDER BY orders) AS f_rank,
           count(*) OVER (PARTITION BY orders) AS f_ties,
           rank() OVER (ORDER BY monetary) AS m_rank,
           count(*) OVER (PARTITION BY monetary) AS m_ties
    FROM buyers
)
SELECT user_id, orders, shows_bought, first_at, last_at, recency_days, monetary, spend,
       1 + 5 * (2 * (r_rank - 1) + r_ties) / (2 * n) AS r,
       1 + 5 * (2 * (f_rank - 1) + f_ties) / (2 * n) AS f,
       1 + 5 * (2 * (m_rank - 1) + m_ties) / (2 * n) AS m,
       (SELECT currency FROM main) AS currency
FROM ranked JOIN spend USING (user_id)
"""
# Shows of the shop each viewer watched (a show counts from its start), $1 shop, $2 as of.
_WATCHED = """
SELECT v.user_id, count(*) FILTER (WHERE v.watch_ms > 0) AS shows_watched,
       sum(v.watch_ms)::bigint AS watch_ms
FROM show_viewers v JOIN shows s USING (room)
WHERE v.shop = $1 AND COALESCE(s.started_at_ms, s.created_at_ms, 0) <= $2
GROUP BY v.user_id
"""
_ORDERS_OF = """
SELECT o.room, s.title, o.order_id, o.state, o.currency, o.total, o.refunded,
       o.created_at_ms, o.paid_at_ms
FROM orders o LEFT JOIN shows s USING (room)
WHERE o.shop = $1 AND o.user_id = $2 AND o.created_at_ms <= $3
ORDER BY o.created_at_ms DESC, o.order_id LIMIT $4
"""
_SHOWS_OF = """
SELECT v.room, s.title, COALESCE(s.started_at_ms, s.created_at_ms) AS started_at, v.watch_ms
FROM show_viewers v JOIN shows s USING (room)
WHERE v.shop = $1 AND v.user_id = $2 AND COALESCE(s.started_at_ms, s.created_at_ms, 0) <= $3
ORDER BY started_at DESC NULLS LAST, v.room LIMIT $4
"""
_RETURNING = f"""
WITH {_PURCHASES}
SELECT DISTINCT user_id FROM purchases WHERE room <> $4 AND user_id = ANY($5::text[])
"""


def tier_of(r: int, f: int, m: int, *, orders: int, first_days: int) -> Tier:
    """A buyer's tier: the first row that holds (docs/ledger.md § Customers and RFM).

    champions         R >= 4, F >= 4 and M >= 4: bought lately, often and the most
    loyal             F >= 4 and R >= 3: buys often and is still around
    new               one purchase, at most NEW_DAYS (30) days ago
    promising         R >= 4: bought lately, not yet often
    at_risk           R <= 2 and (F >= 4 or M >= 4): bought often or much, not lately
    hibernating       R <= 2: bought little, long ago
    needs_attention   the rest (R = 3, F < 4): neither recent nor gone
    """
    if r >= 4 and f >= 4 and m >= 4:
        return Tier.CHAMPIONS
    if f >= 4 and r >= 3:
        return Tier.LOYAL
    if orders == 1 and first_days <= NEW_DAYS:
        return Tier.NEW
    if r >= 4:
        return Tier.PROMISING
    if r <= 2 and (f >= 4 or m >= 4):
        return Tier.AT_RISK
    if r <= 2:
        return Tier.HIBERNATING
    return Tier.NEEDS_ATTENTION


@dataclass(frozen=True, slots=True)
class Profile:
    """One person's profile in one shop; a prospect has no purchase and no scores."""

    user: str
    tier: Tier
    orders: int = 0  # purchases: frequency
    shows_bought: int = 0
    shows_watched: int = 0
    watch_ms: int = 0
    spend: dict[str, int] = field(default_factory=dict)  # currency -> net, minor units
    ltv: int = 0  # spend to date in the shop's main currency
    first_purchase_at: int | None = None
    last_purchase_at: int | None = None
    recency_days: int | None = None
    scores: tuple[int, int, int] | None = None  # (R, F, M)

    def to_wire(self) -> dict[str, Any]:
        r, f, m = self.scores or (None, None, None)
        return {
            "user": self.user, "tier": self.tier.value, "orders": self.orders,
            "shows_bought": self.shows_bought, "shows_watched": self.shows_watched,
            "watch_ms": self.watch_ms, "spend": dict(sorted(self.spend.items())),
            "ltv": self.ltv, "first_purchase_at": self.first_purchase_at,
            "last_purchase_at": self.last_purchase_at, "recency_days": self.recency_days,
            "rfm": None if self.scores is None else {"r": r, "f": f, "m": m},
        }  # fmt: skip


@dataclass(frozen=True)
class Customers:
    """A shop's profiles as of one moment: buyers (by lifetime value) then prospects."""

    shop: str
    as_of: int
    currency: str | None  # the main currency: monetary scores and `ltv` are in it
    profiles: list[Profile]

    def counts(self) -> dict[str, int]:
        """People per tier, every tier named (0 included), in the tiers' order."""
        counts = dict.fromkeys((tier.value for tier in Tier), 0)
        for profile in self.profiles:
            counts[profile.tier.value] += 1
        return counts

    def get(self, user: str) -> Profile | None:
        return next((p for p in self.profiles if p.user == user), None)

    def tier_map(self) -> dict[str, str]:
        """Buyer -> tier: what a tiered coupon drop checks (anyone else is a prospect)."""
        return {p.user: p.tier.value for p in self.profiles if p.tier is not Tier.PROSPECT}


def _buyer(row: asyncpg.Record, watching: dict[str, tuple[int, int]], as_of: int) -> Profile:
    r, f, m = int(row["r"]), int(row["f"]), int(row["m"])
    first_days = (as_of - int(row["first_at"])) // DAY_MS
    tier = tier_of(r, f, m, orders=int(row["orders"]), first_days=first_days)
    shows, watch_ms = watching.get(row["user_id"], (0, 0))
    return Profile(
        user=row["user_id"], tier=tier, orders=int(row["orders"]),
        shows_bought=int(row["shows_bought"]), shows_watched=shows, watch_ms=watch_ms,
        spend={c: int(v) for c, v in orjson.loads(row["spend"]).items()},
        ltv=int(row["monetary"]), first_purchase_at=int(row["first_at"]),
        last_purchase_at=int(row["last_at"]), recency_days=int(row["recency_days"]),
        scores=(r, f, m),
    )  # fmt: skip


async def customers(pool: asyncpg.Pool, shop: str, *, as_of: int) -> Customers:
    """Every buyer and prospect of `shop`, scored as of `as_of` (ms)."""
    async with pool.acquire() as connection, connection.transaction(isolation="repeatable_read"):
        scored = await connection.fetch(_SCORED, shop, SALE_STATES, as_of)
        watched = await connection.fetch(_WATCHED, shop, as_of)
    watching = {w["user_id"]: (int(w["shows_watched"]), int(w["watch_ms"] or 0)) for w in watched}
    buyers = [_buyer(row, watching, as_of) for row in scored]
    buyers.sort(key=lambda p: (-p.ltv, -p.orders, p.user))
    bought = {p.user for p in buyers}
    prospects = [
        Profile(user=user, tier=Tier.PROSPECT, shows_watched=shows, watch_ms=ms)
        for user, (shows, ms) in watching.items()
        if user not in bought and shows
    ]
    prospects.sort(key=lambda p: (-p.shows_watched, -p.watch_ms, p.user))
    currency = scored[0]["currency"] if scored else None
    return Customers(shop, as_of, currency, buyers + prospects)


async def history(pool: asyncpg.Pool, shop: str, user: str, *, as_of: int,
                  limit: int = 200) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """A person's orders (any state) and shows watched in `shop`, newest first."""
    async with pool.acquire() as connection:
        orders = await connection.fetch(_ORDERS_OF, shop, user, as_of, limit)
        shows = await connection.fetch(_SHOWS_OF, shop, user, as_of, limit)
    return {
        "orders": [
            {"room": o["room"], "show": o["title"], "order": o["order_id"], "state": o["state"],
             "currency": o["currency"], "total": o["total"], "refunded": o["refunded"],
             "created_at": o["created_at_ms"], "paid_at": o["paid_at_ms"]}
            for o in orders
        ],
        "shows": [{"room": s["room"], "show": s["title"], "started_at": s["started_at"],
                   "watch_ms": s["watch_ms"]} for s in shows],
    }  # fmt: skip


async def returning_buyers(pool: asyncpg.Pool, shop: str, room: str, buyers: Iterable[str], *,
                           before: int) -> set[str]:  # fmt: skip
    """Those of `buyers` who made a purchase from `shop` in another show before `before`
    (ms): the report's returning buyers of `room`."""
    found = await pool.fetch(_RETURNING, shop, SALE_STATES, before - 1, room, list(buyers))
    return {record["user_id"] for record in found}


async def write_tier_map(redis: Redis, room: str, tiers: dict[str, str]) -> None:
    """Replace the room's tier map (user -> tier) that the claim script reads, at once."""
    key = keys.customer_tiers(room)
    items = list(tiers.items())
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        for start in range(0, len(items), 1000):  # HSET arguments in bounded chunks
            pipe.hset(key, mapping=dict(items[start : start + 1000]))
        await pipe.execute()
