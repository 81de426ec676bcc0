"""Payments: the provider interface, signed callbacks, and applying them to orders.

Every provider's confirmation takes two steps: its own verification (below for the built-in
signing scheme; Stripe's in engine/commerce/stripe_provider.py), which yields a `Callback`,
then the one shared `Payments.apply` (replay guard, the payment script, metrics, paid hooks,
automatic refunds). The built-in scheme calls back `POST /api/payments/callback` with headers

    X-Livecart-Timestamp: <unix seconds>
    X-Livecart-Nonce: <16-64 characters, never reused>
    X-Livecart-Signature: hex(HMAC-SHA256(secret, "<timestamp>.<nonce>." + raw body))

Checks, in order, each failure logged and counted by reason: the signature (forged), the
timestamp within the tolerance (stale), the body well formed, the nonce unused
(replayed), then amount, currency and order state (mismatched) inside the payment script, which
applies each payment id exactly once however often it is delivered. Signing and
verification are pure functions so they are tested without sockets.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType
from redis.asyncio import Redis

from engine.commerce.orders import Order, OrderState, OrderStore, check_order_id
from engine.core.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    LivecartError,
    ProtocolError,
)
from engine.core.fields import invalid_field, refused_field
from engine.core.metrics import METRICS
from engine.store import keys
from engine.store.keys import check_room_id

log = logging.getLogger("livecart.payments")

TIMESTAMP_HEADER = "x-livecart-timestamp"
NONCE_HEADER = "x-livecart-nonce"
SIGNATURE_HEADER = "x-livecart-signature"
TIMESTAMP_RE = re.compile(r"[0-9]{1,20}")
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
# A provider's payment id: a short lower-case prefix, then its own id (the simulated
# provider's `pay_<hex>`, Stripe's Checkout Session `cs_live_...`/`cs_test_...`).
PAYMENT_ID_RE = re.compile(r"[a-z]{2,8}_[A-Za-z0-9_]{8,128}")
EVENTS = {"payment.succeeded": "succeeded", "payment.failed": "failed"}
# Why a callback body's field was refused (`bad_request`; `room` and `order` are
# `invalid_field`, like every malformed id).
_CALLBACK_RULES = {
    "event": "payment.succeeded or payment.failed",
    "payment_id": "the provider's payment id",
    "amount": "integer minor units",
    "currency": "a 3-letter code",
}
MAX_REFUND_REASON = 200
T = TypeVar("T")


def signature(secret: bytes, timestamp: str, nonce: str, body: bytes) -> str:
    message = timestamp.encode() + b"." + nonce.encode() + b"." + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, *, now_s: float, nonce: str | None = None) -> dict[str, str]:
    """The headers a provider sends with `body`."""
    timestamp = str(int(now_s))
    nonce = nonce or secrets.token_urlsafe(18)
    return {
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: signature(secret, timestamp, nonce, body),
    }


class CallbackBody(Struct, frozen=True):
    """What a provider's callback says (docs/api.md § POST /api/payments/callback)."""

    event: Literal["payment.succeeded", "payment.failed"]
    payment_id: Annotated[str, Meta(pattern=rf"^{PAYMENT_ID_RE.pattern}\Z")]
    room: str
    order: str
    amount: Annotated[int, Meta(ge=0)]
    currency: str

    def __post_init__(self) -> None:
        check_room_id(self.room)
        check_order_id(self.order)


@dataclass(frozen=True, slots=True)
class Callback:
    """A provider's verified report of one payment's outcome, as `Payments.apply` takes it."""

    event: str  # "succeeded" | "failed"
    payment_id: str
    room: str
    order: str
    amount: int
    currency: str
    nonce: str  # what makes this delivery unique (the replay guard): a nonce, an event id


