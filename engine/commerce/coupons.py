"""Coupons: templates (the terms), live drops (batches released into the room), and
claims (a viewer's coupon), micro-batched like grabs.

A coupon's life is an explicit state machine, every step one Lua script:

    claimed ──checkout──▶ locked ──payment──▶ used
       ▲                    │
       └──order cancelled ──┘  (or expired)

Templates are immutable once created, so checkout can price from them without a lock;
the checkout and payment scripts only check that a coupon is still in the state priced.
"""

from __future__ import annotations

import enum
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from msgspec import Meta, Struct
from redis.asyncio import Redis

from engine.commerce.catalog import CURRENCY_RE, MAX_PRICE, SKU_RE
from engine.commerce.pricing import CouponKind, Offer
from engine.commerce.stock import GrabAnswer, GrabBatcher, GrabRequest, OnAnswer
from engine.commerce.tiers import Tier
from engine.core.errors import ConflictError, NotFoundError
from engine.core.fields import invalid_field
from engine.store import keys
from engine.store.meter import Meter, Metric, off
from engine.store.redis_client import text
from engine.store.scripts import Scripts

TEMPLATE_ID_RE = re.compile(r"t[0-9]{1,9}")
DROP_ID_RE = re.compile(r"d[0-9]{1,9}")
COUPON_ID_RE = re.compile(r"(d[0-9]{1,9})\.[0-9]{1,9}")
MAX_TITLE = 80
MAX_COUPONS = 1_000_000
MAX_PER_USER = 100
MAX_SCOPE_SKUS = 100
MAX_COUNTDOWN_S = 24 * 3600
MAX_WINDOW_S = 7 * 24 * 3600
DEFAULT_CLAIM_WINDOW_S = 300
DEFAULT_VALIDITY_S = 7 * 24 * 3600
MAX_EPOCH_MS = 2**53
MAX_CLAIM_ID = 64


class CouponState(enum.Enum):
    CLAIMED = "claimed"
    LOCKED = "locked"  # held by a pending order
    USED = "used"


def _check(regex: re.Pattern[str], value: Any, name: str, example: str) -> str:
    if not isinstance(value, str) or not regex.fullmatch(value):
        raise invalid_field(name, f"an id such as {example!r}")
    return value


def check_template_id(value: Any) -> str:
    return _check(TEMPLATE_ID_RE, value, "template", "t1")


def check_drop_id(value: Any) -> str:
    return _check(DROP_ID_RE, value, "drop", "d2")


def drop_of_coupon(value: Any) -> str:
    match = COUPON_ID_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise invalid_field("coupon", "a coupon id such as 'd2.17'")
    return match.group(1)


@dataclass(frozen=True, slots=True)
class Template:
    id: str
    title: str
    kind: CouponKind
    currency: str
    amount: int  # amount_off
    percent: int  # percent_off
    cap: int | None  # percent_off
    min_spend: int
    skus: tuple[str, ...] | None  # None: the whole room
    valid_from: int
    valid_until: int
    total: int
    per_user_limit: int
    stackable: bool

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind.value,
            "currency": self.currency,
            "amount": self.amount,
            "percent": self.percent,
            "cap": self.cap,
            "min_spend": self.min_spend,
            "skus": None if self.skus is None else list(self.skus),
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "total": self.total,
            "per_user_limit": self.per_user_limit,
            "stackable": self.stackable,
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Template:
        return cls(
            id=d["id"],
            title=d["title"],
            kind=CouponKind(d["kind"]),
            currency=d["currency"],
            amount=d["amount"],
            percent=d["percent"],
            cap=d["cap"],
            min_spend=d["min_spend"],
            skus=None if d["skus"] is None else tuple(d["skus"]),
            valid_from=d["valid_from"],
            valid_until=d["valid_until"],
            total=d["total"],
            per_user_limit=d["per_user_limit"],
            stackable=d["stackable"],
        )

    def offer(self, coupon: str) -> Offer:
        return Offer(
            coupon=coupon,
            template=self.id,
            kind=self.kind,
            amount=self.amount,
            percent=self.percent,
            cap=self.cap,
            min_spend=self.min_spend,
            skus=None if self.skus is None else frozenset(self.skus),
            stackable=self.stackable,
        )

    def card(self) -> dict[str, Any]:
        """The terms a drop card shows. The coupon's kind travels as `coupon_kind`: in the
        room log an entry's own `kind` (coupon_dropped) would hide it."""
        terms = {k: v for k, v in self.to_wire().items() if k not in {"id", "total", "kind"}}
        return {**terms, "coupon_kind": self.kind.value, "template": self.id}


