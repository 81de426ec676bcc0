"""Fixing a reconciliation exception: its remedy, applied through the engine's own paths (the
payment callbacks' shared apply step, the host's refund, the automatic refund's settlement),
once. The adjustment (who, when, why, what was done) is written in the same transaction that
holds the exception's lock, so two fixes of one exception at once apply it once, and a second
fix finds the first's adjustment and does nothing (docs/ledger.md § Reconciliation).
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Annotated, Any

import asyncpg
import orjson
from msgspec import Meta, Struct
from redis.asyncio import Redis

from engine.commerce.orders import Order
from engine.commerce.payments import Callback, PaymentProvider, Payments, RefundTerms
from engine.core.errors import ConflictError, LivecartError, NotFoundError
from engine.core.fields import invalid_field
from engine.ledger.database import Connection
from engine.ledger.reconcile import (
    ACKNOWLEDGE,
    APPLY_PAYMENT,
    EXCEPTION_NOT_FIXABLE,
    EXCEPTION_NOT_FOUND,
    PAY_OUT_REFUND,
    RECORD_REFUND,
    REFUND_CHARGE,
    Discrepancy,
    parse_id,
)
from engine.ledger.reconcile_day import adjustment_wire, reconcile

log = logging.getLogger("livecart.ledger")

MAX_WHY = 500

_INSERT_REFUND = (
    "INSERT INTO refunds (room, refund_id, order_id, payment_id, amount, currency, reason, at_ms)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (room, refund_id) DO NOTHING"
)


def _charge(item: Discrepancy) -> tuple[str, int, str]:
    """The payment, amount and currency of the charge a charge's exception is about."""
    if item.payment is None or item.provider_amount is None or item.provider_currency is None:
        raise ConflictError(f"{item.id} names no charge", code=EXCEPTION_NOT_FIXABLE)
    return item.payment, item.provider_amount, item.provider_currency


def refund_id_for(payment_id: str) -> str:
    """The refund id of a charge refunded by reconciliation: one per payment, so that the
    provider refunds it once however often the fix runs (its idempotency key)."""
    return f"recon-{payment_id}"


