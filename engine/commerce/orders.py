"""Orders: checkout from held reservations, payment, cancel and expiry, refunds, fulfilment.

    pending_payment ──payment──▶ paid ──host──▶ fulfilled
        │    │                    │               │
        │    └─deadline─▶ expired │               │
        └─cancel─▶ cancelled      └──refund──▶ partially_refunded ──▶ refunded

Every transition is one Lua script (engine/lua/checkout, order_pay, order_release,
order_refund, order_mark) and appends to the room's order events stream. Checkout prices
in Python (engine/commerce/pricing.py) from immutable inputs; the script verifies the state priced.
Late payments: see `order_pay.lua` and docs/orders.md.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from engine.commerce.checkout_request import CheckoutRequest
from engine.commerce.coupons import Coupons
from engine.commerce.pricing import Breakdown, Line, price
from engine.commerce.risk import RiskRules
from engine.commerce.sales import Sale, SaleStore
from engine.commerce.stock import Stock, sale_of_reservation
from engine.core.errors import (
    ConflictError,
    ForbiddenError,
    LivecartError,
    NotFoundError,
    RejectedError,
)
from engine.core.fields import invalid_field
from engine.store import keys
from engine.store.meter import Meter, Metric, off
from engine.store.redis_client import text
from engine.store.scripts import Scripts

ORDER_ID_RE = re.compile(r"o[0-9]{1,12}")


class OrderState(enum.Enum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"

    @property
    def counts_as_sale(self) -> bool:
        """Paid at some point: its money went through a verified payment."""
        return self in _SOLD_STATES


_SOLD_STATES = frozenset(
    {OrderState.PAID, OrderState.FULFILLED, OrderState.PARTIALLY_REFUNDED, OrderState.REFUNDED}
)


def check_order_id(value: Any) -> str:
    if not isinstance(value, str) or not ORDER_ID_RE.fullmatch(value):
        raise invalid_field("order", "an order id such as 'o12'")
    return value


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    user: str
    device: str
    state: OrderState
    currency: str
    total: int
    refunded: int
    created_at: int
    expires_at: int
    detail: dict[str, Any]  # lines, pricing, shipping_address, contact
    coupons: tuple[str, ...]
    review: str | None
    fields: dict[str, str]  # everything else, as stored (paid_at, payment, refund:<id> ...)

    @property
    def lines(self) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = self.detail["lines"]
        return lines

    def refunds(self) -> list[dict[str, Any]]:
        return [
            {"id": name.removeprefix("refund:"), **orjson.loads(value)}
            for name, value in sorted(self.fields.items())
            if name.startswith("refund:")
        ]

    def to_wire(self) -> dict[str, Any]:
        f = self.fields
        return {
            "id": self.id,
            "user": self.user,
            "device": self.device or None,
            "state": self.state.value,
            "review": self.review,
            "currency": self.currency,
            "lines": self.lines,
            "coupons": list(self.coupons),
            "pricing": self.detail["pricing"],
            "shipping_address": self.detail["shipping_address"],
            "contact": self.detail["contact"],
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "paid_at": int(f["paid_at"]) if "paid_at" in f else None,
            "payment": f.get("payment"),
            "late_payment": f.get("late") == "1",
            "refunded": self.refunded,
            "refunds": self.refunds(),
            "closed_at": int(f["closed_at"]) if "closed_at" in f else None,
            "reason": f.get("reason"),
            "fulfilled_at": int(f["fulfilled_at"]) if "fulfilled_at" in f else None,
        }

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> Order:
        h = {text(k): text(v) for k, v in raw.items()}
        known = {
            "id",
            "user",
            "device",
            "state",
            "currency",
            "total",
            "refunded",
            "created_at",
            "expires_at",
            "detail",
            "coupons",
            "review",
            "key",
        }
        return cls(
            id=h["id"],
            user=h["user"],
            device=h.get("device", ""),
            state=OrderState(h["state"]),
            currency=h["currency"],
            total=int(h["total"]),
            refunded=int(h.get("refunded", 0)),
            created_at=int(h["created_at"]),
            expires_at=int(h["expires_at"]),
            detail=orjson.loads(h["detail"]),
            coupons=tuple(h.get("coupons", "").split()),
            review=h.get("review") or None,
            fields={k: v for k, v in h.items() if k not in known},
        )


async def load_orders(redis: Redis, room: str, ids: Sequence[str] | None = None) -> list[Order]:
    """Orders by id (default: all of the room's, in creation order)."""
    if ids is None:
        ids = [text(i) for i in await redis.zrange(keys.orders(room), 0, -1)]
    async with redis.pipeline(transaction=False) as pipe:
        for order_id in ids:
            pipe.hgetall(keys.order(room, order_id))
        raws = await pipe.execute()
    return [Order.from_hash(raw) for raw in raws if raw]


_CHECKOUT_ERRORS: dict[str, tuple[type[LivecartError], str]] = {
    "blocked": (ForbiddenError, "ordering is blocked for this {detail}"),
    "order_limit": (RejectedError, "this {detail} has reached its order limit"),
    "reservation_not_found": (NotFoundError, "no reservation {detail}"),
    "reservation_not_yours": (ForbiddenError, "reservation {detail} is someone else's"),
    "reservation_not_held": (ConflictError, "reservation {detail} is not held"),
    "reservation_expired": (ConflictError, "the hold on reservation {detail} has expired"),
    "reservation_in_order": (ConflictError, "reservation {detail} is already in an order"),
    "reservation_changed": (ConflictError, "reservation {detail} changed; check out again"),
    "coupon_not_found": (NotFoundError, "no coupon {detail}"),
    "coupon_not_yours": (ForbiddenError, "coupon {detail} is someone else's"),
    "coupon_not_available": (ConflictError, "coupon {detail} is not available"),
    "coupon_not_valid": (RejectedError, "coupon {detail} is outside its validity window"),
}


class OrderStore:
    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        *,
        sales: SaleStore,
        stock: Stock,
        coupons: Coupons,
        risk: RiskRules,
        payment_window_ms: int,
        shipping_fee: int,
        events_maxlen: int,
        outbox_maxlen: int,
        meter: Meter | None = None,
    ) -> None:
        self.redis = redis
        self.scripts = scripts
        self.sales = sales
        self.stock = stock
        self.coupons = coupons
        self.risk = risk
        self.payment_window_ms = payment_window_ms
        self.shipping_fee = shipping_fee
        self.events_maxlen = events_maxlen
        self.outbox_maxlen = outbox_maxlen
        self.meter = meter or off()

    # ---- reading ------------------------------------------------------------------------------

    async def get(self, room: str, order_id: str) -> Order:
        raw = await self.redis.hgetall(keys.order(room, check_order_id(order_id)))
        if not raw:
            raise NotFoundError(f"no order {order_id!r} in this room", code="order_not_found")
        return Order.from_hash(raw)

    async def _many(self, room: str, ids: Sequence[str]) -> list[Order]:
        return await load_orders(self.redis, room, ids)

    async def list_room(
        self, room: str, *, state: OrderState | None = None, review: str | None = None
    ) -> list[Order]:
        found = await load_orders(self.redis, room)
        return [
            o
            for o in found
            if (state is None or o.state is state) and (review is None or o.review == review)
        ]

    async def list_user(self, room: str, user: str) -> list[Order]:
        ids = text(await self.redis.hget(keys.user_orders(room), user)).split()
        return await self._many(room, ids)

    # ---- checkout -----------------------------------------------------------------------------

    async def _price(
        self, room: str, user: str, request: CheckoutRequest
    ) -> tuple[list[dict[str, Any]], Breakdown, str, list[tuple[str, int, int]]]:
        """Read what the order is made of and price it."""
        sales: dict[str, Sale] = {}
        lines = []
        for rid in request.reservations:
            reservation = await self.stock.reservation(room, rid)
            if reservation["user"] != user:
                raise ForbiddenError(
                    f"reservation {rid} is someone else's", code="reservation_not_yours"
                )
            sale_id = reservation["sale"]
            if sale_id not in sales:
                sales[sale_id] = await self.sales.get(room, sale_id)
            sale = sales[sale_id]
            award_price = reservation["price"]  # an auction lot's winning bid, a prize's 0
            lines.append(
                {
                    "reservation": rid,
                    "sale": sale_id,
                    "sku": sale.sku,
                    "product": sale.product,
                    "title": sale.title,
                    "unit_price": sale.price if award_price is None else award_price,
                    "quantity": reservation["quantity"],
                }
            )
        currencies = {sale.currency for sale in sales.values()}
        if len(currencies) != 1:
            raise RejectedError("one order, one currency", code="currency_mismatch")
        currency = currencies.pop()
        offers, windows = [], []
        for cid in request.coupon_ids():
            record = await self.coupons.record(room, cid)
            if record["u"] != user:
                raise ForbiddenError(f"coupon {cid} is someone else's", code="coupon_not_yours")
            template = await self.coupons.template(room, record["t"])
            if template.currency != currency:
                raise RejectedError(
                    f"coupon {cid} is for {template.currency}",
                    code="coupon_not_applicable",
                    details={"coupon": cid},
                )
            offers.append(template.offer(cid))
            windows.append((cid, template.valid_from, template.valid_until))
        breakdown = price(
            [Line(line["sku"], line["unit_price"], line["quantity"]) for line in lines],
            offers,
            self.shipping_fee,
        )
        return lines, breakdown, currency, windows

    async def checkout(
        self, room: str, user: str, request: CheckoutRequest, *, at_ms: int | None = None
    ) -> tuple[Order, bool]:
        """Create the order (or return the one made with this key); (order, replayed)."""
        replay = await self.redis.hget(keys.order_keys(room), f"{user} {request.idempotency_key}")
        if replay is not None:
            return await self.get(room, text(replay)), True
        lines, breakdown, currency, windows = await self._price(room, user, request)
        sale_ids = list(dict.fromkeys(line["sale"] for line in lines))
        res_keys = [keys.sale_reservations(room, s) for s in sale_ids]
        order_id = f"o{await self.redis.incr(keys.order_counter(room))}"
        detail = {
            "lines": lines,
            "pricing": breakdown.to_wire(),
            "shipping_address": request.address(),
            "contact": request.contact_details(),
        }
        fields: list[str | int | bytes] = [
            "currency",
            currency,
            "total",
            breakdown.total,
            "coupons",
            " ".join(request.coupon_ids()),
            "detail",
            orjson.dumps(detail),
        ]
        if self.risk.needs_review(breakdown.total):
            fields += ["review", "flagged"]
        args: list[str | int | bytes | float] = [
            "" if at_ms is None else at_ms,
            self.events_maxlen,
            order_id,
            user,
            request.device or "",
            request.idempotency_key,
            self.payment_window_ms,
            self.risk.max_orders_per_user,
            self.risk.max_orders_per_device,
            len(lines),
            len(windows),
            "1" if self.meter.enabled else "0",
        ]
        for line in lines:
            args += [line["reservation"], 12 + sale_ids.index(line["sale"]), line["quantity"]]
        for cid, valid_from, valid_until in windows:
            args += [cid, valid_from, valid_until]
        result = await self.scripts.checkout(
            self.redis,
            [
                keys.order(room, order_id),
                keys.orders(room),
                keys.order_keys(room),
                keys.order_expiry(room),
                keys.order_counts(room),
                keys.user_orders(room),
                keys.blocklist(room),
                keys.coupons(room),
                keys.expiry(room),
                keys.order_events(room),
                keys.show_metrics(room),
                *res_keys,
            ],
            [*args, *fields],
        )
        status = text(result[0])
        if status == "err":
            code, detail_text = text(result[1]), text(result[2])
            cls, message = _CHECKOUT_ERRORS[code]
            raise cls(
                message.format(detail=detail_text), code=code, details={"detail": detail_text}
            )
        # The script counted a new order in the show metrics (orders, and once per sale).
        return await self.get(room, text(result[1])), status == "replay"

    # ---- cancel and expiry --------------------------------------------------------------------

    def _line_keys(
        self, room: str, order: Order, per_sale: int, first: int
    ) -> tuple[list[str], list[str | int]]:
        """KEYS for the order's sales (one or three per sale) and ARGV pairs pointing at them."""
        sale_ids = list(dict.fromkeys(line["sale"] for line in order.lines))
        sale_keys: list[str] = []
        for sale_id in sale_ids:
            group = [
                keys.sale(room, sale_id),
                keys.sale_reservations(room, sale_id),
                keys.sale_users(room, sale_id),
            ]
            sale_keys += group[1:2] if per_sale == 1 else group
        pairs: list[str | int] = []
        for line in order.lines:
            pairs += [line["reservation"], first + per_sale * sale_ids.index(line["sale"])]
        return sale_keys, pairs

    async def _release(
        self, room: str, order_id: str, mode: str, *, who: str, reason: str, at_ms: int | None
    ) -> Order:
        order = await self.get(room, order_id)
        sale_keys, pairs = self._line_keys(room, order, 1, 7)
        result = await self.scripts.order_release(
            self.redis,
            [
                keys.order(room, order.id),
                keys.order_expiry(room),
                keys.order_counts(room),
                keys.coupons(room),
                keys.expiry(room),
                keys.order_events(room),
                *sale_keys,
            ],
            ["" if at_ms is None else at_ms, self.events_maxlen, mode, who, reason, *pairs],
        )
        if text(result[0]) == "err":
            code, detail = text(result[1]), text(result[2])
            if code == "illegal_transition":
                raise ConflictError(
                    f"order {order_id} is {detail}", code=code, details={"state": detail}
                )
            raise ConflictError(f"order {order_id} is not due yet", code=code)
        # Give the units back now; if this fails the reservation sweeper does it (hold ended).
        by_sale: dict[str, list[str]] = {}
        for rid in map(text, result[2:]):
            by_sale.setdefault(sale_of_reservation(rid), []).append(rid)
        for sale_id, rids in by_sale.items():
            if mode == "cancel":
                await self.stock.release_many(room, sale_id, rids, order.user, at_ms=at_ms)
            else:
                await self.stock.expire(room, sale_id, rids, at_ms=at_ms)
        return await self.get(room, order_id)

    async def cancel(
        self,
        room: str,
        order_id: str,
        who: str,
        *,
        owner: str | None = None,
        reason: str = "cancelled",
        at_ms: int | None = None,
    ) -> Order:
        """Cancel an unpaid order; with `owner`, only that user's."""
        if owner is not None and (await self.get(room, order_id)).user != owner:
            raise ForbiddenError("that order is someone else's", code="forbidden")
        return await self._release(room, order_id, "cancel", who=who, reason=reason, at_ms=at_ms)

    async def expire(self, room: str, order_id: str, *, at_ms: int | None = None) -> Order:
        return await self._release(
            room, order_id, "expire", who="sweeper", reason="payment_timeout", at_ms=at_ms
        )

    async def due(self, room: str, at_ms: int, limit: int) -> list[str]:
        ids = await self.redis.zrangebyscore(
            keys.order_expiry(room), "-inf", at_ms, start=0, num=limit
        )
        return [text(i) for i in ids]

    # ---- payment --------------------------------------------------------------------------

    async def apply_payment(
        self,
        room: str,
        order: Order,
        payment_id: str,
        *,
        event: str,
        amount: int,
        currency: str,
        at_ms: int | None = None,
    ) -> tuple[str, str]:
        """Apply a verified provider event (order_pay.lua); returns (outcome, detail)."""
        sale_keys, pairs = self._line_keys(room, order, 3, 11)
        result = await self.scripts.order_pay(
            self.redis,
            [
                keys.order(room, order.id),
                keys.payments(room),
                keys.order_expiry(room),
                keys.coupons(room),
                keys.expiry(room),
                keys.order_events(room),
                keys.outbox(room),
                keys.order_counts(room),
                keys.show_metrics(room),
                keys.paid_buyers(room),
                *sale_keys,
            ],
            [
                "" if at_ms is None else at_ms,
                self.events_maxlen,
                self.outbox_maxlen,
                payment_id,
                event,
                amount,
                currency,
                "1" if self.meter.enabled else "0",
                *pairs,
            ],
        )
        outcome = text(result[0])
        detail = text(result[-1]) if len(result) > 1 else ""
        if outcome == "err":
            code = text(result[1])
            raise RejectedError(detail, code=code)
        # A payment that completed the order was counted by the script, with the outcome
        # (paid orders, GMV, paid buyers, coupon redemptions).
        return outcome, detail

    async def payment(self, room: str, payment_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(keys.payments(room), payment_id)
        return None if raw is None else dict(orjson.loads(raw))

    async def settle_refund(self, room: str, payment_id: str, provider_refund: str) -> None:
        """Mark a payment's automatic refund as done at the provider."""
        raw = await self.redis.hget(keys.payments(room), payment_id)
        if raw is None:
            return
        record = orjson.loads(raw)
        if record.get("s") == "refund_due":
            record["s"] = "refunded"
            record["rf"] = provider_refund
            # The order events stream says so too (the ledger's refunds): in one transaction.
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.payments(room), payment_id, orjson.dumps(record))
                pipe.xadd(
                    keys.order_events(room),
                    {"type": "payment_refunded", "order": record["o"], "payment": payment_id,
                     "refund": provider_refund, "amount": record["a"], "currency": record["c"],
                     "reason": record.get("reason", ""), "at": int(time.time() * 1000)},
                    maxlen=self.events_maxlen, approximate=True,
                )  # fmt: skip
                await pipe.execute()

    # ---- after payment ----------------------------------------------------------------------

    async def refund(
        self,
        room: str,
        order_id: str,
        refund_id: str,
        *,
        amount: int,
        reason: str,
        who: str,
        restock: Sequence[str] = (),
        at_ms: int | None = None,
    ) -> tuple[Order, bool]:
        """Record a refund (the caller pays it out at the provider); (order, replayed)."""
        order = await self.get(room, order_id)
        lines = {line["reservation"]: line for line in order.lines}
        unknown = [rid for rid in restock if rid not in lines]
        if unknown:
            raise invalid_field("restock", f"{unknown[0]} is not a line of order {order_id}")
        sale_ids = list(dict.fromkeys(lines[rid]["sale"] for rid in restock))
        sale_keys: list[str] = []
        for sale_id in sale_ids:
            sale_keys += [
                keys.sale(room, sale_id),
                keys.sale_reservations(room, sale_id),
                keys.sale_users(room, sale_id),
            ]
        pairs: list[str | int] = []
        for rid in restock:
            pairs += [rid, 5 + 3 * sale_ids.index(lines[rid]["sale"])]
        result = await self.scripts.order_refund(
            self.redis,
            [
                keys.order(room, order_id),
                keys.payments(room),
                keys.order_events(room),
                keys.outbox(room),
                *sale_keys,
            ],
            [
                "" if at_ms is None else at_ms,
                self.events_maxlen,
                self.outbox_maxlen,
                refund_id,
                amount,
                reason,
                who,
                *pairs,
            ],
        )
        status = text(result[0])
        if status == "err":
            code, detail = text(result[1]), text(result[2])
            if code == "illegal_transition":
                raise ConflictError(
                    f"order {order_id} is {detail}; only paid orders refund",
                    code=code,
                    details={"state": detail},
                )
            if code == "refund_too_large":
                raise RejectedError(
                    f"at most {detail} is left to refund",
                    code=code,
                    details={"refundable": int(detail)},
                )
            raise ConflictError(f"line {detail} cannot be restocked", code="not_restockable")
        if status != "replay":
            self.meter.count(room, Metric.REFUNDS)
            self.meter.money(room, Metric.REFUNDED, order.currency, amount)
        return await self.get(room, order_id), status == "replay"

    async def mark(
        self, room: str, order_id: str, action: str, who: str, *, at_ms: int | None = None
    ) -> Order:
        result = await self.scripts.order_mark(
            self.redis,
            [keys.order(room, check_order_id(order_id)), keys.order_events(room)],
            ["" if at_ms is None else at_ms, self.events_maxlen, action, who],
        )
        if text(result[0]) == "err":
            code, detail = text(result[1]), text(result[2])
            messages = {
                "order_not_found": (NotFoundError, f"no order {order_id!r} in this room"),
                "not_flagged": (ConflictError, "the order is not flagged for review"),
                "review_pending": (ConflictError, "the order is flagged for review; approve it"),
                "illegal_transition": (ConflictError, f"order {order_id} is {detail}, not paid"),
            }
            cls, message = messages[code]
            raise cls(message, code=code)
        return await self.get(room, order_id)
