"""Reconciliation: one UTC day of the payment provider's settlement against the books, the
ledger (PostgreSQL) and Redis (docs/ledger.md § Reconciliation).

This module is pure: `compare` takes the day's settlement lines (and the days either side,
only to match against: a charge at 23:59:59 may be confirmed after midnight), and what Redis
and the ledger hold; it gives the exceptions, each of one class with a stable id and its
remedy. engine/ledger/reconcile_day.py gathers those inputs and says which exceptions an
adjustment already answered (engine/ledger/remedies.py applies the remedies and writes the
adjustments).

An order or a refund counts as recorded when either Redis or the ledger holds it: the writer
copies Redis into the ledger a moment later, and the moment they differ is its own class,
`ledger_behind_redis`.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.commerce.payments import SettlementLine
from engine.core.errors import ConflictError, NotFoundError, register_codes
from engine.core.fields import invalid_field

# The classes, in the order a report lists them.
PAID_WITHOUT_ORDER = "paid_without_order"
ORDER_WITHOUT_CHARGE = "order_without_charge"
AMOUNT_MISMATCH = "amount_mismatch"
CURRENCY_MISMATCH = "currency_mismatch"
REFUND_MISSING_AT_PROVIDER = "refund_missing_at_provider"
REFUND_MISSING_IN_LEDGER = "refund_missing_in_ledger"
DUPLICATE_CHARGE = "duplicate_charge"
LEDGER_BEHIND_REDIS = "ledger_behind_redis"
CLASSES = (PAID_WITHOUT_ORDER, ORDER_WITHOUT_CHARGE, AMOUNT_MISMATCH, CURRENCY_MISMATCH,
           REFUND_MISSING_AT_PROVIDER, REFUND_MISSING_IN_LEDGER, DUPLICATE_CHARGE,
           LEDGER_BEHIND_REDIS)  # fmt: skip

# The remedies (engine/ledger/remedies.py carries them out).
APPLY_PAYMENT = "apply_payment"  # the charge applied to its order as a verified payment
REFUND_CHARGE = "refund_charge"  # the charge refunded in full at the provider, and recorded
PAY_OUT_REFUND = "pay_out_refund"  # the recorded refund paid out, with its own refund id
RECORD_REFUND = "record_refund"  # the provider's refund recorded in the books
ACKNOWLEDGE = "acknowledge"  # report only: a person looks; the fix records who and why
WAIT = "wait"  # nothing to do but let the ledger writer catch up: not fixable

# Wire codes of the books' routes (documented in docs/ledger.md § Reconciliation).
LEDGER_DISABLED = "ledger_disabled"
EXCEPTION_NOT_FOUND = "exception_not_found"
EXCEPTION_NOT_FIXABLE = "exception_not_fixable"
register_codes({LEDGER_DISABLED: ConflictError, EXCEPTION_NOT_FOUND: NotFoundError,
                EXCEPTION_NOT_FIXABLE: ConflictError})  # fmt: skip

SOLD_STATES = frozenset({"paid", "fulfilled", "partially_refunded", "refunded"})
DAY_MS = 86_400_000
# `<class>:<room>:<payment, refund or order id>@<YYYY-MM-DD>`: the day is in the id so that a
# fix finds its exception again with the id alone.
ID_RE = re.compile(
    r"(?P<cls>[a-z_]{1,40}):(?P<room>[a-z0-9][a-z0-9_-]{0,39}):(?P<thing>[A-Za-z0-9_.:-]{1,200})"
    r"@(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})"
)


def day_bounds(day: datetime.date) -> tuple[int, int]:
    """The UTC day as [start, end) in ms since the epoch."""
    start = int(datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp()) * 1000
    return start, start + DAY_MS


def parse_id(exception_id: str) -> tuple[str, str, str, datetime.date]:
    """(class, room, reference, day) of an exception id, or `invalid_field` (`id`)."""
    found = ID_RE.fullmatch(exception_id)
    day = None
    if found is not None and found["cls"] in CLASSES:
        try:
            day = datetime.date.fromisoformat(found["day"])
        except ValueError:
            day = None
    if found is None or day is None:
        raise invalid_field(
            "id", "an exception id such as 'paid_without_order:room:pay_x@2026-12-07'"
        )
    return found["cls"], found["room"], f"{found['room']}:{found['thing']}", day


# ---- the inputs ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookOrder:
    """An order as Redis or the ledger holds it."""

    room: str
    order: str
    state: str
    currency: str
    total: int
    refunded: int = 0
    payment_id: str | None = None
    paid_at_ms: int | None = None
    times: tuple[int, ...] = ()  # when it was created, paid, closed, fulfilled, refunded

    @property
    def sold(self) -> bool:
        return self.state in SOLD_STATES and self.payment_id is not None


@dataclass(frozen=True, slots=True)
class BookRefund:
    """A refund the engine recorded: a host's (on the order) or an automatic one."""

    room: str
    refund_id: str
    order: str
    payment_id: str | None
    amount: int
    currency: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Books:
    """What one side of the engine holds, keyed by (room, order) and (room, refund id)."""

    orders: Mapping[tuple[str, str], BookOrder] = field(default_factory=dict)
    refunds: Mapping[tuple[str, str], BookRefund] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Inputs:
    day: datetime.date
    lines: Sequence[SettlementLine]  # the day's settlement
    nearby: Sequence[SettlementLine]  # the days before and after: matched against only
    redis: Books
    ledger: Books


