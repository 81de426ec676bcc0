"""Flash sales: the terms the host sets, the state machine, and the sale's storage.

    scheduled ──starts_at──▶ live ◀──stock returns── sold_out
                               │ ──available hits 0──▶ │
                               └──────ends_at / stop──────┴──▶ ended

A sale's state is derived, never stored: from the clock (starts_at, ends_at, moved by
`extend` and `stop`) and its stock (`available`). The Lua scripts derive it the same way
from Redis time, so no timer has to fire for a sale to start or end.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from msgspec import UNSET, Meta, Struct, UnsetType
from redis.asyncio import Redis

from engine.commerce.catalog import Catalog
from engine.core.clock import now_ms
from engine.core.errors import ConflictError, NotFoundError
from engine.core.fields import invalid_field
from engine.store import keys
from engine.store.redis_client import text
from engine.store.scripts import Scripts

SALE_ID_RE = re.compile(r"s[0-9]{1,9}")
MAX_UNITS = 1_000_000
MAX_PER_USER = 100
MAX_COUNTDOWN_S = 24 * 3600
MAX_DURATION_S = 7 * 24 * 3600
DEFAULT_DURATION_S = 600
DEFAULT_HOLD_S = 300
MIN_HOLD_S, MAX_HOLD_S = 10, 3600


class SaleState(enum.Enum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    SOLD_OUT = "sold_out"
    ENDED = "ended"


def sale_state(now_ms: int, starts_at: int, ends_at: int, available: int) -> SaleState:
    if now_ms >= ends_at:
        return SaleState.ENDED
    if now_ms < starts_at:
        return SaleState.SCHEDULED
    return SaleState.SOLD_OUT if available <= 0 else SaleState.LIVE


@dataclass(frozen=True, slots=True)
class Sale:
    id: str
    sku: str
    product: str
    title: str
    price: int
    currency: str
    limit: int
    hold_ms: int
    allotment: int
    topups: int
    available: int
    reserved: int
    sold: int
    created_at: int
    starts_at: int
    ends_at: int
    stopped_at: int | None = None
    waiting: int = 0  # viewers on the waitlist (its own set, read beside the hash)
    # Who hands out a private sale's units ("auction:a3", "giveaway:g2"); viewers cannot
    # grab them. None for a flash sale.
    private: str | None = None

    @property
    def units(self) -> int:
        """Every unit the sale ever had: allotment plus top-ups."""
        return self.allotment + self.topups

    def state(self, at_ms: int | None = None) -> SaleState:
        return sale_state(now_ms() if at_ms is None else at_ms, self.starts_at, self.ends_at,
                          self.available)  # fmt: skip

    def stock(self, at_ms: int | None = None) -> dict[str, Any]:
        return {
            "available": self.available,
            "reserved": self.reserved,
            "sold": self.sold,
            "units": self.units,
            "state": self.state(at_ms).value,
            "waiting": self.waiting,
        }

    def to_wire(self, at_ms: int | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "sku": self.sku,
            "product": self.product,
            "title": self.title,
            "price": self.price,
            "currency": self.currency,
            "limit": self.limit,
            "hold_ms": self.hold_ms,
            "allotment": self.allotment,
            "topups": self.topups,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "created_at": self.created_at,
            "private": self.private,
            **self.stock(at_ms),
        }

    @classmethod
    def from_hash(cls, raw: dict[Any, Any], waiting: int = 0) -> Sale:
        h = {text(k): text(v) for k, v in raw.items()}
        return cls(
            id=h["id"], sku=h["sku"], product=h["product"], title=h["title"],
            price=int(h["price"]), currency=h["currency"], limit=int(h["limit"]),
            hold_ms=int(h["hold_ms"]), allotment=int(h["allotment"]), topups=int(h["topups"]),
            available=int(h["available"]), reserved=int(h["reserved"]), sold=int(h["sold"]),
            created_at=int(h["created_at"]), starts_at=int(h["starts_at"]),
            ends_at=int(h["ends_at"]),
            stopped_at=int(h["stopped_at"]) if h.get("stopped_at") else None,
            waiting=waiting, private=h.get("private") or None,
        )  # fmt: skip


class SaleTerms(Struct, frozen=True):
    """The body that launches a flash sale (docs/api.md § POST .../sales); other fields are
    ignored. The price's upper bound is the SKU's list price, checked once it is found."""

    sku: str
    allotment: Annotated[int, Meta(ge=1, le=MAX_UNITS)]
    price: Annotated[int, Meta(ge=0)] | UnsetType = UNSET  # unset: the list price
    per_user_limit: Annotated[int, Meta(ge=1, le=MAX_PER_USER)] = 1
    countdown_s: Annotated[int, Meta(ge=0, le=MAX_COUNTDOWN_S)] = 0
    duration_s: Annotated[int, Meta(ge=1, le=MAX_DURATION_S)] = DEFAULT_DURATION_S
    hold_s: Annotated[int, Meta(ge=MIN_HOLD_S, le=MAX_HOLD_S)] = DEFAULT_HOLD_S


class TopUp(Struct, frozen=True):
    """The body of POST .../sales/{sale}/topup."""

    units: Annotated[int, Meta(ge=1, le=MAX_UNITS)]


class Extension(Struct, frozen=True):
    """The body of POST .../sales/{sale}/extend."""

    seconds: Annotated[int, Meta(ge=1, le=MAX_DURATION_S)]


def check_sale_id(value: Any) -> str:
    if not isinstance(value, str) or not SALE_ID_RE.fullmatch(value):
        raise invalid_field("sale", "a sale id such as 's3'")
    return value


def sale_keys(room: str, sale_id: str) -> list[str]:
    """The keys the stock scripts take, in their KEYS order (see
    engine/commerce/lua/release.lua)."""
    return [
        keys.sale(room, sale_id),
        keys.sale_reservations(room, sale_id),
        keys.sale_users(room, sale_id),
        keys.expiry(room),
        keys.outbox(room),
        keys.sale_waitlist(room, sale_id),
        keys.sale_waiting(room, sale_id),
    ]


class SaleStore:
    def __init__(self, redis: Redis, scripts: Scripts, catalog: Catalog, log_maxlen: int,
                 outbox_maxlen: int) -> None:  # fmt: skip
        self.redis = redis
        self.scripts = scripts
        self.catalog = catalog
        self.log_maxlen = log_maxlen
        self.outbox_maxlen = outbox_maxlen

    async def create(self, room: str, terms: SaleTerms, *, at_ms: int | None = None) -> Sale:
        product, variant = await self.catalog.find_sku(room, terms.sku)
        price = variant.list_price if terms.price is UNSET else terms.price
        if price > variant.list_price:
            raise invalid_field("price", f"an integer between 0 and {variant.list_price}")
        stored: dict[str, str | int] = {
            "sku": terms.sku, "product": product.id, "title": product.title_of(variant),
            "price": price, "currency": product.currency, "limit": terms.per_user_limit,
            "hold_ms": terms.hold_s * 1000,
        }  # fmt: skip
        return await self._create(room, stored, terms.allotment, terms.countdown_s * 1000,
                                  terms.duration_s * 1000, at_ms=at_ms)  # fmt: skip

    async def create_private(self, room: str, sku: str, units: int, *, owner: str, hold_ms: int,
                             duration_ms: int = MAX_DURATION_S * 1000) -> Sale:  # fmt: skip
        """A sale whose units only `award` hands out (at a price given per award): an
        auction's lot or a giveaway's prizes. Not announced, not grabbable, but stock like
        any other, so the audit's invariants cover it."""
        product, variant = await self.catalog.find_sku(room, sku)
        terms: dict[str, str | int] = {
            "sku": sku, "product": product.id, "title": product.title_of(variant),
            "price": variant.list_price,
            "currency": product.currency, "limit": units, "hold_ms": hold_ms, "private": owner,
        }  # fmt: skip
        return await self._create(room, terms, units, 0, duration_ms)

    async def _create(self, room: str, terms: dict[str, str | int], allotment: int,
                      countdown_ms: int, duration_ms: int, *,
                      at_ms: int | None = None) -> Sale:  # fmt: skip
        sale_id = f"s{await self.redis.incr(keys.sale_counter(room))}"
        result = await self.scripts.sale_create(
            self.redis,
            [keys.sale(room, sale_id), keys.sales(room), keys.room_stream(room), keys.outbox(room)],
            [
                sale_id, "" if at_ms is None else at_ms, countdown_ms, duration_ms,
                allotment, self.log_maxlen, self.outbox_maxlen, keys.room_bus(room),
                orjson.dumps({"sale": sale_id, **terms}), "" if "private" in terms else "1",
                *(item for pair in terms.items() for item in pair),
            ],
        )  # fmt: skip
        if result[0] == b"err":
            raise ConflictError(f"sale {sale_id} exists", code="sale_exists")
        return await self.get(room, sale_id)

    async def get(self, room: str, sale_id: str) -> Sale:
        [sale] = await self.read(room, [check_sale_id(sale_id)])
        if sale is None:
            raise NotFoundError(f"no sale {sale_id!r} in this room", code="sale_not_found")
        return sale

    async def read(self, room: str, sale_ids: list[str]) -> list[Sale | None]:
        """The sales with their waitlist lengths, in one round trip (None: no such sale)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for sale_id in sale_ids:
                pipe.hgetall(keys.sale(room, sale_id))
                pipe.scard(keys.sale_waiting(room, sale_id))
            replies = await pipe.execute()
        return [
            Sale.from_hash(raw, int(waiting)) if raw else None
            for raw, waiting in zip(replies[::2], replies[1::2], strict=True)
        ]

    async def ids(self, room: str) -> list[str]:
        return [text(s) for s in await self.redis.zrange(keys.sales(room), 0, -1)]

    async def list(self, room: str, *, private: bool = False) -> list[Sale]:
        """The room's flash sales (with `private`, also auction lots and giveaway prizes)."""
        sales = await self.read(room, await self.ids(room))
        return [sale for sale in sales if sale and (private or sale.private is None)]

    async def adjust(self, room: str, sale_id: str, action: str, amount: int = 0,
                     *, at_ms: int | None = None) -> Sale:  # fmt: skip
        """The host's controls: "topup" (units), "extend" (ms), "stop"."""
        result = await self.scripts.sale_adjust(
            self.redis,
            [*sale_keys(room, check_sale_id(sale_id)), keys.room_stream(room)],
            ["" if at_ms is None else at_ms, self.outbox_maxlen, keys.room_bus(room),
             self.log_maxlen, action, amount],
        )  # fmt: skip
        if result[0] != b"ok":
            code = text(result[1])
            if code == "sale_not_found":
                raise NotFoundError(f"no sale {sale_id!r} in this room", code=code)
            raise ConflictError("the sale has ended", code="sale_ended")
        return await self.get(room, sale_id)

    async def stop(self, room: str, sale_id: str) -> Sale:
        return await self.adjust(room, sale_id, "stop")

    async def top_up(self, room: str, sale_id: str, units: int) -> Sale:
        return await self.adjust(room, sale_id, "topup", units)

    async def extend(self, room: str, sale_id: str, seconds: int) -> Sale:
        return await self.adjust(room, sale_id, "extend", seconds * 1000)
