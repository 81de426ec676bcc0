"""What a buyer sends to check out (`POST /api/rooms/{room}/orders`, docs/api.md § Orders):
the held reservations and the coupons to order, how to reach the buyer, where to ship, an
idempotency key and the device. Decoded and checked in one pass; the parts of `contact`
and `shipping_address` are refused by their own names (`shipping_address.city`), as the
docs give them."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from engine.commerce.coupons import drop_of_coupon
from engine.commerce.stock import sale_of_reservation
from engine.core.fields import invalid_field
from engine.core.identity import DEVICE_RE

MAX_LINES = 20
MAX_COUPONS_PER_ORDER = 3
MAX_TEXT = 200
COUNTRY_RE = re.compile(r"[A-Z]{2}")
KEY_PATTERN = r"^[A-Za-z0-9_.:-]{8,64}\Z"


class Contact(Struct, frozen=True, forbid_unknown_fields=True):
    """An email, a phone number or both (`CheckoutRequest` checks the strings)."""

    email: str | None = None
    phone: str | None = None


class ShippingAddress(Struct, frozen=True, forbid_unknown_fields=True):
    """`null` is absent; `CheckoutRequest` checks the strings and that the required
    parts are there, so that a refusal names the part."""

    name: str | None = None
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None


REQUIRED_ADDRESS = frozenset({"name", "line1", "city", "postal_code", "country"})


class CheckoutRequest(Struct, frozen=True, kw_only=True):
    """The checkout body. Each id's syntax is checked here (`reservation`, `coupon`);
    whether it exists and is the buyer's is for checkout."""

    reservations: Annotated[list[str], Meta(min_length=1, max_length=MAX_LINES)]
    coupons: list[str] = []
    coupon: str | None = None  # one coupon, in place of `coupons`
    contact: Contact
    shipping_address: ShippingAddress
    idempotency_key: Annotated[str, Meta(pattern=KEY_PATTERN)]
    device: Annotated[str, Meta(pattern=DEVICE_RE.pattern)] | None = None

    def __post_init__(self) -> None:
        if len(set(self.reservations)) != len(self.reservations):
            raise invalid_field("reservations", f"a list of 1-{MAX_LINES} distinct reservation ids")
        for rid in self.reservations:
            sale_of_reservation(rid)
        coupons = self.coupon_ids()
        if len(coupons) > MAX_COUPONS_PER_ORDER or len(set(coupons)) != len(coupons):
            raise invalid_field("coupons", f"a list of at most {MAX_COUPONS_PER_ORDER} coupon ids")
        for cid in coupons:
            drop_of_coupon(cid)
        if not self.contact_details():
            raise invalid_field("contact", "an email or a phone number")
        self.address()

    def coupon_ids(self) -> list[str]:
        return self.coupons if self.coupon is None else [self.coupon]

    def contact_details(self) -> dict[str, str]:
        """The contact's parts, trimmed."""
        return _texts(msgspec.structs.asdict(self.contact), "contact", frozenset())

    def address(self) -> dict[str, str]:
        """The shipping address's parts, trimmed, the country in capitals."""
        address = _texts(msgspec.structs.asdict(self.shipping_address), "shipping_address",
                         REQUIRED_ADDRESS)  # fmt: skip
        address["country"] = address["country"].upper()
        if not COUNTRY_RE.fullmatch(address["country"]):
            raise invalid_field("shipping_address.country", "a 2-letter country code")
        return address


def _texts(parts: dict[str, Any], name: str, required: frozenset[str]) -> dict[str, str]:
    """The parts given (`null` is absent), each a string with something visible, trimmed."""
    texts = {}
    for part, value in parts.items():
        if value is None and part not in required:
            continue
        if value is None or not value.strip() or len(value) > MAX_TEXT:
            raise invalid_field(f"{name}.{part}", f"a string of 1-{MAX_TEXT} characters")
        texts[part] = value.strip()
    return texts
