"""What the ledger writes for a batch of order events: the rows of each table, made from
the events and from the orders and payments as Redis holds them when the batch is read.
Pure functions (no I/O): engine/ledger/writer.py reads and writes.

An event says what changed; the order's hash says what it is now. A snapshot read after
an event is at least as new as the event, so each order and payment row is written from
its snapshot, stamped with the newest event's `version`: an older write never replaces
a newer one (the upserts in writer.py compare versions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine.commerce.orders import Order

# A stream entry id's sequence number fits in 20 bits here: a room appends far fewer than
# a million order events in one millisecond.
_SEQ_BITS = 20

EVENTS_COLUMNS = ("room", "event_id", "version", "type", "order_id", "user_id", "payment_id",
                  "amount", "currency", "at_ms", "data")  # fmt: skip
ORDERS_COLUMNS = (
    "room", "order_id", "shop", "user_id", "device", "state", "currency", "subtotal", "discount",
    "shipping", "total", "refunded", "coupons", "lines", "created_at_ms", "paid_at_ms",
    "closed_at_ms", "fulfilled_at_ms", "payment_id", "late_payment", "shipping_address",
    "contact", "version",
)  # fmt: skip
PAYMENTS_COLUMNS = ("payment_id", "room", "order_id", "user_id", "amount", "currency", "state",
                    "reason", "at_ms", "version")  # fmt: skip
REFUNDS_COLUMNS = ("room", "refund_id", "order_id", "payment_id", "amount", "currency", "reason",
                   "at_ms")  # fmt: skip
COUPONS_COLUMNS = ("room", "coupon", "order_id", "user_id", "at_ms")
SHOWS_COLUMNS = ("room", "shop", "title", "state", "created_at_ms", "started_at_ms",
                 "ended_at_ms")  # fmt: skip

Row = tuple[Any, ...]
Event = tuple[str, dict[str, str]]  # (stream id, fields)


def version(event_id: str) -> int:
    """A stream entry id ("<ms>-<seq>") as one increasing integer."""
    ms, _, seq = event_id.partition("-")
    return (int(ms) << _SEQ_BITS) | min(int(seq or 0), (1 << _SEQ_BITS) - 1)


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


@dataclass
class Batch:
    """The rows of one transaction, table by table."""

    events: list[Row] = field(default_factory=list)
    orders: dict[tuple[str, str], Row] = field(default_factory=dict)
    payments: dict[str, Row] = field(default_factory=dict)
    refunds: dict[tuple[str, str], Row] = field(default_factory=dict)
    coupons: dict[tuple[str, str], Row] = field(default_factory=dict)
    shows: dict[str, Row] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.events)

    def table(self, name: str) -> list[Row]:
        rows = getattr(self, name)
        return list(rows.values()) if isinstance(rows, dict) else list(rows)


def event_row(room: str, event_id: str, fields: dict[str, str]) -> Row:
    return (
        room, event_id, version(event_id), fields.get("type", ""), fields.get("order"),
        fields.get("user"), fields.get("payment"), _int(fields.get("amount")),
        fields.get("currency"), _int(fields.get("at")) or 0, orjson.dumps(fields).decode(),
    )  # fmt: skip


def order_row(room: str, shop: str, order: Order, at_version: int) -> Row:
    wire = order.to_wire()
    pricing = wire["pricing"]
    return (
        room, order.id, shop, order.user, order.device or None, order.state.value,
        order.currency, pricing["subtotal"], pricing["discount"], pricing["shipping"],
        order.total, order.refunded, orjson.dumps(list(order.coupons)).decode(),
        orjson.dumps(wire["lines"]).decode(),
        order.created_at, wire["paid_at"], wire["closed_at"], wire["fulfilled_at"],
        wire["payment"], wire["late_payment"], orjson.dumps(wire["shipping_address"]).decode(),
        orjson.dumps(wire["contact"]).decode(), at_version,
    )  # fmt: skip


def payment_row(room: str, payment_id: str, record: dict[str, Any], user: str,
                at_version: int) -> Row:  # fmt: skip
    """From the room's payments hash (engine/commerce/lua/order_pay.lua's record)."""
    return (
        payment_id, room, record["o"], user, int(record["a"]), record["c"], record["s"],
        record.get("reason"), int(record.get("x") or record.get("at") or 0), at_version,
    )  # fmt: skip


def refund_rows(room: str, event: dict[str, str], order: Order | None) -> list[Row]:
    """A host's refund (order_refunded, order_partially_refunded) or an automatic one
    paid out at the provider (payment_refunded)."""
    kind = event.get("type")
    at = _int(event.get("at")) or 0
    if kind == "payment_refunded":
        return [(room, event["refund"], event["order"], event["payment"], int(event["amount"]),
                 event["currency"], event.get("reason", "automatic"), at)]  # fmt: skip
    if kind not in ("order_refunded", "order_partially_refunded"):
        return []
    refund_id = event["refund"]
    reason = ""
    payment = None
    if order is not None:
        payment = order.fields.get("payment")
        reason = next((r.get("reason", "") for r in order.refunds() if r["id"] == refund_id), "")
    return [(room, refund_id, event["order"], payment, int(event["amount"]), event["currency"],
             reason, at)]  # fmt: skip


def coupon_rows(room: str, order: Order) -> list[Row]:
    """The coupons a paid order used (a coupon is used at most once: its key is the coupon)."""
    if not order.state.counts_as_sale:
        return []
    paid_at = int(order.fields.get("paid_at") or order.created_at)
    return [(room, coupon, order.id, order.user, paid_at) for coupon in order.coupons]


def show_row(room: str, meta: dict[str, str]) -> Row | None:
    if "state" not in meta:
        return None
    return (
        room, meta.get("host", ""), meta.get("title", ""), meta["state"],
        _int(meta.get("created_at")), _int(meta.get("live_at")), _int(meta.get("ended_at")),
    )  # fmt: skip


def touched(events: Sequence[Event]) -> tuple[set[str], set[str]]:
    """The orders and payments a room's events are about."""
    orders = {f["order"] for _, f in events if f.get("order")}
    payments = {f["payment"] for _, f in events if f.get("payment")}
    return orders, payments