class Remedies:
    def __init__(self, redis: Redis, pool: asyncpg.Pool, payments: Payments) -> None:
        self.redis = redis
        self.pool = pool
        self.payments = payments

    def provider(self) -> PaymentProvider:
        if self.payments.provider is None:
            raise ConflictError("no payment provider is configured on this engine",
                                code="payments_disabled")  # fmt: skip
        return self.payments.provider

    async def fix(self, exception_id: str, *, who: str, why: str,
                  room: str | None = None) -> dict[str, Any]:  # fmt: skip
        """Apply the remedy of one exception (of `room` only, when given) and record it:
        `{"fixed": true|false, "id", "adjustment"}`; false when it was fixed already."""
        cls, id_room, reference, day = parse_id(exception_id)
        why = check_why(why)
        if room is not None and id_room != room:
            raise NotFoundError(f"no exception {exception_id} in this room",
                                code=EXCEPTION_NOT_FOUND)  # fmt: skip
        provider = self.provider()
        async with self.pool.acquire() as connection, connection.transaction():
            # One fix of an exception at a time: a second one waits here, then finds the
            # first one's adjustment.
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                                     f"{cls}:{reference}")  # fmt: skip
            done = await connection.fetchrow(
                "SELECT * FROM adjustments WHERE class = $1 AND reference = $2", cls, reference
            )
            if done is not None:
                return {"fixed": False, "id": exception_id, "adjustment": adjustment_wire(done)}
            # Read in this transaction: what the fix acts on is what it saw.
            report = await reconcile(self.redis, connection, provider, day, id_room)
            item = report.find(exception_id)
            if item is None:
                raise NotFoundError(f"no exception {exception_id}: the books and the provider "
                                    "agree on it now", code=EXCEPTION_NOT_FOUND)  # fmt: skip
            if not item.fixable:
                raise ConflictError(f"{item.cls} is reported only: the ledger catches up by "
                                    "itself", code=EXCEPTION_NOT_FIXABLE)  # fmt: skip
            outcome = await self._apply(connection, provider, item, who)
            row = await connection.fetchrow(
                "INSERT INTO adjustments (day, room, class, reference, remedy, who, why, detail)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) RETURNING *",
                day, item.room, item.cls, item.reference, item.remedy, who, why,
                orjson.dumps({"exception": item.to_wire(), "outcome": outcome}).decode(),
            )  # fmt: skip
        assert row is not None
        log.warning("reconciliation: %s fixed by %s (%s): %s", exception_id, who, item.remedy,
                    outcome)  # fmt: skip
        return {"fixed": True, "id": exception_id, "adjustment": adjustment_wire(row)}

    async def _apply(self, connection: Connection, provider: PaymentProvider, item: Discrepancy,
                     who: str) -> dict[str, Any]:  # fmt: skip
        """Carry out the item's remedy; what was done, for the adjustment's detail."""
        if item.remedy == ACKNOWLEDGE:
            return {}
        if item.remedy == APPLY_PAYMENT:
            return await self._apply_payment(item)
        if item.remedy == REFUND_CHARGE:
            return await self._refund_charge(connection, provider, item)
        if item.remedy == PAY_OUT_REFUND:
            return await self._pay_out(provider, item, who)
        if item.remedy == RECORD_REFUND:
            return await self._record_refund(connection, item, who)
        raise ConflictError(f"no remedy {item.remedy}", code=EXCEPTION_NOT_FIXABLE)

    async def _apply_payment(self, item: Discrepancy) -> dict[str, Any]:
        """The charge as the provider's lost callback would have said it, through the same
        apply step: it pays the order, or (a duplicate, an order cancelled or past saving)
        marks the payment for an automatic refund and pays that out."""
        payment, amount, currency = _charge(item)
        callback = Callback("succeeded", payment, item.room, item.order or "", amount, currency,
                            nonce=f"reconcile-{secrets.token_hex(8)}")  # fmt: skip
        answer = await self.payments.apply(callback)
        return {"outcome": answer["outcome"], "detail": answer["detail"]}

    async def _refund_charge(self, connection: Connection, provider: PaymentProvider,
                             item: Discrepancy) -> dict[str, Any]:  # fmt: skip
        """Give the whole charge back, and record the refund in the ledger against the
        payment: no order of Redis records this charge, so none changes."""
        payment, amount, currency = _charge(item)
        refund_id = refund_id_for(payment)
        provider_refund = await provider.refund(payment, amount, refund_id)
        await connection.execute(
            _INSERT_REFUND, item.room, refund_id, item.order or "", payment, amount, currency,
            f"reconcile: {item.cls}", int(time.time() * 1000),
        )  # fmt: skip
        return {"refund": refund_id, "provider_refund": provider_refund}

    async def _pay_out(self, provider: PaymentProvider, item: Discrepancy,
                       who: str) -> dict[str, Any]:  # fmt: skip
        """Pay out a recorded refund under its own id: a host's through the host's refund
        again (a replay pays out what failed at the provider), any other directly."""
        if item.refund is None or item.payment is None or item.books_amount is None:
            raise ConflictError(f"{item.id} names no payment to refund",
                                code=EXCEPTION_NOT_FIXABLE)  # fmt: skip
        order = await self._order(item)
        if order is not None and any(r["id"] == item.refund for r in order.refunds()):
            _, replayed = await self.payments.refund(
                item.room, order.id, RefundTerms(id=item.refund), who
            )
            return {"paid_out": item.refund, "through": "host_refund", "replayed": replayed}
        provider_refund = await provider.refund(item.payment, item.books_amount, item.refund)
        return {"paid_out": item.refund, "through": "provider", "provider_refund": provider_refund}

    async def _record_refund(self, connection: Connection, item: Discrepancy,
                             who: str) -> dict[str, Any]:  # fmt: skip
        """Record a refund the provider paid out: an automatic refund it owed (settled, as
        the automatic refund settles), else on the order whose payment it returns (a refund
        with no payout: the money is back already), else in the ledger alone."""
        payment, amount, currency = _charge(item)  # the refund line's payment and money
        refund_id = item.refund or ""
        orders = self.payments.orders
        record = await orders.payment(item.room, payment)
        if record is not None and record.get("s") == "refund_due":
            await orders.settle_refund(item.room, payment, refund_id)
            return {"recorded": "automatic_refund"}
        order = await self._order(item)
        if order is not None and order.fields.get("payment") == payment:
            try:
                updated, _ = await orders.refund(
                    item.room, order.id, refund_id, amount=amount, reason="reconcile", who=who
                )
            except LivecartError as refused:  # more than the order has left, not paid...
                log.warning("refund %s not recorded on order %s (%s): in the ledger only",
                            item.refund, order.id, refused.code)  # fmt: skip
            else:
                return {"recorded": "order", "state": updated.state.value}
        await connection.execute(
            _INSERT_REFUND, item.room, refund_id, item.order or "", payment, amount, currency,
            "reconcile: provider refund", int(item.detail.get("at_ms") or time.time() * 1000),
        )  # fmt: skip
        return {"recorded": "ledger"}

    async def _order(self, item: Discrepancy) -> Order | None:
        if not item.order:
            return None
        try:
            return await self.payments.orders.get(item.room, item.order)
        except LivecartError:
            return None  # gone from Redis, or an id Redis never had


def check_why(why: str) -> str:
    """A reason a person can read later: some words, at most MAX_WHY characters."""
    if not why.strip() or len(why) > MAX_WHY:
        raise invalid_field("why", f"why the exception is fixed: 1 to {MAX_WHY} characters")
    return why.strip()


class FixTerms(Struct, frozen=True, kw_only=True):
    """Why a person fixes an exception (`POST .../reconciliation/{id}/fix`): kept with it."""

    why: Annotated[str, Meta(min_length=1, max_length=MAX_WHY)]

    def __post_init__(self) -> None:
        check_why(self.why)
