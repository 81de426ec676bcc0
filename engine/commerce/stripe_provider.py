"""Stripe as the payment provider (`LIVECART_PAYMENT_PROVIDER=stripe`, docs/payments.md).

A payment is a Stripe Checkout Session in mode `payment`: one line item of the order's total,
the payment methods of `LIVECART_STRIPE_PAYMENT_METHODS` (cards, Alipay, WeChat Pay), the
room and order in its metadata and in its PaymentIntent's, and the viewer page
(`<base>/live/<room>`) to come back to. The payment id the engine records is the Checkout
Session's id (`cs_...`): it is what creating returns, every `checkout.session.*` event names
it, and Checkout creates the PaymentIntent only once the buyer pays. A refund or a
settlement line finds the PaymentIntent through the session.

The calls this module makes to Stripe's API:

    create_payment  POST /v1/checkout/sessions      Idempotency-Key livecart-checkout-<room>-<order>
    refund          GET  /v1/checkout/sessions/<payment id>
                    POST /v1/refunds                Idempotency-Key <payment id>:<refund id>
    settlement      GET  /v1/balance_transactions   created in the UTC day, expand data.source,
                                                    every page
                    GET  /v1/checkout/sessions?payment_intent=<pi>   once per PaymentIntent a
                                                    line does not name the payment of

Stripe's webhooks reach `POST /api/payments/stripe/webhook`; `verify_webhook` checks their
`Stripe-Signature` and turns a `checkout.session.*` event into the `Callback` that
`Payments.apply` applies, as it applies the built-in callback's.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Iterator, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar, cast

import msgspec
import stripe
from msgspec import Struct
from redis.asyncio import Redis

from engine.commerce.orders import check_order_id
from engine.commerce.payments import PAYMENT_ID_RE, Callback, ProviderPayment, SettlementLine
from engine.core.errors import (
    AuthError,
    ConflictError,
    ProtocolError,
    UnavailableError,
)
from engine.core.settings import Settings
from engine.store import keys
from engine.store.keys import check_room_id

log = logging.getLogger("livecart.stripe")

SIGNATURE_HEADER = "stripe-signature"
SUCCEEDED = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})
FAILED = frozenset({"checkout.session.async_payment_failed", "checkout.session.expired"})
CHARGES = frozenset({"charge", "payment"})  # balance transaction types
REFUNDS = frozenset({"refund", "payment_refund"})
# A Checkout Session lives 30 minutes to 24 hours after it is created (Stripe's bounds).
SESSION_MIN_S = 30 * 60
SESSION_MAX_S = 24 * 3600
_MARGIN_S = 60  # for clocks and the request's own time
# Stripe's amounts are in each currency's minor unit, as the engine's are; these are the
# currencies whose unit is not a hundredth (used only to convert a fee, see _fee).
ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF",
                          "UGX", "VND", "VUV", "XAF", "XOF", "XPF"})  # fmt: skip
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
S = TypeVar("S")


# ---- what is read of Stripe's objects (every other field is ignored) ---------------------------


class Session(Struct):
    """A Checkout Session."""

    id: str
    url: str | None = None
    amount_total: int | None = None
    currency: str | None = None
    payment_status: str = ""
    payment_intent: str | None = None
    metadata: dict[str, str] | None = None


class _EventData(Struct):
    object: msgspec.Raw


class Event(Struct):
    """A webhook's event; `data.object` is read as a Session for the events applied."""

    id: str
    type: str
    data: _EventData


class _Source(Struct):
    """A balance transaction's source, expanded: a Charge or a Refund."""

    id: str
    amount: int
    currency: str
    payment_intent: str | None = None
    status: str | None = None
    metadata: dict[str, str] | None = None


class _BalanceTransaction(Struct):
    id: str
    type: str
    created: int
    currency: str
    fee: int
    exchange_rate: float | None = None
    source: _Source | str | None = None


def _read(obj: Any, schema: type[S]) -> S:
    """A Stripe SDK object as one of the schemas above."""
    return msgspec.convert(obj.to_dict(), schema)


