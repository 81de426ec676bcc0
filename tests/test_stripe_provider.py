"""engine/commerce/stripe_provider.py inside a real engine, against a stand-in for Stripe's
API (tests/stripe_api.py) reached through the SDK: Checkout Sessions made for orders, signed
webhooks applied through the shared payment step, refunds, and the day's settlement lines."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import stripe

from clients import HostClient, ShopperClient
from clients.errors import LivecartClientError
from engine.commerce.payments import SettlementLine
from engine.commerce.stripe_provider import StripeProvider, _BalanceTransaction, _fee
from engine.server.app import Engine
from tests.conftest import EngineFactory, RoomFactory, ViewerFactory, token
from tests.stripe_api import StripeApi, serving
from tests.test_psp import ana_order

API_KEY = "sk_test_livecart_0123456789"
WEBHOOK_SECRET = "whsec_livecart_test_0123456789abcdef"
WEBHOOK = "/api/payments/stripe/webhook"
# A fixed noon, so that every balance transaction falls in one UTC day whatever the clock.
NOON = int(datetime.datetime(2030, 6, 15, 12, tzinfo=datetime.UTC).timestamp())


def signed(
    payload: bytes, *, secret: str = WEBHOOK_SECRET, at: int | None = None
) -> dict[str, str]:
    """Stripe's headers for `payload`: `t=<unix s>,v1=hex(HMAC-SHA256(secret, "<t>.<body>"))`
    (Stripe's documented scheme, computed here apart from the engine)."""
    at = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    return {"stripe-signature": f"t={at},v1={mac}", "content-type": "application/json"}


@dataclass
class Shop:
    engine: Engine
    api: StripeApi
    room: str
    order: str
    http: httpx.AsyncClient
    ana: ShopperClient

    async def start(self) -> dict[str, Any]:
        return await self.ana.start_payment(self.order)

    async def webhook(
        self, payload: bytes, headers: dict[str, Any] | None = None
    ) -> httpx.Response:
        return await self.http.post(WEBHOOK, content=payload, headers=headers or signed(payload))

    async def state(self) -> str:
        state: str = (await self.ana.order(self.order))["state"]
        return state

    def provider(self) -> StripeProvider:
        assert self.engine.node is not None
        provider = self.engine.node.provider
        assert isinstance(provider, StripeProvider)
        return provider


@pytest.fixture
async def stripe_api() -> AsyncIterator[StripeApi]:
    async with serving() as api:
        yield api


@pytest.fixture
async def shop(
    engine_factory: EngineFactory,
    room_factory: RoomFactory,
    viewer_factory: ViewerFactory,
    stripe_api: StripeApi,
) -> AsyncIterator[Shop]:
    """An engine paying through Stripe (the stand-in), and ana's order awaiting payment."""
    engine = await engine_factory(
        payment_provider="stripe", stripe_api_key=API_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=stripe_api.url,
    )  # fmt: skip
    room = await room_factory()
    order = await ana_order(engine, room, viewer_factory)
    async with (
        httpx.AsyncClient(base_url=engine.base_url) as http,
        ShopperClient(engine.base_url, room, token(room, "viewer", "ana")) as ana,
    ):
        yield Shop(engine, stripe_api, room, order, http, ana)


async def paid(shop: Shop) -> str:
    """Ana pays her order at Stripe and Stripe's webhook is applied: the session id."""
    session = (await shop.start())["payment"]
    shop.api.pay(session)
    answer = await shop.webhook(shop.api.event("checkout.session.completed", session))
    assert (answer.status_code, answer.json()["outcome"]) == (200, "paid"), answer.text
    return str(session)


# ---- paying -----------------------------------------------------------------------------------


async def test_an_order_is_paid_through_a_checkout_session_and_its_webhook(shop: Shop) -> None:
    order = await shop.ana.order(shop.order)
    started = await shop.start()
    session_id = started["payment"]
    assert session_id.startswith("cs_test_")
    assert started["pay_url"] == f"https://checkout.stripe.com/c/pay/{session_id}"
    assert (started["amount"], started["currency"]) == (5600, "USD")
    [created] = shop.api.requests("POST", "/v1/checkout/sessions")
    assert created.authorization == f"Bearer {API_KEY}"
    assert created.idempotency_key == f"livecart-checkout-{shop.room}-{shop.order}"
    page = f"{shop.engine.base_url}/live/{shop.room}"
    assert created.params == {
        "mode": "payment",
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][unit_amount]": "5600",
        "line_items[0][price_data][product_data][name]": f"Order {shop.order}",
        "payment_method_types[0]": "card",
        "payment_method_types[1]": "alipay",
        "payment_method_types[2]": "wechat_pay",
        "payment_method_options[wechat_pay][client]": "web",
        "metadata[room]": shop.room,
        "metadata[order]": shop.order,
        "payment_intent_data[metadata][room]": shop.room,
        "payment_intent_data[metadata][order]": shop.order,
        "client_reference_id": f"{shop.room}:{shop.order}",
        "success_url": page,
        "cancel_url": page,
        # The order's deadline plus Stripe's least lifetime (30 min) and a minute.
        "expires_at": str(order["expires_at"] // 1000 + 31 * 60),
    }
    assert await shop.state() == "pending_payment"

    shop.api.pay(session_id)
    event = shop.api.event("checkout.session.completed", session_id)
    answer = await shop.webhook(event)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"outcome": "paid", "detail": "0", "order": shop.order,
                             "payment": session_id}  # fmt: skip
    paid_order = await shop.ana.order(shop.order)
    assert (paid_order["state"], paid_order["payment"]) == ("paid", session_id)

    # Stripe redelivers the same event (its id, a fresh signature): applied once.
    again = await shop.webhook(event)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "callback_replayed")
    # Another event about the same session is the same payment: a duplicate, answered 2xx.
    other = await shop.webhook(shop.api.event("checkout.session.async_payment_succeeded",
                                              session_id))  # fmt: skip
    assert other.status_code == 200
    assert (other.json()["outcome"], other.json()["detail"]) == ("duplicate", "succeeded")
    assert await shop.ana.order(shop.order) == paid_order


