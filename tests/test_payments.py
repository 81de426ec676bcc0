"""Payment callbacks: signing and verification (pure), then applying callbacks to orders
against a real Redis: replays, redeliveries, forgeries, mismatches, out-of-order events
and second payments that must be refunded automatically."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import orjson
import pytest

from engine.commerce.orders import Order, OrderState
from engine.commerce.payments import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Callback,
    RefundTerms,
    sign,
    signature,
    verify,
)
from engine.core.errors import AuthError, ConflictError, NotFoundError, ProtocolError, RejectedError
from engine.core.metrics import METRICS
from engine.insights.audit import audit_room
from tests.conftest import PAYMENT_SECRET, Store

NOW = 1_900_000_000.0
TOLERANCE = 300.0
BODY: dict[str, Any] = {
    "event": "payment.succeeded",
    "payment_id": "pay_0123456789abcdef",
    "room": "show-1",
    "order": "o7",
    "amount": 5100,
    "currency": "EUR",
}


def body_of(**changes: Any) -> bytes:
    return orjson.dumps({**BODY, **changes})


def check(headers: dict[str, str], body: bytes, *, now_s: float = NOW) -> Callback:
    return verify(PAYMENT_SECRET, headers, body, now_s=now_s, tolerance_s=TOLERANCE)


# ---- sign and verify (pure) ------------------------------------------------------------------


def test_a_signed_callback_verifies_and_parses() -> None:
    body = body_of()
    headers = sign(PAYMENT_SECRET, body, now_s=NOW, nonce="nonce-0123456789ab")
    assert headers[TIMESTAMP_HEADER] == str(int(NOW))
    callback = check(headers, body)
    assert callback == Callback(
        "succeeded", "pay_0123456789abcdef", "show-1", "o7", 5100, "EUR", "nonce-0123456789ab"
    )
    failed = check(sign(PAYMENT_SECRET, body_of(event="payment.failed"), now_s=NOW),
                   body_of(event="payment.failed"))  # fmt: skip
    assert failed.event == "failed"


# A known answer, computed outside the engine (also `printf %s "<timestamp>.<nonce>.<body>" |
# openssl dgst -sha256 -hmac kat-secret-2f1c`), for the scheme docs/orders.md documents:
# hex(HMAC-SHA256(secret, timestamp + "." + nonce + "." + raw body)).
KAT_SECRET = b"kat-secret-2f1c"
KAT_NONCE = "3q2-7_Xc0fLwzPq9YbA3"
KAT_BODY = (
    b'{"event":"payment.succeeded","payment_id":"pay_0123456789abcdef","room":"show-1",'
    b'"order":"o7","amount":5100,"currency":"EUR"}'
)
KAT_SIGNATURE = "56a04babb356de556a6ba667b144dc38d71e87f2c2c0ad55fbc81caa5dd35899"


def test_the_signature_is_the_documented_hmac_known_answer() -> None:
    headers = sign(KAT_SECRET, KAT_BODY, now_s=1_795_335_031.75, nonce=KAT_NONCE)
    assert headers == {
        "x-livecart-timestamp": "1795335031",  # whole seconds, truncated
        "x-livecart-nonce": KAT_NONCE,
        "x-livecart-signature": KAT_SIGNATURE,
    }
    message = b"1795335031." + KAT_NONCE.encode() + b"." + KAT_BODY
    assert hmac.new(KAT_SECRET, message, hashlib.sha256).hexdigest() == KAT_SIGNATURE
    callback = verify(KAT_SECRET, headers, KAT_BODY, now_s=1_795_335_100, tolerance_s=TOLERANCE)
    assert (callback.payment_id, callback.order, callback.amount) == (
        "pay_0123456789abcdef", "o7", 5100
    )  # fmt: skip


def test_a_valid_json_body_with_another_amount_fails_the_signature() -> None:
    """A tamper that keeps the body well-formed JSON: only the signature can catch it."""
    headers = sign(PAYMENT_SECRET, body_of(amount=5100), now_s=NOW)
    tampered = body_of(amount=51)
    assert orjson.loads(tampered)["amount"] == 51  # still valid JSON
    with pytest.raises(AuthError) as caught:
        check(headers, tampered)
    assert caught.value.code == "signature_invalid"


def test_each_signature_gets_a_fresh_nonce() -> None:
    body = body_of()
    first, second = sign(PAYMENT_SECRET, body, now_s=NOW), sign(PAYMENT_SECRET, body, now_s=NOW)
    assert first[NONCE_HEADER] != second[NONCE_HEADER]
    assert check(first, body).nonce == first[NONCE_HEADER]


def _flip_byte(body: bytes) -> bytes:
    return body[:10] + bytes([body[10] ^ 0x01]) + body[11:]


@pytest.mark.parametrize(
    "tamper",
    [
        "flipped_body_byte",
        "wrong_secret",
        "no_signature",
        "no_timestamp",
        "no_nonce",
        "short_nonce",
        "nonce_with_bad_characters",
        "timestamp_not_a_number",
        "signature_of_other_timestamp",
    ],
)
def test_a_forged_or_malformed_signature_is_rejected(tamper: str) -> None:
    body = body_of()
    headers = sign(PAYMENT_SECRET, body, now_s=NOW)
    timestamp, nonce = headers[TIMESTAMP_HEADER], headers[NONCE_HEADER]
    if tamper == "flipped_body_byte":
        body = _flip_byte(body)
    elif tamper == "wrong_secret":
        headers = sign(b"some-other-secret", body, now_s=NOW)
    elif tamper.startswith("no_"):
        del headers[{"no_signature": SIGNATURE_HEADER, "no_timestamp": TIMESTAMP_HEADER,
                     "no_nonce": NONCE_HEADER}[tamper]]  # fmt: skip
    elif tamper == "short_nonce":
        headers = sign(PAYMENT_SECRET, body, now_s=NOW, nonce="abc")
    elif tamper == "nonce_with_bad_characters":
        headers = sign(PAYMENT_SECRET, body, now_s=NOW, nonce="nonce with spaces!!")
    elif tamper == "timestamp_not_a_number":
        headers = {**headers, TIMESTAMP_HEADER: "-" + timestamp}
        headers[SIGNATURE_HEADER] = signature(PAYMENT_SECRET, "-" + timestamp, nonce, body)
    else:
        headers = {**headers, TIMESTAMP_HEADER: str(int(timestamp) + 1)}
    with pytest.raises(AuthError) as caught:
        check(headers, body)
    assert caught.value.code == "signature_invalid"
    assert type(caught.value) is AuthError  # a 401, never a 403


def test_a_non_ascii_signature_is_rejected() -> None:
    """Anyone can send this header (HTTP decodes it as latin-1): it must be a 401, not a
    TypeError from `hmac.compare_digest` (a 500)."""
    body = body_of()
    headers = {**sign(PAYMENT_SECRET, body, now_s=NOW), SIGNATURE_HEADER: "\u00e9" * 64}
    with pytest.raises(AuthError) as caught:
        check(headers, body)
    assert caught.value.code == "signature_invalid"


@pytest.mark.parametrize("timestamp", ["\u00b2", "9" * 5000])
def test_a_signed_but_malformed_timestamp_is_rejected(timestamp: str) -> None:
    """Digits that `int()` cannot read must be refused like any malformed header, not
    escape as a ValueError (a 500 at the HTTP layer)."""
    body, nonce = body_of(), "nonce-0123456789ab"
    headers = {
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: signature(PAYMENT_SECRET, timestamp, nonce, body),
    }
    with pytest.raises(AuthError) as caught:
        check(headers, body)
    assert caught.value.code == "signature_invalid"


@pytest.mark.parametrize("skew_s", [-TOLERANCE - 1, TOLERANCE + 1])
def test_a_callback_outside_the_tolerance_is_stale(skew_s: float) -> None:
    body = body_of()
    headers = sign(PAYMENT_SECRET, body, now_s=NOW + skew_s)
    with pytest.raises(AuthError) as caught:
        check(headers, body)
    assert caught.value.code == "callback_stale"
    # Just inside the window either way is fine.
    inside = sign(PAYMENT_SECRET, body, now_s=NOW + (TOLERANCE if skew_s > 0 else -TOLERANCE))
    assert check(inside, body).amount == 5100


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        body_of(event="payment.refunded"),
        body_of(event=None),
        body_of(amount=-1),
        body_of(amount=True),
        body_of(amount=51.0),
        body_of(amount="5100"),
        body_of(payment_id="pay_short"),
        body_of(payment_id="Pay_0123456789abcdef"),
        body_of(payment_id="p_0123456789abcdef"),
        body_of(payment_id="pay-0123456789abcdef"),
        body_of(payment_id="pay_0123456789abcdef!"),
        body_of(payment_id="pay_" + "a" * 129),
        body_of(payment_id=12345678901),
        body_of(currency=978),
    ],
    ids=lambda b: b.decode()[:40],
)
def test_a_malformed_body_is_a_bad_request(body: bytes) -> None:
    headers = sign(PAYMENT_SECRET, body, now_s=NOW)
    with pytest.raises(ProtocolError) as caught:
        check(headers, body)
    assert caught.value.code == "bad_request"


@pytest.mark.parametrize(
    "payment_id",
    [
        "pay_0123456789abcdef",  # the simulated provider's
        "cs_test_a11YYufWQzNY63zpQ6QSNRQhkUpVph4WRmzW0zWJO2znZKdVujZ0N0S22u",  # Stripe's
        "cs_live_b1Q0uL5Ne4mXyZ2aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uV3wX4yZ5aB6cD7e",
        "led_0123456789abcdef",  # a provider named by dotted path (tests/hooks/provider.py)
    ],
)
def test_every_providers_payment_ids_are_taken(payment_id: str) -> None:
    body = body_of(payment_id=payment_id)
    assert check(sign(PAYMENT_SECRET, body, now_s=NOW), body).payment_id == payment_id


@pytest.mark.parametrize(
    ("field", "value"),
    [("room", "Bad Room!"), ("order", "7"), ("room", None), ("order", 7), ("order", None)],
)
def test_bad_room_or_order_ids_are_invalid_fields(field: str, value: str) -> None:
    body = body_of(**{field: value})
    with pytest.raises(ProtocolError) as caught:
        check(sign(PAYMENT_SECRET, body, now_s=NOW), body)
    assert (caught.value.code, caught.value.details) == ("invalid_field", {"field": field})


# ---- callbacks applied to orders (real Redis) ------------------------------------------------


async def pending(store: Store, user: str = "ana") -> tuple[str, Order]:
    """A live sale and `user`'s pending order for one unit of it."""
    sale = await store.sale(allotment=5)
    return sale, await store.checkout(user, [await store.reserve(sale, user)])