@contextlib.contextmanager
def _answers(what: str) -> Iterator[None]:
    """Stripe's refusals as the engine's errors: try again later, or refused."""
    try:
        yield
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as error:
        log.warning("Stripe %s failed: %s", what, error)
        raise UnavailableError(f"Stripe did not answer ({what}); retry") from None
    except stripe.StripeError as error:
        log.warning("Stripe refused %s: %s", what, error)
        message = error.user_message or str(error) or type(error).__name__
        raise ConflictError(f"Stripe refused {what}: {message}", code="psp_refused") from None


class _HTTPXClient(stripe.HTTPXClient):
    """The SDK's httpx client, sending a form body as `content=`: the SDK passes it as
    `data=`, which httpx deprecates for an already-encoded body (a DeprecationWarning on
    every POST)."""

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> Any:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        body = kwargs.pop("data", None)
        if body:
            kwargs["content"] = body
        return [args, kwargs]


class StripeProvider:
    def __init__(
        self,
        redis: Redis,
        *,
        api_key: str,
        webhook_secret: str,
        api_base: str = "",
        payment_methods: tuple[str, ...] = ("card", "alipay", "wechat_pay"),
        public_url: str = "",
        tolerance_s: float = 300.0,
    ) -> None:
        if not api_key or not webhook_secret:
            raise ValueError(
                "payment_provider stripe needs STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET "
                "(docs/payments.md)"
            )
        self.redis = redis
        self.webhook_secret = webhook_secret
        self.payment_methods = payment_methods
        self.public_url = public_url.rstrip("/")
        self.tolerance_s = tolerance_s
        self.http = _HTTPXClient()
        self.client = stripe.StripeClient(
            api_key,
            http_client=self.http,
            base_addresses={"api": api_base} if api_base else {},
            max_network_retries=2,  # the SDK retries with the same idempotency key
        )

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis) -> StripeProvider:
        return cls(
            redis,
            api_key=settings.stripe_api_key,
            webhook_secret=settings.stripe_webhook_secret,
            api_base=settings.stripe_api_base,
            payment_methods=settings.stripe_payment_methods,
            public_url=settings.public_url,
            tolerance_s=settings.callback_tolerance_s,
        )

    async def close(self) -> None:
        await self.http.close_async()  # type: ignore[no-untyped-call]  # the SDK's, untyped

    # ---- PaymentProvider ------------------------------------------------------------------

    async def create_payment(
        self, room: str, order: str, amount: int, currency: str, callback_url: str, *,
        pay_base_url: str = "",
    ) -> ProviderPayment:  # fmt: skip
        # The public URL when set; else where the buyer reached the engine (only their own
        # redirect depends on it). Stripe reports back by webhook, not to `callback_url`.
        base = self.public_url or pay_base_url.rstrip("/") or callback_url.split("/api/", 1)[0]
        page = f"{base}/live/{room}"
        metadata = {"room": room, "order": order}
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [{
                "quantity": 1,
                "price_data": {"currency": currency.lower(), "unit_amount": amount,
                               "product_data": {"name": f"Order {order}"}},
            }],
            "payment_method_types": list(self.payment_methods),
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "client_reference_id": f"{room}:{order}",
            "success_url": page,
            "cancel_url": page,
        }  # fmt: skip
        if "wechat_pay" in self.payment_methods:  # Stripe requires the client for WeChat Pay
            params["payment_method_options"] = {"wechat_pay": {"client": "web"}}
        expires_at = await self._expires_at(room, order)
        if expires_at is not None:
            params["expires_at"] = expires_at
        # One key per order: a retried start (a double tap, a lost answer) gets the same
        # session back, for Stripe's 24 hours, as long as the parameters are the same.
        with _answers("the checkout session"):
            created = await self.client.v1.checkout.sessions.create_async(
                params=cast(Any, params),
                options={"idempotency_key": f"livecart-checkout-{room}-{order}"},
            )
        session = _read(created, Session)
        if session.url is None or not PAYMENT_ID_RE.fullmatch(session.id):
            raise ConflictError(f"Stripe answered an unusable session {session.id!r}",
                                code="psp_refused")  # fmt: skip
        return ProviderPayment(session.id, session.url)

    async def _expires_at(self, room: str, order: str) -> int | None:
        """When the session expires: the order's deadline plus Stripe's least lifetime, so it
        is never refused for being too short (the session is made before the deadline). From
        the order alone, so that a retried create sends the same parameters. None (Stripe's
        24 hours) when that would pass Stripe's longest lifetime. A payment made after the
        order's deadline follows the late-payment policy (docs/orders.md)."""
        created, deadline = await self.redis.hmget(keys.order(room, order),
                                                   ["created_at", "expires_at"])  # fmt: skip
        if created is None or deadline is None:
            return None
        expires = int(deadline) // 1000 + SESSION_MIN_S + _MARGIN_S
        if expires > int(created) // 1000 + SESSION_MAX_S - _MARGIN_S:
            return None
        return expires

    async def refund(self, payment_id: str, amount: int, refund_id: str) -> str:
        session = await self._session(payment_id)
        if session.payment_intent is None:
            raise ConflictError(f"payment {payment_id} was not paid", code="psp_refused")
        metadata = {**(session.metadata or {}), "payment": payment_id, "refund": refund_id}
        # Keyed by payment too: a host's refund ids are unique per order, Stripe's keys per
        # account. The same refund asked again is the same Stripe refund.
        with _answers("the refund"):
            made = await self.client.v1.refunds.create_async(
                params={"payment_intent": session.payment_intent, "amount": amount,
                        "metadata": metadata},
                options={"idempotency_key": f"{payment_id}:{refund_id}"},
            )  # fmt: skip
        refund = _read(made, _Source)
        if refund.status in ("failed", "canceled"):
            raise ConflictError(f"Stripe's refund {refund.id} {refund.status}", code="psp_refused")
        return refund.id

    async def settlement(self, day: datetime.date) -> list[SettlementLine]:
        """The day's charges and refunds from Stripe's balance transactions (docs/payments.md
        § Settlement data)."""
        start = int(datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp())
        by_intent: dict[str, Session | None] = {}
        lines: list[SettlementLine] = []
        with _answers("the balance transactions"):
            listed = await self.client.v1.balance_transactions.list_async(
                params={"created": {"gte": start, "lt": start + 86_400}, "limit": 100,
                        "expand": ["data.source"]},
            )  # fmt: skip
            async for item in listed.auto_paging_iter():
                line = await self._line(_read(item, _BalanceTransaction), by_intent)
                if line is not None:
                    lines.append(line)
        return sorted(lines, key=lambda line: (line.at_ms, line.reference))

    async def _line(
        self, txn: _BalanceTransaction, by_intent: dict[str, Session | None]
    ) -> SettlementLine | None:
        kind = "charge" if txn.type in CHARGES else "refund" if txn.type in REFUNDS else None
        source = txn.source
        if kind is None or not isinstance(source, _Source):
            return None  # payouts, fees, disputes...: not a payment's money
        meta = source.metadata or {}
        if kind == "refund" and {"payment", "room", "order"} <= meta.keys():
            payment_id, room, order = meta["payment"], meta["room"], meta["order"]
        else:  # a charge, or a refund made outside the engine (the dashboard)
            session = await self._session_of(source.payment_intent, by_intent)
            meta_of = (session.metadata or {}) if session else {}
            payment_id = session.id if session else source.payment_intent or source.id
            room, order = meta_of.get("room", ""), meta_of.get("order", "")
        # A refund's reference is the engine's refund id when the engine made it.
        reference = payment_id if kind == "charge" else meta.get("refund", source.id)
        currency = source.currency.upper()
        return SettlementLine(
            reference=reference, kind=kind, payment_id=payment_id, room=room, order=order,
            amount=source.amount, currency=currency, fee=_fee(txn, currency),
            at_ms=txn.created * 1000,
        )  # fmt: skip

    async def _session(self, payment_id: str) -> Session:
        with _answers("the checkout session"):
            found = await self.client.v1.checkout.sessions.retrieve_async(payment_id)
        return _read(found, Session)

    async def _session_of(
        self, intent: str | None, known: dict[str, Session | None]
    ) -> Session | None:
        """The Checkout Session that made a PaymentIntent (None: not one of Checkout's)."""
        if intent is None:
            return None
        if intent not in known:
            found = await self.client.v1.checkout.sessions.list_async(
                params={"payment_intent": intent, "limit": 1}
            )
            known[intent] = _read(found.data[0], Session) if found.data else None
        return known[intent]

    # ---- webhooks -------------------------------------------------------------------------

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, *, now_s: float
    ) -> tuple[str, Callback | None]:
        """Check a webhook's `Stripe-Signature` (HMAC-SHA256 of `<t>.<body>` with the
        endpoint's secret, by the SDK, in constant time) and age (within the tolerance of the
        engine's clock, either way, as the built-in callback's), then read its event: its
        type, and the callback to apply (None for an event that settles nothing)."""
        header = headers.get(SIGNATURE_HEADER, "")
        try:
            stripe.WebhookSignature.verify_header(body, header, self.webhook_secret)
            signed_at = _signed_at(header)
        except (stripe.SignatureVerificationError, UnicodeDecodeError, TypeError, ValueError):
            # TypeError: a non-ASCII header, which the SDK's comparison refuses that way.
            raise AuthError("the Stripe-Signature does not match",
                            code="signature_invalid") from None  # fmt: skip
        if abs(now_s - signed_at) > self.tolerance_s:
            raise AuthError(f"the event is older than {self.tolerance_s:.0f} s",
                            code="callback_stale")  # fmt: skip
        try:
            event = msgspec.json.decode(body, type=Event)
        except (msgspec.ValidationError, msgspec.DecodeError):
            raise ProtocolError("the body is not a Stripe event", code="bad_request") from None
        return event.type, _callback(event)