class TemplateTerms(Struct, frozen=True, kw_only=True):
    """The body that creates a coupon template (docs/api.md § Coupons). The terms of
    another kind (a free-shipping template's `amount`...) are ignored; the validity window
    is known once the clock is read (`window`)."""

    kind: CouponKind
    title: Annotated[str, Meta(min_length=1, max_length=MAX_TITLE)]
    currency: Annotated[str, Meta(pattern=rf"^{CURRENCY_RE.pattern}\Z")]
    amount: int = 0  # checked in __post_init__ for its kind, as are percent and cap
    percent: int = 0
    cap: int | None = None
    min_spend: Annotated[int, Meta(ge=0, le=MAX_PRICE)] = 0
    # The SKUs are checked in __post_init__: a bad one is refused as `skus`, not `skus[i]`.
    skus: Annotated[list[object], Meta(min_length=1, max_length=MAX_SCOPE_SKUS)] | None = None
    valid_from: Annotated[int, Meta(ge=0, le=MAX_EPOCH_MS)] | None = None  # default: now
    valid_until: Annotated[int, Meta(ge=0, le=MAX_EPOCH_MS)] | None = None  # default: a week on
    total: Annotated[int, Meta(ge=1, le=MAX_COUPONS)]
    per_user_limit: Annotated[int, Meta(ge=1, le=MAX_PER_USER)] = 1
    stackable: bool = False

    def __post_init__(self) -> None:
        if self.kind is CouponKind.AMOUNT_OFF and not 1 <= self.amount <= MAX_PRICE:
            raise invalid_field("amount", f"an integer between 1 and {MAX_PRICE}")
        if self.kind is CouponKind.PERCENT_OFF:
            if not 1 <= self.percent <= 100:
                raise invalid_field("percent", "an integer between 1 and 100")
            if self.cap is not None and not 1 <= self.cap <= MAX_PRICE:
                raise invalid_field("cap", f"an integer between 1 and {MAX_PRICE}")
        self.scope()  # refuses a bad SKU

    def scope(self) -> tuple[str, ...] | None:
        """The SKUs it applies to, without repeats (None: the whole room)."""
        if self.skus is None:
            return None
        skus = [s for s in self.skus if isinstance(s, str) and SKU_RE.fullmatch(s)]
        if len(skus) != len(self.skus):
            raise invalid_field(
                "skus", f"a list of 1-{MAX_SCOPE_SKUS} SKUs, or null for the whole room"
            )
        return tuple(dict.fromkeys(skus))

    def window(self, now: int) -> tuple[int, int]:
        """(valid_from, valid_until), the defaults counted from `now`."""
        valid_from = now if self.valid_from is None else self.valid_from
        if self.valid_until is None:
            return valid_from, valid_from + DEFAULT_VALIDITY_S * 1000
        if self.valid_until <= valid_from:
            raise invalid_field("valid_until", "must be after valid_from")
        return valid_from, self.valid_until

    def template(self, template_id: str, window: tuple[int, int]) -> Template:
        """The template these terms make, under its id and validity `window`."""
        kind = self.kind
        return Template(
            id=template_id,
            title=self.title,
            kind=kind,
            currency=self.currency,
            amount=self.amount if kind is CouponKind.AMOUNT_OFF else 0,
            percent=self.percent if kind is CouponKind.PERCENT_OFF else 0,
            cap=self.cap if kind is CouponKind.PERCENT_OFF else None,
            min_spend=self.min_spend,
            skus=self.scope(),
            valid_from=window[0],
            valid_until=window[1],
            total=self.total,
            per_user_limit=self.per_user_limit,
            stackable=self.stackable,
        )