async def test_a_retried_start_gets_the_same_session(shop: Shop) -> None:
    first, second = await shop.start(), await shop.start()
    assert first["payment"] == second["payment"]
    keys = {r.idempotency_key for r in shop.api.requests("POST", "/v1/checkout/sessions")}
    assert keys == {f"livecart-checkout-{shop.room}-{shop.order}"}
    assert len(shop.api.sessions) == 1


async def test_a_delayed_method_pays_when_its_success_arrives(shop: Shop) -> None:
    session_id = (await shop.start())["payment"]
    completed = await shop.webhook(shop.api.event("checkout.session.completed", session_id))
    # Completed but not paid yet (payment_status "unpaid"): nothing to apply.
    assert completed.json() == {"outcome": "ignored", "detail": "checkout.session.completed"}
    assert await shop.state() == "pending_payment"
    shop.api.pay(session_id)
    succeeded = await shop.webhook(
        shop.api.event("checkout.session.async_payment_succeeded", session_id)
    )
    assert succeeded.json()["outcome"] == "paid"
    assert await shop.state() == "paid"


async def test_an_expired_or_failed_session_fails_the_payment(shop: Shop) -> None:
    session_id = (await shop.start())["payment"]
    failed = await shop.webhook(shop.api.event("checkout.session.async_payment_failed", session_id))
    assert (failed.json()["outcome"], failed.json()["detail"]) == ("failed", "pending_payment")
    shop.api.expire(session_id)
    expired = await shop.webhook(shop.api.event("checkout.session.expired", session_id))
    assert expired.status_code == 200
    assert (expired.json()["outcome"], expired.json()["payment"]) == ("failed", session_id)
    assert await shop.state() == "pending_payment"  # the order's own deadline decides


async def test_events_that_settle_nothing_are_answered_and_ignored(shop: Shop) -> None:
    payload = (
        b'{"id":"evt_1NG8Du2eZvKYlo2C","object":"event","type":"payment_intent.created",'
        b'"data":{"object":{"id":"pi_3MtwBwLkdIwHu7ix","object":"payment_intent"}}}'
    )
    answer = await shop.webhook(payload)
    assert (answer.status_code, answer.json()) == (
        200, {"outcome": "ignored", "detail": "payment_intent.created"},
    )  # fmt: skip