# ---- the output ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One exception of a day's reconciliation."""

    cls: str
    room: str
    thing: str  # the payment, refund or order id the exception is about
    day: datetime.date
    remedy: str
    order: str | None = None
    payment: str | None = None
    refund: str | None = None
    provider_amount: int | None = None
    provider_currency: str | None = None
    books_amount: int | None = None
    books_currency: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        """Unique within its class (the adjustments' key): the room and the id."""
        return f"{self.room}:{self.thing}"

    @property
    def id(self) -> str:
        return f"{self.cls}:{self.reference}@{self.day.isoformat()}"

    @property
    def fixable(self) -> bool:
        return self.remedy != WAIT

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id, "class": self.cls, "reference": self.reference, "room": self.room,
            "order": self.order, "payment": self.payment, "refund": self.refund,
            "provider_amount": self.provider_amount, "provider_currency": self.provider_currency,
            "books_amount": self.books_amount, "books_currency": self.books_currency,
            "remedy": self.remedy, "fixable": self.fixable, "detail": dict(self.detail),
        }  # fmt: skip


# ---- the comparison -----------------------------------------------------------------------


def compare(inputs: Inputs) -> list[Discrepancy]:
    """Every exception of the day, in class order then by id. Pure."""
    found = [
        *_charges(inputs),
        *_orders_without_charge(inputs),
        *_refunds(inputs),
        *_ledger_behind(inputs),
    ]
    return sorted(found, key=lambda d: (CLASSES.index(d.cls), d.id))


def _merged_orders(inputs: Inputs) -> dict[tuple[str, str], BookOrder]:
    """Each order as the newer side holds it: Redis, else the ledger (a room gone from Redis)."""
    return {**inputs.ledger.orders, **inputs.redis.orders}


def _recorded_refunds(inputs: Inputs) -> dict[tuple[str, str], BookRefund]:
    return {**inputs.redis.refunds, **inputs.ledger.refunds}


def _refunded_per_payment(inputs: Inputs) -> dict[str, int]:
    """How much of each payment went back, by the provider's lines or the books (a refund
    known to either side once; a refund missing from one side is a class of its own)."""
    seen: dict[tuple[str, str], tuple[str, int]] = {}
    for line in (*inputs.lines, *inputs.nearby):
        if line.kind == "refund":
            seen[(line.room, line.reference)] = (line.payment_id, line.amount)
    for key, refund in _recorded_refunds(inputs).items():
        if refund.payment_id is not None:
            seen.setdefault(key, (refund.payment_id, refund.amount))
    total: dict[str, int] = {}
    for payment_id, amount in seen.values():
        total[payment_id] = total.get(payment_id, 0) + amount
    return total


def _charges(inputs: Inputs) -> Iterable[Discrepancy]:
    """Each charge of the day not refunded in full: the paid order that records it, with its
    amount and currency; else its order, paid by another charge (a duplicate) or not at all."""
    orders = _merged_orders(inputs)
    by_payment = {o.payment_id: o for o in (*inputs.ledger.orders.values(),
                                            *inputs.redis.orders.values()) if o.sold}  # fmt: skip
    refunded = _refunded_per_payment(inputs)
    live = [c for c in inputs.lines if c.kind == "charge"
            and refunded.get(c.payment_id, 0) < c.amount]  # fmt: skip
    first: dict[tuple[str, str], SettlementLine] = {}
    for charge in sorted(live, key=lambda c: (c.at_ms, c.reference)):
        first.setdefault((charge.room, charge.order), charge)
    for charge in live:
        paid = by_payment.get(charge.payment_id)
        order = paid or orders.get((charge.room, charge.order))
        if order is not None and (charge.currency, charge.amount) != (order.currency, order.total):
            # The engine never accepts such a payment (order_pay.lua refuses it): a charge its
            # order never recorded went to the wrong amount and is refunded; one the order
            # records was confirmed at the order's amount, so only a person can tell.
            cls = CURRENCY_MISMATCH if charge.currency != order.currency else AMOUNT_MISMATCH
            yield _charge_item(inputs.day, cls, charge, order,
                               ACKNOWLEDGE if paid is not None else REFUND_CHARGE)  # fmt: skip
        elif paid is not None:
            continue  # the charge of a paid order, as the order records it
        elif order is not None and (order.sold or first[(charge.room, charge.order)] is not charge):
            remedy = (
                APPLY_PAYMENT
                if (charge.room, charge.order) in inputs.redis.orders
                else REFUND_CHARGE
            )
            yield _charge_item(inputs.day, DUPLICATE_CHARGE, charge, order, remedy)
        else:
            # Apply it as the lost callback would have (paid, or refunded by the payment
            # script's late-payment rules); with no order in Redis, refund it.
            in_redis = order is not None and (charge.room, charge.order) in inputs.redis.orders
            yield _charge_item(inputs.day, PAID_WITHOUT_ORDER, charge, order,
                               APPLY_PAYMENT if in_redis else REFUND_CHARGE)  # fmt: skip


