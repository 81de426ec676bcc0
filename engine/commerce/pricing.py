"""Order pricing: lines, coupons and shipping to a breakdown in integer minor units.

Pure functions, no I/O: checkout reads the inputs (sale prices and coupon terms, both
immutable once created), prices here, and the checkout script then only verifies that
the reservations and coupons are still in the state that was priced.

Rules, in order:
- subtotal = sum of unit price x quantity;
- more than one coupon only when every one of them stacks, and never one template twice;
- a coupon applies to the lines in its scope (the whole room, or listed SKUs); its
  `min_spend` is compared with that in-scope amount, and not meeting it is an error
  (the viewer should know why a coupon did nothing);
- amount off: at most `amount`; percent off: floor(in-scope x percent / 100), at most `cap`;
- every discount is capped by what is left to discount, so the discount never exceeds
  the subtotal and the total is never negative;
- free shipping sets shipping to 0.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.core.errors import RejectedError


class CouponKind(enum.Enum):
    AMOUNT_OFF = "amount_off"
    PERCENT_OFF = "percent_off"
    FREE_SHIPPING = "free_shipping"


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    unit_price: int
    quantity: int

    @property
    def amount(self) -> int:
        return self.unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class Offer:
    """What pricing needs of a coupon: its template's terms."""

    coupon: str
    template: str
    kind: CouponKind
    amount: int = 0
    percent: int = 0
    cap: int | None = None
    min_spend: int = 0
    skus: frozenset[str] | None = None  # None: the whole room
    stackable: bool = False

    def in_scope(self, lines: Sequence[Line]) -> int:
        return sum(line.amount for line in lines if self.skus is None or line.sku in self.skus)


@dataclass(frozen=True, slots=True)
class Breakdown:
    subtotal: int
    discount: int
    shipping: int
    total: int
    applied: tuple[tuple[str, int], ...] = field(default=())  # (coupon id, discount)

    def to_wire(self) -> dict[str, Any]:
        return {
            "subtotal": self.subtotal,
            "discount": self.discount,
            "shipping": self.shipping,
            "total": self.total,
            "coupons": [{"coupon": c, "discount": d} for c, d in self.applied],
        }


def _refuse(message: str, code: str, **details: Any) -> RejectedError:
    return RejectedError(message, code=code, details=details)


def price(lines: Sequence[Line], offers: Sequence[Offer], shipping_fee: int) -> Breakdown:
    if not lines:
        raise _refuse("an order needs at least one line", "order_empty")
    if len(offers) > 1:
        if not all(offer.stackable for offer in offers):
            raise _refuse("these coupons do not stack", "coupon_not_stackable")
        if len({offer.template for offer in offers}) != len(offers):
            raise _refuse("one coupon per template per order", "coupon_not_stackable")
    subtotal = sum(line.amount for line in lines)
    discount = 0
    shipping = shipping_fee
    applied: list[tuple[str, int]] = []
    for offer in offers:
        eligible = offer.in_scope(lines)
        if eligible == 0:
            raise _refuse(
                f"coupon {offer.coupon} applies to none of these items",
                "coupon_not_applicable",
                coupon=offer.coupon,
            )
        if eligible < offer.min_spend:
            raise _refuse(
                f"coupon {offer.coupon} needs a spend of {offer.min_spend}",
                "coupon_threshold_not_met",
                coupon=offer.coupon,
                min_spend=offer.min_spend,
                eligible=eligible,
            )
        if offer.kind is CouponKind.FREE_SHIPPING:
            off = 0
            shipping = 0
        elif offer.kind is CouponKind.AMOUNT_OFF:
            off = offer.amount
        else:
            off = eligible * offer.percent // 100
            if offer.cap is not None:
                off = min(off, offer.cap)
        off = max(0, min(off, eligible, subtotal - discount))
        discount += off
        applied.append((offer.coupon, off))
    return Breakdown(subtotal, discount, shipping, subtotal - discount + shipping, tuple(applied))