def verify(
    secret: bytes, headers: Mapping[str, str], body: bytes, *, now_s: float, tolerance_s: float
) -> Callback:
    """Check a callback's signature and age and parse it; raises with the rejection code."""
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    nonce = headers.get(NONCE_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if (
        not TIMESTAMP_RE.fullmatch(timestamp)
        or not NONCE_RE.fullmatch(nonce)
        or not given
        or not given.isascii()  # hmac.compare_digest raises TypeError on non-ASCII text
    ):
        raise AuthError("missing or malformed signature headers", code="signature_invalid")
    if not hmac.compare_digest(signature(secret, timestamp, nonce, body), given):
        raise AuthError("the signature does not match", code="signature_invalid")
    if abs(now_s - int(timestamp)) > tolerance_s:
        raise AuthError(f"the callback is older than {tolerance_s:.0f} s", code="callback_stale")
    data = _callback_body(body)  # only now: the signature is over the raw bytes
    return Callback(
        EVENTS[data.event], data.payment_id, data.room, data.order, data.amount, data.currency,
        nonce,
    )  # fmt: skip


def _callback_body(body: bytes) -> CallbackBody:
    try:
        return msgspec.json.decode(body, type=CallbackBody)
    except msgspec.ValidationError as refusal:
        field, why = refused_field(refusal)
        if field in ("room", "order"):
            raise invalid_field(field, why) from None
        if field is None:
            raise ProtocolError("the callback body must be a JSON object",
                                code="bad_request") from None  # fmt: skip
        rule = _CALLBACK_RULES.get(field, why)
        raise ProtocolError(f"{field}: {rule}", code="bad_request") from None
    except msgspec.DecodeError:
        raise ProtocolError("the callback body is not JSON", code="bad_request") from None


class RefundTerms(Struct, frozen=True, kw_only=True):
    """The host's refund (docs/api.md § Orders): `id` makes it idempotent; no `amount` is
    all that is left to refund."""

    id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}\Z")]
    amount: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    restock: list[str] = []  # reservation ids of the lines to put back on sale
    reason: Annotated[str, Meta(min_length=1, max_length=MAX_REFUND_REASON)] = "host"


@dataclass(frozen=True, slots=True)
class ProviderPayment:
    id: str
    pay_url: str


@dataclass(frozen=True, slots=True)
class SettlementLine:
    """One line of a provider's settlement for a day: a charge or a refund."""

    # the provider's own id of this line (charge: the payment id; refund: the refund id)
    reference: str
    kind: str  # "charge" | "refund"
    payment_id: str  # the payment it belongs to, as the engine recorded it on the order
    room: str
    order: str
    amount: int  # minor units, positive for both kinds
    currency: str  # 3-letter upper case, as the engine spells it
    fee: int  # the provider's fee, minor units
    at_ms: int  # when it happened (ms since the epoch, UTC)


class PaymentProvider(Protocol):
    """What the engine needs of a payment provider (docs/payments.md)."""

    async def create_payment(
        self, room: str, order: str, amount: int, currency: str, callback_url: str, *,
        pay_base_url: str = "",
    ) -> ProviderPayment: ...  # fmt: skip

    async def refund(self, payment_id: str, amount: int, refund_id: str) -> str: ...

    async def settlement(self, day: datetime.date) -> list[SettlementLine]: ...  # a UTC day

    async def close(self) -> None: ...  # when the engine stops