async def test_an_amount_that_is_not_the_orders_pays_nothing(shop: Shop) -> None:
    session_id = (await shop.start())["payment"]
    shop.api.sessions[session_id]["amount_total"] = 560  # what Stripe charged
    shop.api.pay(session_id)
    answer = await shop.webhook(shop.api.event("checkout.session.completed", session_id))
    assert (answer.status_code, answer.json()["error"]["code"]) == (422, "payment_mismatch")
    assert await shop.state() == "pending_payment"


# ---- webhooks Stripe did not sign -------------------------------------------------------------


async def test_a_webhook_stripe_did_not_sign_changes_nothing(shop: Shop) -> None:
    session_id = (await shop.start())["payment"]
    shop.api.pay(session_id)
    event = shop.api.event("checkout.session.completed", session_id, "evt_forged_0123456789")
    now = int(time.time())
    tampered = event.replace(b'"amount_total":5600', b'"amount_total":5601')
    refusals = {
        "another secret": (event, signed(event, secret="whsec_someone_else_0123456789")),
        "a changed body": (tampered, signed(event)),
        "no header": (event, {"content-type": "application/json"}),
        "no v1": (event, {"stripe-signature": f"t={now},v0=00"}),
        "not ASCII": (event, {"stripe-signature": f"t={now},v1=\u00e9".encode()}),
        "not UTF-8": (b"\xff" + event, signed(b"\xff" + event)),
    }
    for why, (payload, headers) in refusals.items():
        answer = await shop.webhook(payload, headers)
        assert answer.status_code == 401, why
        assert answer.json()["error"]["code"] == "signature_invalid", why
    stale = await shop.webhook(event, signed(event, at=now - 301))
    assert (stale.status_code, stale.json()["error"]["code"]) == (401, "callback_stale")
    assert await shop.state() == "pending_payment"
    # None of them spent the event's id: Stripe's own delivery is applied.
    assert (await shop.webhook(event)).json()["outcome"] == "paid"


def test_the_scheme_signed_here_is_the_sdks() -> None:
    payload, at = b'{"id":"evt_1"}', 1_795_335_031
    mac = signed(payload, at=at)["stripe-signature"].split("v1=")[1]
    assert stripe.WebhookSignature._compute_signature(f"{at}.{payload.decode()}",
                                                      WEBHOOK_SECRET) == mac  # fmt: skip


async def test_a_signed_body_that_is_no_event_is_a_bad_request(shop: Shop) -> None:
    for payload in (b"not json", b"[1]", b'{"id":"evt_1","type":"checkout.session.completed"}'):
        answer = await shop.webhook(payload)
        assert (answer.status_code, answer.json()["error"]["code"]) == (400, "bad_request")


async def test_the_webhook_is_refused_when_stripe_is_not_the_provider(engine: Engine) -> None:
    async with httpx.AsyncClient(base_url=engine.base_url) as http:
        payload = b'{"id":"evt_1","type":"checkout.session.completed","data":{"object":{}}}'
        answer = await http.post(WEBHOOK, content=payload, headers=signed(payload))
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "payments_disabled")


# ---- refunds ----------------------------------------------------------------------------------


async def test_a_host_refund_reaches_stripe_once_with_its_idempotency_key(shop: Shop) -> None:
    session_id = await paid(shop)
    intent = shop.api.sessions[session_id]["payment_intent"]
    async with HostClient(shop.engine.base_url, shop.room,
                          token(shop.room, "host", "host-1")) as host:  # fmt: skip
        refunded = await host.refund(shop.order, "rf-1", 1000, reason="late delivery")
        again = await host.refund(shop.order, "rf-1", 1000, reason="late delivery")
    assert (refunded["state"], refunded["refunded"], again["replayed"]) == (
        "partially_refunded", 1000, True,
    )  # fmt: skip
    posts = shop.api.requests("POST", "/v1/refunds")
    assert [p.idempotency_key for p in posts] == [f"{session_id}:rf-1"] * 2
    assert posts[0].params == {
        "payment_intent": intent, "amount": "1000", "metadata[room]": shop.room,
        "metadata[order]": shop.order, "metadata[payment]": session_id, "metadata[refund]": "rf-1",
    }  # fmt: skip
    assert shop.api.requests("GET", f"/v1/checkout/sessions/{session_id}")
    [refund] = shop.api.refunds.values()  # the retry was the same refund at Stripe
    assert refund["amount"] == 1000