class DropTerms(Struct, frozen=True, kw_only=True):
    """The body that drops a template's coupons (docs/api.md § Coupons). With `tiers`, only
    customers of the shop in one of those tiers may claim (docs/orders.md § Tiered drops)."""

    quantity: Annotated[int, Meta(ge=1, le=MAX_COUPONS)]
    countdown_s: Annotated[int, Meta(ge=0, le=MAX_COUNTDOWN_S)] = 0
    claim_window_s: Annotated[int, Meta(ge=1, le=MAX_WINDOW_S)] = DEFAULT_CLAIM_WINDOW_S
    tiers: Annotated[list[Tier], Meta(min_length=1, max_length=len(Tier))] | None = None

    def tier_names(self) -> tuple[str, ...] | None:
        """The tiers without repeats, in the order given (None: everyone may claim)."""
        if self.tiers is None:
            return None
        return tuple(dict.fromkeys(tier.value for tier in self.tiers))


class ClaimBody(Struct, frozen=True):
    """The body of a claim over HTTP: its request id, the claim's idempotency key."""

    id: Annotated[str, Meta(min_length=1, max_length=MAX_CLAIM_ID)]


@dataclass(frozen=True, slots=True)
class Drop:
    id: str
    template: str
    quantity: int
    remaining: int
    claimed: int
    limit: int
    created_at: int
    opens_at: int
    closes_at: int
    # Who claims a private drop's coupons on its winners' behalf ("giveaway:g3"); viewers
    # cannot claim from it and it is not listed. None for a public drop.
    private: str | None = None
    # The customer tiers that may claim (engine/commerce/tiers.py); None: everyone.
    tiers: tuple[str, ...] | None = None

    def state(self, at_ms: int) -> str:
        if at_ms >= self.closes_at:
            return "ended"
        if at_ms < self.opens_at:
            return "scheduled"
        return "live" if self.remaining > 0 else "sold_out"

    def counters(self, at_ms: int) -> dict[str, Any]:
        return {"remaining": self.remaining, "claimed": self.claimed, "state": self.state(at_ms)}

    def to_wire(self, at_ms: int | None = None) -> dict[str, Any]:
        now = int(time.time() * 1000) if at_ms is None else at_ms
        return {
            "id": self.id,
            "template": self.template,
            "quantity": self.quantity,
            "limit": self.limit,
            "created_at": self.created_at,
            "opens_at": self.opens_at,
            "closes_at": self.closes_at,
            "private": self.private,
            "tiers": None if self.tiers is None else list(self.tiers),
            **self.counters(now),
        }

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> Drop:
        h = {text(k): text(v) for k, v in raw.items()}
        return cls(
            id=h["id"],
            template=h["template"],
            quantity=int(h["quantity"]),
            remaining=int(h["remaining"]),
            claimed=int(h["claimed"]),
            limit=int(h["limit"]),
            created_at=int(h["created_at"]),
            opens_at=int(h["opens_at"]),
            closes_at=int(h["closes_at"]),
            private=h.get("private") or None,
            tiers=tuple(orjson.loads(h["tiers"])) if h.get("tiers") else None,
        )