class Payments:
    def __init__(
        self,
        redis: Redis,
        orders: OrderStore,
        provider: PaymentProvider | None,
        secret: bytes,
        *,
        tolerance_s: float = 300.0,
    ) -> None:
        self.redis = redis
        self.orders = orders
        self.provider = provider
        self.secret = secret
        self.tolerance_s = tolerance_s
        # Run after a payment marked an order paid (a feature's `on_paid`, engine/core/feature.py).
        self.paid_hooks: list[Callable[[str, str], Awaitable[None]]] = []

    async def start(self, room: str, order_id: str, user: str, callback_url: str,
                    pay_base_url: str = "") -> dict[str, Any]:  # fmt: skip
        """Create a payment at the provider for the buyer's pending order: it calls the
        engine back at `callback_url`; the buyer pays on a page under `pay_base_url`."""
        order = await self.orders.get(room, order_id)
        if order.user != user:
            raise ForbiddenError("that order is someone else's", code="forbidden")
        if order.state is not OrderState.PENDING_PAYMENT:
            raise ConflictError(
                f"order {order_id} is {order.state.value}",
                code="illegal_transition",
                details={"state": order.state.value},
            )
        payment = await self._provider().create_payment(
            room, order.id, order.total, order.currency, callback_url, pay_base_url=pay_base_url
        )
        return {
            "payment": payment.id,
            "pay_url": payment.pay_url,
            "order": order.id,
            "amount": order.total,
            "currency": order.currency,
            "expires_at": order.expires_at,
        }

    async def callback(
        self, headers: Mapping[str, str], body: bytes, *, now_s: float, at_ms: int | None = None
    ) -> dict[str, Any]:
        """Verify and apply one callback of the built-in signing scheme."""
        callback = self.verified(
            lambda: verify(self.secret, headers, body, now_s=now_s, tolerance_s=self.tolerance_s)
        )
        return await self.apply(callback, at_ms=at_ms)

    def verified(self, check: Callable[[], T]) -> T:
        """Run a provider's verification of a callback; a refusal is logged and counted as
        `apply` counts its own (the room is not known yet: an unverified body names none we
        trust)."""
        try:
            return check()
        except LivecartError as error:
            _rejected(error, "")
            raise

    async def apply(self, callback: Callback, *, at_ms: int | None = None) -> dict[str, Any]:
        """Apply a verified callback, whichever provider it came from: refuse a replay, run
        the payment script (once per payment id however often it is delivered), count it,
        run the paid hooks, refund automatically a payment that cannot complete its order."""
        try:
            fresh = await self.redis.set(
                keys.callback_nonce(callback.room, callback.nonce),
                b"1",
                nx=True,
                ex=int(2 * self.tolerance_s) + 60,
            )
            if not fresh:
                raise ConflictError("this callback was delivered already", code="callback_replayed")
            order = await self.orders.get(callback.room, callback.order)
            outcome, detail = await self.orders.apply_payment(
                callback.room,
                order,
                callback.payment_id,
                event=callback.event,
                amount=callback.amount,
                currency=callback.currency,
                at_ms=at_ms,
            )
        except LivecartError as error:
            _rejected(error, callback.room)
            raise
        METRICS.payment_callbacks.inc(1, outcome)
        if outcome == "paid":
            METRICS.orders.inc(1, "paid")
            METRICS.paid_amount.inc(callback.amount, callback.currency)
            for hook in self.paid_hooks:
                await hook(callback.room, order.id)
        log.info(
            "payment %s for order %s in %s: %s %s",
            callback.payment_id,
            order.id,
            callback.room,
            outcome,
            detail,
        )
        if outcome == "refund" or (outcome == "duplicate" and detail == "refund_due"):
            # A redelivery retries an automatic refund that failed at the provider.
            await self._refund_payment(callback.room, callback.payment_id, callback.amount, detail)
        return {
            "outcome": outcome,
            "detail": detail,
            "order": order.id,
            "payment": callback.payment_id,
        }

    async def _refund_payment(self, room: str, payment_id: str, amount: int, reason: str) -> None:
        refund = await self._provider().refund(payment_id, amount, f"auto-{payment_id}")
        await self.orders.settle_refund(room, payment_id, refund)
        METRICS.refunds.inc(1, reason)
        log.warning("payment %s in %s refunded automatically: %s", payment_id, room, reason)

    def _provider(self) -> PaymentProvider:
        if self.provider is None:
            raise ConflictError("no payment provider is configured on this engine",
                                code="payments_disabled")  # fmt: skip
        return self.provider

    async def refund(self, room: str, order_id: str, terms: RefundTerms,
                     who: str) -> tuple[Order, bool]:  # fmt: skip
        """The host (or a failed group-buy team) refunds a paid order in full or in part,
        optionally restocking lines."""
        order = await self.orders.get(room, order_id)
        # No amount: all that is left (0 once fully refunded: the script then answers a
        # retry of the same refund id as a replay, and any other id as illegal_transition).
        amount = order.total - order.refunded if terms.amount is UNSET else terms.amount
        payment_id = order.fields.get("payment")
        if payment_id is None:
            raise ConflictError(
                f"order {order_id} is {order.state.value}; it has no payment to refund",
                code="illegal_transition",
                details={"state": order.state.value},
            )
        updated, replayed = await self.orders.refund(
            room, order_id, terms.id, amount=amount, reason=terms.reason, who=who,
            restock=terms.restock,
        )  # fmt: skip
        # Recorded first (the script is what prevents refunding more than was paid), then
        # paid out. The provider refunds once per refund id, so a retry of the same request
        # (a replay) pays out a refund that failed at the provider the first time.
        recorded = next(r["amount"] for r in updated.refunds() if r["id"] == terms.id)
        await self._provider().refund(payment_id, recorded, terms.id)
        if not replayed:
            METRICS.refunds.inc(1, "host")
        return updated, replayed


def _rejected(error: LivecartError, room: str) -> None:
    METRICS.payment_callbacks.inc(1, error.code)
    METRICS.room_callback_rejections.inc(1, room, error.code)
    log.warning("payment callback rejected (%s): %s", error.code, error.message)