def _charge_item(day: datetime.date, cls: str, charge: SettlementLine, order: BookOrder | None,
                 remedy: str) -> Discrepancy:  # fmt: skip
    detail: dict[str, Any] = {"at_ms": charge.at_ms, "fee": charge.fee}
    if order is not None:
        detail.update(order_state=order.state, order_payment=order.payment_id)
    return Discrepancy(
        cls, charge.room, charge.payment_id, day, remedy, order=charge.order,
        payment=charge.payment_id, provider_amount=charge.amount,
        provider_currency=charge.currency,
        books_amount=order.total if order is not None else None,
        books_currency=order.currency if order is not None else None, detail=detail,
    )  # fmt: skip


def _orders_without_charge(inputs: Inputs) -> Iterable[Discrepancy]:
    """Each order paid this day whose payment has no charge line (a day either side too)."""
    start, end = day_bounds(inputs.day)
    charged = {c.payment_id for c in (*inputs.lines, *inputs.nearby) if c.kind == "charge"}
    for order in _merged_orders(inputs).values():
        if not order.sold or order.paid_at_ms is None or not start <= order.paid_at_ms < end:
            continue
        if order.payment_id not in charged:
            yield Discrepancy(
                ORDER_WITHOUT_CHARGE, order.room, order.order, inputs.day, ACKNOWLEDGE,
                order=order.order, payment=order.payment_id, books_amount=order.total,
                books_currency=order.currency,
                detail={"order_state": order.state, "paid_at_ms": order.paid_at_ms},
            )  # fmt: skip


def _refunds(inputs: Inputs) -> Iterable[Discrepancy]:
    """Refunds recorded this day against the provider's refund lines, and back. A pair is
    matched by refund id, else by payment and amount (a provider may name an automatic refund
    by its own id)."""
    start, end = day_bounds(inputs.day)
    recorded = _recorded_refunds(inputs)
    lines = [line for line in (*inputs.lines, *inputs.nearby) if line.kind == "refund"]
    by_id = {(line.room, line.reference): line for line in lines}
    unmatched_lines = {key: line for key, line in by_id.items() if key not in recorded}
    unmatched_books = {key: r for key, r in recorded.items() if key not in by_id}
    for _, refund in sorted(unmatched_books.items(), key=lambda kv: (kv[1].at_ms, kv[0])):
        twin = next((k for k, line in unmatched_lines.items()
                     if (line.payment_id, line.amount) == (refund.payment_id, refund.amount)),
                    None)  # fmt: skip
        if twin is not None:
            del unmatched_lines[twin]
            continue
        if start <= refund.at_ms < end:
            yield Discrepancy(
                REFUND_MISSING_AT_PROVIDER, refund.room, refund.refund_id, inputs.day,
                PAY_OUT_REFUND, order=refund.order, payment=refund.payment_id,
                refund=refund.refund_id, books_amount=refund.amount,
                books_currency=refund.currency, detail={"at_ms": refund.at_ms},
            )  # fmt: skip
    day_lines = {(line.room, line.reference) for line in inputs.lines if line.kind == "refund"}
    for key, line in sorted(unmatched_lines.items()):
        if key in day_lines:
            yield Discrepancy(
                REFUND_MISSING_IN_LEDGER, line.room, line.reference, inputs.day, RECORD_REFUND,
                order=line.order, payment=line.payment_id, refund=line.reference,
                provider_amount=line.amount, provider_currency=line.currency,
                detail={"at_ms": line.at_ms},
            )  # fmt: skip


def _ledger_behind(inputs: Inputs) -> Iterable[Discrepancy]:
    """Each order Redis changed this day that the ledger holds otherwise (or not at all)."""
    start, end = day_bounds(inputs.day)
    for key, order in inputs.redis.orders.items():
        if not any(start <= at < end for at in order.times):
            continue
        row = inputs.ledger.orders.get(key)
        seen = None if row is None else (row.state, row.refunded, row.payment_id)
        if seen == (order.state, order.refunded, order.payment_id):
            continue
        yield Discrepancy(
            LEDGER_BEHIND_REDIS, order.room, order.order, inputs.day, WAIT, order=order.order,
            payment=order.payment_id, books_amount=order.total, books_currency=order.currency,
            detail={"redis_state": order.state, "ledger_state": row.state if row else None,
                    "redis_refunded": order.refunded,
                    "ledger_refunded": row.refunded if row else None},
        )  # fmt: skip