class Coupons:
    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        *,
        log_maxlen: int,
        outbox_maxlen: int,
        max_batch: int = 256,
        meter: Meter | None = None,
    ) -> None:
        self.redis = redis
        self.scripts = scripts
        self.log_maxlen = log_maxlen
        self.outbox_maxlen = outbox_maxlen
        self.max_batch = max_batch
        self.meter = meter or off()
        self.batchers: dict[tuple[str, str], GrabBatcher] = {}

    # ---- templates --------------------------------------------------------------------------

    async def create_template(self, room: str, terms: TemplateTerms, *,
                              at_ms: int | None = None) -> Template:  # fmt: skip
        now = int(time.time() * 1000) if at_ms is None else at_ms
        window = terms.window(now)  # refused before the template takes an id
        template_id = f"t{await self.redis.incr(keys.coupon_counter(room))}"
        template = terms.template(template_id, window)
        await self.redis.hset(
            keys.coupon_templates(room), template.id, orjson.dumps(template.to_wire())
        )
        return template

    async def template(self, room: str, template_id: str) -> Template:
        raw = await self.redis.hget(keys.coupon_templates(room), check_template_id(template_id))
        if raw is None:
            raise NotFoundError(f"no coupon template {template_id!r}", code="template_not_found")
        return Template.from_wire(orjson.loads(raw))

    async def templates(self, room: str) -> list[Template]:
        raw = await self.redis.hgetall(keys.coupon_templates(room))
        found = [Template.from_wire(orjson.loads(v)) for v in raw.values()]
        return sorted(found, key=lambda t: int(t.id[1:]))

    async def issued(self, room: str) -> dict[str, int]:
        raw = await self.redis.hgetall(keys.coupon_issued(room))
        return {text(k): int(v) for k, v in raw.items()}

    # ---- drops ------------------------------------------------------------------------------

    async def drop(self, room: str, template_id: str, terms: DropTerms, *,
                   at_ms: int | None = None, private: str | None = None) -> Drop:  # fmt: skip
        """Release `quantity` coupons of a template now or after `countdown_s`. A `private`
        drop (owner such as "giveaway:g3") is not announced, and only `claim_batch` with
        that owner claims from it. A drop with `terms.tiers` is claimed only by users the
        room's tier map (keys.customer_tiers, written by the caller first) puts in them."""
        template = await self.template(room, template_id)
        now = int(time.time() * 1000) if at_ms is None else at_ms
        if template.valid_until <= now:
            raise ConflictError(f"template {template.id} is no longer valid; nobody could use "
                                "its coupons", code="template_expired")  # fmt: skip
        drop_id = f"d{await self.redis.incr(keys.coupon_counter(room))}"
        result = await self.scripts.coupon_drop(
            self.redis,
            [
                keys.coupon_drop(room, drop_id),
                keys.coupon_drops(room),
                keys.coupon_issued(room),
                keys.room_stream(room),
                keys.outbox(room),
            ],
            [
                drop_id,
                "" if at_ms is None else at_ms,
                terms.countdown_s * 1000,
                terms.claim_window_s * 1000,
                terms.quantity,
                template.id,
                template.total,
                template.per_user_limit,
                self.log_maxlen,
                self.outbox_maxlen,
                keys.room_bus(room),
                orjson.dumps(template.card()),
                private or "",
                "" if (tiers := terms.tier_names()) is None else orjson.dumps(tiers),
            ],
        )
        if result[0] != b"ok":
            issued = text(result[2])
            raise ConflictError(
                f"only {template.total - int(issued or 0)} of template {template.id} are left "
                "to drop",
                code="coupons_exhausted",
                details={"total": template.total, "issued": int(issued or 0)},
            )
        return await self.get_drop(room, drop_id)

    async def get_drop(self, room: str, drop_id: str) -> Drop:
        raw = await self.redis.hgetall(keys.coupon_drop(room, check_drop_id(drop_id)))
        if not raw:
            raise NotFoundError(f"no coupon drop {drop_id!r} in this room", code="drop_not_found")
        return Drop.from_hash(raw)

    async def drops(self, room: str, *, private: bool = False) -> list[Drop]:
        """The room's drops in creation order (with `private`, also giveaways' prize drops)."""
        ids = [text(d) for d in await self.redis.zrange(keys.coupon_drops(room), 0, -1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for drop_id in ids:
                pipe.hgetall(keys.coupon_drop(room, drop_id))
            raws = await pipe.execute()
        drops = [Drop.from_hash(raw) for raw in raws if raw]
        return [drop for drop in drops if private or drop.private is None]

    # ---- claims -----------------------------------------------------------------------------

    async def claim(self, room: str, drop_id: str, user: str, request_id: str) -> GrabAnswer:
        """One viewer's claim, batched with others arriving for the same drop."""
        return await self._batcher(room, drop_id).submit(GrabRequest(user, request_id, 1))

    def claim_nowait(
        self, room: str, drop_id: str, user: str, request_id: str, on_answer: OnAnswer
    ) -> None:
        self._batcher(room, drop_id).submit_nowait(GrabRequest(user, request_id, 1), on_answer)

    def answering(self, room: str) -> bool:
        """Whether claims of the room wait for their answers on this process."""
        return any(batch_room == room for batch_room, _ in self.batchers)

    def _batcher(self, room: str, drop_id: str) -> GrabBatcher:
        key = (room, check_drop_id(drop_id))
        batcher = self.batchers.get(key)
        if batcher is None:
            batcher = self.batchers[key] = GrabBatcher(
                lambda batch: self.claim_batch(room, drop_id, batch),
                max_batch=self.max_batch,
                window_s=0.0,
                on_idle=lambda: self._forget(key),
            )
        return batcher

    def _forget(self, key: tuple[str, str]) -> None:
        self.batchers.pop(key, None)

    async def claim_batch(
        self, room: str, drop_id: str, batch: list[GrabRequest], *, at_ms: int | None = None,
        owner: str = "",
    ) -> list[GrabAnswer]:  # fmt: skip
        """Claim for `batch` in order; `owner` claims from its private drop on a user's behalf."""
        args: list[str | bytes | int | float] = [
            "" if at_ms is None else at_ms,
            self.outbox_maxlen,
            owner,
        ]
        for request in batch:
            args += [request.user, request.request_id]
        results = await self.scripts.coupon_claim(
            self.redis,
            [
                keys.coupon_drop(room, drop_id),
                keys.coupon_drop_answers(room, drop_id),
                keys.coupons(room),
                keys.coupon_holders(room),
                keys.coupon_wallets(room),
                keys.outbox(room),
                keys.customer_tiers(room),
            ],
            args,
        )
        answers = [GrabAnswer(orjson.loads(raw[1:]), raw[:1] == b"1") for raw in results]
        claimed = sum(1 for a in answers if a.status == "claimed" and not a.replayed)
        self.meter.count(room, Metric.COUPON_CLAIMS, claimed, dim=drop_id)
        return answers

    # ---- a viewer's coupons -------------------------------------------------------------------

    async def record(self, room: str, coupon_id: str) -> dict[str, Any]:
        drop_of_coupon(coupon_id)
        raw = await self.redis.hget(keys.coupons(room), coupon_id)
        if raw is None:
            raise NotFoundError(f"no coupon {coupon_id!r}", code="coupon_not_found")
        record: dict[str, Any] = orjson.loads(raw)
        return record

    async def wallet(self, room: str, user: str) -> list[dict[str, Any]]:
        """The user's coupons with their state and terms."""
        ids = text(await self.redis.hget(keys.coupon_wallets(room), user)).split()
        if not ids:
            return []
        raws = await self.redis.hmget(keys.coupons(room), ids)
        templates = {t.id: t for t in await self.templates(room)}
        wallet = []
        for coupon_id, raw in zip(ids, raws, strict=True):
            if raw is None:
                continue
            record = orjson.loads(raw)
            wallet.append(
                {
                    "id": coupon_id,
                    "state": record["s"],
                    "order": record.get("o"),
                    "drop": record["d"],
                    "claimed_at": record["c"],
                    "template": templates[record["t"]].to_wire(),
                }
            )
        return wallet

    async def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.cancel()
        self.batchers.clear()