async def state_of(store: Store, order: Order) -> OrderState:
    return (await store.orders.get(store.room, order.id)).state


async def counters(store: Store, sale: str) -> tuple[int, int, int]:
    s = await store.shop.sales.get(store.room, sale)
    return s.available, s.reserved, s.sold


async def deliver(store: Store, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    return await store.payments.callback(headers, body, now_s=time.time())


def counted(label: str) -> float:
    return METRICS.payment_callbacks.value(label)


async def test_a_valid_callback_pays_the_order(store: Store) -> None:
    sale, order = await pending(store)
    payment = await store.start_payment(order)
    before = counted("paid")
    result = await deliver(store, *store.callback(order, payment))
    assert result == {"outcome": "paid", "detail": "0", "order": order.id, "payment": payment}
    paid = await store.orders.get(store.room, order.id)
    assert paid.state is OrderState.PAID
    assert paid.fields["payment"] == payment
    assert await counters(store, sale) == (4, 0, 1)
    assert (await store.orders.payment(store.room, payment) or {})["s"] == "succeeded"
    assert counted("paid") == before + 1
    await store.audit_ok()


async def test_the_same_callback_twice_is_a_replay(store: Store) -> None:
    sale, order = await pending(store)
    headers, body = store.callback(order, await store.start_payment(order))
    await deliver(store, headers, body)
    before = counted("callback_replayed")
    with pytest.raises(ConflictError) as caught:
        await deliver(store, headers, body)
    assert caught.value.code == "callback_replayed"
    assert counted("callback_replayed") == before + 1
    assert await counters(store, sale) == (4, 0, 1)
    await store.audit_ok()


async def test_a_replay_of_a_rejected_callback_is_still_a_replay(store: Store) -> None:
    """The nonce is spent even when the payment is refused, so the same bytes cannot be
    tried again."""
    _, order = await pending(store)
    headers, body = store.callback(order, await store.start_payment(order), amount=1)
    with pytest.raises(RejectedError):
        await deliver(store, headers, body)
    with pytest.raises(ConflictError) as caught:
        await deliver(store, headers, body)
    assert caught.value.code == "callback_replayed"


async def test_a_redelivery_with_a_fresh_nonce_is_a_duplicate(store: Store) -> None:
    sale, order = await pending(store)
    payment = await store.start_payment(order)
    await deliver(store, *store.callback(order, payment))
    paid = await store.orders.get(store.room, order.id)
    before = counted("duplicate")
    for _ in range(3):
        result = await deliver(store, *store.callback(order, payment))
        assert (result["outcome"], result["detail"]) == ("duplicate", "succeeded")
    assert counted("duplicate") == before + 3
    assert await store.orders.get(store.room, order.id) == paid
    assert await counters(store, sale) == (4, 0, 1)
    await store.audit_ok()


async def test_a_forged_callback_changes_nothing(store: Store) -> None:
    sale, order = await pending(store)
    headers, body = store.callback(order, await store.start_payment(order))
    forged = {**headers, SIGNATURE_HEADER: "0" * 64}
    before = counted("signature_invalid")
    with pytest.raises(AuthError) as caught:
        await deliver(store, forged, body)
    assert caught.value.code == "signature_invalid"
    assert counted("signature_invalid") == before + 1
    assert await state_of(store, order) is OrderState.PENDING_PAYMENT
    assert await counters(store, sale) == (4, 1, 0)
    # The forgery did not spend the real callback's nonce.
    assert (await deliver(store, headers, body))["outcome"] == "paid"
    await store.audit_ok()


async def test_a_callback_whose_amount_was_changed_after_signing_is_refused(
    store: Store,
) -> None:
    sale, order = await pending(store)
    payment = await store.start_payment(order)
    headers, body = store.callback(order, payment)
    tampered = orjson.dumps({**orjson.loads(body), "amount": order.total - 100})
    before = counted("signature_invalid")
    with pytest.raises(AuthError) as caught:
        await deliver(store, headers, tampered)
    assert caught.value.code == "signature_invalid"
    assert caught.value.http_status == 401
    assert counted("signature_invalid") == before + 1
    assert await state_of(store, order) is OrderState.PENDING_PAYMENT
    assert await store.orders.payment(store.room, payment) is None
    assert await counters(store, sale) == (4, 1, 0)
    # The genuine callback (same headers, its own body) still pays the order.
    assert (await deliver(store, headers, body))["outcome"] == "paid"
    await store.audit_ok()


async def test_a_stale_callback_changes_nothing(store: Store) -> None:
    _, order = await pending(store)
    payment = await store.start_payment(order)
    headers, body = store.callback(order, payment, now_s=time.time() - 3600)
    before = counted("callback_stale")
    with pytest.raises(AuthError) as caught:
        await deliver(store, headers, body)
    assert caught.value.code == "callback_stale"
    assert counted("callback_stale") == before + 1
    assert await state_of(store, order) is OrderState.PENDING_PAYMENT
    await store.audit_ok()


async def test_a_malformed_callback_is_counted_as_a_bad_request(store: Store) -> None:
    body = orjson.dumps({**BODY, "room": store.room, "event": "payment.chargeback"})
    before = counted("bad_request")
    with pytest.raises(ProtocolError):
        await deliver(store, sign(PAYMENT_SECRET, body, now_s=time.time()), body)
    assert counted("bad_request") == before + 1


@pytest.mark.parametrize(("amount", "currency"), [(-100, None), (+1, None), (0, "USD")])
async def test_a_mismatched_amount_or_currency_is_refused(
    store: Store, amount: int, currency: str | None
) -> None:
    sale, order = await pending(store)
    payment = await store.start_payment(order)
    before = counted("payment_mismatch")
    headers, body = store.callback(order, payment, amount=order.total + amount, currency=currency)
    with pytest.raises(RejectedError) as caught:
        await deliver(store, headers, body)
    assert caught.value.code == "payment_mismatch"
    assert counted("payment_mismatch") == before + 1
    assert await state_of(store, order) is OrderState.PENDING_PAYMENT
    assert await store.orders.payment(store.room, payment) is None
    assert await counters(store, sale) == (4, 1, 0)
    # The right amount still goes through afterwards.
    assert (await deliver(store, *store.callback(order, payment)))["outcome"] == "paid"
    await store.audit_ok()


async def test_a_payment_of_one_order_cannot_pay_another(store: Store) -> None:
    _, first = await pending(store, "ana")
    _, second = await pending(store, "bob")
    payment = await store.start_payment(first)
    await deliver(store, *store.callback(first, payment))
    with pytest.raises(RejectedError) as caught:
        await deliver(store, *store.callback(second, payment))
    assert caught.value.code == "payment_mismatch"
    assert await state_of(store, second) is OrderState.PENDING_PAYMENT
    await store.audit_ok()


async def test_a_callback_for_an_unknown_order_is_not_found(store: Store) -> None:
    body = orjson.dumps({**BODY, "room": store.room, "order": "o999999"})
    before = counted("order_not_found")
    with pytest.raises(NotFoundError) as caught:
        await deliver(store, sign(PAYMENT_SECRET, body, now_s=time.time()), body)
    assert caught.value.code == "order_not_found"
    assert counted("order_not_found") == before + 1
    await store.audit_ok()


async def test_a_failed_payment_can_succeed_later(store: Store) -> None:
    sale, order = await pending(store)
    payment = await store.start_payment(order)
    failed = await deliver(store, *store.callback(order, payment, event="payment.failed"))
    assert (failed["outcome"], failed["detail"]) == ("failed", "pending_payment")
    assert await state_of(store, order) is OrderState.PENDING_PAYMENT
    assert (await store.orders.payment(store.room, payment) or {})["s"] == "failed"
    assert await counters(store, sale) == (4, 1, 0)
    paid = await deliver(store, *store.callback(order, payment))
    assert paid["outcome"] == "paid"
    assert await state_of(store, order) is OrderState.PAID
    assert await counters(store, sale) == (4, 0, 1)
    await store.audit_ok()


async def test_a_failure_reported_after_success_is_ignored(store: Store) -> None:
    sale, order = await pending(store)
    payment = await store.start_payment(order)
    await deliver(store, *store.callback(order, payment))
    before = counted("ignored")
    late = await deliver(store, *store.callback(order, payment, event="payment.failed"))
    assert (late["outcome"], late["detail"]) == ("ignored", "succeeded")
    assert counted("ignored") == before + 1
    assert await state_of(store, order) is OrderState.PAID
    assert (await store.orders.payment(store.room, payment) or {})["s"] == "succeeded"
    assert await counters(store, sale) == (4, 0, 1)
    await store.audit_ok()


async def test_a_second_payment_of_a_paid_order_is_refunded(store: Store) -> None:
    sale, order = await pending(store)
    first = await store.start_payment(order)
    await deliver(store, *store.callback(order, first))
    second = await store.start_payment(order)
    # The buyer pays twice; the provider's own delivery goes nowhere (tests deliver).
    assert (await store.provider.complete(second, "succeeded"))["delivered"] is False
    refunds_before = METRICS.refunds.value("already_paid")
    result = await deliver(store, *store.callback(order, second))
    assert (result["outcome"], result["detail"]) == ("refund", "already_paid")
    assert METRICS.refunds.value("already_paid") == refunds_before + 1
    at_provider = await store.provider.get(second)
    assert at_provider["refunded"] == order.total
    assert at_provider[f"refund:auto-{second}"] == str(order.total)
    assert (await store.orders.payment(store.room, second) or {})["s"] == "refunded"
    paid = await store.orders.get(store.room, order.id)
    assert (paid.state, paid.fields["payment"], paid.refunded) == (OrderState.PAID, first, 0)
    assert (await store.provider.get(first))["refunded"] == 0
    assert await counters(store, sale) == (4, 0, 1)
    # Redelivering the refunded payment is a duplicate and refunds nothing more.
    again = await deliver(store, *store.callback(order, second))
    assert (again["outcome"], again["detail"]) == ("duplicate", "refunded")
    assert (await store.provider.get(second))["refunded"] == order.total
    await store.audit_ok()


async def test_an_automatic_refund_the_provider_refused_is_retried_on_redelivery(
    store: Store,
) -> None:
    _, order = await pending(store)
    payment = await store.start_payment(order)  # not completed at the provider yet
    await store.orders.cancel(store.room, order.id, "ana")
    with pytest.raises(ConflictError) as refused:
        await deliver(store, *store.callback(order, payment))
    assert refused.value.code == "psp_refused"
    assert (await store.orders.payment(store.room, payment) or {})["s"] == "refund_due"
    report = await audit_room(store.shop.redis, store.room)
    assert [c.detail for c in report.checks if not c.ok] == [
        f"payment {payment} is owed an automatic refund"
    ]
    await store.provider.complete(payment, "succeeded")
    again = await deliver(store, *store.callback(order, payment))
    assert (again["outcome"], again["detail"]) == ("duplicate", "refund_due")
    assert (await store.provider.get(payment))["refunded"] == order.total
    assert (await store.orders.payment(store.room, payment) or {})["s"] == "refunded"
    await store.audit_ok()


async def test_a_host_refund_the_provider_refused_is_paid_out_on_retry(store: Store) -> None:
    _, order = await pending(store)
    payment = await store.start_payment(order)
    await deliver(store, *store.callback(order, payment))
    body = RefundTerms(id="refund-1", amount=700, reason="late delivery")
    with pytest.raises(ConflictError) as refused:  # the provider has not settled it yet
        await store.payments.refund(store.room, order.id, body, "host")
    assert refused.value.code == "psp_refused"
    await store.provider.complete(payment, "succeeded")
    updated, replayed = await store.payments.refund(store.room, order.id, body, "host")
    assert replayed
    assert updated.refunded == 700
    assert (await store.provider.get(payment))["refunded"] == 700
    # And a further retry pays nothing more.
    await store.payments.refund(store.room, order.id, body, "host")
    assert (await store.provider.get(payment))["refunded"] == 700
    await store.audit_ok()