def _signed_at(header: str) -> int:
    """The `t=` of a Stripe-Signature the SDK verified (its first, as the SDK reads it)."""
    return int(next(value for key, _, value in (item.partition("=") for item in header.split(","))
                    if key == "t"))  # fmt: skip


def _callback(event: Event) -> Callback | None:
    if event.type not in SUCCEEDED and event.type not in FAILED:
        return None
    try:
        session = msgspec.json.decode(event.data.object, type=Session)
    except msgspec.ValidationError:
        raise ProtocolError("the event's object is not a Checkout Session",
                            code="bad_request") from None  # fmt: skip
    if event.type == "checkout.session.completed" and session.payment_status != "paid":
        return None  # a delayed method: async_payment_succeeded or _failed follows
    meta = session.metadata or {}
    if "room" not in meta or "order" not in meta:
        return None  # a session this engine did not make (a payment link, another app)
    room, order = check_room_id(meta["room"]), check_order_id(meta["order"])
    if session.amount_total is None or session.currency is None:
        raise ProtocolError("the session has no amount_total or currency", code="bad_request")
    if not PAYMENT_ID_RE.fullmatch(session.id) or not PAYMENT_ID_RE.fullmatch(event.id):
        raise ProtocolError("the session or event id is malformed", code="bad_request")
    outcome = "succeeded" if event.type in SUCCEEDED else "failed"
    # Stripe's currencies are lower case; its amounts are minor units as the engine's are
    # (whole yen for JPY), so they compare as they are.
    return Callback(outcome, session.id, room, order, session.amount_total,
                    session.currency.upper(), event.id)  # fmt: skip


def _fee(txn: _BalanceTransaction, currency: str) -> int:
    """The transaction's fee in the payment's currency: as Stripe gives it, unless Stripe
    converted the payment into another balance currency, when it is converted back at the
    transaction's rate (major units; rounded half up to a minor unit)."""
    if txn.currency.upper() == currency or not txn.exchange_rate:
        return txn.fee
    major = Decimal(txn.fee) / _scale(txn.currency) / Decimal(str(txn.exchange_rate))
    return int((major * _scale(currency)).to_integral_value(ROUND_HALF_UP))


def _scale(currency: str) -> int:
    code = currency.upper()
    return 1 if code in ZERO_DECIMAL else 1000 if code in THREE_DECIMAL else 100