async def test_a_refund_stripe_refuses_is_psp_refused(shop: Shop) -> None:
    await paid(shop)
    async with HostClient(shop.engine.base_url, shop.room,
                          token(shop.room, "host", "host-1")) as host:  # fmt: skip
        await host.refund(shop.order, "rf-1", 5000)
        shop.api.charges[next(iter(shop.api.charges))]["refunded"] = 5600  # refunded elsewhere
        with pytest.raises(LivecartClientError) as caught:
            await host.refund(shop.order, "rf-2", 600)
    assert (caught.value.status, caught.value.code) == (409, "psp_refused")


# ---- settlement -------------------------------------------------------------------------------


async def test_the_days_balance_transactions_become_settlement_lines(shop: Shop) -> None:
    shop.api.balance_time = NOON
    session_id = await paid(shop)
    intent = shop.api.sessions[session_id]["payment_intent"]
    async with HostClient(shop.engine.base_url, shop.room,
                          token(shop.room, "host", "host-1")) as host:  # fmt: skip
        await host.refund(shop.order, "rf-1", 1000)
    # A refund made in Stripe's dashboard (no metadata), a charge that no Checkout Session
    # made, and a payout, which is not a payment's money.
    shop.api.create_refund_now({"payment_intent": intent, "amount": "500"})
    outside = {"id": "ch_outside_0001", "object": "charge", "amount": 2500, "currency": "usd",
               "payment_intent": "pi_outside_0001", "metadata": {}}  # fmt: skip
    shop.api.charges["ch_outside_0001"] = outside
    shop.api.add_transaction("charge", "ch_outside_0001", 2500, fee=103)
    shop.api.add_transaction("payout", "po_0001", -5000, fee=0)
    shop.api.balance_time = NOON + 86_400  # the next day's: not in this day's settlement
    shop.api.add_transaction("charge", "ch_outside_0001", 2500, fee=103)

    day = datetime.date(2030, 6, 15)
    lines = await shop.provider().settlement(day)

    dashboard = next(r for r in shop.api.refunds.values() if not r["metadata"])["id"]
    at_ms = NOON * 1000
    common = {"payment_id": session_id, "room": shop.room, "order": shop.order,
              "currency": "USD", "at_ms": at_ms}  # fmt: skip
    assert sorted(lines, key=lambda line: line.reference) == sorted([
        SettlementLine(reference=session_id, kind="charge", amount=5600, fee=192, **common),
        SettlementLine(reference="rf-1", kind="refund", amount=1000, fee=0, **common),
        SettlementLine(reference=dashboard, kind="refund", amount=500, fee=0, **common),
        SettlementLine(reference="pi_outside_0001", kind="charge", payment_id="pi_outside_0001",
                       room="", order="", amount=2500, currency="USD", fee=103, at_ms=at_ms),
    ], key=lambda line: line.reference)  # fmt: skip
    # Every page, each with the day's bounds and the sources expanded.
    pages = shop.api.requests("GET", "/v1/balance_transactions")
    assert len(pages) == 3  # 5 of the day's transactions, 2 a page
    assert all(p.params["created[gte]"] == str(NOON - 12 * 3600) for p in pages)
    assert all(p.params["created[lt]"] == str(NOON + 12 * 3600) for p in pages)
    assert all(p.params["expand[0]"] == "data.source" for p in pages)
    assert [p.params.get("starting_after") is None for p in pages] == [True, False, False]
    # One session lookup per PaymentIntent the lines did not name the payment of.
    lookups = shop.api.requests("GET", "/v1/checkout/sessions")
    looked_up = sorted(p.params["payment_intent"] for p in lookups)
    assert looked_up == sorted([intent, "pi_outside_0001"])
    assert await shop.provider().settlement(datetime.date(2030, 6, 14)) == []


def test_a_fee_in_a_converted_balance_is_given_in_the_payments_currency() -> None:
    # 1000 JPY settled as 6.70 USD (rate 0.0067), fee 0.49 USD: 73.13 yen, so 73.
    txn = _BalanceTransaction(id="txn_1", type="charge", created=NOON, currency="usd", fee=49,
                              exchange_rate=0.0067)  # fmt: skip
    assert _fee(txn, "JPY") == 73
    same = _BalanceTransaction(id="txn_2", type="charge", created=NOON, currency="jpy", fee=66)
    assert _fee(same, "JPY") == 66
